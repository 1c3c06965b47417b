"""XLA convolutions in the one layout XLA:CPU runs well everywhere, loop bodies included.

XLA:CPU runs a convolution on its fast (Eigen/YNNPACK) kernels only when its
operands are laid out batch-major, feature-minor (``(N, *spatial, C)`` input,
``(*spatial, I, O)`` kernel, ``(N, *spatial, O)`` output). In the entry
computation its layout passes insert the transposes; in the body of a
``lax.scan``/``fori_loop``/``while_loop`` or a ``lax.cond`` branch they do not,
and any other layout runs on a generic loop nest (jax-ml/jax#12868). Measured
(2-core CPU, jax 0.10.2; mnist conv2 32->64 3x3 26x26, batch 64, two calls):
``lax.map`` of the forward in NCHW 151 ms vs 21 unrolled; of the gradient
(whose weight-gradient convolution swaps batch and feature dims in any layout)
1,957 ms vs 38.

``conv_general_dilated`` here is ``lax.conv_general_dilated`` with the
transposes written out: operands moved to that layout, the convolution in
it, the output moved to the requested layout. Outside loops XLA would insert
the same transposes itself. It is a primitive whose derivative and batching
rules are JAX's own for ``conv_general_dilated`` (its transpose rules /
``jax.vmap`` of it), with every convolution they produce re-emitted the same
way, so gradients (of any order), forward mode and ``vmap`` stay in that
layout too and compute exactly what ``lax.conv_general_dilated`` computes.

One exception, on CPU: a convolution with an input (lhs) dilation whose kernel
is longer than the dilated input in some dim (an input gradient of a strided
conv on an input thinner than the kernel, or a weight gradient of a transposed
conv) makes XLA:CPU's algebraic simplifier abort the process (it swaps the
operands and mishandles the dilation; jax 0.10.2). Such inputs are dilated
explicitly (``lax.pad`` with interior padding) before the convolution: the
same products, rounded in a possibly different order.
"""

from __future__ import annotations

import functools
import inspect

import jax
from jax import lax
from jax._src import core as jax_core
from jax._src.lax import convolution as _lax_convolution
from jax.extend.core import Literal, Primitive
from jax.interpreters import ad, batching, mlir

conv_p = Primitive("jaxconv_conv_general_dilated")
# Parameters lax's conv primitive has in this JAX beyond the ones named below (JAX 0.10: out_sharding),
# so that conv_p's parameters are always lax's: its abstract eval and transpose rules take them as they are.
_LAX_EXTRA_PARAMS = {"out_sharding": None} if "out_sharding" in inspect.signature(lax.conv_general_dilated).parameters else {}


