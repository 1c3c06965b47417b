"""Orbax checkpoints of the TrainState plus the data-iterator position.

Each checkpoint (``<directory>/<step>``, named by global step) holds two
items: ``state`` (the TrainState arrays: params, optimizer state, step, PRNG
keys) and ``meta`` (JSON: epoch, step within the epoch, the test metrics if
evaluated, and a digest of ``state``). The manager keeps the ``keep`` latest
checkpoints plus the best one by ``test_accuracy``.

Saves are asynchronous. A save that fails raises ``CheckpointSaveError``
naming the checkpoint path, at the latest on the next ``save``, ``wait`` or
``close``: a failed write is never silently dropped. ``restore`` of the latest
checkpoint skips, with a warning, checkpoints that cannot be read (truncated
or garbled files, arrays that no longer match the digest recorded at save
time) and falls back to older ones. Orbax's temporary directories of a save
that never finished are ignored and, unless read-only, deleted.
"""

import hashlib
import logging
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

log = logging.getLogger(__name__)


class CheckpointSaveError(OSError):
    """A checkpoint could not be written; the message names its path."""


class CheckpointRestoreError(RuntimeError):
    """No checkpoint of a directory could be read; the message names the directory and the fix."""


class Checkpoints:
    """Saves and restores ``(TrainState, meta)`` pairs under one directory."""

    def __init__(self, directory: str, keep: int = 3, *, read_only: bool = False):
        self.directory = os.path.abspath(directory)
        self.read_only = read_only
        policy = pp.AnyPreservationPolicy(
            [
                pp.LatestN(n=keep),
                pp.BestN(
                    get_metric_fn=lambda metrics: metrics["test_accuracy"],
                    n=1,
                    keep_checkpoints_without_metrics=False,
                ),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy,
            enable_async_checkpointing=True,
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only,
            # Creating the step directory in the save call makes its failure raise there. Created in the
            # background, a failure leaves orbax's writer threads waiting 5 minutes for it, holding up exit.
            async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
        self._pending: int | None = None  # The step of a save started and not yet checked.
        self._errors = _ErrorCapture()

    def step_path(self, step: int) -> str:
        """The directory of checkpoint ``step``."""
        return os.path.join(self.directory, str(step))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        return self._manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state, meta: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
        """Starts saving host copies of ``state`` and ``meta`` as checkpoint ``step``.

        Host (numpy) copies let the caller donate the device buffers to the
        next train step while the write is still in flight. Raises
        CheckpointSaveError if the previous save failed or this one cannot start.
        """
        self.wait()
        host_state = jax.device_get(state)
        meta = {**meta, DIGEST: _digest(host_state)}
        self._errors.attach()
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(meta)
                ),
                metrics=metrics,
                force=True,
            )
        except Exception as e:
            self._errors.detach()
            raise CheckpointSaveError(_save_failure(self.step_path(step), f"{type(e).__name__}: {e}")) from e
        self._pending = step

    def restore(self, target=None, step: int | None = None) -> tuple[Any, dict[str, Any]] | None:
        """Restores checkpoint ``step``, or the newest readable one; None if there is none.

        With ``target`` (a TrainState) the result has its structure and
        placement; without, the state comes back as the nested dict stored.
        Without ``step``, a checkpoint that fails to restore is logged as a
        warning and the next older one is tried; when one succeeds, the
        unreadable newer ones are moved to ``<directory>.corrupt/`` (unless
        read-only) so that training can write those steps again. Raises
        CheckpointRestoreError if ``step``, or every checkpoint, is unreadable.
        """
        self.wait()
        abstract = None if target is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        if step is not None:
            try:
                return self._restore_step(step, abstract)
            except Exception as e:
                raise CheckpointRestoreError(
                    f"checkpoint {self.step_path(step)} could not be restored: {type(e).__name__}: {e}"
                ) from e
        steps = sorted(self.all_steps(), reverse=True)
        failed = []
        for candidate in steps:
            try:
                restored = self._restore_step(candidate, abstract)
            except Exception as e:
                log.warning(
                    "checkpoint %s could not be restored (%s: %s); trying an older one",
                    self.step_path(candidate),
                    type(e).__name__,
                    _first_line(e),
                )
                failed.append((candidate, e))
                continue
            self._set_aside([s for s, _ in failed])
            return restored
        if not failed:
            return None
        newest, error = failed[0]
        raise CheckpointRestoreError(
            f"none of the {len(failed)} checkpoint(s) in {self.directory} could be restored (the newest, step "
            f"{newest}: {type(error).__name__}: {_first_line(error)}). Delete {self.directory} to train from "
            "scratch, or use a new workdir."
        ) from error

    def wait(self) -> None:
        """Blocks until every pending asynchronous save is on disk; raises CheckpointSaveError if one failed."""
        step, self._pending = self._pending, None
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            raise CheckpointSaveError(
                _save_failure(
                    self.step_path(step) if step is not None else self.directory, f"{type(e).__name__}: {e}"
                )
            ) from e
        finally:
            cause = self._errors.detach()
        # Orbax logs a failed background write and carries on: the missing directory is the evidence.
        if step is not None and not os.path.isdir(self.step_path(step)):
            self._manager.reload()  # Forget the step it never finalized.
            raise CheckpointSaveError(
                _save_failure(
                    self.step_path(step), cause or "it was not finalized (see orbax's error logged above)"
                )
            )

    def close(self) -> None:
        """Waits for pending saves (raising CheckpointSaveError if one failed) and releases the manager."""
        try:
            self.wait()
        finally:
            self._manager.close()

    def _restore_step(self, step: int, abstract) -> tuple[Any, dict[str, Any]]:
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        if restored.meta is None:
            raise ValueError(f"its meta item is empty or missing in {self.step_path(step)}")
        meta = dict(restored.meta)
        if DIGEST in meta and _digest(restored.state) != meta[DIGEST]:
            raise ValueError("its arrays do not match the digest recorded when it was saved")
        return restored.state, meta

    def _set_aside(self, steps: list[int]) -> None:
        """Moves the unreadable checkpoints ``steps`` to ``<directory>.corrupt/<step>``."""
        if not steps or self.read_only:
            return
        for step in steps:
            target = os.path.join(f"{self.directory}.corrupt", str(step))
            if os.path.exists(target):
                shutil.rmtree(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(self.step_path(step), target)
            log.warning("moved the unreadable checkpoint %s to %s", self.step_path(step), target)
        self._manager.reload()


DIGEST = "state_sha256"  # The meta entry holding ``_digest`` of the saved state.


def _digest(state) -> str:
    """SHA-256 of the dtype, shape and bytes of every array in ``state``.

    Independent of the leaves' order, so a TrainState and the nested dict
    orbax restores without a target (whose flattening orders differ) agree.
    """
    leaves = sorted(
        hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()
        for a in map(np.asarray, jax.tree.leaves(state))
    )
    return hashlib.sha256("".join(leaves).encode()).hexdigest()


def _save_failure(path: str, cause: str) -> str:
    return (
        f"could not save checkpoint {path}: {cause}. Check that {os.path.dirname(path)} is writable and its disk "
        "has space; re-running the same command resumes from the latest saved checkpoint."
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


class _ErrorCapture(logging.Handler):
    """Keeps the first exception that orbax's background save threads log (they do not raise it)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.cause: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.cause is None and record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            self.cause = f"{type(error).__name__}: {_first_line(error)}"

    def attach(self) -> None:
        self.cause = None
        logging.getLogger("absl").addHandler(self)

    def detach(self) -> str | None:
        logging.getLogger("absl").removeHandler(self)
        return self.cause
