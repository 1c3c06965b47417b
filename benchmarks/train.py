"""Full training step (forward, backward, Adam update) in images/s: jaxconv models vs their PyTorch twins.

    python -m benchmarks.train            # mnist_net, lenet5, convnet at batch 64/128/256
    python -m benchmarks.train --quick    # mnist_net at batch 128 only
    python -m benchmarks.train --reuse-host-memory   # with jaxconv.runtime.reuse_host_memory()

Per model and batch, in one process and interleaved round by round:

* ``jaxconv auto``: ``jaxconv.models.get(name)`` (every conv ``impl="auto"``),
  one ``jax.jit`` step under the default XLA flags, as the trainer runs it (the
  batch an argument, params and optimizer state donated, the gradient summed
  over the microbatches `jaxconv.train.steps.num_microbatches` picks: on CPU
  mnist_net's batches in microbatches of 32, convnet's batch 256 in two, the
  rest whole; ``--microbatch-size`` overrides, 0 = whole batch);
* ``jaxconv lax``: the same with ``"auto"`` forced to plain ``lax`` + XLA
  autodiff and max pooling on its generic gather/scatter-add backward (what the
  ops did before the custom plans; about what ``flax.linen.Conv`` gets), for reference;
* ``torch``: the twin from ``jaxconv.parity.torch_models``, eager, same
  optimiser (``torch.optim.Adam``), ``torch.get_num_threads()`` threads.

``--reuse-host-memory`` calls `jaxconv.runtime.reuse_host_memory` first (as
``train.py`` does by default), which applies to both frameworks in the process,
and writes its own section; without it malloc keeps its defaults, as in a
process that imports jaxconv and does nothing else.

Forward (inference, PyTorch under ``no_grad`` in eval mode): ``model.apply`` on
the whole batch, and in the microbatches the trainer's eval step uses
(`jaxconv.train.steps.apply_in_microbatches`).

The roofline is the step's FLOPs (XLA's cost analysis, per image) at the
sgemm rate measured in the same rounds (a 1024^3 float32 ``jnp.dot``). Compile
time (first call: trace + compile + run) is reported separately.
Time-to-accuracy is not measured here yet.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common
from jaxconv import models, runtime
from jaxconv.functional import _dispatch, _vjp
from jaxconv.functional._vjp import Plan
from jaxconv.train import steps

LR = 1e-3


@contextlib.contextmanager
def auto_as(plan: Plan | None, plain_pool: bool = False):
    """Within the block, ``impl="auto"`` on CPU resolves to ``plan`` (None: unchanged), and
    with ``plain_pool`` ``F.max_pool2d`` keeps its generic gather/scatter-add backward instead
    of `_vjp.tiled_max_pool`."""
    saved_plan, saved_pool = _dispatch._cpu_plan, _vjp.tiled_max_pool
    if plan is not None:
        _dispatch._cpu_plan = lambda *args: plan
    if plain_pool:
        _vjp.tiled_max_pool = lambda x, args, channels_last=False: None
    try:
        yield
    finally:
        _dispatch._cpu_plan, _vjp.tiled_max_pool = saved_plan, saved_pool


def _loss_sum(name: str, out, y):
    if name == "mnist_net":  # log-probabilities, as pytorch/examples (nll_loss)
        return -jnp.sum(jnp.take_along_axis(out, y[:, None], axis=1))
    return optax.softmax_cross_entropy_with_integer_labels(out, y).sum()


def jax_step(name: str, batch: int, plan: Plan | None, plain_pool: bool = False, seed: int = 0,
             microbatch_size: int | None = None):
    """A closure running one jitted training step per call, and its compile time and FLOPs.

    ``microbatch_size``: as the trainer's config field (None: `steps.num_microbatches`'s choice).
    """
    model = models.get(name)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((batch, model.in_channels, model.input_size, model.input_size),
                                        dtype=np.float32))
    y = jnp.asarray(rng.integers(0, model.num_classes, size=batch))
    opt = optax.adam(LR)
    with auto_as(plan, plain_pool):
        params = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)["params"]

        example = (model.in_channels, model.input_size, model.input_size)
        example_bytes = steps.largest_activation_bytes(model.apply, params, example)
        k = steps.num_microbatches(batch, microbatch_size, example_bytes=example_bytes)

        def loss_fn(p, micro, key):
            # Microbatch i holds examples i, i + k, ...: its dropout key is key folded with i.
            out = model.apply({"params": p}, micro["x"], train=True,
                              rngs={"dropout": jax.random.fold_in(key, micro["i"][0])})
            return _loss_sum(name, out, micro["y"]), ()

        # As the trainer's step: the batch is an argument (not a constant XLA could fold
        # into the first layer) and params and optimizer state are donated.
        def make_step(k):
            @functools.partial(jax.jit, donate_argnums=(0, 1))
            def step(p, s, key, x, y):
                key, sub = jax.random.split(key)
                micro = {"i": jnp.arange(batch) % k, "x": x, "y": y}
                (loss, _), g = steps.accumulate(functools.partial(loss_fn, key=sub), p, micro, k)
                loss, g = loss / batch, jax.tree.map(lambda a: a / batch, g)
                updates, s = opt.update(g, s, p)
                return optax.apply_updates(p, updates), s, key, loss

            return step

        state = [params, opt.init(params), jax.random.key(2)]
        t = time.perf_counter()
        compiled = make_step(k).lower(*state, x, y).compile()
        compile_s = time.perf_counter() - t
        # XLA's cost analysis counts a loop body once: the FLOPs are the whole-batch step's.
        whole = compiled if k == 1 else make_step(1).lower(*state, x, y).compile()
        cost = whole.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        flops = float(cost.get("flops", float("nan"))) if cost else float("nan")

    def run():
        out = compiled(*state, x, y)
        state[:] = out[:3]
        return out[3]

    with auto_as(plan, plain_pool):
        def forward(p, x):
            return model.apply({"params": p}, x, train=False)

        k_eval = steps.num_microbatches(batch, None, example_bytes=example_bytes)
        infer = jax.jit(forward).lower(params, x).compile()
        infer_mb = jax.jit(lambda p, x: steps.apply_in_microbatches(functools.partial(forward, p), x, k_eval)
                           ).lower(params, x).compile()

    return run, compile_s, flops, {"whole": lambda: infer(state[0], x), "micro": lambda: infer_mb(state[0], x)}


def torch_step(name: str, batch: int, seed: int = 0):
    import torch
    import torch.nn.functional as tF

    from jaxconv.parity import torch_models

    torch.manual_seed(seed)
    model = torch_models.get(name).train()
    jm = models.get(name)
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal((batch, jm.in_channels, jm.input_size, jm.input_size),
                                         dtype=np.float32))
    y = torch.tensor(rng.integers(0, jm.num_classes, size=batch))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = tF.nll_loss if name == "mnist_net" else tF.cross_entropy

    def run():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def infer():
        model.eval()
        with torch.no_grad():
            out = model(x)
        model.train()
        return out

    return run, infer


SGEMM_N = 1024


def sgemm_candidate():
    """A jitted 1024^3 float32 matmul, timed alongside the steps for the roofline."""
    a = jnp.ones((SGEMM_N, SGEMM_N), jnp.float32)
    return jax.jit(lambda a, b: a @ b), (a, a)


VARIANTS = {"auto": (None, False), "lax": (Plan("lax"), True)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="mnist_net at batch 128, 3 rounds")
    ap.add_argument("--models", default="mnist_net,lenet5,convnet")
    ap.add_argument("--batches", default="64,128,256")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--microbatch-size", type=int, default=None,
                    help="examples per gradient microbatch of the jaxconv steps (0: whole batch; "
                         "default: the trainer's choice)")
    ap.add_argument("--reuse-host-memory", action="store_true",
                    help="call jaxconv.runtime.reuse_host_memory() first (train.py's default)")
    args = ap.parse_args(argv)
    if args.reuse_host_memory:
        runtime.reuse_host_memory()  # before the first JAX computation
    names = ["mnist_net"] if args.quick else args.models.split(",")
    batches = [128] if args.quick else [int(b) for b in args.batches.split(",")]
    rounds = args.rounds or (3 if args.quick else 5)
    head = ["model", "batch", "torch img/s", "auto img/s", "auto / torch", "lax / torch", "MFLOP/img",
            "auto % of roofline", "forward auto / torch", "forward in microbatches / torch", "sgemm GFLOP/s", "compile auto s", "compile lax s"]
    rows = []
    for name in names:
        for batch in batches:
            cands, compile_s, infer = {}, {}, {}
            flops = float("nan")
            mb = batch if args.microbatch_size == 0 else args.microbatch_size
            for variant, (plan, plain_pool) in VARIANTS.items():
                run, compile_s[variant], f, infer[variant] = jax_step(name, batch, plan, plain_pool,
                                                                      microbatch_size=mb)
                cands[variant] = (run, ())
                if variant == "auto":
                    flops = f
            torch_run, torch_infer = torch_step(name, batch)
            cands["torch"] = (torch_run, ())
            fwd = common.interleaved({"auto": (infer["auto"]["whole"], ()), "micro": (infer["auto"]["micro"], ()),
                                      "torch": (torch_infer, ())}, rounds=rounds, warmup=2, min_time=0.5)
            cands["sgemm"] = sgemm_candidate()
            t = common.interleaved(cands, rounds=rounds, warmup=2, min_time=1.0)
            gflops = 2 * SGEMM_N ** 3 / t.pop("sgemm") / 1e9
            ips = {k: batch / v for k, v in t.items()}
            mflop = flops / batch / 1e6
            roof = gflops * 1e3 / mflop
            rows.append([name, batch, f"{ips['torch']:.0f}", f"{ips['auto']:.0f}",
                         f"{ips['auto'] / ips['torch']:.2f}x", f"{ips['lax'] / ips['torch']:.2f}x",
                         f"{mflop:.1f}", f"{100 * ips['auto'] / roof:.0f}%", f"{fwd['torch'] / fwd['auto']:.2f}x", f"{fwd['torch'] / fwd['micro']:.2f}x", f"{gflops:.0f}", f"{compile_s['auto']:.2f}", f"{compile_s['lax']:.2f}"])
            print(rows[-1], flush=True)
    body = common.header("Training step (Adam): images/s, same run")
    body += ("- host memory: `jaxconv.runtime.reuse_host_memory()` (both frameworks)\n" if args.reuse_host_memory
             else "- host memory: malloc's defaults\n")
    body += "\n" + common.table(head, rows)
    print(body)
    if not args.no_write:
        common.write_section("train" + ("-quick" if args.quick else "") + ("-reuse" if args.reuse_host_memory else ""),
                             body)


if __name__ == "__main__":
    main()
