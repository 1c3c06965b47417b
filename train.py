"""Train or evaluate a jaxconv model on an MNIST recipe.

    python train.py                                   # configs/default.py in runs/default
    python train.py --config=configs/lenet5.py --config.data_dir=../shared/datasets/mnist
    python train.py --workdir=/tmp/jaxconv/quick --config.num_epochs=1 --config.max_steps=200
    python train.py --mode=eval --workdir=runs/default

--config defaults to configs/default.py next to this file (wherever it is run
from); --workdir defaults to runs/<config file stem> under the current
directory. Any config field can be overridden with --config.FIELD=VALUE.

Re-running a training command resumes from the workdir's latest checkpoint
(one that cannot be read is skipped, with a warning, for an older one).
SIGTERM or Ctrl-C (SIGINT) stops training after the current step, saves a
checkpoint and prints where; re-running the same command resumes exactly.
The exit status is then 0 after SIGTERM (a scheduler's preemption or `docker
stop` is not a failure) and 130 after SIGINT (the shell convention, so
`train.py && next` stops at Ctrl-C). A second signal aborts at once, without
saving. Errors (NaN loss, a checkpoint that cannot be saved or read) exit 1.

Before JAX starts, glibc's malloc is told to keep freed memory for reuse
(jaxconv.runtime.reuse_host_memory, for XLA:CPU; --noreuse_host_memory leaves it).

Eval mode reads the config saved in the workdir unless --config is given;
--config.FIELD=VALUE overrides apply to that saved config too (e.g. a moved
data_dir).
"""

import os
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config",
    DEFAULT_CONFIG,
    "Recipe file (configs/*.py; default: configs/default.py next to train.py); override fields with "
    "--config.FIELD=VALUE.",
)
flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics and outputs (default: runs/<config stem>)."
)
flags.DEFINE_enum(
    "mode", "train", ["train", "eval"], "train (or resume) the recipe, or evaluate the latest checkpoint."
)
flags.DEFINE_bool(
    "reuse_host_memory", True,
    "Keep freed host memory for reuse (jaxconv.runtime.reuse_host_memory): XLA:CPU steps skip ~17k page "
    "faults each (mnist_net); --noreuse_host_memory leaves malloc's defaults.",
)

# Exit status after a clean stop on each signal (see the module docstring).
EXIT_STATUS = {signal.SIGTERM: 0, signal.SIGINT: 128 + signal.SIGINT}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO.
    if FLAGS.reuse_host_memory:
        from jaxconv import runtime

        runtime.reuse_host_memory()  # Before JAX's first computation, as it must be.
    from jaxconv import train  # After flag parsing: --help stays fast.

    workdir = FLAGS.workdir or default_workdir()
    try:
        if FLAGS.mode == "eval":
            train.evaluate(eval_config(workdir), workdir)
        else:
            train.train_and_evaluate(FLAGS.config, workdir)
    except train.TrainingInterrupted as e:
        sys.exit(EXIT_STATUS.get(e.signal, 1))
    except (train.NonFiniteLossError, train.CheckpointSaveError, train.CheckpointRestoreError) as e:
        sys.exit(f"error: {e}")


def default_workdir() -> str:
    """runs/<stem of the config file> under the current directory."""
    stem = os.path.splitext(os.path.basename(config_flags.get_config_filename(FLAGS["config"])))[0]
    return os.path.join("runs", stem)


def eval_config(workdir: str):
    """--config if given, else None (evaluate reads the workdir's config.json) or that file with the overrides."""
    if FLAGS["config"].present:
        return FLAGS.config
    overrides = config_flags.get_override_values(FLAGS["config"])
    path = os.path.join(workdir, "config.json")
    if not overrides or not os.path.exists(path):
        return None
    from jaxconv.train import config as config_lib

    config = config_lib.load_json(path)
    for name, value in overrides.items():
        config[name] = value
    return config


if __name__ == "__main__":
    app.run(main)
