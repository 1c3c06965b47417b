"""Fixtures locating the real datasets (../shared/datasets from the repo root); tests skip without them."""

from pathlib import Path

import pytest

DATASETS = Path(__file__).parents[2] / ".." / "shared" / "datasets"


def _dataset(name: str) -> Path:
    folder = DATASETS / name
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real {name} IDX files not found at {folder.resolve()}")
    return folder


@pytest.fixture
def datasets_dir() -> Path:
    _dataset("mnist")
    _dataset("fashion_mnist")
    return DATASETS


@pytest.fixture
def mnist_dir() -> Path:
    return _dataset("mnist")


@pytest.fixture
def fashion_dir() -> Path:
    return _dataset("fashion_mnist")
