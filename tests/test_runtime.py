"""jaxconv.runtime.reuse_host_memory: page faults per XLA:CPU training step, in fresh processes."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Prints the fewest minor page faults of 5 mnist_net gradient steps (batch 128) after a warm-up.
PROBE = textwrap.dedent("""
    import json, resource, sys, warnings
    applied = None
    if sys.argv[1] == "early":
        from jaxconv import runtime
        applied = runtime.reuse_host_memory()
    import jax, jax.numpy as jnp, numpy as np
    from jaxconv import models
    model = models.get("mnist_net")
    x = jnp.asarray(np.random.default_rng(0).standard_normal((128, 1, 28, 28), np.float32))
    params = model.init(jax.random.key(0), x)["params"]
    grad = jax.jit(jax.grad(lambda p: model.apply({"params": p}, x).sum()))
    for _ in range(3):
        jax.block_until_ready(grad(params))
    per_step = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        jax.block_until_ready(grad(params))
        per_step.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    # The fewest of 5 steps: under load XLA's concurrent thunks can reach a new peak of live
    # memory in a later step, and growing the reused heap once faults in its new pages.
    faults = min(per_step)
    late = []
    if sys.argv[1] == "late":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from jaxconv import runtime
            applied = runtime.reuse_host_memory()
        late = [str(w.message) for w in caught]
    print(json.dumps({"faults": faults, "applied": applied, "warnings": late}))
""")


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_reuse_host_memory_cuts_page_faults_and_warns_when_late():
    default, early = _probe("late"), _probe("early")
    assert early["applied"] is True
    # glibc mmaps XLA's per-step temporaries and Eigen's packing buffers afresh: thousands of
    # faults a step by default (17k for a full Adam step), a few hundred once freed memory is reused.
    assert default["faults"] > 2000, default
    assert early["faults"] < 0.25 * default["faults"], (early, default)
    # Called after JAX's first computation: applied, but with a warning that it is too late.
    assert default["applied"] is True
    assert any("already run a computation" in w for w in default["warnings"]), default
