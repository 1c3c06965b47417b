"""PyTorch twins of `jaxconv.models` and of the layer variants, with identical parameter names.

Importable only where torch is installed. ``get(name, **kwargs)`` mirrors
``jaxconv.models.get``; a twin's ``state_dict()`` loads into the Flax model
with ``jaxconv.interop.from_torch``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODELS", "CausalConv1d", "CifarCNN", "ConvNet", "LeNet5", "MnistNet", "SeparableConv2d", "get"]


def _side(input_size: int, *steps: tuple[str, int]) -> int:
    for kind, k in steps:
        input_size = input_size - k + 1 if kind == "conv" else input_size // k
    return input_size


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
        super().__init__()
        side = _side(input_size, ("conv", 5), ("pool", 2), ("conv", 5), ("pool", 2))
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ConvNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, dropout: float = 0.0):
        super().__init__()
        side = _side(input_size, ("conv", 5), ("pool", 2), ("conv", 5), ("pool", 2))
        self.conv1 = nn.Conv2d(in_channels, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.fc1 = nn.Linear(20 * side * side, 50)
        self.fc2 = nn.Linear(50, num_classes)
        self.dropout = dropout

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, self.dropout, training=self.training and self.dropout > 0)
        return self.fc2(x)


class MnistNet(nn.Module):
    """pytorch/examples ``mnist/main.py``'s ``Net``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
        super().__init__()
        side = _side(input_size, ("conv", 3), ("conv", 3), ("pool", 2))
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64 * side * side, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


class CifarCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32):
        super().__init__()
        side = input_size // 4
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * side * side, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


class CausalConv1d(nn.Conv1d):
    """``nn.Conv1d`` on ``F.pad(x, (dilation*(k-1), 0), mode)``: the twin of ``jaxconv.nn.CausalConv1d``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, groups=1, bias=True,
                 padding_mode="zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)
        self.left = dilation * (kernel_size - 1)
        self.pad_mode = "constant" if padding_mode == "zeros" else padding_mode

    def forward(self, x):
        return super().forward(F.pad(x, (self.left, 0), mode=self.pad_mode))


class SeparableConv2d(nn.Module):
    """Depthwise then 1x1 pointwise ``nn.Conv2d``: the twin of ``jaxconv.nn.SeparableConv2d``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 padding_mode="zeros", depth_multiplier=1):
        super().__init__()
        mid = in_channels * depth_multiplier
        self.depthwise = nn.Conv2d(in_channels, mid, kernel_size, stride, padding, dilation, groups=in_channels,
                                   bias=bias, padding_mode=padding_mode)
        self.pointwise = nn.Conv2d(mid, out_channels, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


MODELS = {"lenet5": LeNet5, "convnet": ConvNet, "mnist_net": MnistNet, "cifar_cnn": CifarCNN}


def get(name: str, **kwargs) -> nn.Module:
    """The PyTorch twin of ``jaxconv.models.get(name, **kwargs)``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
