"""``train_and_evaluate``: the training loop, with resume, and ``evaluate`` for eval mode.

A run lives in its workdir: ``config.json``, ``checkpoints/`` (orbax),
``metrics.jsonl``, ``tensorboard/``, ``curves.png``, ``summary.json`` and
``model.pt``. Running the same command again resumes from the latest
checkpoint and continues exactly as an uninterrupted run would.
"""

import logging
import os
import time
import uuid
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from jaxconv import data, models
from jaxconv.train import checkpoint, optim, parallel
from jaxconv.train import config as config_lib
from jaxconv.train import metrics as metrics_lib
from jaxconv.train import state as state_lib

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training stopped because a step's loss or gradients were NaN or infinite."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains ``config``'s recipe in ``workdir`` (resuming if it holds a checkpoint); returns the summary."""
    wall_start = time.perf_counter()
    config_lib.validate(config)
    workdir = _prepare_workdir(workdir)
    _record_config(config, workdir)

    (train_x, train_y), source = _load(config, "train")
    (test_x, test_y), _ = _load(config, "test")
    _say(f"data: {len(train_x)} train, {len(test_x)} test examples; {source}")
    train_x = data.normalize(train_x, config.normalize_mean, config.normalize_std)
    test_x = data.normalize(test_x, config.normalize_mean, config.normalize_std)

    model = models.get(config.model)
    steps_per_epoch = data.steps_per_epoch(len(train_x), config.batch_size)
    total_steps = steps_per_epoch * config.num_epochs
    last_step = total_steps if config.max_steps is None else min(config.max_steps, total_steps)
    schedule = optim.create_schedule(config, steps_per_epoch)
    tx = optim.create_optimizer(config, schedule)
    host_state = state_lib.create(model, tx, config.seed, train_x.shape[1:])

    ckpts = checkpoint.Checkpoints(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    restored = ckpts.restore(host_state)
    if restored is not None:
        host_state, meta = restored
        _check_position(meta, int(host_state.step), steps_per_epoch, ckpts.directory)
        _say(f"resuming from checkpoint step {int(host_state.step)} (epoch {meta['epoch']}, batch {meta['step_in_epoch']})")
    host_state = jax.device_get(host_state)  # numpy: put_state copies, and the donated step never frees these.
    start_step = int(host_state.step)

    runner = parallel.create(
        config.parallel,
        model.apply,
        tx,
        batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
    )
    state = runner.put_state(host_state)
    compile_times = runner.compile(
        state,
        runner.put_batch({"image": train_x[: config.batch_size], "label": train_y[: config.batch_size]}),
        runner.put_batch(_eval_example(test_x, test_y, config.eval_batch_size)),
    )
    compile_s = sum(compile_times.values())
    _say(
        f"model {config.model}: {_count(host_state.params):,} params; parallel={config.parallel} over "
        f"{runner.num_devices} device(s) ({jax.devices()[0].platform}); compiled train step in "
        f"{compile_times['train_step']:.1f}s, eval step in {compile_times['eval_step']:.1f}s"
    )

    writer = metrics_lib.MetricWriter(workdir, resume_step=start_step)
    evaluate_params = lambda params: _evaluate(runner, params, test_x, test_y, config.eval_batch_size)  # noqa: E731

    def save(step: int, test: dict[str, float] | None = None) -> None:
        meta = {
            "epoch": step // steps_per_epoch,
            "step_in_epoch": step % steps_per_epoch,
            "global_step": step,
            "steps_per_epoch": steps_per_epoch,
        }
        ckpts.save(step, runner.get_state(state), {**meta, **(test or {})}, metrics=test)

    step, saved_step, test, tested_step, train_time, train_images = start_step, start_step, None, None, 0.0, 0
    try:
        while step < last_step:
            epoch, first = divmod(step, steps_per_epoch)
            batches = data.train_batches(
                train_x, train_y, batch_size=config.batch_size, key=host_state.shuffle_key, epoch=epoch, start_step=first
            )
            bar = tqdm(total=steps_per_epoch, initial=first, desc=f"epoch {epoch + 1}/{config.num_epochs}", mininterval=0.5)
            window, epoch_sums = [], np.zeros(3)  # Over this epoch's steps: loss sum, correct, steps.
            tick = time.perf_counter()
            for images, labels in batches:
                state, step_metrics = runner.train_step(state, runner.put_batch({"image": images, "label": labels}))
                window.append(step_metrics)
                step += 1
                bar.update()
                end_of_epoch = step % steps_per_epoch == 0
                if step % config.log_every_steps == 0 or end_of_epoch or step == last_step:
                    losses, correct = _fetch(runner, window)
                    elapsed = time.perf_counter() - tick
                    train_time += elapsed
                    train_images += len(window) * config.batch_size
                    epoch_sums += (losses.sum(), correct.sum(), len(window))
                    record = {
                        "epoch": step / steps_per_epoch,
                        "train_loss": float(losses.mean()),
                        "train_accuracy": float(correct.sum() / (len(window) * config.batch_size)),
                        "learning_rate": float(schedule(step - 1)),
                        "images_per_s": len(window) * config.batch_size / elapsed,
                    }
                    writer.write(step, **record)
                    bar.set_postfix(
                        loss=f"{record['train_loss']:.4f}", acc=f"{record['train_accuracy']:.4f}", img_s=f"{record['images_per_s']:.0f}"
                    )
                    _check_finite(runner, state, config, ckpts)
                    window, tick = [], time.perf_counter()
                if config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0 and not end_of_epoch:
                    _check_finite(runner, state, config, ckpts)
                    save(step)
                    saved_step = step
                if step >= last_step:
                    break
            bar.close()

            if step % steps_per_epoch == 0:
                done = step // steps_per_epoch
                evaluated = done % config.eval_every_epochs == 0 or step == last_step
                if evaluated:
                    test, tested_step = evaluate_params(state.params), step
                    writer.write(step, epoch=done, **test)
                _check_finite(runner, state, config, ckpts)
                save(step, test if evaluated else None)
                saved_step = step
                _say(_epoch_line(done, config, step, epoch_sums, test if evaluated else None, runner, state, train_time, train_images))

        if tested_step != step:  # Cut short by max_steps mid-epoch, or nothing left to train.
            test, tested_step = evaluate_params(state.params), step
            writer.write(step, epoch=step / steps_per_epoch, **test)
        if saved_step != step:
            _check_finite(runner, state, config, ckpts)
            save(step, test)
    finally:
        writer.close()
        ckpts.close()

    final_state = runner.get_state(state)
    metrics_lib.plot_curves(metrics_lib.read(writer.path), os.path.join(workdir, "curves.png"))
    summary = {
        "test_accuracy": test["test_accuracy"],
        "test_loss": test["test_loss"],
        "step": step,
        "epoch": step / steps_per_epoch,
        "resumed_from_step": start_step,
        "wall_time_s": time.perf_counter() - wall_start,
        "compile_time_s": compile_s,
        "train_time_s": train_time,
        "images_per_s": train_images / train_time if train_time else None,
        "skipped_steps": int(final_state.skipped_steps),
        "model": config.model,
        "parallel": config.parallel,
        "devices": runner.num_devices,
        "data_source": source,
    }
    _export_torch(config, final_state.params, workdir)
    _write_json(os.path.join(workdir, "summary.json"), summary)
    _say(
        f"summary: test_accuracy={summary['test_accuracy']:.4f} test_loss={summary['test_loss']:.4f} "
        f"step={step} epoch={summary['epoch']:.2f} wall_time={summary['wall_time_s']:.1f}s "
        f"(compile {compile_s:.1f}s, training {train_time:.1f}s at {summary['images_per_s'] or 0:.0f} images/s) "
        f"workdir={workdir}"
    )
    return summary


def evaluate(config: ml_collections.ConfigDict | None, workdir: str) -> dict[str, Any]:
    """Scores the latest checkpoint in ``workdir`` on the test split.

    ``config`` None reads the run's own ``<workdir>/config.json``.
    """
    workdir = os.path.abspath(os.path.expanduser(workdir))
    if config is None:
        path = os.path.join(workdir, "config.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist: is {workdir} a training workdir?")
        config = config_lib.load_json(path)
    config_lib.validate(config)
    (test_x, test_y), source = _load(config, "test")
    _say(f"data: {config.dataset} test split from {source}: {len(test_x)} examples")
    test_x = data.normalize(test_x, config.normalize_mean, config.normalize_std)

    model = models.get(config.model)
    tx = optim.create_optimizer(config, optim.create_schedule(config, steps_per_epoch=1))
    template = state_lib.create(model, tx, config.seed, test_x.shape[1:])
    ckpts = checkpoint.Checkpoints(os.path.join(workdir, "checkpoints"), read_only=True)
    restored = ckpts.restore(template)
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {ckpts.directory}")
    host_state, meta = restored
    runner = parallel.create(
        config.parallel, model.apply, tx, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size
    )
    state = runner.put_state(host_state)
    result = _evaluate(runner, state.params, test_x, test_y, config.eval_batch_size)
    result = {**result, "step": int(host_state.step), "epoch": meta["global_step"] / meta["steps_per_epoch"]}
    _say(f"eval: checkpoint step {result['step']}: test_accuracy={result['test_accuracy']:.4f} test_loss={result['test_loss']:.4f}")
    return result


def _say(line: str) -> None:
    tqdm.write(line)


def _prepare_workdir(workdir: str) -> str:
    """Absolute ``workdir``, created; raises with the path if it cannot be written."""
    path = os.path.abspath(os.path.expanduser(workdir))
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{uuid.uuid4().hex}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise PermissionError(f"workdir {path} is not a writable directory: {e}") from e
    return path


def _record_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Writes ``config.json``, first printing how it differs from a previous run's."""
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        changed = config_lib.differences(config_lib.load_json(path), config)
        if changed:
            _say("config differs from the previous run in this workdir: " + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()))
    config_lib.save_json(config, path)


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _load(config: ml_collections.ConfigDict, split: str) -> tuple[tuple[np.ndarray, np.ndarray], str]:
    """``data.load`` plus a description of the source it read from (taken from its log)."""
    logger = logging.getLogger("jaxconv.data")
    capture, level, propagate = _Capture(), logger.level, logger.propagate
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # The source is printed once, by the caller.
    try:
        arrays = data.load(config.dataset, split, config.data_dir)
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
        logger.propagate = propagate
    for record in capture.records:
        if record.levelno >= logging.WARNING:
            logger.handle(record)
    source = "; ".join(r.getMessage() for r in capture.records) or "unknown source"
    return arrays, source


