"""adaptive_max_pool1d-3d and adaptive_avg_pool1d-3d against PyTorch: parity cases, bins, bad inputs."""

import ast
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as tF

from jaxconv import functional as F
from jaxconv.functional.adaptive import adaptive_bins
from jaxconv.parity.compare import compare
from jaxconv.parity.pooling_cases import ADAPTIVE_AVG_OPS, ADAPTIVE_MAX_OPS, cases

RTOL = 1e-5
PARITY = [c for c in cases(seed=0, n=5) if c.op in ADAPTIVE_MAX_OPS + ADAPTIVE_AVG_OPS]


@pytest.mark.parametrize("case", PARITY, ids=[f"{c.op}-{i}" for i, c in enumerate(PARITY)])
def test_parity(case):
    r = compare(case)
    assert r.forward <= RTOL and r.gradient <= RTOL and not r.exact_mismatch, (
        f"{case.op} {case.desc}: forward {r.forward:.2e}, gradient {r.gradient:.2e}, "
        f"indices differ: {r.exact_mismatch}")


def test_parity_cases_cover_the_options():
    for op in ADAPTIVE_MAX_OPS + ADAPTIVE_AVG_OPS:
        ds = [c.desc for c in PARITY if c.op == op]
        assert any("channels_last=True" in d for d in ds), op
        assert any(c.inputs["input"].ndim == int(op[-2]) + 1 for c in PARITY if c.op == op), op
        if op[-2] != "1":
            assert any("None" in d for d in ds), op
        if op in ADAPTIVE_MAX_OPS:
            assert any("return_indices=True" in d for d in ds), op
    # some case of every op has an output length that does not divide its input length (overlapping bins)
    for op in ADAPTIVE_MAX_OPS + ADAPTIVE_AVG_OPS:
        assert any(_overlapping_bins(c) for c in PARITY if c.op == op), op


def _overlapping_bins(case):
    nd = int(case.op[-2])
    out = ast.literal_eval(re.search(r"output_size=(\d+|\([^)]*\))", case.desc).group(1))
    out = (out,) * nd if isinstance(out, int) else out
    shape = case.inputs["input"].shape
    spatial = shape[-nd - 1:-1] if "channels_last=True" in case.desc else shape[-nd:]
    return any(o is not None and length % o for length, o in zip(spatial, out))


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


@pytest.mark.parametrize("length,out,starts,ends", [
    (10, 4, [0, 2, 5, 7], [3, 5, 8, 10]),
    (5, 5, [0, 1, 2, 3, 4], [1, 2, 3, 4, 5]),
    (3, 5, [0, 0, 1, 1, 2], [1, 2, 2, 3, 3]),   # more outputs than inputs: repeated bins
    (7, 1, [0], [7]),
])
def test_bins(length, out, starts, ends):
    bins = adaptive_bins(length, out)
    assert list(bins.starts) == starts
    assert [s + n for s, n in zip(bins.starts, bins.sizes)] == ends
    x = np.arange(length, dtype=np.float32)[None, None] ** 2
    np.testing.assert_allclose(
        _np(F.adaptive_avg_pool1d(x, out))[0, 0], [x[0, 0, s:e].mean() for s, e in zip(starts, ends)], rtol=1e-6)
    y, i = F.adaptive_max_pool1d(x, out, True)
    np.testing.assert_array_equal(_np(i)[0, 0], np.asarray(ends) - 1)
    ty, ti = tF.adaptive_max_pool1d(torch.tensor(x), out, True)
    np.testing.assert_array_equal(_np(i), ti.numpy())
    np.testing.assert_array_equal(_np(y), ty.numpy())


@pytest.mark.parametrize("output_size", [(None, 3), (4, None), (None, None), 3, (1, 7)])
def test_none_keeps_input_dim(output_size):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)
    j = F.adaptive_avg_pool2d(x, output_size)
    t = tF.adaptive_avg_pool2d(torch.tensor(x), output_size)
    assert j.shape == tuple(t.shape)
    np.testing.assert_allclose(_np(j), t.numpy(), rtol=1e-6, atol=1e-7)
    (jy, ji), (ty, ti) = F.adaptive_max_pool2d(x, output_size, True), tF.adaptive_max_pool2d(
        torch.tensor(x), output_size, True)
    np.testing.assert_array_equal(_np(jy), ty.numpy())
    np.testing.assert_array_equal(_np(ji), ti.numpy())


def test_adaptive_max_nan_and_ties():
    x = np.array([[[2.0, 5.0, np.nan, 5.0, np.nan, 1.0, 5.0]]], np.float32)
    (jy, ji) = F.adaptive_max_pool1d(x, 3, True)
    ty, ti = tF.adaptive_max_pool1d(torch.tensor(x), 3, True)
    # bins [0, 3), [2, 5), [4, 7): last NaN in the first two, the NaN at 4 in the last
    np.testing.assert_array_equal(_np(ji), [[[2, 4, 4]]])
    np.testing.assert_array_equal(_np(ji), ti.numpy())
    assert np.isnan(_np(jy)).all() and np.isnan(ty.numpy()).all()
    x = np.array([[[5.0, 1.0, 5.0, 5.0, 0.0]]], np.float32)
    (jy, ji), (ty, ti) = F.adaptive_max_pool1d(x, 2, True), tF.adaptive_max_pool1d(torch.tensor(x), 2, True)
    np.testing.assert_array_equal(_np(ji), [[[0, 2]]])
    np.testing.assert_array_equal(_np(ji), ti.numpy())


