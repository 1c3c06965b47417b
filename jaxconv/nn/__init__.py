"""Flax linen layers over `jaxconv.functional` with ``torch.nn``'s names, arguments and parameters.

Each layer takes PyTorch's constructor arguments (plus ``impl`` and
``channels_last``), validates them when built, names and shapes its
parameters as PyTorch (``weight``, ``bias``) with PyTorch's default init, and
computes what the PyTorch module computes. `Dropout` is flax's
``nn.Dropout`` with cheaper masks; use flax's activations alongside. For NNX
see `jaxconv.nnx`.
"""

from jaxconv.nn.conv import (
    CausalConv1d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    SeparableConv2d,
)
from jaxconv.nn.dropout import Dropout
from jaxconv.nn.linear import Flatten, Linear
from jaxconv.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "CausalConv1d",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Dropout",
    "Flatten",
    "Linear",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "SeparableConv2d",
]
