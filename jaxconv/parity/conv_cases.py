"""Seeded random valid configurations of the conv ops, as parity `Case`s."""

from __future__ import annotations

import functools

import numpy as np

from jaxconv import functional as F
from jaxconv.parity.compare import Case


def _torch_channels_last(fn, nd, channels_last):
    """Wraps a torch conv so it takes/returns channels-last arrays when asked."""
    if not channels_last:
        return fn

    def wrapped(x, *rest):
        import torch
        batched = x.dim() == nd + 2
        perm_in = (0, x.dim() - 1, *range(1, x.dim() - 1)) if batched else (x.dim() - 1, *range(x.dim() - 1))
        y = fn(x.permute(*perm_in), *rest)
        perm_out = (0, *range(2, y.dim()), 1) if batched else (*range(1, y.dim()), 0)
        del torch
        return y.permute(*perm_out)

    return wrapped


def conv_case(rng: np.random.Generator, nd: int, impl: str, *, transposed: bool,
              max_stride: int = 3, max_dilation: int = 3, max_kernel: int | None = None,
              grouped: bool = True) -> Case:
    """One random valid (transposed) convolution call (kernel sides up to ``max_kernel``,
    default 4, 3 in 3D; ``groups`` 1, or 1-3 with ``grouped``)."""
    import_torch = _torch_op(nd, transposed)
    groups = int(rng.choice([1, 1, 2, 3])) if grouped else 1
    cin = groups * int(rng.integers(1, 4))
    cout = groups * int(rng.integers(1, 4))
    kernel = tuple(int(k) for k in rng.integers(1, (max_kernel or (4 if nd < 3 else 3)) + 1, size=nd))
    stride = tuple(int(s) for s in rng.integers(1, max_stride + 1, size=nd))
    dilation = tuple(int(d) for d in rng.integers(1, max_dilation + 1, size=nd))
    batched = bool(rng.random() < 0.85)
    channels_last = bool(rng.random() < 0.25)
    bias = bool(rng.random() < 0.7)
    n = int(rng.integers(1, 3))
    kw: dict = {}
    if transposed:
        padding = tuple(int(rng.integers(0, d * (k - 1) + 2)) for k, d in zip(kernel, dilation))
        output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        size = []
        for k, s, d, p, op in zip(kernel, stride, dilation, padding, output_padding):
            lo = 1
            while (lo - 1) * s - 2 * p + d * (k - 1) + op + 1 < 1:
                lo += 1
            size.append(int(rng.integers(lo, lo + 6)))
        kw = dict(stride=stride, padding=padding, output_padding=output_padding,
                  groups=groups, dilation=dilation)
        w_shape = (cin, cout // groups, *kernel)
    else:
        mode = rng.choice(["int", "tuple", "same", "valid"])
        if mode == "same":
            stride = (1,) * nd
        padding = {"int": int(rng.integers(0, 3)),
                   "tuple": tuple(int(p) for p in rng.integers(0, 3, size=nd)),
                   "same": "same", "valid": "valid"}[mode]
        pads = (padding,) * nd if isinstance(padding, int) else (
            padding if isinstance(padding, tuple) else (0,) * nd)
        size = []
        for k, d, p in zip(kernel, dilation, pads):
            need = max(1, d * (k - 1) + 1 - (2 * p if mode != "same" else d * (k - 1)))
            size.append(int(rng.integers(need, need + 7)))
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        w_shape = (cout, cin // groups, *kernel)
    x_shape = (cin, *size) if not channels_last else (*size, cin)
    if batched:
        x_shape = (n, *x_shape)
    inputs = {
        "input": rng.standard_normal(x_shape).astype(np.float32),
        "weight": rng.standard_normal(w_shape).astype(np.float32),
    }
    if bias:
        inputs["bias"] = rng.standard_normal(cout).astype(np.float32)
    name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
    jfn = getattr(F, name)
    desc = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    desc = f"x{x_shape} w{w_shape} bias={bias} {desc} channels_last={channels_last}"

    def jax_fn(x, w, b=None):
        return jfn(x, w, b, **kw, impl=impl, channels_last=channels_last)

    def torch_fn(x, w, b=None):
        return _torch_channels_last(
            functools.partial(_call_torch, import_torch, kw), nd, channels_last)(x, w, b)

    return Case(name, desc, inputs, jax_fn, torch_fn, impl=impl)


def _torch_op(nd, transposed):
    return f"conv_transpose{nd}d" if transposed else f"conv{nd}d"


def _call_torch(name, kw, x, w, b):
    import torch.nn.functional as tF
    return getattr(tF, name)(x, w, b, **kw)


def cases(seed: int, n: int, impl: str = "lax") -> list[Case]:
    """``n`` random cases per op (conv1d..3d, conv_transpose1d..3d) for ``impl``; for
    ``"toeplitz"``, which computes ungrouped convolutions only, ungrouped conv1d..3d."""
    rng = np.random.default_rng(seed)
    limits = {"fft": {"max_stride": 1}, "toeplitz": {"grouped": False}}.get(impl, {})
    out = []
    for transposed in (False,) if impl == "toeplitz" else (False, True):
        for nd in (1, 2, 3):
            out += [conv_case(rng, nd, impl, transposed=transposed, **limits) for _ in range(n)]
    return out
