"""Optimizer and learning-rate schedule from a config, with PyTorch's semantics.

Each optimizer matches its ``torch.optim`` namesake: SGD's momentum buffer is
``v = momentum * v + g`` (optax's trace), ``weight_decay`` is added to the
gradient (L2) for sgd/adam/adadelta and decoupled for adamw, and ``eps=None``
means PyTorch's default for that optimizer.
"""

import jax.numpy as jnp
import ml_collections
import optax

_DEFAULT_EPS = {"adam": 1e-8, "adamw": 1e-8, "adadelta": 1e-6, "sgd": None}


def create_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
    """The learning rate at each global step.

    ``constant``; ``cosine``: linear warmup over ``warmup_epochs`` then cosine
    decay to 0; ``onecycle``: ``torch.optim.lr_scheduler.OneCycleLR``'s cosine
    annealing with ``pct_start = warmup_epochs / num_epochs``; ``step``:
    ``StepLR(step_size=step_every_epochs, gamma=step_gamma)`` stepped once per
    epoch, so epoch ``e`` runs at ``lr * gamma ** (e // step_every_epochs)``.
    The schedule spans ``num_epochs``; ``max_steps`` only cuts a run short.
    """
    lr = config.learning_rate
    total = config.num_epochs * steps_per_epoch
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if config.schedule == "constant":
        return optax.constant_schedule(lr)
    if config.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, lr, warmup_steps=warmup, decay_steps=max(total, warmup + 1)
        )
    if config.schedule == "onecycle":
        return onecycle_schedule(lr, total, pct_start=min(warmup / total, 0.99))
    if config.schedule == "step":
        return optax.exponential_decay(
            lr,
            transition_steps=config.step_every_epochs * steps_per_epoch,
            decay_rate=config.step_gamma,
            staircase=True,
        )
    raise ValueError(f"Unknown schedule {config.schedule!r}")


def create_optimizer(
    config: ml_collections.ConfigDict, schedule: optax.Schedule
) -> optax.GradientTransformation:
    """The optimizer named by ``config.optimizer``, driven by ``schedule``."""
    name = config.optimizer
    eps = config.eps if config.eps is not None else _DEFAULT_EPS.get(name)
    l2 = [optax.add_decayed_weights(config.weight_decay)] if config.weight_decay and name != "adamw" else []
    if name == "sgd":
        tx = optax.sgd(schedule, momentum=config.momentum or None, nesterov=config.nesterov)
    elif name == "adam":
        tx = optax.adam(schedule, b1=config.b1, b2=config.b2, eps=eps)
    elif name == "adamw":
        tx = optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=eps, weight_decay=config.weight_decay)
    elif name == "adadelta":
        tx = optax.adadelta(schedule, rho=config.rho, eps=eps)
    else:
        raise ValueError(f"Unknown optimizer {name!r}")
    return optax.chain(*l2, tx)


def onecycle_schedule(
    peak: float,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> optax.Schedule:
    """``torch.optim.lr_scheduler.OneCycleLR`` (cosine, two phases), step for step.

    Rises from ``peak / div_factor`` to ``peak`` over the first
    ``pct_start * total_steps - 1`` steps, then anneals to
    ``peak / div_factor / final_div_factor`` at step ``total_steps - 1``.
    (optax's ``cosine_onecycle_schedule`` puts the peak one step later.)
    """
    initial = peak / div_factor
    final = initial / final_div_factor
    up_end = max(float(pct_start * total_steps) - 1.0, 1.0)
    down_end = max(float(total_steps - 1), up_end + 1.0)

    def anneal(start, end, pct):
        return end + (start - end) / 2.0 * (1.0 + jnp.cos(jnp.pi * pct))

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        up = anneal(initial, peak, step / up_end)
        down = anneal(peak, final, jnp.clip((step - up_end) / (down_end - up_end), 0.0, 1.0))
        return jnp.where(step <= up_end, up, down)

    return schedule
