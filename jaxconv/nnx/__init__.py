"""Flax NNX layers over `jaxconv.functional` with ``torch.nn``'s names, arguments and parameters.

The NNX twins of `jaxconv.nn`'s linen layers (same validation, init and
maths): PyTorch's constructor arguments plus keyword-only ``impl``,
``channels_last``, ``param_dtype`` and ``rngs``; parameters ``weight``/``bias``
as ``nnx.Param``. ``nnx.state(model, nnx.Param)`` maps to a PyTorch state_dict
with `jaxconv.interop`.
"""

from jaxconv.nnx.conv import (
    CausalConv1d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    SeparableConv2d,
)
from jaxconv.nnx.linear import Flatten, Linear
from jaxconv.nnx.pooling import (
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
    "Flatten",
    "Linear",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "SeparableConv2d",
]
