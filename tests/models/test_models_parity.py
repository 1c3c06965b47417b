"""jaxconv.models against their PyTorch twins: names, logits, gradients and 20 SGD-momentum steps."""

import jax
import pytest

torch = pytest.importorskip("torch")

from jaxconv import models  # noqa: E402
from jaxconv.interop import flatten_params  # noqa: E402
from jaxconv.parity import model_check, torch_models  # noqa: E402

NAMES = ["lenet5", "convnet", "mnist_net", "cifar_cnn"]


def _input(model, batch=1):
    return jax.numpy.zeros((batch, model.in_channels, model.input_size, model.input_size))


@pytest.mark.parametrize("name", NAMES)
def test_twin_has_identical_parameter_names_and_shapes(name):
    model = models.get(name)
    params = jax.eval_shape(model.init, jax.random.key(0), _input(model))["params"]
    ours = {k: tuple(v.shape) for k, v in flatten_params(params).items()}
    theirs = {k: tuple(v.shape) for k, v in torch_models.get(name).state_dict().items()}
    assert ours == theirs


def test_torch_twin_registry():
    with pytest.raises(ValueError, match="available: lenet5"):
        torch_models.get("vgg")


@pytest.fixture(scope="module")
def results():
    # model_check.run: load the twin's weights, compare logits and loss gradients, then
    # 20 SGD-momentum steps on the same random batches (dropout off) in both frameworks.
    return {r["model"]: r for r in model_check.run(seed=0)}


@pytest.mark.parametrize("name", NAMES)
def test_model_matches_torch_twin(results, name):
    r = results[name]
    assert r["steps"] == 20
    assert r["logits"] <= 1e-5, r
    assert r["grad"] <= 1e-5, r
    assert r["loss"] <= 1e-4, r
    assert r["weights"] <= 1e-4, r
    assert r["ok"]


@pytest.mark.parametrize("name", NAMES)
def test_both_internal_layouts_match_torch_twin(name):
    # the default layout runs in `results`; here the other one, for a few steps
    r = model_check.check_model(name, steps=3, channels_last=not models.get(name).channels_last)
    assert r["logits"] <= 1e-5 and r["grad"] <= 1e-5 and r["ok"], r


def test_model_check_detects_a_wrong_model(monkeypatch):
    # the check must be able to fail: swap ReLU for a leaky one in the Flax model only
    import jaxconv.models.cifar_cnn as cifar

    monkeypatch.setattr(cifar.jax.nn, "relu", lambda v: jax.numpy.where(v > 0, v, 0.01 * v))
    r = model_check.check_model("cifar_cnn", steps=2)
    assert r["logits"] > 1e-3 and not r["ok"]
