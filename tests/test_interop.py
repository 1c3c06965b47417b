"""jaxconv.interop: PyTorch state_dicts <-> Flax params, exact round trips and clear mismatch errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")

from jaxconv import models  # noqa: E402
from jaxconv import nnx as jx  # noqa: E402
from jaxconv.interop import flatten_params, from_torch, load_nnx, to_torch, unflatten_params  # noqa: E402
from jaxconv.parity import torch_models  # noqa: E402


def _like(name):
    model = models.get(name)
    x = jnp.zeros((1, model.in_channels, model.input_size, model.input_size))
    return jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x))


def test_round_trip_is_exact_and_checked_against_like():
    torch.manual_seed(0)
    sd = torch_models.get("lenet5").state_dict()
    params = from_torch(sd, like=_like("lenet5")["params"])
    assert set(params) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    assert params["fc1"]["weight"].shape == (120, 256)  # torch layout, no transposition
    back = to_torch(params)
    assert list(back) == list(sd)
    for k, v in sd.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    torch_models.get("lenet5").load_state_dict(back)  # loads strictly


def test_without_like_nests_by_dots_and_accepts_numpy():
    sd = {"a.b.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "a.bias": np.ones(2, np.float32),
          "head.0.weight": np.zeros((1, 2), np.float32)}
    params = from_torch(sd)
    assert params["a"]["b"]["weight"].shape == (2, 3)
    assert isinstance(params["a"]["bias"], jax.Array)
    assert set(params["head"]) == {"0"}
    out = to_torch(params, as_numpy=True)
    assert isinstance(out["a.b.weight"], np.ndarray)
    assert set(out) == set(sd)
    for k in sd:
        np.testing.assert_array_equal(out[k], sd[k])
    assert flatten_params(unflatten_params(out)).keys() == out.keys()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_dtypes_survive_the_round_trip(dtype):
    torch.manual_seed(1)
    sd = {"w": torch.randn(3, 4).to(dtype), "b": torch.randn(4).to(dtype)}
    params = from_torch(sd)
    assert params["w"].dtype == jnp.dtype(str(dtype).removeprefix("torch."))
    back = to_torch(params)
    for k, v in sd.items():
        assert back[k].dtype == dtype and torch.equal(back[k], v)


def test_like_casts_to_its_dtypes_as_load_state_dict_does():
    torch.manual_seed(2)
    sd = {k: v.to(torch.float64) for k, v in torch_models.get("lenet5").state_dict().items()}
    sd["conv1.bias"] = torch.arange(6)  # int64
    params = from_torch(sd, like=_like("lenet5")["params"])
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    np.testing.assert_array_equal(params["conv1"]["bias"], np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(params["fc1"]["weight"], sd["fc1.weight"].numpy().astype(np.float32))


def test_mismatch_lists_missing_unexpected_and_misshaped_keys():
    torch.manual_seed(2)
    sd = dict(torch_models.get("convnet").state_dict())
    del sd["fc2.bias"]
    sd["fc3.weight"] = torch.zeros(3, 3)
    sd["conv1.weight"] = torch.zeros(10, 1, 3, 3)
    with pytest.raises(ValueError) as info:
        from_torch(sd, like=_like("convnet")["params"])
    msg = str(info.value)
    assert "missing keys (1): fc2.bias" in msg
    assert "unexpected keys (1): fc3.weight" in msg
    assert "conv1.weight: state_dict (10, 1, 3, 3) vs expected (10, 1, 5, 5)" in msg


def test_mismatch_hints_at_the_params_collection():
    sd = torch_models.get("cifar_cnn").state_dict()
    with pytest.raises(ValueError, match=r"pass variables\['params'\]"):
        from_torch(sd, like=_like("cifar_cnn"))


def test_loaded_weights_give_torch_outputs():
    torch.manual_seed(3)
    t_model = torch_models.get("cifar_cnn").eval()
    model = models.get("cifar_cnn")
    params = from_torch(t_model.state_dict(), like=_like("cifar_cnn")["params"])
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = jax.jit(model.apply)({"params": params}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), t_model(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_nnx_modules_and_lists():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = jx.Conv1d(2, 3, 3, rngs=rngs)
            self.heads = nnx.List([jx.Linear(3, 2, rngs=rngs), jx.Linear(2, 1, bias=False, rngs=rngs)])

    net = nnx.eval_shape(lambda: Net(nnx.Rngs(0)))
    rng = np.random.default_rng(0)
    sd = {"conv.weight": rng.standard_normal((3, 2, 3)).astype(np.float32),
          "conv.bias": rng.standard_normal(3).astype(np.float32),
          "heads.0.weight": rng.standard_normal((2, 3)).astype(np.float32),
          "heads.0.bias": rng.standard_normal(2).astype(np.float32),
          "heads.1.weight": rng.standard_normal((1, 2)).astype(np.float32)}
    load_nnx(net, sd)
    np.testing.assert_array_equal(np.asarray(net.heads[0].weight[...]), sd["heads.0.weight"])
    out = to_torch(net, as_numpy=True)
    assert list(out) == list(sd)  # PyTorch's order: attributes as defined, weight before bias
    for k in sd:
        np.testing.assert_array_equal(out[k], sd[k])
    assert set(to_torch(nnx.state(net, nnx.Param))) == set(sd)
    with pytest.raises(ValueError, match=r"missing keys \(1\): heads.1.weight"):
        load_nnx(net, {k: v for k, v in sd.items() if k != "heads.1.weight"})


def test_rejects_non_mapping():
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        from_torch([("a", np.zeros(1))])
