"""Custom-VJP plans (``_vjp``) against PyTorch: forward, gradients, Hessian-vector products, max pool."""

import functools
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxconv import functional as F
from jaxconv.functional import _vjp
from jaxconv.parity import conv_cases
from jaxconv.parity.compare import Case, compare, rel_error

RTOL = 1e-5
# "auto" plus explicit plans that between them use every rule of _vjp.
PLANS = ["eigen", "eigen/eigen/eigen", "eigen/lax/lax", "lax/autodiff/gemm"]
CASES = conv_cases.cases(seed=11, n=2, impl="auto") + [
    c for i, plan in enumerate(PLANS) for c in conv_cases.cases(seed=20 + i, n=1, impl=plan)
    if not plan.startswith("eigen") or c.op.endswith("2d")]  # "eigen" only rewrites 2D convs


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.impl}-{c.desc}")
def test_plans_match_torch(case):
    result = compare(case)
    assert result.forward <= RTOL, result
    assert result.gradient <= RTOL, result


# (op, x shape, w shape, kwargs): 2D cases where "auto" picks custom rules on CPU.
LAYERS = [
    ("conv2d", (2, 9, 7, 6), (4, 9, 3, 2), dict(padding=1)),
    ("conv2d", (2, 16, 7, 8), (6, 8, 3, 3), dict(stride=2, padding=(1, 0), groups=2, dilation=(1, 2))),
    ("conv_transpose2d", (2, 8, 5, 4), (8, 3, 3, 2), dict(stride=2, padding=1, output_padding=1)),
    ("conv1d", (2, 4, 9), (6, 2, 3), dict(groups=2, stride=2)),
    ("conv2d", (2, 3, 9, 9), (5, 3, 3, 3), {}),              # shift forward and dx, eigen dw
    ("conv2d", (2, 1, 9, 9), (20, 1, 3, 3), {}),             # shift forward, toeplitz dx, eigen dw
    ("conv2d", (2, 6, 10, 10), (4, 6, 3, 3), dict(padding=1)),  # lax forward, toeplitz dx
    ("conv2d", (2, 4, 7, 7), (8, 1, 3, 3), dict(padding=1, groups=4, stride=2)),  # depthwise: shift rules
    ("conv1d", (2, 2, 13), (5, 2, 4), dict(padding=2, dilation=2)),  # shift forward and dx, lax dw
    ("conv_transpose2d", (2, 3, 6, 5), (3, 4, 3, 3), dict(padding=1, dilation=(1, 2))),  # stride 1: eigen dw
]


