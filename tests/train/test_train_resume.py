"""Kill-and-resume equals an uninterrupted run; checkpoint retention; non-finite losses.

All runs use the small MNIST subset (16 steps per epoch at batch 128).
"""

import jax
import numpy as np
import pytest
from train_helpers import make_config

from jaxconv import train
from jaxconv.train import checkpoint
from jaxconv.train import metrics as metrics_lib

STEPS_PER_EPOCH = 16


def _train_losses(workdir) -> dict[int, float]:
    return {
        r["step"]: r["train_loss"]
        for r in metrics_lib.read(str(workdir / "metrics.jsonl"))
        if "train_loss" in r
    }


def _final_params(workdir):
    ckpts = checkpoint.Checkpoints(str(workdir / "checkpoints"), read_only=True)
    state, meta = ckpts.restore()
    return meta["global_step"], state["params"]


@pytest.fixture(scope="module")
def straight(small_mnist, tmp_path_factory):
    """An uninterrupted 2-epoch run (32 steps), evaluated each epoch, checkpointing every 5 steps."""
    workdir = tmp_path_factory.mktemp("straight")
    config = make_config(small_mnist, num_epochs=2, checkpoint_every_steps=5, keep_checkpoints=1)
    summary = train.train_and_evaluate(config, str(workdir))
    return workdir, config, summary


def test_resumed_run_equals_uninterrupted_run(straight, tmp_path):
    workdir, config, summary = straight
    config = make_config(config.data_dir, num_epochs=2, checkpoint_every_steps=5, keep_checkpoints=1)
    config.max_steps = 11  # stops mid-epoch 1, between checkpoints
    first = train.train_and_evaluate(config, str(tmp_path))
    assert first["step"] == 11
    config.max_steps = None  # the same command without the cut: resumes at step 11
    second = train.train_and_evaluate(config, str(tmp_path))
    assert second["resumed_from_step"] == 11 and second["step"] == 2 * STEPS_PER_EPOCH

    expected, resumed = _train_losses(workdir), _train_losses(tmp_path)
    assert sorted(resumed) == sorted(expected) == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    np.testing.assert_array_equal([resumed[s] for s in expected], [expected[s] for s in expected])
    assert second["test_accuracy"] == summary["test_accuracy"]
    (step_a, params_a), (step_b, params_b) = _final_params(workdir), _final_params(tmp_path)
    assert step_a == step_b == 2 * STEPS_PER_EPOCH
    jax.tree.map(np.testing.assert_array_equal, params_a, params_b)


def test_keeps_latest_and_best(straight):
    workdir, _, summary = straight
    ckpts = checkpoint.Checkpoints(str(workdir / "checkpoints"), read_only=True)
    steps = ckpts.all_steps()
    records = metrics_lib.read(str(workdir / "metrics.jsonl"))
    evaluated = {r["step"]: r["test_accuracy"] for r in records if "test_accuracy" in r}
    assert sorted(evaluated) == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    best = max(evaluated, key=lambda s: evaluated[s])
    assert ckpts.best_step() == best
    assert steps == sorted({best, 2 * STEPS_PER_EPOCH})  # keep_checkpoints=1 latest + the best


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(small_mnist, tmp_path):
    config = make_config(small_mnist, max_steps=4)
    train.train_and_evaluate(config, str(tmp_path))
    _, good = _final_params(tmp_path)
    config.max_steps = 10
    config.normalize_std = (1e-45,)  # inputs overflow to +-inf: the loss of step 5 is NaN
    with pytest.raises(train.NonFiniteLossError, match=r"step 5 .*last good checkpoint is step 4"):
        train.train_and_evaluate(config, str(tmp_path))
    step, kept = _final_params(tmp_path)
    assert step == 4
    jax.tree.map(np.testing.assert_array_equal, kept, good)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_nonfinite_loss_skip_drops_the_updates(small_mnist, tmp_path):
    config = make_config(small_mnist, max_steps=3, normalize_std=(1e-45,), on_nonfinite="skip")
    summary = train.train_and_evaluate(config, str(tmp_path))
    assert summary["step"] == 3 and summary["skipped_steps"] == 3
    losses = _train_losses(tmp_path)
    assert all(np.isnan(v) for v in losses.values())


def test_resume_refuses_a_different_batching(straight, tmp_path):
    workdir, config, _ = straight
    config = make_config(config.data_dir, max_steps=2)
    train.train_and_evaluate(config, str(tmp_path))
    config.batch_size = 64
    with pytest.raises(ValueError, match="batch_size=128 there, 64 here"):
        train.train_and_evaluate(config, str(tmp_path))
