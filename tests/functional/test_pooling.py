"""max_pool1d-3d and avg_pool1d-3d against PyTorch: random parity cases, corners, bad inputs, transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as tF

from jaxconv import functional as F
from jaxconv.functional.pooling import pool_output_size
from jaxconv.parity.compare import compare
from jaxconv.parity.pooling_cases import AVG_OPS, MAX_OPS, cases

RTOL = 1e-5
PARITY = [c for c in cases(seed=0, n=5) if c.op in MAX_OPS + AVG_OPS]


@pytest.mark.parametrize("case", PARITY, ids=[f"{c.op}-{i}" for i, c in enumerate(PARITY)])
def test_parity(case):
    r = compare(case)
    assert r.forward <= RTOL and r.gradient <= RTOL and not r.exact_mismatch, (
        f"{case.op} {case.desc}: forward {r.forward:.2e}, gradient {r.gradient:.2e}, "
        f"indices differ: {r.exact_mismatch}")


def test_parity_cases_cover_the_options():
    for op in MAX_OPS + AVG_OPS:
        ds = [c.desc for c in PARITY if c.op == op]
        assert any(c.inputs["input"].ndim == int(op[-2]) + 1 for c in PARITY if c.op == op), op
        assert any("ceil_mode=True" in d for d in ds), op
        assert any("channels_last=True" in d for d in ds), op
        assert any("stride" not in d for d in ds), op
        if op in MAX_OPS:
            assert any("return_indices=True" in d for d in ds), op
        else:
            assert any("ceil_mode=True" in d and "count_include_pad=False" in d for d in ds), op
            if op != "avg_pool1d":
                assert any("divisor_override" in d for d in ds), op


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _both(name, x, *args, **kw):
    """(jaxconv result, torch result) of the same call, as numpy (tuples for return_indices)."""
    j = getattr(F, name)(jnp.asarray(x), *args, **kw)
    t = getattr(tF, name)(torch.tensor(x), *args, **kw)
    if isinstance(t, tuple):
        return tuple(_np(v) for v in j), tuple(_np(v) for v in t)
    return _np(j), _np(t)


# ---- output length (ATen pooling_output_shape) ---------------------------------------------------

@pytest.mark.parametrize("length,k,s,p,d,ceil,expected", [
    (5, 2, 2, 0, 1, False, 2),
    (5, 2, 2, 0, 1, True, 3),    # ceil adds a window over the last element
    (5, 2, 2, 1, 1, True, 3),    # ceil would add a 4th window starting at 6 = L + p: dropped
    (6, 3, 2, 1, 1, True, 4),    # last window [5, 8) runs past the right pad
    (4, 2, 3, 0, 1, True, 2),
    (7, 3, 2, 1, 2, False, 3),
    (1, 3, 1, 1, 1, False, 1),
])
def test_output_length(length, k, s, p, d, ceil, expected):
    assert pool_output_size(length, k, s, p, d, ceil) == expected
    x = np.zeros((1, 1, length), np.float32)
    assert F.max_pool1d(x, k, s, p, d, ceil).shape == tF.max_pool1d(torch.tensor(x), k, s, p, d, ceil).shape
    assert F.max_pool1d(x, k, s, p, d, ceil).shape == (1, 1, expected)


# ---- avg_pool divisors ---------------------------------------------------------------------------

@pytest.mark.parametrize("length,k,s,p,count_include_pad,expected", [
    # windows [-1,2) [1,4) [3,6) [5,8)->[5,7): sizes 3,3,3,2 counting pad, real counts 2,3,3,1
    (6, 3, 2, 1, True, [2 / 3, 1, 1, 1 / 2]),
    (6, 3, 2, 1, False, [1, 1, 1, 1]),
    (5, 3, 2, 1, True, [2 / 3, 1, 2 / 3]),
    (4, 2, 3, 0, True, [1, 1]),  # ceil window [3, 5) clipped to [3, 4) (L + p = 4)
])
def test_avg_pool_ceil_divisor(length, k, s, p, count_include_pad, expected):
    x = np.ones((1, 1, length), np.float32)
    j, t = _both("avg_pool1d", x, k, s, p, True, count_include_pad)
    np.testing.assert_allclose(j[0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(j, t, rtol=1e-6)


@pytest.mark.parametrize("divisor", [1, 3, -2])
def test_avg_pool_divisor_override(divisor):
    x = np.arange(2 * 5 * 4, dtype=np.float32).reshape(1, 2, 5, 4)
    j, t = _both("avg_pool2d", x, 2, 2, 1, True, False, divisor)
    np.testing.assert_allclose(j, t, rtol=1e-6)
    # window (0, 0) covers x[0, 0, 0, 0] only (the rest is padding)
    assert j[0, 0, 0, 0] == pytest.approx(x[0, 0, 0, 0] / divisor)
    assert j[0, 1, 1, 1] == pytest.approx(x[0, 1, 1:3, 1:3].sum() / divisor)


# ---- max_pool argmax rule --------------------------------------------------------------------------

def test_max_pool_nan_wins_last_nan_index():
    x = np.array([[[1.0, np.nan, 3.0, np.nan, 2.0, 0.0]]], np.float32)
    (jy, ji), (ty, ti) = _both("max_pool1d", x, 5, 1, 0, 1, False, True)
    assert np.isnan(jy).all() and np.isnan(ty).all()
    np.testing.assert_array_equal(ji, [[[3, 3]]])
    np.testing.assert_array_equal(ji, ti)


def test_max_pool_nan_gradient_goes_to_that_nan():
    x = np.array([[[1.0, np.nan, 3.0, 2.0]]], np.float32)
    ct = np.array([[[5.0, 7.0]]], np.float32)
    jg = jax.grad(lambda v: jnp.sum(F.max_pool1d(v, 2) * ct))(jnp.asarray(x))
    tx = torch.tensor(x, requires_grad=True)
    tF.max_pool1d(tx, 2).backward(torch.tensor(ct))
    np.testing.assert_array_equal(_np(jg), [[[0.0, 5.0, 7.0, 0.0]]])
    np.testing.assert_array_equal(_np(jg), tx.grad.numpy())


def test_max_pool_ties_pick_first_and_get_the_whole_gradient():
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]], [[2.0, 2.0], [2.0, 2.0]]]], np.float32)
    (jy, ji), (ty, ti) = _both("max_pool2d", x, 2, return_indices=True)
    np.testing.assert_array_equal(ji, [[[[1]], [[0]]]])
    np.testing.assert_array_equal(ji, ti)
    jg = jax.grad(lambda v: jnp.sum(F.max_pool2d(v, 2)))(jnp.asarray(x))
    tx = torch.tensor(x, requires_grad=True)
    tF.max_pool2d(tx, 2).sum().backward()
    np.testing.assert_array_equal(_np(jg), tx.grad.numpy())
    assert _np(jg).sum() == 2.0


def test_max_pool_all_minus_inf_window_points_at_first_real_element():
    x = np.full((1, 1, 5), -np.inf, np.float32)
    (jy, ji), (ty, ti) = _both("max_pool1d", x, 3, 2, 1, 1, False, True)
    np.testing.assert_array_equal(ji, [[[0, 1, 3]]])
    np.testing.assert_array_equal(ji, ti)
    assert np.all(jy == -np.inf)


def test_max_pool_dilation_padding_by_hand():
    x = np.arange(7, dtype=np.float32)[None, None] * np.array([1, -1, 1, -1, 1, -1, 1], np.float32)
    # x = [0, -1, 2, -3, 4, -5, 6]; windows i*2 - 1 + {0, 2, 4}: {-1, 1, 3}, {1, 3, 5}, {3, 5, 7}
    (jy, ji), (ty, ti) = _both("max_pool1d", x, 3, 2, 1, 2, True, True)
    np.testing.assert_array_equal(ji, ti)
    np.testing.assert_array_equal(jy, ty)
    np.testing.assert_array_equal(ji[0, 0], [1, 1, 3])
    np.testing.assert_array_equal(jy[0, 0], [-1, -1, -3])


def test_max_pool3d_flat_indices():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 5, 4, 6)).astype(np.float32)
    (jy, ji), (ty, ti) = _both("max_pool3d", x, (2, 3, 2), (2, 1, 3), (1, 1, 0), (2, 1, 1), True, True)
    np.testing.assert_array_equal(ji, ti)
    np.testing.assert_array_equal(jy, ty)
    flat = x.reshape(2, 2, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, ji.reshape(2, 2, -1), 2).reshape(jy.shape), jy)


def test_indices_are_int32_or_int64_with_x64():
    x = np.random.default_rng(0).standard_normal((1, 2, 6)).astype(np.float32)
    assert F.max_pool1d(x, 2, return_indices=True)[1].dtype == jnp.int32
    with jax.enable_x64(True):
        y, i = F.max_pool1d(x, 2, return_indices=True)
    assert i.dtype == jnp.int64 and y.dtype == jnp.float32
    np.testing.assert_array_equal(_np(i), tF.max_pool1d(torch.tensor(x), 2, return_indices=True)[1].numpy())


# ---- layouts, dtypes -----------------------------------------------------------------------------

@pytest.mark.parametrize("name,args", [
    ("max_pool2d", (3, 2, 1, 2, True, True)),
    ("avg_pool2d", (3, 2, 1, True, False)),
    ("avg_pool3d", (2, 1, 1)),
])
def test_channels_last_and_unbatched(name, args):
    rng = np.random.default_rng(1)
    nd = int(name[-2])
    x = rng.standard_normal((2, 3, *(7,) * nd)).astype(np.float32)
    fn = getattr(F, name)
    want = fn(x, *args)
    want = want if isinstance(want, tuple) else (want,)
    x_last = np.moveaxis(x, 1, -1)
    got = fn(x_last, *args, channels_last=True)
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(_np(g), np.moveaxis(_np(w), 1, -1))
    single = fn(x[1], *args)
    single = single if isinstance(single, tuple) else (single,)
    for s, w in zip(single, want):
        np.testing.assert_array_equal(_np(s), _np(w)[1])
    single_last = fn(x_last[1], *args, channels_last=True)
    single_last = single_last if isinstance(single_last, tuple) else (single_last,)
    for s, w in zip(single_last, want):
        np.testing.assert_array_equal(_np(s), np.moveaxis(_np(w)[1], 0, -1))


def test_empty_batch():
    x = np.zeros((0, 2, 6, 6), np.float32)
    assert F.max_pool2d(x, 2).shape == tuple(tF.max_pool2d(torch.tensor(x), 2).shape) == (0, 2, 3, 3)
    assert F.avg_pool2d(x, 3, 2, 1).shape == tuple(tF.avg_pool2d(torch.tensor(x), 3, 2, 1).shape)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_matches_torch(dtype):
    rng = np.random.default_rng(2)
    x32 = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    tdt = getattr(torch, dtype)
    xt = torch.tensor(x32).to(tdt)
    xj = jnp.asarray(x32).astype(dtype)
    y, i = F.max_pool2d(xj, 3, 2, 1, return_indices=True)
    ty, ti = tF.max_pool2d(xt, 3, 2, 1, return_indices=True)
    assert y.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(y, np.float32), ty.float().numpy())
    np.testing.assert_array_equal(_np(i), ti.numpy())
    for kw in (dict(count_include_pad=True), dict(count_include_pad=False, ceil_mode=True)):
        a = F.avg_pool2d(xj, 3, 2, 1, **kw)
        assert a.dtype == jnp.dtype(dtype)
        ta = tF.avg_pool2d(xt, 3, 2, 1, **kw).float().numpy()
        # both sum in float32 and round once: at most one unit in the last place apart
        np.testing.assert_allclose(np.asarray(a, np.float32), ta, rtol=2 ** -7 if dtype == "bfloat16" else 2 ** -10)


# ---- transforms ----------------------------------------------------------------------------------

def test_jit_vmap_grad():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 2, 7, 5)).astype(np.float32)  # a vmapped axis, then (N, C, H, W)
    ct = rng.standard_normal((3, 2, 2, 4, 3)).astype(np.float32)

    def loss(v, c):
        y, i = F.max_pool2d(v, 3, 2, 1, 1, True, True)
        return jnp.sum(y * c) + jnp.sum(F.avg_pool2d(v, 3, 2, 1, True, False) * c), i

    grads, idx = jax.jit(jax.vmap(jax.grad(loss, has_aux=True)))(x, ct)
    tx = torch.tensor(x.reshape(6, 2, 7, 5), requires_grad=True)
    tc = torch.tensor(ct.reshape(6, 2, 4, 3))
    ty, ti = tF.max_pool2d(tx, 3, 2, 1, 1, True, True)
    ((ty * tc).sum() + (tF.avg_pool2d(tx, 3, 2, 1, True, False) * tc).sum()).backward()
    np.testing.assert_array_equal(_np(idx).reshape(6, 2, 4, 3), ti.numpy())
    np.testing.assert_allclose(_np(grads).reshape(tx.shape), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


# ---- bad inputs ----------------------------------------------------------------------------------

class _TorchNamespace:
    """torch.nn.functional taking numpy inputs, to check that PyTorch rejects the same calls."""

    def __getattr__(self, name):
        fn = getattr(tF, name)

        def call(x, *args, **kw):
            return fn(torch.from_numpy(np.ascontiguousarray(x)), *args, **kw)

        return call


TORCH_F = _TorchNamespace()
X2 = np.zeros((1, 2, 6, 6), np.float32)
INTEGER_INPUTS = "torch pools integer inputs; jaxconv takes floating inputs only"
PADDING_ONLY_WINDOW = "torch returns -inf and an index outside the input for a window of only padding"


@pytest.mark.parametrize("call,error,match,torch_deviation", [
    (lambda m: m.max_pool2d(X2, 0), ValueError, "kernel_size", None),
    (lambda m: m.max_pool2d(X2, (2, 2, 2)), ValueError, "kernel_size", None),
    (lambda m: m.max_pool2d(X2, 2.0), TypeError, "kernel_size", None),
    (lambda m: m.max_pool2d(X2, 2, 0), ValueError, "stride", None),
    (lambda m: m.avg_pool2d(X2, 2, -1), ValueError, "stride", None),
    (lambda m: m.max_pool2d(X2, 2, 1, -1), ValueError, "padding", None),
    (lambda m: m.max_pool2d(X2, 3, 1, 2), ValueError, "padding", None),
    (lambda m: m.max_pool2d(X2, 3, 1, 2, 2), ValueError, "padding", None),
    (lambda m: m.max_pool1d(X2[0], 3, 1, 2, 2), ValueError, "padding", None),
    (lambda m: m.avg_pool2d(X2, (2, 3), 1, (1, 2)), ValueError, "padding", None),
    (lambda m: m.max_pool2d(X2, 2, 1, 0, 0), ValueError, "dilation", None),
    (lambda m: m.max_pool1d(X2[0, :, 0, :2], 2, 2, 1, 3), ValueError, "dilation", PADDING_ONLY_WINDOW),
    (lambda m: m.max_pool2d(X2, 7), ValueError, "kernel_size", None),
    (lambda m: m.max_pool1d(X2[0], 4, 1, 0, 2), ValueError, "kernel_size", None),
    (lambda m: m.avg_pool1d(X2[0], 7), ValueError, "kernel_size", None),
    (lambda m: m.avg_pool3d(np.zeros((1, 1, 2, 6, 6), np.float32), 3, 1, 1), ValueError, "kernel_size", None),
    (lambda m: m.max_pool2d(X2[0, 0], 2), ValueError, "input", None),
    (lambda m: m.avg_pool1d(X2, 2), ValueError, "input", None),
    (lambda m: m.max_pool2d(np.zeros((1, 2, 0, 6), np.float32), 1), ValueError, "input", None),
    (lambda m: m.max_pool2d(np.zeros((1, 0, 6, 6), np.float32), 1), ValueError, "input", None),
    (lambda m: m.max_pool2d(X2.astype(np.int32), 2), TypeError, "input", INTEGER_INPUTS),
    (lambda m: m.avg_pool2d(X2.astype(np.int64), 2), TypeError, "input", INTEGER_INPUTS),
    (lambda m: m.max_pool2d(X2.astype(np.complex64), 2), TypeError, "input", None),
    (lambda m: m.avg_pool2d(X2, 2, divisor_override=0), ValueError, "divisor_override", None),
    (lambda m: m.avg_pool2d(X2, 2, divisor_override=2.5), TypeError, "divisor_override", None),
    (lambda m: m.max_pool2d(X2, 2, ceil_mode=1), TypeError, "ceil_mode", None),
    (lambda m: m.avg_pool2d(X2, 2, count_include_pad=1), TypeError, "count_include_pad", None),
])
def test_bad_arguments(call, error, match, torch_deviation):
    with pytest.raises(error, match=match):
        call(F)
    if torch_deviation is None:
        with pytest.raises((RuntimeError, TypeError, ValueError, NotImplementedError)):
            call(TORCH_F)
    else:
        call(TORCH_F)


def test_bad_flags():
    with pytest.raises(TypeError, match="return_indices"):
        F.max_pool2d(X2, 2, return_indices="yes")
    with pytest.raises(TypeError, match="channels_last"):
        F.avg_pool2d(X2, 2, channels_last=None)
