"""conv1d/2d/3d and conv_transpose1d/2d/3d against PyTorch: random grid, corners, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as tF

from jaxconv import functional as F
from jaxconv.parity import conv_cases
from jaxconv.parity.compare import compare, rel_error

RTOL = 1e-5
CASES = conv_cases.cases(seed=0, n=6, impl="lax") + conv_cases.cases(seed=1, n=3, impl="auto")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.impl}-{c.desc}")
def test_random_grid_matches_torch(case):
    result = compare(case)
    assert result.forward <= RTOL, result
    assert result.gradient <= RTOL, result


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _check(name, x, w, b=None, **kw):
    y = getattr(F, name)(x, w, b, **kw)
    t = getattr(tF, name)(torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b), **kw)
    assert y.shape == tuple(t.shape)
    assert rel_error(y, t.numpy()) <= RTOL


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("k,d", [(2, 1), (4, 1), (2, 3), (4, 2), (3, 2)])
def test_same_padding_even_kernels_and_dilation(nd, k, d):
    """The odd extra pad of 'same' goes at the end of each dim, as in PyTorch."""
    rng = np.random.default_rng(k * 10 + d)
    x = _rand(rng, 2, 3, *(9,) * nd)
    w = _rand(rng, 4, 3, *(k,) * nd)
    _check(f"conv{nd}d", x, w, padding="same", dilation=d)
    y = getattr(F, f"conv{nd}d")(x, w, padding="same", dilation=d)
    assert y.shape[2:] == x.shape[2:]


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("s,p,op,d,g", [(2, 1, 1, 1, 1), (2, 0, 2, 3, 2), (3, 2, 2, 1, 3),
                                        (1, 1, 1, 2, 1), (2, 3, 1, 2, 2), (1, 0, 0, 1, 3)])
def test_transposed_output_padding_dilation_groups(nd, s, p, op, d, g):
    rng = np.random.default_rng(s * 100 + p * 10 + op)
    x = _rand(rng, 2, 2 * g, *(5,) * nd)
    w = _rand(rng, 2 * g, 3, *(3,) * nd)
    b = _rand(rng, 3 * g)
    _check(f"conv_transpose{nd}d", x, w, b, stride=s, padding=p, output_padding=op, groups=g, dilation=d)


def test_transposed_padding_larger_than_kernel_extent_crops():
    rng = np.random.default_rng(0)
    _check("conv_transpose1d", _rand(rng, 1, 2, 6), _rand(rng, 2, 2, 3), padding=3, stride=2)


@pytest.mark.parametrize("impl", ["auto", "lax", "im2col"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_transposed_output_length_zero_is_empty_as_in_torch(impl, channels_last):
    """PyTorch returns an empty output (zero gradients) where a transposed conv's output
    length is exactly 0; a negative length is an error in both."""
    rng = np.random.default_rng(2)
    x, w, b = _rand(rng, 2, 4, 6, 4), _rand(rng, 4, 3, 3, 2), _rand(rng, 3)
    kw = dict(stride=(2, 1), padding=(0, 3), dilation=(2, 2))
    t = tF.conv_transpose2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw)
    assert tuple(t.shape) == (2, 3, 15, 0)
    x_in = np.moveaxis(x, 1, -1) if channels_last else x

    def f(x, w, b):
        y = F.conv_transpose2d(x, w, b, impl=impl, channels_last=channels_last, **kw)
        return y, y.sum()

    y, _ = f(x_in, w, b)
    assert y.shape == ((2, 15, 0, 3) if channels_last else (2, 3, 15, 0))
    grads = jax.grad(lambda *a: f(*a)[1], argnums=(0, 1, 2))(x_in, w, b)
    assert [g.shape for g in grads] == [x_in.shape, w.shape, b.shape]
    assert all(not np.any(np.asarray(g)) for g in grads)


def test_asymmetric_tuple_arguments():
    rng = np.random.default_rng(1)
    _check("conv2d", _rand(rng, 2, 4, 11, 8), _rand(rng, 6, 2, 3, 2), _rand(rng, 6),
           stride=(2, 1), padding=(0, 2), dilation=(1, 3), groups=2)
    _check("conv3d", _rand(rng, 1, 2, 5, 6, 7), _rand(rng, 2, 2, 1, 2, 3), stride=(1, 2, 3),
           padding=(1, 0, 2), dilation=(2, 1, 1))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_result_keeps_input_dtype(dtype):
    rng = np.random.default_rng(2)
    x = jnp.asarray(_rand(rng, 2, 3, 8, 8), dtype)
    w = jnp.asarray(_rand(rng, 4, 3, 3, 3), dtype)
    b = jnp.asarray(_rand(rng, 4), dtype)
    y = F.conv2d(x, w, b, padding=1)
    assert y.dtype == dtype
    ref = tF.conv2d(torch.tensor(np.asarray(x, np.float32)), torch.tensor(np.asarray(w, np.float32)),
                    torch.tensor(np.asarray(b, np.float32)), padding=1).numpy()
    assert rel_error(np.asarray(y, np.float32), ref) < (1e-2 if dtype != jnp.float32 else RTOL)
    yt = F.conv_transpose2d(x, jnp.swapaxes(w, 0, 1), b, stride=2)
    assert yt.dtype == dtype


def test_unbatched_input_matches_batched():
    rng = np.random.default_rng(3)
    x, w = _rand(rng, 3, 10), _rand(rng, 5, 3, 3)
    np.testing.assert_allclose(F.conv1d(x, w, padding=1), F.conv1d(x[None], w, padding=1)[0], rtol=1e-6)
    _check("conv1d", x, w, padding=1)
    _check("conv_transpose1d", x, np.swapaxes(w, 0, 1).copy(), stride=2)


def test_channels_last_is_a_layout_change_only():
    rng = np.random.default_rng(4)
    x, w = _rand(rng, 2, 3, 7, 9), _rand(rng, 6, 1, 3, 3)
    y = F.conv2d(x, w, stride=2, padding=1, groups=3)
    y_last = F.conv2d(np.moveaxis(x, 1, -1), w, stride=2, padding=1, groups=3, channels_last=True)
    np.testing.assert_allclose(np.moveaxis(np.asarray(y_last), -1, 1), y, rtol=1e-6, atol=1e-6)


def test_jit_grad_vmap():
    rng = np.random.default_rng(5)
    x, w = _rand(rng, 4, 2, 3, 8, 8), _rand(rng, 3, 3, 3, 3)

    def loss(w, x):
        return jnp.sum(F.conv2d(x, w, stride=2, padding=1) ** 2)

    grads = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(w, x)
    for i in range(4):
        tw = torch.tensor(w, requires_grad=True)
        tF.conv2d(torch.tensor(x[i]), tw, stride=2, padding=1).pow(2).sum().backward()
        assert rel_error(grads[i], tw.grad.numpy()) <= RTOL


def test_transposed_conv_is_adjoint_of_conv():
    """<conv(x), y> == <x, conv_transpose(y)> for matching hyperparameters."""
    rng = np.random.default_rng(6)
    kw = dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2)
    x, w = _rand(rng, 1, 4, 12, 13), _rand(rng, 6, 2, 3, 4)
    y = F.conv2d(x, w, **kw)
    out_pad = tuple(int(a) for a in np.array(x.shape[2:]) - np.array(F.conv_transpose2d(y, w, **kw).shape[2:]))
    ct = _rand(rng, *y.shape)
    lhs = np.vdot(np.asarray(y, np.float64), ct)
    rhs = np.vdot(x.astype(np.float64), np.asarray(F.conv_transpose2d(ct, w, output_padding=out_pad, **kw)))
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs)


X2, W2 = np.zeros((1, 4, 8, 8), np.float32), np.zeros((6, 2, 3, 3), np.float32)

BAD_CALLS = [
    ("groups", lambda: F.conv2d(X2, W2, groups=3), ValueError),
    ("groups", lambda: F.conv2d(X2, W2, groups=0), ValueError),
    ("groups", lambda: F.conv2d(X2, W2, groups=2.0), TypeError),
    ("channels", lambda: F.conv2d(X2, W2), ValueError),
    ("weight must be 4D", lambda: F.conv2d(X2, W2[0]), ValueError),
    ("input to be 3D .* or 4D", lambda: F.conv2d(X2[0, 0], W2, groups=2), ValueError),
    ("padding='same' is not supported for strided", lambda: F.conv2d(X2, W2, groups=2, stride=2, padding="same"), ValueError),
    ("padding must be 'same', 'valid'", lambda: F.conv2d(X2, W2, groups=2, padding="full"), ValueError),
    ("padding must be >= 0", lambda: F.conv2d(X2, W2, groups=2, padding=-1), ValueError),
    ("stride must be positive", lambda: F.conv2d(X2, W2, groups=2, stride=0), ValueError),
    ("dilation must be positive", lambda: F.conv2d(X2, W2, groups=2, dilation=(1, 0)), ValueError),
    ("stride must be an int or a tuple of 2", lambda: F.conv2d(X2, W2, groups=2, stride=(1, 1, 1)), ValueError),
    ("smaller than the dilated kernel", lambda: F.conv2d(X2, W2, groups=2, dilation=4), ValueError),
    ("bias must have shape \\(6,\\)", lambda: F.conv2d(X2, W2, np.zeros(5, np.float32), groups=2), ValueError),
    ("input must have a floating dtype", lambda: F.conv2d(X2.astype(np.int32), W2, groups=2), TypeError),
    ("input has complex dtype", lambda: F.conv2d(X2.astype(np.complex64), W2, groups=2), TypeError),
    ("weight dtype float16 differs", lambda: F.conv2d(X2, W2.astype(np.float16), groups=2), TypeError),
    ("impl must be one of", lambda: F.conv2d(X2, W2, groups=2, impl="cudnn"), ValueError),
    ("output_padding=.* must be smaller than either stride", lambda: F.conv_transpose2d(X2, W2[:4], output_padding=1), ValueError),
    ("output_padding=.* must be smaller", lambda: F.conv_transpose2d(X2, W2[:4], stride=2, output_padding=2), ValueError),
    ("input has 4 channels but weight of shape \\(6, 2, 3, 3\\) expects 6", lambda: F.conv_transpose2d(X2, W2), ValueError),
    ("divisible by groups", lambda: F.conv_transpose2d(X2, W2[:4], groups=3), ValueError),
    ("padding must be an int or a tuple", lambda: F.conv_transpose2d(X2, W2[:4], padding="same"), ValueError),
    ("output size .* is too small", lambda: F.conv_transpose2d(X2[..., :1, :1], W2[:4], padding=2), ValueError),
    ("zero-sized spatial dim", lambda: F.conv1d(np.zeros((1, 2, 0), np.float32), np.zeros((1, 2, 1), np.float32)), ValueError),
    ("weight has a zero-sized dim", lambda: F.conv1d(np.zeros((1, 2, 4), np.float32), np.zeros((0, 2, 1), np.float32)), ValueError),
]


@pytest.mark.parametrize("match,call,exc", BAD_CALLS, ids=[m for m, _, _ in BAD_CALLS])
def test_bad_input_is_rejected_with_a_clear_error(match, call, exc):
    with pytest.raises(exc, match=match):
        call()


def test_bad_input_is_rejected_under_jit_before_xla():
    with pytest.raises(ValueError, match="groups"):
        jax.jit(lambda x, w: F.conv2d(x, w, groups=3))(X2, W2)
