"""The classic PyTorch MNIST ConvNet (conv 10/20 channels, fc 320->50->10)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from jaxconv import functional as F
from jaxconv import nn as jnn
from jaxconv.models._util import check_size, conv_out, feature_map, flatten, pool_out


class ConvNet(nn.Module):
    """conv1 1->10 k5, max-pool 2, ReLU, conv2 10->20 k5, max-pool 2, ReLU, fc1 320->50, ReLU, fc2 50->10.

    As the classic PyTorch MNIST example (``relu(max_pool2d(conv(x), 2))``),
    without its ``Dropout2d``; ``dropout`` (default 0: deterministic) is the
    rate of the dropout after ``relu(fc1)``, active only with ``train=True``.
    Input ``(N, in_channels, input_size, input_size)``, logits ``(N, num_classes)``.
    ``channels_last``: the conv stack's internal layout, see `_util.feature_map`;
    parameters, input and output are PyTorch's either way. Default False: with
    conv1's 10 output channels as the minor dim, its shift-sum forward is ~1.4x
    slower channels-last (XLA:CPU, batch 128), and the step no faster.
    """

    num_classes: int = 10
    in_channels: int = 1
    input_size: int = 28
    dropout: float = 0.0
    channels_last: bool = False

    def setup(self) -> None:
        side = check_size("convnet", self.input_size, lambda n: pool_out(conv_out(pool_out(conv_out(n, 5)), 5)),
                          num_classes=self.num_classes, in_channels=self.in_channels)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise TypeError(f"convnet: dropout must be a float in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"convnet: dropout must be in [0, 1), got {self.dropout}")
        self.conv1 = jnn.Conv2d(self.in_channels, 10, 5, channels_last=self.channels_last)
        self.conv2 = jnn.Conv2d(10, 20, 5, channels_last=self.channels_last)
        self.fc1 = jnn.Linear(20 * side * side, 50)
        self.fc2 = jnn.Linear(50, self.num_classes)
        self.drop = jnn.Dropout(self.dropout)

    def __call__(self, x: Any, train: bool = False) -> jax.Array:
        cl = self.channels_last
        x = feature_map("convnet", x, self.in_channels, self.input_size, cl)
        x = jax.nn.relu(F.max_pool2d(self.conv1(x), 2, channels_last=cl))
        x = jax.nn.relu(F.max_pool2d(self.conv2(x), 2, channels_last=cl))
        x = flatten(x, cl)
        x = jax.nn.relu(self.fc1(x))
        x = self.drop(x, deterministic=not train or self.dropout == 0.0)
        return self.fc2(x)
