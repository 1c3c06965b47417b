"""jaxconv.nnx layers against torch.nn with the same weights, and against their jaxconv.nn twins."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")

from jaxconv import nn as jnn  # noqa: E402
from jaxconv import nnx as jx  # noqa: E402
from jaxconv.interop import flatten_params, from_torch, load_nnx, to_torch  # noqa: E402
from jaxconv.parity import torch_models  # noqa: E402
from jaxconv.parity.model_check import check_layer  # noqa: E402

RTOL = 1e-5


def _x(shape, seed=0):
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n).reshape(shape) / n - 0.5).astype(np.float32)


def _assert_close(errors):
    assert errors["forward"] <= RTOL, errors
    assert errors["grad_input"] <= RTOL, errors
    assert errors["grad_params"] <= RTOL, errors
    assert errors["exact_mismatch"] == 0, errors


CASES = [
    ("Conv1d", (4, 6, 4), dict(padding="same", padding_mode="circular", dilation=2, groups=2), (2, 4, 12)),
    ("Conv2d", (4, 6, 3), dict(padding=(1, 2), stride=(2, 1), padding_mode="reflect"), (2, 4, 9, 10)),
    ("Conv2d", (4, 6, 3), dict(padding=2, padding_mode="replicate", bias=False, dilation=2), (2, 4, 9, 10)),
    ("Conv3d", (2, 4, 3), dict(padding=1, stride=(1, 2, 1)), (1, 2, 5, 6, 5)),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2), (2, 4, 7)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=(2, 1), dilation=(1, 3), output_padding=(1, 2)), (2, 4, 5, 6)),
    ("ConvTranspose3d", (2, 4, 2), dict(stride=2, bias=False), (1, 2, 3, 4, 3)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, return_indices=True), (2, 3, 9, 10)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 9, 10)),
    ("AvgPool1d", (2,), {}, (2, 3, 9)),
    ("AdaptiveAvgPool2d", ((3, 4),), {}, (2, 3, 9, 10)),
    ("AdaptiveMaxPool1d", (4,), dict(return_indices=True), (2, 3, 10)),
    ("Linear", (7, 5), {}, (3, 7)),
]


def _abstract(cls, *args, **kwargs):
    # check_layer loads torch's weights: skip drawing (and compiling) a random init.
    return nnx.eval_shape(lambda: cls(*args, **kwargs, rngs=nnx.Rngs(0)))


def _random_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    shapes = flatten_params(nnx.state(layer, nnx.Param))
    return load_nnx(layer, {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in shapes.items()})


def _make(name, args, kwargs):
    cls = getattr(jx, name)
    if name.startswith(("Conv", "Linear")):
        return _abstract(cls, *args, **kwargs)
    return cls(*args, **kwargs)


@pytest.mark.parametrize("name,args,kwargs,shape", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_nnx_layer_matches_torch(name, args, kwargs, shape):
    torch.manual_seed(0)
    t_layer = getattr(torch.nn, name)(*args, **kwargs)
    _assert_close(check_layer(_make(name, args, kwargs), t_layer, _x(shape)))


def test_nnx_channels_last_matches_torch():
    torch.manual_seed(1)
    kwargs = dict(padding=1, padding_mode="circular", groups=2)
    t_layer = torch.nn.Conv2d(4, 6, 3, **kwargs)
    layer = _abstract(jx.Conv2d, 4, 6, 3, **kwargs, channels_last=True)
    _assert_close(check_layer(layer, t_layer, _x((2, 4, 7, 8)), channels_last=True))


def test_nnx_conv_transpose_output_size():
    torch.manual_seed(2)
    t_layer = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    layer = _abstract(jx.ConvTranspose2d, 4, 6, 3, stride=2, padding=1)
    _assert_close(check_layer(layer, t_layer, _x((2, 4, 5, 6)), output_size=(10, 11)))


def test_nnx_causal_and_separable_match_torch():
    torch.manual_seed(3)
    t_causal = torch_models.CausalConv1d(4, 6, 3, dilation=2)
    _assert_close(check_layer(_abstract(jx.CausalConv1d, 4, 6, 3, dilation=2), t_causal, _x((2, 4, 11))))
    t_sep = torch_models.SeparableConv2d(4, 6, 3, padding=1, depth_multiplier=2)
    layer = _abstract(jx.SeparableConv2d, 4, 6, 3, padding=1, depth_multiplier=2)
    _assert_close(check_layer(layer, t_sep, _x((2, 4, 7, 8))))
    assert set(to_torch(layer)) == set(t_sep.state_dict())


@pytest.mark.parametrize("name,args,kwargs,shape", [
    ("Conv2d", (4, 6, 3), dict(padding="same", padding_mode="reflect", groups=2), (2, 4, 7, 8)),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=3, padding=1, output_padding=2), (2, 4, 5)),
    ("CausalConv1d", (4, 6, 3), dict(padding_mode="replicate"), (2, 4, 9)),
])
def test_nnx_equals_linen_with_the_same_weights(name, args, kwargs, shape):
    layer = _random_weights(_abstract(getattr(jx, name), *args, **kwargs))
    params = from_torch(to_torch(layer, as_numpy=True))
    linen = getattr(jnn, name)(*args, **kwargs)

    @jax.jit
    def both(x):
        return layer(x), linen.apply({"params": params}, x)

    y_nnx, y_linen = both(_x(shape))
    np.testing.assert_array_equal(np.asarray(y_nnx), np.asarray(y_linen))


def test_nnx_parameters_and_init_bounds():
    layer = jx.ConvTranspose2d(8, 6, 3, groups=2, rngs=nnx.Rngs(0))
    assert layer.weight.shape == (8, 3, 3, 3) and layer.bias.shape == (6,)
    bound = 1 / np.sqrt(3 * 9)  # torch's fan_in = weight.size(1) * prod(kernel)
    assert float(jnp.abs(layer.weight[...]).max()) <= bound
    assert float(jnp.abs(layer.weight[...]).max()) > 0.8 * bound
    assert jx.Conv1d(2, 3, 3, bias=False, rngs=nnx.Rngs(0)).bias is None
    assert nnx.state(jx.MaxPool2d(2), nnx.Param) == nnx.State({})


def test_nnx_training_step_with_optimizer():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = jx.Conv2d(1, 4, 3, padding=1, padding_mode="reflect", rngs=rngs)
            self.pool = jx.MaxPool2d(2)
            self.fc = jx.Linear(4 * 4 * 4, 3, rngs=rngs)

        def __call__(self, x):
            x = self.pool(jax.nn.relu(self.conv(x)))
            return self.fc(x.reshape(x.shape[0], -1))

    import optax

    model = _random_weights(nnx.eval_shape(lambda: Net(nnx.Rngs(0))))
    opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    x = jnp.asarray(_x((2, 1, 8, 8)))
    labels = jnp.array([0, 2])

    @nnx.jit
    def step(model, opt, x, labels):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt, x, labels)) for _ in range(3)]
    assert losses[2] < losses[0]
    assert set(to_torch(model)) == {"conv.weight", "conv.bias", "fc.weight", "fc.bias"}


def test_nnx_load_state_dict_round_trip():
    torch.manual_seed(4)
    t_layer = torch.nn.Conv2d(3, 5, 3)
    layer = load_nnx(_abstract(jx.Conv2d, 3, 5, 3), t_layer.state_dict())
    np.testing.assert_array_equal(np.asarray(layer.weight[...]), t_layer.weight.detach().numpy())
    back = to_torch(layer)
    assert all(torch.equal(back[k], v) for k, v in t_layer.state_dict().items())
    with pytest.raises(ValueError, match="shape mismatches"):
        load_nnx(_abstract(jx.Conv2d, 3, 5, 5), t_layer.state_dict())


@pytest.mark.parametrize("name,kwargs,match", [
    ("Conv2d", dict(groups=4), "in_channels must be divisible by groups"),
    ("Conv2d", dict(padding_mode="symmetric"), "padding_mode must be one of"),
    ("Conv2d", dict(padding="same", stride=2), "strided convolutions"),
    ("ConvTranspose2d", dict(padding_mode="circular"), 'Only "zeros"'),
    ("ConvTranspose2d", dict(output_padding=1), "smaller than either stride"),
])
def test_nnx_constructor_validation(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(jx, name)(6, 9, 3, **kwargs, rngs=nnx.Rngs(0))
