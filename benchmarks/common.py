"""Timing helpers shared by the benchmarks: interleaved repeats, machine info, BENCHMARKS.md sections.

The machine is shared and noisy, so candidates are timed round-robin (one call
of each per round) and compared by the median over rounds; every table holds
ratios measured in the same run.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax

ROOT = Path(__file__).resolve().parent.parent
_START = datetime.datetime.now(datetime.timezone.utc)
_START_LOAD = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def block(out):
    """Waits for jax arrays (any pytree) to be computed; torch results are eager."""
    return jax.block_until_ready(out)


def compile_time(fn: Callable, *args) -> float:
    """Seconds for the first call (tracing + compilation + one run)."""
    t = time.perf_counter()
    block(fn(*args))
    return time.perf_counter() - t


def interleaved(cands: dict[str, tuple[Callable, tuple]], rounds: int, warmup: int = 1,
                min_time: float = 0.0) -> dict[str, float]:
    """Median seconds per call of each candidate, timed one call each per round.

    Each timed call follows an untimed call of the same candidate: the call
    right after PyTorch shares the cores with its OpenMP threads, which spin
    for a while after each parallel region (measured: a jaxconv step timed
    right after PyTorch's ran ~25% slower than the same step timed after
    itself). A process running one framework never pays that.

    ``min_time``: keep adding rounds (up to 4x ``rounds``) until the slowest
    candidate has been timed for at least this many seconds.
    """
    for fn, args in cands.values():
        for _ in range(warmup):
            block(fn(*args))
    times: dict[str, list[float]] = {k: [] for k in cands}
    r = 0
    while r < rounds or (r < 4 * rounds and max(sum(v) for v in times.values()) < min_time):
        for name, (fn, args) in cands.items():
            block(fn(*args))  # settles the cores after the previous candidate
            t = time.perf_counter()
            block(fn(*args))
            times[name].append(time.perf_counter() - t)
        r += 1
    return {k: statistics.median(v) for k, v in times.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores (1-min load {_START_LOAD:.1f} at start, {end_load:.1f} at end), "
            f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")


def header(title: str) -> str:
    now = _START.strftime("%Y-%m-%d %H:%M UTC (start)")
    cmd = "python -m benchmarks." + Path(sys.argv[0]).stem + "".join(f" {a}" for a in sys.argv[1:])
    return f"### {title}\n\n- date: {now}\n- machine: {machine()}\n- command: `{cmd}`\n"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replaces (or appends) the section between ``<!-- name -->`` markers in BENCHMARKS.md."""
    begin, end = f"<!-- {name} begin -->", f"<!-- {name} end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block_text = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block_text, text) if pattern.search(text) else text.rstrip() + "\n\n" + block_text + "\n"
    path.write_text(text)
