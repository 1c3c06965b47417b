"""A third oracle, independent of PyTorch and of jaxconv: the dense (block-Toeplitz) matrix.

A convolution is linear in its input, so for one sample ``x`` of shape
``(C, *L)`` it is ``y.ravel() = M @ x.ravel()`` with ``M`` of shape
``(O * prod(out), C * prod(L))``. `conv_matrix` builds ``M`` entry by entry, in
plain numpy loops, from the definition (cross-correlation, per group ``g``)::

    y[o, i] = sum_{c, j} w[o, c, j] * x[g*C/G + c, i*s + j*d - lo]   (zero outside [0, L))

The transposed convolution with ``padding=p, output_padding=op`` is the adjoint
``y -> M^T y`` of the convolution whose input has the transposed output's length
and whose padding is ``(p, p - op)`` (a negative ``hi`` ignores the input's tail).
Every impl must reproduce ``M @ x`` and ``M^T y``; impl="fft" must refuse strides.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import functional as F

IMPLS = tuple(impl for impl in F.IMPLS if impl != "auto")
RTOL = 1e-5


def conv_matrix(w, in_spatial, stride, pads, dilation, groups):
    """Dense ``M`` with ``y.ravel() == M @ x.ravel()`` for one sample ``x`` of shape ``(C, *in_spatial)``.

    ``w`` is ``(O, C/groups, *k)``; ``pads`` holds ``(lo, hi)`` per spatial dim
    (``hi`` may be negative: the input's last ``-hi`` entries are then unused).
    Returns ``(M, out_spatial)``.
    """
    out_ch, cg = w.shape[:2]
    kernel = w.shape[2:]
    og = out_ch // groups
    out = tuple(
        (n + lo + hi - d * (k - 1) - 1) // s + 1
        for n, k, s, d, (lo, hi) in zip(in_spatial, kernel, stride, dilation, pads)
    )
    m = np.zeros((out_ch, *out, cg * groups, *in_spatial))
    for o in range(out_ch):
        g = o // og
        for c in range(cg):
            for i in itertools.product(*map(range, out)):
                for j in itertools.product(*map(range, kernel)):
                    pos = tuple(ii * s + jj * d - lo
                                for ii, jj, s, d, (lo, _) in zip(i, j, stride, dilation, pads))
                    if all(0 <= q < n for q, n in zip(pos, in_spatial)):
                        m[(o, *i, g * cg + c, *pos)] += w[(o, c, *j)]
    return m.reshape(out_ch * math.prod(out), cg * groups * math.prod(in_spatial)), out


def test_oracle_hand_example():
    """The oracle is a cross-correlation (no flip), with stride, padding and dilation."""
    w = np.array([[[1.0, 10.0]]])
    m, out = conv_matrix(w, (4,), (1,), ((0, 0),), (1,), 1)
    np.testing.assert_array_equal(m @ [1, 2, 3, 4], [21, 32, 43])
    m, out = conv_matrix(w, (4,), (2,), ((1, 1),), (2,), 1)  # x_pad = [0, 1, 2, 3, 4, 0]
    assert out == (2,)
    np.testing.assert_array_equal(m @ [1, 2, 3, 4], [0 + 10 * 2, 2 + 10 * 4])
    # groups: channel 1 of the input only feeds output channel 1.
    m, _ = conv_matrix(np.ones((2, 1, 1)), (1,), (1,), ((0, 0),), (1,), 2)
    np.testing.assert_array_equal(m, np.eye(2))


# (C_in, C_out, groups, kernel, stride, padding, dilation, input size, output_padding of the transpose)
CONFIGS = [
    (3, 2, 1, (3,), (1,), (0,), (1,), (7,), (0,)),
    (4, 6, 2, (3,), (2,), (1,), (1,), (8,), (1,)),
    (3, 3, 3, (2,), (1,), (2,), (3,), (6,), (2,)),
    (2, 4, 2, (4,), (3,), (3,), (2,), (10,), (2,)),
    (2, 2, 1, (1,), (1,), (2,), (1,), (5,), (0,)),
    (4, 4, 2, (3, 2), (1, 1), (1, 0), (2, 1), (6, 5), (1, 0)),
    (2, 3, 1, (3, 3), (2, 1), (1, 2), (1, 2), (7, 5), (1, 1)),
    (3, 3, 3, (2, 3), (2, 3), (0, 1), (1, 1), (5, 8), (1, 2)),
    (2, 2, 1, (4, 4), (1, 1), (3, 0), (1, 1), (6, 5), (0, 0)),
]


def _id(cfg):
    cin, cout, g, k, s, p, d, n, op = cfg
    return f"{len(k)}d-c{cin}o{cout}g{g}-k{k}-s{s}-p{p}-d{d}-L{n}-op{op}"


def _call(name, impl, x, w, channels_last, **kw):
    """One jitted call (one compilation) of ``F.<name>`` on a channels-first ``x``, in float64."""

    def fn(x, w):
        if channels_last:
            x = jnp.moveaxis(x, 1, -1)
        y = getattr(F, name)(x, w, impl=impl, channels_last=channels_last, **kw)
        return jnp.moveaxis(y, -1, 1) if channels_last else y

    return np.asarray(jax.jit(fn)(x, w), np.float64)


def _rel(actual, expected):
    assert actual.shape == expected.shape
    return np.linalg.norm(actual - expected) / np.linalg.norm(expected)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_conv_is_matrix_and_transpose_is_its_adjoint(cfg, impl):
    cin, cout, groups, kernel, stride, padding, dilation, size, out_pad = cfg
    nd = len(kernel)
    rng = np.random.default_rng(sum(size) * 31 + cin * 7 + cout)
    w = rng.standard_normal((cout, cin // groups, *kernel)).astype(np.float32)
    x = rng.standard_normal((2, cin, *size)).astype(np.float32)
    channels_last = nd == 2 and groups > 1  # exercise the (N, *L, C) layout too
    conv_kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    m, out = conv_matrix(w, size, stride, [(p, p) for p in padding], dilation, groups)
    # Transposed conv from `out`: the adjoint of the conv with padding (p, p - op) whose input
    # has the transposed output's length.
    t_size = tuple((o - 1) * s - 2 * p + d * (k - 1) + op + 1
                   for o, s, p, d, k, op in zip(out, stride, padding, dilation, kernel, out_pad))
    m_t, out_t = conv_matrix(w, t_size, stride, [(p, p - op) for p, op in zip(padding, out_pad)],
                             dilation, groups)
    assert out_t == out
    y_in = rng.standard_normal((2, cout, *out)).astype(np.float32)
    t_kw = dict(stride=stride, padding=padding, output_padding=out_pad, dilation=dilation, groups=groups)

    if impl == "fft" and any(s > 1 for s in stride):
        with pytest.raises(ValueError, match="stride"):
            _call(f"conv{nd}d", impl, x, w, channels_last, **conv_kw)
        with pytest.raises(ValueError, match="stride"):
            _call(f"conv_transpose{nd}d", impl, y_in, w, channels_last, **t_kw)
        return

    if impl == "toeplitz":  # ungrouped convolutions only
        with pytest.raises(ValueError, match="not transposed ones"):
            _call(f"conv_transpose{nd}d", impl, y_in, w, channels_last, **t_kw)
        if groups > 1:
            with pytest.raises(ValueError, match="groups=1"):
                _call(f"conv{nd}d", impl, x, w, channels_last, **conv_kw)
            return

    y = _call(f"conv{nd}d", impl, x, w, channels_last, **conv_kw)
    expected = np.stack([m @ xi.ravel().astype(np.float64) for xi in x]).reshape(2, cout, *out)
    assert _rel(y, expected) <= RTOL
    if impl == "toeplitz":
        return

    xt = _call(f"conv_transpose{nd}d", impl, y_in, w, channels_last, **t_kw)
    expected_t = np.stack([m_t.T @ yi.ravel().astype(np.float64) for yi in y_in]).reshape(2, cin, *t_size)
    assert _rel(xt, expected_t) <= RTOL
