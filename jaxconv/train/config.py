"""The training config's fields, their validation, and its copy in the workdir.

Every recipe in ``configs/`` sets exactly the fields of ``FIELDS``; a typo'd,
missing or wrongly typed field, or a value outside a field's choices, fails in
``validate`` with a ValueError naming it, before any work starts.
"""

import json
import math
import numbers
import os
from typing import Any, NamedTuple

import ml_collections


class Field(NamedTuple):
    """What a config field may hold."""

    types: tuple[type, ...]
    choices: tuple[Any, ...] | None = None
    optional: bool = False  # None allowed (a ``config_dict.placeholder``)
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None  # Exclusive upper bound.


_INT, _FLOAT, _STR, _BOOL, _TUPLE = (int,), (int, float), (str,), (bool,), (tuple, list)

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
SCHEDULES = ("constant", "cosine", "onecycle", "step")
PARALLEL = ("none", "pmap", "sharded")
ON_NONFINITE = ("stop", "skip")

FIELDS: dict[str, Field] = {
    "model": Field(_STR),
    "dataset": Field(_STR),
    "data_dir": Field(_STR, optional=True),
    "normalize_mean": Field(_TUPLE),
    "normalize_std": Field(_TUPLE),
    "optimizer": Field(_STR, OPTIMIZERS),
    "learning_rate": Field(_FLOAT, minimum=0.0),
    "momentum": Field(_FLOAT, minimum=0.0),
    "nesterov": Field(_BOOL),
    "weight_decay": Field(_FLOAT, minimum=0.0),
    "b1": Field(_FLOAT, minimum=0.0, below=1.0),  # torch.optim.Adam: 0 <= beta < 1.
    "b2": Field(_FLOAT, minimum=0.0, below=1.0),
    "rho": Field(_FLOAT, minimum=0.0, maximum=1.0),  # torch.optim.Adadelta: 0 <= rho <= 1.
    "eps": Field(_FLOAT, optional=True, minimum=0.0),
    "schedule": Field(_STR, SCHEDULES),
    "warmup_epochs": Field(_FLOAT, minimum=0.0),
    "step_gamma": Field(_FLOAT, minimum=0.0),
    "step_every_epochs": Field(_INT, minimum=1),
    "batch_size": Field(_INT, minimum=1),
    "eval_batch_size": Field(_INT, minimum=1),
    "microbatch_size": Field(_INT, optional=True, minimum=1),
    "num_epochs": Field(_INT, minimum=1),
    "seed": Field(_INT),
    "parallel": Field(_STR, PARALLEL),
    "checkpoint_every_steps": Field(_INT, minimum=0),
    "keep_checkpoints": Field(_INT, minimum=1),
    "log_every_steps": Field(_INT, minimum=1),
    "eval_every_epochs": Field(_INT, minimum=1),
    "max_steps": Field(_INT, optional=True, minimum=0),
    "on_nonfinite": Field(_STR, ON_NONFINITE),
    "export_torch": Field(_BOOL),
}


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the first problem found in ``config``."""
    keys = set(config.keys())
    unknown = sorted(keys - FIELDS.keys())
    if unknown:
        raise ValueError(f"Unknown config field(s) {unknown}; known fields: {sorted(FIELDS)}")
    missing = sorted(FIELDS.keys() - keys)
    if missing:
        raise ValueError(f"Config is missing field(s) {missing}")
    for name, field in FIELDS.items():
        value = config[name]
        if value is None:
            if not field.optional:
                raise ValueError(f"Config field {name!r} must be set, got None")
            continue
        # bool is an int subclass: a bool where a number belongs is a mistake.
        if not isinstance(value, field.types) or (isinstance(value, bool) and bool not in field.types):
            names = "/".join(t.__name__ for t in field.types)
            raise ValueError(f"Config field {name!r} must be {names}, got {value!r}")
        if field.choices is not None and value not in field.choices:
            raise ValueError(f"Config field {name!r} is {value!r}; choose one of {list(field.choices)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"Config field {name!r} must be a finite number, got {value!r}")
        if field.minimum is not None and value < field.minimum:
            raise ValueError(f"Config field {name!r} must be >= {field.minimum}, got {value!r}")
        if field.maximum is not None and value > field.maximum:
            raise ValueError(f"Config field {name!r} must be <= {field.maximum:g}, got {value!r}")
        if field.below is not None and value >= field.below:
            raise ValueError(f"Config field {name!r} must be < {field.below:g}, got {value!r}")
    if config.schedule in ("cosine", "onecycle") and config.warmup_epochs > config.num_epochs:
        raise ValueError(
            f"Config field 'warmup_epochs' ({config.warmup_epochs}) must not exceed num_epochs "
            f"({config.num_epochs}) for schedule {config.schedule!r}"
        )
    for name in ("normalize_mean", "normalize_std"):
        values = tuple(config[name])
        if not values or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                                 for v in values):
            raise ValueError(f"Config field {name!r} must be a tuple of finite numbers (one per channel), "
                             f"got {values!r}")
    if len(config.normalize_mean) != len(config.normalize_std):
        raise ValueError(
            f"normalize_mean {tuple(config.normalize_mean)} and normalize_std "
            f"{tuple(config.normalize_std)} must have one entry per channel each"
        )
    if not all(s > 0 for s in config.normalize_std):
        raise ValueError(f"normalize_std must be positive, got {tuple(config.normalize_std)}")

    from jaxconv import models  # Deferred: building a model is the check that its name exists.

    try:
        models.get(config.model)
    except ValueError as e:
        raise ValueError(f"Config field 'model' is {config.model!r}: {e}") from e


def save_json(config: ml_collections.ConfigDict, path: str) -> None:
    """Writes ``config`` as JSON (tuples become lists; ``load_json`` undoes that)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(config.to_json(indent=2, sort_keys=True))
    os.replace(tmp, path)


def load_json(path: str) -> ml_collections.ConfigDict:
    """Reads a config written by ``save_json``, restoring tuples and placeholders."""
    with open(path) as f:
        raw = json.load(f)
    config = ml_collections.ConfigDict()
    for name, value in raw.items():
        field = FIELDS.get(name)
        if field is not None and isinstance(value, list):
            value = tuple(value)
        if value is None and field is not None and field.optional:
            value = ml_collections.config_dict.placeholder(field.types[-1])
        config[name] = value
    for name, field in FIELDS.items():  # fields added since the file was written
        if field.optional and name not in config:
            config[name] = ml_collections.config_dict.placeholder(field.types[-1])
    return config


def differences(old: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> dict[str, tuple]:
    """Fields whose values differ between two configs, as ``{name: (old, new)}``."""
    names = sorted(set(old.keys()) | set(new.keys()))
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return {n: (old.get(n), new.get(n)) for n in names if norm(old.get(n)) != norm(new.get(n))}