def test_overlapping_bins_gradient_accumulates():
    # L=5, out=3: bins [0,2), [1,4), [3,5); x[1] is the max of the first two bins
    x = np.array([[[0.0, 9.0, 1.0, 2.0, 3.0]]], np.float32)
    ct = np.array([[[1.0, 10.0, 100.0]]], np.float32)
    g_max = jax.grad(lambda v: jnp.sum(F.adaptive_max_pool1d(v, 3) * ct))(jnp.asarray(x))
    g_avg = jax.grad(lambda v: jnp.sum(F.adaptive_avg_pool1d(v, 3) * ct))(jnp.asarray(x))
    np.testing.assert_array_equal(_np(g_max), [[[0.0, 11.0, 0.0, 0.0, 100.0]]])
    np.testing.assert_allclose(_np(g_avg), [[[0.5, 0.5 + 10 / 3, 10 / 3, 10 / 3 + 50, 50]]], rtol=1e-6)
    for name, g in (("adaptive_max_pool1d", g_max), ("adaptive_avg_pool1d", g_avg)):
        tx = torch.tensor(x, requires_grad=True)
        getattr(tF, name)(tx, 3).backward(torch.tensor(ct))
        np.testing.assert_allclose(_np(g), tx.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["adaptive_max_pool3d", "adaptive_avg_pool3d"])
def test_channels_last_and_unbatched(name):
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 4, 6)).astype(np.float32)
    fn = getattr(F, name)
    want = _np(fn(x, (2, None, 4)))
    x_last = np.moveaxis(x, 1, -1)
    np.testing.assert_array_equal(_np(fn(x_last, (2, None, 4), channels_last=True)), np.moveaxis(want, 1, -1))
    np.testing.assert_array_equal(_np(fn(x[1], (2, None, 4))), want[1])
    np.testing.assert_array_equal(_np(fn(x_last[1], (2, None, 4), channels_last=True)),
                                  np.moveaxis(want[1], 0, -1))
    np.testing.assert_allclose(want, getattr(tF, name)(torch.tensor(x), (2, None, 4)).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["adaptive_max_pool1d", "adaptive_avg_pool1d", "adaptive_max_pool2d",
                                  "adaptive_avg_pool2d", "adaptive_max_pool3d", "adaptive_avg_pool3d"])
@pytest.mark.parametrize("batched", [True, False])
def test_zero_output_size_gives_empty_output_as_torch(name, batched):
    """PyTorch returns an empty result for a 0 in output_size (it used to be rejected here)."""
    nd = int(name[-2])
    x = np.random.default_rng(0).standard_normal((2, 3, *(4,) * nd)[0 if batched else 1:]).astype(np.float32)
    for output_size in [0, (0, *(2,) * (nd - 1))]:
        want = getattr(tF, name)(torch.tensor(x), output_size)
        got = getattr(F, name)(x, output_size)
        assert got.shape == tuple(want.shape) and got.dtype == x.dtype
        if name.startswith("adaptive_max"):
            y, i = getattr(F, name)(x, output_size, True)
            assert y.shape == i.shape == tuple(want.shape)
        x_last = np.moveaxis(x, -nd - 1, -1)
        assert getattr(F, name)(x_last, output_size, channels_last=True).shape == np.moveaxis(
            want.numpy(), -nd - 1, -1).shape
    g = jax.grad(lambda v: jnp.sum(getattr(F, name)(v, 0)))(jnp.asarray(x))
    np.testing.assert_array_equal(_np(g), np.zeros_like(x))


@pytest.mark.parametrize("name", ["adaptive_max_pool1d", "adaptive_avg_pool1d", "adaptive_max_pool2d",
                                  "adaptive_avg_pool2d", "adaptive_max_pool3d", "adaptive_avg_pool3d"])
@pytest.mark.parametrize("shape", [(0, 5), (2, 0, 5)], ids=["unbatched", "batched"])
def test_empty_channels_follow_torch(name, shape):
    """PyTorch allows C=0 in an unbatched input for every adaptive pool, in a batched one only
    for adaptive_avg_pool1d/2d."""
    nd = int(name[-2])
    x = np.zeros(shape + (5,) * (nd - 1), np.float32)
    try:
        want = tuple(getattr(tF, name)(torch.tensor(x), 2).shape)
    except RuntimeError:
        with pytest.raises(ValueError, match="input"):
            getattr(F, name)(x, 2)
    else:
        assert getattr(F, name)(x, 2).shape == want
        assert getattr(F, name)(np.moveaxis(x, -nd - 1, -1), 2, channels_last=True).shape == np.moveaxis(
            np.zeros(want), -nd - 1, -1).shape


