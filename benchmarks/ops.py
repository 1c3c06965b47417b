"""Per-op timings: jaxconv conv ops (per impl / plan) vs PyTorch eager and ``flax.linen.Conv``.

    python -m benchmarks.ops            # default shapes, writes BENCHMARKS.md section "ops"
    python -m benchmarks.ops --quick    # fewer rounds, mnist shapes only
    python -m benchmarks.ops --rules    # per-direction table (forward, input grad, weight grad
                                        # per rule) that backs _dispatch's decision table
    python -m benchmarks.ops --channels-last   # both frameworks on channels-last data

With ``--channels-last`` jaxconv's ops take ``(N, *spatial, C)`` data
(``channels_last=True``) and PyTorch's 2D ops take ``torch.channels_last``
tensors (oneDNN's native layout; PyTorch has no channels-last 1D tensors, so its
1D ops stay contiguous); it writes its own section. The default measures what a
port gets without changing layouts: NCHW data, which XLA:CPU transposes around
each convolution.

"fwd+bwd" is one jitted call returning ``y`` and the gradients of ``sum(y * dy)``
w.r.t. input and weight (PyTorch: forward + ``autograd.grad``). Numbers in the tables
are speedups over PyTorch measured in the same run (>1: faster than PyTorch).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxconv import functional as F


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    op: str                  # jaxconv / torch.nn.functional name
    x: tuple[int, ...]       # NCHW input
    w: tuple[int, ...]       # PyTorch weight layout
    kw: tuple = ()           # keyword arguments, as (name, value) pairs

    @property
    def kwargs(self) -> dict:
        return dict(self.kw)


SHAPES = [
    Shape("mnist conv1 1->32 3x3 b128", "conv2d", (128, 1, 28, 28), (32, 1, 3, 3)),
    Shape("mnist conv2 32->64 3x3 b128", "conv2d", (128, 32, 26, 26), (64, 32, 3, 3)),
    Shape("5x5 32->64 p2 32x32 b32", "conv2d", (32, 32, 32, 32), (64, 32, 5, 5), (("padding", 2),)),
    Shape("1x1 64->128 32x32 b32", "conv2d", (32, 64, 32, 32), (128, 64, 1, 1)),
    Shape("3x3 s2 64->128 32x32 b32", "conv2d", (32, 64, 32, 32), (128, 64, 3, 3),
          (("stride", 2), ("padding", 1))),
    Shape("3x3 g4 64->64 32x32 b32", "conv2d", (32, 64, 32, 32), (64, 16, 3, 3),
          (("padding", 1), ("groups", 4))),
    Shape("depthwise 3x3 64 32x32 b32", "conv2d", (32, 64, 32, 32), (64, 1, 3, 3),
          (("padding", 1), ("groups", 64))),
    Shape("transposed 4x4 s2 64->32 16x16 b32", "conv_transpose2d", (32, 64, 16, 16), (64, 32, 4, 4),
          (("stride", 2), ("padding", 1))),
    Shape("transposed 4x4 s2 g4 64->64 16x16 b32", "conv_transpose2d", (32, 64, 16, 16), (64, 16, 4, 4),
          (("stride", 2), ("padding", 1), ("groups", 4))),
    Shape("conv1d k5 64->64 L256 b32", "conv1d", (32, 64, 256), (64, 64, 5), (("padding", 2),)),
    Shape("conv1d k5 g4 64->64 L256 b32", "conv1d", (32, 64, 256), (64, 16, 5),
          (("padding", 2), ("groups", 4))),
    Shape("conv1d k11 2->32 L4000 b16", "conv1d", (16, 2, 4000), (32, 2, 11), (("padding", 5),)),
    Shape("transposed 3x3 s1 16->32 32x32 b16", "conv_transpose2d", (16, 16, 32, 32), (16, 32, 3, 3),
          (("padding", 1),)),
]


def arrays(shape: Shape, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape.x, dtype=np.float32)
    w = (rng.standard_normal(shape.w) / np.sqrt(np.prod(shape.w[1:]))).astype(np.float32)
    y = getattr(F, shape.op)(x, w, **shape.kwargs, impl="lax")
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    return x, w, dy


def _output_and_grads(f, dy, *args):
    """``f(*args)`` and the gradients of ``sum(f(*args) * dy)``, as PyTorch's forward +
    ``autograd.grad``. Returning only the gradients would let XLA drop the forward
    convolution, whose output those gradients do not read."""
    y, vjp = jax.vjp(f, *args)
    return y, vjp(dy)


def channels_last(a):
    """An ``(N, C, *spatial)`` array as ``(N, *spatial, C)``."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def jax_fns(shape: Shape, impl: str, cl: bool = False):
    """Jitted forward, fwd+bwd, input-grad-only and weight-grad-only calls for ``impl``;
    ``cl``: the data channels-last."""
    op = getattr(F, shape.op)
    kw = shape.kwargs

    def f(x, w):
        return op(x, w, **kw, impl=impl, channels_last=cl)

    fwd = jax.jit(f)
    both = jax.jit(lambda x, w, dy: _output_and_grads(f, dy, x, w))
    dx = jax.jit(lambda x, w, dy: jax.vjp(lambda x_: f(x_, w), x)[1](dy)[0])
    dw = jax.jit(lambda x, w, dy: jax.vjp(lambda w_: f(x, w_), w)[1](dy)[0])
    return fwd, both, dx, dw


