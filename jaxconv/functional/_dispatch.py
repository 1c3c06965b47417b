"""Which algorithm computes a convolution: the ``impl=`` keyword of every conv op.

``"lax"``    ``jax.lax.conv_general_dilated`` (XLA's convolution).
``"im2col"`` patches gathered by hand + one (batched-over-groups) GEMM; transposed
             convolution by GEMM into columns + col2im scatter-add.
``"fft"``    the convolution theorem (stride-1 convolutions only).
``"auto"``   the default: picks one of the above per call; `select_impl` says which.

All of them compute the same function (checked against PyTorch in ``tests/``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from jaxconv.functional._spec import ConvSpec

IMPLS = ("auto", "lax", "im2col", "fft")
_MODULES = {"lax": "_lax", "im2col": "_im2col", "fft": "_fft"}


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def select_impl(impl: str, spec: ConvSpec) -> str:
    """The concrete implementation ``impl`` resolves to for a call with ``spec``."""
    check_impl(impl)
    if impl == "auto":
        return "lax"
    return impl


def implementation(impl: str, spec: ConvSpec, op: str) -> Callable:
    """The function ``(x, w, spec, channels_last) -> y`` that computes the call."""
    name = select_impl(impl, spec)
    module = importlib.import_module(f"jaxconv.functional.{_MODULES[name]}")
    check = getattr(module, "check_supported", None)
    if check is not None:
        check(spec, op)
    return module.conv_transpose if spec.transposed else module.conv
