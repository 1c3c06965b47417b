"""``jaxconv.functional.pad`` against ``torch.nn.functional.pad``: values, gradients, errors."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv.functional.pad import pad
from jaxconv.parity import pad_cases
from jaxconv.parity.compare import compare

torch = pytest.importorskip("torch")
tF = torch.nn.functional

RTOL = 1e-5
CASES = pad_cases.cases(seed=0, n=16)


@pytest.mark.parametrize("case", CASES, ids=[c.desc for c in CASES])
def test_parity(case):
    result = compare(dataclasses.replace(case, jax_fn=jax.jit(case.jax_fn)))
    assert result.forward <= RTOL, (case.desc, result.forward)
    assert result.gradient <= RTOL, (case.desc, result.gradient)


def test_cases_cover_every_mode_and_rank():
    """The parity cases pad 1, 2 and 3 dims in every non-constant mode, and use a fill value."""
    seen = set()
    for c in CASES:
        m = re.search(r"pad=\((.*?)\) mode='(\w+)' value=(\S+)", c.desc)
        npad = len([v for v in m.group(1).split(",") if v.strip()]) // 2
        seen.add((m.group(2), npad if m.group(2) != "constant" else m.group(3) != "None"))
    for mode in ("reflect", "replicate", "circular"):
        assert {(mode, 1), (mode, 2), (mode, 3)} <= seen
    assert ("constant", True) in seen and ("constant", False) in seen


def _torch(x, p, mode="constant", value=None):
    return tF.pad(torch.tensor(np.asarray(x)), p, mode=mode, value=value).numpy()


@pytest.mark.parametrize("mode, shape, p", [
    # negative pads on the non-constant modes: reflect/replicate pad then crop,
    # circular crops then wraps what is left
    ("reflect", (1, 4), (-2, 3)),
    ("reflect", (1, 4), (-5, 2)),
    ("reflect", (1, 4), (-4, 1)),
    ("reflect", (1, 4), (3, -2)),
    ("replicate", (1, 4), (-5, 6)),
    ("replicate", (1, 4), (1, -4)),
    ("circular", (1, 4), (2, -1)),
    ("circular", (1, 4), (-1, 2)),
    ("circular", (1, 4), (-2, -2)),          # empty result is allowed for circular
    ("circular", (2, 3, 4), (4, 4, 3, 3)),   # wrap a whole dim
    ("reflect", (1, 3, 4), (-2, -2, 1, 1)),  # one padded dim empty: allowed
    ("replicate", (1, 2, 3, 4), (0, 0, 0, 0, -1, -1)),
    ("constant", (3, 4), (-2, -2)),
    ("constant", (3, 4), (-1, 5, -3, 0)),
    ("constant", (2, 3, 4), (1, 1, 1, 1, 1, 1)),
    ("constant", (), ()),
    ("constant", (3, 4), ()),
])
def test_corner_cases_match_torch(mode, shape, p):
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) - 3.5
    got = np.asarray(pad(x, p, mode=mode))
    want = _torch(x, p, mode)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_values_by_hand():
    x = jnp.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(pad(x, (2, 2), mode="reflect"), [[3, 2, 1, 2, 3, 2, 1]])
    np.testing.assert_array_equal(pad(x, (2, 1), mode="replicate"), [[1, 1, 1, 2, 3, 3]])
    np.testing.assert_array_equal(pad(x, (2, 3), mode="circular"), [[2, 3, 1, 2, 3, 1, 2, 3]])
    np.testing.assert_array_equal(pad(x, (1, -1), value=7.0), [[7, 1, 2]])


def test_gradients_accumulate_by_hand():
    """d sum(pad(x)) / dx counts how often each element is copied."""
    x = jnp.array([[1.0, 2.0, 3.0]])
    for mode, p, counts in [("reflect", (2, 2), [2, 3, 2]), ("replicate", (2, 1), [3, 1, 2]),
                            ("circular", (2, 3), [2, 3, 3]), ("constant", (2, -1), [1, 1, 0])]:
        g = jax.grad(lambda v, mode=mode, p=p: pad(v, p, mode=mode).sum())(x)
        np.testing.assert_array_equal(g, [counts])
        xt = torch.tensor(np.asarray(x), requires_grad=True)
        tF.pad(xt, p, mode=mode).sum().backward()
        np.testing.assert_array_equal(g, xt.grad.numpy())


def test_value_dtypes_follow_torch():
    ints = np.arange(3, dtype=np.int32)
    for value in (1.7, -1.7, 2):
        np.testing.assert_array_equal(pad(ints, (1, 1), value=value),
                                      _torch(ints, (1, 1), value=value).astype(np.int32))
    bools = np.array([True, False])
    np.testing.assert_array_equal(pad(bools, (1, 0), value=0.5), [True, True, False])
    # value=0 is accepted by the non-constant modes, as PyTorch does
    x = np.ones((1, 3), np.float32)
    assert pad(x, (1, 1), mode="reflect", value=0).shape == (1, 5)
    # a traced fill value works under jit
    f = jax.jit(lambda v, c: pad(v, (1, 1), value=c))
    np.testing.assert_array_equal(f(x, jnp.float32(4.0)), [[4, 1, 1, 1, 4]])


def test_jit_vmap_and_bfloat16():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3, 4)).astype(np.float32)
    f = jax.jit(jax.vmap(lambda v: pad(v, (1, 2, 2, 0), mode="reflect")))
    want = np.stack([_torch(v, (1, 2, 2, 0), "reflect") for v in x])
    np.testing.assert_array_equal(f(x), want)
    y = pad(jnp.asarray(x, jnp.bfloat16), (1, 1, 1, 1), mode="circular")
    assert y.dtype == jnp.bfloat16 and y.shape == (5, 2, 5, 6)


x2 = np.zeros((2, 3), np.float32)     # (C, W)
x3 = np.zeros((1, 2, 4), np.float32)  # (N, C, W)

# (input, pad, mode, value, error, match): each rule, with the argument named
BAD = [
    (x3, 1, "constant", None, TypeError, "pad must be a tuple or list of ints"),
    (x3, (1.0, 1), "constant", None, TypeError, "pad must be an int"),
    (x3, (True, 1), "constant", None, TypeError, "pad must be an int"),
    (x3, (1,), "constant", None, ValueError, "pad must have an even number"),
    (x2, (1, 1, 1, 1, 1, 1), "constant", None, ValueError, r"len\(pad\) must be <= 2 \* input.ndim"),
    (x3, (1, 1), "wrap", None, ValueError, "mode must be one of"),
    (x3, (1, 1), None, None, TypeError, "mode must be a string"),
    (x3, (1, 1), "constant", "a", TypeError, "value must be a real number"),
    (x3, (1, 1), "constant", 1j, TypeError, "value must be a real number"),
    (x3, (1, 1), "reflect", 1.0, ValueError, "value is only used by mode='constant'"),
    (x3, (1, 1), "replicate", 2, ValueError, "value is only used by mode='constant'"),
    (x3, (), "reflect", None, ValueError, "pad must have 2, 4 or 6 elements"),
    (np.zeros((1, 2, 3, 4, 5)), (1,) * 8, "reflect", None, ValueError, "pad must have 2, 4 or 6 elements"),
    (np.zeros(3), (1, 1), "reflect", None, ValueError, r"mode='reflect' with len\(pad\)=2 pads the last 1"),
    (np.zeros((1, 2, 3, 4)), (1, 1), "circular", None, ValueError, r"2D \(C, \*spatial\) or 3D"),
    (np.zeros((2, 3, 4)), (1, 1, 1, 1, 1, 1), "replicate", None, ValueError, r"4D \(C, \*spatial\) or 5D"),
    (x3, (4, 0), "reflect", None, ValueError, "pad must be smaller than the padded dim"),
    (np.zeros((1, 3, 5)), (1, 1, 0, 3), "reflect", None, ValueError, "for dim 1 of size 3"),
    (x3, (5, 0), "circular", None, ValueError, "wrap around at most once"),
    # PyTorch fails on this one (overlapping copy); on others it returns uninitialised memory
    (np.zeros((1, 4)), (-2, 3), "circular", None, ValueError, "after the negative pad crops it to 2"),
    (x3, (-3, -2), "circular", None, ValueError, "leaves dim 2 with size -1"),
    (x3, (-2, -2), "replicate", None, ValueError, "at least one must be >= 1"),
    (x3, (-3, -2), "replicate", None, ValueError, "none may be negative"),
    (np.zeros((1, 0, 4)), (1, 1), "reflect", None, ValueError, "every dim except a leading batch dim"),
    (np.zeros((2, 0)), (0, 0), "replicate", None, ValueError, "every dim except a leading batch dim"),
    (x3, (-3, -2), "constant", None, ValueError, "removes more than the 4 elements of dim 2"),
    (x3, (-5, 2), "constant", None, ValueError, "negative pad"),
]


@pytest.mark.parametrize("x, p, mode, value, error, match", BAD,
                         ids=[f"{m}-{p}-{e.__name__}-{i}" for i, (_, p, m, _, e, _) in enumerate(BAD)])
def test_bad_input(x, p, mode, value, error, match):
    with pytest.raises(error, match=match):
        pad(x, p, mode=mode, value=value)
    with pytest.raises(Exception):   # noqa: B017 - PyTorch rejects the same call
        tF.pad(torch.tensor(np.asarray(x, np.float32)), p, mode=mode, value=value)


def test_errors_raise_before_xla_under_jit():
    f = jax.jit(lambda v: pad(v, (4, 0), mode="reflect"))
    with pytest.raises(ValueError, match="pad must be smaller"):
        f(x3)


def test_bad_input_type():
    with pytest.raises(TypeError, match="input must be an array"):
        pad(object(), (1, 1))
    with pytest.raises(TypeError, match="pad must be a tuple"):
        pad(x3, np.array([1, 1]))   # PyTorch rejects arrays for pad too
