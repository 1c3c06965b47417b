"""Bad calls are rejected at call time, with the right exception and a message naming the argument.

One table, ``ROWS``: ``(id, call, exception type, regex)``. Each ``call`` is a
bad use of `jaxconv.functional`, `jaxconv.nn` (linen), `jaxconv.nnx`,
`jaxconv.interop`, `jaxconv.models` or the trainer configs; the regex is a
fragment of the message that names the offending argument, so a generic error
cannot pass. Functional rows are also run under ``jax.jit`` (their arrays
traced) and eagerly with a compile listener: the error must come from
jaxconv's own validation (the raising frame is in ``jaxconv/``), before any
jaxpr is traced or anything is compiled.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import flax.errors
import jax
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_dict

from jaxconv import functional as F
from jaxconv import interop, models
from jaxconv import nn as jnn
from jaxconv import nnx as jnnx
from jaxconv.train import config as config_lib
from jaxconv.train import parallel

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "jaxconv"

f32 = np.float32


def ones(*shape, dtype=f32):
    return np.ones(shape, dtype)


X1 = ones(2, 3, 8)  # (N, C, L)
X2 = ones(2, 3, 8, 8)  # (N, C, H, W)
X3 = ones(1, 2, 4, 4, 4)  # (N, C, D, H, W)
W1 = ones(4, 3, 3)
W2 = ones(4, 3, 3, 3)
W3 = ones(4, 2, 3, 3, 3)
WT2 = ones(3, 4, 3, 3)  # transposed: (in, out/groups, kh, kw)
COLS = ones(2, 3 * 4, 49)  # unfold(X2, 2): (N, C*k*k, L) with 7*7 blocks


class Call:
    """``fn(*args, **kwargs)``, deferred; numpy array arguments can be swapped for jit tracers."""

    def __init__(self, fn, *args, **kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self):
        return self.fn(*self.args, **self.kwargs)

    def jitted(self):
        """The same call under ``jax.jit``, every numpy array argument traced."""
        pos = [i for i, a in enumerate(self.args) if isinstance(a, np.ndarray)]
        kws = [k for k, v in self.kwargs.items() if isinstance(v, np.ndarray)]

        def traced(pos_arrays, kw_arrays):
            args = list(self.args)
            for i, a in zip(pos, pos_arrays, strict=True):
                args[i] = a
            return self.fn(*args, **{**self.kwargs, **kw_arrays})

        return jax.jit(traced)([self.args[i] for i in pos], {k: self.kwargs[k] for k in kws})

    def __repr__(self):
        return f"{getattr(self.fn, '__name__', self.fn)}(...)"


def then(first, second):
    """A call that runs ``second(first())``: builds something valid, then misuses it."""
    return Call(lambda: second(first()))


# --------------------------------------------------------------------------- functional

FUNCTIONAL = [
    # convolution: ranks, dtypes
    ("conv2d-rank-2d-input", Call(F.conv2d, ones(3, 8), W2), ValueError, r"expected input to be 3D .* or 4D"),
    ("conv3d-rank-4d-input", Call(F.conv3d, ones(3, 8), W3), ValueError, r"conv3d: expected input to be 4D .* or 5D"),
    ("conv1d-rank-weight", Call(F.conv1d, X1, W2), ValueError, r"weight must be 3D"),
    ("conv2d-int-input", Call(F.conv2d, X2.astype(np.int32), W2), TypeError, r"input must have a floating dtype"),
    ("conv2d-complex-input", Call(F.conv2d, X2.astype(np.complex64), W2), TypeError, r"input has complex dtype"),
    ("conv2d-int-weight", Call(F.conv2d, X2, W2.astype(np.int32)), TypeError, r"weight must have a floating dtype"),
    ("conv2d-weight-dtype-mismatch", Call(F.conv2d, X2, W2.astype(np.float16)), TypeError,
     r"weight dtype float16 differs from input dtype"),
    ("conv2d-int-bias", Call(F.conv2d, X2, W2, np.zeros(4, np.int32)), TypeError, r"bias must have a floating"),
    ("conv2d-bias-shape", Call(F.conv2d, X2, W2, ones(5)), ValueError, r"bias must have shape \(4,\)"),
    ("conv2d-not-an-array", Call(F.conv2d, "x", W2), TypeError, r"input must have a floating dtype .*got <U1"),
    # convolution: channels and groups
    ("conv2d-channel-mismatch", Call(F.conv2d, X2, ones(4, 2, 3, 3)), ValueError,
     r"input has 3 channels but weight of shape \(4, 2, 3, 3\)"),
    ("conv2d-groups-not-divisor", Call(F.conv2d, X2, W2, groups=2), ValueError,
     r"input channels \(3\) must be divisible by groups=2"),
    ("conv2d-out-channels-groups", Call(F.conv2d, ones(2, 4, 8, 8), ones(3, 2, 3, 3), groups=2), ValueError,
     r"out_channels=3\) must be divisible by groups=2"),
    ("conv2d-groups-zero", Call(F.conv2d, X2, W2, groups=0), ValueError, r"groups must be positive"),
    ("conv2d-groups-float", Call(F.conv2d, X2, W2, groups=1.5), TypeError, r"groups must be an int"),
    # convolution: hyperparameters
    ("conv2d-stride-zero", Call(F.conv2d, X2, W2, stride=0), ValueError, r"stride must be positive"),
    ("conv2d-stride-bool", Call(F.conv2d, X2, W2, stride=True), TypeError, r"stride must be an int, got bool"),
    ("conv2d-stride-3-tuple", Call(F.conv2d, X2, W2, stride=(1, 2, 3)), ValueError,
     r"stride must be an int or a tuple of 2 ints"),
    ("conv2d-dilation-negative", Call(F.conv2d, X2, W2, dilation=-1), ValueError, r"dilation must be positive"),
    ("conv2d-padding-negative", Call(F.conv2d, X2, W2, padding=-1), ValueError, r"padding must be >= 0"),
    ("conv2d-padding-string", Call(F.conv2d, X2, W2, padding="full"), ValueError,
     r"padding must be 'same', 'valid'"),
    ("conv2d-same-strided", Call(F.conv2d, X2, W2, stride=2, padding="same"), ValueError,
     r"padding='same' is not supported for strided"),
    ("conv2d-kernel-too-large", Call(F.conv2d, X2, ones(4, 3, 9, 9)), ValueError,
     r"smaller than the dilated kernel size"),
    ("conv1d-dilated-kernel-too-large", Call(F.conv1d, X1, W1, dilation=4), ValueError,
     r"smaller than the dilated kernel size \(9,\)"),
    ("conv2d-empty-spatial", Call(F.conv2d, ones(2, 3, 0, 8), W2), ValueError, r"input has a zero-sized spatial"),
    ("conv2d-empty-weight", Call(F.conv2d, X2, ones(4, 3, 0, 3)), ValueError, r"weight has a zero-sized dim"),
    ("conv2d-channels-last-str", Call(F.conv2d, X2, W2, channels_last="no"), TypeError,
     r"channels_last must be a bool"),
    # convolution: impl
    ("conv2d-impl-unknown", Call(F.conv2d, X2, W2, impl="cudnn"), ValueError, r"impl must be one of"),
    ("conv2d-impl-plan-unknown", Call(F.conv2d, X2, W2, impl="lax/bogus/gemm"), ValueError,
     r"impl 'lax/bogus/gemm'.*input_grad"),
    ("conv2d-fft-strided", Call(F.conv2d, X2, W2, stride=2, impl="fft"), ValueError,
     r"impl='fft' supports only stride 1"),
    ("conv_transpose2d-fft-strided", Call(F.conv_transpose2d, X2, WT2, stride=2, impl="fft"), ValueError,
     r"impl='fft' supports only stride 1"),
    # transposed convolution
    ("conv_transpose2d-output-padding", Call(F.conv_transpose2d, X2, WT2, output_padding=1), ValueError,
     r"output_padding=\(1, 1\) must be smaller than either stride"),
    ("conv_transpose1d-output-padding-negative", Call(F.conv_transpose1d, X1, ones(3, 4, 3), output_padding=-1),
     ValueError, r"output_padding must be >= 0"),
    ("conv_transpose2d-padding-string", Call(F.conv_transpose2d, X2, WT2, padding="same"), ValueError,
     r"padding must be an int or a tuple of 2 ints, got 'same'"),
    ("conv_transpose2d-channel-mismatch", Call(F.conv_transpose2d, X2, ones(4, 3, 3, 3)), ValueError,
     r"input has 3 channels but weight of shape \(4, 3, 3, 3\) expects 4"),
    ("conv_transpose2d-groups", Call(F.conv_transpose2d, X2, WT2, groups=2), ValueError,
     r"weight.shape\[0\] \(in_channels=3\) must be divisible by groups=2"),
    ("conv_transpose2d-output-too-small", Call(F.conv_transpose2d, ones(1, 3, 2, 2), WT2, padding=5), ValueError,
     r"calculated output size"),
    ("conv_transpose3d-rank", Call(F.conv_transpose3d, ones(3, 8), ones(3, 4, 3, 3, 3)), ValueError,
     r"expected input to be 4D .* or 5D"),
    # max / avg pooling
    ("max_pool2d-kernel-zero", Call(F.max_pool2d, X2, 0), ValueError, r"kernel_size must be positive"),
    ("max_pool2d-stride-zero", Call(F.max_pool2d, X2, 2, stride=0), ValueError, r"stride must be positive"),
    ("max_pool2d-padding-over-half", Call(F.max_pool2d, X2, 2, padding=2), ValueError,
     r"padding should be at most half of kernel_size"),
    ("max_pool2d-int-input", Call(F.max_pool2d, X2.astype(np.int32), 2), TypeError,
     r"input must have a floating dtype"),
    ("max_pool2d-ceil-mode-str", Call(F.max_pool2d, X2, 2, ceil_mode="yes"), TypeError, r"ceil_mode must be a bool"),
    ("max_pool1d-rank", Call(F.max_pool1d, X2, 2), ValueError, r"max_pool1d: expected input to be 2D .* or 3D"),
    ("max_pool2d-window-only-padding", Call(F.max_pool2d, ones(1, 1, 3, 3), 2, stride=1, padding=1, dilation=4),
     ValueError, r"dilation=\(4, 4\), window 0 .* holds only padding"),
    ("max_pool3d-channels-last-str", Call(F.max_pool3d, X3, 2, channels_last="no"), TypeError,
     r"channels_last must be a bool"),
    ("avg_pool2d-divisor-zero", Call(F.avg_pool2d, X2, 2, divisor_override=0), ValueError,
     r"divisor_override must be a non-zero int"),
    ("avg_pool2d-output-too-small", Call(F.avg_pool2d, X2, 9), ValueError,
     r"output size \(0, 0\) is too small.*kernel_size=\(9, 9\)"),
    ("avg_pool3d-stride-2-tuple", Call(F.avg_pool3d, X3, 2, stride=(1, 2)), ValueError,
     r"stride must be an int or a tuple of 3 ints"),
    ("avg_pool1d-complex", Call(F.avg_pool1d, X1.astype(np.complex64), 2), TypeError, r"input has complex dtype"),
    ("avg_pool2d-empty-channels", Call(F.avg_pool2d, ones(2, 0, 8, 8), 2), ValueError,
     r"expected input to have non-zero size"),
    # adaptive pooling
    ("adaptive_avg_pool2d-output-negative", Call(F.adaptive_avg_pool2d, X2, -2), ValueError,
     r"output_size must be"),
    ("adaptive_max_pool2d-output-3-tuple", Call(F.adaptive_max_pool2d, X2, (2, 2, 2)), ValueError,
     r"output_size must be an int or a tuple of 2 ints"),
    ("adaptive_avg_pool1d-output-none", Call(F.adaptive_avg_pool1d, X1, None), TypeError,
     r"output_size must be an int"),
    ("adaptive_max_pool3d-complex", Call(F.adaptive_max_pool3d, X3.astype(np.complex64), 2), TypeError,
     r"input has complex dtype"),
    ("adaptive_max_pool2d-return-indices-int", Call(F.adaptive_max_pool2d, X2, 2, return_indices=1), TypeError,
     r"return_indices must be a bool"),
    ("adaptive_avg_pool3d-rank", Call(F.adaptive_avg_pool3d, X1, 2), ValueError,
     r"expected input to be 4D .* or 5D"),
    # pad
    ("pad-mode-unknown", Call(F.pad, X2, (1, 1), mode="symmetric"), ValueError, r"mode must be one of"),
    ("pad-mode-not-str", Call(F.pad, X2, (1, 1), mode=0), TypeError, r"mode must be a string"),
    ("pad-odd-length", Call(F.pad, X2, (1, 2, 3)), ValueError, r"pad must have an even number of elements"),
    ("pad-value-overflows-uint8", Call(F.pad, ones(1, 3, dtype=np.uint8), (1, 1), value=-1), ValueError,
     r"value=-1 does not fit the input's dtype uint8 \(integers in \[0, 255\]\)"),
    ("pad-value-nan-int", Call(F.pad, ones(1, 3, dtype=np.int32), (1, 1), value=float("nan")), ValueError,
     r"value=nan does not fit the input's dtype int32"),
    ("pad-value-overflows-float16", Call(F.pad, ones(1, 3, dtype=np.float16), (1, 1), value=1e5), ValueError,
     r"does not fit the input's dtype float16 \(finite values up to 65504"),
    ("pad-too-long", Call(F.pad, X1, (1,) * 8), ValueError, r"len\(pad\) must be <= 2 \* input.ndim = 6"),
    ("pad-string", Call(F.pad, X2, "1,1"), TypeError, r"pad must be a tuple or list of ints"),
    ("pad-float-entry", Call(F.pad, X2, (1.5, 1)), TypeError, r"pad must be an int"),
    ("pad-reflect-too-wide", Call(F.pad, X1, (8, 0), mode="reflect"), ValueError,
     r"mode='reflect': pad must be smaller than the padded dim"),
    ("pad-circular-wraps-twice", Call(F.pad, X1, (9, 0), mode="circular"), ValueError,
     r"mode='circular': pad may wrap around at most once"),
    ("pad-reflect-rank", Call(F.pad, ones(1, 1, 1, 2, 8), (1, 1), mode="reflect"), ValueError,
     r"mode='reflect' with len\(pad\)=2 pads the last 1 dim"),
    ("pad-replicate-four-dims", Call(F.pad, X3, (1,) * 8, mode="replicate"), ValueError,
     r"mode='replicate' pads the last 1, 2 or 3 dims"),
    ("pad-value-with-reflect", Call(F.pad, X2, (1, 1), mode="reflect", value=2.0), ValueError,
     r"value is only used by mode='constant'"),
    ("pad-value-string", Call(F.pad, X2, (1, 1), value="zero"), TypeError, r"value must be a real number"),
    ("pad-negative-crops-too-much", Call(F.pad, X2, (-5, -5)), ValueError,
     r"negative pad \(-5, -5\) removes more than the 8 elements"),
    # unfold / fold
    ("unfold-rank", Call(F.unfold, X3, 2), ValueError, r"unfold: expected input to be 3D .* or 4D"),
    ("unfold-kernel-3-tuple", Call(F.unfold, X2, (2, 2, 2)), ValueError,
     r"kernel_size must be an int or a tuple of 2 ints"),
    ("unfold-kernel-too-large", Call(F.unfold, X2, 9), ValueError, r"kernel_size=\(9, 9\).*sliding blocks"),
    ("unfold-int-input", Call(F.unfold, X2.astype(np.int32), 2), TypeError, r"input must have a floating dtype"),
    ("unfold-dilation-zero", Call(F.unfold, X2, 2, dilation=0), ValueError, r"dilation must be positive"),
    ("fold-blocks-mismatch", Call(F.fold, COLS, (9, 9), 2), ValueError,
     r"input.shape\[2\] = 49 must equal the number of sliding blocks"),
    ("fold-channels-not-divisible", Call(F.fold, ones(2, 5, 49), (8, 8), 2), ValueError,
     r"input.shape\[1\] = 5 must be divisible by the product of kernel_size"),
    ("fold-rank", Call(F.fold, X2, (8, 8), 2), ValueError, r"fold: expected input to be 2D"),
    ("fold-output-size-zero", Call(F.fold, COLS, 0, 2), ValueError, r"output_size must be positive"),
    ("fold-stride-zero", Call(F.fold, COLS, (8, 8), 2, stride=0), ValueError, r"stride must be positive"),
    ("fold-padding-negative", Call(F.fold, COLS, (8, 8), 2, padding=-1), ValueError, r"padding must be >= 0"),
]

# --------------------------------------------------------------------------- linen (jaxconv.nn)

CONV2D_PARAMS = {"params": {"weight": W2, "bias": np.zeros(4, f32)}}


def linen_apply(module, x, *args, params=None):
    return Call(lambda: module.apply(params or CONV2D_PARAMS, x, *args))


LINEN = [
    ("nn.Conv2d-groups", Call(jnn.Conv2d, 3, 4, 3, groups=2), ValueError,
     r"in_channels must be divisible by groups"),
    ("nn.Conv2d-out-groups", Call(jnn.Conv2d, 4, 3, 3, groups=2), ValueError,
     r"out_channels must be divisible by groups"),
    ("nn.Conv2d-groups-zero", Call(jnn.Conv2d, 3, 3, 3, groups=0), ValueError, r"groups must be a positive"),
    ("nn.Conv2d-in-channels-zero", Call(jnn.Conv2d, 0, 4, 3), ValueError, r"in_channels must be positive"),
    ("nn.Conv2d-out-channels-negative", Call(jnn.Conv2d, 3, -4, 3), ValueError, r"out_channels must be positive"),
    ("nn.Conv2d-in-channels-float", Call(jnn.Conv2d, 3.0, 4, 3), TypeError, r"in_channels must be an int"),
    ("nn.Conv2d-kernel-zero", Call(jnn.Conv2d, 3, 4, 0), ValueError, r"kernel_size must be positive"),
    ("nn.Conv2d-padding-mode", Call(jnn.Conv2d, 3, 4, 3, padding_mode="mirror"), ValueError,
     r"padding_mode must be one of"),
    ("nn.Conv2d-padding-string", Call(jnn.Conv2d, 3, 4, 3, padding="full"), ValueError,
     r"Invalid padding string 'full'"),
    ("nn.Conv2d-same-strided", Call(jnn.Conv2d, 3, 4, 3, stride=2, padding="same"), ValueError,
     r"padding='same' is not supported for strided"),
    ("nn.Conv2d-impl", Call(jnn.Conv2d, 3, 4, 3, impl="cuda"), ValueError, r"impl must be one of"),
    ("nn.Conv2d-bias-str", Call(jnn.Conv2d, 3, 4, 3, bias="yes"), TypeError, r"bias must be a bool"),
    ("nn.Conv2d-call-in-channels", linen_apply(jnn.Conv2d(3, 4, 3), ones(2, 5, 8, 8)), ValueError,
     r"input has 5 channels but weight of shape \(4, 3, 3, 3\)"),
    ("nn.Conv2d-call-int-input", linen_apply(jnn.Conv2d(3, 4, 3), X2.astype(np.int32)), TypeError,
     r"input must have a floating dtype"),
    ("nn.Conv2d-call-rank", linen_apply(jnn.Conv2d(3, 4, 3), ones(8)), ValueError, r"expected input to be 3D"),
    ("nn.Conv2d-param-shape", linen_apply(jnn.Conv2d(3, 4, 3), X2, params={"params": {
        "weight": ones(4, 2, 3, 3), "bias": np.zeros(4, f32)}}), flax.errors.ScopeParamShapeError,
     r'For parameter "weight" .* received has shape \(4, 2, 3, 3\)'),
    ("nn.Conv2d-reflect-pad-too-wide", linen_apply(jnn.Conv2d(3, 4, 3, padding=8, padding_mode="reflect"), X2),
     ValueError, r"mode='reflect': pad must be smaller than the padded dim"),
    ("nn.ConvTranspose2d-output-padding", Call(jnn.ConvTranspose2d, 3, 4, 3, output_padding=1), ValueError,
     r"output_padding=\(1, 1\) must be smaller than either stride"),
    ("nn.ConvTranspose2d-padding-mode", Call(jnn.ConvTranspose2d, 3, 4, 3, padding_mode="reflect"), ValueError,
     r'Only "zeros" padding mode is supported for ConvTranspose2d'),
    ("nn.ConvTranspose2d-output-size", linen_apply(jnn.ConvTranspose2d(3, 4, 3, stride=2), X2, (30, 30),
                                                   params={"params": {"weight": WT2, "bias": np.zeros(4, f32)}}),
     ValueError, r"requested an output size of \(30, 30\), but valid sizes range from 17 to 18"),
    ("nn.ConvTranspose2d-output-size-int", linen_apply(jnn.ConvTranspose2d(3, 4, 3, stride=2), X2, 17,
                                                       params={"params": {"weight": WT2, "bias": np.zeros(4, f32)}}),
     TypeError, r"output_size must be a sequence of 2 \(or 4\) ints, got int 17"),
    ("nn.MaxPool2d-dilated-padding", Call(jnn.MaxPool2d, 2, padding=2, dilation=3), ValueError,
     r"pad should be at most half of kernel size"),
    ("nn.CausalConv1d-groups", Call(jnn.CausalConv1d, 3, 4, 3, groups=2), ValueError,
     r"in_channels must be divisible by groups"),
    ("nn.Conv2d-fft-strided", Call(jnn.Conv2d, 4, 4, 3, stride=2, impl="fft"), ValueError,
     r"Conv2d: impl='fft' supports only stride 1"),
    ("nn.ConvTranspose2d-toeplitz", Call(jnn.ConvTranspose2d, 4, 4, 3, impl="toeplitz"), ValueError,
     r"ConvTranspose2d: impl 'toeplitz' computes convolutions, not transposed ones"),
    ("nn.Dropout-rate-str", Call(jnn.Dropout, "0.5"), TypeError, r"Dropout: rate must be a float in \[0, 1\], got '0.5'"),
    ("nn.SeparableConv2d-depth-multiplier", Call(jnn.SeparableConv2d, 3, 4, 3, depth_multiplier=0), ValueError,
     r"depth_multiplier must be positive"),
    ("nn.Linear-in-features-zero", Call(jnn.Linear, 0, 3), ValueError, r"in_features must be positive"),
    ("nn.Linear-call-last-dim", linen_apply(jnn.Linear(3, 4), ones(2, 5), params={"params": {
        "weight": ones(4, 3), "bias": np.zeros(4, f32)}}), ValueError, r"last dim must be in_features=3"),
    ("nn.MaxPool2d-padding", Call(jnn.MaxPool2d, 2, padding=2), ValueError, r"pad should be at most half"),
    ("nn.AvgPool1d-divisor-override", Call(jnn.AvgPool1d, 2, divisor_override=2), TypeError, r"divisor_override"),
    ("nn.AvgPool2d-stride-zero", Call(jnn.AvgPool2d, 2, stride=0), ValueError, r"stride must be positive"),
    ("nn.AdaptiveAvgPool2d-none", Call(jnn.AdaptiveAvgPool2d, None), TypeError, r"output_size must be an int"),
    ("nn.MaxPool2d-call-rank", linen_apply(jnn.MaxPool2d(2), ones(8)), ValueError,
     r"max_pool2d: expected input to be 3D"),
    ("nn.Flatten-start-dim-out-of-range", linen_apply(jnn.Flatten(start_dim=3), ones(2, 6), params={}),
     IndexError, r"start_dim=3 is out of range"),
]

# --------------------------------------------------------------------------- NNX (jaxconv.nnx)


def rngs():
    return nnx.Rngs(0)


def nnx_new(cls, *args, **kwargs):
    return Call(lambda: cls(*args, **kwargs, rngs=rngs()))


def _zeros(key, shape, dtype):
    return np.zeros(shape, dtype)


def nnx_built(cls, *args, **kwargs):
    """A valid NNX layer, its parameters zeros (numpy: nothing to compile, unlike the random init)."""
    return nnx_new(cls, *args, **kwargs, weight_init=_zeros, bias_init=_zeros)


NNX = [
    ("nnx.Conv2d-groups", nnx_new(jnnx.Conv2d, 3, 4, 3, groups=2), ValueError,
     r"in_channels must be divisible by groups"),
    ("nnx.Conv2d-padding-mode", nnx_new(jnnx.Conv2d, 3, 4, 3, padding_mode="mirror"), ValueError,
     r"padding_mode must be one of"),
    ("nnx.Conv2d-padding-negative", nnx_new(jnnx.Conv2d, 3, 4, 3, padding=-1), ValueError,
     r"padding must be >= 0"),
    ("nnx.Conv1d-dilation-zero", nnx_new(jnnx.Conv1d, 3, 4, 3, dilation=0), ValueError,
     r"dilation must be positive"),
    ("nnx.Conv3d-kernel-2-tuple", nnx_new(jnnx.Conv3d, 3, 4, (3, 3)), ValueError,
     r"kernel_size must be an int or a tuple of 3 ints"),
    ("nnx.Conv2d-no-rngs", Call(jnnx.Conv2d, 3, 4, 3), TypeError, r"rngs"),
    ("nnx.Conv2d-call-in-channels", then(nnx_built(jnnx.Conv2d, 3, 4, 3), lambda m: m(ones(2, 5, 8, 8))),
     ValueError, r"input has 5 channels but weight of shape \(4, 3, 3, 3\)"),
    ("nnx.Conv2d-call-complex", then(nnx_built(jnnx.Conv2d, 3, 4, 3), lambda m: m(X2.astype(np.complex64))),
     TypeError, r"input has complex dtype"),
    ("nnx.ConvTranspose2d-output-padding", nnx_new(jnnx.ConvTranspose2d, 3, 4, 3, output_padding=(1, 1)),
     ValueError, r"output_padding=\(1, 1\) must be smaller than either stride"),
    ("nnx.ConvTranspose2d-call-output-size",
     then(nnx_built(jnnx.ConvTranspose2d, 3, 4, 3, stride=2), lambda m: m(X2, output_size=(8, 8, 8))),
     ValueError, r"output_size must have 2 or 4 elements"),
    ("nnx.Conv1d-toeplitz-grouped", nnx_new(jnnx.Conv1d, 4, 4, 3, groups=2, impl="toeplitz"), ValueError,
     r"Conv1d: impl 'toeplitz' computes ungrouped convolutions"),
    ("nnx.CausalConv1d-stride-zero", nnx_new(jnnx.CausalConv1d, 3, 4, 3, stride=0), ValueError,
     r"stride must be positive"),
    ("nnx.SeparableConv2d-padding-mode", nnx_new(jnnx.SeparableConv2d, 3, 4, 3, padding_mode="x"), ValueError,
     r"padding_mode must be one of"),
    ("nnx.Linear-out-features-float", nnx_new(jnnx.Linear, 3, 4.5), TypeError, r"out_features must be an int"),
    ("nnx.Linear-call-last-dim", then(nnx_built(jnnx.Linear, 3, 4), lambda m: m(ones(2, 5))), ValueError,
     r"last dim must be in_features=3"),
    ("nnx.MaxPool2d-kernel-zero", Call(jnnx.MaxPool2d, 0), ValueError, r"kernel_size must be positive"),
    ("nnx.AvgPool2d-divisor-zero", Call(jnnx.AvgPool2d, 3, divisor_override=0), ValueError,
     r"divisor_override must be a non-zero int"),
    ("nnx.AvgPool1d-padding", Call(jnnx.AvgPool1d, 4, padding=3), ValueError, r"pad should be at most half"),
    ("nnx.AdaptiveMaxPool2d-3-tuple", Call(jnnx.AdaptiveMaxPool2d, (1, 2, 3)), ValueError,
     r"output_size must be an int or a tuple of 2 ints"),
    ("nnx.MaxPool1d-call-rank", then(Call(jnnx.MaxPool1d, 2), lambda m: m(X2)), ValueError,
     r"max_pool1d: expected input to be 2D"),
    ("nnx.Flatten-end-dim-out-of-range", then(Call(jnnx.Flatten, 0, 5), lambda m: m(ones(2, 6))), IndexError,
     r"end_dim=5 is out of range"),
]

# --------------------------------------------------------------------------- interop

LIKE = {"conv1": {"weight": W2, "bias": np.zeros(4, f32)}, "fc": {"weight": ones(10, 4)}}
GOOD_SD = {"conv1.weight": W2, "conv1.bias": np.zeros(4, f32), "fc.weight": ones(10, 4)}


def sd(drop=(), **replace):
    out = {k: v for k, v in GOOD_SD.items() if k not in drop}
    out.update({k.replace("__", "."): v for k, v in replace.items()})
    return out


def torch_state_dict():
    import torch

    return {"conv1.weight": torch.zeros(4, 3, 5, 5), "conv1.bias": torch.zeros(4), "fc.weight": torch.zeros(10, 4)}


INTEROP = [
    ("from_torch-missing-key", Call(interop.from_torch, sd(drop=("conv1.bias",)), like=LIKE), ValueError,
     r"missing keys \(1\): conv1\.bias"),
    ("from_torch-unexpected-key", Call(interop.from_torch, sd(extra__weight=ones(2)), like=LIKE), ValueError,
     r"unexpected keys \(1\): extra\.weight"),
    ("from_torch-misshaped-key", Call(interop.from_torch, sd(fc__weight=ones(4, 10)), like=LIKE), ValueError,
     r"shape mismatches \(1\): fc\.weight: state_dict \(4, 10\) vs expected \(10, 4\)"),
    ("from_torch-misshaped-torch-tensor", Call(lambda: interop.from_torch(torch_state_dict(), like=LIKE)),
     ValueError, r"conv1\.weight: state_dict \(4, 3, 5, 5\) vs expected \(4, 3, 3, 3\)"),
    ("from_torch-variables-not-params", Call(interop.from_torch, sd(), like={"params": LIKE}), ValueError,
     r"pass variables\['params'\]"),
    ("from_torch-not-a-mapping", Call(interop.from_torch, [W2]), TypeError, r"state_dict must be a mapping"),
    ("from_torch-non-array-value", Call(interop.from_torch, sd(fc__weight="weights")), TypeError,
     r"state_dict\['fc\.weight'\] must be an array"),
    ("from_torch-key-is-prefix", Call(interop.from_torch, {"a.b": W2, "a": W2}), ValueError,
     r"key 'a' is both a value and a prefix"),
    ("load_nnx-missing-key", then(nnx_built(jnnx.Linear, 4, 10), lambda m: interop.load_nnx(m, {"weight": ones(10, 4)})),
     ValueError, r"missing keys \(1\): bias"),
    ("load_nnx-misshaped", then(nnx_built(jnnx.Linear, 4, 10),
                                lambda m: interop.load_nnx(m, {"weight": ones(4, 10), "bias": ones(10)})),
     ValueError, r"shape mismatches \(1\): weight"),
    ("to_torch-int", Call(interop.to_torch, 42), TypeError, r"params must be a mapping"),
    ("to_torch-list", Call(interop.to_torch, [W2]), TypeError, r"params must be a mapping"),
    ("to_torch-non-array-leaf", Call(interop.to_torch, {"conv1": {"weight": "w"}}), TypeError,
     r"params\['conv1\.weight'\] must be an array"),
]

# --------------------------------------------------------------------------- models

KEY = jax.random.key(0)
MODELS = [
    ("models.get-unknown", Call(models.get, "resnet18"), ValueError, r"unknown model 'resnet18'; available: lenet5"),
    ("models.get-kwarg-typo", Call(models.get, "lenet5", num_clases=10), TypeError, r"num_clases"),
    ("models.lenet5-input-too-small", then(Call(models.get, "lenet5", input_size=8),
                                           lambda m: jax.eval_shape(m.init, KEY, ones(1, 1, 8, 8))),
     ValueError, r"lenet5: input_size=8 is too small"),
    ("models.lenet5-input-size-str", then(Call(models.get, "lenet5", input_size="28"),
                                          lambda m: jax.eval_shape(m.init, KEY, ones(1, 1, 28, 28))),
     TypeError, r"lenet5: input_size must be an int, got '28'"),
    ("models.convnet-dropout-str", then(Call(models.get, "convnet", dropout="0.5"),
                                       lambda m: jax.eval_shape(m.init, KEY, ones(1, 1, 28, 28))),
     TypeError, r"convnet: dropout must be a float"),
    ("models.convnet-dropout", then(Call(models.get, "convnet", dropout=1.5), lambda m: jax.eval_shape(m.init, KEY, ones(1, 1, 28, 28))),
     ValueError, r"convnet: dropout must be in \[0, 1\)"),
    ("models.lenet5-num-classes-zero", then(Call(models.get, "lenet5", num_classes=0),
                                            lambda m: jax.eval_shape(m.init, KEY, ones(1, 1, 28, 28))),
     ValueError, r"lenet5: num_classes must be positive, got 0"),
    ("models.cifar_cnn-in-channels-float", then(Call(models.get, "cifar_cnn", in_channels=3.0),
                                                lambda m: jax.eval_shape(m.init, KEY, ones(1, 3, 32, 32))),
     TypeError, r"cifar_cnn: in_channels must be an int, got 3.0"),
    ("models.lenet5-wrong-channels", then(Call(models.get, "lenet5"), lambda m: jax.eval_shape(m.init, KEY, ones(1, 3, 28, 28))),
     ValueError, r"lenet5: expected input of shape \(N, 1, 28, 28\) .*got \(1, 3, 28, 28\)"),
    ("models.mnist_net-no-channel-dim", then(Call(models.get, "mnist_net"), lambda m: jax.eval_shape(m.init, KEY, ones(8, 28, 28))),
     ValueError, r"mnist_net: expected input of shape \(N, 1, 28, 28\) .*got \(8, 28, 28\)"),
    ("models.cifar_cnn-wrong-size", then(Call(models.get, "cifar_cnn"), lambda m: jax.eval_shape(m.init, KEY, ones(2, 3, 28, 28))),
     ValueError, r"cifar_cnn: expected input of shape \(N, 3, 32, 32\) .*input_size="),
]

# --------------------------------------------------------------------------- trainer configs


def _default_config():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # recipes import configs.default
    spec = importlib.util.spec_from_file_location("configs.default", REPO / "configs" / "default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def bad_config(drop=(), **overrides):
    """Validates the default recipe with ``overrides`` (built untyped, as ``load_json`` does)."""

    def run():
        fields = {k: v for k, v in _default_config().items() if k not in drop}
        config_lib.validate(config_dict.ConfigDict({**fields, **overrides}))

    return Call(run)


def override(name, value):
    """``--config.<name>=<value>``-style override of the typed default recipe."""

    def run():
        config = _default_config()
        config[name] = value

    return Call(run)


def _no_steps(*args, **kwargs):  # never run: parallel.create rejects the batch sizes first
    raise AssertionError


def _two_devices():
    return jax.local_devices() * 2


CONFIGS = [
    ("config-field-typo", bad_config(learning_rte=0.1), ValueError, r"Unknown config field\(s\) \['learning_rte'\]"),
    ("config-field-missing", bad_config(drop=("num_epochs",)), ValueError,
     r"missing field\(s\) \['num_epochs'\]"),
    ("config-optimizer-unknown", bad_config(optimizer="adamx"), ValueError, r"'optimizer' is 'adamx'; choose one of"),
    ("config-model-unknown", bad_config(model="resnet18"), ValueError, r"'model' is 'resnet18'.*unknown model"),
    ("config-parallel-unknown", bad_config(parallel="tpu"), ValueError, r"'parallel' is 'tpu'; choose one of"),
    ("config-schedule-unknown", bad_config(schedule="linear"), ValueError, r"'schedule' is 'linear'"),
    ("config-on-nonfinite-unknown", bad_config(on_nonfinite="ignore"), ValueError, r"'on_nonfinite' is 'ignore'"),
    ("config-dataset-not-str", bad_config(dataset=7), ValueError, r"'dataset' must be str"),
    ("config-learning-rate-negative", bad_config(learning_rate=-0.1), ValueError,
     r"'learning_rate' must be >= 0.0, got -0.1"),
    ("config-learning-rate-str", bad_config(learning_rate="1e-3"), ValueError, r"'learning_rate' must be int/float"),
    ("config-epochs-zero", bad_config(num_epochs=0), ValueError, r"'num_epochs' must be >= 1, got 0"),
    ("config-epochs-bool", bad_config(num_epochs=True), ValueError, r"'num_epochs' must be int"),
    ("config-batch-size-zero", bad_config(batch_size=0), ValueError, r"'batch_size' must be >= 1"),
    ("config-batch-size-float", bad_config(batch_size=12.5), ValueError, r"'batch_size' must be int"),
    ("config-nesterov-int", bad_config(nesterov=1), ValueError, r"'nesterov' must be bool"),
    ("config-eps-negative", bad_config(eps=-1e-8), ValueError, r"'eps' must be >= 0"),
    ("config-model-none", bad_config(model=None), ValueError, r"'model' must be set"),
    ("config-override-wrong-type", override("batch_size", 12.5), TypeError,
     r"Could not override field 'batch_size'"),
    ("config-learning-rate-nan", bad_config(learning_rate=float("nan")), ValueError,
     r"'learning_rate' must be a finite number, got nan"),
    ("config-step-gamma-inf", bad_config(step_gamma=float("inf")), ValueError, r"'step_gamma' must be a finite number"),
    ("config-normalize-mean-str", bad_config(normalize_mean=("a",)), ValueError,
     r"'normalize_mean' must be a tuple of finite numbers"),
    ("config-normalize-std-nan", bad_config(normalize_std=(float("nan"),)), ValueError,
     r"'normalize_std' must be a tuple of finite numbers"),
    ("config-normalize-std-zero", bad_config(normalize_std=(0.0,)), ValueError, r"normalize_std must be positive"),
    ("config-normalize-length", bad_config(normalize_mean=(0.5, 0.5)), ValueError,
     r"normalize_mean \(0.5, 0.5\) and normalize_std"),
    ("config-adam-beta-above-one", bad_config(b1=1.5), ValueError, r"'b1' must be < 1"),
    ("config-adam-beta2-one", bad_config(b2=1.0), ValueError, r"'b2' must be < 1"),
    ("config-adadelta-rho-above-one", bad_config(rho=1.5), ValueError, r"'rho' must be <= 1"),
    ("config-warmup-longer-than-training", bad_config(warmup_epochs=5.0, num_epochs=3), ValueError,
     r"warmup_epochs"),
    ("config-batch-not-divisible-by-devices",
     Call(lambda: parallel.create("pmap", _no_steps, None, batch_size=3, eval_batch_size=4, devices=_two_devices())),
     ValueError, r"batch_size=3 is not divisible by the 2 local devices"),
    ("config-eval-batch-not-divisible-by-devices",
     Call(lambda: parallel.create("sharded", _no_steps, None, batch_size=4, eval_batch_size=5,
                                  devices=_two_devices())),
     ValueError, r"eval_batch_size=5 is not divisible by the 2 local devices"),
    ("config-microbatch-size-zero", bad_config(microbatch_size=0), ValueError, r"'microbatch_size' must be >= 1"),
    ("config-microbatch-size-not-dividing",
     Call(lambda: parallel.create("pmap", _no_steps, None, batch_size=8, eval_batch_size=4, microbatch_size=3,
                                  devices=_two_devices())),
     ValueError, r"batch_size=8 over 2 device\(s\): microbatch_size=3 must divide the per-device batch of 4"),
    ("config-dataset-unknown", Call(lambda: __import__("jaxconv.data").data.load("no_such_set", "train",
                                                                                  "/nonexistent/jaxconv")),
     FileNotFoundError, r"data_dir='/nonexistent/jaxconv' has no no_such_set 'train' data"),
]

AREAS = {"functional": FUNCTIONAL, "nn": LINEN, "nnx": NNX, "interop": INTEROP, "models": MODELS,
         "configs": CONFIGS}
ROWS = [row for rows in AREAS.values() for row in rows]


_ParameterSet = type(pytest.param())


def _params(rows):
    """Rows as pytest params (a row may already be a ``pytest.param``, e.g. an xfail)."""
    return [row if isinstance(row, _ParameterSet) else pytest.param(*row[1:], id=row[0]) for row in rows]


def _id(row):
    return row.id if isinstance(row, _ParameterSet) else row[0]


def test_table_is_large_and_ids_are_unique():
    assert len(ROWS) >= 80
    assert all(len(rows) >= 5 for rows in AREAS.values())
    ids = [_id(row) for row in ROWS]
    assert len(ids) == len(set(ids))
    assert all(isinstance(_params([row])[0].values[1], type) for row in ROWS)


@pytest.mark.parametrize(("call", "exc", "match"), _params(ROWS))
def test_bad_call_is_rejected_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _raising_frame(excinfo) -> Path:
    tb = excinfo.value.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve()


@pytest.fixture
def compile_events():
    """Names of the jaxpr-trace/lowering/compile events recorded while the test runs (caches cleared)."""
    events: list[str] = []

    def listener(name, *args, **kwargs):
        if name.startswith("/jax/core/compile/"):
            events.append(name)

    jax.clear_caches()
    jax.monitoring.register_event_duration_secs_listener(listener)
    yield events
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize(("call", "exc", "match"), _params(FUNCTIONAL))
def test_functional_rejects_before_tracing_or_compiling(call, exc, match, compile_events):
    with pytest.raises(exc, match=match) as eager:
        call()
    assert compile_events == [], "the op traced or compiled something before rejecting the call"
    assert _raising_frame(eager).is_relative_to(PACKAGE), _raising_frame(eager)
    with pytest.raises(exc, match=match) as traced:
        call.jitted()
    assert _raising_frame(traced).is_relative_to(PACKAGE), _raising_frame(traced)
