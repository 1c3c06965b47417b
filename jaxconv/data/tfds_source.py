"""Image classification data through tensorflow-datasets, without TensorFlow and without hanging.

`tfds.data_source` reads a prepared dataset with no TensorFlow installed. Preparing one
(downloading and converting) needs TensorFlow and the network; offline, tfds retries the
download for minutes before failing. `availability` answers within `timeout` seconds
whether reading through tfds can work, so callers can choose another source instead.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

import numpy as np

log = logging.getLogger(__name__)

TFDS_DOWNLOAD_HOST = "storage.googleapis.com"
NETWORK_TIMEOUT_S = 2.0


def _builder(name: str, data_dir: str | None) -> Any:
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as e:
        raise ValueError(f"tensorflow-datasets has no dataset {name!r} ({str(e).splitlines()[0]})") from e


def is_prepared(name: str, data_dir: str | None = None) -> bool:
    """Whether `name` is already downloaded and prepared in tfds's `data_dir` (None: tfds's default)."""
    builder = _builder(name, data_dir)
    return builder.data_path.exists() and bool(builder.is_prepared())


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def network_reachable(hosts: Iterable[tuple[str, int]], timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """Whether a TCP connection to any of `hosts` opens within `timeout` seconds in total.

    Each attempt runs on a daemon thread, so a slow DNS lookup cannot hold the caller
    past `timeout` either.
    """
    hosts = list(hosts)
    if not hosts:
        return False
    answered = threading.Event()
    state = {"connected": False, "pending": len(hosts)}
    lock = threading.Lock()

    def attempt(host: str, port: int) -> None:
        ok = False
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok = True
        except OSError:
            pass
        with lock:
            state["connected"] |= ok
            state["pending"] -= 1
            if ok or state["pending"] == 0:
                answered.set()

    for host_port in hosts:
        threading.Thread(target=attempt, args=host_port, daemon=True).start()
    answered.wait(timeout)
    with lock:
        return state["connected"]


def download_hosts(name: str) -> list[tuple[str, int]]:
    """tfds's download mirror, plus the host in the builder's `URL` attribute if it has one."""
    hosts = [(TFDS_DOWNLOAD_HOST, 443)]
    url = getattr(type(_builder(name, None)), "URL", None)
    if isinstance(url, str) and (parsed := urlparse(url)).hostname:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if (parsed.hostname, port) not in hosts:
            hosts.append((parsed.hostname, port))
    return hosts


def availability(
    name: str, data_dir: str | None = None, timeout: float = NETWORK_TIMEOUT_S
) -> tuple[bool, str]:
    """Whether `load(name, ...)` can work, and why not, answered within about `timeout` seconds."""
    if importlib.util.find_spec("tensorflow_datasets") is None:
        return False, "tensorflow-datasets is not installed"
    try:
        if is_prepared(name, data_dir):
            return True, "prepared"
    except ValueError as e:
        return False, str(e)
    if not tensorflow_installed():
        return False, f"{name!r} is not prepared in the tfds data dir, and preparing it needs TensorFlow"
    hosts = download_hosts(name)
    if not network_reachable(hosts, timeout):
        where = ", ".join(f"{h}:{p}" for h, p in hosts)
        return (
            False,
            f"{name!r} is not prepared in the tfds data dir, and {where} did not answer in {timeout:g} s",
        )
    return True, "downloadable"


def load(name: str, split: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reads a tfds image classification split: images uint8 (N, H, W, C), labels int32 (N,).

    Downloads and prepares the dataset if it is not prepared yet; call `availability`
    first where that must not be attempted.
    """
    import tensorflow_datasets as tfds

    source = tfds.data_source(name, split=split, data_dir=data_dir)
    n = len(source)
    if n == 0:
        raise ValueError(f"{name}/{split}: the split is empty")
    first = source[0]
    if "image" not in first or "label" not in first:
        raise ValueError(f"{name}: expected 'image' and 'label' features, it has {sorted(first)}")
    shape, dtype = np.shape(first["image"]), np.asarray(first["image"]).dtype
    if dtype != np.uint8:
        raise ValueError(f"{name}: images are {dtype}, expected uint8")
    images = np.empty((n, *shape), dtype=np.uint8)
    labels = np.empty((n,), dtype=np.int32)
    for i in range(n):
        example = first if i == 0 else source[i]
        if np.shape(example["image"]) != shape:
            raise ValueError(
                f"{name}/{split}: example {i} has shape {np.shape(example['image'])}, example 0 {shape}"
            )
        images[i] = example["image"]
        labels[i] = example["label"]
    if images.ndim == 3:
        images = images[..., None]
    log.info("read %s/%s through tfds: %d examples", name, split, n)
    return images, labels
