"""``impl="im2col"`` convolutions: parity with PyTorch, agreement with ``impl="lax"``, structure."""

from __future__ import annotations

import dataclasses

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import functional as F
from jaxconv.functional import _im2col
from jaxconv.parity import conv_cases
from jaxconv.parity.compare import compare, rel_error

pytest.importorskip("torch")

RTOL = 1e-5
CASES = conv_cases.cases(seed=0, n=3, impl="im2col")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.op}: {c.desc}" for c in CASES])
def test_parity_with_torch(case):
    result = compare(dataclasses.replace(case, jax_fn=jax.jit(case.jax_fn)))
    assert result.forward <= RTOL, (case.desc, result.forward)
    assert result.gradient <= RTOL, (case.desc, result.gradient)


POINTWISE = [conv_cases.conv_case(np.random.default_rng(60 + i), 1 + i % 3, impl, transposed=False, max_kernel=1)
             for i in range(6) for impl in ("im2col", "auto")]


@pytest.mark.parametrize("case", POINTWISE, ids=[f"{c.op}-{c.impl}: {c.desc}" for c in POINTWISE])
def test_pointwise_gemm_matches_torch(case):
    """1x1 convs, which im2col computes as one GEMM per sample (and "auto" picks it):
    groups, stride, padding, dilation, layouts, 1D-3D."""
    result = compare(case)
    assert result.forward <= RTOL, (case.desc, result.forward)
    assert result.gradient <= RTOL, (case.desc, result.gradient)


def _value_and_grads(case):
    """Forward output and the gradients of <output, cotangent> w.r.t. every input, jitted."""
    arrays = [jnp.asarray(a) for a in case.inputs.values()]
    out_shape = jax.eval_shape(case.jax_fn, *arrays)
    ct = jnp.asarray(np.random.default_rng(0).standard_normal(out_shape.shape), out_shape.dtype)

    @jax.jit
    def run(*xs):
        y, vjp = jax.vjp(case.jax_fn, *xs)
        return y, vjp(ct)

    return run(*arrays)


SAME_CALLS = list(zip(conv_cases.cases(seed=1, n=2, impl="im2col"),
                      conv_cases.cases(seed=1, n=2, impl="lax")))


@pytest.mark.parametrize("im2col_case, lax_case", SAME_CALLS,
                         ids=[f"{a.op}: {a.desc}" for a, _ in SAME_CALLS])
def test_equals_lax_impl(im2col_case, lax_case):
    assert im2col_case.desc == lax_case.desc and im2col_case.impl == "im2col" and lax_case.impl == "lax"
    y, grads = _value_and_grads(im2col_case)
    y_ref, grads_ref = _value_and_grads(lax_case)
    assert rel_error(y, y_ref) <= RTOL
    assert len(grads) == len(grads_ref) == len(im2col_case.inputs)
    for g, g_ref in zip(grads, grads_ref):
        assert rel_error(g, g_ref) <= RTOL


def _primitives(fn, *args):
    jaxpr = jax.make_jaxpr(fn)(*args)

    def walk(j):
        for eqn in j.eqns:
            yield eqn.primitive.name
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                yield from walk(sub)

    return set(walk(jaxpr.jaxpr))


def test_uses_no_lax_convolution():
    """Forward and backward of both ops are slices/pads + dot_general, never a lax conv."""
    x = jnp.ones((2, 4, 6, 5))
    calls = [
        (lambda a, b: F.conv2d(a, b, stride=2, padding=1, dilation=(1, 2), groups=2, impl="im2col"),
         jnp.ones((6, 2, 3, 2))),
        (lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1, output_padding=1, groups=2,
                                         impl="im2col"),
         jnp.ones((4, 3, 3, 2))),
    ]
    for fn, w in calls:
        prims = _primitives(jax.grad(lambda a, b, fn=fn: fn(a, b).sum(), argnums=(0, 1)), x, w)
        assert "dot_general" in prims and "slice" in prims and "pad" in prims, prims
        assert not any("conv" in p for p in prims), prims
    # the check itself can fail: the lax impl is a conv
    lax_prims = _primitives(lambda a, b: F.conv2d(a, b, impl="lax"), x, jnp.ones((3, 4, 2, 2)))
    assert "jaxconv_conv_general_dilated" in lax_prims  # `_canonical.conv_p`


def test_channels_last_matches_channels_first():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 5, 6, 3)).astype(np.float32)     # NCDHW
    w = rng.standard_normal((6, 2, 2, 3, 2)).astype(np.float32)
    wt = rng.standard_normal((4, 3, 2, 3, 2)).astype(np.float32)
    kw = dict(stride=(1, 2, 2), padding=(1, 0, 1), dilation=(2, 1, 1), groups=2, impl="im2col")
    x_last = np.moveaxis(x, 1, -1)
    y = F.conv3d(x, w, **kw)
    y_last = F.conv3d(x_last, w, channels_last=True, **kw)
    np.testing.assert_allclose(np.moveaxis(np.asarray(y_last), -1, 1), y, rtol=1e-5, atol=1e-5)
    yt = F.conv_transpose3d(x, wt, output_padding=(1, 1, 0), **kw)
    yt_last = F.conv_transpose3d(x_last, wt, output_padding=(1, 1, 0), channels_last=True, **kw)
    np.testing.assert_allclose(np.moveaxis(np.asarray(yt_last), -1, 1), yt, rtol=1e-5, atol=1e-5)


def test_vmap_over_an_extra_batch_axis():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 4, 9)).astype(np.float32)   # vmapped axis, then (N, C, L)
    w = rng.standard_normal((4, 2, 3)).astype(np.float32)
    f = jax.jit(jax.vmap(lambda v: F.conv_transpose1d(v, w, stride=3, padding=1, output_padding=2,
                                                      impl="im2col")))
    want = np.stack([F.conv_transpose1d(v, w, stride=3, padding=1, output_padding=2, impl="lax") for v in x])
    np.testing.assert_allclose(f(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", [((1, 2), (0, 0)), ((2, -1), (1, -2))])
def test_col2im_is_adjoint_of_patches(padding):
    """<patches(x), c> == <x, col2im(c)>, including negative pads (output_padding's zeros)."""
    rng = np.random.default_rng(7)
    kernel, stride, dilation = (3, 2), (2, 3), (1, 2)
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    cols = _im2col.patches(x, kernel, stride, dilation, padding)
    assert cols.shape[:3] == (2, 3, 6)
    c = rng.standard_normal(cols.shape).astype(np.float32)
    back = _im2col.col2im(c, (7, 8), kernel, stride, dilation, padding)
    assert back.shape == x.shape
    lhs = np.sum(np.asarray(cols, np.float64) * c)
    rhs = np.sum(x.astype(np.float64) * np.asarray(back, np.float64))
    assert abs(lhs - rhs) <= 1e-5 * (abs(lhs) + 1)
