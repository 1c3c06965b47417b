"""Train or evaluate a jaxconv model on an MNIST recipe.

    python train.py --config=configs/default.py --workdir=/tmp/jaxconv/default \
        --config.data_dir=../shared/datasets/mnist
    python train.py --mode=eval --workdir=/tmp/jaxconv/default

Re-running a training command resumes from the workdir's latest checkpoint.
Eval mode reads the config saved in the workdir unless --config is given.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Recipe file (configs/*.py); override fields with --config.FIELD=VALUE."
)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.", required=True)
flags.DEFINE_enum(
    "mode", "train", ["train", "eval"], "train (or resume) the recipe, or evaluate the latest checkpoint."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO.
    from jaxconv import train  # After flag parsing: --help stays fast.

    if FLAGS.mode == "eval":
        train.evaluate(FLAGS.config, FLAGS.workdir)
        return
    if FLAGS.config is None:
        raise app.UsageError("--config is required in train mode")
    try:
        train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except train.NonFiniteLossError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main)
