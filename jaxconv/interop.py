"""PyTorch state_dicts to Flax parameter pytrees and back.

jaxconv layers name and shape their parameters as PyTorch (``weight``,
``bias``, PyTorch's layouts) and their submodules by attribute name, so a
PyTorch key ``"conv1.weight"`` is the pytree path ``params["conv1"]["weight"]``
with no transposition:

    params = from_torch(torch_model.state_dict(), like=variables["params"])
    logits = model.apply({"params": params}, x)
    torch_model.load_state_dict(to_torch(params))

For NNX modules, `load_nnx` writes a state_dict into a module and `to_torch`
accepts the module (or ``nnx.state(module, nnx.Param)``) directly.
Values keep their dtype (bfloat16 included) and are copied exactly; 64-bit
values become 32-bit unless ``jax_enable_x64`` is set (JAX's own rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["flatten_params", "from_torch", "load_nnx", "to_torch", "unflatten_params"]


def _to_numpy(value: Any) -> np.ndarray:
    """A torch tensor / jax array / numpy array as a numpy array (bfloat16 kept)."""
    if type(value).__module__.startswith("torch"):
        import torch

        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(jnp.bfloat16)
        return t.numpy()
    return np.asarray(value)


def _numeric(value: np.ndarray, where: str, original: Any) -> np.ndarray:
    """``value`` if it holds numbers (bool, int, float, complex, bfloat16); else a TypeError naming ``where``."""
    if value.dtype == jnp.bfloat16 or value.dtype.kind in "biufc":
        return value
    raise TypeError(
        f"{where} must be an array of numbers (a torch tensor, numpy or jax array), "
        f"got {type(original).__name__} {original!r:.80}"
    )


def _key_str(key: Any) -> str:
    key = getattr(key, "key", getattr(key, "idx", key))  # jax tree path entries
    return str(key)


def flatten_params(params: Any, sep: str = ".") -> dict[str, Any]:
    """A nested mapping of arrays as ``{"conv1.weight": array, ...}`` (PyTorch's key order is kept).

    Accepts dicts, ``FrozenDict`` and NNX ``State``/modules (their ``nnx.Param``
    values); integer keys (NNX lists) become ``"0"``, ``"1"``, ...
    """
    params = _as_mapping(params)
    if not isinstance(params, Mapping):
        raise TypeError(
            "params must be a mapping of names to arrays (e.g. variables['params']), an nnx.State "
            f"or an NNX module, got {type(params).__name__} {params!r:.80}"
        )
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{prefix}{_key_str(k)}{sep}")
        else:
            flat[prefix[: -len(sep)]] = node

    walk(params, "")
    return flat


def unflatten_params(flat: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """``{"conv1.weight": v}`` as ``{"conv1": {"weight": v}}``."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(sep)
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"key {key!r} nests under a key that is itself a value")
        if leaf in node:
            raise ValueError(f"key {key!r} is both a value and a prefix of other keys")
        node[leaf] = value
    return tree


def _as_mapping(params: Any) -> Any:
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax is a dependency
        return params
    if isinstance(params, nnx.Module):
        return _in_attribute_order(nnx.to_pure_dict(nnx.state(params, nnx.Param)), params)
    if isinstance(params, nnx.State):
        params = nnx.to_pure_dict(params)
    return params


def _in_attribute_order(tree: Any, node: Any) -> Any:
    """``tree`` (nnx's state, keys sorted) in PyTorch's state_dict order: a module's own
    parameters first (``weight`` before ``bias``), then its submodules as their attributes
    were set (modules rebuilt by nnx transforms such as ``eval_shape`` list them sorted)."""
    if not isinstance(tree, Mapping):
        return tree
    names = list(range(len(node))) if isinstance(node, (list, tuple)) else list(getattr(node, "__dict__", {}))
    rank = {name: i for i, name in enumerate(names)} | {"weight": -2, "bias": -1}

    def order(key):
        return (isinstance(tree[key], Mapping), rank.get(key, len(rank)), str(key))

    out = {}
    for key in sorted(tree, key=order):
        child = node[key] if isinstance(node, (list, tuple)) else getattr(node, str(key), None)
        out[key] = _in_attribute_order(tree[key], child)
    return out