def torch_fns(shape: Shape, x, w, dy, cl: bool = False):
    """``cl``: 2D data and weights in ``torch.channels_last`` memory format."""
    import torch
    import torch.nn.functional as tF

    op = getattr(tF, shape.op)
    kw = shape.kwargs
    fmt = torch.channels_last if cl and len(shape.x) == 4 else torch.contiguous_format
    tx = torch.tensor(x).to(memory_format=fmt).requires_grad_()
    tw = torch.tensor(w).to(memory_format=fmt).requires_grad_()
    tdy = torch.tensor(dy).to(memory_format=fmt)

    def fwd():
        with torch.no_grad():
            return op(tx, tw, **kw)

    def both():
        return torch.autograd.grad(op(tx, tw, **kw), (tx, tw), tdy)

    return fwd, both


def flax_fns(shape: Shape, x, w, dy):
    """``flax.linen.Conv`` in its native channels-last layout (None for transposed convs)."""
    if shape.op.startswith("conv_transpose"):
        return None
    import flax.linen as nn

    nd = len(shape.x) - 2
    kw = shape.kwargs
    pad = kw.get("padding", 0)
    conv = nn.Conv(shape.w[0], shape.w[2:], strides=kw.get("stride", 1), padding=[(pad, pad)] * nd,
                   feature_group_count=kw.get("groups", 1), use_bias=False)
    x_cl = jnp.asarray(channels_last(x))
    dy_cl = jnp.asarray(channels_last(dy))
    params = {"params": {"kernel": jnp.asarray(np.moveaxis(w, (0, 1), (-1, -2)))}}
    fwd = jax.jit(lambda p, x_: conv.apply(p, x_))
    both = jax.jit(lambda p, x_, d: _output_and_grads(conv.apply, d, p, x_))
    return (fwd, (params, x_cl)), (both, (params, x_cl, dy_cl))


def _ratio(t: dict, key: str, ref: str) -> str:
    return f"{t[ref] / t[key]:.2f}x" if key in t else "-"


def ms(t: float) -> str:
    return f"{t * 1e3:.1f}"


def speed_table(shapes, impls, rounds: int, cl: bool = False) -> str:
    head = ["shape", "torch fwd ms"] + [f"{i} fwd" for i in impls] + ["flax fwd", "torch fwd+bwd ms"] + \
        [f"{i} fwd+bwd" for i in impls] + ["flax fwd+bwd"]
    rows = []
    for shape in shapes:
        x, w, dy = arrays(shape)
        jx, jw, jdy = map(jnp.asarray, (channels_last(x), w, channels_last(dy)) if cl else (x, w, dy))
        t_fwd, t_both = torch_fns(shape, x, w, dy, cl)
        cands = {"torch fwd": (t_fwd, ()), "torch both": (t_both, ())}
        for impl in impls:
            fwd, both, _, _ = jax_fns(shape, impl, cl)
            cands[f"{impl} fwd"] = (fwd, (jx, jw))
            cands[f"{impl} both"] = (both, (jx, jw, jdy))
        fl = flax_fns(shape, x, w, dy)
        if fl is not None:
            cands["flax fwd"], cands["flax both"] = fl
        t = common.interleaved(cands, rounds=rounds)
        ratio = functools.partial(_ratio, t)
        rows.append([shape.name, ms(t["torch fwd"])] + [ratio(f"{i} fwd", "torch fwd") for i in impls]
                    + [ratio("flax fwd", "torch fwd"), ms(t["torch both"])]
                    + [ratio(f"{i} both", "torch both") for i in impls] + [ratio("flax both", "torch both")])
        print(rows[-1], flush=True)
    return common.table(head, rows)


def rules_table(shapes, plans, rounds: int) -> str:
    """Milliseconds per direction per plan (the measurements behind ``impl="auto"``)."""
    head = ["shape"] + [f"{p} {d}" for p in plans for d in ("fwd", "dx", "dw")]
    rows = []
    for shape in shapes:
        x, w, dy = map(jnp.asarray, arrays(shape))
        cands = {}
        for p in plans:
            fwd, _, dx, dw = jax_fns(shape, p)
            cands[f"{p} fwd"] = (fwd, (x, w))
            cands[f"{p} dx"] = (dx, (x, w, dy))
            cands[f"{p} dw"] = (dw, (x, w, dy))
        t = common.interleaved(cands, rounds=rounds)
        rows.append([shape.name] + [ms(t[f"{p} {d}"]) for p in plans for d in ("fwd", "dx", "dw")])
        print(rows[-1], flush=True)
    return common.table(head, rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="mnist shapes only, 3 rounds")
    ap.add_argument("--rules", action="store_true", help="per-direction table of the gradient rules")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--impls", default="lax,auto,im2col")
    ap.add_argument("--plans", default="lax,eigen,lax/lax/gemm,eigen/autodiff/gemm")
    ap.add_argument("--only", default=None, help="comma-separated substrings of shape names")
    ap.add_argument("--channels-last", action="store_true",
                    help="channels-last data for both frameworks (its own BENCHMARKS.md section)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    if args.rules and args.channels_last:
        ap.error("--channels-last applies to the speed table; --rules measures channels-first data only")
    shapes = SHAPES[:2] if args.quick else SHAPES
    if args.only:
        shapes = [s for s in SHAPES if any(o in s.name for o in args.only.split(","))]
    rounds = args.rounds or (3 if args.quick else 5)
    if args.rules:
        body = common.header("Gradient rules per direction (ms, median; lower is better)")
        body += "\n" + rules_table(shapes, args.plans.split(","), rounds)
        section = "rules"
    else:
        layout = ", channels-last data" if args.channels_last else ""
        body = common.header(f"Conv ops{layout}: speedup over PyTorch eager, same run (>1x = faster)")
        body += "\n" + speed_table(shapes, args.impls.split(","), rounds, args.channels_last)
        section = "ops-channels-last" if args.channels_last else "ops"
    print(body)
    if not args.no_write:
        common.write_section(section + ("-quick" if args.quick else ""), body)


if __name__ == "__main__":
    main()
