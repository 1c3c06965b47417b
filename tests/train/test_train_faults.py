"""Faults of a real ``python train.py`` process: SIGTERM/SIGINT, kill -9, and determinism across processes.

Every run trains the same tiny recipe: the small MNIST subset (16 steps per
epoch at batch 128), 24 steps of a 2-epoch schedule, a checkpoint every 4
steps. ``reference`` is one uninterrupted run in its own process; the others
must reproduce its losses, test metrics and final TrainState bit for bit.
Runs that get signalled or killed delay each batch (``train_slowly.py``) so
the signal lands mid-run whatever the machine's speed.
"""

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from train_helpers import REPO

from jaxconv.train import checkpoint, interrupt
from jaxconv.train import metrics as metrics_lib

STEPS = 24
EVERY = 4  # checkpoint_every_steps
DELAY = 0.3  # seconds per batch of a run that gets signalled or killed
TIMEOUT = 300


def _args(data_dir: Path, workdir: Path) -> list[str]:
    return [
        f"--workdir={workdir}",
        f"--config.data_dir={data_dir}",
        "--config.num_epochs=2",
        f"--config.max_steps={STEPS}",
        f"--config.checkpoint_every_steps={EVERY}",
        "--config.keep_checkpoints=2",
        "--config.log_every_steps=1",
        "--config.export_torch=false",
    ]


def _start(args: list[str], log: Path, *, delay: float = 0.0) -> subprocess.Popen:
    """``python train.py ARGS`` (through train_slowly.py with a delay), its output to ``log``."""
    if delay:
        command = [sys.executable, str(Path(__file__).with_name("train_slowly.py")), str(delay), *args]
    else:
        command = [sys.executable, "train.py", *args]
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _run(args: list[str], log: Path) -> str:
    """Runs train.py to completion; returns its output, failing the test on a non-zero exit."""
    proc = _start(args, log)
    assert proc.wait(timeout=TIMEOUT) == 0, log.read_text()[-4000:]
    return log.read_text()


def _train_steps(workdir: Path) -> list[int]:
    """Steps of the train records in metrics.jsonl so far (a line being written is skipped)."""
    path = workdir / "metrics.jsonl"
    steps = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "train_loss" in record:
                steps.append(record["step"])
    return steps


