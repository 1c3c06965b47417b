"""Helpers of the trainer tests (imported by name: pytest puts this folder on sys.path)."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MNIST = REPO.parent / "shared" / "datasets" / "mnist"


def load_config_module(name: str):
    """configs/<name>.py as a module (the recipes import ``configs.default``, so the repo root goes on sys.path)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    spec = importlib.util.spec_from_file_location(f"configs.{name}", REPO / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_config(data_dir, **overrides):
    """The default recipe on ``data_dir``, logging every step, no model.pt, with ``overrides``."""
    config = load_config_module("default").get_config()
    config.data_dir = str(data_dir)
    config.log_every_steps = 1
    config.export_torch = False
    for name, value in overrides.items():
        config[name] = value
    return config