@pytest.mark.parametrize("op,xs,ws,kw", LAYERS, ids=lambda v: str(v))
def test_hessian_vector_product_matches_lax_and_torch(op, xs, ws, kw):
    """grad-of-grad through the custom rules == XLA autodiff of impl="lax" == torch double backward."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs, dtype=np.float32), rng.standard_normal(ws, dtype=np.float32)
    vx, vw = rng.standard_normal(xs, dtype=np.float32), rng.standard_normal(ws, dtype=np.float32)
    fn = getattr(F, op)

    def hvp(impl):
        def loss(x_, w_):
            return jnp.sum(jnp.tanh(fn(x_, w_, **kw, impl=impl)))

        def g_dot_v(x_, w_):
            gx, gw = jax.grad(loss, argnums=(0, 1))(x_, w_)
            return jnp.vdot(gx, vx) + jnp.vdot(gw, vw)

        return jax.jit(jax.grad(g_dot_v, argnums=(0, 1)))(x, w)

    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    gx, gw = torch.autograd.grad(torch.tanh(getattr(torch.nn.functional, op)(tx, tw, **kw)).sum(),
                                 (tx, tw), create_graph=True)
    t_hx, t_hw = torch.autograd.grad((gx * torch.tensor(vx)).sum() + (gw * torch.tensor(vw)).sum(), (tx, tw))
    ref = hvp("lax")
    for impl in ["auto"]:  # custom rules on all layers (eigen dx/dw, gemm dw, toeplitz)
        got = hvp(impl)
        for a, b, t in zip(got, ref, (t_hx, t_hw)):
            assert rel_error(a, b) <= RTOL, impl
            assert rel_error(a, t.numpy()) <= RTOL, impl


def _ungrouped_cases(seed, transposed, impl, count):
    """``count`` random ``groups=1`` calls per dimensionality (``conv_cases``' generator)."""
    rng = np.random.default_rng(seed)
    out = []
    for nd in (1, 2, 3):
        kept = 0
        while kept < count:
            case = conv_cases.conv_case(rng, nd, impl, transposed=transposed)
            if re.search(r"groups=1\b", case.desc):
                out.append(case)
                kept += 1
    return out


TOEPLITZ_CASES = (_ungrouped_cases(40, False, "toeplitz", 3) + _ungrouped_cases(41, False, "lax/toeplitz/eigen", 2)
                  + _ungrouped_cases(42, True, "lax/toeplitz/gemm", 2))


@pytest.mark.parametrize("case", TOEPLITZ_CASES, ids=lambda c: f"{c.op}-{c.impl}-{c.desc}")
def test_toeplitz_matches_torch(case):
    """The banded-GEMM forward and input-gradient rule, any stride/dilation/padding/layout, 1D-3D."""
    result = compare(case)
    assert result.forward <= RTOL, result
    assert result.gradient <= RTOL, result


@pytest.mark.parametrize("where", ["input", "weight", "grad_output"])
def test_toeplitz_keeps_torch_nonfinite_pattern(where):
    """The band's zeros must not spread an inf/nan: NaN/inf land where PyTorch puts them."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 9, 11)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    dy = np.ones((2, 4, 7, 9), np.float32)
    {"input": x, "weight": w, "grad_output": dy}[where][0, 0, 1, 2] = np.inf
    if where == "input":
        x[1, 2, 5, 1] = np.nan
    _assert_nonfinite_pattern_is_torchs(x, w, dy, "toeplitz/toeplitz/lax")


def _assert_nonfinite_pattern_is_torchs(x, w, dy, impl):
    """conv2d's output, input and weight gradient have NaN and inf exactly where PyTorch's
    have them, and agree with them elsewhere."""
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt)
    yt.backward(torch.tensor(dy))
    y, vjp = jax.vjp(lambda a, b: F.conv2d(a, b, impl=impl), x, w)
    dx, dw = vjp(jnp.asarray(dy))
    for got, want in [(y, yt.detach()), (dx, xt.grad), (dw, wt.grad)]:
        got, want = np.asarray(got), want.numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=impl)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=impl)
        finite = np.isfinite(want)
        assert rel_error(got[finite], want[finite]) < 1e-5, impl


SHIFT_CASES = (conv_cases.cases(seed=50, n=2, impl="shift") + conv_cases.cases(seed=51, n=1, impl="lax/shift/lax")
               + conv_cases.cases(seed=52, n=1, impl="shift/shift/gemm")
               + conv_cases.cases(seed=53, n=1, impl="shift/shift/shift")
               + conv_cases.cases(seed=54, n=1, impl="lax/lax/shift"))


@pytest.mark.parametrize("case", SHIFT_CASES, ids=lambda c: f"{c.op}-{c.impl}-{c.desc}")
def test_shift_matches_torch(case):
    """The sum-of-shifted-slices forward (convs and transposed convs, any groups, stride,
    dilation, padding, layout, 1D-3D) and its input- and weight-gradient rules."""
    result = compare(case)
    assert result.forward <= RTOL, result
    assert result.gradient <= RTOL, result


PER_GROUP_CASES = [c for i, plan in enumerate(["lax/lax/lax/per_group", "eigen/eigen/gemm/per_group",
                                                "im2col/shift/autodiff/per_group"])
                   for c in conv_cases.cases(seed=60 + i, n=2, impl=plan)
                   if not plan.startswith("eigen") or c.op.endswith("2d")]


@pytest.mark.parametrize("case", PER_GROUP_CASES, ids=lambda c: f"{c.op}-{c.impl}-{c.desc}")
def test_per_group_plans_match_torch(case):
    """A grouped conv computed group by group (each group an ungrouped conv with the plan's rules)."""
    result = compare(case)
    assert result.forward <= RTOL, result
    assert result.gradient <= RTOL, result


def test_per_group_is_picked_for_grouped_convs_and_matches_torch():
    """impl="auto" on a grouped 2D conv runs it group by group; forward, gradients and a
    vmapped call equal PyTorch's grouped conv."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 12, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    kw = dict(stride=(2, 1), padding=1, groups=3)
    assert F.explain("conv2d", x, w, **kw)["groups"] == "per_group"
    case = Case("conv2d", str(kw), {"input": x, "weight": w}, lambda x, w: F.conv2d(x, w, **kw),
                lambda x, w: torch.nn.functional.conv2d(x, w, **kw))
    result = compare(case)
    assert result.forward <= RTOL and result.gradient <= RTOL, result
    xs = np.stack([x, x[:, ::-1]])
    got = jax.vmap(lambda x_: F.conv2d(x_, w, **kw))(xs)
    want = np.stack([torch.nn.functional.conv2d(torch.tensor(v.copy()), torch.tensor(w), **kw).numpy() for v in xs])
    assert rel_error(np.asarray(got), want) <= RTOL


def test_shift_keeps_torch_nonfinite_pattern():
    """A NaN weight (which flips the predicate of shift_conv's materialising cond) and an
    inf input reach exactly the outputs and gradients they reach in PyTorch."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 1, 9, 8)).astype(np.float32), rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    w[0, 0, 0, 0], x[1, 0, 4, 4] = np.nan, np.inf
    dy = rng.standard_normal((2, 6, 7, 6)).astype(np.float32)
    for impl in ("shift", "auto"):
        _assert_nonfinite_pattern_is_torchs(x, w, dy, impl)


@pytest.mark.parametrize("impl", ["auto", "lax", "eigen", "subpixel", "shift", "im2col", "eigen/lax/gemm/per_group"])
def test_transposed_conv_with_nonfinite_weight_gives_torchs_output(impl):
    """A transposed conv by XLA (or the shift sum) multiplies its inserted zeros by every
    weight: an inf weight must still give PyTorch's output (inf/numbers, not 0 * inf = NaN),
    with the gradients of the finite-weight path unaffected."""
    rng = np.random.default_rng(5)
    for nd, k, kw in [(1, 3, dict(stride=2, padding=1)), (1, 3, {}), (1, 4, dict(stride=2, padding=1)),
                      (2, 3, dict(stride=2, padding=1, output_padding=1, groups=2)), (2, 4, dict(stride=2, groups=2))]:
        x = rng.standard_normal((2, 4, *(5,) * nd)).astype(np.float32)
        w = rng.standard_normal((4, 3, *(k,) * nd)).astype(np.float32)
        w.flat[[0, 7]] = [np.inf, -np.inf]
        name = f"conv_transpose{nd}d"
        got = np.asarray(getattr(F, name)(x, w, **kw, impl=impl))
        want = getattr(torch.nn.functional, name)(torch.tensor(x), torch.tensor(w), **kw).numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{impl} {kw}")
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=f"{impl} {kw}")
        finite = np.isfinite(want)
        assert rel_error(got[finite], want[finite]) < 1e-5, (impl, kw)
        np.testing.assert_array_equal(np.sign(got[np.isinf(want)]), np.sign(want[np.isinf(want)]))


@pytest.mark.parametrize("seed", range(4))
def test_shift_depthwise_matches_torch(seed):
    """impl "shift", its gradient rules and "auto" (which picks them) on depthwise convs
    with multiplier, stride, dilation."""
    rng = np.random.default_rng(seed)
    nd, c, m = 1 + seed % 3, int(rng.integers(1, 4)), 1 + seed % 2
    kernel = tuple(int(v) for v in rng.integers(1, 4, size=nd))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=nd))
    kw = dict(stride=tuple(int(v) for v in rng.integers(1, 3, size=nd)), dilation=dilation,
              padding=tuple(int(v) for v in rng.integers(0, 2, size=nd)), groups=c)
    size = tuple(d * (k - 1) + 1 + int(rng.integers(0, 5)) for k, d in zip(kernel, dilation))
    inputs = {"input": rng.standard_normal((2, c, *size)).astype(np.float32),
              "weight": rng.standard_normal((c * m, 1, *kernel)).astype(np.float32)}
    name = f"conv{nd}d"
    for impl in ("shift", "shift/shift/shift", "shift/autodiff/shift", "auto"):
        case = Case(name, str(kw), inputs, lambda x, w, impl=impl: getattr(F, name)(x, w, **kw, impl=impl),
                    lambda x, w: getattr(torch.nn.functional, name)(x, w, **kw))
        result = compare(case)
        assert result.forward <= RTOL and result.gradient <= RTOL, (impl, result)


