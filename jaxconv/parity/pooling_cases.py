"""Seeded random valid calls of the pooling ops (max/avg/adaptive, 1D-3D), as parity `Case`s.

Case ``i`` of an op forces some options by ``i`` (so a handful of cases per op
covers ``return_indices``, ``ceil_mode``, a ``ceil_mode`` window dropped for
starting in the right padding, ``count_include_pad=False``, ``divisor_override``,
``stride=None``, unbatched and channels-last inputs, ``None`` in adaptive
``output_size``) and draws the rest at random. Inputs are standard normal
float32, so windows have no ties.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxconv import functional as F
from jaxconv.functional.pooling import pool_output_size, sliding_windows
from jaxconv.parity.compare import Case

MAX_OPS = ("max_pool1d", "max_pool2d", "max_pool3d")
AVG_OPS = ("avg_pool1d", "avg_pool2d", "avg_pool3d")
ADAPTIVE_MAX_OPS = ("adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")
ADAPTIVE_AVG_OPS = ("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d")
OPS = MAX_OPS + AVG_OPS + ADAPTIVE_MAX_OPS + ADAPTIVE_AVG_OPS


def _torch_call(name: str, nd: int, args: tuple, kw: dict, channels_last: bool):
    """torch.nn.functional.<name>(x, *args, **kw) taking/returning channels-last arrays when asked."""

    def call(x):
        import torch.nn.functional as tF

        batched = x.dim() == nd + 2
        if channels_last:
            x = x.movedim(-1, 1 if batched else 0)
        out = getattr(tF, name)(x, *args, **kw)
        if not channels_last:
            return out
        outs = out if isinstance(out, tuple) else (out,)
        outs = tuple(o.movedim(1 if batched else 0, -1) for o in outs)
        return outs if isinstance(out, tuple) else outs[0]

    return call


def _jax_call(name: str, args: tuple, kw: dict, channels_last: bool):
    fn = getattr(F, name)

    def call(x):
        return fn(x, *args, **kw, channels_last=channels_last)

    return call


def _compact(values: tuple[int, ...], rng: np.random.Generator) -> Any:
    """A per-dim tuple, given as a single int when all equal (half the time)."""
    if len(set(values)) == 1 and rng.random() < 0.5:
        return values[0]
    return values


def _input(rng: np.random.Generator, nd: int, spatial: tuple[int, ...], *, batched: bool,
           channels_last: bool) -> np.ndarray:
    c = int(rng.integers(1, 4))
    shape = (*spatial, c) if channels_last else (c, *spatial)
    if batched:
        shape = (int(rng.integers(1, 3)), *shape)
    return rng.standard_normal(shape).astype(np.float32)


def _window_dim(rng: np.random.Generator, nd: int, *, dilated: bool, ceil_mode: bool, want_drop: bool,
                stride_is_kernel: bool, length_at_least_kernel: bool = False) -> tuple[int, int, int, int, int]:
    """(L, k, s, p, d) for one dim with output size >= 1 and a real element in
    every window (a dilated window can hold only padding); with ``want_drop`` the
    ceil_mode window-drop rule ``(out-1)*s >= L + p`` fires on this dim.
    ``length_at_least_kernel`` keeps L >= k (PyTorch's avg_pool3d requires it)."""
    for _ in range(1000):
        k = int(rng.integers(1, 5 if nd < 3 else 4))
        s = k if stride_is_kernel else int(rng.integers(1, 4))
        d = int(rng.integers(1, 4)) if dilated else 1
        p = int(rng.integers(0, k // 2 + 1))
        need = max(1, d * (k - 1) + 1 - 2 * p, k if length_at_least_kernel else 1)
        length = int(rng.integers(need, need + (7 if nd < 3 else 4)))
        out = pool_output_size(length, k, s, p, d, ceil_mode)
        if out < 1 or not sliding_windows(length, k, s, p, d, out).table()[1].any(axis=1).all():
            continue
        raw = (length + 2 * p - d * (k - 1) - 1 + s - 1) // s + 1
        dropped = ceil_mode and (raw - 1) * s >= length + p
        if not want_drop or dropped:
            return length, k, s, p, d
    raise RuntimeError("no window configuration found")


def max_pool_case(rng: np.random.Generator, nd: int, i: int) -> Case:
    ceil_mode = i % 4 >= 2
    want_drop = ceil_mode and i % 8 == 3
    stride_default = i % 3 == 1
    dims = [_window_dim(rng, nd, dilated=True, ceil_mode=ceil_mode, want_drop=want_drop and a == 0,
                        stride_is_kernel=stride_default) for a in range(nd)]
    spatial, kernel, stride, padding, dilation = (tuple(v) for v in zip(*dims))
    batched, channels_last = i % 4 != 0, i % 5 == 4
    kw = dict(
        kernel_size=_compact(kernel, rng),
        stride=None if stride_default else _compact(stride, rng),
        padding=_compact(padding, rng),
        dilation=_compact(dilation, rng),
        ceil_mode=ceil_mode,
        return_indices=i % 2 == 1,
    )
    return _case(f"max_pool{nd}d", nd, rng, spatial, kw, batched=batched, channels_last=channels_last,
                 stride_default=stride_default)


def avg_pool_case(rng: np.random.Generator, nd: int, i: int) -> Case:
    ceil_mode = i % 4 >= 2
    want_drop = ceil_mode and i % 8 == 3
    stride_default = i % 3 == 1
    dims = [_window_dim(rng, nd, dilated=False, ceil_mode=ceil_mode, want_drop=want_drop and a == 0,
                        stride_is_kernel=stride_default, length_at_least_kernel=nd == 3) for a in range(nd)]
    spatial, kernel, stride, padding, _ = (tuple(v) for v in zip(*dims))
    batched, channels_last = i % 4 != 0, i % 5 == 4
    kw = dict(
        kernel_size=_compact(kernel, rng),
        stride=None if stride_default else _compact(stride, rng),
        padding=_compact(padding, rng),
        ceil_mode=ceil_mode,
        count_include_pad=i % 2 == 0,
    )
    if nd > 1 and i % 3 == 2:
        kw["divisor_override"] = int(rng.choice([-2, 1, 2, 3, 5, 7]))
    return _case(f"avg_pool{nd}d", nd, rng, spatial, kw, batched=batched, channels_last=channels_last,
                 stride_default=stride_default)


def adaptive_case(rng: np.random.Generator, nd: int, i: int, kind: str) -> Case:
    spatial = tuple(int(v) for v in rng.integers(1, 12 if nd < 3 else 7, size=nd))
    out: list[Any] = [int(rng.integers(1, length + 4)) for length in spatial]
    if i % 3 == 1:
        # one output length that does not divide its input length, so bins overlap
        a = int(rng.integers(nd))
        spatial = tuple(v + 3 if j == a else v for j, v in enumerate(spatial))
        out[a] = int(rng.choice([o for o in range(2, spatial[a]) if spatial[a] % o] or [2]))
    if nd > 1 and i % 4 == 2:
        out[int(rng.integers(nd))] = None
    output_size: Any = out[0] if len(set(out)) == 1 and out[0] is not None and rng.random() < 0.5 else tuple(out)
    if nd == 1 and rng.random() < 0.5:
        output_size = out[0]
    kw: dict[str, Any] = dict(output_size=output_size)
    if kind == "max":
        kw["return_indices"] = i % 2 == 1
    return _case(f"adaptive_{kind}_pool{nd}d", nd, rng, spatial, kw, batched=i % 4 != 0,
                 channels_last=i % 5 == 4)


def _case(name: str, nd: int, rng: np.random.Generator, spatial: tuple[int, ...], kw: dict, *,
          batched: bool, channels_last: bool, stride_default: bool = False) -> Case:
    x = _input(rng, nd, spatial, batched=batched, channels_last=channels_last)
    if stride_default:
        kw = {k: v for k, v in kw.items() if k != "stride"}
    desc = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    desc = f"x{x.shape} {desc} channels_last={channels_last}"
    return Case(name, desc, {"input": x}, _jax_call(name, (), kw, channels_last),
                _torch_call(name, nd, (), kw, channels_last))


def cases(seed: int, n: int, impl: str = "-") -> list[Case]:
    """``n`` random valid calls per pooling op (max/avg/adaptive max/adaptive avg, 1D-3D)."""
    if impl != "-":
        raise ValueError(f"pooling ops have no implementations to choose from; impl must be '-', got {impl!r}")
    rng = np.random.default_rng(seed)
    out = []
    for nd in (1, 2, 3):
        out += [max_pool_case(rng, nd, i) for i in range(n)]
        out += [avg_pool_case(rng, nd, i) for i in range(n)]
        out += [adaptive_case(rng, nd, i, "max") for i in range(n)]
        out += [adaptive_case(rng, nd, i, "avg") for i in range(n)]
    return out
