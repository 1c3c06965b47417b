"""Flax layers and seed models against their PyTorch twins: outputs, gradients, training.

`compare_module` runs one jaxconv layer and the PyTorch layer holding the
same weights on the same input, and returns the relative L2 errors of the
output and of the gradients w.r.t. the input and every parameter.

`check_model` loads a PyTorch twin's (default-initialised) weights into the
Flax model with `jaxconv.interop.from_torch`, then compares the logits, the
gradients of the cross-entropy loss, and ``steps`` steps of SGD with momentum
(``optax.sgd(lr, momentum)`` vs ``torch.optim.SGD(lr, momentum)``, the same
rule: ``buf = momentum*buf + grad; p -= lr*buf`` with ``buf`` starting at 0)
on the same random batches, dropout off (``train=False`` / ``eval()``).
`run` does it for every registered model (``python -m jaxconv.parity models``).

Everything runs at ``jax.default_matmul_precision("highest")``, in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.interop import flatten_params, from_torch
from jaxconv.parity.compare import rel_error

# Per-model tolerances of `check_model`'s four measures.
TOLERANCES = {"logits": 1e-5, "grad": 1e-5, "loss": 1e-4, "weights": 1e-4}


def _as_tuple(out: Any) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def compare_module(apply_fn: Callable[[Any, jax.Array], Any], params: Any, torch_module: Any,
                   x: np.ndarray, *, torch_call: Callable | None = None, seed: int = 0) -> dict[str, float]:
    """Relative errors of a Flax layer against ``torch_module`` on input ``x``.

    ``apply_fn(params, x)`` runs the Flax layer (e.g. ``lambda p, x:
    layer.apply({"params": p}, x)``), with ``params`` keyed as
    ``torch_module.state_dict()``. ``torch_call(module, x)`` replaces
    ``module(x)``. Returns ``forward`` (worst float output), ``grad_input`` and
    ``grad_params`` (worst parameter) for the loss ``sum(out * cotangent)``,
    and ``exact_mismatch`` (1.0 when an integer output such as pool indices differs).
    """
    import torch

    with jax.default_matmul_precision("highest"):
        xt = torch.tensor(x, requires_grad=True)
        t_out = _as_tuple((torch_call or (lambda m, v: m(v)))(torch_module, xt))
        floats = [i for i, o in enumerate(t_out) if o.is_floating_point()]
        rng = np.random.default_rng(seed)
        cts = {i: rng.standard_normal(tuple(t_out[i].shape)).astype(np.float32) for i in floats}
        named = dict(torch_module.named_parameters())
        names = [n for n, p in named.items() if p.requires_grad]
        t_grads = torch.autograd.grad([t_out[i] for i in floats], [xt, *(named[n] for n in names)],
                                      grad_outputs=[torch.tensor(cts[i]) for i in floats], allow_unused=True)

        def loss(p, v):
            out = _as_tuple(apply_fn(p, v))
            # a mis-shaped output is reported by its forward error (inf), not raised here
            return sum((jnp.sum(out[i] * cts[i]) for i in floats
                        if i < len(out) and out[i].shape == cts[i].shape), jnp.zeros((), jnp.float32)), out

        # One compiled function for outputs and gradients: compiling dominates small layers.
        (_, j_out), (gp, gx) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
            params, x)
        if len(t_out) != len(j_out):
            raise ValueError(f"torch returned {len(t_out)} outputs, jax {len(j_out)}")
        forward, mismatch = 0.0, 0.0
        for i, (jo, to) in enumerate(zip(j_out, t_out)):
            if i in cts:
                forward = max(forward, rel_error(jo, to.detach().numpy()))
            elif np.asarray(jo).shape != tuple(to.shape) or not np.array_equal(np.asarray(jo), to.numpy()):
                mismatch = 1.0
        grad_input = rel_error(gx, np.zeros_like(x) if t_grads[0] is None else t_grads[0].numpy())
        flat = flatten_params(gp)
        if sorted(flat) != sorted(names):
            raise ValueError(f"parameter names differ: jax {sorted(flat)} vs torch {sorted(names)}")
        grad_params = 0.0
        for n, tg in zip(names, t_grads[1:]):
            expected = np.zeros(tuple(named[n].shape), np.float32) if tg is None else tg.numpy()
            grad_params = max(grad_params, rel_error(flat[n], expected))
    return {"forward": forward, "grad_input": grad_input, "grad_params": grad_params,
            "exact_mismatch": mismatch}


def check_layer(layer: Any, torch_module: Any, x: np.ndarray, *, channels_last: bool = False,
                batched: bool = True, seed: int = 0, **call_kwargs: Any) -> dict[str, float]:
    """`compare_module` for a jaxconv layer (linen or NNX) given ``torch_module``'s weights.

    ``x`` is PyTorch's channels-first input; with ``channels_last`` the Flax
    layer gets (and returns) it with channels moved last (``batched=False``:
    ``x`` is ``(C, *spatial)``). ``call_kwargs`` go
    to both calls (e.g. ``output_size``).
    """
    from flax import nnx

    from jaxconv.interop import load_nnx

    state_dict = torch_module.state_dict()
    if channels_last:
        axis = 1 if batched else 0

        def to_layer(v):
            return jnp.moveaxis(v, axis, -1)

        def from_layer(v):
            return jnp.moveaxis(v, -1, axis)
    else:
        def to_layer(v):
            return v

        from_layer = to_layer

    def outputs(y):
        return tuple(from_layer(o) for o in y) if isinstance(y, tuple) else from_layer(y)

    if isinstance(layer, nnx.Module):
        load_nnx(layer, state_dict)
        graphdef, params = nnx.split(layer)

        def apply_fn(p, v):
            return outputs(nnx.merge(graphdef, p)(to_layer(v), **call_kwargs))
    else:
        init = jax.eval_shape(lambda: layer.init(jax.random.key(0), to_layer(jnp.asarray(x)), **call_kwargs))
        params = from_torch(state_dict, like=init.get("params", {}))

        def apply_fn(p, v):
            return outputs(layer.apply({"params": p}, to_layer(v), **call_kwargs))

    return compare_module(apply_fn, params, torch_module, x,
                          torch_call=lambda m, v: m(v, **call_kwargs), seed=seed)


def _input_shape(model: Any, batch: int) -> tuple[int, int, int, int]:
    return (batch, model.in_channels, model.input_size, model.input_size)


def check_model(name: str, seed: int = 0, *, steps: int = 20, batch: int = 8, lr: float = 0.01,
                momentum: float = 0.9, channels_last: bool | None = None, **model_kwargs: Any) -> dict[str, Any]:
    """Compares ``jaxconv.models.get(name)`` with its PyTorch twin (see the module docstring).

    ``channels_last``: the jaxconv model's internal layout (None: its default);
    ``model_kwargs`` go to both models.

    Returns ``model``, ``logits`` (rel. error), ``grad`` (worst rel. error over
    the parameters' loss gradients), ``loss`` (max over the ``steps`` SGD
    steps of ``|loss_jax - loss_torch| / |loss_torch|``), ``weights`` (worst
    rel. error of the parameters after the last step), ``steps`` and ``ok``
    (every measure within `TOLERANCES`).
    """
    import optax
    import torch
    import torch.nn.functional as tF

    from jaxconv import models
    from jaxconv.parity import torch_models

    with jax.default_matmul_precision("highest"):
        torch.manual_seed(seed)
        t_model = torch_models.get(name, **model_kwargs).eval()
        layout = {} if channels_last is None else {"channels_last": channels_last}
        j_model = models.get(name, **model_kwargs, **layout)
        rng = np.random.default_rng(seed)
        shape = _input_shape(j_model, batch)
        num_classes = j_model.num_classes

        def draw() -> tuple[np.ndarray, np.ndarray]:
            return (rng.standard_normal(shape).astype(np.float32),
                    rng.integers(0, num_classes, size=batch).astype(np.int64))

        batches = [draw() for _ in range(max(steps, 1))]
        like = jax.eval_shape(lambda: j_model.init(
            {"params": jax.random.key(seed), "dropout": jax.random.key(seed + 1)},
            jnp.asarray(batches[0][0]), train=False))["params"]
        params = from_torch(t_model.state_dict(), like=like)
        opt = optax.sgd(lr, momentum=momentum)
        t_opt = torch.optim.SGD(t_model.parameters(), lr=lr, momentum=momentum)

        def loss_fn(p, xb, yb):
            logits = j_model.apply({"params": p}, xb, train=False)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), logits

        @jax.jit
        def step(p, state, xb, yb):
            (loss, logits), g = jax.value_and_grad(loss_fn, has_aux=True)(p, xb, yb)
            updates, state = opt.update(g, state, p)
            return optax.apply_updates(p, updates), state, loss, logits, g

        # The first step's logits and gradients (at the loaded weights) are the
        # logits/grad measures; with steps=0 they are computed and no update is kept.
        state = jax.jit(opt.init)(params)
        loss_diff = 0.0
        for i, (xb, yb) in enumerate(batches):
            new_params, state, j_loss, j_logits, j_grads = step(params, state, xb, yb)
            t_opt.zero_grad()
            t_logits = t_model(torch.tensor(xb))
            t_loss = tF.cross_entropy(t_logits, torch.tensor(yb))
            t_loss.backward()
            if i == 0:
                logits_err = rel_error(j_logits, t_logits.detach().numpy())
                flat_grads = flatten_params(j_grads)
                grad_err = max(rel_error(flat_grads[n], p.grad.numpy()) for n, p in t_model.named_parameters())
            if steps == 0:
                break
            params = new_params
            t_opt.step()
            t_val = float(t_loss.item())
            loss_diff = max(loss_diff, abs(float(j_loss) - t_val) / max(abs(t_val), 1e-30))
        flat_params = flatten_params(params)
        weights_err = max(rel_error(flat_params[n], p.detach().numpy()) for n, p in t_model.named_parameters())

    result = {"model": name, "logits": logits_err, "grad": grad_err, "loss": loss_diff,
              "weights": weights_err, "steps": steps}
    result["ok"] = all(result[k] <= tol for k, tol in TOLERANCES.items())
    return result


def run(seed: int = 0) -> list[dict[str, Any]]:
    """`check_model` (20 SGD-momentum steps) for every model in ``jaxconv.models``."""
    from jaxconv import models

    return [check_model(name, seed) for name in models.names()]
