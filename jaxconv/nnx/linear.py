"""``torch.nn.Linear`` and ``torch.nn.Flatten`` as Flax NNX modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from flax import nnx

from jaxconv.nn import _layers
from jaxconv.nnx.conv import init_params, param_values


class Linear(nnx.Module):
    """``torch.nn.Linear(in_features, out_features, bias=True, *, rngs)``: ``y = x @ weight.T + bias``.

    ``weight`` ``(out_features, in_features)`` and ``bias`` ``(out_features,)``
    as PyTorch (no transposition when loading a state_dict), PyTorch's init.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 param_dtype: Any = jnp.float32, weight_init: Callable | None = None,
                 bias_init: Callable | None = None, rngs: nnx.Rngs):
        self.config = _layers.linear_config(in_features, out_features, bias)
        init_params(self, self.config, rngs, param_dtype, weight_init, bias_init)

    def __call__(self, x: Any) -> jnp.ndarray:
        return self.config.forward(x, *param_values(self))


class Flatten(nnx.Module):
    """``torch.nn.Flatten(start_dim=1, end_dim=-1)``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim = start_dim
        self.end_dim = end_dim

    def __call__(self, x: Any) -> jnp.ndarray:
        return _layers.flatten(x, self.start_dim, self.end_dim)
