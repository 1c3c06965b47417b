"""``impl="fft"``: stride-1 convolutions by the convolution theorem.

One spatial dim, no groups, for brevity (every dim is treated alike; groups
are a batch dim). PyTorch's "convolution" is a cross-correlation of the
padded input with the (dilated) kernel::

    y[n, o, i] = sum_{c, j} w[o, c, j] * x_pad[n, c, i + j*d]        (stride 1)

With the dilated kernel ``w_d`` (``d - 1`` zeros between taps, length
``K = d*(k-1) + 1``) **flipped**, ``v[o, c, m] = w_d[o, c, K-1-m]``, this is
a true convolution read at an offset::

    y[n, o, i] = (x_pad[n, c] * v[o, c])[i + K - 1]   summed over c,

where ``*`` is the linear convolution of lengths ``Lp = L + lo + hi`` and
``K`` (full length ``Lp + K - 1``). Zero-padding both signals to that full
length makes the circular convolution the DFT computes equal to the linear
one (no wrap-around), so with ``F`` the real DFT (``rfftn``) over the spatial
dims::

    Y[n, o, f] = sum_c X[n, c, f] * V[o, c, f]        (an einsum over c per group)
    y          = irfftn(Y)[..., K-1 : Lp]             (the "valid" part)

A stride-1 transposed convolution is the adjoint of that map: the full
convolution of the input with the *unflipped* dilated kernel, its in/out
channel roles swapped per group::

    y_full[n, o, t] = sum_{c, j} x[n, c, t - j*d] * w[c, o, j],   t in [0, L + K - 1)

cropped by ``spec.padding = (p, p - output_padding)``: ``p`` off the start,
``p - output_padding`` off the end (a negative crop appends zeros, as PyTorch).

Cost: ``O(N C (n log n))`` FFTs plus ``O(N C_out C_in/g n)`` frequency-domain
products for ``n`` padded spatial points, independent of the kernel size; it
beats direct/GEMM convolution for large kernels. Strided convolutions would
compute every unstrided output and discard most, so they are refused
(`check_supported`). Rounding in the transforms gives relative errors of
~1e-7..1e-6 in float32 (vs. ~1e-7 for a direct sum): well inside the 1e-4
parity contract. One inf/NaN would spread to every output through the transforms;
where ``x`` or ``w`` holds one, the result is im2col's (`_lax.nonfinite_as_torch`),
whose NaN/inf pattern is PyTorch's. bfloat16/float16 inputs are computed in float32 and the result
cast back; float64 stays float64 (complex128 transforms). The frequency-domain
einsum runs at ``Precision.HIGHEST`` whatever the default matmul precision, so a
TF32/bf16 default on accelerators does not cost this precision. `conv` and
`conv_transpose` are jitted (spec and layout static): an eager call compiles once
per shape instead of once per primitive.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.functional import _lax
from jaxconv.functional._spec import ConvSpec

_LETTERS = "uvw"  # einsum letters for the (up to 3) spatial frequency dims


def check_supported(spec: ConvSpec, op: str) -> None:
    """Raises ``ValueError`` for calls the FFT impl cannot compute (stride > 1)."""
    if any(s != 1 for s in spec.stride):
        raise ValueError(
            f"{op}: impl='fft' supports only stride 1, got stride={spec.stride}; "
            "use impl='lax' or impl='im2col' for strided convolutions"
        )


def _compute_dtype(dtype) -> jnp.dtype:
    """float32 for bfloat16/float16/float32 (jnp.fft has no half-precision), float64 kept."""
    return jnp.dtype(jnp.float64) if jnp.dtype(dtype) == jnp.float64 else jnp.dtype(jnp.float32)


def dilate_kernel(w: jnp.ndarray, dilation: tuple[int, ...]) -> jnp.ndarray:
    """(A, B, *k) -> (A, B, *(d*(k-1)+1)): ``d-1`` zeros inserted between kernel taps."""
    if all(d == 1 for d in dilation):
        return w
    zero = jnp.zeros((), w.dtype)
    return lax.pad(w, zero, [(0, 0, 0), (0, 0, 0)] + [(0, 0, d - 1) for d in dilation])


def _spectral_conv(x: jnp.ndarray, v_GOCK: jnp.ndarray, channels_last: bool) -> jnp.ndarray:
    """Full linear convolution of each input channel with each kernel, summed over channels.

    ``x`` is ``(N, C, *L)`` (``(N, *L, C)`` if ``channels_last``) with ``C = G*Cg``;
    ``v_GOCK`` is ``(G, Og, Cg, *K)``. Returns the full convolution, of spatial
    size ``L + K - 1``, in ``x``'s layout with ``G*Og`` channels::

        y[n, g*Og + o, t] = sum_{c, m} x[n, g*Cg + c, t - m] * v[g, o, c, m]
    """
    nd = v_GOCK.ndim - 3
    groups, og, cg = v_GOCK.shape[:3]
    n = x.shape[0]
    in_sp = x.shape[1:-1] if channels_last else x.shape[2:]
    full = tuple(length + k - 1 for length, k in zip(in_sp, v_GOCK.shape[3:]))
    sp = _LETTERS[:nd]
    x_axes = tuple(range(1, 1 + nd)) if channels_last else tuple(range(2, 2 + nd))
    # rfftn(s=full) zero-pads each spatial dim to the full linear-convolution size.
    X = jnp.fft.rfftn(x, s=full, axes=x_axes)
    V_GOCF = jnp.fft.rfftn(v_GOCK, s=full, axes=tuple(range(3, 3 + nd)))
    if channels_last:
        X_NFGC = X.reshape(n, *X.shape[1:-1], groups, cg)
        Y = jnp.einsum(f"n{sp}gc,goc{sp}->n{sp}go", X_NFGC, V_GOCF, precision=lax.Precision.HIGHEST)
        Y = Y.reshape(n, *Y.shape[1:-2], groups * og)
    else:
        X_NGCF = X.reshape(n, groups, cg, *X.shape[2:])
        Y = jnp.einsum(f"ngc{sp},goc{sp}->ngo{sp}", X_NGCF, V_GOCF, precision=lax.Precision.HIGHEST)
        Y = Y.reshape(n, groups * og, *Y.shape[3:])
    return jnp.fft.irfftn(Y, s=full, axes=x_axes)


def _spatial_pad(x: jnp.ndarray, pads, channels_last: bool) -> jnp.ndarray:
    """``lax.pad`` of the spatial dims by ``(lo, hi)`` pairs; negative entries crop."""
    nd = len(pads)
    cfg = [(lo, hi, 0) for lo, hi in pads]
    none = (0, 0, 0)
    cfg = [none, *cfg, none] if channels_last else [none, none, *cfg]
    assert len(cfg) == x.ndim == nd + 2
    return lax.pad(x, jnp.zeros((), x.dtype), cfg)


@functools.partial(jax.jit, static_argnums=(2, 3))
def conv(x: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """Stride-1 (dilated, grouped) cross-correlation, as ``torch.nn.functional.convNd``.

    ``x``: ``(N, C_in, *L)`` (or ``(N, *L, C_in)``), ``w``: ``(C_out, C_in/g, *k)``.
    Returns ``(N, C_out, *(L + lo + hi - K + 1))`` with ``K = d*(k-1) + 1``.
    """
    dtype = x.dtype
    ct = _compute_dtype(dtype)
    nd = spec.nd
    x_pad = _spatial_pad(x.astype(ct), spec.padding, channels_last)
    w_d = dilate_kernel(w.astype(ct), spec.dilation)
    # The flip: cross-correlation with w_d == convolution with w_d reversed in space.
    v = jnp.flip(w_d, axis=tuple(range(2, 2 + nd)))
    cout, cg = w.shape[:2]
    v_GOCK = v.reshape(spec.groups, cout // spec.groups, cg, *v.shape[2:])
    y_full = _spectral_conv(x_pad, v_GOCK, channels_last)
    # Keep the outputs whose window lies inside x_pad: t = i + K - 1 for i in [0, Lp - K + 1).
    kd = v.shape[2:]
    y = _spatial_pad(y_full, [(-(k - 1), -(k - 1)) for k in kd], channels_last)
    return _lax.nonfinite_as_torch(y.astype(dtype), x, w, spec, channels_last, check_input=True)


@functools.partial(jax.jit, static_argnums=(2, 3))
def conv_transpose(x: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec, channels_last: bool) -> jnp.ndarray:
    """Stride-1 transposed convolution, as ``torch.nn.functional.conv_transposeNd``.

    ``x``: ``(N, C_in, *L)`` (or ``(N, *L, C_in)``), ``w``: ``(C_in, C_out/g, *k)``.
    The full convolution with the unflipped dilated kernel (length ``L + K - 1``),
    cropped by ``spec.padding`` (negative crop appends zeros). No flip: the
    transposed conv is the adjoint of a cross-correlation, i.e. a convolution.
    """
    dtype = x.dtype
    ct = _compute_dtype(dtype)
    w_d = dilate_kernel(w.astype(ct), spec.dilation)
    cin, og = w.shape[:2]
    cg = cin // spec.groups
    # (C_in, Og, *K) -> (G, Cg, Og, *K) -> (G, Og, Cg, *K): in/out roles swapped per group.
    v_GOCK = jnp.swapaxes(w_d.reshape(spec.groups, cg, og, *w_d.shape[2:]), 1, 2)
    y_full = _spectral_conv(x.astype(ct), v_GOCK, channels_last)
    y = _spatial_pad(y_full, [(-lo, -hi) for lo, hi in spec.padding], channels_last)
    return _lax.nonfinite_as_torch(y.astype(dtype), x, w, spec, channels_last, check_input=True)
