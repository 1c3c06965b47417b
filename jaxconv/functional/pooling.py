"""Max and average pooling with ``torch.nn.functional``'s names, arguments, defaults and layouts.

Input ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; with
``channels_last=True`` ``(N, *spatial, C)`` or ``(*spatial, C)``. Per spatial dim
(input length L, kernel k, stride s, padding p, dilation d; ``stride=None``
means ``stride=kernel_size``) the output length is ATen's ``pooling_output_shape``:

    out = floor_or_ceil((L + 2p - d*(k-1) - 1) / s) + 1
    if ceil_mode and (out - 1)*s >= L + p: out -= 1   # last window may not start in the right pad

Window ``i`` covers positions ``i*s - p + j*d`` for ``j < k``; positions outside
``[0, L)`` are padding (``-inf`` for max pooling, ``0`` for average pooling).
Every op gathers each window's elements through a static table of flat
spatial indices (`Windows` per dim, combined by `window_table`) and reduces
over the slots; the adaptive pools in :mod:`jaxconv.functional.adaptive` use
the same machinery with PyTorch's adaptive bins. The gather materialises
``prod(kernel_size)`` slots per output element.

Max pooling returns, per (n, c), the value at PyTorch's argmax: the first
maximum in row-major window order, except that a NaN is the maximum (the last
NaN if there are several). ``return_indices=True`` also returns that argmax as
a flat index into the input's spatial dims (``h*W + w`` in 2D), int64 in
PyTorch, here int64 with ``jax_enable_x64`` and int32 otherwise. The output is
gathered from the input at those indices, so the gradient is a scatter-add of
the cotangent to the argmax, exactly PyTorch's backward.

Hyperparameters are static Python values; the ops work under ``jax.jit``,
``jax.grad`` and ``jax.vmap``. Results keep the input dtype.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.functional import _args, _vjp


@dataclasses.dataclass(frozen=True)
class Windows:
    """The pooling windows over one spatial dim of length ``length`` (hashable, so a static jit argument).

    Window ``i`` reads positions ``starts[i] + j*step`` for ``j < sizes[i]``;
    positions outside ``[0, length)`` are padding.
    """

    length: int
    starts: tuple[int, ...]
    sizes: tuple[int, ...]
    step: int = 1

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(index, valid)``, both ``(out, max(sizes))``: the positions clipped into
        ``[0, length)``, and which of them are real input elements of the window."""
        j = np.arange(max(self.sizes))[None, :]
        pos = np.asarray(self.starts)[:, None] + j * self.step
        valid = (j < np.asarray(self.sizes)[:, None]) & (pos >= 0) & (pos < self.length)
        return np.clip(pos, 0, self.length - 1), valid


def sliding_windows(length: int, kernel: int, stride: int, padding: int, dilation: int,
                    out: int) -> Windows:
    """Windows ``[i*s - p + j*d for j < k]`` of a max/avg pool over a dim of ``length``."""
    return Windows(length, tuple(i * stride - padding for i in range(out)), (kernel,) * out, dilation)