def _wait_until_trained(proc: subprocess.Popen, workdir: Path, step: int, log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while max(_train_steps(workdir), default=0) < step:
        if proc.poll() is not None:
            pytest.fail(f"train.py exited ({proc.returncode}) before step {step}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"train.py did not reach step {step} in {TIMEOUT}s:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)


def _assert_same_run(workdir: Path, reference: Path) -> None:
    """Same metric records (all steps, exactly) and the same final TrainState, bit for bit."""
    mine, theirs = (metrics_lib.read(str(w / "metrics.jsonl")) for w in (workdir, reference))
    keys = ("train_loss", "train_accuracy", "learning_rate", "test_loss", "test_accuracy")
    strip = lambda records: [{k: r[k] for k in ("step", *keys) if k in r} for r in records]  # noqa: E731
    assert [r["step"] for r in mine if "train_loss" in r] == list(range(1, STEPS + 1))
    assert strip(mine) == strip(theirs)
    (state_a, meta_a), (state_b, meta_b) = (
        checkpoint.Checkpoints(str(w / "checkpoints"), read_only=True).restore() for w in (workdir, reference)
    )
    assert meta_a["global_step"] == meta_b["global_step"] == STEPS
    jax.tree.map(np.testing.assert_array_equal, state_a, state_b)


@pytest.fixture(scope="module")
def reference(small_mnist, tmp_path_factory) -> Path:
    """The workdir of one uninterrupted run of the tiny recipe."""
    workdir = tmp_path_factory.mktemp("reference")
    _run(_args(small_mnist, workdir / "run"), workdir / "log")
    return workdir / "run"


def test_fresh_processes_train_bit_identical_states(reference, small_mnist, tmp_path):
    _run(_args(small_mnist, tmp_path / "run"), tmp_path / "log")
    _assert_same_run(tmp_path / "run", reference)


def _interrupt(args, workdir, log, after_step: int, sig: signal.Signals) -> tuple[int, str, int]:
    """Starts a slowed run, sends ``sig`` once ``after_step`` steps are logged; returns its exit
    status, output and last trained step, asserting that step was finished and checkpointed."""
    proc = _start(args, log, delay=DELAY)
    _wait_until_trained(proc, workdir, after_step, log)
    proc.send_signal(sig)
    status = proc.wait(timeout=TIMEOUT)
    stopped = max(_train_steps(workdir))
    # The step the signal interrupted was finished and saved: nothing to train again.
    assert checkpoint.Checkpoints(str(workdir / "checkpoints"), read_only=True).latest_step() == stopped
    return status, log.read_text(), stopped


def test_sigterm_saves_exits_0_and_rerun_resumes_exactly(reference, small_mnist, tmp_path):
    workdir, args = tmp_path / "run", _args(small_mnist, tmp_path / "run")
    status, out, stopped = _interrupt(args, workdir, tmp_path / "first.log", 6, signal.SIGTERM)
    assert status == 0, out[-4000:]
    assert 6 <= stopped < STEPS
    saved = workdir / "checkpoints" / str(stopped)
    assert f"SIGTERM: training stopped at step {stopped} of {STEPS}; saved checkpoint {saved}." in out
    assert "Run the same command again to resume." in out
    assert not (workdir / "summary.json").exists()

    out = _run(args, tmp_path / "second.log")
    assert f"resuming from checkpoint step {stopped} " in out
    assert json.loads((workdir / "summary.json").read_text())["resumed_from_step"] == stopped
    _assert_same_run(workdir, reference)


def test_sigint_saves_and_exits_130(small_mnist, tmp_path):
    workdir = tmp_path / "run"
    status, out, stopped = _interrupt(_args(small_mnist, workdir), workdir, tmp_path / "log", 2, signal.SIGINT)
    assert status == 130, out[-4000:]
    assert f"SIGINT: training stopped at step {stopped} of {STEPS}" in out
    assert "KeyboardInterrupt" not in out


def test_kill_9_rerun_loses_at_most_checkpoint_every_steps(reference, small_mnist, tmp_path):
    workdir, args = tmp_path / "run", _args(small_mnist, tmp_path / "run")
    proc = _start(args, tmp_path / "first.log", delay=DELAY)
    _wait_until_trained(proc, workdir, 2 * EVERY + 2, tmp_path / "first.log")  # between checkpoints 8 and 12
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    killed_at = max(_train_steps(workdir))

    out = _run(args, tmp_path / "second.log")
    resumed = int(re.search(r"resuming from checkpoint step (\d+) ", out).group(1))
    lost = killed_at - resumed
    assert resumed % EVERY == 0 and resumed >= 2 * EVERY and lost <= EVERY, (resumed, killed_at)
    _assert_same_run(workdir, reference)  # including the steps trained twice, and their records


def test_stop_request_catches_one_signal_then_restores_handlers():
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with interrupt.StopRequest() as stop:
        assert stop.signal is None
        assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGTERM) == stop._handle
        signal.raise_signal(signal.SIGTERM)
        assert stop.signal is signal.SIGTERM
        # A second signal gets the previous handlers: Ctrl-C twice aborts at once.
        assert {sig: signal.getsignal(sig) for sig in previous} == previous
    assert {sig: signal.getsignal(sig) for sig in previous} == previous
    with interrupt.StopRequest() as stop:
        pass
    assert stop.signal is None
    assert {sig: signal.getsignal(sig) for sig in previous} == previous


def test_stop_request_outside_the_main_thread_changes_nothing():
    seen = []

    def body():
        with interrupt.StopRequest() as stop:
            seen.append((stop.signal, signal.getsignal(signal.SIGTERM)))

    previous = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [(None, previous)]
