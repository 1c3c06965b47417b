"""A small CNN for 32x32 RGB images (CIFAR-10)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from jaxconv import functional as F
from jaxconv import nn as jnn
from jaxconv.models._util import check_size, feature_map, flatten, pool_out


class CifarCNN(nn.Module):
    """conv1 3->16 k3 p1, ReLU, max-pool 2, conv2 16->32 k3 p1, ReLU, max-pool 2, fc -> num_classes.

    Input ``(N, in_channels, input_size, input_size)`` (default 3x32x32), fc
    ``32 * (input_size//4)**2 -> num_classes`` on the (C, H, W)-flattened
    features, logits ``(N, num_classes)``. No dropout.
    ``channels_last`` (default True, measured faster on CPU): the conv stack's
    internal layout, see `_util.feature_map`; parameters, input and output are
    PyTorch's either way.
    """

    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    channels_last: bool = True

    def setup(self) -> None:
        side = check_size("cifar_cnn", self.input_size, lambda n: pool_out(pool_out(n)),
                          num_classes=self.num_classes, in_channels=self.in_channels)
        self.conv1 = jnn.Conv2d(self.in_channels, 16, 3, padding=1, channels_last=self.channels_last)
        self.conv2 = jnn.Conv2d(16, 32, 3, padding=1, channels_last=self.channels_last)
        self.fc = jnn.Linear(32 * side * side, self.num_classes)

    def __call__(self, x: Any, train: bool = False) -> jax.Array:
        cl = self.channels_last
        x = feature_map("cifar_cnn", x, self.in_channels, self.input_size, cl)
        x = F.max_pool2d(jax.nn.relu(self.conv1(x)), 2, channels_last=cl)
        x = F.max_pool2d(jax.nn.relu(self.conv2(x)), 2, channels_last=cl)
        x = flatten(x, cl)
        return self.fc(x)
