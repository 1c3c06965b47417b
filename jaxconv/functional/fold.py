"""``unfold`` / ``fold``: ``torch.nn.functional.unfold``/``fold`` (im2col / col2im) in JAX.

Both share their code with the ``im2col`` convolution (`jaxconv.functional._im2col`):
``unfold`` is `_im2col.patches`, ``fold`` is its adjoint `_im2col.col2im`.

For a 2D input of spatial size ``(H, W)``, kernel ``k``, dilation ``d``, padding
``p`` and stride ``s`` (each an int or a pair), the number of sliding blocks is

    B_i = floor((S_i + 2*p_i - d_i*(k_i - 1) - 1) / s_i) + 1,   L = B_0 * B_1

* ``unfold(x_NCHW)`` -> ``cols (N, C*k0*k1, L)``, channel outermost then kernel
  offsets row-major, blocks row-major::

      cols[n, (c*k0 + i)*k1 + j, b0*B_1 + b1] = x_pad[n, c, b0*s0 + i*d0, b1*s1 + j*d1]

* ``fold(cols, output_size)`` -> ``x (N, C, *output_size)``: the adjoint, every
  column entry is added back where ``unfold`` read it, padding cropped. So
  ``fold(unfold(x)) == x * coverage`` where ``coverage[i]`` counts the windows
  that contain pixel ``i``.

As in PyTorch, only 2D spatial inputs are supported: ``unfold`` takes 4D
``(N, C, H, W)`` or unbatched 3D ``(C, H, W)``, ``fold`` takes 3D
``(N, C*prod(k), L)`` or unbatched 2D ``(C*prod(k), L)``. The batch may be
empty, no other dim may be. ``kernel_size``, ``dilation``, ``stride`` are
positive, ``padding`` non-negative, each an int or a tuple of exactly 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

from jaxconv.functional import _args, _im2col


def _pair(value: Any, name: str, op: str, *, minimum: int) -> tuple[int, int]:
    """An int or a sequence of exactly 2 ints (PyTorch's unfold/fold reject length 1)."""
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) != 2:
        raise ValueError(
            f"{op}: {name} must be an int or a tuple of 2 ints (only 2D spatial inputs are "
            f"supported), got {tuple(value)!r} of length {len(value)}"
        )
    return _args.ntuple(value, 2, name, minimum=minimum)


def _hyper(op: str, kernel_size, dilation, padding, stride):
    return (
        _pair(kernel_size, "kernel_size", op, minimum=1),
        _pair(dilation, "dilation", op, minimum=1),
        _pair(padding, "padding", op, minimum=0),
        _pair(stride, "stride", op, minimum=1),
    )


def _describe(kernel, dilation, padding, stride) -> str:
    return f"kernel_size={kernel}, dilation={dilation}, padding={padding}, stride={stride}"


def unfold(input: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> jnp.ndarray:
    """Sliding local blocks of a 2D input, as ``torch.nn.functional.unfold``.

    ``input``: ``x_NCHW`` (N, C, H, W) or (C, H, W). Returns ``cols_NKL``
    (N, C*k0*k1, L) or (C*k0*k1, L); see the module docstring for the layout.
    """
    x = _args.check_float_array(input, "input")
    batched = _args.check_rank(x, 2, "input", "unfold")
    inner = x.shape[1:] if batched else x.shape
    if any(n == 0 for n in inner):
        raise ValueError(
            f"unfold: input may have an empty batch dim but no other empty dim, got shape {tuple(x.shape)}"
        )
    kernel, dilation, padding, stride = _hyper("unfold", kernel_size, dilation, padding, stride)
    spatial = x.shape[-2:]
    blocks = _im2col.num_blocks([n + 2 * p for n, p in zip(spatial, padding)], kernel, stride, dilation)
    if any(b < 1 for b in blocks):
        raise ValueError(
            f"unfold: input of spatial size {tuple(spatial)} with {_describe(kernel, dilation, padding, stride)} "
            f"gives {blocks} sliding blocks; each must be >= 1 (the padded input must be at least "
            f"the dilated kernel size {tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))})"
        )
    x_NCHW = x if batched else x[None]
    n, c = x_NCHW.shape[:2]
    cols_NCKB = _im2col.patches(x_NCHW, kernel, stride, dilation, [(p, p) for p in padding], axis=2)
    cols_NKL = cols_NCKB.reshape(n, c * math.prod(kernel), math.prod(blocks))
    return cols_NKL if batched else cols_NKL[0]


def fold(input: Any, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> jnp.ndarray:
    """Sums sliding local blocks into a 2D output, as ``torch.nn.functional.fold``.

    ``input``: ``cols_NKL`` (N, C*k0*k1, L) or (C*k0*k1, L) with ``L`` the
    number of blocks of ``output_size`` (see the module docstring). Returns
    ``x_NCHW`` (N, C, *output_size) or (C, *output_size). Overlapping blocks add.
    """
    cols = _args.check_float_array(input, "input")
    if cols.ndim not in (2, 3):
        raise ValueError(
            f"fold: expected input to be 2D (C*prod(kernel_size), L) (unbatched) or 3D "
            f"(N, C*prod(kernel_size), L) (batched), got {cols.ndim}D with shape {tuple(cols.shape)}"
        )
    batched = cols.ndim == 3
    inner = cols.shape[1:] if batched else cols.shape
    if any(n == 0 for n in inner):
        raise ValueError(
            f"fold: input may have an empty batch dim but no other empty dim, got shape {tuple(cols.shape)}"
        )
    output_size = _pair(output_size, "output_size", "fold", minimum=1)
    kernel, dilation, padding, stride = _hyper("fold", kernel_size, dilation, padding, stride)
    K = math.prod(kernel)
    ck, length = inner
    if ck % K:
        raise ValueError(
            f"fold: input.shape[{len(cols.shape) - 2}] = {ck} must be divisible by the product of "
            f"kernel_size={kernel} ({K}), as it holds C * prod(kernel_size) values"
        )
    blocks = _im2col.num_blocks([n + 2 * p for n, p in zip(output_size, padding)], kernel, stride, dilation)
    desc = f"output_size={output_size}, {_describe(kernel, dilation, padding, stride)}"
    if any(b < 1 for b in blocks):
        raise ValueError(
            f"fold: {desc} gives {blocks} sliding blocks; each must be >= 1 (output_size + 2*padding "
            f"must be at least the dilated kernel size)"
        )
    if length != math.prod(blocks):
        raise ValueError(
            f"fold: input.shape[{len(cols.shape) - 1}] = {length} must equal the number of sliding "
            f"blocks {blocks[0]} * {blocks[1]} = {math.prod(blocks)} given {desc}"
        )
    cols_NKL = cols if batched else cols[None]
    n = cols_NKL.shape[0]
    cols_NCKB = cols_NKL.reshape(n, ck // K, K, *blocks)
    x_NCHW = _im2col.col2im(cols_NCKB, output_size, kernel, stride, dilation, [(p, p) for p in padding],
                            axis=2)
    return x_NCHW if batched else x_NCHW[0]
