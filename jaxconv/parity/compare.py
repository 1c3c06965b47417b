"""Compare one call of a jaxconv op with the same call in PyTorch, forward and backward.

A `Case` holds the float inputs (numpy) and two functions taking them
positionally: the jaxconv call and the PyTorch call. `compare` runs both,
returns the relative L2 error of every float output and of the gradient of
``sum(outputs * cotangent)`` w.r.t. every input, and checks integer outputs
(max-pool indices) for exact equality.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class Case:
    op: str                      # public op name, e.g. "conv2d"
    desc: str                    # the call's hyperparameters, for reports
    inputs: dict[str, np.ndarray]  # float inputs by argument name, in call order
    jax_fn: Callable[..., Any]   # (*inputs as jax arrays) -> array or tuple of arrays
    torch_fn: Callable[..., Any]  # (*inputs as torch tensors) -> tensor or tuple
    grad: bool = True            # compare gradients too
    impl: str = "-"              # conv implementation, "-" for ops without one


@dataclasses.dataclass
class Result:
    case: Case
    forward: float               # worst relative L2 error over float outputs
    gradient: float              # worst relative L2 error over input gradients (0 if not compared)
    exact_mismatch: bool         # an integer output (indices) differs

    def ok(self, rtol: float) -> bool:
        return self.forward <= rtol and self.gradient <= rtol and not self.exact_mismatch


def rel_error(actual: Any, expected: Any) -> float:
    """||actual - expected||_2 / ||expected||_2 in float64 (0 when both are 0)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return float("inf")
    finite = np.isfinite(e)
    if not (finite.all() and np.isfinite(a).all()):
        # Non-finite entries must agree exactly (NaN for NaN, the same infinities); the rest is compared.
        same_nan = np.array_equal(np.isnan(a), np.isnan(e))
        inf = np.isinf(e)
        if not (same_nan and np.array_equal(np.isinf(a), inf) and np.array_equal(a[inf], e[inf])):
            return float("inf")
        a, e = a[finite], e[finite]
    denom = np.linalg.norm(e)
    num = np.linalg.norm(a - e)
    if denom == 0:
        return float(num)
    return float(num / denom)


def _as_tuple(out: Any) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _is_float(a: Any) -> bool:
    return np.issubdtype(np.asarray(a).dtype, np.floating)


def compare(case: Case, seed: int = 0) -> Result:
    import torch

    names = list(case.inputs)
    arrays = [case.inputs[n] for n in names]

    t_in = [torch.tensor(a, requires_grad=case.grad) for a in arrays]
    t_out = _as_tuple(case.torch_fn(*t_in))
    t_float = [o for o in t_out if o.is_floating_point()]

    def jfn(*xs):
        return _as_tuple(case.jax_fn(*xs))

    j_in = [jnp.asarray(a) for a in arrays]
    rng = np.random.default_rng(seed)
    cts = [rng.standard_normal(o.shape).astype(np.asarray(o.detach()).dtype) for o in t_float]

    def jloss(*xs):
        outs = jfn(*xs)
        floats = [o for o in outs if jnp.issubdtype(o.dtype, jnp.floating)]
        return sum((jnp.sum(o * c) for o, c in zip(floats, cts)), jnp.float32(0)), outs

    # One compilation gives the outputs and, through the cotangents, the input gradients.
    argnums = tuple(range(len(j_in)))
    if case.grad:
        (_, j_out), j_grads = jax.jit(jax.value_and_grad(jloss, argnums, has_aux=True))(*j_in)
    else:
        j_out = jax.jit(jfn)(*j_in)
    if len(j_out) != len(t_out):
        return Result(case, float("inf"), float("inf"), True)
    forward = 0.0
    exact_mismatch = False
    for jo, to in zip(j_out, t_out):
        tn = to.detach().numpy()
        if _is_float(tn):
            forward = max(forward, rel_error(jo, tn))
        else:
            exact_mismatch |= np.asarray(jo).shape != tn.shape or not np.array_equal(np.asarray(jo), tn)

    gradient = 0.0
    if case.grad:
        t_grads = torch.autograd.grad(
            t_float, t_in, grad_outputs=[torch.tensor(c) for c in cts], allow_unused=True)
        for jg, tg, a in zip(j_grads, t_grads, arrays):
            expected = np.zeros_like(a) if tg is None else tg.numpy()
            gradient = max(gradient, rel_error(jg, expected))
    return Result(case, forward, gradient, exact_mismatch)
