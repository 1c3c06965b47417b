"""End to end: one short default-recipe run on real MNIST, its outputs, and eval mode."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from train_helpers import REPO, make_config

from jaxconv import train
from jaxconv.train import checkpoint
from jaxconv.train import metrics as metrics_lib

MAX_STEPS = 300


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory):
    """300 steps of the default recipe squeezed into one epoch, on the full data: (workdir, config, summary)."""
    workdir = tmp_path_factory.mktemp("trained")
    config = make_config(
        mnist_dir,
        num_epochs=1,
        warmup_epochs=0.3,
        max_steps=MAX_STEPS,
        log_every_steps=50,
        checkpoint_every_steps=120,
        export_torch=True,
    )
    summary = train.train_and_evaluate(config, str(workdir))
    return workdir, config, summary


def test_short_run_reaches_97_percent(trained):
    _, _, summary = trained
    assert summary["step"] == MAX_STEPS
    assert summary["test_accuracy"] >= 0.97, summary


def test_summary_and_metrics_files(trained):
    workdir, _, summary = trained
    on_disk = json.loads((workdir / "summary.json").read_text())
    assert on_disk["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    for key in ("wall_time_s", "compile_time_s", "images_per_s", "data_source"):
        assert key in on_disk
    assert "IDX files" in on_disk["data_source"]

    records = metrics_lib.read(str(workdir / "metrics.jsonl"))
    train_steps = [r["step"] for r in records if "train_loss" in r]
    assert train_steps == list(range(50, MAX_STEPS + 1, 50))
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert losses[-1] < losses[0] / 4
    test_records = [r for r in records if "test_accuracy" in r]
    assert test_records[-1]["step"] == MAX_STEPS
    assert test_records[-1]["test_accuracy"] == pytest.approx(summary["test_accuracy"])

    assert (workdir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = [f for _, _, files in os.walk(workdir / "tensorboard") for f in files if "tfevents" in f]
    assert events
    assert json.loads((workdir / "config.json").read_text())["max_steps"] == MAX_STEPS


def test_checkpoints_every_n_steps_and_final(trained):
    workdir, config, _ = trained
    ckpts = checkpoint.Checkpoints(str(workdir / "checkpoints"), read_only=True)
    # Saved at 120, 240 and 300 (max_steps); the 2 latest are kept, and 300, the only evaluated one, is the best.
    assert ckpts.all_steps() == [240, 300]
    assert ckpts.best_step() == 300


def test_model_pt_loads_into_torch_twin(trained):
    torch = pytest.importorskip("torch")
    torch_models = pytest.importorskip("jaxconv.parity.torch_models")
    from jaxconv import data

    workdir, config, summary = trained
    net = torch_models.get(config.model)
    net.load_state_dict(torch.load(workdir / "model.pt"))
    net.eval()
    images, labels = data.load("mnist", "test", config.data_dir)
    x = torch.from_numpy(data.normalize(images[:2000], config.normalize_mean, config.normalize_std))
    with torch.no_grad():
        accuracy = (net(x).argmax(1).numpy() == labels[:2000]).mean()
    assert accuracy == pytest.approx(summary["test_accuracy"], abs=0.02)


def test_eval_mode_scores_latest_checkpoint(trained):
    workdir, _, summary = trained
    result = train.evaluate(None, str(workdir))  # config read back from config.json
    assert result["step"] == MAX_STEPS
    assert result["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)


def test_cli_eval_mode(trained):
    workdir, _, summary = trained
    out = subprocess.run(
        [sys.executable, "train.py", "--mode=eval", f"--workdir={workdir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"test_accuracy={summary['test_accuracy']:.4f}" in out.stdout + out.stderr


def test_rerun_of_finished_run_resumes_without_training(trained, capsys):
    workdir, config, summary = trained
    again = train.train_and_evaluate(config, str(workdir))
    assert again["resumed_from_step"] == MAX_STEPS and again["step"] == MAX_STEPS
    assert again["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)
    assert "resuming from checkpoint step 300" in capsys.readouterr().out


def test_unwritable_workdir_is_a_clear_error(tmp_path, small_mnist):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match=str(blocker / "run")):
        train.train_and_evaluate(make_config(small_mnist), str(blocker / "run"))


def test_bad_config_fails_before_any_work(tmp_path, small_mnist):
    config = make_config(small_mnist)
    config.learing_rate = 0.1
    with pytest.raises(ValueError, match="learing_rate"):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_losses_are_finite(trained):
    workdir, _, _ = trained
    losses = [r["train_loss"] for r in metrics_lib.read(str(workdir / "metrics.jsonl")) if "train_loss" in r]
    assert np.all(np.isfinite(losses))


def test_batch_larger_than_the_training_set_is_a_clear_error(tmp_path, small_mnist):
    config = make_config(small_mnist, batch_size=10**6)
    with pytest.raises(ValueError, match=r"'batch_size' \(1000000\) exceeds the \d+ training examples"):
        train.train_and_evaluate(config, str(tmp_path / "run"))
