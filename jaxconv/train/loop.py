"""``train_and_evaluate``: the training loop, with resume, and ``evaluate`` for eval mode.

A run lives in its workdir: ``config.json``, ``checkpoints/`` (orbax),
``metrics.jsonl``, ``tensorboard/``, ``curves.png``, ``summary.json`` and
``model.pt``. Running the same command again resumes from the latest
checkpoint and continues exactly as an uninterrupted run would. SIGINT or
SIGTERM during training stops it after the current step with a checkpoint
saved (``TrainingInterrupted``); after ``kill -9`` the steps since the last
checkpoint are trained again, identically.
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
from jaxconv.train import checkpoint, interrupt, optim, parallel, steps
from jaxconv.train import config as config_lib
from jaxconv.train import metrics as metrics_lib
from jaxconv.train import state as state_lib


class NonFiniteLossError(RuntimeError):
    """Training stopped because a step's loss or gradients were NaN or infinite."""


class TrainingInterrupted(Exception):
    """Training stopped early on SIGINT or SIGTERM, after saving a checkpoint to resume from.

    ``signal`` is the signal, ``step`` the steps trained, ``checkpoint`` the
    saved checkpoint's directory (None if no step had been trained).
    """

    def __init__(self, message: str, *, signal, step: int, checkpoint: str | None):
        super().__init__(message)
        self.signal, self.step, self.checkpoint = signal, step, checkpoint


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains ``config``'s recipe in ``workdir`` (resuming if it holds a checkpoint); returns the summary.

    In the main thread, the first SIGINT or SIGTERM stops training after the
    current step: the state is checkpointed (with its data position), the
    save awaited, and TrainingInterrupted raised; running the same call again
    resumes exactly. A second signal acts as usual (KeyboardInterrupt, or death).
    """
    wall_start = time.perf_counter()
    config_lib.validate(config)
    workdir = _prepare_workdir(workdir)
    _record_config(config, workdir)
    with interrupt.StopRequest() as stop:
        run = _Run(config, workdir, stop)
        try:
            while run.step < run.last_step and stop.signal is None:
                sums = run.train_epoch()
                if run.step % run.steps_per_epoch == 0:
                    run.end_epoch(sums)
            if stop.signal is not None and run.step < run.last_step:
                run.stop(stop.signal)
            if run.tested_step != run.step:  # Cut short by max_steps mid-epoch, or nothing left to train.
                run.evaluate()
            if run.saved_step != run.step:
                run.save(run.test)
        finally:
            run.close()
    return run.finish(time.perf_counter() - wall_start)


class _Run:
    """One invocation of a training run: its data, compiled steps, state and bookkeeping."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, stop: interrupt.StopRequest):
        self.config, self.workdir, self.stop_request = config, workdir, stop
        (train_x, self.train_y), self.source = _load(config, "train")
        (test_x, self.test_y), _ = _load(config, "test")
        _say(f"data: {len(train_x)} train, {len(test_x)} test examples; {self.source}")
        self.train_x = data.normalize(train_x, config.normalize_mean, config.normalize_std)
        self.test_x = data.normalize(test_x, config.normalize_mean, config.normalize_std)

        model = models.get(config.model)
        self.steps_per_epoch = data.steps_per_epoch(len(self.train_x), config.batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(f"Config field 'batch_size' ({config.batch_size}) exceeds the {len(self.train_x)} "
                             f"training examples of {config.dataset!r}: use batch_size <= {len(self.train_x)}")
        total_steps = self.steps_per_epoch * config.num_epochs
        self.last_step = total_steps if config.max_steps is None else min(config.max_steps, total_steps)
        self.schedule = optim.create_schedule(config, self.steps_per_epoch)
        tx = optim.create_optimizer(config, self.schedule)
        host_state = state_lib.create(model, tx, config.seed, self.train_x.shape[1:])

        self.runner = parallel.create(
            config.parallel,
            model.apply,
            tx,
            batch_size=config.batch_size,
            eval_batch_size=config.eval_batch_size,
            microbatch_size=config.microbatch_size,
            example_bytes=steps.largest_activation_bytes(model.apply, host_state.params, self.train_x.shape[1:]),
        )
        self.ckpts = checkpoint.Checkpoints(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
        try:
            host_state = self._restore(host_state)
        except BaseException:
            self.ckpts.close()
            raise
        self.shuffle_key = host_state.shuffle_key
        self.start_step = self.step = self.saved_step = int(host_state.step)
        self.tested_step, self.test = None, None
        self.train_time, self.train_images = 0.0, 0

        self.state = self.runner.put_state(host_state)
        b = config.batch_size
        times = self.runner.compile(
            self.state,
            self.runner.put_batch({"image": self.train_x[:b], "label": self.train_y[:b]}),
            self.runner.put_batch(_eval_example(self.test_x, self.test_y, config.eval_batch_size)),
        )
        self.compile_s = sum(times.values())
        _say(
            f"model {config.model}: {_count(host_state.params):,} params; parallel={config.parallel} over "
            f"{self.runner.num_devices} {jax.devices()[0].platform} device(s), "
            f"{_microbatch_text(config.batch_size // self.runner.num_devices, self.runner.microbatches)}; "
            f"compiled the train step in "
            f"{times['train_step']:.1f}s, the eval step in {times['eval_step']:.1f}s"
        )
        self.writer = metrics_lib.MetricWriter(workdir, resume_step=self.start_step)

    def _restore(self, fresh: state_lib.TrainState) -> state_lib.TrainState:
        """The latest checkpoint's state (or ``fresh``), as host numpy arrays never aliased by device buffers."""
        restored = self.ckpts.restore(fresh)
        if restored is None:
            return jax.device_get(fresh)
        state, meta = restored
        _check_position(meta, int(state.step), self.steps_per_epoch, self.ckpts.directory)
        _say(
            f"resuming from checkpoint step {meta['global_step']} (epoch {meta['epoch']}, batch {meta['step_in_epoch']})"
        )
        return jax.device_get(state)

    def train_epoch(self) -> np.ndarray:
        """Trains from the current step to the end of its epoch or ``last_step``; returns (loss sum, correct, steps)."""
        config, b = self.config, self.config.batch_size
        epoch, first = divmod(self.step, self.steps_per_epoch)
        batches = data.train_batches(
            self.train_x, self.train_y, batch_size=b, key=self.shuffle_key, epoch=epoch, start_step=first
        )
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=first,
            desc=f"epoch {epoch + 1}/{config.num_epochs}",
            mininterval=0.5,
        )
        window, sums, tick = [], np.zeros(3), time.perf_counter()
        for images, labels in batches:
            self.state, step_metrics = self.runner.train_step(
                self.state, self.runner.put_batch({"image": images, "label": labels})
            )
            window.append(step_metrics)
            self.step += 1
            bar.update()
            end_of_epoch = self.step % self.steps_per_epoch == 0
            if self.step % config.log_every_steps == 0 or end_of_epoch or self.step == self.last_step:
                losses, correct = _fetch(
                    self.runner, window
                )  # Waits for the steps: the timing below is honest.
                elapsed = time.perf_counter() - tick
                self.train_time += elapsed
                self.train_images += len(window) * b
                sums += (losses.sum(), correct.sum(), len(window))
                record = {
                    "epoch": self.step / self.steps_per_epoch,
                    "train_loss": float(losses.mean()),
                    "train_accuracy": float(correct.sum() / (len(window) * b)),
                    "learning_rate": float(self.schedule(self.step - 1)),
                    "images_per_s": len(window) * b / elapsed,
                }
                self.writer.write(self.step, **record)
                bar.set_postfix(
                    loss=f"{record['train_loss']:.4f}",
                    acc=f"{record['train_accuracy']:.4f}",
                    img_s=f"{record['images_per_s']:.0f}",
                )
                self.check_finite()
                window, tick = [], time.perf_counter()
            if (
                config.checkpoint_every_steps
                and self.step % config.checkpoint_every_steps == 0
                and not end_of_epoch
            ):
                self.save()
            if self.step >= self.last_step or self.stop_request.signal is not None:
                break
        bar.close()
        return sums

    def end_epoch(self, sums: np.ndarray) -> None:
        """Evaluates (every ``eval_every_epochs`` and at the end), checkpoints and prints the epoch's line."""
        done = self.step // self.steps_per_epoch
        evaluated = done % self.config.eval_every_epochs == 0 or self.step == self.last_step
        if evaluated:
            self.evaluate()
        self.save(self.test if evaluated else None)
        loss_sum, correct, steps = sums
        parts = [f"epoch {done}/{self.config.num_epochs} (step {self.step}):"]
        if steps:
            parts.append(
                f"train_loss={loss_sum / steps:.4f} train_accuracy={correct / (steps * self.config.batch_size):.4f}"
            )
        if evaluated:
            parts.append(
                f"test_loss={self.test['test_loss']:.4f} test_accuracy={self.test['test_accuracy']:.4f}"
            )
        if self.train_time:
            parts.append(f"({self.train_images / self.train_time:.0f} images/s)")
        skipped = int(self.runner.get_metrics(jax.device_get(self.state.skipped_steps)))
        if skipped:
            parts.append(f"[{skipped} non-finite updates skipped so far]")
        _say(" ".join(parts))

    def evaluate(self) -> None:
        self.test = _evaluate(
            self.runner, self.state.params, self.test_x, self.test_y, self.config.eval_batch_size
        )
        self.tested_step = self.step
        self.writer.write(self.step, epoch=self.step / self.steps_per_epoch, **self.test)

    def save(self, test: dict[str, float] | None = None) -> None:
        """Checkpoints the state, its data position and (if evaluated here) the test metrics."""
        self.check_finite()
        meta = {
            "epoch": self.step // self.steps_per_epoch,
            "step_in_epoch": self.step % self.steps_per_epoch,
            "global_step": self.step,
            "steps_per_epoch": self.steps_per_epoch,
        }
        self.ckpts.save(self.step, self.runner.get_state(self.state), {**meta, **(test or {})}, metrics=test)
        self.saved_step = self.step

    def stop(self, signal) -> None:
        """Checkpoints the current step, waits for the write, says where it went, raises TrainingInterrupted."""
        if self.saved_step != self.step:
            self.save()
        self.ckpts.wait()
        kept = self.ckpts.latest_step()
        path = None if kept is None else self.ckpts.step_path(kept)
        where = (
            "no step had been trained, so nothing was saved" if path is None else f"saved checkpoint {path}"
        )
        message = (
            f"{signal.name}: training stopped at step {self.step} of {self.last_step}; {where}. "
            "Run the same command again to resume."
        )
        _say(message)
        raise TrainingInterrupted(message, signal=signal, step=self.step, checkpoint=path)

    def check_finite(self) -> None:
        """Raises NonFiniteLossError once a step went non-finite under ``on_nonfinite="stop"``."""
        if self.config.on_nonfinite != "stop":
            return
        bad = int(self.runner.get_metrics(jax.device_get(self.state.nonfinite_step)))
        if bad >= 0:
            self.ckpts.wait()
            kept = self.ckpts.latest_step()
            where = (
                f"the last good checkpoint is step {kept} in {self.ckpts.directory}"
                if kept is not None
                else "no checkpoint was saved"
            )
            raise NonFiniteLossError(
                f"loss or gradients became NaN/inf at step {bad + 1} (0-based step index {bad}); training stopped "
                f"and {where}. Lower the learning rate, or set on_nonfinite='skip' to drop such updates."
            )

    def close(self) -> None:
        """Flushes the metric files and waits for pending checkpoint writes."""
        self.writer.close()
        self.ckpts.close()

    def finish(self, wall_time: float) -> dict[str, Any]:
        """Writes curves.png, model.pt and summary.json, prints the summary line and returns the summary."""
        final_state = self.runner.get_state(self.state)
        metrics_lib.plot_curves(metrics_lib.read(self.writer.path), os.path.join(self.workdir, "curves.png"))
        _export_torch(self.config, final_state.params, self.workdir)
        summary = {
            "test_accuracy": self.test["test_accuracy"],
            "test_loss": self.test["test_loss"],
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "resumed_from_step": self.start_step,
            "wall_time_s": wall_time,
            "compile_time_s": self.compile_s,
            "train_time_s": self.train_time,
            "images_per_s": self.train_images / self.train_time if self.train_time else None,
            "skipped_steps": int(final_state.skipped_steps),
            "model": self.config.model,
            "parallel": self.config.parallel,
            "devices": self.runner.num_devices,
            "data_source": self.source,
        }
        _write_json(os.path.join(self.workdir, "summary.json"), summary)
        _say(
            f"summary: test_accuracy={summary['test_accuracy']:.4f} test_loss={summary['test_loss']:.4f} "
            f"step={self.step} epoch={summary['epoch']:.2f} wall_time={wall_time:.1f}s (compile {self.compile_s:.1f}s, "
            f"training {self.train_time:.1f}s at {summary['images_per_s'] or 0:.0f} images/s) workdir={self.workdir}"
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
    _say(f"data: {len(test_x)} test examples; {source}")
    test_x = data.normalize(test_x, config.normalize_mean, config.normalize_std)

    model = models.get(config.model)
    tx = optim.create_optimizer(config, optim.create_schedule(config, steps_per_epoch=1))
    template = state_lib.create(model, tx, config.seed, test_x.shape[1:])
    ckpts = checkpoint.Checkpoints(os.path.join(workdir, "checkpoints"), read_only=True)
    try:
        restored = ckpts.restore(template)
    finally:
        ckpts.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {ckpts.directory}")
    host_state, meta = restored
    runner = parallel.create(
        config.parallel, model.apply, tx, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
        microbatch_size=config.microbatch_size,
        example_bytes=steps.largest_activation_bytes(model.apply, host_state.params, test_x.shape[1:]),
    )
    state = runner.put_state(host_state)
    result = _evaluate(runner, state.params, test_x, test_y, config.eval_batch_size)
    result = {**result, "step": int(host_state.step), "epoch": meta["global_step"] / meta["steps_per_epoch"]}
    _say(
        f"eval: checkpoint step {result['step']}: test_accuracy={result['test_accuracy']:.4f} test_loss={result['test_loss']:.4f}"
    )
    return result


def _microbatch_text(per_device: int, microbatches: int) -> str:
    if microbatches == 1:
        return f"batch {per_device} per device"
    return f"batch {per_device} per device in {microbatches} microbatches of {per_device // microbatches}"


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


# Fields whose change makes a workdir's checkpoints unusable for this config.
_RUN_IDENTITY = ("model", "dataset", "optimizer", "batch_size")


def _record_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Writes ``config.json``, first printing how it differs from a previous run's.

    Refuses a config whose model, dataset, optimizer or batch size differs from
    the one that wrote the workdir's checkpoints: they could not be resumed.
    """
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        changed = config_lib.differences(config_lib.load_json(path), config)
        clash = {k: v for k, v in changed.items() if k in _RUN_IDENTITY}
        ckpt_dir = os.path.join(workdir, "checkpoints")
        if clash and os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
            raise ValueError(
                f"workdir {workdir} holds checkpoints of a different run ("
                + ", ".join(f"{k}={a!r} there, {b!r} here" for k, (a, b) in clash.items())
                + "); use a new workdir"
            )
        if changed:
            _say(
                "config differs from the previous run in this workdir: "
                + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            )
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


def evaluation_totals(
    runner: parallel.Runner, params, images: np.ndarray, labels: np.ndarray, batch_size: int
) -> dict[str, float]:
    """Summed test ``loss_sum``, ``correct`` and ``count``, each example counted once (the padded
    last batch is masked)."""
    outputs = [
        runner.eval_step(params, runner.put_batch({"image": x, "label": y, "mask": m}))
        for x, y, m in data.eval_batches(images, labels, batch_size=batch_size)
    ]
    return {
        k: sum(float(runner.get_metrics(o)[k]) for o in jax.device_get(outputs))
        for k in ("loss_sum", "correct", "count")
    }


def _evaluate(
    runner: parallel.Runner, params, images: np.ndarray, labels: np.ndarray, batch_size: int
) -> dict[str, float]:
    """Test loss and accuracy (`evaluation_totals` as means)."""
    totals = evaluation_totals(runner, params, images, labels, batch_size)
    return {
        "test_loss": totals["loss_sum"] / totals["count"],
        "test_accuracy": totals["correct"] / totals["count"],
    }


def _check_position(meta: dict[str, Any], step: int, steps_per_epoch: int, directory: str) -> None:
    """A checkpoint's data position must match this config's batching, or resuming would not replay it."""
    if meta["global_step"] != step or meta["steps_per_epoch"] != steps_per_epoch:
        raise ValueError(
            f"checkpoint step {step} in {directory} was taken with {meta['steps_per_epoch']} steps per epoch, this "
            f"config has {steps_per_epoch}: batch_size or the dataset changed; use a new workdir"
        )


def _fetch(runner: parallel.Runner, window: list[dict[str, jax.Array]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-step losses and correct counts of the steps in ``window``, on the host."""
    host = [runner.get_metrics(m) for m in jax.device_get(window)]
    return np.array([m["loss"] for m in host]), np.array([m["correct"] for m in host])


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