def _eval_example(images: np.ndarray, labels: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    x, y, mask = next(data.eval_batches(images[:batch_size], labels[:batch_size], batch_size=batch_size))
    return {"image": x, "label": y, "mask": mask}


def _evaluate(runner: parallel.Runner, params, images: np.ndarray, labels: np.ndarray, batch_size: int) -> dict[str, float]:
    """Test loss and accuracy, each example counted once (the padded last batch is masked)."""
    outputs = [
        runner.eval_step(params, runner.put_batch({"image": x, "label": y, "mask": m}))
        for x, y, m in data.eval_batches(images, labels, batch_size=batch_size)
    ]
    totals = {k: sum(float(runner.get_metrics(o)[k]) for o in jax.device_get(outputs)) for k in ("loss_sum", "correct", "count")}
    return {"test_loss": totals["loss_sum"] / totals["count"], "test_accuracy": totals["correct"] / totals["count"]}


def _check_position(meta: dict[str, Any], step: int, steps_per_epoch: int, directory: str) -> None:
    """A checkpoint's data position must match this config's batching, or resuming would not replay it."""
    if meta["global_step"] != step or meta["steps_per_epoch"] != steps_per_epoch:
        raise ValueError(
            f"checkpoint step {step} in {directory} was taken with {meta['steps_per_epoch']} steps per epoch, this "
            f"config has {steps_per_epoch}: batch_size or the dataset changed; use a new workdir"
        )


def _check_finite(runner: parallel.Runner, state, config: ml_collections.ConfigDict, ckpts: checkpoint.Checkpoints) -> None:
    """Raises NonFiniteLossError once a step went non-finite under ``on_nonfinite="stop"``."""
    if config.on_nonfinite != "stop":
        return
    bad = int(runner.get_metrics(jax.device_get(state.nonfinite_step)))
    if bad >= 0:
        ckpts.wait()
        kept = ckpts.latest_step()
        where = f"the last good checkpoint is step {kept} in {ckpts.directory}" if kept is not None else "no checkpoint was saved"
        raise NonFiniteLossError(
            f"loss or gradients became NaN/inf at step {bad + 1} (global step index {bad}); training stopped and {where}. "
            "Lower the learning rate, or set on_nonfinite='skip' to drop such updates."
        )


def _fetch(runner: parallel.Runner, window: list[dict[str, jax.Array]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-step losses and correct counts of the steps in ``window``, on the host."""
    host = [runner.get_metrics(m) for m in jax.device_get(window)]
    return np.array([m["loss"] for m in host]), np.array([m["correct"] for m in host])


def _epoch_line(done, config, step, sums, test, runner, state, train_time, train_images) -> str:
    loss_sum, correct, steps = sums
    parts = [f"epoch {done}/{config.num_epochs} (step {step}):"]
    if steps:
        parts.append(f"train_loss={loss_sum / steps:.4f} train_accuracy={correct / (steps * config.batch_size):.4f}")
    if test is not None:
        parts.append(f"test_loss={test['test_loss']:.4f} test_accuracy={test['test_accuracy']:.4f}")
    if train_time:
        parts.append(f"({train_images / train_time:.0f} images/s)")
    skipped = int(runner.get_metrics(jax.device_get(state.skipped_steps)))
    if skipped:
        parts.append(f"[{skipped} non-finite updates skipped so far]")
    return " ".join(parts)


def _count(params) -> int:
    return sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(params))


def _write_json(path: str, obj: dict[str, Any]) -> None:
    import json

    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _export_torch(config: ml_collections.ConfigDict, params, workdir: str) -> None:
    """Writes ``model.pt`` (a PyTorch state_dict) when asked for and torch is installed."""
    if not config.export_torch:
        return
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        _say("torch is not installed: skipping the model.pt export")
        return
    import torch

    from jaxconv import interop

    path = os.path.join(workdir, "model.pt")
    torch.save(interop.to_torch(params), path)
    _say(f"exported the final params as a PyTorch state_dict: {path}")
