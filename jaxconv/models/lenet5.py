"""LeNet-5 as in PyTorch's "Neural Networks" tutorial, for 28x28 single-channel images."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from jaxconv import functional as F
from jaxconv import nn as jnn
from jaxconv.models._util import check_size, conv_out, feature_map, flatten, pool_out


class LeNet5(nn.Module):
    """conv1 1->6 k5, max-pool 2, conv2 6->16 k5, max-pool 2, fc1 256->120, fc2 120->84, fc3 84->10.

    ``x = pool(relu(conv(x)))`` twice, flatten in (C, H, W) order, then
    ``relu(fc1)``, ``relu(fc2)``, ``fc3``. Input ``(N, in_channels,
    input_size, input_size)`` float, output logits ``(N, num_classes)``.
    ``train`` is accepted for the common model signature (no dropout).
    ``channels_last``: the conv stack's internal layout, see `_util.feature_map`;
    parameters, input and output are PyTorch's either way. Default False: with
    conv1's 6 output channels as the minor dim, its shift-sum forward is ~1.4x
    slower channels-last (XLA:CPU, batch 128), and the step no faster.
    """

    num_classes: int = 10
    in_channels: int = 1
    input_size: int = 28
    channels_last: bool = False

    def setup(self) -> None:
        side = check_size("lenet5", self.input_size, lambda n: pool_out(conv_out(pool_out(conv_out(n, 5)), 5)),
                          num_classes=self.num_classes, in_channels=self.in_channels)
        self.conv1 = jnn.Conv2d(self.in_channels, 6, 5, channels_last=self.channels_last)
        self.conv2 = jnn.Conv2d(6, 16, 5, channels_last=self.channels_last)
        self.fc1 = jnn.Linear(16 * side * side, 120)
        self.fc2 = jnn.Linear(120, 84)
        self.fc3 = jnn.Linear(84, self.num_classes)

    def __call__(self, x: Any, train: bool = False) -> jax.Array:
        cl = self.channels_last
        x = feature_map("lenet5", x, self.in_channels, self.input_size, cl)
        x = F.max_pool2d(jax.nn.relu(self.conv1(x)), 2, channels_last=cl)
        x = F.max_pool2d(jax.nn.relu(self.conv2(x)), 2, channels_last=cl)
        x = flatten(x, cl)
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return self.fc3(x)
