"""`ConvSpec`: a convolution's hyperparameters, normalised and validated once.

Every conv implementation (``lax``, ``im2col``, ``fft``) receives a batched
input, a weight in PyTorch's layout and a `ConvSpec`; none of them re-checks
arguments. A `ConvSpec` is hashable so it can be a static argument of
``jax.jit``/``jax.custom_vjp``.

Shapes (per spatial dim, L input length, k kernel, s stride, d dilation):

* convolution, padding ``(lo, hi)`` added to the input:
  ``out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1``
* transposed convolution with ``padding=p`` and ``output_padding=op``:
  ``out = (L-1)*s - 2p + d*(k-1) + op + 1``. Here ``padding`` holds the
  crop ``(p, p - op)`` taken off the "full" output of length
  ``(L-1)*s + d*(k-1) + 1`` (a negative crop appends zeros, as PyTorch does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from jaxconv.functional import _args

Pairs = tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    nd: int
    stride: tuple[int, ...]
    padding: Pairs
    dilation: tuple[int, ...]
    groups: int
    transposed: bool = False
    output_padding: tuple[int, ...] = ()

    def out_spatial(self, in_spatial: Sequence[int], kernel: Sequence[int]) -> tuple[int, ...]:
        out = []
        for length, k, s, d, (lo, hi) in zip(
            in_spatial, kernel, self.stride, self.dilation, self.padding, strict=True
        ):
            if self.transposed:
                out.append((length - 1) * s + d * (k - 1) + 1 - lo - hi)
            else:
                out.append((length + lo + hi - d * (k - 1) - 1) // s + 1)
        return tuple(out)


def _resolve_padding(padding: Any, nd: int, kernel, dilation, stride, op: str) -> Pairs:
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{op}: padding='same' is not supported for strided convolutions "
                    f"(stride={stride}); use stride=1 or give padding as ints"
                )
            # PyTorch puts the odd extra pad at the end of each dim.
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(
            f"{op}: padding must be 'same', 'valid', an int or a tuple of {nd} ints, got {padding!r}"
        )
    p = _args.ntuple(padding, nd, "padding", minimum=0)
    return tuple((v, v) for v in p)


def conv_spec(
    op: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    *,
    nd: int,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    channels_last: bool,
    transposed: bool = False,
    output_padding: Any = 0,
) -> ConvSpec:
    """Validates a (transposed) convolution call and returns its `ConvSpec`.

    ``x_shape`` is batched ((N, C, *spatial) or (N, *spatial, C) with
    ``channels_last``); ``w_shape`` is PyTorch's weight layout.
    """
    if len(w_shape) != nd + 2:
        layout = "(in, out/groups, *kernel)" if transposed else "(out, in/groups, *kernel)"
        raise ValueError(
            f"{op}: weight must be {nd + 2}D {layout}, got shape {tuple(w_shape)}"
        )
    groups = _args.as_int(groups, "groups", minimum=1)
    stride = _args.ntuple(stride, nd, "stride", minimum=1)
    dilation = _args.ntuple(dilation, nd, "dilation", minimum=1)
    kernel = tuple(w_shape[2:])
    if any(k < 1 for k in kernel) or w_shape[0] < 1 or w_shape[1] < 1:
        raise ValueError(f"{op}: weight has a zero-sized dim: shape {tuple(w_shape)}")
    in_ch = x_shape[-1] if channels_last else x_shape[1]
    spatial = x_shape[1:-1] if channels_last else x_shape[2:]
    if any(s < 1 for s in spatial):
        raise ValueError(f"{op}: input has a zero-sized spatial dim: shape {tuple(x_shape)}")

    if transposed:
        if isinstance(padding, str):
            raise ValueError(f"{op}: padding must be an int or a tuple of {nd} ints, got {padding!r}")
        if w_shape[0] % groups:
            raise ValueError(
                f"{op}: weight.shape[0] (in_channels={w_shape[0]}) must be divisible by groups={groups}"
            )
        if in_ch != w_shape[0]:
            raise ValueError(
                f"{op}: input has {in_ch} channels but weight of shape {tuple(w_shape)} expects "
                f"{w_shape[0]} (weight layout is (in_channels, out_channels/groups, *kernel))"
            )
        pad = _args.ntuple(padding, nd, "padding", minimum=0)
        out_pad = _args.ntuple(output_padding, nd, "output_padding", minimum=0)
        for o, s, d in zip(out_pad, stride, dilation):
            if o >= s and o >= d:
                raise ValueError(
                    f"{op}: output_padding={out_pad} must be smaller than either stride={stride} "
                    f"or dilation={dilation} in every dim"
                )
        spec = ConvSpec(nd, stride, tuple((p, p - o) for p, o in zip(pad, out_pad)), dilation,
                        groups, True, out_pad)
    else:
        if in_ch % groups:
            raise ValueError(f"{op}: input channels ({in_ch}) must be divisible by groups={groups}")
        if w_shape[0] % groups:
            raise ValueError(
                f"{op}: weight.shape[0] (out_channels={w_shape[0]}) must be divisible by groups={groups}"
            )
        if in_ch != w_shape[1] * groups:
            raise ValueError(
                f"{op}: input has {in_ch} channels but weight of shape {tuple(w_shape)} with "
                f"groups={groups} expects {w_shape[1] * groups} (weight.shape[1] * groups)"
            )
        pads = _resolve_padding(padding, nd, kernel, dilation, stride, op)
        spec = ConvSpec(nd, stride, pads, dilation, groups)
        padded = [length + lo + hi for length, (lo, hi) in zip(spatial, pads)]
        for p, k, d in zip(padded, kernel, dilation):
            if p < d * (k - 1) + 1:
                raise ValueError(
                    f"{op}: padded input size per channel {tuple(padded)} is smaller than the "
                    f"dilated kernel size {tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))}"
                )
    out = spec.out_spatial(spatial, kernel)
    # PyTorch returns an empty output where a transposed conv's output length is exactly 0.
    if any(o < (0 if transposed else 1) for o in out):
        raise ValueError(f"{op}: calculated output size {out} is too small for input shape {tuple(x_shape)}")
    return spec