def conv_general_dilated(lhs, rhs, *, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """``lax.conv_general_dilated`` (explicit ``padding`` pairs), in the canonical layout."""
    nd = lhs.ndim - 2
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    lhs, rhs = match_varying_axes(lhs, rhs)
    return conv_p.bind(
        lhs, rhs, window_strides=tuple(window_strides), padding=tuple(tuple(p) for p in padding),
        lhs_dilation=tuple(lhs_dilation or (1,) * nd), rhs_dilation=tuple(rhs_dilation or (1,) * nd),
        dimension_numbers=dn, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type, **_LAX_EXTRA_PARAMS)


def _canonical(lhs, rhs, *, dimension_numbers, **params):
    """The convolution with operands and output transposed through the canonical layout."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    nd = len(lhs_spec) - 2
    spatial = tuple(range(1, nd + 1))
    x_NSC = lhs.transpose((lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    w_SIO = rhs.transpose((*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))
    canonical = lax.ConvDimensionNumbers((0, nd + 1, *spatial), (nd + 1, nd, *range(nd)), (0, nd + 1, *spatial))
    lhs_dilation = params["lhs_dilation"]
    if any(d > 1 for d in lhs_dilation) and any(
            (k - 1) * r + 1 > (n - 1) * d + 1
            for n, k, r, d in zip(x_NSC.shape[1:-1], w_SIO.shape[:-2], params["rhs_dilation"], lhs_dilation)):
        # See the module docstring: XLA:CPU would abort on this convolution.
        zero = lax.full((), 0, x_NSC.dtype)
        x_NSC = lax.pad(x_NSC, zero, [(0, 0, 0), *((0, 0, d - 1) for d in lhs_dilation), (0, 0, 0)])
        params = dict(params, lhs_dilation=(1,) * nd)
    y_NSO = lax.conv_general_dilated(x_NSC, w_SIO, dimension_numbers=canonical, **params)
    perm = [0] * (nd + 2)
    perm[out_spec[0]], perm[out_spec[1]] = 0, nd + 1
    for i, axis in enumerate(out_spec[2:]):
        perm[axis] = 1 + i
    return y_NSO.transpose(perm)


def match_varying_axes(lhs, rhs):
    """Inside ``jax.shard_map`` (``check_vma``), a device-invariant operand cast to the other's
    varying axes, as ``lax.conv_general_dilated`` does before it binds its primitive."""
    insert = getattr(jax_core, "auto_insert_reshard", None)
    return (lhs, rhs) if insert is None else tuple(insert(lhs, rhs))


def _abstract_eval(lhs, rhs, **params):
    # XLA's convolution's own rule: the same shape, dtype, sharding and varying mesh axes.
    out, _ = lax.conv_general_dilated_p.abstract_eval(lhs, rhs, **params)
    return out


def _reemit(fun):
    """``fun`` evaluated with each ``conv_general_dilated`` it traces to re-emitted through `conv_p`."""

    def run(*args):
        closed = jax.make_jaxpr(fun)(*args)
        return _eval(closed.jaxpr, closed.consts, *args)

    return run


def _eval(jaxpr, consts, *args):
    env = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    for v, val in zip(jaxpr.constvars, consts):
        env[v] = val
    for v, val in zip(jaxpr.invars, args):
        env[v] = val
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        if eqn.primitive is lax.conv_general_dilated_p:
            outvals = [conv_p.bind(*invals, **eqn.params)]
        else:
            params = eqn.primitive.get_bind_params(eqn.params)  # as jax.core.eval_jaxpr
            outvals = eqn.primitive.bind(*invals, **params)
            if not eqn.primitive.multiple_results:
                outvals = [outvals]
        for v, val in zip(eqn.outvars, outvals):
            env[v] = val
    return [read(v) for v in jaxpr.outvars]


def _lax_transpose(side: str, ct, lhs, rhs, params):
    """``lax``'s own transpose rule of ``conv_general_dilated`` for ``side`` ("lhs"/"rhs"; private
    in JAX 0.10, and it keeps ``jax.shard_map``'s varying-axes types), else ``jax.linear_transpose``."""
    rule = getattr(_lax_convolution, f"_conv_general_dilated_transpose_{side}", None)
    if rule is not None:
        return rule(ct, lhs, rhs, **params)
    linear = lhs if side == "lhs" else rhs
    conv = ((lambda a: lax.conv_general_dilated(a, rhs, **params)) if side == "lhs"
            else (lambda a: lax.conv_general_dilated(lhs, a, **params)))
    return jax.linear_transpose(conv, jax.ShapeDtypeStruct(linear.aval.shape, linear.aval.dtype))(ct)[0]


def _transpose_lhs(ct, lhs, rhs, **params):
    return _reemit(lambda ct, rhs: _lax_transpose("lhs", ct, lhs, rhs, params))(ct, rhs)[0]


def _transpose_rhs(ct, lhs, rhs, **params):
    return _reemit(lambda ct, lhs: _lax_transpose("rhs", ct, lhs, rhs, params))(ct, lhs)[0]


def _batch(args, dims, **params):
    in_axes = tuple(d if isinstance(d, int) else None for d in dims)
    return _reemit(jax.vmap(functools.partial(lax.conv_general_dilated, **params), in_axes=in_axes))(*args)[0], 0


conv_p.def_impl(_canonical)
conv_p.def_abstract_eval(_abstract_eval)
# The layout is XLA:CPU's requirement; other backends get lax's convolution as it is.
mlir.register_lowering(conv_p, mlir.lower_fun(lax.conv_general_dilated, multiple_results=False))
mlir.register_lowering(conv_p, mlir.lower_fun(_canonical, multiple_results=False), platform="cpu")
ad.defbilinear(conv_p, _transpose_lhs, _transpose_rhs)
batching.primitive_batchers[conv_p] = _batch
