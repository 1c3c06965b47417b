"""Orbax checkpoints of the TrainState plus the data-iterator position.

Each checkpoint (named by global step) holds two items: ``state`` (the
TrainState arrays: params, optimizer state, step, PRNG keys) and ``meta``
(JSON: epoch, step within the epoch, and the test metrics if evaluated). The
manager keeps the ``keep`` latest checkpoints plus the best one by
``test_accuracy``; saves are asynchronous and ``close`` waits for them.
"""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp


class Checkpoints:
    """Saves and restores ``(TrainState, meta)`` pairs under one directory."""

    def __init__(self, directory: str, keep: int = 3, *, read_only: bool = False):
        self.directory = os.path.abspath(directory)
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
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        return self._manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state, meta: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
        """Starts saving host copies of ``state`` and ``meta`` as checkpoint ``step``.

        Host (numpy) copies let the caller donate the device buffers to the
        next train step while the write is still in flight.
        """
        host_state = jax.device_get(state)
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(meta)),
            metrics=metrics,
            force=True,
        )

    def restore(self, target=None, step: int | None = None) -> tuple[Any, dict[str, Any]] | None:
        """Restores checkpoint ``step`` (default: latest); None if there is none.

        With ``target`` (a TrainState) the result has its structure and
        placement; without, the state comes back as the nested dict stored.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        abstract = None if target is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        return restored.state, dict(restored.meta)

    def wait(self) -> None:
        """Blocks until every pending asynchronous save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
