import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import nn as jnn
from jaxconv.nn.dropout import keep_mask


@pytest.mark.parametrize("keep_prob", [0.75, 0.5, 1 - 3 / 2**16, 3 / 2**16, 0.9, 1 / 3])
def test_keep_mask_has_the_keep_probability(keep_prob):
    # 0.75/0.5 take 8-bit lanes, the 2**-16 multiples 16-bit lanes, 0.9 and 1/3 bernoulli.
    n = 2_000_000
    mask = keep_mask(jax.random.PRNGKey(3), keep_prob, (4, n // 4))
    assert mask.shape == (4, n // 4) and mask.dtype == jnp.bool_
    sigma = (keep_prob * (1 - keep_prob) / n) ** 0.5
    assert abs(float(jnp.mean(mask)) - keep_prob) < 5 * sigma
    # Neighbouring elements (lanes of one random word) are independent.
    flat = mask.reshape(-1)
    assert abs(float(jnp.mean(flat[0::2] & flat[1::2])) - keep_prob**2) < 10 * sigma


def test_keep_mask_odd_sizes_and_keys():
    a = keep_mask(jax.random.PRNGKey(0), 0.75, (3, 7))  # 21 elements: not a whole number of words
    assert a.shape == (3, 7)
    b = keep_mask(jax.random.PRNGKey(1), 0.75, (3, 7))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, keep_mask(jax.random.PRNGKey(0), 0.75, (3, 7)))


def test_dropout_is_flax_dropout_with_torch_semantics():
    x = jnp.ones((256, 8, 6, 6))
    layer = jnn.Dropout(0.25)
    assert isinstance(layer, nn.Dropout)  # the trainer's per-example interceptor applies to it
    y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
    np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(float(jnp.mean(y == 0)) - 0.25) < 0.005
    np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
    np.testing.assert_array_equal(jnn.Dropout(1.0).apply({}, x, deterministic=False), jnp.zeros_like(x))
    np.testing.assert_array_equal(jnn.Dropout(0.0).apply({}, x, deterministic=False), x)
    # Gradient: the kept elements' scale, zero elsewhere.
    g = jax.grad(lambda v: layer.apply({}, v, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)}).sum())(x)
    np.testing.assert_array_equal(g, y)


def test_dropout_broadcast_dims_share_a_mask():
    x = jnp.ones((64, 16, 5, 5))
    y = jnn.Dropout(0.5, broadcast_dims=(2, 3)).apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(2)})
    per_channel = np.asarray(y).reshape(64, 16, 25)
    assert (per_channel == per_channel[..., :1]).all()  # whole channels dropped, as torch's Dropout2d
    assert 0.4 < float(jnp.mean(y == 0)) < 0.6


def test_dropout_needs_deterministic_or_an_rng():
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="deterministic"):
        jnn.Dropout(0.5).apply({}, x)
    with pytest.raises(flax.errors.InvalidRngError, match="dropout"):
        jnn.Dropout(0.5).apply({}, x, deterministic=False)


def test_dropout_negative_broadcast_dims_and_bad_rates():
    x = jnp.ones((16, 8, 5, 5))
    key = {"dropout": jax.random.PRNGKey(4)}
    a = jnn.Dropout(0.5, broadcast_dims=(-2, -1)).apply({}, x, deterministic=False, rngs=key)
    b = jnn.Dropout(0.5, broadcast_dims=(2, 3)).apply({}, x, deterministic=False, rngs=key)
    np.testing.assert_array_equal(a, b)
    for rate in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"rate must be in \[0, 1\]"):
            jnn.Dropout(rate)
    with pytest.raises(ValueError, match=r"keep probability must be in \[0, 1\]"):
        keep_mask(jax.random.PRNGKey(0), 1.25, (3,))
