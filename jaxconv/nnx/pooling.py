"""Flax NNX pooling layers with ``torch.nn``'s pooling arguments and results (no parameters).

Same validation and forward as `jaxconv.nn.pooling` (`jaxconv.nn._layers`);
the validated arguments are ``layer.config``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flax import nnx

from jaxconv.nn import _layers


class _PoolNd(nnx.Module):
    _nd: ClassVar[int] = 0

    def __call__(self, x: Any) -> Any:
        return self.config.forward(x)


class _MaxPoolNd(_PoolNd):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False, *, channels_last: bool = False):
        self.config = _layers.max_pool_config(self._nd, kernel_size, stride, padding, dilation, return_indices,
                                              ceil_mode, channels_last=channels_last)


class MaxPool1d(_MaxPoolNd):
    _nd: ClassVar[int] = 1


class MaxPool2d(_MaxPoolNd):
    _nd: ClassVar[int] = 2


class MaxPool3d(_MaxPoolNd):
    _nd: ClassVar[int] = 3


class AvgPool1d(_PoolNd):
    _nd: ClassVar[int] = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, *, channels_last: bool = False):
        self.config = _layers.avg_pool_config(1, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                              channels_last=channels_last)


class _AvgPoolNd(_PoolNd):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None, *,
                 channels_last: bool = False):
        self.config = _layers.avg_pool_config(self._nd, kernel_size, stride, padding, ceil_mode,
                                              count_include_pad, divisor_override, channels_last=channels_last)


class AvgPool2d(_AvgPoolNd):
    _nd: ClassVar[int] = 2


class AvgPool3d(_AvgPoolNd):
    _nd: ClassVar[int] = 3


class _AdaptiveAvgPoolNd(_PoolNd):
    def __init__(self, output_size: Any, *, channels_last: bool = False):
        self.config = _layers.adaptive_pool_config("avg", self._nd, output_size, channels_last=channels_last)


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    _nd: ClassVar[int] = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    _nd: ClassVar[int] = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    _nd: ClassVar[int] = 3


class _AdaptiveMaxPoolNd(_PoolNd):
    def __init__(self, output_size: Any, return_indices: bool = False, *, channels_last: bool = False):
        self.config = _layers.adaptive_pool_config("max", self._nd, output_size, return_indices,
                                                   channels_last=channels_last)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    _nd: ClassVar[int] = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    _nd: ClassVar[int] = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    _nd: ClassVar[int] = 3


for _prefix in ("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool"):
    for _nd in (1, 2, 3):
        globals()[f"{_prefix}{_nd}d"].__doc__ = (
            f"``torch.nn.{_prefix}{_nd}d`` as a Flax NNX module (same arguments, plus keyword "
            f"``channels_last``); see `jaxconv.nn.{_prefix}{_nd}d`."
        )