def from_torch(state_dict: Mapping[str, Any], like: Any = None) -> dict[str, Any]:
    """A PyTorch ``state_dict`` as a nested params pytree of jax arrays.

    ``state_dict`` maps ``"a.b.weight"`` to torch tensors or numpy arrays; the
    result is ``{"a": {"b": {"weight": array}}}``. With ``like`` (a params
    pytree such as ``model.init(...)["params"]``, an ``nnx.State`` or an NNX
    module), the keys and shapes must match it exactly, else a ``ValueError``
    lists the missing, unexpected and mis-shaped keys; the result then has
    ``like``'s structure (integer keys of NNX lists included) and its dtypes:
    values are cast as ``torch.nn.Module.load_state_dict`` copies them into the
    existing parameters (e.g. a float64 or int64 tensor into a float32 param).
    Without ``like`` each value keeps its own dtype.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    arrays = {str(k): _numeric(_to_numpy(v), f"state_dict[{str(k)!r}]", v) for k, v in state_dict.items()}
    if like is None:
        return unflatten_params({k: jax.device_put(v) for k, v in arrays.items()})

    like_map = _as_mapping(like)
    paths: dict[str, tuple] = {}

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, (*path, k))
        else:
            shape = node.shape if hasattr(node, "shape") else np.shape(node)
            dtype = getattr(node, "dtype", None)
            paths[".".join(_key_str(k) for k in path)] = (path, tuple(shape), dtype)

    walk(like_map, ())
    missing = [k for k in paths if k not in arrays]
    unexpected = [k for k in arrays if k not in paths]
    misshaped = [f"{k}: state_dict {tuple(arrays[k].shape)} vs expected {paths[k][1]}"
                 for k in paths if k in arrays and tuple(arrays[k].shape) != paths[k][1]]
    if missing or unexpected or misshaped:
        lines = ["state_dict does not match the parameters:"]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", misshaped)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items))
        if isinstance(like_map, Mapping) and "params" in like_map and not any(
                k.startswith("params.") for k in arrays):
            lines.append("  (like has a top-level 'params' collection: pass variables['params'])")
        raise ValueError("\n".join(lines))

    tree: dict[Any, Any] = {}
    for key in arrays:  # in state_dict order, so to_torch gives the keys back in that order
        path, _, dtype = paths[key]
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = jax.device_put(arrays[key] if dtype is None else arrays[key].astype(dtype))
    return tree


def to_torch(params: Any, as_numpy: bool = False) -> dict[str, Any]:
    """A params pytree (or NNX module / ``nnx.State``) as a flat PyTorch state_dict.

    Keys ``"conv1.weight"``; values torch tensors (copies), or numpy arrays
    with ``as_numpy=True`` or when torch is not installed. Load it with
    ``torch_model.load_state_dict(to_torch(params))``.
    """
    flat = {k: _numeric(np.array(_to_numpy(v)), f"params[{k!r}]", v) for k, v in flatten_params(params).items()}
    if as_numpy:
        return flat
    try:
        import torch
    except ImportError:
        return flat
    out = {}
    for k, v in flat.items():
        if v.dtype == jnp.bfloat16:
            out[k] = torch.from_numpy(v.view(np.int16)).view(torch.bfloat16)
        else:
            out[k] = torch.from_numpy(v)
    return out


def load_nnx(module: Any, state_dict: Mapping[str, Any]) -> Any:
    """Writes a PyTorch ``state_dict`` into the ``nnx.Param``s of an NNX ``module`` (in place).

    Keys and shapes are checked as in `from_torch`; returns ``module``.
    """
    from flax import nnx

    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, from_torch(state_dict, like=state))
    nnx.update(module, state)
    return module
