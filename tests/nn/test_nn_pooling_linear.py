"""jaxconv.nn pooling layers, Linear and Flatten against torch.nn: outputs, indices and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxconv import nn as jnn  # noqa: E402
from jaxconv.parity.model_check import check_layer  # noqa: E402

RTOL = 1e-5


def _x(shape, seed=0):
    # distinct values: max-pool ties would make the argmax (and its gradient) ambiguous
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) / n - 0.5).astype(np.float32)


def _assert_close(errors):
    assert errors["forward"] <= RTOL, errors
    assert errors["grad_input"] <= RTOL, errors
    assert errors["grad_params"] <= RTOL, errors
    assert errors["exact_mismatch"] == 0, errors


POOL_CASES = [
    ("MaxPool1d", (3,), dict(stride=2, padding=1, dilation=2, return_indices=True), (2, 3, 12)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True, return_indices=True), (2, 3, 9, 10)),
    ("MaxPool2d", ((2, 3),), dict(stride=(1, 2), dilation=(2, 1)), (2, 3, 9, 10)),
    ("MaxPool3d", (2,), dict(return_indices=True), (1, 2, 4, 6, 5)),
    ("AvgPool1d", (3,), dict(stride=2, padding=1, count_include_pad=False, ceil_mode=True), (2, 3, 10)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, divisor_override=4), (2, 3, 9, 10)),
    ("AvgPool3d", (2,), dict(divisor_override=-3), (1, 2, 4, 6, 5)),
    ("AvgPool2d", ((3, 2),), dict(padding=(1, 1), ceil_mode=True, count_include_pad=False), (2, 3, 9, 10)),
    ("AvgPool3d", (2,), dict(stride=(1, 2, 2), padding=1), (1, 2, 4, 6, 5)),
    ("MaxPool2d", (3,), dict(stride=()), (1, 2, 7, 6)),  # an empty stride means kernel_size, as torch
    ("AvgPool1d", (2,), dict(stride=[]), (1, 2, 7)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 10)),
    ("AdaptiveAvgPool2d", ((3, None),), {}, (2, 3, 9, 10)),
    ("AdaptiveAvgPool3d", ((2, 3, 2),), {}, (1, 2, 5, 7, 4)),
    ("AdaptiveMaxPool1d", (4,), dict(return_indices=True), (2, 3, 10)),
    ("AdaptiveMaxPool2d", ((4, 3),), dict(return_indices=True), (2, 3, 9, 10)),
    ("AdaptiveMaxPool3d", (2,), {}, (1, 2, 5, 7, 4)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", POOL_CASES, ids=[f"{c[0]}-{c[2]}" for c in POOL_CASES])
def test_pool_matches_torch(name, args, kwargs, shape):
    t_layer = getattr(torch.nn, name)(*args, **kwargs)
    _assert_close(check_layer(getattr(jnn, name)(*args, **kwargs), t_layer, _x(shape)))


@pytest.mark.parametrize("name,args,kwargs,shape", [
    ("MaxPool2d", (3,), dict(stride=2, padding=1, return_indices=True), (2, 3, 9, 10)),
    ("AvgPool2d", (2,), {}, (2, 3, 8, 6)),
    ("AdaptiveAvgPool2d", (3,), {}, (2, 3, 8, 6)),
])
def test_pool_channels_last_matches_torch(name, args, kwargs, shape):
    t_layer = getattr(torch.nn, name)(*args, **kwargs)
    layer = getattr(jnn, name)(*args, **kwargs, channels_last=True)
    _assert_close(check_layer(layer, t_layer, _x(shape), channels_last=True))


@pytest.mark.parametrize("name,kwargs,exc,match", [
    ("MaxPool2d", dict(kernel_size=2, padding=2), ValueError, "at most half"),
    ("MaxPool2d", dict(kernel_size=0), ValueError, "kernel_size must be positive"),
    ("AvgPool2d", dict(kernel_size=3, padding=2), ValueError, "at most half"),
    ("AvgPool2d", dict(kernel_size=3, divisor_override=0), ValueError, "divisor_override"),
    ("AvgPool2d", dict(kernel_size=3, stride=(1, 2, 3)), ValueError, "stride"),
    ("AdaptiveAvgPool2d", dict(output_size=(1, 2, 3)), ValueError, "output_size"),
    ("AdaptiveMaxPool3d", dict(output_size=(3,)), ValueError, "output_size"),  # torch: "must be 3"
    ("AdaptiveMaxPool1d", dict(output_size="4"), TypeError, "output_size"),
    ("MaxPool1d", dict(kernel_size=2, ceil_mode=1), TypeError, "ceil_mode must be a bool"),
])
def test_pool_rejects_bad_arguments(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(jnn, name)(**kwargs)


def test_pool_layers_have_no_parameters():
    variables = jnn.MaxPool2d(2).init(jax.random.key(0), jnp.zeros((1, 1, 4, 4)))
    assert jax.tree.leaves(variables) == []


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    torch.manual_seed(0)
    _assert_close(check_layer(jnn.Linear(7, 5, bias=bias), torch.nn.Linear(7, 5, bias=bias),
                              _x((3, 2, 7))))


def test_linear_layout_and_validation():
    params = jnn.Linear(7, 5).init(jax.random.key(0), jnp.zeros((1, 7)))["params"]
    assert params["weight"].shape == (5, 7) and params["bias"].shape == (5,)
    with pytest.raises(ValueError, match="in_features=7"):
        jnn.Linear(7, 5).init(jax.random.key(0), jnp.zeros((1, 6)))
    with pytest.raises(ValueError, match="out_features must be positive"):
        jnn.Linear(7, 0)


@pytest.mark.parametrize("start,end", [(1, -1), (0, 1), (2, 3), (-2, -1)])
def test_flatten_matches_torch(start, end):
    x = _x((2, 3, 4, 5))
    y = jnn.Flatten(start, end).apply({}, jnp.asarray(x))
    expected = torch.nn.Flatten(start, end)(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(np.asarray(y), expected)
