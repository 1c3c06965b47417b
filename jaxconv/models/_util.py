"""Shape arithmetic and feature-map layout shared by the seed models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def feature_map(model: str, x_NCHW: Any, in_channels: int, input_size: int, channels_last: bool) -> jax.Array:
    """The input, checked to be ``(N, in_channels, input_size, input_size)``, in the conv
    stack's layout: ``(N, H, W, C)`` with ``channels_last``.

    A seed model with ``channels_last`` runs its convs and pools on ``(N, H, W,
    C)`` and `flatten`s in PyTorch's order, so parameters, inputs and outputs
    are PyTorch's in either layout and the numbers agree to float rounding.
    Channels-last spares XLA the layout transposes around each conv: same-run
    training steps at batch 128 on CPU, mnist_net 187 -> 159 ms and cifar_cnn
    32 -> 25 ms; lenet5 and convnet, whose first conv has 6 and 10 output
    channels, stay channels-first (their forward was 10-25% slower).
    """
    x_NCHW = jnp.asarray(x_NCHW)
    want = (in_channels, input_size, input_size)
    if x_NCHW.ndim != 4 or tuple(x_NCHW.shape[1:]) != want:
        raise ValueError(f"{model}: expected input of shape (N, {', '.join(map(str, want))}) (batch, channels, "
                         f"height, width, as PyTorch), got {tuple(x_NCHW.shape)}; other sizes need "
                         "input_size= and in_channels= when the model is built")
    return jnp.moveaxis(x_NCHW, 1, -1) if channels_last else x_NCHW


def flatten(x: jax.Array, channels_last: bool) -> jax.Array:
    """A feature map as ``(N, C*H*W)`` in PyTorch's ``x.flatten(1)`` order, from either layout."""
    x_NCHW = jnp.moveaxis(x, -1, 1) if channels_last else x
    return x_NCHW.reshape(x_NCHW.shape[0], -1)


def conv_out(size: int, kernel: int, padding: int = 0) -> int:
    return size + 2 * padding - kernel + 1


def pool_out(size: int, kernel: int = 2) -> int:
    return size // kernel


def check_size(model: str, input_size: int, side: Callable[[int], int], *, num_classes: int | None = None,
               in_channels: int | None = None) -> int:
    """Rejects a bad ``input_size`` and bad channel counts; returns the final feature-map
    side ``side(input_size)``."""
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{model}: {name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{model}: {name} must be positive, got {value}")
    if isinstance(input_size, bool) or not isinstance(input_size, int):
        raise TypeError(f"{model}: input_size must be an int, got {input_size!r}")
    final = side(input_size)
    if final < 1:
        raise ValueError(f"{model}: input_size={input_size} is too small: the feature map would be empty")
    return final
