"""Flax NNX convolution layers with ``torch.nn.Conv*``'s arguments, parameters and results.

The same layers as `jaxconv.nn.conv` (same validation, init and forward, from
`jaxconv.nn._layers`), holding their parameters as ``nnx.Param`` attributes
``weight`` and ``bias`` (``None`` with ``bias=False``); ``rngs`` (an
``nnx.Rngs``) draws the initial values from its ``params`` stream.
The validated hyperparameters are ``layer.config``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax.numpy as jnp
from flax import nnx

from jaxconv.nn import _layers


def init_params(module: nnx.Module, cfg: Any, rngs: nnx.Rngs, param_dtype: Any,
                weight_init: Callable | None, bias_init: Callable | None) -> None:
    """Sets ``module.weight``/``module.bias`` from ``cfg``'s shapes and (default PyTorch) initializers."""
    module.weight = nnx.Param(cfg.weight_init(weight_init)(rngs.params(), cfg.weight_shape, param_dtype))
    if cfg.bias:
        module.bias = nnx.Param(cfg.bias_init(bias_init)(rngs.params(), cfg.bias_shape, param_dtype))
    else:
        module.bias = nnx.data(None)


def param_values(module: nnx.Module) -> tuple[jnp.ndarray, jnp.ndarray | None]:
    return module.weight[...], (None if module.bias is None else module.bias[...])


class _ConvNd(nnx.Module):
    _nd: ClassVar[int] = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", *, impl: str = "auto", channels_last: bool = False,
                 param_dtype: Any = jnp.float32, weight_init: Callable | None = None,
                 bias_init: Callable | None = None, rngs: nnx.Rngs):
        self.config = _layers.conv_config(
            type(self).__name__, self._nd, in_channels, out_channels, kernel_size, stride, padding,
            dilation, groups, bias, padding_mode, impl=impl, channels_last=channels_last)
        init_params(self, self.config, rngs, param_dtype, weight_init, bias_init)

    def __call__(self, x: Any) -> jnp.ndarray:
        return self.config.forward(x, *param_values(self))


class Conv1d(_ConvNd):
    _nd: ClassVar[int] = 1


class Conv2d(_ConvNd):
    _nd: ClassVar[int] = 2


class Conv3d(_ConvNd):
    _nd: ClassVar[int] = 3


class _ConvTransposeNd(nnx.Module):
    _nd: ClassVar[int] = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", *, impl: str = "auto",
                 channels_last: bool = False, param_dtype: Any = jnp.float32,
                 weight_init: Callable | None = None, bias_init: Callable | None = None, rngs: nnx.Rngs):
        self.config = _layers.conv_config(
            type(self).__name__, self._nd, in_channels, out_channels, kernel_size, stride, padding,
            dilation, groups, bias, padding_mode, impl=impl, channels_last=channels_last,
            transposed=True, output_padding=output_padding)
        init_params(self, self.config, rngs, param_dtype, weight_init, bias_init)

    def __call__(self, x: Any, output_size: Sequence[int] | None = None) -> jnp.ndarray:
        return self.config.forward(x, *param_values(self), output_size)


class ConvTranspose1d(_ConvTransposeNd):
    _nd: ClassVar[int] = 1


class ConvTranspose2d(_ConvTransposeNd):
    _nd: ClassVar[int] = 2


class ConvTranspose3d(_ConvTransposeNd):
    _nd: ClassVar[int] = 3


_CONV_DOC = """``torch.nn.Conv{nd}d`` as a Flax NNX module.

    ``Conv{nd}d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    dilation=1, groups=1, bias=True, padding_mode="zeros", *, impl="auto",
    channels_last=False, param_dtype=float32, weight_init=None, bias_init=None,
    rngs)``. ``weight`` ``(out_channels, in_channels/groups, *kernel_size)``,
    ``bias`` ``(out_channels,)``; see `jaxconv.nn.Conv{nd}d` for the semantics.
    """

_CONV_T_DOC = """``torch.nn.ConvTranspose{nd}d`` as a Flax NNX module.

    ``ConvTranspose{nd}d(in_channels, out_channels, kernel_size, stride=1,
    padding=0, output_padding=0, groups=1, bias=True, dilation=1,
    padding_mode="zeros", *, impl="auto", channels_last=False, ..., rngs)``;
    ``weight`` ``(in_channels, out_channels/groups, *kernel_size)``; call as
    ``layer(x)`` or ``layer(x, output_size)``. See `jaxconv.nn.ConvTranspose{nd}d`.
    """

for _nd, _cls in ((1, Conv1d), (2, Conv2d), (3, Conv3d)):
    _cls.__doc__ = _CONV_DOC.format(nd=_nd)
for _nd, _cls in ((1, ConvTranspose1d), (2, ConvTranspose2d), (3, ConvTranspose3d)):
    _cls.__doc__ = _CONV_T_DOC.format(nd=_nd)


class CausalConv1d(nnx.Module):
    """Causal 1D convolution (left padding ``dilation*(kernel_size-1)`` only) as an NNX module.

    ``CausalConv1d(in_channels, out_channels, kernel_size, stride=1, dilation=1,
    groups=1, bias=True, padding_mode="zeros", *, ..., rngs)``; see
    `jaxconv.nn.CausalConv1d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *,
                 impl: str = "auto", channels_last: bool = False, param_dtype: Any = jnp.float32,
                 weight_init: Callable | None = None, bias_init: Callable | None = None, rngs: nnx.Rngs):
        self.config = _layers.conv_config(
            "CausalConv1d", 1, in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias,
            padding_mode, impl=impl, channels_last=channels_last, causal=True)
        init_params(self, self.config, rngs, param_dtype, weight_init, bias_init)

    def __call__(self, x: Any) -> jnp.ndarray:
        return self.config.forward(x, *param_values(self))


class SeparableConv2d(nnx.Module):
    """Depthwise (groups=in_channels) then 1x1 pointwise 2D convolution as an NNX module.

    ``SeparableConv2d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    dilation=1, bias=True, padding_mode="zeros", depth_multiplier=1, *, ..., rngs)``;
    children ``depthwise`` and ``pointwise`` (`Conv2d`). See `jaxconv.nn.SeparableConv2d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, bias: bool = True, padding_mode: str = "zeros",
                 depth_multiplier: int = 1, *, impl: str = "auto", channels_last: bool = False,
                 param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
        dw, pw = _layers.separable_configs(in_channels, out_channels, kernel_size, stride, padding, dilation,
                                           bias, padding_mode, depth_multiplier, impl=impl,
                                           channels_last=channels_last)
        common = dict(bias=dw.bias, impl=impl, channels_last=channels_last, param_dtype=param_dtype, rngs=rngs)
        self.depthwise = Conv2d(dw.in_channels, dw.out_channels, kernel_size, stride, padding, dilation,
                                groups=dw.groups, padding_mode=padding_mode, **common)
        self.pointwise = Conv2d(pw.in_channels, pw.out_channels, 1, **common)

    def __call__(self, x: Any) -> jnp.ndarray:
        return self.pointwise(self.depthwise(x))
