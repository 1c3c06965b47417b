"""Custom VJPs for the conv ops: which algorithm computes each gradient.

For a convolution ``y = conv(x, w)`` (per group, multi-indices ``b`` over output
blocks and ``j`` over kernel offsets, ``x_pad`` the input padded by
``spec.padding``)::

    y[n, o, b]   = sum_{c, j} w[o, c, j] * x_pad[n, c, b*s + j*d]
    dx           = conv(., w)^T dy           (a transposed convolution)
    dw[o, c, j]  = sum_{n, b} dy[n, o, b] * x_pad[n, c, b*s + j*d]

A transposed convolution ``y = conv_transpose(x, w)`` is ``conv(., w)^T x`` for
the convolution with the same stride/dilation/groups whose padding is the crop
``spec.padding`` (the *adjoint spec*), so its gradients mirror the above::

    dx = conv(dy, w)                     (a forward convolution)
    dw = the conv weight gradient with the roles of input and output swapped:
         dw[i, o, j] = sum_{n, b} x[n, i, b] * dy_pad[n, o, b*s + j*d]

Rules (names used by `Plan` and by ``_dispatch``):

``"autodiff"``  no custom rule: JAX differentiates the forward implementation.
``"lax"``       the gradient as XLA's own convolution (``jax.vjp`` of the lax
                formulation; for a transposed conv's input gradient, the forward
                ``lax`` convolution with the adjoint spec).
``"eigen"``     the same with the convolution in `_lax.conv_off_ynn`'s form, which
                XLA:CPU runs on Eigen instead of YNNPACK.
``"gemm"``      (weight gradient only) one GEMM per kernel offset over strided
                slices of the channels-last padded input::

                    dw[:, :, j] = dy_(NB, O)^T @ x_pad[:, j*d :: s, :]_(NB, C)

                (a batched GEMM over groups; depthwise convolutions multiply and
                sum). It never forms the ``K``-times-larger im2col matrix. Its
                (O x C) dots with an N*B-long contraction run well below GEMM
                peak, but for grouped and transposed convolutions it is 10-20x
                faster than XLA's weight-gradient convolution (``_dispatch``).

``"shift"``     input gradient: the transposed convolution as a sum of shifted
                slices of the dilated, padded ``dy`` (`shift_conv_transpose`); for
                a transposed conv, `shift_conv` of ``dy``. Weight gradient: the
                products of every tap accumulated sample by sample in a scan,
                summed over ``b`` at the end (`shift_weight_grad`): for depthwise
                convolutions, whose per-tap reductions XLA:CPU runs slowly.

The forward algorithms are those of ``_dispatch`` plus ``"eigen"``
(`eigen_conv`): XLA's convolution in a form XLA:CPU keeps off YNNPACK. A
``Plan(..., per_group=True)`` runs a grouped convolution as one ungrouped
convolution per group (`per_group_conv`), each with the plan's algorithm and rules.

Every rule is built from differentiable ``lax``/``jnp`` ops, so gradients of
gradients (Hessian-vector products by reverse-over-reverse) work. Forward-mode
(``jax.jvp``, ``jax.jacfwd``) cannot pass through ``jax.custom_vjp``: a plan with
custom rules needs ``impl="lax"``/``"eigen"`` (plain autodiff) for that.

`tiled_max_pool` is max pooling over windows that tile the input (stride ==
kernel), as strided slices + elementwise selection (or a reshape + max for
large windows) with a custom JVP that selects PyTorch's argmax by one reduction;
reverse mode transposes it (a broadcast and a select: no gather/scatter), and forward
mode works.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv.functional import _args, _canonical, _im2col, _lax, _subpixel
from jaxconv.functional._spec import ConvSpec

INPUT_GRAD_RULES = ("autodiff", "lax", "eigen", "toeplitz", "shift")
WEIGHT_GRAD_RULES = ("autodiff", "lax", "eigen", "gemm", "shift")
_MODULES = {"lax": "_lax", "im2col": "_im2col", "fft": "_fft", "eigen": None, "shift": None, "toeplitz": None,
            "subpixel": None}


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one conv call is computed: forward algorithm and the two gradient rules.

    ``per_group``: a grouped convolution is computed as ``groups`` ungrouped ones
    (input channels, weight and output channels sliced per group; `per_group_conv`),
    each by the plan's algorithm and rules.
    """

    forward: str                  # "lax" | "eigen" | "shift" | "toeplitz" | "im2col" | "fft" | "subpixel"
    input_grad: str = "autodiff"  # one of INPUT_GRAD_RULES
    weight_grad: str = "autodiff"  # one of WEIGHT_GRAD_RULES
    per_group: bool = False

    def __post_init__(self):
        if self.forward not in _MODULES:
            raise ValueError(f"forward must be one of {tuple(_MODULES)}, got {self.forward!r}")
        if self.input_grad not in INPUT_GRAD_RULES:
            raise ValueError(f"input_grad must be one of {INPUT_GRAD_RULES}, got {self.input_grad!r}")
        if self.weight_grad not in WEIGHT_GRAD_RULES:
            raise ValueError(f"weight_grad must be one of {WEIGHT_GRAD_RULES}, got {self.weight_grad!r}")
        if not isinstance(self.per_group, bool):
            raise TypeError(f"per_group must be a bool, got {self.per_group!r}")

    @property
    def custom(self) -> bool:
        return (self.input_grad, self.weight_grad) != ("autodiff", "autodiff")


