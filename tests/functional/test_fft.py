"""impl="fft" (the convolution theorem): parity with PyTorch and with impl="lax", refusals, dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as tF

from jaxconv import functional as F
from jaxconv.functional import _fft, _lax
from jaxconv.functional._spec import conv_spec
from jaxconv.parity import conv_cases
from jaxconv.parity.compare import compare, rel_error

RTOL = 1e-4
CASES = conv_cases.cases(seed=0, n=3, impl="fft") + conv_cases.cases(seed=1, n=1, impl="fft")


def _outputs_and_grads(case):
    """The jaxconv call's output and the gradients of ``sum(y * ct)`` w.r.t. every input."""
    args = [jnp.asarray(a) for a in case.inputs.values()]
    shape = jax.eval_shape(case.jax_fn, *args).shape
    ct = jnp.asarray(np.random.default_rng(1).standard_normal(shape).astype(np.float32))

    def f(*args):
        y, vjp = jax.vjp(case.jax_fn, *args)
        return [y, *vjp(ct)]

    return jax.jit(f)(*args)


@pytest.fixture
def fft_routed_to_lax(monkeypatch):
    """Makes ``impl="fft"`` run the lax impl (to compute the same calls through lax)."""
    monkeypatch.setattr(_fft, "conv", _lax.conv)
    monkeypatch.setattr(_fft, "conv_transpose", _lax.conv_transpose)
    monkeypatch.setattr(_fft, "check_supported", lambda spec, op: None)
    # The reroute is effective: a strided call, which fft refuses, now goes through.
    F.conv1d(jnp.ones((1, 1, 4)), jnp.ones((1, 1, 2)), stride=2, impl="fft")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.desc}")
def test_random_cases_match_torch(case):
    assert case.impl == "fft"
    result = compare(case)
    assert result.forward <= RTOL, result
    assert result.gradient <= RTOL, result


@pytest.mark.parametrize("case", CASES[::3], ids=lambda c: f"{c.op}-{c.desc}")
def test_random_cases_match_lax(case, request):
    fft_vals = _outputs_and_grads(case)
    request.getfixturevalue("fft_routed_to_lax")
    lax_vals = _outputs_and_grads(case)
    for a, b in zip(fft_vals, lax_vals):
        assert a.shape == b.shape
        assert rel_error(a, b) <= RTOL


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _check_torch(name, x, w, b=None, rtol=RTOL, **kw):
    y = getattr(F, name)(x, w, b, impl="fft", **kw)
    t = getattr(tF, name)(torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b), **kw)
    assert y.shape == tuple(t.shape)
    err = rel_error(y, t.numpy())
    assert err <= rtol, err
    return err


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_dilated_grouped_padded_conv(nd):
    """Dilation (the kernel dilated with zeros) and padding wider than the kernel."""
    rng = np.random.default_rng(nd)
    x = _rand(rng, 2, 4, *(7,) * nd)
    w = _rand(rng, 6, 2, *(3, 2, 2)[:nd])
    _check_torch(f"conv{nd}d", x, w, _rand(rng, 6), padding=(3, 1, 2)[:nd], dilation=(2, 3, 1)[:nd],
                 groups=2)
    _check_torch(f"conv{nd}d", x, w, padding="same", dilation=2, groups=2)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_transposed_dilation_output_padding(nd):
    rng = np.random.default_rng(10 + nd)
    x = _rand(rng, 2, 6, *(5,) * nd)
    w = _rand(rng, 6, 2, *(3,) * nd)
    _check_torch(f"conv_transpose{nd}d", x, w, _rand(rng, 6), padding=(2, 0, 4)[:nd],
                 output_padding=(1, 2, 0)[:nd], dilation=3, groups=3)


def test_large_kernels_keep_float32_precision():
    """The regime FFT is for: kernels as long as the signal; errors stay ~1e-6 relative."""
    rng = np.random.default_rng(3)
    err1 = _check_torch("conv1d", _rand(rng, 2, 3, 256), _rand(rng, 4, 3, 127), padding=63, rtol=1e-5)
    err2 = _check_torch("conv2d", _rand(rng, 1, 2, 40, 40), _rand(rng, 3, 2, 21, 21), padding="same",
                        rtol=1e-5)
    err3 = _check_torch("conv_transpose1d", _rand(rng, 2, 3, 200), _rand(rng, 3, 2, 101), padding=50,
                        rtol=1e-5)
    assert max(err1, err2, err3) > 0  # really computed in float32 through transforms


