"""Default recipe: ConvNet, Adam with a one-cycle schedule, 3 epochs of batch 128.

A fast route to ~99% MNIST test accuracy on a small CPU (see docs/recipes.md):

    python train.py --config=configs/default.py --workdir=/tmp/jaxconv/default \
        --config.data_dir=../shared/datasets/mnist

Every recipe in configs/ starts from this one and sets exactly these fields
(``jaxconv.train.config.FIELDS``); any field can be overridden on the command
line, e.g. ``--config.num_epochs=1 --config.max_steps=200``.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
    config = config_dict.ConfigDict()

    # Model and data.
    config.model = "convnet"  # Name in jaxconv.models: lenet5, convnet, mnist_net, cifar_cnn.
    config.dataset = "mnist"  # tfds name; read from IDX files, tfds or the shipped sample (jaxconv.data).
    # Folder with the IDX files; None: $JAXCONV_DATA_DIR, then tfds, then the shipped sample.
    config.data_dir = config_dict.placeholder(str)
    config.normalize_mean = (0.1307,)  # Per-channel mean, subtracted from pixels scaled to [0, 1].
    config.normalize_std = (0.3081,)  # Per-channel std divided by after subtracting the mean.

    # Optimizer (PyTorch semantics; fields an optimizer does not use are ignored).
    config.optimizer = "adam"  # sgd | adam | adamw | adadelta.
    config.learning_rate = 0.01  # Peak learning rate of the schedule.
    config.momentum = 0.9  # sgd: momentum (0 for none).
    config.nesterov = False  # sgd: Nesterov momentum.
    config.weight_decay = 0.0  # L2 added to the gradient (adamw: decoupled weight decay).
    config.b1 = 0.9  # adam/adamw: beta1.
    config.b2 = 0.999  # adam/adamw: beta2.
    config.rho = 0.9  # adadelta: running-average coefficient.
    config.eps = config_dict.placeholder(float)  # None: PyTorch's default (adam 1e-8, adadelta 1e-6).

    # Learning-rate schedule over num_epochs (max_steps does not reshape it).
    config.schedule = "onecycle"  # constant | cosine | onecycle | step (StepLR, stepped each epoch).
    config.warmup_epochs = 0.9  # cosine: linear warmup; onecycle: rise to the peak (pct_start * num_epochs).
    config.step_gamma = 0.7  # step: learning-rate factor every step_every_epochs.
    config.step_every_epochs = 1  # step: epochs between decays.

    # Training length and batching.
    config.batch_size = 128  # Global training batch; must divide by the device count when parallel.
    config.eval_batch_size = 1000  # Test batch (the last one is padded and masked).
    # Examples per gradient microbatch of each device's batch (same update, less memory; must divide
    # it); None: on CPU cache-sized microbatches where the model's activations are large (faster;
    # jaxconv.train.steps.num_microbatches), elsewhere the whole batch.
    config.microbatch_size = config_dict.placeholder(int)
    config.num_epochs = 3  # Epochs over the training split (incomplete last batches are dropped).
    config.max_steps = config_dict.placeholder(int)  # Stop after this many steps (short runs); None: all.
    config.seed = 0  # Seeds params init, dropout and shuffling.

    # Devices.
    config.parallel = "none"  # none | pmap | sharded (jit over a Mesh): data parallel over all local devices.

    # Checkpoints, logging, evaluation and outputs.
    config.checkpoint_every_steps = 0  # Extra checkpoints every this many steps (0: only at epoch ends).
    config.keep_checkpoints = 2  # Latest checkpoints kept, besides the best by test accuracy.
    config.log_every_steps = 50  # Steps between train-metric records (metrics.jsonl, TensorBoard, bar).
    config.eval_every_epochs = 1  # Epochs between test evaluations (the last epoch is always evaluated).
    config.on_nonfinite = "stop"  # NaN/inf loss: stop (keeping the last good checkpoint) | skip the update.
    config.export_torch = True  # Write the final params as a PyTorch state_dict to <workdir>/model.pt.

    return config
