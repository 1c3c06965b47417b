"""jaxconv.models: registry, the trainer's contract, and parity with the PyTorch twins (incl. SGD training)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import models

NAMES = ["lenet5", "convnet", "mnist_net", "cifar_cnn"]


def _input(model, batch=2, seed=0):
    shape = (batch, model.in_channels, model.input_size, model.input_size)
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_registry_names_and_unknown_name():
    assert models.names() == NAMES
    with pytest.raises(ValueError, match="unknown model 'resnet'; available: lenet5, convnet, mnist_net, cifar_cnn"):
        models.get("resnet")


@pytest.mark.parametrize("name", NAMES)
def test_trainer_contract(name):
    model = models.get(name)
    x = _input(model)
    variables = jax.jit(lambda x: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                                             x, train=False))(x)
    assert set(variables) == {"params"}
    apply = jax.jit(model.apply, static_argnames="train")
    y_train = apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    y_eval = apply(variables, x, train=False)
    assert y_train.shape == y_eval.shape == (2, 10) and y_eval.dtype == jnp.float32
    if name == "mnist_net":
        np.testing.assert_allclose(np.exp(np.asarray(y_eval)).sum(axis=1), 1.0, rtol=1e-5)
        assert not np.allclose(np.asarray(y_train), np.asarray(y_eval))  # dropout is active in training
    else:
        np.testing.assert_array_equal(np.asarray(y_train), np.asarray(y_eval))


def test_constructor_arguments():
    model = models.get("cifar_cnn", input_size=64, num_classes=5)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 3, 64, 64)))["params"]
    assert shapes["fc"]["weight"].shape == (5, 32 * 16 * 16)
    with pytest.raises(ValueError, match="too small"):
        small = models.get("lenet5", input_size=12)
        jax.eval_shape(small.init, jax.random.key(0), jnp.zeros((1, 1, 12, 12)))
    dropped = models.get("convnet", dropout=0.5)
    x = _input(dropped)
    v = dropped.init(jax.random.key(0), x)
    a = dropped.apply(v, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(np.asarray(a), np.asarray(dropped.apply(v, x)))


# --- parity with the PyTorch twins -------------------------------------------------------------

torch = pytest.importorskip("torch")

from jaxconv.parity import model_check, torch_models  # noqa: E402


@pytest.mark.parametrize("name", NAMES)
def test_twin_has_identical_parameter_names_and_shapes(name):
    model = models.get(name)
    params = jax.eval_shape(model.init, jax.random.key(0), _input(model, 1))["params"]
    from jaxconv.interop import flatten_params

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


def test_model_check_detects_a_wrong_model(monkeypatch):
    # the check must be able to fail: swap ReLU for a leaky one in the Flax model only
    import jaxconv.models.cifar_cnn as cifar

    monkeypatch.setattr(cifar.jax.nn, "relu", lambda v: jax.numpy.where(v > 0, v, 0.01 * v))
    r = model_check.check_model("cifar_cnn", steps=2)
    assert r["logits"] > 1e-3 and not r["ok"]
