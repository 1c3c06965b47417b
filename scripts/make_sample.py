"""Builds the MNIST sample shipped in jaxconv/data/sample/ from the full IDX files.

Takes the first `--train-per-class` train and `--test-per-class` test images of each
digit, keeping the official order, and writes them as gzip-compressed IDX files
(reproducibly: the same input gives byte-identical output).

    python scripts/make_sample.py [--src ../shared/datasets/mnist] [--out jaxconv/data/sample]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jaxconv.data import idx

ROOT = Path(__file__).resolve().parents[1]


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` examples of each label, in their original order."""
    chosen = []
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        if len(where) < per_class:
            raise ValueError(f"label {c} has {len(where)} examples, fewer than {per_class}")
        chosen.append(where[:per_class])
    return np.sort(np.concatenate(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", type=Path, default=ROOT / ".." / "shared" / "datasets" / "mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "jaxconv" / "data" / "sample")
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=100)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        images, labels = idx.read_split(args.src, split)
        keep = first_per_class(labels, per_class)
        image_name, label_name = (names[0] for names in idx.candidate_names(split))
        idx.write_idx(args.out / image_name, images[keep, ..., 0])
        idx.write_idx(args.out / label_name, labels[keep].astype(np.uint8))
        back_images, back_labels = idx.read_split(args.out, split)
        assert np.array_equal(back_images, images[keep]) and np.array_equal(back_labels, labels[keep])
        size = (args.out / image_name).stat().st_size + (args.out / label_name).stat().st_size
        total += size
        print(f"{split}: {len(keep)} examples, {size} bytes")
    print(f"total {total} bytes in {args.out}")


if __name__ == "__main__":
    main()
