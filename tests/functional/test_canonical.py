"""`_canonical.conv_general_dilated`: bit-identical to lax's in every transformation, and
laid out so that XLA:CPU keeps convolutions on its fast kernels inside loop bodies."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax import lax

import jaxconv.functional as F
from jaxconv.functional import _canonical

CASES = [
    ((2, 3, 9, 10), (4, 3, 3, 2), dict(window_strides=(2, 1), padding=((1, 0), (2, 1)), rhs_dilation=(1, 2),
                                       dimension_numbers=("NCHW", "OIHW", "NCHW"))),
    ((2, 9, 10, 4), (3, 3, 2, 6), dict(window_strides=(1, 1), padding=((1, 1), (1, 1)), feature_group_count=2,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))),
    ((2, 9, 10, 4), (6, 2, 3, 3), dict(window_strides=(1, 2), padding=((1, 1), (0, 1)), lhs_dilation=(2, 1),
                                       feature_group_count=2, dimension_numbers=("NHWC", "OIHW", "NCHW"))),
    ((2, 4, 11), (6, 2, 3), dict(window_strides=(2,), padding=((1, 1),), feature_group_count=2,
                                 dimension_numbers=("NCH", "OIH", "NCH"))),
    ((2, 2, 5, 6, 7), (4, 2, 2, 3, 2), dict(window_strides=(1, 2, 1), padding=((1, 0), (0, 1), (1, 1)),
                                            dimension_numbers=("NCDHW", "OIDHW", "NCDHW"))),
    ((4, 4, 7, 7), (4, 1, 3, 3), dict(window_strides=(1, 1), padding=((0, 0), (0, 0)), feature_group_count=4,
                                      dimension_numbers=("NCHW", "OIHW", "NCHW"))),
    ((4, 3, 6, 6), (4, 3, 2, 2), dict(window_strides=(1, 1), padding=((0, 0), (0, 0)), batch_group_count=2,
                                      dimension_numbers=("NCHW", "OIHW", "NCHW"))),
]


@pytest.mark.parametrize("x_shape, w_shape, params", CASES)
def test_bit_identical_to_lax_forward_backward_jvp_hessian_vmap(x_shape, w_shape, params):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
    w = jnp.asarray(rng.standard_normal(w_shape), jnp.float32)
    plain = lambda x, w: lax.conv_general_dilated(x, w, **params)  # noqa: E731
    canon = lambda x, w: _canonical.conv_general_dilated(x, w, **params)  # noqa: E731

    def same(a, b):
        jax.tree.map(np.testing.assert_array_equal, a, b)

    y = plain(x, w)
    same(jax.jit(canon)(x, w), y)
    same(canon(x, w), y)  # eager
    ct = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
    same(jax.jit(lambda x, w: jax.vjp(canon, x, w)[1](ct))(x, w), jax.vjp(plain, x, w)[1](ct))
    same(jax.jvp(canon, (x, w), (0.3 * x, 0.7 * w)), jax.jvp(plain, (x, w), (0.3 * x, 0.7 * w)))

    # Rounding only: a second-order convolution whose kernel outgrows its dilated input is
    # computed on the explicitly dilated input (`_canonical._canonical`).
    np.testing.assert_allclose(jax.jit(lambda w: _second_order(canon, x, w))(w), _second_order(plain, x, w),
                               rtol=1e-5, atol=1e-6)
    xs = jnp.stack([x, 2 * x])
    same(jax.jit(jax.vmap(canon, (0, None)))(xs, w), jax.vmap(plain, (0, None))(xs, w))


def _second_order(f, x, w):
    """d/dw of |d/dx sum(f(x, w)^2)|^2: reverse over reverse."""
    return jax.grad(lambda w: jnp.sum(jax.grad(lambda x: jnp.sum(f(x, w) ** 2))(x) ** 2))(w)


def _conv_layouts(fn, *args) -> list[str]:
    hlo = jax.jit(fn).lower(*args).compile().as_text()
    return re.findall(r"convolution\(.*dim_labels=(\S+?),", hlo)


def test_convolutions_in_a_scan_body_keep_the_canonical_layout():
    """Every convolution of a gradient inside `lax.scan` is batch-major, feature-minor (the layout
    XLA:CPU runs on Eigen); plain lax's weight gradient there swaps batch and feature dims."""
    x = jnp.ones((2, 4, 8, 6, 6))
    w = jnp.ones((6, 8, 3, 3))

    def scanned(conv):
        def grads(x, w):
            return lax.map(lambda xi: jax.grad(lambda w: jnp.sum(conv(xi, w) ** 2))(w), x)
        return grads

    for impl in ("lax", "eigen", "auto"):
        layouts = _conv_layouts(scanned(lambda x, w, impl=impl: F.conv2d(x, w, padding=1, impl=impl)), x, w)
        assert layouts and all(lbl == "b01f_01io->b01f" for lbl in layouts), (impl, layouts)
    # the check can fail: lax's own convolution in the loop body is not canonical
    plain = scanned(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1))))
    assert any(lbl != "b01f_01io->b01f" for lbl in _conv_layouts(plain, x, w))


