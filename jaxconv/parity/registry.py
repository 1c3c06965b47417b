"""Which op families the parity checks cover, where their case generators live, and their impls.

Each generator module defines ``cases(seed: int, n: int, impl: str) -> list[Case]``
returning ``n`` seeded random valid calls per op of the family.
"""

from __future__ import annotations

import importlib

from jaxconv.functional import IMPLS

FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "conv": ("jaxconv.parity.conv_cases", IMPLS),
    "pad": ("jaxconv.parity.pad_cases", ("-",)),
    "pooling": ("jaxconv.parity.pooling_cases", ("-",)),
    "fold": ("jaxconv.parity.fold_cases", ("-",)),
}


def generate(family: str, seed: int, n: int, impl: str):
    module, impls = FAMILIES[family]
    if impl not in impls:
        raise ValueError(f"family {family!r} has impls {impls}, got {impl!r}")
    return importlib.import_module(module).cases(seed, n, impl)
