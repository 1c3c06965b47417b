import subprocess
import sys
from pathlib import Path

import numpy as np

from jaxconv.data import idx, sample

SAMPLE_DIR = Path(__file__).parents[2] / "jaxconv" / "data" / "sample"
SCRIPT = Path(__file__).parents[2] / "scripts" / "make_sample.py"


def test_sample_shapes_and_balance():
    for split, n in (("train", 6000), ("test", 1000)):
        images, labels = sample.load(split)
        assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
        assert labels.dtype == np.int32
        assert np.bincount(labels).tolist() == [n // 10] * 10


def test_sample_is_small():
    files = list(SAMPLE_DIR.iterdir())
    assert sorted(f.name for f in files) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert sum(f.stat().st_size for f in files) <= 2 * 1024 * 1024


def test_sample_is_first_of_each_class_of_real_mnist(mnist_dir):
    images, labels = idx.read_split(mnist_dir, "test")
    sample_images, sample_labels = sample.load("test")
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:100] for c in range(10)]))
    np.testing.assert_array_equal(sample_images, images[keep])
    np.testing.assert_array_equal(sample_labels, labels[keep])


def test_make_sample_reproduces_the_shipped_files(mnist_dir, tmp_path):
    subprocess.run(
        [sys.executable, SCRIPT, "--src", mnist_dir, "--out", tmp_path, "--train-per-class", "1"],
        check=True,
        capture_output=True,
    )
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), name
    assert len(idx.read_idx(tmp_path / "train-labels-idx1-ubyte.gz")) == 10
