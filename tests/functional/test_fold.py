"""``unfold``/``fold`` against PyTorch, against a by-hand loop, and their algebra."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv.functional.fold import fold, unfold
from jaxconv.parity import fold_cases
from jaxconv.parity.compare import compare

torch = pytest.importorskip("torch")
tF = torch.nn.functional

RTOL = 1e-5
CASES = fold_cases.cases(seed=0, n=8)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.op}: {c.desc}" for c in CASES])
def test_parity(case):
    result = compare(dataclasses.replace(case, jax_fn=jax.jit(case.jax_fn)))
    assert result.forward <= RTOL, (case.desc, result.forward)
    assert result.gradient <= RTOL, (case.desc, result.gradient)


def _unfold_loops(x, k, d, p, s):
    """unfold by the definition: cols[n, (c*k0 + i)*k1 + j, b0*B1 + b1] = x_pad[n, c, b0*s0 + i*d0, ...]."""
    x = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    n, c, h, w = x.shape
    b = [(size - dd * (kk - 1) - 1) // ss + 1 for size, kk, dd, ss in zip((h, w), k, d, s)]
    cols = np.zeros((n, c * k[0] * k[1], b[0] * b[1]), x.dtype)
    for ci, i, j, b0, b1 in itertools.product(range(c), range(k[0]), range(k[1]), range(b[0]), range(b[1])):
        cols[:, (ci * k[0] + i) * k[1] + j, b0 * b[1] + b1] = x[:, ci, b0 * s[0] + i * d[0], b1 * s[1] + j * d[1]]
    return cols


def _coverage(size, k, d, p, s):
    """How many sliding windows contain each output pixel (counted by hand)."""
    count = np.zeros([n + 2 * q for n, q in zip(size, p)])
    b = [(n + 2 * q - dd * (kk - 1) - 1) // ss + 1 for n, kk, dd, q, ss in zip(size, k, d, p, s)]
    for b0, b1, i, j in itertools.product(range(b[0]), range(b[1]), range(k[0]), range(k[1])):
        count[b0 * s[0] + i * d[0], b1 * s[1] + j * d[1]] += 1
    return count[p[0]:p[0] + size[0], p[1]:p[1] + size[1]]


HYPER = [  # (size, kernel, dilation, padding, stride)
    ((5, 6), (2, 3), (1, 1), (0, 0), (1, 1)),
    ((7, 5), (3, 2), (2, 1), (1, 2), (2, 1)),
    ((6, 6), (3, 3), (1, 2), (2, 0), (3, 2)),   # stride leaves the last rows uncovered
    ((4, 9), (1, 4), (3, 2), (0, 1), (1, 3)),
]


def test_hyper_covers_overlap_and_gaps():
    """HYPER has pixels in several windows and pixels in none, so the coverage test bites."""
    covers = [_coverage(*h) for h in HYPER]
    assert max(c.max() for c in covers) >= 4
    assert min(c.min() for c in covers) == 0


@pytest.mark.parametrize("size, k, d, p, s", HYPER)
def test_unfold_layout_by_hand(size, k, d, p, s):
    x = np.random.default_rng(1).standard_normal((2, 3, *size)).astype(np.float32)
    got = jax.jit(lambda v: unfold(v, k, d, p, s))(x)
    np.testing.assert_array_equal(got, _unfold_loops(x, k, d, p, s))


@pytest.mark.parametrize("size, k, d, p, s", HYPER)
def test_fold_unfold_is_coverage_times_x(size, k, d, p, s):
    x = np.random.default_rng(2).standard_normal((2, 3, *size)).astype(np.float32)
    cover = _coverage(size, k, d, p, s)
    got = jax.jit(lambda v: fold(unfold(v, k, d, p, s), size, k, d, p, s))(x)
    np.testing.assert_allclose(got, x * cover, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size, k, d, p, s", HYPER)
def test_fold_is_adjoint_of_unfold(size, k, d, p, s):
    """<unfold(x), c> == <x, fold(c)> in float64 arithmetic on float32 data."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, *size)).astype(np.float32)
    blocks = [(n + 2 * q - dd * (kk - 1) - 1) // ss + 1 for n, kk, dd, q, ss in zip(size, k, d, p, s)]
    c = rng.standard_normal((2, 3 * k[0] * k[1], blocks[0] * blocks[1])).astype(np.float32)
    cols, fold_c = jax.jit(lambda v, w: (unfold(v, k, d, p, s), fold(w, size, k, d, p, s)))(x, c)
    lhs = np.sum(np.asarray(cols, np.float64) * c)
    rhs = np.sum(x.astype(np.float64) * np.asarray(fold_c, np.float64))
    assert abs(lhs - rhs) <= 1e-5 * (abs(lhs) + 1)


def test_unbatched_jit_vmap_empty_batch():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 5, 6)).astype(np.float32)
    f = jax.jit(jax.vmap(lambda v: unfold(v, (2, 3), padding=1, stride=(1, 2))))
    want = tF.unfold(torch.tensor(x), (2, 3), padding=1, stride=(1, 2)).numpy()
    np.testing.assert_allclose(f(x), want, rtol=0, atol=0)
    g = jax.jit(jax.vmap(lambda c: fold(c, (5, 6), (2, 3), padding=1, stride=(1, 2))))
    np.testing.assert_allclose(g(want), tF.fold(torch.tensor(want), (5, 6), (2, 3), padding=1,
                                                 stride=(1, 2)).numpy(), rtol=1e-6, atol=1e-6)
    assert unfold(np.zeros((0, 3, 5, 6), np.float32), 2).shape == (0, 12, 20)
    assert fold(np.zeros((0, 12, 20), np.float32), (5, 6), 2).shape == (0, 3, 5, 6)
    y = unfold(jnp.ones((3, 5, 6), jnp.bfloat16), 2)
    assert y.dtype == jnp.bfloat16 and y.shape == (12, 20)


