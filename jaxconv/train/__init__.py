"""Training and evaluation of jaxconv models on the PyTorch MNIST tutorial recipes.

``train_and_evaluate(config, workdir)`` trains, checkpoints, resumes and
reports; ``evaluate(config, workdir)`` scores a workdir's latest checkpoint.
``train.py`` at the repository root is the command-line front end.
"""

from jaxconv.train.checkpoint import CheckpointRestoreError, CheckpointSaveError
from jaxconv.train.config import validate
from jaxconv.train.loop import NonFiniteLossError, TrainingInterrupted, evaluate, train_and_evaluate

__all__ = [
    "CheckpointRestoreError",
    "CheckpointSaveError",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "evaluate",
    "train_and_evaluate",
    "validate",
]
