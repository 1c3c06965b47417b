"""Reader and writer for the IDX format used by MNIST and its look-alikes.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the data in row-major order.
MNIST images are type 0x08 (unsigned byte) with 3 dimensions (magic 0x00000803), its
labels unsigned bytes with 1 dimension (magic 0x00000801). Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"\x1f\x8b":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, OSError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({e})") from e


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Reads an IDX file (raw or gzip-compressed) into a writable native-endian array.

    Raises ValueError naming the file if the magic number is not `expected_magic` (when
    given) or not a valid IDX magic, or if the data is shorter or longer than the
    dimensions in the header say.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", data[:4])
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: magic number 0x{magic:08X}, expected 0x{expected_magic:08X}")
    zero, code, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise ValueError(f"{path}: magic number 0x{magic:08X} is not an IDX magic number")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated header ({len(data)} bytes, expected {header} for {ndim} dims)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise ValueError(
            f"{path}: {what}: header says shape {shape} ({expected} data bytes), file has {actual} data bytes"
        )
    array = np.frombuffer(bytearray(data), dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes `array` as an IDX file, gzip-compressed (reproducibly, mtime 0) if `path` ends in .gz."""
    array = np.asarray(array)
    big = array.dtype.newbyteorder(">")
    if big not in _CODES:
        raise ValueError(f"{path}: dtype {array.dtype} has no IDX type code")
    payload = struct.pack(f">I{array.ndim}I", (_CODES[big] << 8) | array.ndim, *array.shape)
    payload += np.ascontiguousarray(array, dtype=big).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def candidate_names(split: str) -> tuple[list[str], list[str]]:
    """File names accepted for a split's images and labels, in order of preference."""
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"IDX data has splits {sorted(_SPLIT_PREFIX)}, got split={split!r}")
    prefix = _SPLIT_PREFIX[split]

    def names(kind: str, n: int) -> list[str]:
        stems = [f"{prefix}-{kind}-idx{n}-ubyte", f"{prefix}-{kind}.idx{n}-ubyte"]
        return [stem + ext for stem in stems for ext in (".gz", "")]

    return names("images", 3), names("labels", 1)


def find_split_files(folder: str | os.PathLike, split: str) -> tuple[Path | None, Path | None]:
    """The (images, labels) files of `split` in `folder`; None for each one absent."""
    folder = Path(folder)
    found = []
    for names in candidate_names(split):
        found.append(next((folder / n for n in names if (folder / n).is_file()), None))
    return found[0], found[1]


def read_split(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads `split` ("train" or "test") from the IDX files in `folder`.

    Returns images uint8 (N, H, W, 1) and labels int32 (N,). Raises FileNotFoundError
    naming the folder and the accepted file names if a file is missing, ValueError
    naming the file if one is malformed or the image and label counts differ.
    """
    images_path, labels_path = find_split_files(folder, split)
    if images_path is None or labels_path is None:
        image_names, label_names = candidate_names(split)
        missing = [
            names[0] for names, p in ((image_names, images_path), (label_names, labels_path)) if p is None
        ]
        raise FileNotFoundError(
            f"{folder}: no {' or '.join(missing)} for split {split!r} "
            f"(accepted names: {', '.join(image_names + label_names)})"
        )
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    return images[..., None], labels.astype(np.int32)
