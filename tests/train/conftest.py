"""Shared fixtures of the trainer tests: real MNIST, a small IDX subset of it, a base config.

Every run uses the default recipe's model, optimizer and batch shapes, so the
train and eval steps compile once per session (persistent compilation cache)
and each test pays only for its own steps.
"""

import os
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the test modules import train_helpers by name
from train_helpers import MNIST  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """One XLA compilation per program per session, shared with subprocesses through the environment."""
    path = str(tmp_path_factory.mktemp("jax_cache"))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    try:  # Earlier tests in this process may have compiled already, which fixes the cache as off.
        from jax._src import compilation_cache

        compilation_cache.reset_cache()
    except (ImportError, AttributeError):
        pass
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    return path


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST IDX files not found at {MNIST}")
    return MNIST


@pytest.fixture(scope="session")
def small_mnist(mnist_dir, tmp_path_factory) -> Path:
    """The first 2048 train and 1000 test examples of real MNIST as IDX files (16 steps per epoch at batch 128)."""
    from jaxconv.data import idx

    folder = tmp_path_factory.mktemp("small_mnist")
    for split, prefix, n in (("train", "train", 2048), ("test", "t10k", 1000)):
        images, labels = idx.read_split(mnist_dir, split)
        idx.write_idx(folder / f"{prefix}-images-idx3-ubyte", images[:n, ..., 0])
        idx.write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels[:n].astype(np.uint8))
    return folder
