"""impl="subpixel": strided transposed convolutions as one stride-1 convolution + depth-to-space."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxconv import functional as F
from jaxconv.functional import _subpixel
from jaxconv.functional._spec import conv_spec
from jaxconv.parity import conv_cases
from jaxconv.parity.compare import compare, rel_error

RTOL = 1e-5
CASES = (conv_cases.cases(seed=70, n=4, impl="subpixel")
         + conv_cases.cases(seed=71, n=2, impl="subpixel/lax/gemm")
         + conv_cases.cases(seed=72, n=1, impl="subpixel/eigen/gemm/per_group"))


@pytest.mark.parametrize("case", [c for c in CASES if c.op.startswith("conv_transpose")],
                         ids=lambda c: f"{c.op}-{c.impl}-{c.desc}")
def test_random_transposed_convs_match_torch(case):
    result = compare(case)
    assert result.forward <= RTOL, result
    assert result.gradient <= RTOL, result


@pytest.mark.parametrize("nd,k,s,d,p,op,g", [
    (2, 4, 2, 1, 1, 0, 1),   # the DCGAN/U-Net upsampling layer: 4 phases of 2x2 taps, no zero taps
    (2, 3, 2, 1, 1, 1, 1),   # 3x3 s2 output_padding 1: phase kernels padded with zero taps
    (2, 5, 3, 2, 2, 2, 2),   # dilation with stride: dilated kernel split into 3 phases
    (1, 6, 3, 1, 0, 2, 3),
    (3, 2, 2, 1, 0, 1, 1),
    (2, 2, 4, 1, 3, 3, 1),   # kernel shorter than the stride: empty phases give zeros
    (2, 3, 1, 2, 1, 0, 2),   # stride 1: the stride-1 transposed conv itself
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_phases_padding_and_layouts_match_torch(nd, k, s, d, p, op, g, channels_last):
    rng = np.random.default_rng(k * 100 + s * 10 + d)
    x = rng.standard_normal((2, 2 * g, *(5,) * nd)).astype(np.float32)
    w = rng.standard_normal((2 * g, 3, *(k,) * nd)).astype(np.float32)
    b = rng.standard_normal(3 * g).astype(np.float32)
    kw = dict(stride=s, padding=p, output_padding=op, groups=g, dilation=d)
    name = f"conv_transpose{nd}d"
    want = getattr(torch.nn.functional, name)(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw).numpy()
    xj = np.moveaxis(x, 1, -1) if channels_last else x
    got = np.asarray(getattr(F, name)(xj, w, b, **kw, impl="subpixel", channels_last=channels_last))
    got = np.moveaxis(got, -1, 1) if channels_last else got
    assert got.shape == want.shape
    assert rel_error(got, want) <= RTOL


def test_phase_weight_regroups_taps_by_output_phase():
    """1D, k=4, s=2: phase r gets taps r, r+2 (flipped: the correlation form), one output
    channel block per phase, grouped as (group, phase, channel)."""
    w = jnp.arange(2 * 1 * 4, dtype=jnp.float32).reshape(2, 1, 4)   # (C_in=2, C_out/g=1, k=4), groups=2
    spec = conv_spec("op", (1, 2, 5), w.shape, nd=1, stride=2, padding=0, dilation=1, groups=2,
                     channels_last=False, transposed=True)
    v, J, rhs_dilation = _subpixel.phase_weight(w, spec)
    assert J == (2,) and rhs_dilation == (1,)
    # group 0 (input channel 0, taps 0..3), group 1 (input channel 1, taps 4..7)
    np.testing.assert_array_equal(np.asarray(v)[:, 0], [[2, 0], [3, 1], [6, 4], [7, 5]])
    assert not _subpixel.has_zero_taps(spec, (4,))
    assert _subpixel.has_zero_taps(spec, (3,))


def test_inf_input_with_zero_taps_gives_torchs_pattern():
    """Zero phase taps would multiply an inf input into NaN where PyTorch has numbers: those
    calls take im2col's result (the NaN/inf pattern of PyTorch), gradients unchanged."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    x[0, 0, 1, 2] = np.inf
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    want = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w), stride=2).numpy()
    got = np.asarray(F.conv_transpose2d(x, w, stride=2, impl="subpixel"))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert rel_error(got[finite], want[finite]) <= RTOL
    x[0, 0, 1, 2] = 0.5
    grad = jax.grad(lambda w_: F.conv_transpose2d(x, w_, stride=2, impl="subpixel").sum())(w)
    wt = torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv_transpose2d(torch.tensor(x), wt, stride=2).sum().backward()
    assert rel_error(np.asarray(grad), wt.grad.numpy()) <= RTOL


def test_plain_conv_is_eigens():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 16, 9, 9)).astype(np.float32), rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(F.conv2d(x, w, stride=2, impl="subpixel")),
                                  np.asarray(F.conv2d(x, w, stride=2, impl="eigen")))


def test_no_input_dilation_reaches_xla():
    """The point of the rewrite: XLA sees a stride-1 convolution without lhs_dilation."""
    x, w = jnp.zeros((2, 16, 8, 8, 8)), jnp.zeros((16, 8, 4, 4, 4))

    def lhs_dilations(impl):
        hlo = jax.jit(lambda x, w: F.conv_transpose3d(x, w, stride=2, padding=1, impl=impl)).lower(x, w).as_text()
        return re.findall(r"lhs_dilate = \[([^\]]*)\]", hlo)

    assert lhs_dilations("subpixel") == ["1, 1, 1"]
    assert lhs_dilations("lax") == ["2, 2, 2"]


def test_auto_picks_subpixel_for_strided_transposed_convs_and_keeps_forward_mode():
    """2D ungrouped: "subpixel" with autodiff gradients, so jax.jvp works and equals lax's."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 16, 6, 5)).astype(np.float32), rng.standard_normal((16, 8, 4, 4)).astype(np.float32)
    kw = dict(stride=2, padding=1)
    assert F.explain("conv_transpose2d", x, w, **kw) == {
        "forward": "subpixel", "input_grad": "autodiff", "weight_grad": "autodiff", "groups": "joint"}
    tx, tw = rng.standard_normal(x.shape).astype(np.float32), rng.standard_normal(w.shape).astype(np.float32)
    got = jax.jvp(lambda x, w: F.conv_transpose2d(x, w, **kw), (x, w), (tx, tw))
    want = jax.jvp(lambda x, w: F.conv_transpose2d(x, w, **kw, impl="lax"), (x, w), (tx, tw))
    for a, b in zip(got, want):
        assert rel_error(np.asarray(a), np.asarray(b)) <= RTOL
