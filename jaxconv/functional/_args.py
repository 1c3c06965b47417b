"""Argument normalisation and validation, done once, before anything is traced.

Every public op in :mod:`jaxconv.functional` turns its PyTorch-style arguments
(ints, tuples, padding strings) into plain tuples of Python ints here, and
rejects what PyTorch rejects with a ``ValueError``/``TypeError`` that names the
argument and says what is allowed. Nothing in this module touches array values,
only shapes and dtypes, so the checks run at call time even under ``jax.jit``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

IntOrTuple = int | Sequence[int]


def as_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """``value`` as a Python int (numpy ints accepted, bools and floats not)."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    try:
        out = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int, got {type(value).__name__} {value!r}"
        ) from None
    if minimum is not None and out < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {out}")
    return out


def as_flag(value: Any, name: str) -> bool:
    """``value`` as a bool; only ``True``/``False`` (numpy bools too) are accepted."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool (True or False), got {type(value).__name__} {value!r}")
    return bool(value)


def pool_stride(stride: Any, kernel: tuple[int, ...]) -> tuple[int, ...]:
    """A pooling ``stride`` as an n-tuple: ``None`` or an empty sequence means ``kernel``, as PyTorch."""
    if stride is None or (isinstance(stride, Sequence) and not isinstance(stride, str) and len(stride) == 0):
        return kernel
    return ntuple(stride, len(kernel), "stride", minimum=1)


def ntuple(value: Any, n: int, name: str, *, minimum: int | None = None) -> tuple[int, ...]:
    """An int or a length-1/length-n sequence of ints as an n-tuple of ints.

    PyTorch expands a single value (or a one-element list) to every spatial dim.
    """
    if isinstance(value, str):
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got string {value!r}")
    if isinstance(value, Sequence) or (isinstance(value, np.ndarray) and value.ndim == 1):
        items = list(value)
        if len(items) == 1:
            items = items * n
        if len(items) != n:
            raise ValueError(
                f"{name} must be an int or a tuple of {n} ints (one per spatial dim), "
                f"got {tuple(value)!r} of length {len(items)}"
            )
        return tuple(as_int(v, name, minimum=minimum) for v in items)
    return (as_int(value, name, minimum=minimum),) * n


def check_float_array(x: Any, name: str) -> jnp.ndarray:
    """``x`` as a jax array of a real floating dtype; integers and complex are rejected."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        if isinstance(x, (int, float, list, tuple)) or np.isscalar(x):
            x = np.asarray(x)
        else:
            raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    dtype = np.dtype(x.dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(
            f"{name} has complex dtype {dtype}; jaxconv ops take real floating arrays "
            "(convolve the real and imaginary parts separately)"
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{name} must have a floating dtype (float32, bfloat16, float16, float64), "
            f"got {dtype}; cast it first, e.g. {name}.astype(jnp.float32)"
        )
    return as_jax_array(x)


def as_jax_array(x: Any) -> jnp.ndarray:
    """``x`` as a jax array; a jax array or tracer is returned as is.

    ``jax.device_put`` rather than ``jnp.asarray``: in this jax, ``jnp.asarray`` of
    a numpy array runs (and compiles) a staging computation, and nothing may be
    compiled before a call's arguments are validated.
    """
    if isinstance(x, jax.Array):
        return x
    return jax.device_put(np.asarray(x))


def check_rank(x: jnp.ndarray, nd: int, name: str, op: str, *, allow_unbatched: bool = True) -> bool:
    """Checks ``x`` is (N, C, *spatial) or (C, *spatial); returns whether it is batched."""
    if x.ndim == nd + 2:
        return True
    if allow_unbatched and x.ndim == nd + 1:
        return False
    want = f"{nd + 1}D (unbatched) or {nd + 2}D (batched)" if allow_unbatched else f"{nd + 2}D"
    raise ValueError(f"{op}: expected {name} to be {want}, got {x.ndim}D with shape {tuple(x.shape)}")


def check_same_dtype(x: jnp.ndarray, other: jnp.ndarray, name: str) -> None:
    if x.dtype != other.dtype:
        raise TypeError(
            f"{name} dtype {other.dtype} differs from input dtype {x.dtype}; "
            f"cast one of them, e.g. {name}.astype(input.dtype)"
        )


def accumulation_dtype(dtype: Any) -> np.dtype:
    """The dtype sums of ``dtype`` run in: float32 for bfloat16/float16 (as PyTorch's CPU
    kernels), ``dtype`` itself for float32/float64."""
    return np.promote_types(dtype, np.float32)


def channel_axis(batched: bool, channels_last: bool, ndim: int) -> int:
    if channels_last:
        return ndim - 1
    return 1 if batched else 0


def divisor_override(value: Any) -> int | None:
    """``avg_pool``'s ``divisor_override``: None or a non-zero int (PyTorch divides by it, sign included)."""
    if value is None:
        return None
    value = as_int(value, "divisor_override")
    if value == 0:
        raise ValueError("divisor_override must be a non-zero int or None, got 0")
    return value
