"""Damaged checkpoints on resume, orbax's leftovers of an unfinished save, and saves that fail.

All runs use the small MNIST subset (16 steps per epoch at batch 128).
``saved`` trains 8 steps once, checkpointing at 4 and 8; each test damages a
copy of its workdir.
"""

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest
from train_helpers import make_config

from jaxconv import train
from jaxconv.train import checkpoint


class Saved(NamedTuple):
    workdir: Path
    state: dict  # The TrainState of checkpoint 8, as stored.


def _config(data_dir, max_steps=8):
    return make_config(data_dir, max_steps=max_steps, checkpoint_every_steps=4, keep_checkpoints=3)


def _restore(workdir: Path, step: int | None = None):
    return checkpoint.Checkpoints(str(workdir / "checkpoints"), read_only=True).restore(step=step)


@pytest.fixture(scope="module")
def saved(small_mnist, tmp_path_factory) -> Saved:
    workdir = tmp_path_factory.mktemp("saved")
    train.train_and_evaluate(_config(small_mnist), str(workdir))
    assert checkpoint.Checkpoints(str(workdir / "checkpoints"), read_only=True).all_steps() == [4, 8]
    state, _ = _restore(workdir, 8)
    return Saved(workdir, state)


@pytest.fixture
def workdir(saved, tmp_path) -> Path:
    """A copy of ``saved``'s workdir to damage."""
    shutil.copytree(saved.workdir, tmp_path / "run")
    return tmp_path / "run"


def _files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert files, f"no files under {folder}"
    return files


def _truncate(step_dir: Path) -> None:
    """Every file of the state cut to half its length, as a crash before the data reached the disk leaves it."""
    for path in _files(step_dir / "state"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(step_dir: Path) -> None:
    """Every file of the state emptied."""
    for path in _files(step_dir / "state"):
        path.write_bytes(b"")


def _garble(step_dir: Path) -> None:
    """64 bytes in the middle of the largest state file inverted, as by a bad disk."""
    path = max(_files(step_dir / "state"), key=lambda p: p.stat().st_size)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))


def _garble_meta(step_dir: Path) -> None:
    for path in _files(step_dir / "meta"):
        path.write_bytes(b"\x00\xff not json")


def _wrong_digest(step_dir: Path) -> None:
    """Every file readable, but the arrays no longer what was saved (as a bit flip in the data)."""
    path = step_dir / "meta" / "metadata"
    meta = json.loads(path.read_text())
    meta[checkpoint.DIGEST] = "0" * 64
    path.write_text(json.dumps(meta))


def _delete_state(step_dir: Path) -> None:
    shutil.rmtree(step_dir / "state")


DAMAGE = {
    f.__name__.lstrip("_"): f
    for f in (_truncate, _empty, _garble, _garble_meta, _wrong_digest, _delete_state)
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_unreadable_latest_checkpoint_is_skipped_for_the_previous(
    small_mnist, saved, workdir, damage, caplog
):
    latest = workdir / "checkpoints" / "8"
    DAMAGE[damage](latest)
    caplog.set_level(logging.WARNING, logger=checkpoint.__name__)

    summary = train.train_and_evaluate(_config(small_mnist), str(workdir))

    assert summary["resumed_from_step"] == 4 and summary["step"] == 8
    warnings = [r.getMessage() for r in caplog.records if r.name == checkpoint.__name__]
    assert any(
        f"checkpoint {latest} could not be restored" in m and "trying an older one" in m for m in warnings
    )
    assert (workdir / "checkpoints.corrupt" / "8").is_dir()  # set aside, not deleted
    state, meta = _restore(workdir)  # the new step 8: trained again from 4, identically
    assert meta["global_step"] == 8
    jax.tree.map(np.testing.assert_array_equal, state, saved.state)


def test_eval_mode_skips_an_unreadable_latest_checkpoint_and_changes_nothing(workdir):
    _truncate(workdir / "checkpoints" / "8")
    assert train.evaluate(None, str(workdir))["step"] == 4
    assert (workdir / "checkpoints" / "8").is_dir() and not (workdir / "checkpoints.corrupt").exists()


def test_no_readable_checkpoint_is_a_clear_error(small_mnist, workdir):
    for step in (4, 8):
        _truncate(workdir / "checkpoints" / str(step))
    directory = workdir / "checkpoints"
    with pytest.raises(train.CheckpointRestoreError) as error:
        train.train_and_evaluate(_config(small_mnist), str(workdir))
    message = str(error.value)
    assert f"none of the 2 checkpoint(s) in {directory} could be restored (the newest, step 8:" in message
    assert f"Delete {directory} to train from scratch, or use a new workdir" in message


def test_unfinished_save_left_by_a_crash_is_ignored_and_cleaned(small_mnist, workdir):
    # What orbax leaves when killed mid-save: <step>.orbax-checkpoint-tmp, never renamed to <step>.
    leftover = workdir / "checkpoints" / "12.orbax-checkpoint-tmp"
    shutil.copytree(workdir / "checkpoints" / "8", leftover)
    _truncate(leftover)

    assert train.evaluate(None, str(workdir))["step"] == 8
    summary = train.train_and_evaluate(_config(small_mnist, max_steps=12), str(workdir))
    assert summary["resumed_from_step"] == 8 and summary["step"] == 12
    assert not leftover.exists()
    assert _restore(workdir)[1]["global_step"] == 12


def _make_read_only(directory: Path) -> None:
    directory.chmod(0o555)


def _replace_by_file(directory: Path) -> None:
    shutil.rmtree(directory)
    directory.write_text("not a directory")


@pytest.mark.parametrize(
    "breakage", [_make_read_only, _replace_by_file], ids=["read_only", "replaced_by_file"]
)
def test_checkpoint_dir_broken_mid_run_fails_naming_the_checkpoint(
    small_mnist, tmp_path, monkeypatch, breakage
):
    if breakage is _make_read_only and os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    directory = tmp_path / "checkpoints"
    real_save = checkpoint.Checkpoints.save

    def save(self, step, *args, **kwargs):
        self.wait()  # checkpoint 4 is complete before the directory breaks
        if step == 8:
            breakage(directory)
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(checkpoint.Checkpoints, "save", save)
    try:
        with pytest.raises(
            train.CheckpointSaveError, match=re.escape(f"could not save checkpoint {directory / '8'}")
        ):
            train.train_and_evaluate(_config(small_mnist), str(tmp_path))
    finally:
        if directory.is_dir():
            directory.chmod(0o755)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 200 KiB tmpfs (skips where mounting is not allowed: it needs root)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_disk_full_save_fails_naming_the_checkpoint(tiny_disk):
    ckpts = checkpoint.Checkpoints(str(tiny_disk / "checkpoints"), keep=5)
    rng = np.random.default_rng(0)
    state = lambda: {"w": rng.standard_normal(25_000).astype(np.float32)}  # noqa: E731 (100 KB, incompressible)
    ckpts.save(1, state(), {"global_step": 1})
    ckpts.wait()
    ckpts.save(2, state(), {"global_step": 2})  # the write fails in orbax's background thread
    with pytest.raises(train.CheckpointSaveError) as error:
        ckpts.wait()
    message = str(error.value)
    assert f"could not save checkpoint {tiny_disk / 'checkpoints' / '2'}: " in message
    assert "No space left on device" in message
    assert ckpts.all_steps() == [1] and ckpts.restore()[1]["global_step"] == 1  # the last good one
    ckpts.close()
