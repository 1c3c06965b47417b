import socket
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxconv.data import tfds_source


def test_network_reachable_true_for_a_listening_socket():
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert tfds_source.network_reachable([("127.0.0.1", server.getsockname()[1])], timeout=2.0)


def test_network_reachable_false_for_a_closed_port():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    start = time.monotonic()
    assert not tfds_source.network_reachable([("127.0.0.1", port)], timeout=2.0)
    assert time.monotonic() - start < 2.0


def test_network_reachable_returns_within_timeout_when_connect_hangs(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(5)
        raise TimeoutError("connect timed out")  # What a real hung connect ends in.

    monkeypatch.setattr(tfds_source.socket, "create_connection", hang)
    start = time.monotonic()
    assert not tfds_source.network_reachable([("example.invalid", 443), ("example.invalid", 80)], timeout=0.3)
    assert time.monotonic() - start < 1.0


def test_download_hosts_include_the_builders_url():
    assert tfds_source.download_hosts("mnist") == [("storage.googleapis.com", 443)]
    assert ("codh.rois.ac.jp", 80) in tfds_source.download_hosts("kmnist")


def test_availability_unknown_dataset():
    ok, reason = tfds_source.availability("no_such_dataset_xyz")
    assert not ok and "no_such_dataset_xyz" in reason


def test_availability_not_prepared_without_tensorflow(monkeypatch, tmp_path):
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: False)
    monkeypatch.setattr(tfds_source, "network_reachable", lambda *a: pytest.fail("checked the network"))
    ok, reason = tfds_source.availability("mnist", str(tmp_path))
    assert not ok and "needs TensorFlow" in reason


def test_availability_not_prepared_offline(monkeypatch, tmp_path):
    checked = []
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: True)
    monkeypatch.setattr(
        tfds_source, "network_reachable", lambda hosts, timeout: checked.append(hosts) or False
    )
    ok, reason = tfds_source.availability("mnist", str(tmp_path))
    assert not ok and "storage.googleapis.com:443 did not answer" in reason
    assert checked == [[("storage.googleapis.com", 443)]]
    monkeypatch.setattr(tfds_source, "network_reachable", lambda hosts, timeout: True)
    assert tfds_source.availability("mnist", str(tmp_path)) == (True, "downloadable")


@pytest.mark.parametrize(
    "name,shape", [("mnist", (28, 28, 1)), ("kmnist", (28, 28, 1)), ("cifar10", (32, 32, 3))]
)
def test_load_mocked(name, shape):
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        images, labels = tfds_source.load(name, "train")
    assert images.shape == (6, *shape) and images.dtype == np.uint8
    assert labels.shape == (6,) and labels.dtype == np.int32
    assert 0 <= labels.min() and labels.max() < 10


def test_load_rejects_a_dataset_without_image_and_label():
    with tfds.testing.mock_data(num_examples=2, policy=tfds.testing.MockPolicy.USE_CODE):
        with pytest.raises(ValueError, match="expected 'image' and 'label'"):
            tfds_source.load("imdb_reviews", "train")
