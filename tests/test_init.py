"""jaxconv.init against torch.nn.init: fan conventions, gains, and the default layer init's statistics."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")

from jaxconv import init as jinit  # noqa: E402
from jaxconv import nn as jnn  # noqa: E402
from jaxconv import nnx as jx  # noqa: E402


@pytest.mark.parametrize("shape", [(5, 7), (8, 3, 5), (16, 4, 3, 3), (4, 8, 2, 3, 1), (1, 1)])
def test_fans_match_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert jinit.calculate_fan_in_and_fan_out(shape) == expected


def test_fans_reject_1d():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        jinit.calculate_fan_in_and_fan_out((5,))


@pytest.mark.parametrize("name,param", [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                                        ("relu", None), ("leaky_relu", None), ("leaky_relu", math.sqrt(5)),
                                        ("selu", None)])
def test_gain_matches_torch(name, param):
    assert jinit.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


def _torch_layer(name, *args, **kwargs):
    torch.manual_seed(0)
    return getattr(torch.nn, name)(*args, **kwargs)


def _jax_params(name, args, kwargs, x_shape):
    layer = getattr(jnn, name)(*args, **kwargs)
    return layer.init(jax.random.key(0), jnp.zeros(x_shape))["params"]


# Large layers: ~10^5 weights, so bounds and variance are sharp.
LAYERS = [
    ("Conv2d", (64, 128, 3), {}, (1, 64, 3, 3)),
    ("ConvTranspose2d", (128, 96, 3), dict(groups=2), (1, 128, 3, 3)),
    ("Conv1d", (256, 96, 5), dict(groups=4), (1, 256, 5)),
    ("Linear", (300, 400), {}, (1, 300)),
]


@pytest.mark.parametrize("name,args,kwargs,x_shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_default_weight_init_matches_torch_statistics(name, args, kwargs, x_shape):
    t_w = _torch_layer(name, *args, **kwargs).weight.detach().numpy().astype(np.float64)
    j_w = np.asarray(_jax_params(name, args, kwargs, x_shape)["weight"], np.float64)
    assert j_w.shape == t_w.shape
    bound = 1 / math.sqrt(jinit.calculate_fan_in_and_fan_out(j_w.shape)[0])
    # PyTorch's kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    for w in (t_w, j_w):
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        assert np.abs(w).max() >= 0.999 * bound
        assert abs(w.mean()) < 0.02 * bound
        assert w.var() == pytest.approx(bound**2 / 3, rel=0.03)
    assert j_w.var() == pytest.approx(t_w.var(), rel=0.04)
    # the same distribution: quantiles agree to sampling error
    qs = [0.05, 0.25, 0.5, 0.75, 0.95]
    np.testing.assert_allclose(np.quantile(j_w, qs), np.quantile(t_w, qs), atol=0.02 * bound)


def test_conv_transpose_fan_in_is_out_channels_over_groups_times_kernel():
    # torch: weight (in, out/groups, *k), fan_in = weight.size(1) * prod(k)
    t_w = _torch_layer("ConvTranspose2d", 128, 96, 3, groups=2).weight
    fan_in = 48 * 9
    assert torch.nn.init._calculate_fan_in_and_fan_out(t_w)[0] == fan_in
    j_w = _jax_params("ConvTranspose2d", (128, 96, 3), dict(groups=2), (1, 128, 3, 3))["weight"]
    assert float(jnp.abs(j_w).max()) == pytest.approx(1 / math.sqrt(fan_in), rel=2e-3)


@pytest.mark.parametrize("name,args,x_shape", [("Linear", (16, 20000), (1, 16)),
                                               ("Conv1d", (4, 20000, 2), (1, 4, 2)),
                                               ("ConvTranspose1d", (3, 20000, 2), (1, 3, 2))])
def test_default_bias_init_matches_torch(name, args, x_shape):
    t_b = _torch_layer(name, *args).bias.detach().numpy().astype(np.float64)
    j_b = np.asarray(_jax_params(name, args, {}, x_shape)["bias"], np.float64)
    t_w_shape = tuple(_torch_layer(name, *args).weight.shape)
    bound = 1 / math.sqrt(jinit.calculate_fan_in_and_fan_out(t_w_shape)[0])
    for b in (t_b, j_b):
        assert np.abs(b).max() <= bound * (1 + 1e-6)
        assert np.abs(b).max() >= 0.99 * bound
        assert b.var() == pytest.approx(bound**2 / 3, rel=0.05)


@pytest.mark.parametrize("name,jax_init,torch_init", [
    ("kaiming_normal_relu", jinit.kaiming_normal(nonlinearity="relu"),
     lambda t: torch.nn.init.kaiming_normal_(t, nonlinearity="relu")),
    ("kaiming_uniform_fan_out", jinit.kaiming_uniform(a=0.0, mode="fan_out", nonlinearity="relu"),
     lambda t: torch.nn.init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu")),
    ("xavier_uniform", jinit.xavier_uniform(gain=2.0), lambda t: torch.nn.init.xavier_uniform_(t, gain=2.0)),
    ("xavier_normal", jinit.xavier_normal(), torch.nn.init.xavier_normal_),
])
def test_other_initializers_match_torch_statistics(name, jax_init, torch_init):
    shape = (96, 64, 3, 3)
    torch.manual_seed(0)
    t_w = torch_init(torch.empty(shape)).numpy().astype(np.float64)
    j_w = np.asarray(jax_init(jax.random.key(0), shape), np.float64)
    assert j_w.std() == pytest.approx(t_w.std(), rel=0.02)
    qs = [0.01, 0.25, 0.5, 0.75, 0.99]
    np.testing.assert_allclose(np.quantile(j_w, qs), np.quantile(t_w, qs), atol=0.03 * t_w.std())


def test_nnx_layers_use_the_same_initializers():
    layer = jx.Conv2d(64, 128, 3, rngs=nnx.Rngs(0))
    w = np.asarray(layer.weight[...])
    bound = 1 / math.sqrt(64 * 9)
    assert np.abs(w).max() <= bound and np.abs(w).max() >= 0.999 * bound
    assert np.abs(np.asarray(layer.bias[...])).max() <= bound


def test_initializer_errors_and_dtype():
    with pytest.raises(ValueError, match="mode"):
        jinit.kaiming_uniform(mode="fan_avg")(jax.random.key(0), (3, 3))
    with pytest.raises(ValueError, match="nonlinearity"):
        jinit.calculate_gain("swish")
    assert jinit.default_weight()(jax.random.key(0), (4, 3), jnp.bfloat16).dtype == jnp.bfloat16
    assert np.all(np.asarray(jinit.torch_bias(0)(jax.random.key(0), (3,))) == 0)