x4 = np.zeros((2, 3, 5, 6), np.float32)
c3 = np.zeros((2, 12, 20), np.float32)   # fold of (2, 3, 5, 6) with kernel 2

UNFOLD_BAD = [  # (input, kwargs, error, match)
    (np.zeros((5, 6), np.float32), {}, ValueError, r"expected input to be 3D \(unbatched\) or 4D"),
    (np.zeros((1, 2, 3, 5, 6), np.float32), {}, ValueError, r"expected input to be 3D"),
    (np.zeros((2, 0, 5, 6), np.float32), {}, ValueError, "no other empty dim"),
    (np.zeros((2, 3, 5, 6), np.int32), {}, TypeError, "input must have a floating dtype"),
    (x4, dict(kernel_size=(2, 2, 2)), ValueError, "kernel_size must be an int or a tuple of 2"),
    (x4, dict(kernel_size=[2]), ValueError, "kernel_size must be an int or a tuple of 2"),
    (x4, dict(kernel_size=0), ValueError, "kernel_size must be positive"),
    (x4, dict(kernel_size=2.0), TypeError, "kernel_size must be an int"),
    (x4, dict(stride=0), ValueError, "stride must be positive"),
    (x4, dict(dilation=(1, 0)), ValueError, "dilation must be positive"),
    (x4, dict(padding=-1), ValueError, "padding must be >= 0"),
    (x4, dict(padding=(1, 1, 1)), ValueError, "padding must be an int or a tuple of 2"),
    (x4, dict(kernel_size=7), ValueError, r"gives \(-1, 0\) sliding blocks"),
    (x4, dict(kernel_size=3, dilation=3), ValueError, "dilated kernel size"),
]


@pytest.mark.parametrize("x, kw, error, match", UNFOLD_BAD, ids=[m for *_, m in UNFOLD_BAD])
def test_unfold_bad_input(x, kw, error, match):
    kw = {"kernel_size": 2, **kw}
    with pytest.raises(error, match=match):
        unfold(x, **kw)
    with pytest.raises(Exception):   # noqa: B017 - PyTorch rejects the same call
        tF.unfold(torch.tensor(x), **kw)


FOLD_BAD = [  # (input, kwargs, error, match)
    (np.zeros(12, np.float32), {}, ValueError, r"expected input to be 2D .* or 3D"),
    (np.zeros((1, 2, 12, 20), np.float32), {}, ValueError, r"expected input to be 2D"),
    (np.zeros((2, 12, 0), np.float32), {}, ValueError, "no other empty dim"),
    (np.zeros((2, 12, 20), np.int64), {}, TypeError, "input must have a floating dtype"),
    (c3, dict(output_size=(5, 6, 7)), ValueError, "output_size must be an int or a tuple of 2"),
    (c3, dict(output_size=(0, 6)), ValueError, "output_size must be positive"),
    (c3, dict(output_size=None), TypeError, "output_size must be an int"),
    (c3, dict(kernel_size=(2, 2, 2)), ValueError, "kernel_size must be an int or a tuple of 2"),
    (c3, dict(kernel_size=0), ValueError, "kernel_size must be positive"),
    (c3, dict(stride=0), ValueError, "stride must be positive"),
    (c3, dict(dilation=0), ValueError, "dilation must be positive"),
    (c3, dict(padding=-1), ValueError, "padding must be >= 0"),
    (np.zeros((2, 13, 20), np.float32), {}, ValueError, r"input.shape\[1\] = 13 must be divisible"),
    (np.zeros((2, 12, 21), np.float32), {}, ValueError,
     r"input.shape\[2\] = 21 must equal the number of sliding blocks 4 \* 5 = 20"),
    (np.zeros((12, 21), np.float32), {}, ValueError, r"input.shape\[1\] = 21 must equal"),
    (c3, dict(stride=(1, 2)), ValueError, "must equal the number of sliding blocks 4 \\* 3"),
    (np.zeros((2, 18, 1), np.float32), dict(output_size=(1, 1), kernel_size=3), ValueError,
     r"gives \(-1, -1\) sliding blocks"),
]


@pytest.mark.parametrize("x, kw, error, match", FOLD_BAD, ids=[m for *_, m in FOLD_BAD])
def test_fold_bad_input(x, kw, error, match):
    kw = {"output_size": (5, 6), "kernel_size": 2, **kw}
    with pytest.raises(error, match=match):
        fold(x, **kw)
    with pytest.raises(Exception):   # noqa: B017 - PyTorch rejects the same call
        tF.fold(torch.tensor(x), **kw)


def test_errors_raise_before_xla_under_jit():
    with pytest.raises(ValueError, match="must equal the number of sliding blocks"):
        jax.jit(lambda c: fold(c, (5, 7), 2))(c3)
