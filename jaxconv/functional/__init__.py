"""``torch.nn.functional``'s convolution family in JAX: same names, arguments and layouts."""

from jaxconv.functional._dispatch import IMPLS, select_impl
from jaxconv.functional.conv import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)

__all__ = [
    "IMPLS",
    "select_impl",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
]
