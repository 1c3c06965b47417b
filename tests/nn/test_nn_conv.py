"""jaxconv.nn convolution layers against torch.nn with the same weights: outputs and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxconv import nn as jnn  # noqa: E402
from jaxconv.parity import torch_models  # noqa: E402
from jaxconv.parity.model_check import check_layer  # noqa: E402

RTOL = 1e-5


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _assert_close(errors):
    assert errors["forward"] <= RTOL, errors
    assert errors["grad_input"] <= RTOL, errors
    assert errors["grad_params"] <= RTOL, errors
    assert errors["exact_mismatch"] == 0, errors


# (class name, args, kwargs, input shape)
CONV_CASES = [
    ("Conv1d", (4, 6, 3), {}, (2, 4, 11)),
    ("Conv1d", (4, 6, 3), dict(stride=2, padding=1, dilation=2), (2, 4, 13)),
    ("Conv1d", (4, 6, 4), dict(padding="same", dilation=2, groups=2, bias=False), (2, 4, 10)),
    ("Conv1d", (4, 6, 3), dict(padding="valid"), (2, 4, 9)),
    ("Conv1d", (4, 6, 3), dict(padding=2, padding_mode="reflect"), (2, 4, 9)),
    ("Conv1d", (4, 6, 4), dict(padding="same", padding_mode="circular", dilation=2), (2, 4, 12)),
    ("Conv2d", (4, 6, 3), dict(padding=(1, 2), stride=(1, 2)), (2, 4, 9, 10)),
    ("Conv2d", (4, 6, 3), dict(padding=(1, 2), stride=(2, 1), padding_mode="reflect"), (2, 4, 9, 10)),
    ("Conv2d", (4, 6, 3), dict(padding=(2, 1), padding_mode="replicate", groups=2), (2, 4, 9, 10)),
    ("Conv2d", (4, 6, (2, 3)), dict(padding=(1, 2), padding_mode="circular", dilation=(2, 1)), (2, 4, 9, 10)),
    ("Conv2d", (4, 6, (3, 4)), dict(padding="same", padding_mode="reflect", dilation=(1, 2)), (2, 4, 9, 10)),
    ("Conv2d", (4, 6, (3, 4)), dict(padding="same", padding_mode="replicate"), (2, 4, 9, 10)),
    ("Conv2d", (4, 8, 3), dict(groups=4, dilation=2, padding=2, bias=False), (2, 4, 9, 10)),
    ("Conv2d", (4, 6, 3), dict(padding=1, impl="im2col"), (2, 4, 7, 8)),
    ("Conv2d", (4, 6, 3), dict(padding=1, impl="fft", padding_mode="circular"), (2, 4, 7, 8)),
    ("Conv3d", (2, 4, 3), dict(padding=1, padding_mode="replicate", stride=(1, 2, 1)), (2, 2, 5, 6, 5)),
    ("Conv3d", (4, 4, (1, 2, 3)), dict(padding="same", groups=2, padding_mode="circular"), (1, 4, 4, 5, 6)),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1), (2, 4, 7)),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=1, dilation=3, output_padding=2, groups=2), (2, 4, 7)),
    ("ConvTranspose2d", (4, 6, (3, 2)), dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2),
                                             groups=2, dilation=(1, 2)), (2, 4, 5, 6)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, bias=False, impl="im2col"), (2, 4, 5, 6)),
    ("ConvTranspose3d", (2, 4, 3), dict(stride=2, padding=1, output_padding=(0, 1, 1)), (1, 2, 3, 4, 3)),
]


def _ids(cases):
    return [f"{c[0]}-{c[2]}" for c in cases]


@pytest.mark.parametrize("name,args,kwargs,shape", CONV_CASES, ids=_ids(CONV_CASES))
def test_conv_matches_torch(name, args, kwargs, shape):
    torch.manual_seed(0)
    tkw = {k: v for k, v in kwargs.items() if k != "impl"}
    t_layer = getattr(torch.nn, name)(*args, **tkw)
    _assert_close(check_layer(getattr(jnn, name)(*args, **kwargs), t_layer, _x(shape)))


@pytest.mark.parametrize("name,args,kwargs,shape", [
    ("Conv2d", (4, 6, 3), dict(padding=(1, 2), padding_mode="reflect", stride=(2, 1)), (2, 4, 9, 10)),
    ("Conv1d", (4, 6, 3), dict(padding="same", padding_mode="circular"), (2, 4, 9)),
    ("Conv3d", (2, 4, 3), dict(padding=1), (1, 2, 4, 5, 4)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 6)),
])
def test_channels_last_matches_torch(name, args, kwargs, shape):
    torch.manual_seed(1)
    t_layer = getattr(torch.nn, name)(*args, **kwargs)
    layer = getattr(jnn, name)(*args, **kwargs, channels_last=True)
    _assert_close(check_layer(layer, t_layer, _x(shape), channels_last=True))


@pytest.mark.parametrize("channels_last", [False, True])
def test_unbatched_input_with_padding_mode(channels_last):
    torch.manual_seed(2)
    t_layer = torch.nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect")
    layer = jnn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect", channels_last=channels_last)
    _assert_close(check_layer(layer, t_layer, _x((3, 6, 7)), channels_last=channels_last, batched=False))


@pytest.mark.parametrize("output_size", [(10, 12), (2, 6, 9, 11)])
def test_conv_transpose_output_size(output_size):
    torch.manual_seed(3)
    t_layer = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    layer = jnn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    _assert_close(check_layer(layer, t_layer, _x((2, 4, 5, 6)), output_size=output_size))


def test_conv_transpose_output_size_out_of_range():
    layer = jnn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    x = jnp.zeros((1, 4, 5, 6))
    with pytest.raises(ValueError, match="valid sizes range from 9 to 10"):
        jax.eval_shape(lambda: layer.init(jax.random.key(0), x, output_size=(11, 11)))


@pytest.mark.parametrize("kwargs", [dict(), dict(dilation=2, padding_mode="replicate", groups=2),
                                    dict(stride=2, bias=False)])
def test_causal_conv1d_matches_torch(kwargs):
    torch.manual_seed(4)
    t_layer = torch_models.CausalConv1d(4, 6, 3, **kwargs)
    _assert_close(check_layer(jnn.CausalConv1d(4, 6, 3, **kwargs), t_layer, _x((2, 4, 12))))


def test_causal_conv1d_channels_last_matches_torch():
    torch.manual_seed(4)
    t_layer = torch_models.CausalConv1d(4, 6, 3, dilation=2, padding_mode="replicate")
    layer = jnn.CausalConv1d(4, 6, 3, dilation=2, padding_mode="replicate", channels_last=True)
    _assert_close(check_layer(layer, t_layer, _x((2, 4, 12)), channels_last=True))


def test_causal_conv1d_equals_conv1d_on_left_padded_input():
    torch.manual_seed(5)
    t_conv = torch.nn.Conv1d(3, 5, 4, dilation=2)
    layer = jnn.CausalConv1d(3, 5, 4, dilation=2)
    from jaxconv.interop import from_torch

    params = from_torch(t_conv.state_dict())
    x = _x((2, 3, 10))
    y = jax.jit(layer.apply)({"params": params}, x)
    expected = t_conv(torch.nn.functional.pad(torch.tensor(x), (6, 0))).detach().numpy()
    assert y.shape == (2, 5, 10)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-6)


def test_causal_conv1d_is_causal():
    layer = jnn.CausalConv1d(2, 3, 3, dilation=2)
    x = jnp.asarray(_x((1, 2, 16)))
    variables = layer.init(jax.random.key(0), x)

    @jax.jit
    def outputs_and_jacobian(v):
        return layer.apply(variables, v), jax.jacrev(lambda u: layer.apply(variables, u)[0])(v)[:, :, 0]

    y, jac = outputs_and_jacobian(x)  # jac[o, t, c, s] = d y[o, t] / d x[c, s]
    assert y.shape == (1, 3, 16)
    jac = np.asarray(jac)
    for t in range(16):
        assert np.all(jac[:, t, :, t + 1:] == 0), t  # nothing from the future
        assert np.all(np.abs(jac[:, t, :, t]).sum() > 0), t  # the present counts
    # inputs t-2, t-4 (dilation 2) count too, once they exist
    assert np.abs(jac[:, 8, :, [4, 6, 8]]).min(axis=(0, 2)).all()
    assert np.all(jac[:, 8, :, [5, 7]] == 0)
    y2, _ = outputs_and_jacobian(x.at[0, :, 9:].set(100.0))
    np.testing.assert_array_equal(np.asarray(y2[..., :9]), np.asarray(y[..., :9]))


@pytest.mark.parametrize("kwargs", [dict(), dict(depth_multiplier=2, stride=2, padding=1, bias=False),
                                    dict(padding="same", padding_mode="reflect", dilation=2)])
def test_separable_conv2d_matches_torch(kwargs):
    torch.manual_seed(6)
    t_layer = torch_models.SeparableConv2d(4, 6, 3, **kwargs)
    layer = jnn.SeparableConv2d(4, 6, 3, **kwargs)
    _assert_close(check_layer(layer, t_layer, _x((2, 4, 9, 10))))


def test_separable_conv2d_parameter_names():
    layer = jnn.SeparableConv2d(4, 6, 3, depth_multiplier=2)
    params = jax.eval_shape(layer.init, jax.random.key(0), jnp.zeros((1, 4, 8, 8)))["params"]
    shapes = {f"{m}.{p}": params[m][p].shape for m in params for p in params[m]}
    assert shapes == {"depthwise.weight": (8, 1, 3, 3), "depthwise.bias": (8,),
                      "pointwise.weight": (6, 8, 1, 1), "pointwise.bias": (6,)}
    t_names = set(torch_models.SeparableConv2d(4, 6, 3, depth_multiplier=2).state_dict())
    assert t_names == set(shapes)


@pytest.mark.parametrize("name", ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
                                  "ConvTranspose3d"])
def test_parameter_names_shapes_and_default_bias(name):
    nd = int(name[-2])
    torch.manual_seed(0)
    t_layer = getattr(torch.nn, name)(4, 6, 3, groups=2)
    layer = getattr(jnn, name)(4, 6, 3, groups=2)
    x = jnp.zeros((1, 4, *(5,) * nd))
    params = jax.eval_shape(layer.init, jax.random.key(0), x)["params"]
    assert {k: v.shape for k, v in params.items()} == {k: tuple(v.shape) for k, v in t_layer.state_dict().items()}
    assert params["weight"].dtype == jnp.float32
    no_bias = getattr(jnn, name)(4, 6, 3, bias=False)
    assert "bias" not in jax.eval_shape(no_bias.init, jax.random.key(0), x)["params"]


def test_params_cast_to_input_dtype():
    layer = jnn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    x = jnp.ones((1, 3, 5, 5), jnp.bfloat16)
    variables, y = jax.eval_shape(lambda: layer.init_with_output(jax.random.key(0), x)[::-1])
    assert variables["params"]["weight"].dtype == jnp.float32
    assert y.dtype == jnp.bfloat16 and y.shape == (1, 4, 5, 5)
    layer16 = jnn.Conv2d(3, 4, 3, param_dtype=jnp.float16)
    assert jax.eval_shape(layer16.init, jax.random.key(0), x)["params"]["weight"].dtype == jnp.float16


def test_jit_and_custom_initializers():
    layer = jnn.Conv1d(2, 3, 3, weight_init=jax.nn.initializers.ones, bias_init=jax.nn.initializers.zeros)
    x = jnp.ones((1, 2, 5))
    variables = layer.init(jax.random.key(0), x)
    y = jax.jit(layer.apply)(variables, x)
    np.testing.assert_array_equal(np.asarray(y), np.full((1, 3, 3), 6.0, np.float32))


BAD_ARGS = [
    ("Conv2d", dict(groups=3), ValueError, "in_channels must be divisible by groups"),
    ("Conv2d", dict(out_channels=7, groups=2), ValueError, "out_channels must be divisible by groups"),
    ("Conv2d", dict(groups=0), ValueError, "groups must be a positive integer"),
    ("Conv2d", dict(padding_mode="zero"), ValueError, "padding_mode must be one of"),
    ("Conv2d", dict(padding="same", stride=2), ValueError, "not supported for strided convolutions"),
    ("Conv2d", dict(padding="full"), ValueError, "Invalid padding string"),
    ("Conv2d", dict(kernel_size=(3, 3, 3)), ValueError, "kernel_size"),
    ("Conv2d", dict(stride=0), ValueError, "stride must be positive"),
    ("Conv2d", dict(padding=-1), ValueError, "padding must be >= 0"),
    ("Conv2d", dict(in_channels=2.0), TypeError, "in_channels must be an int"),
    ("Conv2d", dict(bias=1), TypeError, "bias must be a bool"),
    ("Conv2d", dict(impl="cudnn"), ValueError, "impl must be one of"),
    ("ConvTranspose2d", dict(padding_mode="reflect"), ValueError, 'Only "zeros" padding mode'),
    ("ConvTranspose2d", dict(output_padding=2, stride=2), ValueError, "output_padding"),
    ("ConvTranspose2d", dict(output_padding=1), ValueError, "smaller than either stride"),
    ("ConvTranspose2d", dict(padding="same"), ValueError, "padding must be an int"),
]


@pytest.mark.parametrize("name,bad,exc,match", BAD_ARGS, ids=[f"{b[0]}-{b[1]}" for b in BAD_ARGS])
def test_constructor_rejects_what_torch_rejects(name, bad, exc, match):
    kwargs = dict(in_channels=4, out_channels=6, kernel_size=3)
    kwargs.update(bad)
    with pytest.raises(exc, match=match):
        getattr(jnn, name)(**kwargs)


def test_torch_rejects_the_same_constructor_arguments():
    for name, bad, _, _ in BAD_ARGS:
        if name == "Conv2d" and set(bad) & {"in_channels", "bias", "impl", "stride", "padding", "kernel_size"}:
            continue  # torch checks these lazily, or accepts them
        kwargs = dict(in_channels=4, out_channels=6, kernel_size=3)
        kwargs.update(bad)
        with pytest.raises((ValueError, TypeError, RuntimeError)):
            module = getattr(torch.nn, name)(**kwargs)
            module(torch.zeros(1, 4, 8, 8))


def test_separable_and_causal_reject_bad_arguments():
    with pytest.raises(ValueError, match="depth_multiplier must be positive"):
        jnn.SeparableConv2d(4, 6, 3, depth_multiplier=0)
    with pytest.raises(ValueError, match="padding_mode"):
        jnn.CausalConv1d(4, 6, 3, padding_mode="mirror")
    for mode in ("reflect", "circular"):  # would fill the left padding from later steps
        with pytest.raises(ValueError, match="breaks causality"):
            jnn.CausalConv1d(4, 6, 3, padding_mode=mode)


@pytest.mark.parametrize("padding_mode", ["zeros", "replicate"])
def test_causal_conv1d_output_ignores_later_steps(padding_mode):
    layer = jnn.CausalConv1d(1, 2, 3, dilation=2, padding_mode=padding_mode)
    x = _x((1, 1, 9))
    params = layer.init(jax.random.key(0), x)
    later = x.copy()
    later[..., 5:] += 1.0
    y, y_later = layer.apply(params, x), layer.apply(params, later)
    np.testing.assert_array_equal(np.asarray(y)[..., :5], np.asarray(y_later)[..., :5])
    assert not np.allclose(np.asarray(y)[..., 5:], np.asarray(y_later)[..., 5:])
