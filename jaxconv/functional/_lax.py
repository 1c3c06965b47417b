"""``impl="lax"``: convolutions on ``jax.lax.conv_general_dilated``.

A transposed convolution is the gradient of a convolution w.r.t. its input:
a convolution of the input dilated by ``stride`` (``lhs_dilation``) with the
spatially flipped kernel whose in/out channel roles are swapped per group,
padded by ``d*(k-1) - p`` before and ``d*(k-1) - p + output_padding`` after
(negative pads crop). With a non-finite weight the result is im2col's, whose
NaN/inf pattern is PyTorch's (`nonfinite_as_torch`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.functional import _canonical, _im2col
from jaxconv.functional._spec import ConvSpec

_SPATIAL = "DHW"


def dimension_numbers(nd: int, channels_last: bool) -> tuple[str, str, str]:
    sp = _SPATIAL[-nd:] if nd <= 3 else None
    lhs = f"N{sp}C" if channels_last else f"NC{sp}"
    return lhs, f"OI{sp}", lhs


def transposed_weight_as_conv(w_IOK: jnp.ndarray, groups: int) -> jnp.ndarray:
    """(in, out/g, *k) transposed-conv weight -> (out, in/g, *k) flipped conv weight."""
    cin, cout_g = w_IOK.shape[:2]
    k = w_IOK.shape[2:]
    w = w_IOK.reshape(groups, cin // groups, cout_g, *k)
    w = jnp.swapaxes(w, 1, 2).reshape(groups * cout_g, cin // groups, *k)
    return jnp.flip(w, axis=tuple(range(2, 2 + len(k))))


def conv(x: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    return _canonical.conv_general_dilated(
        x,
        w,
        window_strides=spec.stride,
        padding=spec.padding,
        rhs_dilation=spec.dilation,
        feature_group_count=spec.groups,
        dimension_numbers=dimension_numbers(spec.nd, channels_last),
    )


def conv_off_ynn(x, w, *, strides, padding, lhs_dilation, rhs_dilation, groups, dn):
    """``lax.conv_general_dilated`` rewritten so XLA:CPU does not hand it to YNNPACK.

    XLA:CPU gives 2D convolutions without input (base) dilation to YNNPACK, which
    is 2-4x slower than XLA's Eigen kernels for the forward and, on the
    batch/feature-swapped weight-gradient convolution (a kernel as large as the
    image), worse. Doubling every coordinate of the last spatial dim computes
    the same sums with an input dilation of 2, which YNNPACK declines::

        x_pad[b*s + j*d] == dilate2(x)_pad2[b*2s + j*2d]   (padding (2lo, 2hi))

    (``dilate2`` puts ``x[i]`` at ``2i`` and zeros between; the zeros are never
    read). Output lengths and products are unchanged (summed in Eigen's order).
    Autodiff of this form is again off YNNPACK: the weight gradient keeps the
    input dilation, the input gradient dilates the output cotangent by the
    stride 2.
    """
    if len(strides) == 2 and all(v == 1 for v in lhs_dilation):
        strides = (*strides[:-1], 2 * strides[-1])
        lo, hi = padding[-1]
        padding = (*padding[:-1], (2 * lo, 2 * hi))
        lhs_dilation = (*lhs_dilation[:-1], 2)
        rhs_dilation = (*rhs_dilation[:-1], 2 * rhs_dilation[-1])
    return _canonical.conv_general_dilated(
        x, w, window_strides=strides, padding=padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, feature_group_count=groups, dimension_numbers=dn)


def transposed_padding(spec: ConvSpec, kernel) -> tuple[tuple[int, int], ...]:
    """Padding ``(d*(k-1) - lo, d*(k-1) - hi)`` per spatial dim of the stride-dilated input
    that makes the transposed convolution ``spec`` a convolution (negative crops)."""
    return tuple((d * (k - 1) - lo, d * (k - 1) - hi) for k, d, (lo, hi) in zip(kernel, spec.dilation, spec.padding))


def conv_transpose(x: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    y = _canonical.conv_general_dilated(
        x,
        transposed_weight_as_conv(w, spec.groups),
        window_strides=(1,) * spec.nd,
        padding=transposed_padding(spec, w.shape[2:]),
        lhs_dilation=spec.stride,
        rhs_dilation=spec.dilation,
        feature_group_count=spec.groups,
        dimension_numbers=dimension_numbers(spec.nd, channels_last),
    )
    return nonfinite_as_torch(y, x, w, spec, channels_last)


def nonfinite_as_torch(y: jnp.ndarray, x: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec,
                       channels_last: bool, check_input: bool = False) -> jnp.ndarray:
    """The convolution ``y`` where ``w`` is finite, else im2col's of ``(x, w)``.

    A transposed convolution computed as a convolution of the stride-dilated,
    padded input multiplies the inserted zeros by every weight, so an inf/nan
    weight puts NaN (``0 * inf``) where PyTorch, which forms only the products
    of real inputs (GEMM into columns + col2im, as `_im2col.conv_transpose`),
    has a number or inf. A `lax.cond` on the weight's finiteness picks im2col's
    value then (`_im2col.conv` for a plain convolution, ``spec.transposed``
    False); ``y`` is computed outside it, because inside a branch XLA:CPU runs
    convolutions on a slow generic path (8x slower measured). Derivatives are
    ``y``'s (a custom JVP passing ``y``'s tangent through).

    ``check_input``: also im2col's where ``x`` is not finite (for formulations
    that multiply inputs by zero weights, `_subpixel`, or mix every position,
    `_fft`).
    """
    return _pick_finite(y, x, w, spec, channels_last, check_input)


def all_finite(*arrays: jnp.ndarray) -> jnp.ndarray:
    """Scalar bool: every element of every array is finite."""
    return functools.reduce(jnp.logical_and, [jnp.isfinite(a).all() for a in arrays])


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4, 5))
def _pick_finite(y, x, w, spec, channels_last, check_input):
    finite = all_finite(x, w) if check_input else all_finite(w)
    direct = _im2col.conv_transpose if spec.transposed else _im2col.conv
    return lax.cond(finite, lambda: y, lambda: direct(x, w, spec, channels_last))


@_pick_finite.defjvp
def _pick_finite_jvp(spec, channels_last, check_input, primals, tangents):
    return _pick_finite(*primals, spec, channels_last, check_input), tangents[0]
