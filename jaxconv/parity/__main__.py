"""``python -m jaxconv.parity [ops|models|all]``: jaxconv vs the installed PyTorch.

For every op and conv impl, runs seeded random valid calls, compares forward
values and input gradients with PyTorch (relative L2 error, float32, highest
matmul precision) and prints one row per (op, impl): the number of cases and
the worst errors. ``models`` loads each seed model's PyTorch twin into jaxconv
and compares logits, gradients and an SGD trajectory. Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import warnings

import jax

RTOL = {"fft": 1e-4}
DEFAULT_RTOL = 1e-5


def _run_ops(families, impls, n, seed) -> bool:
    from jaxconv.parity import registry
    from jaxconv.parity.compare import compare

    print(f"{'op':<22}{'impl':<8}{'cases':>6}{'forward':>12}{'gradient':>12}{'tol':>9}  status")
    ok_all = True
    for family in families:
        _, family_impls = registry.FAMILIES[family]
        for impl in family_impls:
            if impls and impl != "-" and impl not in impls:
                continue
            rows = collections.defaultdict(list)
            for case in registry.generate(family, seed, n, impl):
                rows[case.op].append(compare(case))
            tol = RTOL.get(impl, DEFAULT_RTOL)
            for op, results in rows.items():
                fwd = max(r.forward for r in results)
                grad = max(r.gradient for r in results)
                bad = [r for r in results if not r.ok(tol)]
                ok_all &= not bad
                status = "ok" if not bad else f"MISMATCH ({len(bad)})"
                print(f"{op:<22}{impl:<8}{len(results):>6}{fwd:>12.2e}{grad:>12.2e}{tol:>9.0e}  {status}")
                for r in bad[:3]:
                    print(f"    {r.case.desc}: forward {r.forward:.2e} gradient {r.gradient:.2e}"
                          f"{' indices differ' if r.exact_mismatch else ''}")
    return ok_all


def _run_models(seed) -> bool:
    from jaxconv.parity import model_check

    ok_all = True
    for row in model_check.run(seed=seed):
        ok_all &= bool(row.get("ok", True))
        print("  ".join(f"{k}={v:.2e}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return ok_all


def main(argv=None) -> int:
    from jaxconv.parity import registry

    parser = argparse.ArgumentParser(prog="python -m jaxconv.parity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="all", choices=["ops", "models", "all"])
    parser.add_argument("--n", type=int, default=20, help="random cases per op and impl (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", action="append", choices=list(registry.FAMILIES),
                        help="op family to check (repeatable; default all)")
    parser.add_argument("--impl", action="append", help="conv impl to check (repeatable; default all)")
    args = parser.parse_args(argv)

    jax.config.update("jax_default_matmul_precision", "highest")
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")
    try:
        import torch
    except ImportError:
        print("jaxconv.parity needs PyTorch: pip install 'jaxconv[test]'", file=sys.stderr)
        return 2
    print(f"jax {jax.__version__} on {jax.default_backend()}, torch {torch.__version__}, seed {args.seed}")
    start = time.perf_counter()
    ok = True
    if args.what in ("ops", "all"):
        ok &= _run_ops(args.family or list(registry.FAMILIES), args.impl, args.n, args.seed)
    if args.what in ("models", "all"):
        ok &= _run_models(args.seed)
    print(f"{'all match' if ok else 'MISMATCHES FOUND'} ({time.perf_counter() - start:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
