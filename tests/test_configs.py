"""Every recipe in configs/ loads, validates and documents itself; bad configs are rejected by name."""

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from ml_collections import config_dict

from jaxconv.train import config as config_lib

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem != "__init__")


def _load(name: str):
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # recipes import configs.default
    spec = importlib.util.spec_from_file_location(f"configs.{name}", REPO / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_four_recipes_exist():
    assert {"default", "lenet5", "convnet", "mnist_net"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_validates_and_documents_its_command(name):
    module = _load(name)
    config = module.get_config()
    config_lib.validate(config)
    assert f"python train.py --config=configs/{name}.py --workdir=" in module.__doc__


def test_default_comments_every_field():
    source = (REPO / "configs" / "default.py").read_text()
    lines = source.splitlines()
    assigned = {}  # field -> its assignment's lines, with the line above when that is a comment
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
            above = lines[node.lineno - 2] if lines[node.lineno - 2].strip().startswith("#") else ""
            assigned[node.targets[0].attr] = above + "\n".join(lines[node.lineno - 1 : node.end_lineno])
    assert set(assigned) == set(config_lib.FIELDS)
    uncommented = [name for name, text in assigned.items() if "#" not in text]
    assert not uncommented


@pytest.mark.parametrize("name", ["lenet5", "convnet", "mnist_net"])
def test_recipe_comments_every_override(name):
    lines = [line.strip() for line in (REPO / "configs" / f"{name}.py").read_text().splitlines()]
    overrides = [line for line in lines if line.startswith("config.")]
    assert overrides
    for line in overrides:
        assert line.split("=")[0].strip().removeprefix("config.") in config_lib.FIELDS, line
        assert "#" in line, f"uncommented override: {line}"


def test_recipes_match_their_tutorials():
    lenet, convnet, mnist = (_load(n).get_config() for n in ("lenet5", "convnet", "mnist_net"))
    assert (lenet.optimizer, lenet.learning_rate, lenet.momentum, lenet.batch_size, lenet.num_epochs) == (
        "sgd",
        0.001,
        0.9,
        4,
        2,
    )
    assert (
        convnet.optimizer,
        convnet.learning_rate,
        convnet.momentum,
        convnet.batch_size,
        convnet.num_epochs,
    ) == ("sgd", 0.001, 0.9, 100, 10)
    assert (convnet.normalize_mean, convnet.normalize_std) == ((0.5,), (0.5,))
    assert (
        mnist.optimizer,
        mnist.learning_rate,
        mnist.schedule,
        mnist.step_gamma,
        mnist.batch_size,
        mnist.num_epochs,
    ) == ("adadelta", 1.0, "step", 0.7, 64, 14)
    assert (mnist.normalize_mean, mnist.normalize_std) == ((0.1307,), (0.3081,))


def _default():
    return _load("default").get_config()


def _retyped(config, **values):
    """Fields replaced regardless of type, as a config rebuilt from JSON could hold them."""
    config.unlock()
    for name, value in values.items():
        del config[name]
        config[name] = value
    config.lock()
    return {}


@pytest.mark.parametrize(
    "mutate, names",
    [
        (lambda c: setattr(c, "learing_rate", 0.1), "learing_rate"),
        (lambda c: setattr(c, "optimizer", "adagrad"), "optimizer"),
        (lambda c: setattr(c, "model", "resnet"), "resnet"),
        (lambda c: setattr(c, "parallel", "gpu"), "parallel"),
        (lambda c: setattr(c, "schedule", "linear"), "schedule"),
        (lambda c: setattr(c, "on_nonfinite", "ignore"), "on_nonfinite"),
        (lambda c: setattr(c, "batch_size", 0), "batch_size"),
        (lambda c: c.update(_retyped(c, export_torch="yes")), "export_torch"),
        (lambda c: c.__delitem__("seed"), "seed"),
        (lambda c: setattr(c, "normalize_std", (0.5, 0.5)), "normalize_mean"),
        (lambda c: setattr(c, "log_every_steps", None), "log_every_steps"),
    ],
    ids=[
        "typo",
        "optimizer",
        "model",
        "parallel",
        "schedule",
        "on_nonfinite",
        "batch_size",
        "type",
        "missing",
        "norm",
        "none",
    ],
)
def test_bad_config_is_rejected_naming_the_field(mutate, names):
    config = _default()
    mutate(config)
    with pytest.raises(ValueError, match=names):
        config_lib.validate(config)


def test_placeholders_accept_values_of_their_type():
    config = _default()
    config.max_steps = 10
    config.data_dir = "/tmp"
    config.eps = 1e-7
    config_lib.validate(config)
    with pytest.raises(TypeError):
        config.max_steps = "ten"  # ConfigDict enforces the placeholder's type itself


def test_config_json_roundtrip(tmp_path):
    config = _default()
    config.max_steps = 7
    path = str(tmp_path / "config.json")
    config_lib.save_json(config, path)
    back = config_lib.load_json(path)
    config_lib.validate(back)
    assert config_lib.differences(config, back) == {}
    assert back.normalize_mean == (0.1307,) and back.data_dir is None
    back.data_dir = "/data"  # still a str placeholder
    assert config_dict.ConfigDict(back).data_dir == "/data"


def test_config_json_written_before_an_optional_field_existed_loads(tmp_path):
    """A workdir's config.json from before ``microbatch_size`` existed: the field comes back unset."""
    config = _default()
    path = str(tmp_path / "config.json")
    config_lib.save_json(config, path)
    raw = json.loads(open(path).read())
    del raw["microbatch_size"]
    open(path, "w").write(json.dumps(raw))
    back = config_lib.load_json(path)
    config_lib.validate(back)
    assert back.microbatch_size is None
    back.microbatch_size = 32  # still an int placeholder
    assert config_lib.differences(config, back) == {"microbatch_size": (None, 32)}


def test_command_line_override_of_unknown_field_fails():
    from absl import flags
    from ml_collections import config_flags

    def parse(*overrides):
        argv = ["prog", f"--config={REPO / 'configs' / 'default.py'}", *overrides]
        values = flags.FlagValues()
        config_flags.DEFINE_config_file("config", None, flag_values=values, sys_argv=argv)
        values(argv)
        return values.config

    assert parse("--config.num_epochs=1", "--config.max_steps=5").max_steps == 5
    with pytest.raises((flags.Error, AttributeError, KeyError), match="learing_rate"):
        parse("--config.learing_rate=1")