def pool_output_size(length: int, kernel: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool) -> int:
    """ATen's ``pooling_output_shape`` (floor division rounds towards -inf, as ``div_rtn``)."""
    out = (length + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= length + padding:
        out -= 1
    return out


def index_dtype() -> np.dtype:
    """int64 where jax has 64-bit ints enabled, int32 otherwise."""
    return np.dtype(np.int64 if jax.config.jax_enable_x64 else np.int32)


check_flag = _args.as_flag


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where an op's input keeps its batch and channel dims, relative to (N, C, *spatial)."""

    batched: bool
    channels_last: bool

    def batch(self, x: jnp.ndarray) -> jnp.ndarray:
        """With a batch dim of 1 if the input had none; channels stay where they are."""
        return x if self.batched else x[None]

    def unbatch(self, y: jnp.ndarray) -> jnp.ndarray:
        return y if self.batched else y[0]

    def to_ncs(self, x: jnp.ndarray) -> jnp.ndarray:
        x = self.batch(x)
        return jnp.moveaxis(x, -1, 1) if self.channels_last else x

    def from_ncs(self, y: jnp.ndarray) -> jnp.ndarray:
        return self.unbatch(jnp.moveaxis(y, 1, -1) if self.channels_last else y)


def prepare_input(op: str, input: Any, nd: int, channels_last: Any, *,
                  allow_empty_channels: bool | str = False) -> tuple[jnp.ndarray, Layout, tuple[int, ...]]:
    """Validates ``input``; returns it as a jax array, its `Layout` and its spatial shape.

    ``allow_empty_channels``: whether the channel dim may be empty: ``True``
    always, ``False`` never, ``"unbatched"`` only in an unbatched input (where
    PyTorch sees it as a leading batch-like dim, as its adaptive max pools and
    ``adaptive_avg_pool3d`` do).
    """
    channels_last = check_flag(channels_last, "channels_last")
    x = _args.check_float_array(input, "input")
    layout = Layout(_args.check_rank(x, nd, "input", op), channels_last)
    shape = tuple(x.shape)
    channels = shape[-1] if channels_last else shape[-nd - 1]
    spatial = shape[-nd - 1:-1] if channels_last else shape[-nd:]
    if allow_empty_channels == "unbatched":
        allow_empty_channels = not layout.batched
    if any(n == 0 for n in spatial) or (channels == 0 and not allow_empty_channels):
        what = "spatial" if allow_empty_channels else "non-batch"
        raise ValueError(f"{op}: expected input to have non-zero size for {what} dimensions, got shape {shape}")
    return x, layout, spatial


def window_table(windows: Sequence[Windows]) -> tuple[np.ndarray, np.ndarray]:
    """``(index, valid)``, both ``(*out, K)``: the flat spatial index of each slot of each window
    (row-major, ``h*W + w`` in 2D; padding slots clipped into range) and which slots are real elements.

    The window of output ``(i_1, ..., i_nd)`` is the product over spatial dims
    ``a`` of window ``i_a`` of ``windows[a]``; its ``K = prod_a max(sizes_a)``
    slots are in row-major order, so real slots have increasing flat indices.
    """
    nd = len(windows)
    index = np.zeros((1,) * 2 * nd, np.int64)
    valid = np.ones((1,) * 2 * nd, bool)
    for a, w in enumerate(windows):
        idx, ok = w.table()
        shape = [1] * 2 * nd
        shape[a], shape[nd + a] = idx.shape
        index = index * w.length + idx.reshape(shape)
        valid = valid & ok.reshape(shape)
    out = tuple(len(w.starts) for w in windows)
    return index.reshape(*out, -1), valid.reshape(*out, -1)


def _flatten_spatial(x: jnp.ndarray) -> jnp.ndarray:
    """(N, C, *spatial) -> (N, C, prod(spatial)), also for N = 0."""
    return x.reshape(*x.shape[:2], int(np.prod(x.shape[2:])))


def _gather_windows(x: jnp.ndarray, index: np.ndarray) -> jnp.ndarray:
    """(N, C, *spatial) -> (N, C, *out, K): the elements of ``x`` at the flat spatial ``index``."""
    return jnp.take(_flatten_spatial(x), jnp.asarray(index), axis=2, mode="clip")


@functools.partial(jax.jit, static_argnames=("windows", "layout"))
def max_over_windows(x: jnp.ndarray, windows: tuple[Windows, ...], layout: Layout
                     ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Max of each window of ``x`` (see `window_table`) by PyTorch's rule, and its flat spatial index.

    PyTorch scans a window in row-major order and takes an element when it is
    greater than the running max or is NaN: the result is the first maximum,
    unless the window holds a NaN, when it is the last NaN. The argmax is found
    on a gradient-stopped copy; the values are then gathered from ``x`` at it,
    so the gradient is a scatter-add of the cotangent to the argmax.
    """
    x = layout.to_ncs(x)
    index, valid = window_table(windows)
    values = jnp.where(valid, _gather_windows(jax.lax.stop_gradient(x), index), -jnp.inf)
    flat = jnp.asarray(index, index_dtype())
    nan = jnp.isnan(values)
    best = jnp.max(jnp.where(nan, -jnp.inf, values), axis=-1, keepdims=True)
    first_best = jnp.min(jnp.where(valid & (values == best), flat, np.iinfo(flat.dtype).max), axis=-1)
    last_nan = jnp.max(jnp.where(nan, flat, -1), axis=-1)
    argmax = jnp.where(jnp.any(nan, axis=-1), last_nan, first_best)
    picked = jnp.take_along_axis(_flatten_spatial(x), _flatten_spatial(argmax), axis=2, mode="clip")
    return layout.from_ncs(picked.reshape(argmax.shape)), layout.from_ncs(argmax)


@functools.partial(jax.jit, static_argnames=("windows", "divisors", "layout"))
def mean_over_windows(x: jnp.ndarray, windows: tuple[Windows, ...], divisors: int | tuple[tuple[int, ...], ...],
                      layout: Layout) -> jnp.ndarray:
    """Sum of each window of ``x`` (padding counting as 0) over a divisor.

    ``divisors`` is an int, or per spatial dim a divisor per window, the window
    of output ``(i_1, ..., i_nd)`` dividing by ``prod_a divisors[a][i_a]``.
    Half-precision inputs are summed in float32 (as PyTorch does) and the
    result rounded back to the input dtype.
    """
    dtype = x.dtype
    y = layout.to_ncs(x).astype(_args.accumulation_dtype(dtype))
    index, valid = window_table(windows)
    y = jnp.sum(jnp.where(valid, _gather_windows(y, index), 0), axis=-1)
    if isinstance(divisors, int):
        divisor = np.asarray(divisors)
    else:
        divisor = np.ones((), np.int64)
        for d in divisors:
            divisor = np.multiply.outer(divisor, np.asarray(d))
    return layout.from_ncs((y / divisor.astype(y.dtype)).astype(dtype))


@dataclasses.dataclass(frozen=True)
class _PoolArgs:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    out: tuple[int, ...]


def _pool_args(op: str, spatial: Sequence[int], kernel_size: Any, stride: Any, padding: Any,
               dilation: Any, ceil_mode: bool) -> _PoolArgs:
    nd = len(spatial)
    kernel = _args.ntuple(kernel_size, nd, "kernel_size", minimum=1)
    stride = _args.pool_stride(stride, kernel)
    padding = _args.ntuple(padding, nd, "padding", minimum=0)
    dilation = _args.ntuple(dilation, nd, "dilation", minimum=1)
    if op == "avg_pool3d" and any(length < k for length, k in zip(spatial, kernel)):
        raise ValueError(
            f"{op}: input spatial size {tuple(spatial)} is smaller than kernel_size {kernel} "
            "(PyTorch's avg_pool3d requires input size >= kernel_size in every dim, padding aside)"
        )
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(
            f"{op}: padding should be at most half of kernel_size (padding <= kernel_size // 2), "
            f"got padding={padding} and kernel_size={kernel}"
        )
    out = tuple(pool_output_size(*a, ceil_mode) for a in zip(spatial, kernel, stride, padding, dilation))
    if any(o < 1 for o in out):
        raise ValueError(
            f"{op}: output size {out} is too small: input spatial size {tuple(spatial)} with "
            f"kernel_size={kernel}, stride={stride}, padding={padding}, dilation={dilation}, "
            f"ceil_mode={ceil_mode} leaves no complete window"
        )
    return _PoolArgs(kernel, stride, padding, dilation, out)


def _max_pool(op: str, nd: int, input: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: Any, return_indices: Any, channels_last: Any):
    ceil_mode = check_flag(ceil_mode, "ceil_mode")
    return_indices = check_flag(return_indices, "return_indices")
    x, layout, spatial = prepare_input(op, input, nd, channels_last)
    args = _pool_args(op, spatial, kernel_size, stride, padding, dilation, ceil_mode)
    windows = tuple(sliding_windows(*a) for a in
                    zip(spatial, args.kernel, args.stride, args.padding, args.dilation, args.out))
    for a, w in enumerate(windows):
        empty = np.flatnonzero(~w.table()[1].any(axis=1))
        if empty.size:
            raise ValueError(
                f"{op}: with dilation={args.dilation}, window {int(empty[0])} of spatial dim {a} (input length "
                f"{spatial[a]}) holds only padding; PyTorch returns -inf there with an index outside the "
                "input (and a backward that writes outside it), so jaxconv rejects it: lower the dilation "
                "or the padding"
            )
    if not return_indices and (y := _vjp.tiled_max_pool(layout.batch(x), args, layout.channels_last)) is not None:
        return layout.unbatch(y)  # windows tile the input: slices + max, no gather/scatter
    y, indices = max_over_windows(x, windows, layout)
    return (y, indices) if return_indices else y


def _avg_pool(op: str, nd: int, input: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: Any,
              count_include_pad: Any, divisor_override: Any, channels_last: Any) -> jnp.ndarray:
    ceil_mode = check_flag(ceil_mode, "ceil_mode")
    count_include_pad = check_flag(count_include_pad, "count_include_pad")
    divisor_override = _args.divisor_override(divisor_override)
    x, layout, spatial = prepare_input(op, input, nd, channels_last)
    args = _pool_args(op, spatial, kernel_size, stride, padding, 1, ceil_mode)
    windows, divisors = [], []
    for length, k, s, p, out in zip(spatial, args.kernel, args.stride, args.padding, args.out):
        windows.append(sliding_windows(length, k, s, p, 1, out))
        start = np.arange(out) * s - p
        end = np.minimum(start + k, length + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, length)
        divisors.append(tuple(int(v) for v in end - start))
    divisor = divisor_override if divisor_override is not None else tuple(divisors)
    return mean_over_windows(x, tuple(windows), divisor, layout)


_MAX_DOC = """{nd}D max pooling, as ``torch.nn.functional.max_pool{nd}d``.

    ``y[n, c, i] = max_j x_pad[n, c, i*stride - padding + j*dilation]`` over the
    ``kernel_size`` window, padding being ``-inf``; needs
    ``padding <= kernel_size // 2``, and (unlike PyTorch, which returns ``-inf``
    and an index outside the input there) rejects a dilated window that holds
    only padding. See the module docstring for the output
    length (``ceil_mode``) and PyTorch's argmax rule (first maximum, NaN wins).
    With ``return_indices=True`` returns ``(y, indices)``, ``indices`` being the
    argmax as a flat index into the input's spatial dims (int32, int64 with
    ``jax_enable_x64``). Gradients go to the argmax only.
    """

_AVG_DOC = """{nd}D average pooling, as ``torch.nn.functional.avg_pool{nd}d``.

    ``y[n, c, i] = sum_j x_pad[n, c, i*stride - padding + j] / divisor`` over the
    ``kernel_size`` window, padding being 0; needs ``padding <= kernel_size // 2``.
    Per dim window ``i`` spans ``[i*s - p, min(i*s - p + k, L + p))`` (a
    ``ceil_mode`` window is clipped at the end of the right padding) and the
    divisor is ``divisor_override`` if given, else the product over dims of
    that span's length with ``count_include_pad=True``, or of the number of
    real (non-padding) elements in it with ``count_include_pad=False``.
    Half-precision inputs are summed in float32 and the result rounded back.
    """


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_last=False):
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, channels_last)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_last=False):
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, channels_last)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_last=False):
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, channels_last)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
               channels_last=False):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     None, channels_last)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, channels_last=False):
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, channels_last)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, channels_last=False):
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, channels_last)


for _nd, _max, _avg in ((1, max_pool1d, avg_pool1d), (2, max_pool2d, avg_pool2d), (3, max_pool3d, avg_pool3d)):
    _max.__doc__ = _MAX_DOC.format(nd=_nd)
    _avg.__doc__ = _AVG_DOC.format(nd=_nd)
