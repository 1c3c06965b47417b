"""Pure train and eval steps; ``parallel`` wraps them in jit or pmap.

Both take an optional ``axis_name``: under ``jax.pmap`` each device sees its
slice of the batch, gradients and metrics are averaged (``pmean``) or summed
(``psum``) over that axis, and the result equals the single-device step's.

The train step can split its batch into microbatches (`accumulate`): the
gradient of the batch's mean loss is the sum of the microbatches' summed-loss
gradients over the batch size, so the update is the same (to float32 rounding)
while each microbatch's activations stay small. On CPU that is faster for
models with large activations (`num_microbatches`).
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


CPU_MICROBATCH_BYTES = 5 * 2**20  # on CPU, a microbatch's largest activation stays within this
MIN_MICROBATCH = 16  # ... but no microbatch is smaller than this


def num_microbatches(batch: int, microbatch_size: int | None = None, backend: str | None = None,
                     example_bytes: int | None = None) -> int:
    """How many microbatches a train step splits a (per-device) batch of ``batch`` examples into.

    ``microbatch_size`` must divide ``batch``. ``None`` picks: on CPU, given the
    bytes of the model's largest activation per example (``example_bytes``,
    `largest_activation_bytes`), the fewest equal microbatches whose largest
    activation fits in ``CPU_MICROBATCH_BYTES``, none smaller than
    ``MIN_MICROBATCH`` examples; elsewhere (accelerators want large kernels),
    or without ``example_bytes``, 1: the whole batch.

    Why: a microbatch's activations stay in cache from one layer to the next.
    Adam step, images/s, whole batch vs microbatches in `accumulate`'s scan, same
    run (2-core AMD EPYC, 2 MB L2 per core, 32 MB L3; BENCHMARKS.md)::

        model (largest activation)   batch   whole    16      32      64
        mnist_net (147 KB/example)      64    1161    1584    1649    1263
                                       128    1413    2060    2082    1850
                                       256    1520    2125    2218    2011
        convnet (23 KB/example)        128   16985   11514   13571   14985
                                       256    9620   10839   12852   15078
        lenet5 (14 KB/example)         128   29164   22131   26276   27547
                                       256   26955   16677   23110   20808

    The budget splits mnist_net's batches into microbatches of 32 (4.5 MiB) and
    convnet's batch 256 into two of 128 (2.8 MiB), and keeps the others whole.
    """
    if microbatch_size is not None:
        if microbatch_size < 1 or batch % microbatch_size:
            raise ValueError(
                f"microbatch_size={microbatch_size} must divide the per-device batch of {batch} examples; "
                "choose a divisor, or None to let the trainer pick"
            )
        return batch // microbatch_size
    if example_bytes is None or (backend or jax.default_backend()) != "cpu":
        return 1
    splits = [k for k in range(1, batch + 1) if batch % k == 0 and (k == 1 or batch // k >= MIN_MICROBATCH)]
    fitting = [k for k in splits if (batch // k) * example_bytes <= CPU_MICROBATCH_BYTES]
    return fitting[0] if fitting else splits[-1]


def largest_activation_bytes(apply_fn: Callable, params, example_shape, dtype=jnp.float32) -> int | None:
    """Bytes of the largest submodule output of a Flax ``apply_fn`` for one training example
    (shapes only: nothing is computed); None if ``apply_fn`` cannot capture intermediates."""
    x = jax.ShapeDtypeStruct((1, *example_shape), dtype)

    def forward(params, x):
        return apply_fn({"params": params}, x, train=True, rngs={"dropout": jax.random.key(0)},
                        capture_intermediates=True, mutable=["intermediates"])

    try:
        _, captured = jax.eval_shape(forward, params, x)
    except TypeError:
        return None
    sizes = [leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(captured)]
    return max(sizes, default=None)


def accumulate(loss_fn: Callable, params, batch, microbatches: int):
    """``jax.value_and_grad(loss_fn, has_aux=True)(params, batch)`` as a sum over microbatches.

    ``loss_fn(params, microbatch) -> (loss, aux)`` must be a *sum* over the
    microbatch's examples (loss and every ``aux`` leaf), so that the sums
    over microbatches are the whole batch's. ``batch`` is a pytree whose
    leaves lead with the batch axis; microbatch ``i`` takes examples ``i,
    i + k, i + 2k, ...`` (``k = microbatches``), which keeps every microbatch
    spread over the devices when the batch axis is sharded. The microbatches
    run one after another in a ``lax.scan`` (jaxconv's convolutions stay on
    XLA's fast kernels inside loops: `jaxconv.functional._canonical`).
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if microbatches == 1:
        return grad_fn(params, batch)

    def add(total, micro):
        return jax.tree.map(jnp.add, total, grad_fn(params, micro)), None

    first = jax.tree.map(lambda x: jax.ShapeDtypeStruct((x.shape[0] // microbatches, *x.shape[1:]), x.dtype), batch)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(grad_fn, params, first))
    total, _ = jax.lax.scan(add, zeros, jax.tree.map(lambda x: _split(x, microbatches), batch))
    return total


def _split(x: jax.Array, k: int) -> jax.Array:
    """(B, ...) -> (k, B / k, ...): row i holds examples i, i + k, i + 2k, ..."""
    return jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)


def _merge(y: jax.Array) -> jax.Array:
    """The inverse of `_split`: (k, B / k, ...) -> (B, ...) in example order."""
    return jnp.swapaxes(y, 0, 1).reshape(y.shape[0] * y.shape[1], *y.shape[2:])


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    apply_fn: Callable,
    tx: optax.GradientTransformation,
    axis_name: str | None = None,
    microbatches: int = 1,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on ``batch`` (``image`` NCHW float32, ``label`` int32).

    The gradient is computed over ``microbatches`` equal parts of the batch
    (`accumulate`); dropout masks are per example (``_per_example_dropout``),
    so the step's result does not depend on the split.

    A step whose loss or gradients are not finite leaves params and optimizer
    state unchanged; ``skipped_steps`` counts such steps and ``nonfinite_step``
    records the first. Whether that stops training (``on_nonfinite``) is the
    host's decision, taken before any checkpoint is written.
    """
    images, labels = batch["image"], batch["label"]
    if images.shape[0] % microbatches:
        raise ValueError(f"microbatches={microbatches} must divide the batch of {images.shape[0]} examples")
    step_key = jax.random.fold_in(state.dropout_key, state.step)
    example_ids = _example_ids(images.shape[0], axis_name)

    def loss_fn(params, micro):
        logits = _train_logits(apply_fn, params, micro["image"], step_key, micro["id"])
        loss_sum = cross_entropy(logits, micro["label"]).sum()
        return loss_sum, jnp.sum(jnp.argmax(logits, -1) == micro["label"])

    (loss_sum, correct), grads = accumulate(
        loss_fn, state.params, {"image": images, "label": labels, "id": example_ids}, microbatches
    )
    n = images.shape[0]
    loss, grads = loss_sum / n, jax.tree.map(lambda g: g / n, grads)
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


def apply_in_microbatches(fn: Callable, x: jax.Array, microbatches: int):
    """``fn(x)`` for a function ``fn`` of each example on its own (no batch statistics),
    computed over ``microbatches`` microbatches of ``x`` in a ``lax.map`` (as `accumulate`
    splits them) and put back in order. Inference with cache-sized microbatches on CPU:
    mnist_net forward at batch 256, whole vs 8 x 32: 5,203 -> 8,183 images/s; convnet at
    batch 1000 vs 5 x 200: 41,695 -> 71,095 (same run)."""
    if microbatches == 1:
        return fn(x)
    return jax.tree.map(_merge, jax.lax.map(fn, _split(x, microbatches)))


def eval_step(
    params, batch: Batch, *, apply_fn: Callable, axis_name: str | None = None, microbatches: int = 1
) -> dict[str, jax.Array]:
    """Summed loss, correct count and example count over the batch's real (``mask``) examples.

    The logits are computed over ``microbatches`` parts of the batch (`apply_in_microbatches`)."""
    logits = apply_in_microbatches(lambda x: apply_fn({"params": params}, x, train=False), batch["image"],
                                   microbatches)
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
