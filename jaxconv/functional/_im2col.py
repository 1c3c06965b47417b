"""``impl="im2col"``: convolution as one GEMM over gathered patches; its adjoint, col2im.

The math (per spatial dim: L input length, k kernel, s stride, d dilation,
``(lo, hi)`` padding, ``B = floor((L + lo + hi - d*(k-1) - 1) / s) + 1`` blocks;
over ``nd`` dims ``K = prod(k)`` kernel offsets and ``L_out = prod(B)`` blocks):

* **im2col** (`patches`) copies every receptive field of the zero-padded input
  into a column::

      cols[n, c, j, b] = x_pad[n, c, b*s + j*d]        (j, b multi-indices, row-major)

  which is ``torch.nn.functional.unfold``'s tensor ``(N, C*K, L_out)`` (channel
  outermost, then kernel offsets row-major). It is built with one strided
  ``lax.slice`` per kernel offset (a static Python loop), so it costs ``K`` times
  the input's memory when the stride is 1: ``k**nd`` for a cubic kernel.

* **convolution** is then a single GEMM per group (a batched GEMM over groups)::

      y[n, g, o, b] = sum_{c, j} w[g, o, c, j] * cols[n, g, c, j, b]

  i.e. ``W (C_out/g, C_in/g*K) @ cols (C_in/g*K, L_out)``: the convolution's
  structure is all in the gather, the arithmetic is one matrix product.

* **col2im** (`col2im`) is the adjoint (transpose) of im2col: every column entry
  is added back at the input position it was read from, overlapping windows
  accumulate, and the padding is cropped away::

      x[n, c, i] = sum_{j, b : b*s + j*d - lo = i} cols[n, c, j, b]

  It is ``torch.nn.functional.fold``. Each kernel offset's slab of columns is
  scattered onto the full-size output with ``lax.pad`` (interior padding
  ``s - 1`` puts consecutive blocks ``s`` apart, low padding ``j*d`` shifts it to
  its offset), the exact adjoint of that offset's strided slice, and the ``K``
  slabs are summed.

* **transposed convolution** is a GEMM then col2im: the input's channels are
  multiplied into columns ``cols[n, g, o, j, l] = sum_c w[g, c, o, j] x[n, g, c, l]``
  (``(C_out/g*K, C_in/g) @ (C_in/g, L)`` per group), then col2im with the conv's
  stride and dilation scatters them onto the "full" output of length
  ``(L-1)*s + d*(k-1) + 1``, and ``spec.padding = (p, p - output_padding)`` is
  cropped off (a negative crop appends zeros, which is PyTorch's
  ``output_padding``).

Everything here is built from ``lax.pad``, ``lax.slice``, reshapes and
``jnp.einsum`` with static shapes, so it works under ``jax.jit``, ``jax.vmap``
and ``jax.grad`` (gradients come from JAX's autodiff: the adjoint of the gather
is the scatter and vice versa). No ``lax`` convolution is used. The entry
points are ``jax.jit``-compiled with their hyperparameters static, so an eager
call compiles the whole gather/GEMM/scatter once instead of dispatching ``K``
slices one by one.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.functional._spec import ConvSpec

Pairs = Sequence[tuple[int, int]]


def num_blocks(padded: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
               dilation: Sequence[int]) -> tuple[int, ...]:
    """Sliding blocks per spatial dim over a padded size: ``floor((P - d*(k-1) - 1) / s) + 1``.

    Non-positive when the dilated kernel does not fit; callers validate.
    """
    return tuple((p - d * (k - 1) - 1) // s + 1
                 for p, k, s, d in zip(padded, kernel, stride, dilation, strict=True))


def _offsets(kernel: Sequence[int]):
    """Kernel offsets as multi-indices in row-major order (last dim fastest), as PyTorch."""
    return itertools.product(*(range(k) for k in kernel))


def _pad_config(ndim: int, axis: int, pairs: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """``lax.pad`` config touching only the spatial axes ``axis, axis+1, ...``."""
    config = [(0, 0, 0)] * ndim
    for i, pair in enumerate(pairs):
        config[axis + i] = pair
    return config


def _static(kernel, stride, dilation, padding) -> tuple:
    """Hyperparameters as hashable tuples of Python ints (static arguments of ``jax.jit``)."""
    return (tuple(int(k) for k in kernel), tuple(int(s) for s in stride),
            tuple(int(d) for d in dilation), tuple((int(lo), int(hi)) for lo, hi in padding))


def patches(x: jnp.ndarray, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
            padding: Pairs, *, axis: int = 2) -> jnp.ndarray:
    """im2col: every (dilated, strided) window of the zero-padded input, offsets on a new axis.

    ``x`` has its ``nd = len(kernel)`` spatial dims at ``axis, ..., axis+nd-1``;
    ``padding`` is ``(lo, hi)`` per spatial dim (zeros; negative crops). The
    result has a kernel-offset axis of size ``K = prod(kernel)`` (offsets
    row-major) inserted at ``axis`` and the spatial dims replaced by the block
    counts ``B``::

        axis=2, x_NCS (N, C, *S)  ->  cols_NCKB (N, C, K, *B)
        axis=1, x_NSC (N, *S, C)  ->  cols_NKBC (N, K, *B, C)

    ``cols_NCKB.reshape(N, C*K, prod(B))`` is ``torch.nn.functional.unfold``'s
    output. Needs every ``B >= 1`` (checked by the callers). Compiled once per
    shape and hyperparameters (``jax.jit``), so eager calls are fast too.
    """
    return _patches(x, *_static(kernel, stride, dilation, padding), axis)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _patches(x, kernel, stride, dilation, padding, axis):
    nd = len(kernel)
    x_pad = lax.pad(x, jnp.zeros((), x.dtype), _pad_config(x.ndim, axis, [(lo, hi, 0) for lo, hi in padding]))
    spatial = x_pad.shape[axis:axis + nd]
    blocks = num_blocks(spatial, kernel, stride, dilation)
    slabs = []
    for offset in _offsets(kernel):
        start = [0] * x.ndim
        limit = list(x_pad.shape)
        strides = [1] * x.ndim
        for i, (j, b, s, d) in enumerate(zip(offset, blocks, stride, dilation)):
            start[axis + i] = j * d
            limit[axis + i] = j * d + (b - 1) * s + 1
            strides[axis + i] = s
        slabs.append(lax.slice(x_pad, start, limit, strides))
    return jnp.stack(slabs, axis=axis)


def col2im(cols: jnp.ndarray, spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int], padding: Pairs, *, axis: int = 2) -> jnp.ndarray:
    """The adjoint of `patches`: scatter-add columns back onto an input of size ``spatial``.

    ``cols`` has the layout `patches` returns (kernel-offset axis of size
    ``prod(kernel)`` at ``axis``, then the block dims ``B``). Each offset's slab
    is placed on the padded canvas of size ``spatial + lo + hi`` at ``j*d`` with
    its blocks ``s`` apart, overlapping entries add up, then ``(lo, hi)`` is
    cropped off (a negative ``hi`` appends zeros). Needs
    ``spatial + lo + hi >= (B-1)*s + d*(k-1) + 1``; the part of the canvas past
    the last window (when the stride does not divide evenly) receives nothing.

        axis=2: cols_NCKB (N, C, K, *B)  ->  x_NCS (N, C, *spatial)
        axis=1: cols_NKBC (N, K, *B, C)  ->  x_NSC (N, *spatial, C)
    """
    return _col2im(cols, tuple(int(n) for n in spatial), *_static(kernel, stride, dilation, padding), axis)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6))
def _col2im(cols, spatial, kernel, stride, dilation, padding, axis):
    nd = len(kernel)
    blocks = cols.shape[axis + 1:axis + 1 + nd]
    canvas = [n + lo + hi for n, (lo, hi) in zip(spatial, padding)]
    zero = jnp.zeros((), cols.dtype)
    total = None
    for index, offset in enumerate(_offsets(kernel)):
        slab = lax.index_in_dim(cols, index, axis, keepdims=False)
        pairs = [(j * d, size - j * d - (b - 1) * s - 1, s - 1)
                 for j, b, s, d, size in zip(offset, blocks, stride, dilation, canvas)]
        placed = lax.pad(slab, zero, _pad_config(slab.ndim, axis, pairs))
        total = placed if total is None else total + placed
    crop = [(-lo, -hi, 0) for lo, hi in padding]
    return lax.pad(total, zero, _pad_config(total.ndim, axis, crop))


@functools.partial(jax.jit, static_argnums=(2, 3))
def conv(x: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """Convolution (PyTorch's cross-correlation) as im2col + one batched-over-groups GEMM.

    ``x``: (N, C_in, *S) or, with ``channels_last``, (N, *S, C_in); ``w``:
    (C_out, C_in/g, *k). Returns (N, C_out, *B) or (N, *B, C_out), no bias.
    """
    nd, g = spec.nd, spec.groups
    kernel = w.shape[2:]
    c_out, c_in_g = w.shape[:2]
    K = math.prod(kernel)
    w_GOCK = w.reshape(g, c_out // g, c_in_g, K)
    if channels_last:
        cols_NKBC = patches(x, kernel, spec.stride, spec.dilation, spec.padding, axis=1)
        blocks = cols_NKBC.shape[2:2 + nd]
        n = cols_NKBC.shape[0]
        if g == 1:
            # One plain GEMM (N*L, K*C) @ (K*C, O). With the einsum below XLA transposed the
            # columns and the result around it (1x1 s2 64->128 56x56 b16 channels-last:
            # forward 14.9 -> 4.8 ms).
            cols_LKC = jnp.moveaxis(cols_NKBC, 1, 1 + nd).reshape(n * math.prod(blocks), K * c_in_g)
            w_KCO = w_GOCK[0].transpose(2, 1, 0).reshape(K * c_in_g, c_out)
            return (cols_LKC @ w_KCO).reshape(n, *blocks, c_out)
        cols = cols_NKBC.reshape(n, K, math.prod(blocks), g, c_in_g)
        y_NLGO = jnp.einsum("nklgc,gock->nlgo", cols, w_GOCK)
        return y_NLGO.reshape(n, *blocks, c_out)
    cols_NCKB = patches(x, kernel, spec.stride, spec.dilation, spec.padding, axis=2)
    n = cols_NCKB.shape[0]
    blocks = cols_NCKB.shape[3:]
    if K == 1:
        # Pointwise: one GEMM per sample and group with the weight broadcast over the
        # batch writes (N, G, O, L) directly; the einsum below would have XLA transpose
        # its (G, N, L, O) result (1x1 64->128 32x32 b32: forward 10.6 vs 14.1 ms).
        cols_NGCL = cols_NCKB.reshape(n, g, c_in_g, math.prod(blocks))
        w_NGOC = jnp.broadcast_to(w_GOCK[..., 0], (n, *w_GOCK.shape[:3]))
        y_NGOL = lax.dot_general(w_NGOC, cols_NGCL, (((3,), (2,)), ((0, 1), (0, 1))))
        return y_NGOL.reshape(n, c_out, *blocks)
    cols = cols_NCKB.reshape(n, g, c_in_g, K, math.prod(blocks))
    y_NGOL = jnp.einsum("ngckl,gock->ngol", cols, w_GOCK)
    return y_NGOL.reshape(n, c_out, *blocks)


@functools.partial(jax.jit, static_argnums=(2, 3))
def conv_transpose(x: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """Transposed convolution as a GEMM into columns followed by col2im (`col2im`).

    ``x``: (N, C_in, *L) or (N, *L, C_in); ``w``: (C_in, C_out/g, *k). Output
    per dim ``(L-1)*s + d*(k-1) + 1 - lo - hi`` with ``(lo, hi) = spec.padding``.
    """
    g = spec.groups
    kernel = w.shape[2:]
    c_in, c_out_g = w.shape[:2]
    K = math.prod(kernel)
    w_GCOK = w.reshape(g, c_in // g, c_out_g, K)
    if channels_last:
        n, *length = x.shape[:-1]
        x_NLGC = x.reshape(n, math.prod(length), g, c_in // g)
        cols_NKLGO = jnp.einsum("nlgc,gcok->nklgo", x_NLGC, w_GCOK)
        cols = cols_NKLGO.reshape(n, K, *length, g * c_out_g)          # cols_NKBC
        axis = 1
    else:
        n, _, *length = x.shape
        x_NGCL = x.reshape(n, g, c_in // g, math.prod(length))
        cols_NGOKL = jnp.einsum("ngcl,gcok->ngokl", x_NGCL, w_GCOK)
        cols = cols_NGOKL.reshape(n, g * c_out_g, K, *length)          # cols_NCKB
        axis = 2
    out = spec.out_spatial(length, kernel)
    return col2im(cols, out, kernel, spec.stride, spec.dilation, spec.padding, axis=axis)
