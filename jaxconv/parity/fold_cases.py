"""Seeded random valid calls of ``unfold`` and ``fold``, as parity `Case`s.

Hyperparameters (``kernel_size``, ``dilation``, ``padding``, ``stride``) are
drawn as ints or 2-tuples, inputs batched or unbatched; every ``fold`` input
has ``L`` equal to the number of sliding blocks of its ``output_size``.
"""

from __future__ import annotations

import numpy as np

from jaxconv.functional._im2col import num_blocks
from jaxconv.functional.fold import fold as jax_fold
from jaxconv.functional.fold import unfold as jax_unfold
from jaxconv.parity.compare import Case


def _int_or_pair(rng: np.random.Generator, low: int, high: int):
    """An int or a 2-tuple of ints in ``[low, high)``, and its 2-tuple form."""
    if rng.random() < 0.4:
        v = int(rng.integers(low, high))
        return v, (v, v)
    pair = tuple(int(v) for v in rng.integers(low, high, size=2))
    return pair, pair


def _hyper(rng: np.random.Generator):
    kernel, k2 = _int_or_pair(rng, 1, 4)
    dilation, d2 = _int_or_pair(rng, 1, 3)
    padding, p2 = _int_or_pair(rng, 0, 3)
    stride, s2 = _int_or_pair(rng, 1, 4)
    kw = dict(kernel_size=kernel, dilation=dilation, padding=padding, stride=stride)
    # smallest spatial size with at least one block, per dim
    need = [max(1, d * (k - 1) + 1 - 2 * p) for k, d, p in zip(k2, d2, p2)]
    return kw, (k2, d2, p2, s2), need


def _desc(kw: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())


def unfold_case(rng: np.random.Generator) -> Case:
    kw, _, need = _hyper(rng)
    size = tuple(int(rng.integers(m, m + 6)) for m in need)
    c = int(rng.integers(1, 4))
    shape = (c, *size)
    if rng.random() < 0.75:
        shape = (int(rng.integers(1, 3)), *shape)
    inputs = {"input": rng.standard_normal(shape).astype(np.float32)}

    def jax_fn(x):
        return jax_unfold(x, **kw)

    def torch_fn(x):
        import torch.nn.functional as tF
        return tF.unfold(x, **kw)

    return Case("unfold", f"x{shape} {_desc(kw)}", inputs, jax_fn, torch_fn)


def fold_case(rng: np.random.Generator) -> Case:
    kw, (k2, d2, p2, s2), need = _hyper(rng)
    size = tuple(int(rng.integers(m, m + 6)) for m in need)
    output_size = size[0] if size[0] == size[1] and rng.random() < 0.5 else size
    blocks = num_blocks([n + 2 * p for n, p in zip(size, p2)], k2, s2, d2)
    c = int(rng.integers(1, 4))
    shape = (c * k2[0] * k2[1], blocks[0] * blocks[1])
    if rng.random() < 0.75:
        shape = (int(rng.integers(1, 3)), *shape)
    inputs = {"input": rng.standard_normal(shape).astype(np.float32)}

    def jax_fn(cols):
        return jax_fold(cols, output_size, **kw)

    def torch_fn(cols):
        import torch.nn.functional as tF
        return tF.fold(cols, output_size, **kw)

    return Case("fold", f"cols{shape} output_size={output_size!r} {_desc(kw)}", inputs, jax_fn, torch_fn)


def cases(seed: int, n: int, impl: str = "-") -> list[Case]:
    """``n`` random valid calls per op (``unfold``, ``fold``); ``impl`` must be ``"-"``."""
    if impl != "-":
        raise ValueError(f"unfold/fold have no conv implementations; impl must be '-', got {impl!r}")
    rng = np.random.default_rng(seed)
    return [unfold_case(rng) for _ in range(n)] + [fold_case(rng) for _ in range(n)]
