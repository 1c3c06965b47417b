"""``torch.nn.Linear`` and ``torch.nn.Flatten`` as Flax linen modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxconv.nn import _layers


class Linear(nn.Module):
    """``torch.nn.Linear(in_features, out_features, bias=True)``: ``y = x @ weight.T + bias``.

    Parameters in PyTorch's layout, ``weight`` ``(out_features, in_features)``
    and ``bias`` ``(out_features,)``, so a PyTorch state_dict maps by name with
    no transposition; PyTorch's default init. Input ``(*, in_features)``,
    output ``(*, out_features)``; parameters are cast to the input's dtype.
    """

    in_features: int
    out_features: int
    bias: bool = True
    param_dtype: Any = jnp.float32
    weight_init: Callable | None = None
    bias_init: Callable | None = None

    def __post_init__(self) -> None:
        self.config  # noqa: B018 -- validates the arguments when the layer is built
        super().__post_init__()

    @property
    def config(self) -> _layers.LinearConfig:
        return _layers.linear_config(self.in_features, self.out_features, self.bias)

    @nn.compact
    def __call__(self, x: Any) -> jnp.ndarray:
        cfg = self.config
        w = self.param("weight", cfg.weight_init(self.weight_init), cfg.weight_shape, self.param_dtype)
        b = self.param("bias", cfg.bias_init(self.bias_init), cfg.bias_shape, self.param_dtype) if cfg.bias else None
        return cfg.forward(x, w, b)


class Flatten(nn.Module):
    """``torch.nn.Flatten(start_dim=1, end_dim=-1)``: (N, C, H, W) -> (N, C*H*W) in (C, H, W) order."""

    start_dim: int = 1
    end_dim: int = -1

    def __call__(self, x: Any) -> jnp.ndarray:
        return _layers.flatten(x, self.start_dim, self.end_dim)
