"""Max and average pooling with ``torch.nn.functional``'s names, arguments, defaults and layouts.

Input ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; with
``channels_last=True`` ``(N, *spatial, C)`` or ``(*spatial, C)``. Per spatial dim
(input length L, kernel k, stride s, padding p, dilation d; ``stride=None``
means ``stride=kernel_size``) the output length is ATen's ``pooling_output_shape``:

    out = floor_or_ceil((L + 2p - d*(k-1) - 1) / s) + 1
    if ceil_mode and (out - 1)*s >= L + p: out -= 1   # last window may not start in the right pad

Window ``i`` covers positions ``i*s - p + j*d`` for ``j < k``; positions outside
``[0, L)`` are padding (``-inf`` for max pooling, ``0`` for average pooling).
Every op is a separable reduction over per-dim window tables (`Windows`): the
same machinery serves the adaptive pools in :mod:`jaxconv.functional.adaptive`.

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
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.functional import _args


@dataclasses.dataclass(frozen=True)
class Windows:
    """One spatial dim's pooling windows: window ``i`` reads ``index[i, j]`` where ``valid[i, j]``.

    ``index`` is ``(out, K)`` int positions into the input dim, clipped into
    ``[0, L)``; ``valid`` marks the positions that are real input elements (the
    rest are padding or, for windows shorter than K, unused slots).
    """

    index: np.ndarray
    valid: np.ndarray


def sliding_windows(length: int, kernel: int, stride: int, padding: int, dilation: int,
                    out: int) -> Windows:
    """Windows ``[i*s - p + j*d for j < k]`` of a max/avg pool over a dim of ``length``."""
    pos = (np.arange(out) * stride - padding)[:, None] + np.arange(kernel)[None, :] * dilation
    return Windows(np.clip(pos, 0, length - 1), (pos >= 0) & (pos < length))


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


def check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool (True or False), got {type(value).__name__} {value!r}")
    return bool(value)


def prepare_input(op: str, input: Any, nd: int, channels_last: bool, *,
                  allow_empty_channels: bool = False) -> tuple[jnp.ndarray, bool]:
    """Validates ``input`` and returns it as (N, C, *spatial), with whether it was batched."""
    channels_last = check_flag(channels_last, "channels_last")
    x = _args.check_float_array(input, "input")
    shape = tuple(x.shape)
    batched = _args.check_rank(x, nd, "input", op)
    if not batched:
        x = x[None]
    if channels_last:
        x = jnp.moveaxis(x, -1, 1)
    if any(n == 0 for n in x.shape[2:]) or (x.shape[1] == 0 and not allow_empty_channels):
        what = "spatial" if allow_empty_channels else "non-batch"
        raise ValueError(
            f"{op}: expected input to have non-zero size for {what} dimensions, "
            f"got shape {shape}"
        )
    return x, batched


def restore_layout(y: jnp.ndarray, batched: bool, channels_last: bool) -> jnp.ndarray:
    """Inverse of `prepare_input`'s layout change for a (N, C, *out) result."""
    if channels_last:
        y = jnp.moveaxis(y, 1, -1)
    return y if batched else y[0]


def _gather_windows(x: jnp.ndarray, axis: int, windows: Windows, fill: Any) -> jnp.ndarray:
    """``x`` with ``axis`` replaced by (out, K) window slots; padding slots hold ``fill``."""
    g = jnp.take(x, jnp.asarray(windows.index), axis=axis, mode="clip")
    valid = windows.valid.reshape(windows.valid.shape + (1,) * (x.ndim - axis - 1))
    return jnp.where(valid, g, jnp.asarray(fill, x.dtype))