def test_empty_batch_and_avg_empty_channels():
    x = np.zeros((0, 2, 5, 5), np.float32)
    assert F.adaptive_max_pool2d(x, 2).shape == tuple(tF.adaptive_max_pool2d(torch.tensor(x), 2).shape)
    x = np.zeros((1, 0, 5, 5), np.float32)
    assert F.adaptive_avg_pool2d(x, 2).shape == tuple(tF.adaptive_avg_pool2d(torch.tensor(x), 2).shape)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_matches_torch(dtype):
    x32 = np.random.default_rng(2).standard_normal((2, 3, 9, 7)).astype(np.float32)
    xt = torch.tensor(x32).to(getattr(torch, dtype))
    xj = jnp.asarray(x32).astype(dtype)
    y, i = F.adaptive_max_pool2d(xj, (4, 3), True)
    ty, ti = tF.adaptive_max_pool2d(xt, (4, 3), True)
    assert y.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(y, np.float32), ty.float().numpy())
    np.testing.assert_array_equal(_np(i), ti.numpy())
    a = F.adaptive_avg_pool2d(xj, (4, 3))
    assert a.dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(np.asarray(a, np.float32), tF.adaptive_avg_pool2d(xt, (4, 3)).float().numpy(),
                               rtol=2 ** -7 if dtype == "bfloat16" else 2 ** -10)


def test_jit_vmap_grad():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 2, 7, 5)).astype(np.float32)
    ct = rng.standard_normal((3, 2, 2, 3, 5)).astype(np.float32)

    def loss(v, c):
        y, i = F.adaptive_max_pool2d(v, (3, None), True)
        return jnp.sum(y * c) + jnp.sum(F.adaptive_avg_pool2d(v, (3, None)) * c), i

    grads, idx = jax.jit(jax.vmap(jax.grad(loss, has_aux=True)))(x, ct)
    tx = torch.tensor(x.reshape(6, 2, 7, 5), requires_grad=True)
    tc = torch.tensor(ct.reshape(6, 2, 3, 5))
    ty, ti = tF.adaptive_max_pool2d(tx, (3, None), True)
    ((ty * tc).sum() + (tF.adaptive_avg_pool2d(tx, (3, None)) * tc).sum()).backward()
    np.testing.assert_array_equal(_np(idx).reshape(6, 2, 3, 5), ti.numpy())
    np.testing.assert_allclose(_np(grads).reshape(tx.shape), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


X2 = np.zeros((1, 2, 6, 6), np.float32)


def _torch(name):
    fn = getattr(tF, name)
    return lambda x, *a, **k: fn(torch.from_numpy(np.ascontiguousarray(x)), *a, **k)


@pytest.mark.parametrize("name,x,args,kw,error,match,torch_rejects", [
    ("adaptive_avg_pool2d", X2, (-1,), {}, ValueError, "output_size", True),
    ("adaptive_max_pool2d", X2, ((2, -1),), {}, ValueError, "output_size", True),
    ("adaptive_avg_pool2d", X2, ((2, 3, 4),), {}, ValueError, "output_size", True),
    ("adaptive_max_pool2d", X2, ((3,),), {}, ValueError, "output_size", True),
    ("adaptive_max_pool1d", X2[0], ((2, 2),), {}, ValueError, "output_size", True),
    ("adaptive_avg_pool1d", X2[0], ((None,),), {}, TypeError, "output_size", True),
    ("adaptive_max_pool1d", X2[0], (None,), {}, TypeError, "output_size", True),
    ("adaptive_avg_pool2d", X2, (None,), {}, TypeError, "output_size", True),
    ("adaptive_avg_pool2d", X2, (2.0,), {}, TypeError, "output_size", True),
    ("adaptive_avg_pool2d", X2[0, 0], (2,), {}, ValueError, "input", True),
    ("adaptive_max_pool3d", X2[0], (2,), {}, ValueError, "input", True),
    ("adaptive_max_pool2d", np.zeros((1, 2, 0, 3), np.float32), (2,), {}, ValueError, "input", True),
    ("adaptive_avg_pool2d", np.zeros((1, 2, 0, 3), np.float32), (2,), {}, ValueError, "input", True),
    ("adaptive_max_pool2d", np.zeros((1, 0, 3, 3), np.float32), (2,), {}, ValueError, "input", True),
    ("adaptive_avg_pool2d", X2.astype(np.int64), (2,), {}, TypeError, "input", True),
    ("adaptive_max_pool2d", X2.astype(np.complex64), (2,), {}, TypeError, "input", True),
    ("adaptive_max_pool2d", X2, (2,), {"return_indices": "yes"}, TypeError, "return_indices", False),
    ("adaptive_avg_pool2d", X2, (2,), {"channels_last": 1}, TypeError, "channels_last", False),
])
def test_bad_arguments(name, x, args, kw, error, match, torch_rejects):
    with pytest.raises(error, match=match):
        getattr(F, name)(x, *args, **kw)
    if torch_rejects:
        with pytest.raises((RuntimeError, TypeError, ValueError, NotImplementedError)):
            _torch(name)(x, *args, **kw)
