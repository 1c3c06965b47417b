"""PyTorch's parameter initialisation (``torch.nn.init``) as Flax initializers.

Every initializer here is a function ``init(key, shape, dtype=jnp.float32) -> array``
(Flax's ``Initializer`` protocol) that reads fans from ``shape`` with PyTorch's
conventions, not Flax's: weights are in PyTorch's layout, ``(out, in)`` for
``Linear``, ``(out, in/groups, *kernel)`` for convolution and
``(in, out/groups, *kernel)`` for transposed convolution, and

    fan_in  = shape[1] * prod(shape[2:])
    fan_out = shape[0] * prod(shape[2:])

exactly as ``torch.nn.init._calculate_fan_in_and_fan_out``. So for a transposed
convolution fan_in is ``(out_channels / groups) * prod(kernel)``, as in PyTorch.

PyTorch's default for ``Linear`` and every ``ConvNd``/``ConvTransposeNd`` is
`kaiming_uniform` with ``a=sqrt(5)`` for the weight, i.e. U(-1/sqrt(fan_in),
1/sqrt(fan_in)), and `torch_bias` (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the
weight's fan_in) for the bias. The distributions match PyTorch's; the random
numbers do not (JAX and PyTorch use different generators).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]

__all__ = [
    "calculate_fan_in_and_fan_out",
    "calculate_gain",
    "default_bias",
    "default_weight",
    "kaiming_normal",
    "kaiming_uniform",
    "torch_bias",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
]


def calculate_fan_in_and_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape``, as ``torch.nn.init._calculate_fan_in_and_fan_out``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out can not be computed for a weight with fewer than 2 dimensions, "
            f"got shape {shape}"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for ``nonlinearity``, as ``torch.nn.init.calculate_gain``."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, (int, float)):
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        else:
            slope = float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity!r}")


def _fan(shape: Sequence[int], mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


def uniform(low: float, high: float) -> Initializer:
    """U(low, high), as ``torch.nn.init.uniform_(a=low, b=high)``."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, tuple(shape), dtype, minval=low, maxval=high)

    return init


def kaiming_uniform(a: float = math.sqrt(5), mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Initializer:
    """``torch.nn.init.kaiming_uniform_``: U(-b, b), b = gain * sqrt(3 / fan).

    The defaults are PyTorch's *layer* defaults (``a=sqrt(5)``), which give
    b = 1/sqrt(fan_in); ``torch.nn.init.kaiming_uniform_``'s own default is ``a=0``.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        fan = _fan(shape, mode)
        bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan) if fan else 0.0
        return jax.random.uniform(key, tuple(shape), dtype, minval=-bound, maxval=bound)

    return init


def kaiming_normal(a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Initializer:
    """``torch.nn.init.kaiming_normal_``: N(0, std^2), std = gain / sqrt(fan)."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        fan = _fan(shape, mode)
        std = calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0
        return std * jax.random.normal(key, tuple(shape), dtype)

    return init


def xavier_uniform(gain: float = 1.0) -> Initializer:
    """``torch.nn.init.xavier_uniform_``: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return jax.random.uniform(key, tuple(shape), dtype, minval=-bound, maxval=bound)

    return init


def xavier_normal(gain: float = 1.0) -> Initializer:
    """``torch.nn.init.xavier_normal_``: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return std * jax.random.normal(key, tuple(shape), dtype)

    return init


def torch_bias(fan_in: int) -> Initializer:
    """PyTorch's default bias init for a layer whose weight has ``fan_in``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    The bias's own shape says nothing about the fan, so it is given here
    (`calculate_fan_in_and_fan_out` of the weight's shape). ``fan_in == 0``
    gives zeros (PyTorch leaves such a bias uninitialised).
    """
    fan_in = int(fan_in)
    if fan_in < 0:
        raise ValueError(f"fan_in must be >= 0, got {fan_in}")
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform(-bound, bound)


def default_weight() -> Initializer:
    """PyTorch's default weight init of ``Linear``/``ConvNd``/``ConvTransposeNd``: ``kaiming_uniform(a=sqrt(5))``."""
    return kaiming_uniform(a=math.sqrt(5))


def default_bias(weight_shape: Sequence[int]) -> Initializer:
    """PyTorch's default bias init of the layer whose weight has ``weight_shape``."""
    return torch_bias(calculate_fan_in_and_fan_out(weight_shape)[0])