@pytest.mark.parametrize("name,nd,transposed", [
    ("conv1d", 1, False), ("conv2d", 2, False), ("conv3d", 3, False),
    ("conv_transpose1d", 1, True), ("conv_transpose2d", 2, True), ("conv_transpose3d", 3, True),
])
def test_stride_refused_at_call_time(name, nd, transposed):
    x = jnp.ones((1, 2, *(6,) * nd))
    w = jnp.ones((2, 2, *(2,) * nd))
    stride = (1,) * (nd - 1) + (2,)  # one strided dim is enough
    fn = getattr(F, name)
    with pytest.raises(ValueError, match=r"stride.*impl='lax' or impl='im2col'"):
        fn(x, w, stride=stride, impl="fft")
    with pytest.raises(ValueError, match="stride"):  # raised while tracing, before any FFT runs
        jax.jit(lambda x: fn(x, w, stride=stride, impl="fft"))(x)
    spec = conv_spec(name, x.shape, w.shape, nd=nd, stride=stride, padding=0, dilation=1, groups=1,
                     channels_last=False, transposed=transposed)
    with pytest.raises(ValueError, match="stride"):
        _fft.check_supported(spec, name)
    _fft.check_supported(conv_spec(name, x.shape, w.shape, nd=nd, stride=1, padding=0, dilation=1,
                                   groups=1, channels_last=False, transposed=transposed), name)


@pytest.mark.parametrize("dtype,tol", [(jnp.bfloat16, 2e-2), (jnp.float16, 2e-3)])
def test_half_precision_inputs_keep_dtype(dtype, tol):
    rng = np.random.default_rng(4)
    x = jnp.asarray(_rand(rng, 2, 4, 9, 8), dtype)
    w = jnp.asarray(_rand(rng, 6, 2, 3, 4), dtype)
    w_t = jnp.asarray(_rand(rng, 4, 3, 3, 4), dtype)  # transposed layout (in, out/groups, *k)
    b = jnp.asarray(_rand(rng, 6), dtype)
    y = F.conv2d(x, w, b, padding=2, dilation=2, groups=2, impl="fft")
    yt = F.conv_transpose2d(x, w_t, padding=1, groups=2, impl="fft")
    assert y.dtype == dtype and yt.dtype == dtype
    ref = tF.conv2d(*(torch.tensor(np.asarray(a, np.float32)) for a in (x, w, b)), padding=2, dilation=2,
                    groups=2).numpy()
    ref_t = tF.conv_transpose2d(*(torch.tensor(np.asarray(a, np.float32)) for a in (x, w_t)), padding=1,
                                groups=2).numpy()
    assert rel_error(y, ref) <= tol
    assert rel_error(yt, ref_t) <= tol
    gx = jax.grad(lambda x: jnp.sum(F.conv2d(x, w, groups=2, impl="fft").astype(jnp.float32)))(x)
    assert gx.dtype == dtype


def test_float64_stays_float64():
    rng = np.random.default_rng(5)
    x, w = _rand(rng, 2, 3, 11).astype(np.float64), _rand(rng, 4, 3, 5).astype(np.float64)
    with jax.enable_x64(True):
        y = F.conv1d(jnp.asarray(x), jnp.asarray(w), padding=2, impl="fft")
        assert y.dtype == jnp.float64
        y = np.asarray(y)
    ref = tF.conv1d(torch.tensor(x), torch.tensor(w), padding=2).numpy()
    assert rel_error(y, ref) <= 1e-12  # complex128 transforms, not float32


def test_jit_vmap_grad():
    rng = np.random.default_rng(6)
    x = jnp.asarray(_rand(rng, 3, 2, 2, 7, 6))  # (vmapped, N, C, H, W)
    w = jnp.asarray(_rand(rng, 4, 2, 3, 3))

    def f(x, w):
        return F.conv2d(x, w, padding=1, impl="fft", channels_last=False)

    eager = jnp.stack([f(xi, w) for xi in x])
    assert rel_error(jax.vmap(f, (0, None))(x, w), eager) <= 1e-6
    assert rel_error(jax.jit(jax.vmap(f, (0, None)))(x, w), eager) <= 1e-6
    g_fft = jax.jit(jax.grad(lambda w: jnp.sum(jnp.sin(f(x[0], w)))))(w)
    g_lax = jax.grad(lambda w: jnp.sum(jnp.sin(F.conv2d(x[0], w, padding=1, impl="lax"))))(w)
    assert rel_error(g_fft, g_lax) <= RTOL


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("op, kw", [("conv1d", dict(padding=1, groups=2)), ("conv2d", dict(padding=2, dilation=2, groups=2)),
                                    ("conv_transpose1d", dict(padding=1)),
                                    ("conv_transpose2d", dict(dilation=2, groups=2))])
def test_nonfinite_values_land_where_torchs_do(op, kw, where, bad):
    """The transforms would spread one inf/NaN to every output; fft's output has NaN/inf
    exactly where PyTorch's has them and PyTorch's numbers elsewhere."""
    rng = np.random.default_rng(3)
    nd = int(op[-2])
    x = rng.standard_normal((2, 4, *(7,) * nd)).astype(np.float32)
    w = rng.standard_normal((4, 2, *(3,) * nd)).astype(np.float32)
    (x if where == "input" else w).flat[5] = bad
    got = np.asarray(jax.jit(lambda a, b: getattr(F, op)(a, b, **kw, impl="fft"))(x, w))
    want = getattr(tF, op)(torch.tensor(x), torch.tensor(w), **kw).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert finite.any() and rel_error(got[finite], want[finite]) < RTOL
    np.testing.assert_array_equal(np.sign(got[np.isinf(want)]), np.sign(want[np.isinf(want)]))
