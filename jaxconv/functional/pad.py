"""``pad``: ``torch.nn.functional.pad`` in JAX, same argument order, modes, rules and results.

``pad`` is a flat sequence ``(lo_last, hi_last, lo_2ndlast, hi_2ndlast, ...)``:
the first pair pads the last dim, the next pair the dim before it, and so on;
``len(pad)`` is even and at most ``2 * input.ndim``. A dim of size ``L`` padded
by ``(lo, hi)`` has size ``L + lo + hi``; negative entries remove elements.

Modes (with ``x`` of length L along the padded dim, index ``i`` into the output):

* ``"constant"``: ``value`` (default 0) outside ``x``; pads any number of dims
  of any rank. A negative pad crops first, so ``L + min(lo, 0) + min(hi, 0)``
  must be ``>= 0``.
* ``"reflect"``: mirror without repeating the edge (``x[1], x[0], x[1], ...``);
  every pad must be ``< L``. Negative pads crop the reflect-padded result.
* ``"replicate"``: repeat the edge (``x[0], x[0], x[0], ...``); negative pads
  crop the edge-padded result.
* ``"circular"``: wrap around (``x[L-1], x[0], ...``). Negative pads crop first,
  and each positive pad must be ``<=`` the length left after that crop (with no
  negative pads: ``<= L``). PyTorch fails (or, for some negative pads, returns
  uninitialised memory) past that; we raise.

The three non-constant modes pad the last 1, 2 or 3 dims of a ``(C, *S)`` or
``(N, C, *S)`` input: ``len(pad)`` is 2, 4 or 6 and ``input.ndim`` is
``len(pad)/2 + 1`` or ``len(pad)/2 + 2``. For ``reflect``/``replicate`` every dim
but a leading batch dim must be non-empty and not every padded dim may come out
empty; ``value`` must be ``None`` or 0 for them.

Gradients: ``pad`` is linear in ``input``, and its autodiff adjoint sums the
cotangent of every copy of an input element (the reflected, replicated or
wrapped ones too) back onto it, which is PyTorch's backward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv.functional import _args

MODES = ("constant", "reflect", "replicate", "circular")
_JNP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _as_array(x: Any) -> jnp.ndarray:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return _args.as_jax_array(x)
    if isinstance(x, (int, float, bool, list, tuple)) or np.isscalar(x):
        return _args.as_jax_array(np.asarray(x))
    raise TypeError(f"pad: input must be an array, got {type(x).__name__}")


def _pad_pairs(pad: Any, ndim: int) -> list[tuple[int, int]]:
    """``pad`` as (lo, hi) pairs, the first pair for the last dim, validated as PyTorch."""
    if isinstance(pad, (str, bytes)) or not isinstance(pad, Sequence):
        raise TypeError(
            f"pad must be a tuple or list of ints (lo_last, hi_last, lo_2ndlast, ...), "
            f"got {type(pad).__name__} {pad!r}"
        )
    values = [_args.as_int(v, "pad") for v in pad]
    if len(values) % 2:
        raise ValueError(
            f"pad must have an even number of elements (a (lo, hi) pair per padded dim), "
            f"got {tuple(values)} of length {len(values)}"
        )
    if len(values) > 2 * ndim:
        raise ValueError(
            f"pad has {len(values)} elements (pads {len(values) // 2} dims) but input has only "
            f"{ndim} dims: len(pad) must be <= 2 * input.ndim = {2 * ndim}"
        )
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _check_value(value: Any, mode: str, dtype: Any) -> Any:
    if value is None:
        return None
    is_array = hasattr(value, "shape") and hasattr(value, "dtype")
    if is_array:
        if value.shape != () or jnp.issubdtype(value.dtype, jnp.complexfloating):
            raise TypeError(f"value must be a real scalar, got an array of shape {value.shape} "
                            f"and dtype {value.dtype}")
    elif not isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        raise TypeError(f"value must be a real number (float, int or bool) or None, "
                        f"got {type(value).__name__} {value!r}")
    if mode != "constant":
        if is_array or value != 0:
            raise ValueError(
                f"value is only used by mode='constant'; mode={mode!r} takes value=None, got {value!r}"
            )
        return None
    _check_fits(value, dtype)
    return value


def _check_fits(value: Any, dtype: Any) -> None:
    """Raises where PyTorch's ``value cannot be converted ... without overflow`` does: an
    integer input and a NaN/inf or out-of-range value (checked before truncation, so 255.9
    does not fit uint8), or a float input and a finite value beyond its largest finite
    number (``inf`` and NaN fit). Bool inputs take anything; traced values are not checked."""
    if isinstance(value, jax.core.Tracer) or np.dtype(dtype) == np.bool_:
        return
    v = np.asarray(value)
    if v.dtype == np.bool_:
        return
    v = v.item()
    if jnp.issubdtype(dtype, jnp.integer):
        info = jnp.iinfo(dtype)
        fits = (isinstance(v, int) or math.isfinite(v)) and info.min <= v <= info.max
        limits = f"integers in [{info.min}, {info.max}]"
    else:
        info = jnp.finfo(dtype)
        fits = not math.isfinite(v) or abs(v) <= float(info.max)
        limits = f"finite values up to {float(info.max):g} in magnitude, inf or nan"
    if not fits:
        raise ValueError(f"value={value!r} does not fit the input's dtype {np.dtype(dtype).name} "
                         f"({limits}); pass a value in range or cast the input first")


def _check_non_constant(shape: tuple[int, ...], pairs: list[tuple[int, int]], mode: str) -> None:
    npad = len(pairs)
    if npad not in (1, 2, 3):
        raise ValueError(
            f"mode={mode!r} pads the last 1, 2 or 3 dims: pad must have 2, 4 or 6 elements, "
            f"got {2 * npad}"
        )
    ndim = len(shape)
    if ndim not in (npad + 1, npad + 2):
        raise ValueError(
            f"mode={mode!r} with len(pad)={2 * npad} pads the last {npad} dim(s) of a "
            f"{npad + 1}D (C, *spatial) or {npad + 2}D (N, C, *spatial) input, "
            f"got input of shape {shape} ({ndim}D)"
        )
    # pairs[i] pads dim ndim-1-i
    sizes = [shape[ndim - 1 - i] for i in range(npad)]
    outs = [n + lo + hi for n, (lo, hi) in zip(sizes, pairs)]
    where = [f"dim {ndim - 1 - i}" for i in range(npad)]
    if mode in ("reflect", "replicate"):
        inner = shape[1:] if ndim == npad + 2 else shape
        if any(n == 0 for n in inner):
            raise ValueError(
                f"mode={mode!r} needs every dim except a leading batch dim to be non-empty, "
                f"got input of shape {shape}"
            )
    if mode == "reflect":
        for n, (lo, hi), w in zip(sizes, pairs, where):
            if lo >= n or hi >= n:
                raise ValueError(
                    f"mode='reflect': pad must be smaller than the padded dim, got pad ({lo}, {hi}) "
                    f"for {w} of size {n} (allowed: at most {n - 1})"
                )
    if mode == "circular":
        for n, (lo, hi), w in zip(sizes, pairs, where):
            kept = n + min(lo, 0) + min(hi, 0)
            if max(lo, hi) > kept:
                cropped = "" if kept == n else f" after the negative pad crops it to {kept}"
                raise ValueError(
                    f"mode='circular': pad may wrap around at most once, got pad ({lo}, {hi}) for "
                    f"{w} of size {n}{cropped} (each positive pad must be <= {kept})"
                )
        for o, (lo, hi), w in zip(outs, pairs, where):
            if o < 0:
                raise ValueError(
                    f"mode='circular': negative pad ({lo}, {hi}) leaves {w} with size {o} < 0"
                )
    else:
        if any(o < 0 for o in outs) or all(o < 1 for o in outs):
            raise ValueError(
                f"mode={mode!r}: pad {tuple(p for pair in pairs for p in pair)} leaves the padded "
                f"dims of input shape {shape} with sizes {tuple(reversed(outs))}; none may be "
                f"negative and at least one must be >= 1"
            )


def pad(input: Any, pad: Sequence[int], mode: str = "constant", value: Any = None) -> jnp.ndarray:
    """Pads ``input`` as ``torch.nn.functional.pad(input, pad, mode, value)``.

    ``pad = (lo_last, hi_last, lo_2ndlast, hi_2ndlast, ...)``; see the module
    docstring for the modes and their rules. Works on any real (or bool)
    dtype; for integer inputs ``value`` is truncated toward zero, as PyTorch, and a
    ``value`` the input's dtype cannot hold (NaN or out of range for integers, finite
    beyond the largest float) raises ``ValueError`` where PyTorch raises.
    Hyperparameters are static; works under ``jax.jit``, ``jax.grad``, ``jax.vmap``.
    """
    x = _as_array(input)
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a string, one of {MODES}, got {type(mode).__name__} {mode!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pairs = _pad_pairs(pad, x.ndim)
    value = _check_value(value, mode, x.dtype)
    shape = tuple(x.shape)
    ndim = len(shape)
    if mode != "constant":
        _check_non_constant(shape, pairs, mode)
    # config[axis] = (lo, hi)
    config = [(0, 0)] * ndim
    for i, pair in enumerate(pairs):
        config[ndim - 1 - i] = pair

    if mode == "constant":
        for axis, (lo, hi) in enumerate(config):
            if shape[axis] + min(lo, 0) + min(hi, 0) < 0:
                raise ValueError(
                    f"negative pad ({lo}, {hi}) removes more than the {shape[axis]} elements of "
                    f"dim {axis} of input shape {shape}"
                )
        if value is None:
            fill = jnp.zeros((), x.dtype)
        elif hasattr(value, "shape"):
            fill = jnp.asarray(value).astype(x.dtype)
        else:
            fill = jnp.asarray(np.asarray(value).astype(x.dtype))
        return lax.pad(x, fill, [(lo, hi, 0) for lo, hi in config])

    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in config]
    crop = [(min(lo, 0), min(hi, 0), 0) for lo, hi in config]
    zero = jnp.zeros((), x.dtype)
    if mode == "circular":
        # PyTorch crops the negative pads first, then wraps what is left.
        x = lax.pad(x, zero, crop)
        return jnp.pad(x, grow, mode="wrap")
    # reflect/replicate: pad, then crop the negative pads off the padded result.
    return lax.pad(jnp.pad(x, grow, mode=_JNP_MODE[mode]), zero, crop)
