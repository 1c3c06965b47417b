"""Single-device, pmap and sharded (jit + Mesh) execution of the steps.

A ``Runner`` hides the layout: ``put_state``/``get_state`` move a host-layout
``TrainState`` onto the devices and back, ``put_batch`` places a global batch,
and ``train_step``/``eval_step`` take and return the placed values. All three
modes compute the same global step (see ``steps``), so their loss
trajectories agree to float32 rounding.
"""

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxconv.train import steps

AXIS = "data"


@dataclasses.dataclass
class Runner:
    """Placed execution of the train and eval steps for one parallel mode."""

    kind: str
    num_devices: int
    microbatches: int  # the train step's microbatches per device (`steps.num_microbatches`)
    eval_microbatches: int  # the eval step's
    train_step: Callable  # (placed state, placed batch) -> (placed state, metrics)
    eval_step: Callable  # (placed params, placed batch) -> summed counts
    put_state: Callable
    get_state: Callable  # placed state -> host-layout state (one copy)
    put_batch: Callable  # dict of numpy arrays, leading axis = global batch
    get_metrics: Callable  # step outputs -> one copy

    def compile(self, state, train_batch, eval_batch) -> dict[str, float]:
        """Compiles both steps ahead of time for these shapes; returns seconds spent on each."""
        times = {}
        t = time.perf_counter()
        self.train_step = self.train_step.lower(state, train_batch).compile()
        times["train_step"] = time.perf_counter() - t
        t = time.perf_counter()
        self.eval_step = self.eval_step.lower(state.params, eval_batch).compile()
        times["eval_step"] = time.perf_counter() - t
        return times


def _check_divisible(name: str, size: int, n: int, kind: str) -> None:
    if size % n:
        raise ValueError(
            f"{name}={size} is not divisible by the {n} local devices that parallel={kind!r} splits it over"
        )


def create(
    kind: str,
    apply_fn: Callable,
    tx,
    *,
    batch_size: int,
    eval_batch_size: int,
    microbatch_size: int | None = None,
    example_bytes: int | None = None,
    devices=None,
) -> Runner:
    """A Runner for ``kind`` in ``("none", "pmap", "sharded")`` over ``devices`` (default: all local).

    ``microbatch_size``: examples per microbatch of each device's share of the
    batch; None: `steps.num_microbatches` picks from the backend and
    ``example_bytes`` (`steps.largest_activation_bytes`; None: whole batches).
    The eval step's microbatches are always picked that way.
    """
    if kind not in ("none", "pmap", "sharded"):
        raise ValueError(f"Unknown parallel mode {kind!r}; choose one of ['none', 'pmap', 'sharded']")
    devices = list(devices or jax.local_devices())
    if kind == "none":
        devices = devices[:1]
    n = len(devices)
    _check_divisible("batch_size", batch_size, n, kind)
    _check_divisible("eval_batch_size", eval_batch_size, n, kind)
    try:
        k = steps.num_microbatches(batch_size // n, microbatch_size, devices[0].platform, example_bytes)
    except ValueError as e:
        raise ValueError(f"batch_size={batch_size} over {n} device(s): {e}") from None
    k_eval = steps.num_microbatches(eval_batch_size // n, None, devices[0].platform, example_bytes)
    train = functools.partial(steps.train_step, apply_fn=apply_fn, tx=tx, microbatches=k)
    evaluate = functools.partial(steps.eval_step, apply_fn=apply_fn, microbatches=k_eval)
    ident = lambda x: x  # noqa: E731

    if kind == "none":
        device = devices[0]
        put = functools.partial(jax.device_put, device=device)
        return Runner(
            kind,
            num_devices=1,
            microbatches=k,
            eval_microbatches=k_eval,
            train_step=jax.jit(train, donate_argnums=0),
            eval_step=jax.jit(evaluate),
            put_state=put,
            get_state=jax.device_get,
            put_batch=put,
            get_metrics=ident,
        )

    mesh = Mesh(np.array(devices), (AXIS,))
    if kind == "pmap":
        pmap = functools.partial(jax.pmap, axis_name=AXIS, devices=devices)
        leading = NamedSharding(mesh, P(AXIS))  # pmap's layout: axis 0 indexes devices.

        def put_state(state):
            return jax.device_put(
                jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), state), leading
            )

        def put_batch(batch):
            return jax.device_put(
                {k: np.reshape(v, (n, v.shape[0] // n, *v.shape[1:])) for k, v in batch.items()}, leading
            )

        first = functools.partial(jax.tree.map, lambda x: x[0])  # every device holds the same copy
        return Runner(
            kind,
            num_devices=n,
            microbatches=k,
            eval_microbatches=k_eval,
            train_step=pmap(functools.partial(train, axis_name=AXIS), donate_argnums=0),
            eval_step=pmap(functools.partial(evaluate, axis_name=AXIS)),
            put_state=put_state,
            get_state=lambda state: jax.device_get(first(state)),
            put_batch=put_batch,
            get_metrics=first,
        )

    # kind == "sharded"
    replicated, data = NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))
    return Runner(
        kind,
        num_devices=n,
        microbatches=k,
        eval_microbatches=k_eval,
        train_step=jax.jit(
            train,
            in_shardings=(replicated, data),
            out_shardings=(replicated, replicated),
            donate_argnums=0,
        ),
        eval_step=jax.jit(evaluate, in_shardings=(replicated, data), out_shardings=replicated),
        put_state=functools.partial(jax.device_put, device=replicated),
        get_state=jax.device_get,
        put_batch=functools.partial(jax.device_put, device=data),
        get_metrics=ident,
    )
