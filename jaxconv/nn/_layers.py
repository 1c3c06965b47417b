"""What the Flax layers of `jaxconv.nn` (linen) and `jaxconv.nnx` (NNX) share.

Each layer's constructor arguments are validated and normalised here, once,
into a frozen config (`ConvConfig`, `PoolConfig`, `LinearConfig`) that knows
its parameter shapes and initializers and runs the forward pass through
`jaxconv.functional`. The linen and NNX classes only own parameters; none
of the maths or checks is written twice.

Validation follows ``torch.nn.modules.conv._ConvNd.__init__``: a ``ValueError``
or ``TypeError`` naming the argument, raised when the layer is built.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp

from jaxconv import functional as F
from jaxconv import init as jinit
from jaxconv.functional import _args
from jaxconv.functional._bias import add_bias
from jaxconv.functional._dispatch import check_explicit, check_impl
from jaxconv.functional._spec import ConvSpec

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _as_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def _init_or_default(init: Callable | None, default: Callable) -> Callable:
    if init is not None and not callable(init):
        raise TypeError(f"an initializer must be callable (key, shape, dtype) -> array, got {init!r}")
    return default if init is None else init


def cast_params(x: Any, *params: Any) -> tuple:
    """``x`` checked to be a float array, and ``params`` cast to its dtype (``None`` kept)."""
    x = _args.check_float_array(x, "input")
    return (x, *(None if p is None else jnp.asarray(p).astype(x.dtype) for p in params))


def pad_spatial(x: jnp.ndarray, pad: tuple[int, ...], padding_mode: str, nd: int,
                channels_last: bool) -> jnp.ndarray:
    """``F.pad(x, pad, mode)`` over the ``nd`` spatial dims of a (batched or not) input.

    ``pad`` is in ``F.pad``'s order (last dim first, ``(lo, hi)`` each);
    ``padding_mode`` is a layer's (``"zeros"`` means constant zeros).
    """
    mode = "constant" if padding_mode == "zeros" else padding_mode
    if not channels_last:
        return F.pad(x, pad, mode=mode)
    x = jnp.moveaxis(x, -1, -(nd + 1))
    return jnp.moveaxis(F.pad(x, pad, mode=mode), -(nd + 1), -1)


@dataclasses.dataclass(frozen=True)
class ConvConfig:
    """A (transposed) convolution layer's hyperparameters, validated.

    ``pre_pad`` is set when the input is padded by `pad_spatial` before a
    convolution with ``padding=0``: ``padding_mode != "zeros"`` (PyTorch's
    ``_reversed_padding_repeated_twice``) and causal convolution.
    """

    name: str
    nd: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    groups: int
    bias: bool
    padding_mode: str
    impl: str
    channels_last: bool
    transposed: bool = False
    output_padding: tuple[int, ...] = ()
    pre_pad: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        """An explicit ``impl`` that cannot compute this layer (``"fft"`` with a stride,
        ``"toeplitz"`` grouped or transposed) fails when the layer is built."""
        spec = ConvSpec(self.nd, self.stride, ((0, 0),) * self.nd, self.dilation, self.groups,
                        self.transposed, self.output_padding)  # no impl's support depends on padding
        check_explicit(self.impl, spec, self.name)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """``(out, in/groups, *k)``, or ``(in, out/groups, *k)`` when transposed, as PyTorch."""
        if self.transposed:
            return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.out_channels,)

    def weight_init(self, init: Callable | None = None) -> Callable:
        return _init_or_default(init, jinit.default_weight())

    def bias_init(self, init: Callable | None = None) -> Callable:
        return _init_or_default(init, jinit.default_bias(self.weight_shape))

    def output_padding_for(self, x: jnp.ndarray, output_size: Sequence[int] | None) -> tuple[int, ...]:
        """The output padding giving ``output_size``, as ``_ConvTransposeNd._output_padding``.

        ``output_size`` lists the spatial sizes, or the full output shape; it
        overrides the layer's ``output_padding``.
        """
        if output_size is None:
            return self.output_padding
        nd = self.nd

        def spatial_of(shape: Sequence[Any]) -> list:
            batch = len(shape) - nd - 1
            return list(shape[batch:-1] if self.channels_last else shape[batch + 1:])

        spatial = spatial_of(x.shape)
        if isinstance(output_size, str) or not isinstance(output_size, Sequence):
            raise TypeError(
                f"{self.name}: output_size must be a sequence of {nd} (or {x.ndim}) ints, "
                f"got {type(output_size).__name__} {output_size!r}"
            )
        size = [_args.as_int(s, "output_size") for s in output_size]
        if len(size) == x.ndim:
            size = spatial_of(size)
        if len(size) != nd:
            raise ValueError(
                f"{self.name}: output_size must have {nd} or {x.ndim} elements, got {tuple(output_size)}"
            )
        out = []
        for i in range(nd):
            lo = ((spatial[i] - 1) * self.stride[i] - 2 * self.padding[i]
                  + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            hi = lo + self.stride[i] - 1
            if not lo <= size[i] <= hi:
                raise ValueError(
                    f"{self.name}: requested an output size of {tuple(size)}, but valid sizes range "
                    f"from {lo} to {hi} in spatial dim {i} (for an input of spatial size {tuple(spatial)})"
                )
            out.append(size[i] - lo)
        return tuple(out)

    def forward(self, x: Any, weight: Any, bias: Any = None,
                output_size: Sequence[int] | None = None) -> jnp.ndarray:
        """The layer's output for input ``x`` (parameters are cast to ``x``'s dtype)."""
        x, weight, bias = cast_params(x, weight, bias)
        kw = {"impl": self.impl, "channels_last": self.channels_last}
        if self.transposed:
            fn = getattr(F, f"conv_transpose{self.nd}d")
            return fn(x, weight, bias, self.stride, self.padding, self.output_padding_for(x, output_size),
                      self.groups, self.dilation, **kw)
        padding = self.padding
        if self.pre_pad is not None:
            x = pad_spatial(x, self.pre_pad, self.padding_mode, self.nd, self.channels_last)
            padding = 0
        fn = getattr(F, f"conv{self.nd}d")
        return fn(x, weight, bias, self.stride, padding, self.dilation, self.groups, **kw)


def conv_config(
    name: str,
    nd: int,
    in_channels: Any,
    out_channels: Any,
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    bias: Any = True,
    padding_mode: str = "zeros",
    *,
    impl: str = "auto",
    channels_last: bool = False,
    transposed: bool = False,
    output_padding: Any = 0,
    causal: bool = False,
) -> ConvConfig:
    """Validates a ``torch.nn.Conv{nd}d``/``ConvTranspose{nd}d`` constructor call.

    ``causal`` (1D only, with ``padding`` unused) pads ``dilation*(k-1)`` on the
    left of the input only.
    """
    in_channels = _args.as_int(in_channels, "in_channels", minimum=1)
    out_channels = _args.as_int(out_channels, "out_channels", minimum=1)
    kernel = _args.ntuple(kernel_size, nd, "kernel_size", minimum=1)
    stride = _args.ntuple(stride, nd, "stride", minimum=1)
    dilation = _args.ntuple(dilation, nd, "dilation", minimum=1)
    groups = _args.as_int(groups, "groups")
    if groups <= 0:
        raise ValueError(f"groups must be a positive integer, got groups={groups}")
    if in_channels % groups:
        raise ValueError(f"in_channels must be divisible by groups (in_channels={in_channels}, groups={groups})")
    if out_channels % groups:
        raise ValueError(
            f"out_channels must be divisible by groups (out_channels={out_channels}, groups={groups})"
        )
    bias = _as_bool(bias, "bias")
    channels_last = _as_bool(channels_last, "channels_last")
    check_impl(impl)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {list(PADDING_MODES)}, but got padding_mode={padding_mode!r}")

    common = dict(name=name, nd=nd, in_channels=in_channels, out_channels=out_channels, kernel_size=kernel,
                  stride=stride, dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                  impl=impl, channels_last=channels_last)
    if transposed:
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {name}, got padding_mode={padding_mode!r}')
        if isinstance(padding, str):
            raise ValueError(f"{name}: padding must be an int or a tuple of {nd} ints, got {padding!r}")
        pads = _args.ntuple(padding, nd, "padding", minimum=0)
        out_pad = _args.ntuple(output_padding, nd, "output_padding", minimum=0)
        for o, s, d in zip(out_pad, stride, dilation):
            if o >= s and o >= d:
                raise ValueError(
                    f"{name}: output_padding={out_pad} must be smaller than either stride={stride} "
                    f"or dilation={dilation} in every dim"
                )
        return ConvConfig(padding=pads, transposed=True, output_padding=out_pad, **common)

    if causal:
        if padding_mode in ("reflect", "circular"):
            raise ValueError(f"{name}: padding_mode={padding_mode!r} fills the left padding from later steps, "
                             "which breaks causality; use 'zeros' or 'replicate'")
        left = dilation[0] * (kernel[0] - 1)
        return ConvConfig(padding=(0,), pre_pad=(left, 0), **common)

    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of ['same', 'valid']")
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError(f"padding='same' is not supported for strided convolutions (stride={stride})")
        pads = padding
        if padding == "same":
            # PyTorch: total d*(k-1) per dim, the odd extra at the end.
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            pairs = [(t // 2, t - t // 2) for t in totals]
        else:
            pairs = [(0, 0)] * nd
    else:
        pads = _args.ntuple(padding, nd, "padding", minimum=0)
        pairs = [(p, p) for p in pads]
    pre_pad = None
    if padding_mode != "zeros":
        pre_pad = tuple(v for pair in reversed(pairs) for v in pair)
    return ConvConfig(padding=pads, pre_pad=pre_pad, **common)


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    """``torch.nn.Linear``: weight ``(out_features, in_features)``, ``y = x @ weight.T + bias``."""

    in_features: int
    out_features: int
    bias: bool

    @property
    def weight_shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.out_features,)

    def weight_init(self, init: Callable | None = None) -> Callable:
        return _init_or_default(init, jinit.default_weight())

    def bias_init(self, init: Callable | None = None) -> Callable:
        return _init_or_default(init, jinit.default_bias(self.weight_shape))

    def forward(self, x: Any, weight: Any, bias: Any = None) -> jnp.ndarray:
        x, weight, bias = cast_params(x, weight, bias)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: input's last dim must be in_features={self.in_features}, got shape {tuple(x.shape)}"
            )
        y = jnp.matmul(x, weight.T)
        return y if bias is None else add_bias(y, bias, -1)


def linear_config(in_features: Any, out_features: Any, bias: Any = True) -> LinearConfig:
    return LinearConfig(_args.as_int(in_features, "in_features", minimum=1),
                        _args.as_int(out_features, "out_features", minimum=1),
                        _as_bool(bias, "bias"))


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    """A pooling layer: ``jaxconv.functional.{op}`` called with ``kwargs``."""

    op: str
    kwargs: tuple[tuple[str, Any], ...]

    def forward(self, x: Any) -> Any:
        return getattr(F, self.op)(x, **dict(self.kwargs))


def max_pool_config(nd: int, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                    return_indices: bool = False, ceil_mode: bool = False, *,
                    channels_last: bool = False) -> PoolConfig:
    """Validates a ``torch.nn.MaxPool{nd}d`` constructor call."""
    kernel = _args.ntuple(kernel_size, nd, "kernel_size", minimum=1)
    stride = _args.pool_stride(stride, kernel)
    pad = _args.ntuple(padding, nd, "padding", minimum=0)
    dilation = _args.ntuple(dilation, nd, "dilation", minimum=1)
    for p, k in zip(pad, kernel):
        if p > k // 2:  # as ATen's pool2d_shape_check: half the kernel size, whatever the dilation
            raise ValueError(
                f"MaxPool{nd}d: pad should be at most half of kernel size, got padding={pad}, "
                f"kernel_size={kernel}, dilation={dilation}"
            )
    kwargs = dict(kernel_size=kernel, stride=stride, padding=pad, dilation=dilation,
                  ceil_mode=_as_bool(ceil_mode, "ceil_mode"),
                  return_indices=_as_bool(return_indices, "return_indices"),
                  channels_last=_as_bool(channels_last, "channels_last"))
    return PoolConfig(f"max_pool{nd}d", tuple(kwargs.items()))


def avg_pool_config(nd: int, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                    count_include_pad: bool = True, divisor_override: Any = None, *,
                    channels_last: bool = False) -> PoolConfig:
    """Validates a ``torch.nn.AvgPool{nd}d`` constructor call (``divisor_override`` for 2D/3D only)."""
    kernel = _args.ntuple(kernel_size, nd, "kernel_size", minimum=1)
    stride = _args.pool_stride(stride, kernel)
    pad = _args.ntuple(padding, nd, "padding", minimum=0)
    for p, k in zip(pad, kernel):
        if p > k // 2:
            raise ValueError(
                f"AvgPool{nd}d: pad should be at most half of kernel size, got padding={pad}, kernel_size={kernel}"
            )
    kwargs = dict(kernel_size=kernel, stride=stride, padding=pad, ceil_mode=_as_bool(ceil_mode, "ceil_mode"),
                  count_include_pad=_as_bool(count_include_pad, "count_include_pad"),
                  channels_last=_as_bool(channels_last, "channels_last"))
    if divisor_override is not None:
        if nd == 1:
            raise TypeError("AvgPool1d has no divisor_override argument (as torch.nn.AvgPool1d)")
        kwargs["divisor_override"] = _args.divisor_override(divisor_override)
    return PoolConfig(f"avg_pool{nd}d", tuple(kwargs.items()))


def adaptive_pool_config(kind: str, nd: int, output_size: Any, return_indices: bool = False, *,
                         channels_last: bool = False) -> PoolConfig:
    """Validates a ``torch.nn.Adaptive{Avg,Max}Pool{nd}d`` call; ``None`` in ``output_size`` keeps that dim."""
    if output_size is None or isinstance(output_size, str):
        raise TypeError(f"output_size must be an int or a tuple of {nd} ints or None, got {output_size!r}")
    if isinstance(output_size, Sequence):
        items = list(output_size)
        if len(items) != nd:  # PyTorch expands an int, not a one-element tuple
            raise ValueError(f"output_size must be an int or a tuple of {nd} ints or None, got {output_size!r}")
        size = tuple(None if v is None else _args.as_int(v, "output_size", minimum=0) for v in items)
    else:
        size = (_args.as_int(output_size, "output_size", minimum=0),) * nd
    kwargs = dict(output_size=size, channels_last=_as_bool(channels_last, "channels_last"))
    if kind == "max":
        kwargs["return_indices"] = _as_bool(return_indices, "return_indices")
    return PoolConfig(f"adaptive_{kind}_pool{nd}d", tuple(kwargs.items()))


def _flatten_dim(dim: Any, ndim: int, name: str) -> int:
    """``dim`` in ``[-ndim, ndim)`` (``[-1, 0]`` for a scalar) as a non-negative index, as torch.flatten."""
    dim = _args.as_int(dim, name)
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(
            f"flatten: {name}={dim} is out of range for an input with {ndim} dims "
            f"(expected to be in range of [{-n}, {n - 1}])"
        )
    return dim % n


def flatten(x: Any, start_dim: int = 1, end_dim: int = -1) -> jnp.ndarray:
    """``torch.flatten(x, start_dim, end_dim)``: dims ``start_dim..end_dim`` merged, in C (row-major) order."""
    x = jnp.asarray(x)
    start = _flatten_dim(start_dim, x.ndim, "start_dim")
    end = _flatten_dim(end_dim, x.ndim, "end_dim")
    if x.ndim == 0:
        return x.reshape(1)
    if start > end:
        raise ValueError(f"flatten() has invalid args: start_dim {start_dim} cannot come after end_dim {end_dim}")
    return x.reshape(*x.shape[:start], math.prod(x.shape[start:end + 1]), *x.shape[end + 1:])


def separable_configs(in_channels: Any, out_channels: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                      dilation: Any = 1, bias: Any = True, padding_mode: str = "zeros",
                      depth_multiplier: Any = 1, *, impl: str = "auto",
                      channels_last: bool = False) -> tuple[ConvConfig, ConvConfig]:
    """The (depthwise, pointwise) configs of a ``SeparableConv2d``, validated."""
    in_channels = _args.as_int(in_channels, "in_channels", minimum=1)
    mid = in_channels * _args.as_int(depth_multiplier, "depth_multiplier", minimum=1)
    depthwise = conv_config("SeparableConv2d", 2, in_channels, mid, kernel_size, stride, padding, dilation,
                            in_channels, bias, padding_mode, impl=impl, channels_last=channels_last)
    pointwise = conv_config("SeparableConv2d", 2, mid, out_channels, 1, bias=bias, impl=impl,
                            channels_last=channels_last)
    return depthwise, pointwise
