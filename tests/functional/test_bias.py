"""`_bias.add_bias`: the bias gradient of half-precision convs and Linear layers sums in float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv.functional as F
from jaxconv.functional._bias import add_bias
from jaxconv.nn import _layers


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_bias_grad_sums_in_float32(dtype, channels_last):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4, 34, 34)).astype(np.float32)
    w = rng.standard_normal((16, 4, 3, 3)).astype(np.float32) / 6
    dy = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
    if channels_last:
        x, dy = np.moveaxis(x, 1, -1), np.moveaxis(dy, 1, -1)
    # The cotangent reaching y is dy rounded to y's dtype; the reference sums those exactly.
    want = np.asarray(jnp.asarray(dy, dtype), np.float64).sum(axis=(0, 1, 2) if channels_last else (0, 2, 3))

    def f(b):
        y = F.conv2d(jnp.asarray(x, dtype), jnp.asarray(w, dtype), b, channels_last=channels_last)
        return jnp.sum(y.astype(jnp.float32) * jnp.asarray(dy))

    got = np.asarray(jax.grad(f)(jnp.zeros(16, dtype)), np.float64)
    # 8 * 32 * 32 = 8192 terms per channel: summed in bf16 this was 13% off; now only the
    # final rounding to the bias dtype is left.
    np.testing.assert_allclose(got, want, rtol=2 ** -8, atol=0)


def test_linear_bias_grad_sums_in_float32():
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((4096, 8)).astype(np.float32)
    want = np.asarray(jnp.asarray(dy, jnp.bfloat16), np.float64).sum(0)
    cfg = _layers.linear_config(3, 8)
    x = jnp.zeros((4096, 3), jnp.bfloat16)
    w = jnp.zeros((8, 3), jnp.bfloat16)
    got = jax.grad(lambda b: jnp.sum(cfg.forward(x, w, b).astype(jnp.float32) * dy))(jnp.zeros(8, jnp.bfloat16))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2 ** -8, atol=0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_add_bias_forward_is_plain_addition(dtype):
    y = jnp.asarray(np.random.default_rng(2).standard_normal((2, 3, 5)), dtype)
    b = jnp.asarray([0.5, -1.25, 3.0], dtype)
    np.testing.assert_array_equal(np.asarray(add_bias(y, b, 1)), np.asarray(y + b[:, None]))
    assert add_bias(y, b, 1).dtype == y.dtype