def _pool_args(kernel, spatial):
    nd = len(kernel)
    return types.SimpleNamespace(kernel=kernel, stride=kernel, padding=(0,) * nd, dilation=(1,) * nd,
                                 out=tuple(n // k for n, k in zip(spatial, kernel)))


@pytest.mark.parametrize("channels_last", [False, True], ids=["ncs", "nsc"])
@pytest.mark.parametrize("sliced_max", [0, 27], ids=["reshape", "slices"])
@pytest.mark.parametrize("seed", range(6))
def test_tiled_max_pool_matches_torch(seed, sliced_max, channels_last, monkeypatch):
    """Ties go to the first max in row-major window order, NaN windows to the last NaN, remainders are dropped."""
    monkeypatch.setattr(_vjp, "SLICED_MAX_WINDOW", sliced_max)

    def pool(x_NCS, args):  # in (N, C, *spatial) whatever the layout the pool runs in
        if not channels_last:
            return _vjp.tiled_max_pool(x_NCS, args)
        return jnp.moveaxis(_vjp.tiled_max_pool(jnp.moveaxis(x_NCS, 1, -1), args, channels_last=True), -1, 1)

    rng = np.random.default_rng(seed)
    nd = 1 + seed % 3
    kernel = tuple(int(k) for k in rng.integers(1, 4, size=nd))
    spatial = tuple(int(k * m + r) for k, m, r in zip(kernel, rng.integers(1, 3, size=nd), rng.integers(0, 2, size=nd)))
    x = rng.standard_normal((2, 3, *spatial)).astype(np.float32)
    if seed % 2:
        x = np.round(x)
    if seed % 3 == 0:
        x.flat[rng.integers(0, x.size, size=3)] = np.nan
    args = _pool_args(kernel, spatial)
    y = pool(jnp.asarray(x), args)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    g = jax.grad(lambda x_: jnp.sum(pool(x_, args) * dy))(jnp.asarray(x))
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, f"max_pool{nd}d")(tx, kernel)
    (tg,) = torch.autograd.grad(ty, tx, torch.tensor(dy))
    np.testing.assert_array_equal(np.asarray(y), ty.detach().numpy())  # NaNs compare equal here
    np.testing.assert_array_equal(np.asarray(g), tg.numpy())
    # Forward mode: the tangent at torch's argmax of each window.
    t = rng.standard_normal(x.shape).astype(np.float32)
    _, ty_jvp = jax.jvp(lambda x_: pool(x_, args), (jnp.asarray(x),), (jnp.asarray(t),))
    _, idx = getattr(torch.nn.functional, f"max_pool{nd}d")(torch.tensor(x), kernel, return_indices=True)
    want = np.take_along_axis(t.reshape(2, 3, -1), idx.numpy().reshape(2, 3, -1), axis=2).reshape(y.shape)
    np.testing.assert_array_equal(np.asarray(ty_jvp), want)


@pytest.mark.parametrize("kernel", [2, 4], ids=["sliced", "tiled"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_tiled_max_pool_keeps_the_first_of_signed_zeros(kernel, channels_last):
    """PyTorch replaces the running max only by a greater value: max(-0.0, 0.0) is -0.0."""
    x = np.zeros((1, 2, kernel, 2 * kernel), np.float32)
    x[0, 0, 0, 0], x[0, 1, -1, -1] = -0.0, -0.0  # first of window (0, 0, 0); last of (0, 1, 1)
    x[0, 1, 0, 1] = -1.0
    x[0, 0, :, kernel:] = -0.0
    x[0, 0, -1, -1] = 0.0  # a later +0.0 does not replace the first -0.0
    want = torch.nn.functional.max_pool2d(torch.tensor(x), kernel).numpy()
    assert np.signbit(want).tolist() == [[[[True, True]], [[False, False]]]]
    x_in = np.moveaxis(x, 1, -1) if channels_last else x
    got = np.asarray(F.max_pool2d(jnp.asarray(x_in), kernel, channels_last=channels_last))
    got = np.moveaxis(got, -1, 1) if channels_last else got
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_tiled_max_pool_declines_other_windows():
    x = jnp.zeros((1, 1, 6, 6))
    base = dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), out=(3, 3))
    for change in [dict(stride=(1, 1), out=(5, 5)), dict(padding=(1, 1), out=(4, 4)),
                   dict(dilation=(2, 2), out=(2, 2)), dict(out=(4, 3))]:
        assert _vjp.tiled_max_pool(x, types.SimpleNamespace(**{**base, **change})) is None
    assert _vjp.tiled_max_pool(x, types.SimpleNamespace(**base)).shape == (1, 1, 3, 3)


HALF_CASES = [  # (op, x shape, w shape, kwargs): long sums over the batch and taps
    ("conv2d", (4, 8, 12, 12), (8, 1, 3, 3), dict(padding=1, groups=8)),   # depthwise: shift rules
    ("conv2d", (4, 8, 12, 12), (8, 1, 1, 1), dict(groups=8)),              # depthwise 1x1
    ("conv2d", (8, 1, 28, 28), (32, 1, 3, 3), {}),                         # first layer: shift forward
    ("conv1d", (2, 16, 40), (16, 4, 5), dict(groups=4)),
]


@pytest.mark.parametrize("impl,dtype,tol", [
    ("auto", jnp.bfloat16, 1.5e-2), ("shift", jnp.bfloat16, 1.5e-2), ("im2col", jnp.bfloat16, 1.5e-2),
    ("auto", jnp.float16, 3e-3)], ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("op,xs,ws,kw", HALF_CASES, ids=lambda v: str(v))
def test_half_precision_sums_in_float32(op, xs, ws, kw, impl, dtype, tol):
    """Output and gradients of half-precision inputs stay within a few roundings of the
    float32 result (PyTorch's CPU kernels sum in float32 too; summing in bf16 was 3-10x off)."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)
    f = functools.partial(getattr(F, op), **kw)
    y, vjp = jax.vjp(lambda a, b: f(a, b, impl="lax"), jnp.asarray(x), jnp.asarray(w))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    want = (y, *vjp(jnp.asarray(dy)))
    y_h, vjp_h = jax.vjp(lambda a, b: f(a, b, impl=impl), jnp.asarray(x, dtype), jnp.asarray(w, dtype))
    got = (y_h, *vjp_h(jnp.asarray(dy, dtype)))
    for name, g, r in zip(("y", "dx", "dw"), got, want):
        assert g.dtype == dtype, name
        assert rel_error(np.asarray(g, np.float32), np.asarray(r)) < tol, name


@pytest.mark.parametrize("k,s,p,op,m", [(4, 2, 1, 0, 1), (3, 2, 1, 1, 2), (3, 1, 1, 0, 1)])
def test_depthwise_transposed_auto_runs_shift_and_matches_torch(k, s, p, op, m):
    rng = np.random.default_rng(k * 10 + m)
    x = rng.standard_normal((2, 6, 7, 5)).astype(np.float32)
    w = rng.standard_normal((6, m, k, k)).astype(np.float32)
    kw = dict(stride=s, padding=p, output_padding=op, groups=6)
    assert F.explain("conv_transpose2d", x, w, **kw)["forward"] == "shift"
    case = Case("conv_transpose2d", str(kw), {"input": x, "weight": w},
                lambda x, w: F.conv_transpose2d(x, w, **kw), lambda x, w: torch.nn.functional.conv_transpose2d(x, w, **kw))
    result = compare(case)
    assert result.forward <= RTOL and result.gradient <= RTOL, result
