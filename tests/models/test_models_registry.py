"""jaxconv.models: the registry and the trainer's contract (no torch needed)."""

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
    # init is traced, not run (random init compiles slowly on CPU; its values are tested in test_init)
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                                               x, train=False))
    assert set(shapes) == {"params"}
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)

    @jax.jit
    def apply_both(variables, x):
        y_train = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
        return y_train, model.apply(variables, x, train=False)

    y_train, y_eval = apply_both(variables, x)
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
    v = jax.tree.map(lambda s: np.full(s.shape, 0.05, s.dtype), jax.eval_shape(dropped.init, jax.random.key(0), x))

    @jax.jit
    def train_and_eval(v, x):
        return dropped.apply(v, x, train=True, rngs={"dropout": jax.random.key(1)}), dropped.apply(v, x)

    a, b = train_and_eval(v, x)
    assert not np.allclose(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", NAMES)
def test_internal_layouts_agree_with_dropout(name):
    # channels_last only moves the conv stack's layout: same params, same dropout masks, same numbers
    a, b = models.get(name, channels_last=True), models.get(name, channels_last=False)
    x = _input(a, batch=4)
    shapes = jax.eval_shape(a.init, jax.random.key(0), x)
    rng = np.random.default_rng(1)
    v = jax.tree.map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)
    ya, yb = (m.apply(v, x, train=True, rngs={"dropout": jax.random.key(3)}) for m in (a, b))
    np.testing.assert_allclose(np.asarray(ya), np.asarray(yb), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(ya), 0.0)
