"""train.py's defaults: --config is configs/default.py next to train.py, --workdir runs/<config stem> under the cwd."""

import json
import subprocess
import sys

from train_helpers import REPO

TIMEOUT = 300


def _train_py(*args: str, cwd) -> str:
    out = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out.stdout + out.stderr


def test_plain_train_py_uses_default_config_and_runs_workdir(small_mnist, tmp_path):
    # Run from elsewhere than the repo: the default config is found next to train.py.
    _train_py(
        f"--config.data_dir={small_mnist}",
        "--config.max_steps=2",
        "--config.log_every_steps=1",
        "--config.export_torch=false",
        cwd=tmp_path,
    )
    workdir = tmp_path / "runs" / "default"
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"] == "convnet" and saved["max_steps"] == 2  # configs/default.py plus the overrides
    assert json.loads((workdir / "summary.json").read_text())["step"] == 2

    # Eval mode without --config or --workdir: runs/default, with the config saved there (its data_dir:
    # the default config's data_dir would not read the 1000-example subset).
    out = _train_py("--mode=eval", cwd=tmp_path)
    assert "data: 1000 test examples" in out
    assert "eval: checkpoint step 2:" in out
