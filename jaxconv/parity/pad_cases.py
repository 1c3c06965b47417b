"""Seeded random valid calls of ``pad``, as parity `Case`s.

Case ``i`` uses mode ``("constant", "reflect", "replicate", "circular")[i % 4]``;
with ``c = i // 4``, the non-constant modes pad the last ``1 + c % 3`` dims of
batched or unbatched inputs, with random negative pads (crops); for even ``c``
the last dim gets the widest pad allowed (reflect ``size - 1``, circular
``size``) and the constant mode a fill ``value``. The constant mode pads any
number of dims of a 1D-5D input, with negative pads. So ``n >= 12`` covers
every mode with 1, 2 and 3 padded dims.
"""

from __future__ import annotations

import numpy as np

from jaxconv.functional.pad import pad as jax_pad
from jaxconv.parity.compare import Case

MODES = ("constant", "reflect", "replicate", "circular")


def _side(rng: np.random.Generator, mode: str, size: int, widest: bool) -> tuple[int, int]:
    """A valid (lo, hi) for one dim of ``size`` elements under ``mode``.

    ``widest``: make ``lo`` the largest pad the mode allows (reflect ``size - 1``,
    circular ``size``).
    """
    if mode == "constant":
        lo, hi = (int(v) for v in rng.integers(-2, 4, size=2))
        while size + min(lo, 0) + min(hi, 0) < 0:
            lo, hi = lo + 1, hi + 1
        return lo, hi
    if mode == "reflect":
        top = size - 1
        lo, hi = (int(v) for v in rng.integers(-(size // 2), top + 1, size=2))
        if widest:
            lo = top
    elif mode == "replicate":
        lo, hi = (int(v) for v in rng.integers(-(size // 2), 5, size=2))
    else:  # circular: crop first, then wrap at most what is left
        crop_lo, crop_hi = (int(v) for v in rng.integers(0, (size - 1) // 2 + 1, size=2)) \
            if rng.random() < 0.4 and not widest else (0, 0)
        kept = size - crop_lo - crop_hi
        lo = -crop_lo if crop_lo else int(rng.integers(0, kept + 1))
        hi = -crop_hi if crop_hi else int(rng.integers(0, kept + 1))
        if widest:
            lo = kept
        return lo, hi
    while size + lo + hi < 1:                       # keep every padded dim non-empty
        lo, hi = lo + 1, hi + 1
    return lo, hi


def pad_case(rng: np.random.Generator, index: int) -> Case:
    mode = MODES[index % 4]
    cycle = index // 4
    value = None
    if mode == "constant":
        ndim = int(rng.integers(1, 6))
        npad = int(rng.integers(1, ndim + 1))
        shape = tuple(int(s) for s in rng.integers(1, 5, size=ndim))
        if cycle % 2 == 0:
            value = float(np.round(rng.standard_normal(), 3))
    else:
        npad = 1 + cycle % 3
        ndim = npad + int(rng.integers(1, 3))
        lead = tuple(int(s) for s in rng.integers(1, 4, size=ndim - npad))
        padded = tuple(int(s) for s in rng.integers(2, 6 if npad < 3 else 5, size=npad))
        shape = lead + padded
    pad: list[int] = []
    for i in range(npad):                           # the first pair pads the last dim
        pad += _side(rng, mode, shape[ndim - 1 - i], widest=i == 0 and cycle % 2 == 0)
    pad_t = tuple(pad)
    inputs = {"input": rng.standard_normal(shape).astype(np.float32)}
    desc = f"x{shape} pad={pad_t} mode={mode!r} value={value!r}"

    def jax_fn(x):
        return jax_pad(x, pad_t, mode=mode, value=value)

    def torch_fn(x):
        import torch.nn.functional as tF
        return tF.pad(x, pad_t, mode=mode, value=value)

    return Case("pad", desc, inputs, jax_fn, torch_fn)


def cases(seed: int, n: int, impl: str = "-") -> list[Case]:
    """``n`` random valid ``pad`` calls (``impl`` must be ``"-"``: pad has one implementation)."""
    if impl != "-":
        raise ValueError(f"pad has no conv implementations; impl must be '-', got {impl!r}")
    rng = np.random.default_rng(seed)
    return [pad_case(rng, i) for i in range(n)]
