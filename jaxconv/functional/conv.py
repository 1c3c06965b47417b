"""Convolutions with ``torch.nn.functional``'s names, arguments, defaults and layouts.

Input ``(N, C_in, *spatial)`` (or unbatched ``(C_in, *spatial)``; with
``channels_last=True`` ``(N, *spatial, C_in)``), weight ``(C_out, C_in/groups, *k)``
for convolution and ``(C_in, C_out/groups, *k)`` for transposed convolution,
bias ``(C_out,)``. For convolution (cross-correlation, as PyTorch), per group g:

    y[n, o, i] = b[o] + sum_{c, j} w[o, c, j] * x_pad[n, g*C_in/groups + c, i*s + j*d]

Hyperparameters are static Python values; the ops work under ``jax.jit``,
``jax.grad`` and ``jax.vmap``. Results keep the input dtype.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxconv.functional import _args, _dispatch
from jaxconv.functional._bias import add_bias
from jaxconv.functional._dispatch import check_impl, implementation
from jaxconv.functional._spec import conv_spec


def _conv(
    op: str,
    nd: int,
    input: Any,
    weight: Any,
    bias: Any,
    *,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    impl: str,
    channels_last: bool,
    transposed: bool = False,
    output_padding: Any = 0,
) -> jnp.ndarray:
    check_impl(impl)
    channels_last = _args.as_flag(channels_last, "channels_last")
    x = _args.check_float_array(input, "input")
    w = _args.check_float_array(weight, "weight")
    _args.check_same_dtype(x, w, "weight")
    batched = _args.check_rank(x, nd, "input", op)
    spec = conv_spec(
        op, tuple(x.shape) if batched else (1, *x.shape), w.shape, nd=nd, stride=stride,
        padding=padding, dilation=dilation, groups=groups, channels_last=channels_last, transposed=transposed,
        output_padding=output_padding,
    )
    out_ch = w.shape[1] * spec.groups if transposed else w.shape[0]
    if bias is not None:
        b = _args.check_float_array(bias, "bias")
        _args.check_same_dtype(x, b, "bias")
        if b.shape != (out_ch,):
            raise ValueError(f"{op}: bias must have shape ({out_ch},) (out_channels), got {tuple(b.shape)}")
    run = implementation(impl, spec, op)
    if not batched:
        x = x[None]
    out_spatial = spec.out_spatial(x.shape[1:-1] if channels_last else x.shape[2:], w.shape[2:])
    if 0 in out_spatial:  # Only transposed convs get here (`conv_spec`); PyTorch's output is empty.
        shape = (x.shape[0], *out_spatial, out_ch) if channels_last else (x.shape[0], out_ch, *out_spatial)
        y = jnp.zeros(shape, x.dtype)
    else:
        y = run(x, w, spec, channels_last)
    if bias is not None:
        y = add_bias(y, b, -1 if channels_last else 1)
    return y if batched else y[0]


_OPS = {f"conv{nd}d": (nd, False) for nd in (1, 2, 3)} | {
    f"conv_transpose{nd}d": (nd, True) for nd in (1, 2, 3)}


def explain(op: str, input: Any, weight: Any, *, impl: str = "auto", channels_last: bool = False,
            **hyperparameters: Any) -> dict[str, str]:
    """Which algorithms ``impl`` uses for a call: ``{"forward", "input_grad", "weight_grad",
    "groups"}`` (``"groups"``: ``"per_group"`` where a grouped conv runs as one ungrouped
    conv per group, else ``"joint"``).

    ``explain("conv2d", x, w, stride=2)`` describes ``conv2d(x, w, stride=2)``;
    ``input``/``weight`` may be arrays or anything with a ``.shape`` (e.g.
    ``jax.ShapeDtypeStruct``). The choice depends on the shapes, the
    hyperparameters and the default backend (see ``_dispatch``). Raises the
    ValueError the call would raise where ``impl`` cannot compute it.
    """
    if op not in _OPS:
        raise ValueError(f"op must be one of {sorted(_OPS)}, got {op!r}")
    nd, transposed = _OPS[op]
    check_impl(impl)
    x_shape, w_shape = tuple(input.shape), tuple(weight.shape)
    if len(x_shape) == nd + 1:
        x_shape = (1, *x_shape)
    defaults = dict(stride=1, padding=0, dilation=1, groups=1)
    unknown = set(hyperparameters) - set(defaults) - ({"output_padding"} if transposed else set())
    if unknown:
        raise TypeError(f"explain: {op} takes no argument(s) {sorted(unknown)}")
    spec = conv_spec(op, x_shape, w_shape, nd=nd, channels_last=channels_last, transposed=transposed,
                     **(defaults | hyperparameters))
    return _dispatch.explain(impl, spec, x_shape, w_shape, channels_last, op=op)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           impl="auto", channels_last=False):
    """1D convolution, as ``torch.nn.functional.conv1d``; ``padding`` may be "same"/"valid"."""
    return _conv("conv1d", 1, input, weight, bias, stride=stride, padding=padding,
                 dilation=dilation, groups=groups, impl=impl, channels_last=channels_last)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           impl="auto", channels_last=False):
    """2D convolution, as ``torch.nn.functional.conv2d``; ``padding`` may be "same"/"valid"."""
    return _conv("conv2d", 2, input, weight, bias, stride=stride, padding=padding,
                 dilation=dilation, groups=groups, impl=impl, channels_last=channels_last)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           impl="auto", channels_last=False):
    """3D convolution, as ``torch.nn.functional.conv3d``; ``padding`` may be "same"/"valid"."""
    return _conv("conv3d", 3, input, weight, bias, stride=stride, padding=padding,
                 dilation=dilation, groups=groups, impl=impl, channels_last=channels_last)


_TRANSPOSED_DOC = """{nd}D transposed convolution, as ``torch.nn.functional.conv_transpose{nd}d``.

    The adjoint (input gradient) of ``conv{nd}d`` with the same hyperparameters:
    weight ``(C_in, C_out/groups, *k)``; per spatial dim the output length is
    ``(L-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``, where
    ``output_padding < max(stride, dilation)`` only lengthens the end. A length of
    exactly 0 gives an empty output (zero gradients), as PyTorch's float32 CPU
    (oneDNN) path does for batched inputs; its other paths (float64, and batch
    1 or unbatched inputs) raise instead. A negative length raises.
    """


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, impl="auto", channels_last=False):
    return _conv("conv_transpose1d", 1, input, weight, bias, stride=stride, padding=padding,
                 dilation=dilation, groups=groups, impl=impl, channels_last=channels_last,
                 transposed=True, output_padding=output_padding)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, impl="auto", channels_last=False):
    return _conv("conv_transpose2d", 2, input, weight, bias, stride=stride, padding=padding,
                 dilation=dilation, groups=groups, impl=impl, channels_last=channels_last,
                 transposed=True, output_padding=output_padding)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, impl="auto", channels_last=False):
    return _conv("conv_transpose3d", 3, input, weight, bias, stride=stride, padding=padding,
                 dilation=dilation, groups=groups, impl=impl, channels_last=channels_last,
                 transposed=True, output_padding=output_padding)


for _nd, _fn in ((1, conv_transpose1d), (2, conv_transpose2d), (3, conv_transpose3d)):
    _fn.__doc__ = _TRANSPOSED_DOC.format(nd=_nd)