def forward_fn(name: str, spec: ConvSpec) -> Callable:
    if name == "eigen":
        return eigen_conv_transpose if spec.transposed else eigen_conv
    if name == "shift":
        return shift_conv_transpose if spec.transposed else shift_conv
    if name == "subpixel":
        return _subpixel.conv_transpose if spec.transposed else eigen_conv
    if name == "toeplitz":
        check_toeplitz(spec)
        return toeplitz_conv
    module = importlib.import_module(f"jaxconv.functional.{_MODULES[name]}")
    return module.conv_transpose if spec.transposed else module.conv


def eigen_conv(x, w, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """``impl="lax"``'s convolution in the form XLA:CPU runs on Eigen (`_lax.conv_off_ynn`)."""
    return _lax.conv_off_ynn(
        x, w, strides=spec.stride, padding=spec.padding, lhs_dilation=(1,) * spec.nd,
        rhs_dilation=spec.dilation, groups=spec.groups,
        dn=_lax.dimension_numbers(spec.nd, channels_last))


def eigen_conv_transpose(x, w, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """``impl="lax"``'s transposed convolution in the form XLA:CPU runs on Eigen (with
    `_lax.nonfinite_as_torch`'s NaN/inf pattern)."""
    y = _lax.conv_off_ynn(
        x, _lax.transposed_weight_as_conv(w, spec.groups), strides=(1,) * spec.nd,
        padding=_lax.transposed_padding(spec, w.shape[2:]), lhs_dilation=spec.stride, rhs_dilation=spec.dilation,
        groups=spec.groups, dn=_lax.dimension_numbers(spec.nd, channels_last))
    return _lax.nonfinite_as_torch(y, x, w, spec, channels_last)


def shift_conv(x, w, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """Convolution as a sum of shifted, scaled copies of the input: for few taps per output.

    With ``g`` groups of ``q = C_in / g`` input and ``m = C_out / g`` output
    channels, output channel ``o = h*m + i`` of group ``h``::

        y[n, o, b] = sum_{c < q, j} w[o, c, j] * x_pad[n, h*q + c, b*s + j*d]

    one strided slice of the padded input per (input channel of the group,
    kernel offset) ``(c, j)``, broadcast over the group's ``m`` outputs and
    scaled per output channel, summed: ``q * prod(kernel)`` multiply-adds per
    output, elementwise work XLA fuses into one loop. For depthwise
    convolutions and convolutions of one input channel (a network's first
    layer) that is several times faster than XLA:CPU's convolution
    (``_dispatch``). Autodiff of it is again slices, pads and sums. Half-precision
    inputs are summed in float32 (as PyTorch's kernels) and rounded back.
    """
    # XLA would fuse the sum into every consumer, and a consumer that slices it (a max pool,
    # another shift conv) would recompute all taps per slice (measured 2-3x slower models).
    # No fusion crosses a conditional, and this predicate cannot be constant-folded
    # (False for NaN): both branches compute the same, so the output is materialised.
    w0 = w.reshape(-1)[0]
    shift_sum = functools.partial(_shift_sum, kernel=w.shape[2:], spec=spec, channels_last=channels_last)
    acc = _args.accumulation_dtype(x.dtype)
    g = spec.groups
    # Per tap and input channel, the (group, output) scales as one contiguous vector: read per
    # output element inside the fused sum, a strided weight slice would not vectorise.
    w_KQGM = jnp.transpose(w.reshape(g, w.shape[0] // g, w.shape[1], -1), (3, 2, 0, 1))
    return lax.cond(w0 == w0, shift_sum, shift_sum, x.astype(acc), w_KQGM.astype(acc)).astype(x.dtype)


def _shift_sum(x, w_KQGM, kernel: tuple[int, ...], spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """`shift_conv`'s sum of shifted, scaled slices; weight ``(taps, q, g, m)``."""
    _, q, g, m = w_KQGM.shape
    ch = _args.channel_axis(True, channels_last, x.ndim)
    sp_axes = [a for a in range(1, x.ndim) if a != ch]
    x_pad = _pad_input(x, spec, channels_last)
    blocks = spec.out_spatial([x.shape[a] for a in sp_axes], kernel)
    # Channels split as (group, input channel of the group); outputs as (group, output of the group).
    x_pad = x_pad.reshape(*x_pad.shape[:ch], g, q, *x_pad.shape[ch + 1:])
    split_axes = [a if a < ch else a + 1 for a in sp_axes]
    scale_shape = [1] * (x.ndim + 1)
    scale_shape[ch:ch + 2] = [g, m]
    y = None
    for t, j in enumerate(itertools.product(*(range(k) for k in kernel))):
        for c in range(q):
            term = _tap_slice(x_pad, split_axes, j, blocks, spec, channel=(ch + 1, c))
            term = term * w_KQGM[t, c].reshape(scale_shape)
            y = term if y is None else y + term
    return y.reshape(*y.shape[:ch], g * m, *y.shape[ch + 2:])


def _tap_slice(x_pad: jnp.ndarray, sp_axes: Sequence[int], j: Sequence[int], blocks: Sequence[int],
               spec: ConvSpec, channel: tuple[int, int] | None = None) -> jnp.ndarray:
    """What kernel offset ``j`` multiplies: ``x_pad[..., j*d : j*d + (B-1)*s + 1 : s, ...]``
    on the spatial axes ``sp_axes`` (``B`` = ``blocks``), restricted to channel ``c`` of
    axis ``a`` for ``channel=(a, c)``."""
    start, limit, strides = [0] * x_pad.ndim, list(x_pad.shape), [1] * x_pad.ndim
    if channel is not None:
        a, c = channel
        start[a], limit[a] = c, c + 1
    for a, ji, d, b, s in zip(sp_axes, j, spec.dilation, blocks, spec.stride):
        start[a], limit[a], strides[a] = ji * d, ji * d + (b - 1) * s + 1, s
    return lax.slice(x_pad, start, limit, strides)


def shift_conv_transpose(x, w, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """Transposed convolution as `shift_conv`: of the input dilated by the stride and
    padded by ``d*(k-1) - crop`` (as ``_lax.conv_transpose``), with the flipped weight
    whose in/out channel roles are swapped per group (``m * prod(kernel)`` taps per
    output for ``m`` outputs per group of the transposed conv's input).

    The inserted zeros meet every weight; `_lax.nonfinite_as_torch` gives PyTorch's
    NaN/inf pattern for a non-finite weight.
    """
    pads = [(lo, hi, s - 1) for (lo, hi), s in zip(_lax.transposed_padding(spec, w.shape[2:]), spec.stride)]
    inner = ConvSpec(spec.nd, (1,) * spec.nd, ((0, 0),) * spec.nd, spec.dilation, spec.groups)
    y = shift_conv(_pad_spatial(x, pads, channels_last), _lax.transposed_weight_as_conv(w, spec.groups),
                   inner, channels_last)
    return _lax.nonfinite_as_torch(y, x, w, spec, channels_last)


def _pad_spatial(x: jnp.ndarray, pads: Sequence[tuple[int, int, int]], channels_last: bool) -> jnp.ndarray:
    """``lax.pad`` of the spatial dims by ``(low, high, interior)`` each (negative crops)."""
    pads = [(0, 0, 0), *pads, (0, 0, 0)] if channels_last else [(0, 0, 0), (0, 0, 0), *pads]
    return lax.pad(x, jnp.zeros((), x.dtype), pads)


def _pad_input(x: jnp.ndarray, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """``x_pad``: the input zero-padded by the convolution's ``spec.padding``."""
    return _pad_spatial(x, [(lo, hi, 0) for lo, hi in spec.padding], channels_last)


def conv_input_grad_spec(spec: ConvSpec, in_spatial: Sequence[int], kernel: Sequence[int]) -> ConvSpec:
    """The transposed convolution that is the input gradient of the convolution ``spec``
    (not transposed) on inputs of spatial shape ``in_spatial``: same stride, dilation and
    groups, cropping ``padding`` minus the rows the forward's last stride step left unread."""
    rest = [(length + lo + hi - d * (k - 1) - 1) % s
            for length, k, s, d, (lo, hi) in zip(in_spatial, kernel, spec.stride, spec.dilation, spec.padding)]
    return dataclasses.replace(spec, transposed=True, output_padding=tuple(rest),
                               padding=tuple((lo, hi - r) for (lo, hi), r in zip(spec.padding, rest)))


def check_toeplitz(spec: ConvSpec, op: str = "conv") -> None:
    """``"toeplitz"`` computes ungrouped, non-transposed convolutions (as a forward)."""
    if spec.transposed:
        raise ValueError(f"{op}: impl 'toeplitz' computes convolutions, not transposed ones; use impl='auto' or 'im2col'")
    if spec.groups != 1:
        raise ValueError(f"{op}: impl 'toeplitz' computes ungrouped convolutions (groups=1), got "
                         f"groups={spec.groups}; use impl='auto', or a per-group plan such as "
                         "'lax/toeplitz/eigen/per_group'")


def toeplitz_conv(x, w, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """Convolution (``groups == 1``) as one GEMM of input rows with a banded (Toeplitz) weight.

    Along the last spatial dim (padded length ``V``, ``U`` outputs, kernel ``k``,
    stride ``s``, dilation ``d``) the convolution is a ``V x U`` matrix per
    (input channel, output channel, kernel offset ``j``): the one-hot band
    ``E[j, v, u] = [v == u*s + j*d]`` times ``w[..., j]``. With the leading
    spatial dims gathered as in im2col (one strided slice per leading kernel
    offset ``i``, the last dim kept whole)::

        R[n, c, i, b, v] = x_pad[n, c, b*s' + i*d', v]            (b: leading output blocks)
        T[c, i, v, o, u] = sum_j w[o, c, i, j] * E[j, v, u]
        y[n, o, b, u]    = sum_{c, i, v} R[n, c, i, b, v] * T[c, i, v, o, u]

    one (N*B, C*K_lead*V) @ (C*K_lead*V, O*U) GEMM. It does ``V/k`` times the
    convolution's multiplications (the band's zeros), but at GEMM speed, where
    XLA:CPU's convolution of few channels (one input channel above all) runs
    far below it, and its autodiff is GEMMs too: the input gradient is
    ``dY @ T^T`` scattered back by the slices' adjoint (``_dispatch``). The
    band's zeros would also multiply non-finite values (``0 * inf = nan``
    spreading along a whole output row), so when ``x`` or ``w`` holds an
    ``inf``/``nan`` the call computes im2col's convolution instead (a `lax.cond`
    on their finiteness), PyTorch's algorithm on CPU: non-finite values reach
    exactly the outputs they reach in PyTorch. (Not XLA's: inside a `lax.cond`
    branch XLA:CPU runs convolutions on a slow generic path that skips the
    padding, so ``0 * inf`` products PyTorch forms go missing.)
    """
    return lax.cond(_lax.all_finite(x, w), lambda: _toeplitz_gemm(x, w, spec, channels_last),
                    lambda: _im2col.conv(x, w, spec, channels_last))


def _toeplitz_gemm(x, w, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """`toeplitz_conv`'s banded GEMM, for finite ``x`` and ``w``."""
    if channels_last:
        x = jnp.moveaxis(x, -1, 1)
    n, c = x.shape[:2]
    o, _, *kernel = w.shape
    blocks = spec.out_spatial(x.shape[2:], kernel)
    x_pad = _pad_input(x, spec, channels_last=False)
    v = x_pad.shape[-1]
    rows = []
    for i in itertools.product(*(range(k) for k in kernel[:-1])):
        start = [0, 0, *(ii * d for ii, d in zip(i, spec.dilation)), 0]
        limit = [n, c, *(st + (b - 1) * s + 1 for st, b, s in zip(start[2:-1], blocks, spec.stride)), v]
        rows.append(lax.slice(x_pad, start, limit, (1, 1, *spec.stride[:-1], 1)))
    k_lead, b_lead = math.prod(kernel[:-1]), math.prod(blocks[:-1])
    r = jnp.stack(rows, axis=2).reshape(n, c, k_lead, b_lead, v)
    k, s, d, u = kernel[-1], spec.stride[-1], spec.dilation[-1], blocks[-1]
    band = np.zeros((k, v, u), np.float32)
    for j in range(k):
        band[j, np.arange(u) * s + j * d, np.arange(u)] = 1
    t = jnp.einsum("ocij,jvu->civou", w.reshape(o, c, k_lead, k), jnp.asarray(band, w.dtype))
    y = jnp.einsum("ncibv,civou->nobu", r, t).reshape(n, o, *blocks)
    return jnp.moveaxis(y, 1, -1) if channels_last else y


def adjoint_spec(spec: ConvSpec) -> ConvSpec:
    """The convolution whose input-adjoint is the transposed convolution ``spec``."""
    return ConvSpec(spec.nd, spec.stride, spec.padding, spec.dilation, spec.groups)


def gemm_weight_grad(x: jnp.ndarray, dy: jnp.ndarray, spec: ConvSpec, kernel: Sequence[int],
                     channels_last: bool) -> jnp.ndarray:
    """Weight gradient ``(O, C/g, *kernel)`` of ``y = conv(x, w)`` (``spec`` not transposed).

    ``x`` is (N, C, *L) and ``dy`` (N, O, *B) (channels last if asked). Both are
    moved to channels-last once; then per kernel offset ``j`` the strided slice
    ``x_pad[:, j*d : j*d + (B-1)*s + 1 : s, :]`` is an (N*B, C) matrix and
    ``dw[:, :, j] = dy_(NB, O)^T @ slice`` per group.
    """
    x_NLC = x if channels_last else jnp.moveaxis(x, 1, -1)
    dy_NBO = dy if channels_last else jnp.moveaxis(dy, 1, -1)
    n, c = x_NLC.shape[0], x_NLC.shape[-1]
    o = dy_NBO.shape[-1]
    blocks = dy_NBO.shape[1:-1]
    g = spec.groups
    m = n * math.prod(blocks)
    x_pad = _pad_input(x_NLC, spec, channels_last=True)
    dy_MGO = dy_NBO.reshape(m, g, o // g)
    slabs = []
    for j in itertools.product(*(range(k) for k in kernel)):
        xs_MGC = _tap_slice(x_pad, range(1, x_pad.ndim - 1), j, blocks, spec).reshape(m, g, c // g)
        if g == 1:
            slabs.append(lax.dot_general(dy_MGO[:, 0], xs_MGC[:, 0], (((0,), (0,)), ((), ()))))
        elif c // g == 1:
            slabs.append(jnp.sum(dy_MGO * xs_MGC, axis=0).reshape(o, 1))
        else:
            slabs.append(jnp.einsum("mgo,mgc->goc", dy_MGO, xs_MGC).reshape(o, c // g))
    return jnp.stack(slabs, axis=-1).reshape(o, c // g, *kernel)


def shift_weight_grad(x: jnp.ndarray, dy: jnp.ndarray, spec: ConvSpec, kernel: Sequence[int],
                      channels_last: bool) -> jnp.ndarray:
    """Weight gradient ``(O, q, *kernel)`` of `shift_conv` (``spec`` not transposed).

    With `shift_conv`'s names (``g`` groups, ``q`` input and ``m`` output
    channels per group)::

        dw[h*m + i, c, j] = sum_{n, b} dy[n, h*m + i, b] * x_pad[n, h*q + c, b*s + j*d]

    accumulated one sample at a time by a ``lax.scan`` whose carry holds one
    ``(O, *B)`` product sum per ``(c, j)``; every tap's product of a sample is
    one fused elementwise loop over cache-resident data, and the sums over
    ``b`` come once at the end. Autodiff of `shift_conv` instead reduces each
    tap's slice over ``N * B`` on its own, and XLA:CPU copies each shifted slice
    out before reducing it (depthwise 3x3, 64 channels, 32x32, batch 32: 34 vs 10 ms).
    Half-precision inputs are summed in float32.
    """
    dtype, acc_dtype = x.dtype, _args.accumulation_dtype(x.dtype)
    x, dy = x.astype(acc_dtype), dy.astype(acc_dtype)
    batched_ch = _args.channel_axis(True, channels_last, x.ndim)
    g, q = spec.groups, x.shape[batched_ch] // spec.groups
    o = dy.shape[batched_ch]
    m = o // g
    x_pad = _pad_input(x, spec, channels_last)
    # Per sample: channels split as (group, channel of the group), on axis 0 or last.
    ch = _args.channel_axis(False, channels_last, x.ndim - 1)
    x_pad = x_pad.reshape(*x_pad.shape[:ch + 1], g, q, *x_pad.shape[ch + 2:])
    dy = dy.reshape(*dy.shape[:ch + 1], g, m, *dy.shape[ch + 2:])
    sp_axes = list(range(ch)) if channels_last else list(range(2, x.ndim))
    blocks = [dy.shape[1 + a] for a in sp_axes]
    taps = list(itertools.product(range(q), itertools.product(*(range(k) for k in kernel))))

    def add_sample(acc, sample):
        x_n, dy_n = sample
        sums = []
        for (c, j), a in zip(taps, acc):
            sums.append(a + _tap_slice(x_n, sp_axes, j, blocks, spec, channel=(ch + 1, c)) * dy_n)
        return tuple(sums), None

    zeros = lax.full_like(dy, 0, acc_dtype, dy.shape[1:])  # varying over dy's shard_map axes, as the sums
    acc, _ = lax.scan(add_sample, (zeros,) * len(taps), (x_pad, dy))
    dw_QKGM = jnp.stack([a.sum(axis=tuple(sp_axes)) for a in acc])  # (q * prod(kernel), g, m)
    return dw_QKGM.reshape(q, -1, o).transpose(2, 0, 1).reshape(o, q, *kernel).astype(dtype)


def input_grad(rule: str, x, w, dy, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """``rule`` "lax"/"eigen": XLA's transposed convolution of that formulation;
    "toeplitz": autodiff of `toeplitz_conv` (GEMM with the band's transpose, then
    the row slices' adjoint); "shift": `shift_conv_transpose` of ``dy`` (autodiff
    of `shift_conv` would scatter every tap's slice back separately, 20-100x slower)."""
    if rule not in ("lax", "eigen", "toeplitz", "shift"):
        raise ValueError(f"no input-gradient rule {rule!r}")
    if spec.transposed:
        conv = {"lax": _lax.conv, "eigen": eigen_conv, "toeplitz": toeplitz_conv, "shift": shift_conv}[rule]
        if rule == "toeplitz":
            check_toeplitz(adjoint_spec(spec))
        return conv(dy, w, adjoint_spec(spec), channels_last)
    if rule == "shift":
        in_spatial = x.shape[1:-1] if channels_last else x.shape[2:]
        return shift_conv_transpose(dy, w, conv_input_grad_spec(spec, in_spatial, w.shape[2:]), channels_last)
    fn = forward_fn(rule, spec)
    dx = lambda f: jax.vjp(lambda x_: f(x_, w, spec, channels_last), x)[1](dy)[0]  # noqa: E731
    if rule == "toeplitz":  # The band's transpose would spread a non-finite dy: see toeplitz_conv.
        return lax.cond(_lax.all_finite(dy), lambda: dx(fn), lambda: dx(_im2col.conv))
    return dx(fn)


def weight_grad(rule: str, x, w, dy, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """``rule`` "lax"/"eigen": XLA's weight gradient of that formulation; "gemm":
    `gemm_weight_grad`; "shift": `shift_weight_grad`."""
    kernel = w.shape[2:]
    if rule in ("lax", "eigen"):
        fn = forward_fn(rule, spec)
        return jax.vjp(lambda w_: fn(x, w_, spec, channels_last), w)[1](dy)[0]
    if rule == "shift":
        if spec.transposed:
            return shift_weight_grad(dy, x, adjoint_spec(spec), kernel, channels_last)
        return shift_weight_grad(x, dy, spec, kernel, channels_last)
    if rule == "gemm":
        if spec.transposed:
            return gemm_weight_grad(dy, x, adjoint_spec(spec), kernel, channels_last)
        return gemm_weight_grad(x, dy, spec, kernel, channels_last)
    raise ValueError(f"no weight-gradient rule {rule!r}")


@functools.cache
def conv_with_plan(plan: Plan) -> Callable:
    """``(x, w, spec, channels_last) -> y`` computed and differentiated as ``plan`` says.

    Where both rules are ``"autodiff"`` this is the forward implementation itself.
    Otherwise it is a ``jax.custom_vjp`` whose backward uses the plan's rules,
    falling back to JAX's autodiff of the forward for an ``"autodiff"`` rule.
    A ``per_group`` plan is `per_group_conv` of the same plan without it.
    """
    if plan.per_group:
        return per_group_conv(conv_with_plan(dataclasses.replace(plan, per_group=False)))
    if not plan.custom:
        return lambda x, w, spec, channels_last: forward_fn(plan.forward, spec)(x, w, spec, channels_last)

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
    def conv(x, w, spec, channels_last):
        return forward_fn(plan.forward, spec)(x, w, spec, channels_last)

    def fwd(x, w, spec, channels_last):
        return forward_fn(plan.forward, spec)(x, w, spec, channels_last), (x, w)

    def bwd(spec, channels_last, res, dy):
        x, w = res
        forward = forward_fn(plan.forward, spec)
        if "autodiff" in (plan.input_grad, plan.weight_grad):
            auto_dx, auto_dw = jax.vjp(lambda x_, w_: forward(x_, w_, spec, channels_last), x, w)[1](dy)
        dx = auto_dx if plan.input_grad == "autodiff" else input_grad(
            plan.input_grad, x, w, dy, spec, channels_last)
        dw = auto_dw if plan.weight_grad == "autodiff" else weight_grad(
            plan.weight_grad, x, w, dy, spec, channels_last)
        return dx, dw

    conv.defvjp(fwd, bwd)

    def call(x, w, spec, channels_last):
        # Inside jax.shard_map the rules' gradients vary as x does; a replicated w is cast
        # first (as lax does), so its cotangent is summed over the mesh by JAX, not by the rules.
        x, w = _canonical.match_varying_axes(x, w)
        return conv(x, w, spec, channels_last)

    return call


def group_spec(spec: ConvSpec) -> ConvSpec:
    """The ungrouped convolution each group of ``spec`` is."""
    return dataclasses.replace(spec, groups=1)


def per_group_conv(conv: Callable) -> Callable:
    """A grouped (transposed) convolution as ``groups`` calls of the ungrouped ``conv``.

    Group ``g`` takes input channels ``[g*C_in/G, (g+1)*C_in/G)`` and weight rows
    ``[g*W0/G, (g+1)*W0/G)`` (``W0`` = C_out for a convolution, C_in for a
    transposed one) and gives output channels ``[g*C_out/G, (g+1)*C_out/G)``: the
    definition of ``groups``. The outputs are concatenated; autodiff slices the
    cotangent, and each group's gradients are ``conv``'s. XLA:CPU's grouped
    convolutions, above all their weight gradient (a batch-grouped convolution),
    run far slower than the ungrouped ones (``_dispatch``).
    """
    def conv_per_group(x, w, spec: ConvSpec, channels_last: bool):
        axis = _args.channel_axis(True, channels_last, x.ndim)
        xs = jnp.split(x, spec.groups, axis=axis)
        ws = jnp.split(w, spec.groups, axis=0)
        one = group_spec(spec)
        return jnp.concatenate([conv(x_g, w_g, one, channels_last) for x_g, w_g in zip(xs, ws)], axis=axis)

    return conv_per_group


def tiled_max_pool(x: jnp.ndarray, args, channels_last: bool = False) -> jnp.ndarray | None:
    """Max pooling of ``(N, C, *spatial)`` (``(N, *spatial, C)`` with ``channels_last``)
    over windows that tile the input, or None if they don't.

    ``args`` has ``kernel``, ``stride``, ``padding``, ``dilation`` and ``out``
    (per spatial dim, as ``pooling._PoolArgs``). Applies when ``stride ==
    kernel``, no padding, no dilation and every window is complete (``out*k <=
    L``; a trailing remainder is ignored as PyTorch does). Windows of at most
    `SLICED_MAX_WINDOW` elements are then ``prod(kernel)`` strided slices of the
    input, one per window position, reduced with an elementwise ``maximum``
    (`_sliced_max_pool`); larger ones a reshape ``(N, C, o_1, k_1, o_2, k_2,
    ...)`` of the cropped input reduced with ``max`` (`_tiled_max_pool`). No
    gather either way, and a backward without scatter. Both work in the input's
    own layout: moved to ``(N, C, ...)`` and back, the argmax reduction of the
    backward ran over a transposed read (mnist_net channels-last).
    """
    sp = 1 if channels_last else 2  # first spatial axis
    kernel, spatial = tuple(args.kernel), x.shape[sp:sp + len(args.kernel)]
    if (tuple(args.stride) != kernel or any(args.padding)
            or any(d != 1 and k != 1 for d, k in zip(args.dilation, kernel))
            or any(o * k > n for o, k, n in zip(args.out, kernel, spatial))):
        return None
    if math.prod(kernel) <= SLICED_MAX_WINDOW:
        return _sliced_max_pool(x, kernel, sp)
    return _tiled_max_pool(x, kernel, sp)


SLICED_MAX_WINDOW = 9  # largest window _sliced_max_pool unrolls into slices (measured: 2x2)


def _window_slices(x: jnp.ndarray, kernel: tuple[int, ...], sp: int) -> list[jnp.ndarray]:
    """Element ``j`` of every window, ``j`` over window positions in row-major order: the
    strided slices ``x[..., j_1::k_1, j_2::k_2, ...]`` of the spatial axes ``sp, sp+1, ...``,
    cropped to ``out = L // k`` blocks."""
    nd = len(kernel)
    out = [n // k for n, k in zip(x.shape[sp:sp + nd], kernel)]
    slices = []
    for j in itertools.product(*(range(k) for k in kernel)):
        start, limit, strides = [0] * x.ndim, list(x.shape), [1] * x.ndim
        start[sp:sp + nd] = j
        limit[sp:sp + nd] = [ji + (o - 1) * k + 1 for ji, o, k in zip(j, out, kernel)]
        strides[sp:sp + nd] = kernel
        slices.append(lax.slice(x, start, limit, strides))
    return slices


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _sliced_max_pool(x: jnp.ndarray, kernel: tuple[int, ...], sp: int) -> jnp.ndarray:
    """``y = max over each window`` as a chain of elementwise selections over `_window_slices`.

    As PyTorch's max pool, a later element replaces the running max only if it
    is greater (so of ``-0.0`` and ``0.0`` the first is kept) or NaN (a window
    holding one gives NaN). Slices and selections are elementwise work that XLA
    fuses with the producer (the conv's bias and ReLU), where the reshape of
    `_tiled_max_pool` pins the window axes and costs transposes.
    """
    y, *rest = _window_slices(x, kernel, sp)
    for t in rest:
        y = jnp.where((t > y) | jnp.isnan(t), t, y)
    return y


@_sliced_max_pool.defjvp
def _sliced_max_pool_jvp(kernel, sp, primals, tangents):
    (x,), (dx,) = primals, tangents
    y = _sliced_max_pool(x, kernel, sp)
    return y, _max_pool_tangent(x, y, dx, kernel, sp)


def _windows(x: jnp.ndarray, kernel: tuple[int, ...], sp: int) -> jnp.ndarray:
    """Spatial axes ``L_i`` (from axis ``sp``) split as ``(o_i, k_i)``, each cropped to
    ``o*k``: ``(N, C, *L) -> (N, C, o_1, k_1, ..., o_n, k_n)`` for ``sp = 2``."""
    nd = len(kernel)
    out = [n // k for n, k in zip(x.shape[sp:sp + nd], kernel)]
    x = x[(*(slice(None),) * sp, *(slice(0, o * k) for o, k in zip(out, kernel)))]
    return x.reshape(*x.shape[:sp], *(v for o, k in zip(out, kernel) for v in (o, k)), *x.shape[sp + nd:])


def _window_axes(nd: int, sp: int) -> tuple[int, ...]:
    """The ``k_i`` axes of `_windows`."""
    return tuple(sp + 1 + 2 * a for a in range(nd))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _tiled_max_pool(x: jnp.ndarray, kernel: tuple[int, ...], sp: int) -> jnp.ndarray:
    """``y = max over each window``; NaN if the window holds one (PyTorch's max pool).

    PyTorch keeps the first of equal maxima, which only the sign of a zero max
    can tell apart: a window whose max is zero gives its first zero, ``-0.0`` or
    ``0.0`` (two more reductions; a full first-max selection costs ~5x).
    """
    xw = _windows(x, kernel, sp)
    axes = _window_axes(len(kernel), sp)
    y = jnp.max(xw, axis=axes)
    pos = _window_positions(kernel, xw.ndim, axes)
    first_zero = jnp.min(jnp.where(xw == 0, pos, math.prod(kernel)), axis=axes, keepdims=True)
    negative_zero = jnp.any((pos == first_zero) & jnp.signbit(xw), axis=axes) & (y == 0)
    y = jnp.where(negative_zero, jnp.array(-0.0, y.dtype), y)
    return jnp.where(jnp.any(jnp.isnan(xw), axis=axes), jnp.nan, y)


@_tiled_max_pool.defjvp
def _tiled_max_pool_jvp(kernel, sp, primals, tangents):
    (x,), (dx,) = primals, tangents
    y = _tiled_max_pool(x, kernel, sp)
    return y, _max_pool_tangent(x, y, dx, kernel, sp)


def _max_pool_tangent(x: jnp.ndarray, y: jnp.ndarray, dx: jnp.ndarray,
                      kernel: tuple[int, ...], sp: int) -> jnp.ndarray:
    """dy = dx at PyTorch's argmax of each window of the tiled max pool ``y``: the first
    position (row-major in the window) equal to the max or, when the window holds NaNs, the
    last NaN.

    With ``P`` positions ``p`` per window, each element scores ``2P + p`` if NaN, ``2P - 1 -
    p`` if equal to the max, else 0; the window's max score names the argmax. One reduction,
    so XLA materialises it (one int per window) instead of re-deriving the argmax inside the
    backward's fusion once per input element (mnist_net's pool backward 71 -> 27 ms).
    Linear in dx, so reverse mode is its transpose: a broadcast and a select, no scatter.
    """
    axes = _window_axes(len(kernel), sp)
    n = math.prod(kernel)
    xw = _windows(x, kernel, sp)
    pos = _window_positions(kernel, xw.ndim, axes)  # int32: int8 scores measured 2-3x slower
    score = jnp.where(jnp.isnan(xw), 2 * n + pos, jnp.where(xw == jnp.expand_dims(y, axes), 2 * n - 1 - pos, 0))
    best = jnp.max(score, axis=axes, keepdims=True)
    at = jnp.where(best >= 2 * n, best - 2 * n, 2 * n - 1 - best)
    return jnp.sum(jnp.where(at == pos, _windows(dx, kernel, sp), jnp.zeros((), dx.dtype)), axis=axes)


def _window_positions(kernel: tuple[int, ...], ndim: int, axes: tuple[int, ...]) -> jnp.ndarray:
    """Row-major position within the window, broadcastable against the windows array."""
    pos = jnp.zeros([1] * ndim, jnp.int32)
    for a, k in zip(axes, kernel):
        shape = [1] * ndim
        shape[a] = k
        pos = pos * k + jnp.arange(k, dtype=jnp.int32).reshape(shape)
    return pos