@pytest.mark.parametrize("impl", ["auto", "lax", "lax/autodiff/eigen", "lax/lax/lax"])
def test_kernel_taller_than_a_dilated_input_compiles_and_matches_torch(impl):
    """Input gradients of strided convs whose kernel outgrows the input (here H: 1 row, k=3,
    padding 1) used to abort the process in XLA:CPU's algebraic simplifier (jax 0.10.2);
    `_canonical` dilates such inputs itself."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 1, 6)), rng.standard_normal((4, 4, 3, 2))
    kw = dict(stride=(1, 2), padding=1)
    gx, gw = jax.grad(lambda x, w: jnp.sum(F.conv2d(x, w, **kw, impl=impl) ** 2), (0, 1))(
        jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (torch.nn.functional.conv2d(xt, wt, **kw) ** 2).sum().backward()
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(gw), wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    x, w = rng.standard_normal((1, 2, 1, 3)), rng.standard_normal((2, 1, 3, 2))
    kw = dict(stride=(3, 2), padding=1, output_padding=(2, 0), groups=2)
    gw = jax.grad(lambda w: jnp.sum(F.conv_transpose2d(jnp.asarray(x, jnp.float32), w, **kw, impl=impl) ** 2))(
        jnp.asarray(w, jnp.float32))
    wt = torch.tensor(w, requires_grad=True)
    (torch.nn.functional.conv_transpose2d(torch.tensor(x), wt, **kw) ** 2).sum().backward()
    np.testing.assert_allclose(np.asarray(gw), wt.grad.numpy(), rtol=1e-4, atol=1e-4)


_SHARD_MAP_SCRIPT = r"""
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, PartitionSpec as P
import jaxconv.functional as F
mesh = Mesh(np.array(jax.devices()), ("b",))
rng = np.random.default_rng(0)
x32, x6 = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in [(4, 32, 7, 6), (4, 6, 12, 12)])
calls = [  # (name, x, weight shape, call): auto's custom rules (eigen, shift's scan, toeplitz), subpixel, lax
    ("conv2d", x32, (20, 32, 3, 3), lambda x, w: F.conv2d(x, w, padding=1)),
    ("conv2d lax", x32, (20, 32, 3, 3), lambda x, w: F.conv2d(x, w, impl="lax")),
    ("depthwise", x32, (32, 1, 3, 3), lambda x, w: F.conv2d(x, w, groups=32)),
    ("few channels", x6, (16, 6, 5, 5), lambda x, w: F.conv2d(x, w)),
    ("conv_transpose2d", x32, (32, 20, 4, 4), lambda x, w: F.conv_transpose2d(x, w, stride=2, output_padding=1)),
    ("conv_transpose2d g4", x32, (32, 5, 4, 4), lambda x, w: F.conv_transpose2d(x, w, stride=2, groups=4)),
]
for name, x, w_shape, f in calls:
    w = jnp.asarray(rng.standard_normal(w_shape), jnp.float32)
    sharded = lambda g, out: jax.jit(jax.shard_map(g, mesh=mesh, in_specs=(P("b"), P()), out_specs=out))
    for got, want in [(sharded(f, P("b"))(x, w), f(x, w)),
                      *zip(sharded(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1)), (P("b"), P()))(x, w),
                           jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1))(x, w))]:
        assert float(jnp.abs(got - want).max()) <= 1e-5 * float(jnp.abs(want).max()), name
print("ok")
"""


def test_shard_map_forward_and_gradients():
    """Inside jax.shard_map (default check_vma), convolutions and their custom gradient rules
    type-check and match the unsharded call: the re-emitted convolution has XLA's output type
    (varying mesh axes included) and lax's transposes, and a replicated weight is cast to the
    input's varying axes before the rules run, so JAX sums its cotangent over the mesh."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SHARD_MAP_SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
