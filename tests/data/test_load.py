"""`jaxconv.data.load`: the order of sources and the fast fallback to the shipped sample."""

import shutil
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxconv import data
from jaxconv.data import idx, sample, tfds_source


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)


@pytest.fixture
def offline(monkeypatch):
    """tfds has nothing prepared and the download host does not answer; records the checks."""
    checks = []
    monkeypatch.setattr(tfds_source, "is_prepared", lambda name, data_dir=None: False)
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: True)
    monkeypatch.setattr(
        tfds_source, "network_reachable", lambda hosts, timeout: checks.append(hosts) or False
    )
    monkeypatch.setattr(tfds_source, "load", lambda *a, **k: pytest.fail("tried to read through tfds"))
    return checks


def test_data_dir_with_the_files(fashion_dir):
    images, labels = data.load("fashion_mnist", "train", data_dir=str(fashion_dir))
    assert images.shape == (60000, 28, 28, 1) and images.dtype == np.uint8 and labels.dtype == np.int32
    assert np.bincount(labels).tolist() == [6000] * 10


def test_data_dir_with_name_subfolders(datasets_dir, fashion_dir):
    images, labels = data.load("fashion_mnist", "test", data_dir=str(datasets_dir))
    expected_images, expected_labels = idx.read_split(fashion_dir, "test")
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)
    assert np.bincount(labels).tolist() == [1000] * 10


def test_data_dir_without_files_names_folder_and_files(tmp_path, offline):
    with pytest.raises(
        FileNotFoundError,
        match=rf"data_dir='{tmp_path}'.*t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
    ):
        data.load("mnist", "test", data_dir=str(tmp_path))
    assert offline == []


def test_env_var_folder_of_files(monkeypatch, mnist_dir):
    monkeypatch.setenv(data.ENV_VAR, str(mnist_dir))
    images, labels = data.load("mnist", "test")
    assert images.shape == (10000, 28, 28, 1)


def test_env_var_folder_of_name_subfolders(monkeypatch, datasets_dir, offline):
    monkeypatch.setenv(data.ENV_VAR, str(datasets_dir))
    images, _ = data.load("fashion_mnist", "test")
    np.testing.assert_array_equal(images, idx.read_split(datasets_dir / "fashion_mnist", "test")[0])
    assert offline == []


def test_explicit_data_dir_wins_over_env_var(monkeypatch, datasets_dir):
    monkeypatch.setenv(data.ENV_VAR, str(datasets_dir / "fashion_mnist"))
    _, labels = data.load("mnist", "test", data_dir=str(datasets_dir / "mnist"))
    assert np.bincount(labels)[1] == 1135


def test_env_var_not_a_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=f"{data.ENV_VAR}=.*absent.*not a folder"):
        data.load("mnist", "test")


def test_partial_files_are_an_error_not_a_fallback(tmp_path, mnist_dir, offline):
    shutil.copy(mnist_dir / "t10k-images-idx3-ubyte.gz", tmp_path)
    with pytest.raises(FileNotFoundError, match="no t10k-labels-idx1-ubyte.gz"):
        data.load("mnist", "test", data_dir=str(tmp_path))


def test_offline_falls_back_to_the_sample_fast_and_loudly(tmp_path, monkeypatch, offline, capsys):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))  # set, but holds no mnist: tfds is next
    start = time.monotonic()
    images, labels = data.load("mnist", "train")
    assert time.monotonic() - start < 5
    expected_images, expected_labels = sample.load("train")
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)
    assert offline == [[("storage.googleapis.com", 443)]]
    err = capsys.readouterr().err
    for text in (
        "SMALL SAMPLE",
        "6000 train images",
        "--config.data_dir=",
        data.ENV_VAR,
        "did not answer",
        str(tmp_path),
    ):
        assert text in err, text


def test_offline_other_dataset_is_a_clear_error(offline):
    start = time.monotonic()
    with pytest.raises(
        FileNotFoundError, match=rf"cannot find 'kmnist'.*did not answer.*--config.data_dir=.*{data.ENV_VAR}"
    ):
        data.load("kmnist", "train")
    assert time.monotonic() - start < 5


def test_without_tensorflow_no_network_check(monkeypatch, offline, capsys):
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: False)
    images, _ = data.load("mnist", "test")
    assert len(images) == 1000 and offline == []
    assert "needs TensorFlow" in capsys.readouterr().err


def test_tfds_through_load_mocked(monkeypatch):
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: True)
    monkeypatch.setattr(tfds_source, "network_reachable", lambda hosts, timeout: True)
    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        images, labels = data.load("mnist", "test")
    assert images.shape == (5, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (5,) and labels.dtype == np.int32


def test_tfds_and_idx_give_identical_arrays(monkeypatch, mnist_dir):
    """The real IDX test split served in tfds's example format reads back equal to the IDX read."""
    expected_images, expected_labels = idx.read_split(mnist_dir, "test")

    def as_data_source(self, split, **kwargs):
        assert split == "test"
        return [{"image": im, "label": np.int64(lb)} for im, lb in zip(expected_images, expected_labels)]

    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: True)
    monkeypatch.setattr(tfds_source, "network_reachable", lambda hosts, timeout: True)
    with tfds.testing.mock_data(as_data_source_fn=as_data_source):
        images, labels = data.load("mnist", "test")
    assert images.dtype == expected_images.dtype and labels.dtype == expected_labels.dtype
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)