def _torch_max_along(values: jnp.ndarray, flat: jnp.ndarray, axis: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Reduces (value, flat index) pairs along ``axis`` by PyTorch's max order.

    NaN beats everything and the largest index wins among NaNs; otherwise the
    largest value wins and the smallest index among equal values. This is a
    total order, so reducing one dim at a time gives the same winner as PyTorch's
    row-major scan over the whole window.
    """
    nan = jnp.isnan(values)
    any_nan = jnp.any(nan, axis=axis)
    best = jnp.max(jnp.where(nan, -jnp.inf, values), axis=axis)
    big = np.iinfo(flat.dtype).max
    at_best = (values == jnp.expand_dims(best, axis)) & ~nan
    first_best = jnp.min(jnp.where(at_best, flat, big), axis=axis)
    last_nan = jnp.max(jnp.where(nan, flat, -1), axis=axis)
    return jnp.where(any_nan, jnp.nan, best).astype(values.dtype), jnp.where(any_nan, last_nan, first_best)


def window_argmax(x: jnp.ndarray, windows: Sequence[Windows]) -> jnp.ndarray:
    """PyTorch's argmax of each window of ``x`` (N, C, *spatial): flat spatial indices (N, C, *out).

    The window of output ``(i_1, ..., i_nd)`` is the product of ``windows[a]``'s
    row ``i_a`` over the spatial dims a.
    """
    values = jax.lax.stop_gradient(x)
    spatial = x.shape[2:]
    flat = jnp.broadcast_to(jnp.arange(int(np.prod(spatial)), dtype=index_dtype()).reshape(spatial), x.shape)
    for a, w in enumerate(windows):
        axis = 2 + a
        v = _gather_windows(values, axis, w, -jnp.inf)
        f = _gather_windows(flat, axis, w, np.iinfo(flat.dtype).max)
        values, flat = _torch_max_along(v, f, axis + 1)
    return flat


def gather_flat(x: jnp.ndarray, indices: jnp.ndarray) -> jnp.ndarray:
    """``x[n, c, unravel(indices[n, c, ...])]``: values of (N, C, *spatial) at flat spatial indices."""
    n, c = x.shape[:2]
    picked = jnp.take_along_axis(x.reshape(n, c, -1), indices.reshape(n, c, -1), axis=2, mode="clip")
    return picked.reshape(indices.shape)


def window_sum(x: jnp.ndarray, windows: Sequence[Windows]) -> jnp.ndarray:
    """Sum of each window of ``x`` (N, C, *spatial), padding counting as 0: (N, C, *out)."""
    for a, w in enumerate(windows):
        axis = 2 + a
        x = jnp.sum(_gather_windows(x, axis, w, 0), axis=axis + 1)
    return x


def accumulation_dtype(dtype: Any) -> np.dtype:
    """float32 for half-precision inputs (PyTorch accumulates them in float), else the dtype."""
    return np.promote_types(dtype, np.float32)


def outer_product(factors: Sequence[np.ndarray]) -> np.ndarray:
    """``out[i_1, ..., i_n] = prod_a factors[a][i_a]``."""
    out = np.ones((), dtype=np.int64)
    for f in factors:
        out = np.multiply.outer(out, f)
    return out


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
    if stride is None or (isinstance(stride, Sequence) and not isinstance(stride, str) and len(stride) == 0):
        stride = kernel
    else:
        stride = _args.ntuple(stride, nd, "stride", minimum=1)
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
    x, batched = prepare_input(op, input, nd, channels_last)
    args = _pool_args(op, x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    windows = [sliding_windows(*a) for a in
               zip(x.shape[2:], args.kernel, args.stride, args.padding, args.dilation, args.out)]
    indices = window_argmax(x, windows)
    y = restore_layout(gather_flat(x, indices), batched, channels_last)
    if return_indices:
        return y, restore_layout(indices, batched, channels_last)
    return y


def _avg_pool(op: str, nd: int, input: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: Any,
              count_include_pad: Any, divisor_override: Any, channels_last: Any) -> jnp.ndarray:
    ceil_mode = check_flag(ceil_mode, "ceil_mode")
    count_include_pad = check_flag(count_include_pad, "count_include_pad")
    if divisor_override is not None:
        divisor_override = _args.as_int(divisor_override, "divisor_override")
        if divisor_override == 0:
            raise ValueError("divisor_override must be a non-zero int or None, got 0")
    x, batched = prepare_input(op, input, nd, channels_last)
    spatial = x.shape[2:]
    args = _pool_args(op, spatial, kernel_size, stride, padding, 1, ceil_mode)
    windows, sizes = [], []
    for length, k, s, p, out in zip(spatial, args.kernel, args.stride, args.padding, args.out):
        windows.append(sliding_windows(length, k, s, p, 1, out))
        start = np.arange(out) * s - p
        end = np.minimum(start + k, length + p)
        if count_include_pad:
            sizes.append(end - start)
        else:
            sizes.append(np.minimum(end, length) - np.maximum(start, 0))
    divisor = divisor_override if divisor_override is not None else outer_product(sizes)
    acc = accumulation_dtype(x.dtype)
    y = window_sum(x.astype(acc), windows) / jnp.asarray(divisor, acc)
    return restore_layout(y.astype(x.dtype), batched, channels_last)


_MAX_DOC = """{nd}D max pooling, as ``torch.nn.functional.max_pool{nd}d``.

    ``y[n, c, i] = max_j x_pad[n, c, i*stride - padding + j*dilation]`` over the
    ``kernel_size`` window, padding being ``-inf``; needs
    ``padding <= kernel_size // 2``. See the module docstring for the output
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
