"""Locations of the real datasets, shared by the data tests."""

from pathlib import Path

import pytest

DATASETS = Path(__file__).parents[2] / ".." / "shared" / "datasets"

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _dataset(name: str) -> Path:
    folder = DATASETS / name
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real {name} IDX files not found at {folder.resolve()}")
    return folder


@pytest.fixture
def mnist_dir() -> Path:
    return _dataset("mnist")


@pytest.fixture
def fashion_dir() -> Path:
    return _dataset("fashion_mnist")
