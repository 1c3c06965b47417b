"""Flax linen pooling layers with ``torch.nn``'s pooling arguments and results (no parameters)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn

from jaxconv.nn import _layers

IntOrTuple = int | Sequence[int]


class _PoolNd(nn.Module):
    _nd: ClassVar[int] = 0

    def __post_init__(self) -> None:
        self.config  # noqa: B018 -- validates the arguments when the layer is built
        super().__post_init__()

    def __call__(self, x: Any) -> Any:
        return self.config.forward(x)


class _MaxPoolNd(_PoolNd):
    kernel_size: IntOrTuple
    stride: IntOrTuple | None = None
    padding: IntOrTuple = 0
    dilation: IntOrTuple = 1
    return_indices: bool = False
    ceil_mode: bool = False
    channels_last: bool = False

    @property
    def config(self) -> _layers.PoolConfig:
        return _layers.max_pool_config(self._nd, self.kernel_size, self.stride, self.padding, self.dilation,
                                       self.return_indices, self.ceil_mode, channels_last=self.channels_last)


class MaxPool1d(_MaxPoolNd):
    _nd: ClassVar[int] = 1


class MaxPool2d(_MaxPoolNd):
    _nd: ClassVar[int] = 2


class MaxPool3d(_MaxPoolNd):
    _nd: ClassVar[int] = 3


class AvgPool1d(_PoolNd):
    kernel_size: IntOrTuple
    stride: IntOrTuple | None = None
    padding: IntOrTuple = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    channels_last: bool = False

    _nd: ClassVar[int] = 1

    @property
    def config(self) -> _layers.PoolConfig:
        return _layers.avg_pool_config(1, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                       self.count_include_pad, channels_last=self.channels_last)


class _AvgPoolNd(_PoolNd):
    kernel_size: IntOrTuple
    stride: IntOrTuple | None = None
    padding: IntOrTuple = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None
    channels_last: bool = False

    @property
    def config(self) -> _layers.PoolConfig:
        return _layers.avg_pool_config(self._nd, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                       self.count_include_pad, self.divisor_override,
                                       channels_last=self.channels_last)


class AvgPool2d(_AvgPoolNd):
    _nd: ClassVar[int] = 2


class AvgPool3d(_AvgPoolNd):
    _nd: ClassVar[int] = 3


class _AdaptiveAvgPoolNd(_PoolNd):
    output_size: Any
    channels_last: bool = False

    @property
    def config(self) -> _layers.PoolConfig:
        return _layers.adaptive_pool_config("avg", self._nd, self.output_size, channels_last=self.channels_last)


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    _nd: ClassVar[int] = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    _nd: ClassVar[int] = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    _nd: ClassVar[int] = 3


class _AdaptiveMaxPoolNd(_PoolNd):
    output_size: Any
    return_indices: bool = False
    channels_last: bool = False

    @property
    def config(self) -> _layers.PoolConfig:
        return _layers.adaptive_pool_config("max", self._nd, self.output_size, self.return_indices,
                                            channels_last=self.channels_last)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    _nd: ClassVar[int] = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    _nd: ClassVar[int] = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    _nd: ClassVar[int] = 3


_DOCS = {
    "MaxPool": "``torch.nn.MaxPool{nd}d(kernel_size, stride=None, padding=0, dilation=1, return_indices=False, "
               "ceil_mode=False)``; with ``return_indices`` returns ``(values, indices)``, indices into the "
               "flattened spatial dims as PyTorch's.",
    "AvgPool": "``torch.nn.AvgPool{nd}d(kernel_size, stride=None, padding=0, ceil_mode=False, "
               "count_include_pad=True{extra})``.",
    "AdaptiveAvgPool": "``torch.nn.AdaptiveAvgPool{nd}d(output_size)``; ``None`` in output_size keeps that dim.",
    "AdaptiveMaxPool": "``torch.nn.AdaptiveMaxPool{nd}d(output_size, return_indices=False)``.",
}
for _prefix, _doc in _DOCS.items():
    for _nd in (1, 2, 3):
        _extra = ", divisor_override=None" if _nd > 1 else ""
        globals()[f"{_prefix}{_nd}d"].__doc__ = (
            _doc.format(nd=_nd, extra=_extra) + " As a Flax linen module without parameters; input "
            "``(N, C, *spatial)`` or ``(C, *spatial)`` (``(N, *spatial, C)`` with ``channels_last``), "
            "calls ``jaxconv.functional``'s op of the same name."
        )
