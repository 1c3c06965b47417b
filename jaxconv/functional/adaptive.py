"""Adaptive pooling with ``torch.nn.functional``'s names, arguments and layouts.

Input ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; with
``channels_last=True`` ``(N, *spatial, C)`` or ``(*spatial, C)``. For an input
length L and output length out, output ``i`` pools PyTorch's bin

    [floor(i*L/out), ceil((i+1)*L/out))

(bins cover the input, overlap when out does not divide L, and have
at most ``ceil(L/out) + 1`` elements). A ``None`` entry of ``output_size``
keeps that input dim (2D/3D only, as PyTorch); a ``0`` entry gives an empty
output dim (and a zero gradient), as PyTorch. As in PyTorch, the channel dim
may be empty in an unbatched input, and in a batched one only for
``adaptive_avg_pool1d``/``adaptive_avg_pool2d``. The bins are `Windows` reduced
by :mod:`jaxconv.functional.pooling`'s machinery, so the max rule, indices and
gradients are those of max pooling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

from jaxconv.functional import _args
from jaxconv.functional.pooling import (
    Layout,
    Windows,
    check_flag,
    index_dtype,
    max_over_windows,
    mean_over_windows,
    prepare_input,
)


def adaptive_bins(length: int, out: int) -> Windows:
    """PyTorch's adaptive bins ``[floor(i*L/out), ceil((i+1)*L/out))`` of a dim of ``length``."""
    starts = tuple(i * length // out for i in range(out))
    ends = tuple(-(-(i + 1) * length // out) for i in range(out))
    return Windows(length, starts, tuple(e - s for s, e in zip(starts, ends)))


def _output_size(op: str, output_size: Any, spatial: Sequence[int]) -> tuple[int, ...]:
    nd = len(spatial)
    if isinstance(output_size, Sequence) and not isinstance(output_size, str):
        items = list(output_size)
        if len(items) != nd:
            raise ValueError(
                f"{op}: output_size must be an int or a tuple of {nd} ints, got {tuple(items)!r}"
            )
    elif output_size is None:
        raise TypeError(f"{op}: output_size must be an int or a tuple of {nd} ints, got None")
    else:
        items = [output_size] * nd
    if nd == 1 and items[0] is None:
        raise TypeError(f"{op}: output_size must be an int or a tuple of one int, got {output_size!r}")
    return tuple(
        length if v is None else _args.as_int(v, "output_size", minimum=0)
        for v, length in zip(items, spatial)
    )


def _empty_output(x: jnp.ndarray, layout: Layout, out: tuple[int, ...]) -> jnp.ndarray:
    """The (empty) result for an ``output_size`` with a 0 entry, in ``x``'s layout and dtype."""
    n, c = layout.to_ncs(x).shape[:2]
    return layout.from_ncs(jnp.zeros((n, c, *out), x.dtype))


def _adaptive_max(op: str, nd: int, input: Any, output_size: Any, return_indices: Any, channels_last: Any):
    return_indices = check_flag(return_indices, "return_indices")
    x, layout, spatial = prepare_input(op, input, nd, channels_last, allow_empty_channels="unbatched")
    out = _output_size(op, output_size, spatial)
    if 0 in out:
        y = _empty_output(x, layout, out)
        return (y, y.astype(index_dtype())) if return_indices else y
    y, indices = max_over_windows(x, tuple(adaptive_bins(n, o) for n, o in zip(spatial, out)), layout)
    return (y, indices) if return_indices else y


def _adaptive_avg(op: str, nd: int, input: Any, output_size: Any, channels_last: Any):
    # PyTorch's adaptive_avg_pool3d (unlike 1d/2d) rejects empty channels in a batched input.
    empty_channels = "unbatched" if nd == 3 else True
    x, layout, spatial = prepare_input(op, input, nd, channels_last, allow_empty_channels=empty_channels)
    out = _output_size(op, output_size, spatial)
    if 0 in out:
        return _empty_output(x, layout, out)
    bins = tuple(adaptive_bins(n, o) for n, o in zip(spatial, out))
    return mean_over_windows(x, bins, tuple(b.sizes for b in bins), layout)


_MAX_DOC = """{nd}D adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool{nd}d``.

    ``y[n, c, i] = max`` of ``x[n, c]`` over the product of the per-dim bins
    ``[floor(i*L/out), ceil((i+1)*L/out))``; the output spatial shape is
    ``output_size``{none}. The argmax follows PyTorch (first maximum in
    row-major order, NaN wins, the last NaN among several); with
    ``return_indices=True`` returns ``(y, indices)``, flat indices into the
    input's spatial dims (int32, int64 with ``jax_enable_x64``). Gradients go to
    the argmax only.
    """

_AVG_DOC = """{nd}D adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool{nd}d``.

    ``y[n, c, i] = mean`` of ``x[n, c]`` over the product of the per-dim bins
    ``[floor(i*L/out), ceil((i+1)*L/out))``; the output spatial shape is
    ``output_size``{none}. Half-precision inputs are summed in float32 and the
    result rounded back, as PyTorch's 1D/2D CPU kernels (its 3D kernel rounds the
    running sum to the half type at every step: 3D half results can differ from
    PyTorch's in the last bits, closer to the exact mean).
    """

_NONE = " (a ``None`` entry keeps that input dim)"


def adaptive_max_pool1d(input, output_size, return_indices=False, *, channels_last=False):
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices, channels_last)


def adaptive_max_pool2d(input, output_size, return_indices=False, *, channels_last=False):
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices, channels_last)


def adaptive_max_pool3d(input, output_size, return_indices=False, *, channels_last=False):
    return _adaptive_max("adaptive_max_pool3d", 3, input, output_size, return_indices, channels_last)


def adaptive_avg_pool1d(input, output_size, *, channels_last=False):
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size, channels_last)


def adaptive_avg_pool2d(input, output_size, *, channels_last=False):
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size, channels_last)


def adaptive_avg_pool3d(input, output_size, *, channels_last=False):
    return _adaptive_avg("adaptive_avg_pool3d", 3, input, output_size, channels_last)


for _nd, _max, _avg in ((1, adaptive_max_pool1d, adaptive_avg_pool1d), (2, adaptive_max_pool2d, adaptive_avg_pool2d),
                        (3, adaptive_max_pool3d, adaptive_avg_pool3d)):
    _max.__doc__ = _MAX_DOC.format(nd=_nd, none="" if _nd == 1 else _NONE)
    _avg.__doc__ = _AVG_DOC.format(nd=_nd, none="" if _nd == 1 else _NONE)
