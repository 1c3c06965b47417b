"""Pure train and eval steps; ``parallel`` wraps them in jit or pmap.

Both take an optional ``axis_name``: under ``jax.pmap`` each device sees its
slice of the batch, gradients and metrics are averaged (``pmean``) or summed
(``psum``) over that axis, and the result equals the single-device step's.
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxconv.nn.dropout import dropout, keep_mask, shared_dims
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


def _per_example_dropout(example_ids: jax.Array):
    """A flax method interceptor giving every ``nn.Dropout`` one mask per example.

    Each example's mask is drawn from ``fold_in(layer key, global example id)``
    instead of one draw over the whole batch, so it does not depend on how the
    batch is split over devices: pmap then reproduces the single-device
    trajectory (jit with a sharded batch does in any case). Otherwise it is
    `jaxconv.nn.Dropout`'s `jaxconv.nn.dropout.dropout` (keep with probability
    ``1 - rate``, scale kept values by ``1 / (1 - rate)``, share masks along
    ``broadcast_dims``). The model itself still runs batched.
    """

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if not isinstance(module, nn.Dropout) or context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        inputs, *rest = args
        deterministic = nn.merge_param(
            "deterministic", module.deterministic, kwargs.get("deterministic", rest[0] if rest else None)
        )
        if deterministic:
            return inputs

        def draw(keep_prob, shape):
            if inputs.ndim == 0 or 0 in shared_dims(inputs.ndim, module.broadcast_dims) or (
                    inputs.shape[0] != example_ids.shape[0]):
                raise ValueError(
                    f"{module.name}: per-example dropout needs inputs with the batch on axis 0 "
                    f"({example_ids.shape[0]} examples), got shape {inputs.shape}, "
                    f"broadcast_dims {module.broadcast_dims}"
                )
            rng = kwargs.get("rng")
            if rng is None:
                rng = module.make_rng(module.rng_collection)
            return jax.vmap(lambda i: keep_mask(jax.random.fold_in(rng, i), keep_prob, shape[1:]))(example_ids)

        return dropout(inputs, module.rate, module.broadcast_dims, draw)

    return interceptor


def _train_logits(
    apply_fn: Callable, params, images: jax.Array, key: jax.Array, example_ids: jax.Array
) -> jax.Array:
    """Training-mode logits, with per-example dropout masks (see ``_per_example_dropout``)."""
    with nn.intercept_methods(_per_example_dropout(example_ids)):
        return apply_fn({"params": params}, images, train=True, rngs={"dropout": key})


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
    example_ids = _example_ids(images.shape[0], axis_name)

    def loss_fn(params):
        logits = _train_logits(apply_fn, params, images, step_key, example_ids)
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
