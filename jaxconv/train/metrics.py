"""Metric records: ``metrics.jsonl``, TensorBoard events and a learning-curve PNG.

Each record is one JSON line ``{"step": s, "epoch": e, name: value, ...}``;
train records carry ``train_*`` names, evaluations ``test_*``. A resumed run
first drops records past its checkpoint (``rewind``) so the file reads as one
uninterrupted run.
"""

import json
import os
from typing import Any

import numpy as np


class MetricWriter:
    """Appends scalar records to ``<workdir>/metrics.jsonl`` and TensorBoard."""

    def __init__(self, workdir: str, *, resume_step: int = 0):
        from tensorboardX import SummaryWriter  # Pure Python: no TensorFlow import.

        self.path = os.path.join(workdir, "metrics.jsonl")
        rewind(self.path, resume_step)
        self._file = open(self.path, "a")
        # purge_step drops events a killed run wrote after its last checkpoint.
        self._tb = SummaryWriter(
            os.path.join(workdir, "tensorboard"), purge_step=resume_step + 1 if resume_step else None
        )

    def write(self, step: int, **scalars: Any) -> None:
        record = {"step": int(step), **{k: _plain(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for name, value in record.items():
            if name not in ("step", "epoch") and isinstance(value, (int, float)):
                self._tb.add_scalar(_tag(name), value, step)

    def close(self) -> None:
        self._file.close()
        self._tb.close()


def _tag(name: str) -> str:
    """TensorBoard tag: ``test_loss`` -> ``test/loss``, ``learning_rate`` -> ``train/learning_rate``."""
    split, _, rest = name.partition("_")
    return f"{split}/{rest}" if split in ("train", "test") else f"train/{name}"


def _plain(value: Any) -> Any:
    """JSON-ready Python scalar from a numpy/JAX scalar."""
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
        value = np.asarray(value).item()
    return value


def read(path: str) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl``; [] if it does not exist.

    A last line cut short (no newline: the writer was killed mid-write) is
    left out; any other unparsable line raises.
    """
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.readlines()
    if lines and not lines[-1].endswith("\n"):
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()
    return [json.loads(line) for line in lines if line.strip()]


def rewind(path: str, step: int) -> None:
    """Drops records after ``step`` (all of them when ``step`` is 0)."""
    records = read(path)
    kept = [r for r in records if r["step"] <= step] if step else []
    if len(kept) != len(records):
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(tmp, path)


def plot_curves(records: list[dict[str, Any]], path: str) -> None:
    """Loss and accuracy against epoch, train and test, as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, quantity in zip(axes, ("loss", "accuracy")):
        values = []
        for split, style in (("train", "-"), ("test", "o-")):
            points = [(r["epoch"], r[f"{split}_{quantity}"]) for r in records if f"{split}_{quantity}" in r]
            if points:
                x, y = zip(*points)
                ax.plot(x, y, style, label=split, markersize=4)
                values += y
        ax.set_xlabel("epoch")
        ax.set_ylabel(quantity)
        ax.grid(alpha=0.3)
        if values:
            ax.legend()
        if quantity == "loss" and values and all(np.isfinite(v) and v > 0 for v in values):
            ax.set_yscale("log")
    fig.savefig(path, dpi=100)
    plt.close(fig)
