"""pmap and sharded training against single-device training, on 2 simulated CPU devices.

Run by test_train_parallel.py in a subprocess, because the device count must be
set (XLA_FLAGS=--xla_force_host_platform_device_count=2) before jax is
imported. Prints one JSON line of results:

    python tests/train/multidevice_check.py SMALL_MNIST_DIR WORKDIR
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxconv.train import parallel  # noqa: E402
from jaxconv.train import state as state_lib  # noqa: E402

MODES = ("none", "pmap", "sharded")


class TinyDropoutNet(nn.Module):
    """Dense -> ReLU -> Dropout(0.5) -> Dense: small, and its trajectory depends on the dropout masks."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Dense(32)(x.reshape(x.shape[0], -1)))
        x = nn.Dropout(0.5, deterministic=not train)(x)
        return nn.Dense(10)(x)


def runner_trajectories(steps: int = 6, batch: int = 8) -> dict[str, dict]:
    """Losses and final params of each mode on the same batches, through the Runner API."""
    model, tx = TinyDropoutNet(), optax.adam(1e-2)
    rng = np.random.default_rng(0)
    batches = [
        {
            "image": rng.normal(size=(batch, 1, 4, 4)).astype(np.float32),
            "label": rng.integers(0, 10, batch).astype(np.int32),
        }
        for _ in range(steps)
    ]
    out = {}
    # "<mode>/mb2": each device's 4 examples in 2 microbatches of 2 (the one-device run keeps its batch whole).
    for name in (*MODES, "pmap/mb2", "sharded/mb2"):
        mode, _, micro = name.partition("/")
        runner = parallel.create(mode, model.apply, tx, batch_size=batch, eval_batch_size=batch,
                                 microbatch_size=2 if micro else None)
        assert runner.microbatches == (2 if micro else 1)
        state = runner.put_state(jax.device_get(state_lib.create(model, tx, 0, (1, 4, 4))))
        losses = []
        for b in batches:
            state, metrics = runner.train_step(state, runner.put_batch(b))
            losses.append(float(runner.get_metrics(jax.device_get(metrics))["loss"]))
        eval_batch = {**batches[0], "mask": np.ones(batch, bool)}
        counts = runner.get_metrics(
            jax.device_get(runner.eval_step(state.params, runner.put_batch(eval_batch)))
        )
        host = runner.get_state(state)
        out[name] = {
            "losses": losses,
            "params": [np.asarray(x).tolist() for x in jax.tree.leaves(host.params)],
            "step": int(host.step),
            "eval_count": float(counts["count"]),
            "eval_loss_sum": float(counts["loss_sum"]),
        }
    return out


def end_to_end(data_dir: str, workdir: str) -> dict[str, dict]:
    """train_and_evaluate in each mode for a few steps: per-step losses and the summary."""
    sys.path.insert(0, os.path.dirname(__file__))
    from train_helpers import make_config

    from jaxconv import train
    from jaxconv.train import metrics as metrics_lib

    out = {}
    for mode in MODES:
        config = make_config(data_dir, max_steps=4, parallel=mode)
        path = os.path.join(workdir, mode)
        summary = train.train_and_evaluate(config, path)
        records = metrics_lib.read(os.path.join(path, "metrics.jsonl"))
        evaluated = train.evaluate(None, path)
        out[mode] = {
            "losses": [r["train_loss"] for r in records if "train_loss" in r],
            "test_accuracy": summary["test_accuracy"],
            "eval_mode_accuracy": evaluated["test_accuracy"],
            "devices": summary["devices"],
        }
    return out


def divisibility_error() -> str:
    try:
        parallel.create("pmap", lambda *a, **k: None, optax.sgd(0.1), batch_size=3, eval_batch_size=4)
    except ValueError as e:
        return str(e)
    return ""


if __name__ == "__main__":
    assert jax.device_count() == 2, jax.devices()
    results = {
        "runner": runner_trajectories(),
        "end_to_end": end_to_end(sys.argv[1], sys.argv[2]),
        "divisibility_error": divisibility_error(),
    }
    print(json.dumps(results))
