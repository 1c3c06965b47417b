"""Flax linen convolution layers with ``torch.nn.Conv*``'s arguments, parameters and results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

from jaxconv.nn import _layers

IntOrTuple = int | Sequence[int]


class _ConvNd(nn.Module):
    in_channels: int
    out_channels: int
    kernel_size: IntOrTuple
    stride: IntOrTuple = 1
    padding: IntOrTuple | str = 0
    dilation: IntOrTuple = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"
    impl: str = "auto"
    channels_last: bool = False
    param_dtype: Any = jnp.float32
    weight_init: Callable | None = None
    bias_init: Callable | None = None

    _nd: ClassVar[int] = 0

    def __post_init__(self) -> None:
        self.config  # noqa: B018 -- validates the arguments when the layer is built
        super().__post_init__()

    @property
    def config(self) -> _layers.ConvConfig:
        return _layers.conv_config(
            type(self).__name__, self._nd, self.in_channels, self.out_channels, self.kernel_size,
            self.stride, self.padding, self.dilation, self.groups, self.bias, self.padding_mode,
            impl=self.impl, channels_last=self.channels_last)

    @nn.compact
    def __call__(self, x: Any) -> jnp.ndarray:
        cfg = self.config
        w = self.param("weight", cfg.weight_init(self.weight_init), cfg.weight_shape, self.param_dtype)
        b = self.param("bias", cfg.bias_init(self.bias_init), cfg.bias_shape, self.param_dtype) if cfg.bias else None
        return cfg.forward(x, w, b)


_CONV_DOC = """``torch.nn.Conv{nd}d`` as a Flax linen module.

    Arguments as PyTorch's (``in_channels, out_channels, kernel_size, stride=1,
    padding=0, dilation=1, groups=1, bias=True, padding_mode="zeros"``; padding
    may be ``"same"``/``"valid"``), then ``impl`` (see `jaxconv.functional.IMPLS`),
    ``channels_last``, ``param_dtype`` and optional ``weight_init``/``bias_init``
    (default: PyTorch's, see `jaxconv.init`). Invalid arguments raise when the
    module is constructed, with PyTorch's messages.

    Parameters ``weight`` ``(out_channels, in_channels/groups, *kernel_size)`` and
    ``bias`` ``(out_channels,)``, cast to the input's dtype when applied.
    Input ``(N, C_in, *spatial)`` or ``(C_in, *spatial)`` (``(N, *spatial, C_in)``
    with ``channels_last``), output ``(N, C_out, *spatial_out)``. A
    ``padding_mode`` other than ``"zeros"`` pads the input with ``F.pad`` first and
    convolves with ``padding=0``, as PyTorch's ``_conv_forward``.
    """


class Conv1d(_ConvNd):
    _nd: ClassVar[int] = 1


class Conv2d(_ConvNd):
    _nd: ClassVar[int] = 2


class Conv3d(_ConvNd):
    _nd: ClassVar[int] = 3


class _ConvTransposeNd(nn.Module):
    in_channels: int
    out_channels: int
    kernel_size: IntOrTuple
    stride: IntOrTuple = 1
    padding: IntOrTuple = 0
    output_padding: IntOrTuple = 0
    groups: int = 1
    bias: bool = True
    dilation: IntOrTuple = 1
    padding_mode: str = "zeros"
    impl: str = "auto"
    channels_last: bool = False
    param_dtype: Any = jnp.float32
    weight_init: Callable | None = None
    bias_init: Callable | None = None

    _nd: ClassVar[int] = 0

    def __post_init__(self) -> None:
        self.config  # noqa: B018 -- validates the arguments when the layer is built
        super().__post_init__()

    @property
    def config(self) -> _layers.ConvConfig:
        return _layers.conv_config(
            type(self).__name__, self._nd, self.in_channels, self.out_channels, self.kernel_size,
            self.stride, self.padding, self.dilation, self.groups, self.bias, self.padding_mode,
            impl=self.impl, channels_last=self.channels_last, transposed=True,
            output_padding=self.output_padding)

    @nn.compact
    def __call__(self, x: Any, output_size: Sequence[int] | None = None) -> jnp.ndarray:
        cfg = self.config
        w = self.param("weight", cfg.weight_init(self.weight_init), cfg.weight_shape, self.param_dtype)
        b = self.param("bias", cfg.bias_init(self.bias_init), cfg.bias_shape, self.param_dtype) if cfg.bias else None
        return cfg.forward(x, w, b, output_size)


_CONV_T_DOC = """``torch.nn.ConvTranspose{nd}d`` as a Flax linen module.

    Arguments in PyTorch's order (``in_channels, out_channels, kernel_size,
    stride=1, padding=0, output_padding=0, groups=1, bias=True, dilation=1,
    padding_mode="zeros"``; only ``"zeros"`` is allowed, as PyTorch), then
    ``impl``, ``channels_last``, ``param_dtype``, ``weight_init``, ``bias_init``.

    Parameters ``weight`` ``(in_channels, out_channels/groups, *kernel_size)``
    and ``bias`` ``(out_channels,)``. Output length per spatial dim
    ``(L-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``;
    ``__call__(x, output_size)`` picks the output padding that gives
    ``output_size`` instead, as PyTorch's ``forward(input, output_size)``.
    """


class ConvTranspose1d(_ConvTransposeNd):
    _nd: ClassVar[int] = 1


class ConvTranspose2d(_ConvTransposeNd):
    _nd: ClassVar[int] = 2


class ConvTranspose3d(_ConvTransposeNd):
    _nd: ClassVar[int] = 3


for _nd, _cls in ((1, Conv1d), (2, Conv2d), (3, Conv3d)):
    _cls.__doc__ = _CONV_DOC.format(nd=_nd)
for _nd, _cls in ((1, ConvTranspose1d), (2, ConvTranspose2d), (3, ConvTranspose3d)):
    _cls.__doc__ = _CONV_T_DOC.format(nd=_nd)


class CausalConv1d(nn.Module):
    """Causal 1D convolution: the input is padded by ``dilation*(kernel_size-1)`` on the left only.

    Output step ``t`` depends on input steps ``<= t*stride`` only; with
    ``stride=1`` the output has the input's length. Equals ``torch.nn.Conv1d``
    (``padding=0``) applied to ``F.pad(x, (dilation*(kernel_size-1), 0))``;
    ``padding_mode`` ("zeros" or "replicate": the others would read later
    steps) picks how that left padding is filled. Parameters
    ``weight`` ``(out_channels, in_channels/groups, kernel_size)``, ``bias``.
    """

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"
    impl: str = "auto"
    channels_last: bool = False
    param_dtype: Any = jnp.float32
    weight_init: Callable | None = None
    bias_init: Callable | None = None

    def __post_init__(self) -> None:
        self.config  # noqa: B018 -- validates the arguments when the layer is built
        super().__post_init__()

    @property
    def config(self) -> _layers.ConvConfig:
        return _layers.conv_config(
            "CausalConv1d", 1, self.in_channels, self.out_channels, self.kernel_size, self.stride, 0,
            self.dilation, self.groups, self.bias, self.padding_mode, impl=self.impl,
            channels_last=self.channels_last, causal=True)

    @nn.compact
    def __call__(self, x: Any) -> jnp.ndarray:
        cfg = self.config
        w = self.param("weight", cfg.weight_init(self.weight_init), cfg.weight_shape, self.param_dtype)
        b = self.param("bias", cfg.bias_init(self.bias_init), cfg.bias_shape, self.param_dtype) if cfg.bias else None
        return cfg.forward(x, w, b)


class SeparableConv2d(nn.Module):
    """Depthwise-separable 2D convolution: ``depthwise`` then 1x1 ``pointwise``.

    ``depthwise`` is ``Conv2d(in_channels, in_channels*depth_multiplier,
    kernel_size, stride, padding, dilation, groups=in_channels, bias,
    padding_mode)``, ``pointwise`` is ``Conv2d(in_channels*depth_multiplier,
    out_channels, 1, bias=bias)``. Parameters ``depthwise.weight``
    ``(in*m, 1, kh, kw)``, ``pointwise.weight`` ``(out, in*m, 1, 1)`` and their biases.
    """

    in_channels: int
    out_channels: int
    kernel_size: IntOrTuple
    stride: IntOrTuple = 1
    padding: IntOrTuple | str = 0
    dilation: IntOrTuple = 1
    bias: bool = True
    padding_mode: str = "zeros"
    depth_multiplier: int = 1
    impl: str = "auto"
    channels_last: bool = False
    param_dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        _layers.separable_configs(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                                  self.padding, self.dilation, self.bias, self.padding_mode,
                                  self.depth_multiplier, impl=self.impl, channels_last=self.channels_last)
        super().__post_init__()

    def setup(self) -> None:
        mid = self.in_channels * self.depth_multiplier
        common = dict(bias=self.bias, impl=self.impl, channels_last=self.channels_last,
                      param_dtype=self.param_dtype)
        self.depthwise = Conv2d(self.in_channels, mid, self.kernel_size, self.stride, self.padding,
                                self.dilation, groups=self.in_channels, padding_mode=self.padding_mode,
                                **common)
        self.pointwise = Conv2d(mid, self.out_channels, 1, **common)

    def __call__(self, x: Any) -> jnp.ndarray:
        return self.pointwise(self.depthwise(x))
