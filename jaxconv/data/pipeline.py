"""Normalisation and batching over numpy arrays, deterministic given a PRNG key.

The training order of an epoch depends only on (key, epoch, number of examples), so a
run resumed at (epoch, step) sees exactly the batches an uninterrupted run would:
`train_batches(..., epoch=e, start_step=s)` yields batches s, s+1, ... of epoch e.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import numpy as np


def normalize(images: np.ndarray, mean: float | Sequence[float], std: float | Sequence[float]) -> np.ndarray:
    """uint8 (N, H, W, C) to float32 (N, C, H, W), as torchvision's ToTensor() then Normalize(mean, std).

    Same float32 operations in the same order (divide by 255, subtract mean, divide by
    std), so the result is bit-identical to torchvision's. `mean` and `std` are scalars
    or one value per channel.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images (N, H, W, C), got shape {images.shape}")
    channels = images.shape[-1]
    mean = np.asarray(mean, np.float32).reshape(-1)
    std = np.asarray(std, np.float32).reshape(-1)
    for what, v in (("mean", mean), ("std", std)):
        if v.size not in (1, channels):
            raise ValueError(f"{what} has {v.size} values, images have {channels} channels")
    if np.any(std == 0):
        raise ValueError(f"std has a zero: {std}")
    x = np.transpose(images, (0, 3, 1, 2)).astype(np.float32)
    x /= np.float32(255)
    x -= mean[:, None, None]
    x /= std[:, None, None]
    return x


def steps_per_epoch(num_examples: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Batches in one epoch of `num_examples`."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return num_examples // batch_size if drop_remainder else -(-num_examples // batch_size)


def epoch_permutation(key: jax.Array, epoch: int, num_examples: int) -> np.ndarray:
    """The order of examples in `epoch`: a permutation of range(num_examples) fixed by (key, epoch).

    Drawn by numpy's PCG64 seeded from the key data of fold_in(key, epoch), so it is the
    same on every backend and in every process.
    """
    seed = np.asarray(jax.random.key_data(jax.random.fold_in(key, epoch))).ravel().tolist()
    return np.random.Generator(np.random.PCG64(seed)).permutation(num_examples)


def train_batches(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    key: jax.Array,
    epoch: int,
    start_step: int = 0,
    drop_remainder: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled (images, labels) batches of `epoch`, from batch `start_step` on.

    With `drop_remainder` every batch has `batch_size` examples and the last
    num_examples % batch_size of the epoch's order are skipped; without it the last
    batch is smaller.
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels")
    steps = steps_per_epoch(n, batch_size, drop_remainder)
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} examples and drop_remainder is set")
    if not 0 <= start_step <= steps:
        raise ValueError(f"start_step {start_step} is outside an epoch of {steps} steps")
    order = epoch_permutation(key, epoch, n)
    for step in range(start_step, steps):
        index = order[step * batch_size : (step + 1) * batch_size]
        yield images[index], labels[index]


def eval_batches(
    images: np.ndarray, labels: np.ndarray, *, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(images, labels, mask) batches in order, each of `batch_size` examples.

    The last batch is padded with zeros; `mask` is False on the padding, so summing
    over masked examples counts every example exactly once.
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels")
    for step in range(steps_per_epoch(n, batch_size, drop_remainder=False)):
        x = images[step * batch_size : (step + 1) * batch_size]
        y = labels[step * batch_size : (step + 1) * batch_size]
        mask = np.ones(batch_size, dtype=bool)
        if (pad := batch_size - len(x)) > 0:
            mask[len(x) :] = False
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
            y = np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)])
        yield x, y, mask
