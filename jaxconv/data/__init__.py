"""Datasets for the trainer: MNIST-style image classification splits as numpy arrays.

`load(name, split, data_dir)` returns images uint8 (N, H, W, C) and labels int32 (N,),
the same arrays whichever source they come from. Sources, in order:

1. `data_dir`, when given: a folder holding the dataset's IDX files (or holding a
   `<name>/` subfolder with them), or a tfds data dir in which the dataset is prepared.
   Nothing there is an error naming the folder and the file names it looked for.
2. The environment variable `JAXCONV_DATA_DIR`: a folder holding the IDX files, or
   holding `<name>/` subfolders with them. If it holds neither, the next source is tried.
3. tensorflow-datasets (`tfds.data_source`, any image classification dataset with
   `image` and `label` features: mnist, fashion_mnist, kmnist, ...), if the dataset is
   prepared in tfds's data dir (`TFDS_DATA_DIR`, default ~/tensorflow_datasets), or if
   TensorFlow is installed and the download host answers within about 2 seconds.
4. For "mnist" only: the small real sample shipped in the package (6000 train, 1000
   test), with a loud message on stderr saying so and how to point at the real data.
   Any other dataset is an error saying what to do.

IDX file names accepted for a split: `train-images-idx3-ubyte` and
`train-labels-idx1-ubyte` (`t10k-...` for "test"), also with `.idx3-ubyte` dotted
naming, each raw or `.gz`. IDX sources have the splits "train" and "test"; tfds
accepts its own split syntax ("train[:10%]", ...).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np

from jaxconv.data import idx, sample, tfds_source
from jaxconv.data.pipeline import eval_batches, normalize, steps_per_epoch, train_batches

__all__ = ["ENV_VAR", "load", "normalize", "train_batches", "eval_batches", "steps_per_epoch"]

ENV_VAR = "JAXCONV_DATA_DIR"

log = logging.getLogger(__name__)


def _idx_folder(root: Path, name: str, split: str) -> Path | None:
    for folder in (root, root / name):
        if any(f is not None for f in idx.find_split_files(folder, split)):
            return folder
    return None


def _expected(root: Path, name: str, split: str) -> str:
    images, labels = idx.candidate_names(split)
    return (
        f"looked in {root} and {root / name} for {images[0]} and {labels[0]} "
        f"(or {', '.join(images[1:] + labels[1:])})"
    )


def _sample_banner(split: str, n: int, reason: str) -> str:
    rule = "=" * 78
    return "\n".join(
        [
            rule,
            f"jaxconv: NO MNIST DATA FOUND - USING THE SMALL SAMPLE SHIPPED WITH JAXCONV ({n} {split} images).",
            "Results on it are not comparable with full MNIST (60000 train / 10000 test).",
            f"Why: {reason}.",
            "To use the real data, point at a folder holding the four MNIST IDX files",
            "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,",
            "t10k-labels-idx1-ubyte.gz):",
            "    --config.data_dir=/path/to/mnist        or    export JAXCONV_DATA_DIR=/path/to/mnist",
            "or install TensorFlow with network access so tensorflow-datasets can download it.",
            rule,
        ]
    )


def load(name: str, split: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, H, W, C) and labels int32 (N,) of `name`'s `split`; sources as in the module docstring."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if folder := _idx_folder(root, name, split):
            log.info("reading %s/%s from IDX files in %s", name, split, folder)
            return idx.read_split(folder, split)
        if root.is_dir() and _tfds_prepared(name, str(root)):
            return tfds_source.load(name, split, str(root))
        raise FileNotFoundError(
            f"data_dir={data_dir!r} has no {name} {split!r} data: {_expected(root, name, split)}; "
            f"nor is {name!r} prepared there as a tensorflow-datasets data dir"
        )

    tried = []
    if env := os.environ.get(ENV_VAR):
        root = Path(env).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{ENV_VAR}={env!r} is not a folder")
        if folder := _idx_folder(root, name, split):
            log.info("reading %s/%s from IDX files in %s (%s)", name, split, folder, ENV_VAR)
            return idx.read_split(folder, split)
        tried.append(f"{ENV_VAR}: {_expected(root, name, split)}")

    available, reason = tfds_source.availability(name)
    if available:
        return tfds_source.load(name, split)
    tried.append(f"tensorflow-datasets: {reason}")

    if name == sample.NAME:
        images, labels = sample.load(split)
        banner = _sample_banner(split, len(images), "; ".join(tried))
        print(banner, file=sys.stderr, flush=True)
        log.warning("using the shipped MNIST sample (%d %s images), not the real data", len(images), split)
        return images, labels
    raise FileNotFoundError(
        f"cannot find {name!r} {split!r} data. Tried: {'; '.join(tried)}. "
        f"Point at a folder holding its four IDX files with --config.data_dir=... or {ENV_VAR}=..., "
        "or prepare it with tensorflow-datasets (needs TensorFlow and network) in TFDS_DATA_DIR."
    )


def _tfds_prepared(name: str, data_dir: str) -> bool:
    try:
        return tfds_source.is_prepared(name, data_dir)
    except ValueError:
        return False
