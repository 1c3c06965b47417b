"""The small real MNIST sample shipped in the package (built by scripts/make_sample.py).

600 train images of each digit and 100 test images of each digit, the first of each
class in the official files' order, stored as gzip-compressed IDX files.
"""

from __future__ import annotations

import importlib_resources
import numpy as np

from jaxconv.data import idx

NAME = "mnist"


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The sample's `split` ("train" or "test"): images uint8 (N, 28, 28, 1), labels int32 (N,)."""
    with importlib_resources.as_file(importlib_resources.files("jaxconv.data") / "sample") as folder:
        return idx.read_split(folder, split)
