"""The network of pytorch/examples ``mnist/main.py``."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from jaxconv import functional as F
from jaxconv import nn as jnn
from jaxconv.models._util import check_size, conv_out, feature_map, flatten, pool_out


class MnistNet(nn.Module):
    """pytorch/examples' MNIST ``Net``, returning ``log_softmax`` as it does.

    conv1 1->32 k3, ReLU, conv2 32->64 k3, ReLU, max-pool 2, dropout1 (0.25),
    flatten, fc1 9216->128, ReLU, dropout2 (0.5), fc2 128->10, log_softmax.
    Dropout is active only with ``train=True`` (needs a ``"dropout"`` rng).
    Input ``(N, 1, 28, 28)``, output log-probabilities ``(N, num_classes)``.
    ``channels_last`` (default True, measured faster on CPU): the conv stack's
    internal layout, see `_util.feature_map`; parameters, input and output are
    PyTorch's either way.
    """

    num_classes: int = 10
    in_channels: int = 1
    input_size: int = 28
    channels_last: bool = True

    def setup(self) -> None:
        side = check_size("mnist_net", self.input_size, lambda n: pool_out(conv_out(conv_out(n, 3), 3)),
                          num_classes=self.num_classes, in_channels=self.in_channels)
        self.conv1 = jnn.Conv2d(self.in_channels, 32, 3, 1, channels_last=self.channels_last)
        self.conv2 = jnn.Conv2d(32, 64, 3, 1, channels_last=self.channels_last)
        self.dropout1 = jnn.Dropout(0.25)
        self.dropout2 = jnn.Dropout(0.5)
        self.fc1 = jnn.Linear(64 * side * side, 128)
        self.fc2 = jnn.Linear(128, self.num_classes)

    def __call__(self, x: Any, train: bool = False) -> jax.Array:
        cl = self.channels_last
        x = feature_map("mnist_net", x, self.in_channels, self.input_size, cl)
        x = jax.nn.relu(self.conv1(x))
        x = jax.nn.relu(self.conv2(x))
        x = flatten(F.max_pool2d(x, 2, channels_last=cl), cl)
        x = self.dropout1(x, deterministic=not train)  # on (N, C*H*W): the same mask in either layout
        x = jax.nn.relu(self.fc1(x))
        x = self.dropout2(x, deterministic=not train)
        x = self.fc2(x)
        return jax.nn.log_softmax(x, axis=1)
