"""The training state: everything a resumed run needs to continue bit-for-bit."""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Pure data (a pytree of arrays), so it jits, donates and checkpoints as is.

    The model's ``apply`` and the optimizer stay outside, closed over by the
    step functions. Random streams are explicit: the dropout key of step ``s``
    is ``fold_in(dropout_key, s)`` and the shuffle key of epoch ``e`` is
    ``fold_in(shuffle_key, e)``, so a restored state replays both exactly.
    """

    step: jax.Array  # int32 (): optimizer steps taken (skipped updates included).
    params: Any
    opt_state: Any
    dropout_key: jax.Array  # uint32 (2,): raw PRNG key data.
    shuffle_key: jax.Array  # uint32 (2,)
    nonfinite_step: jax.Array  # int32 (): first step whose loss or grads were not finite; -1 if none.
    skipped_steps: jax.Array  # int32 (): updates dropped because they were not finite.


def create(model, tx: optax.GradientTransformation, seed: int, input_shape: tuple[int, ...]) -> TrainState:
    """Initializes params (NCHW ``input_shape`` with batch 1) and optimizer state from ``seed``.

    One jitted computation: initializing op by op would compile every
    parameter initializer separately. The params are drawn with the ``"rbg"``
    PRNG (XLA's RngBitGenerator), keyed from the run's threefry root key:
    XLA:CPU compiles threefry's per-parameter key derivation slowly (about 9 s
    of a ConvNet's cold start, against about 3 s this way). The same seed gives
    the same params for a given JAX version and backend.
    """
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    shapes = jax.eval_shape(
        lambda x: model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)}, x), x
    )
    extra = set(shapes) - {"params"}
    if extra:
        raise ValueError(
            f"Model {type(model).__name__} has variable collections {sorted(extra)}; only 'params' is supported"
        )

    @jax.jit
    def init(seed):
        root = jax.random.PRNGKey(seed)
        init_key, dropout_init_key, dropout_key, shuffle_key = jax.random.split(root, 4)
        rbg_init_key = jax.random.wrap_key_data(jnp.concatenate([init_key, dropout_init_key]), impl="rbg")
        variables = model.init({"params": rbg_init_key}, jnp.zeros(x.shape, x.dtype), train=False)
        params = variables["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            dropout_key=dropout_key,
            shuffle_key=shuffle_key,
            nonfinite_step=jnp.full((), -1, jnp.int32),
            skipped_steps=jnp.zeros((), jnp.int32),
        )

    return init(seed)
