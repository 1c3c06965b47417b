import gzip
import shutil

import numpy as np
import pytest

from jaxconv.data import idx

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_train(mnist_dir):
    images, labels = idx.read_split(mnist_dir, "train")
    assert images.shape == (60000, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int32
    assert np.bincount(labels).tolist() == MNIST_TRAIN_COUNTS
    assert images.max() == 255 and images.min() == 0


def test_real_mnist_test(mnist_dir):
    images, labels = idx.read_split(mnist_dir, "test")
    assert images.shape == (10000, 28, 28, 1)
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS


def _copy_test_split(src, dst, raw=False, dotted=False):
    """Copies the t10k files into dst, optionally decompressed and with dotted names."""
    for kind, n in (("images", 3), ("labels", 1)):
        name = f"t10k-{kind}{'.' if dotted else '-'}idx{n}-ubyte"
        if raw:
            with gzip.open(src / f"t10k-{kind}-idx{n}-ubyte.gz") as f:
                (dst / name).write_bytes(f.read())
        else:
            shutil.copy(src / f"t10k-{kind}-idx{n}-ubyte.gz", dst / f"{name}.gz")
    return (
        dst / f"t10k-images{'.' if dotted else '-'}idx3-ubyte",
        dst / f"t10k-labels{'.' if dotted else '-'}idx1-ubyte",
    )


@pytest.mark.parametrize("raw,dotted", [(True, False), (True, True), (False, True)])
def test_raw_and_dotted_names_read_the_same(mnist_dir, tmp_path, raw, dotted):
    _copy_test_split(mnist_dir, tmp_path, raw=raw, dotted=dotted)
    images, labels = idx.read_split(tmp_path, "test")
    expected_images, expected_labels = idx.read_split(mnist_dir, "test")
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


def test_truncated_raw_file(mnist_dir, tmp_path):
    images_path, _ = _copy_test_split(mnist_dir, tmp_path, raw=True)
    images_path.write_bytes(images_path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=rf"{images_path.name}.*truncated"):
        idx.read_split(tmp_path, "test")


def test_truncated_gzip_file(mnist_dir, tmp_path):
    images_path, _ = _copy_test_split(mnist_dir, tmp_path)
    gz = images_path.with_name(images_path.name + ".gz")
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"{gz.name}.*truncated"):
        idx.read_split(tmp_path, "test")


def test_trailing_bytes(mnist_dir, tmp_path):
    _, labels_path = _copy_test_split(mnist_dir, tmp_path, raw=True)
    labels_path.write_bytes(labels_path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match=rf"{labels_path.name}.*trailing"):
        idx.read_split(tmp_path, "test")


def test_wrong_magic(mnist_dir, tmp_path):
    images_path, labels_path = _copy_test_split(mnist_dir, tmp_path, raw=True)
    shutil.copy(labels_path, images_path)
    with pytest.raises(
        ValueError, match=rf"{images_path.name}: magic number 0x00000801, expected 0x00000803"
    ):
        idx.read_split(tmp_path, "test")


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(ValueError, match=rf"{path.name}.*not an IDX magic"):
        idx.read_idx(path)


def test_mismatched_count(mnist_dir, tmp_path):
    _, labels_path = _copy_test_split(mnist_dir, tmp_path, raw=True)
    labels = idx.read_idx(labels_path)
    idx.write_idx(labels_path, labels[:-1])
    with pytest.raises(
        ValueError, match=r"t10k-images-idx3-ubyte has 10000 images but .*t10k-labels-idx1-ubyte has 9999"
    ):
        idx.read_split(tmp_path, "test")


def test_missing_file_names_folder_and_file(mnist_dir, tmp_path):
    _copy_test_split(mnist_dir, tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}: no t10k-labels-idx1-ubyte.gz"):
        idx.read_split(tmp_path, "test")


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="split='validation'"):
        idx.read_split(tmp_path, "validation")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_roundtrip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    idx.write_idx(path, array)
    back = idx.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    back[0] = 0  # writable
