"""Pure train and eval steps; ``parallel`` wraps them in jit or pmap.

Both take an optional ``axis_name``: under ``jax.pmap`` each device sees its
slice of the batch, gradients and metrics are averaged (``pmean``) or summed
(``psum``) over that axis, and the result equals the single-device step's.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jaxconv.train.state import TrainState

Batch = dict[str, jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example ``-log_softmax(logits)[label]``, PyTorch's ``F.cross_entropy``.

    Also PyTorch's ``F.nll_loss`` for models that already end in
    ``log_softmax`` (mnist_net): ``log_softmax`` of log-probabilities is the
    identity, so the same function serves both, with no model-specific branch.
    """
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _example_ids(batch_size: int, axis_name: str | None) -> jax.Array:
    """Each example's position in the global batch, whichever device holds it."""
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * batch_size
    return offset + jnp.arange(batch_size)


def _per_example_logits(apply_fn: Callable, params, images: jax.Array, keys: jax.Array) -> jax.Array:
    """Training-mode logits with one dropout key per example.

    Dropout masks then depend on the example's global position, not on how the
    batch is split over devices, which makes pmap/sharded runs reproduce the
    single-device trajectory. ``vmap`` folds the per-example calls back into
    one batched convolution.
    """

    def one(x, key):
        return apply_fn({"params": params}, x[None], train=True, rngs={"dropout": key})[0]

    return jax.vmap(one)(images, keys)


def _tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves, jnp.bool_(True))


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    apply_fn: Callable,
    tx: optax.GradientTransformation,
    axis_name: str | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on ``batch`` (``image`` NCHW float32, ``label`` int32).

    A step whose loss or gradients are not finite leaves params and optimizer
    state unchanged; ``skipped_steps`` counts such steps and ``nonfinite_step``
    records the first. Whether that stops training (``on_nonfinite``) is the
    host's decision, taken before any checkpoint is written.
    """
    images, labels = batch["image"], batch["label"]
    step_key = jax.random.fold_in(state.dropout_key, state.step)
    keys = jax.vmap(functools.partial(jax.random.fold_in, step_key))(_example_ids(images.shape[0], axis_name))

    def loss_fn(params):
        logits = _per_example_logits(apply_fn, params, images, keys)
        return cross_entropy(logits, labels).mean(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    correct = jnp.sum(jnp.argmax(logits, -1) == labels)
    if axis_name is not None:
        grads, loss = jax.lax.pmean((grads, loss), axis_name)
        correct = jax.lax.psum(correct, axis_name)

    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    finite = jnp.isfinite(loss) & _tree_all_finite(grads)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
    new_state = state.replace(
        step=state.step + 1,
        params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        nonfinite_step=jnp.where(~finite & (state.nonfinite_step < 0), state.step, state.nonfinite_step),
        skipped_steps=state.skipped_steps + (~finite).astype(jnp.int32),
    )
    return new_state, {"loss": loss, "correct": correct}


def eval_step(
    params, batch: Batch, *, apply_fn: Callable, axis_name: str | None = None
) -> dict[str, jax.Array]:
    """Summed loss, correct count and example count over the batch's real (``mask``) examples."""
    logits = apply_fn({"params": params}, batch["image"], train=False)
    mask = batch["mask"].astype(jnp.float32)
    loss = cross_entropy(logits, batch["label"])
    counts = {
        "loss_sum": jnp.sum(jnp.where(mask > 0, loss, 0.0)),
        "correct": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask),
        "count": jnp.sum(mask),
    }
    if axis_name is not None:
        counts = jax.lax.psum(counts, axis_name)
    return counts
