"""The classic PyTorch MNIST ConvNet tutorial recipe (which reports 97.8% test accuracy).

SGD (lr 0.001, momentum 0.9), batch 100, 10 epochs, constant learning rate,
inputs normalised with mean 0.5 and std 0.5:

    python train.py --config=configs/convnet.py --workdir=/tmp/jaxconv/convnet \
        --config.data_dir=../shared/datasets/mnist
"""

from configs import default


def get_config():
    config = default.get_config()  # Every field and its meaning: configs/default.py.
    config.model = "convnet"  # conv 10/20 k5, fc 320->50->10.
    config.normalize_mean = (0.5,)  # transforms.Normalize((0.5,), (0.5,)).
    config.normalize_std = (0.5,)  # Maps [0, 1] pixels to [-1, 1].
    config.optimizer = "sgd"  # optim.SGD(lr=0.001, momentum=0.9).
    config.learning_rate = 0.001  # lr=0.001.
    config.momentum = 0.9  # momentum=0.9.
    config.schedule = "constant"  # No scheduler in the tutorial.
    config.batch_size = 100  # batch_size = 100.
    config.num_epochs = 10  # num_epochs = 10.
    config.log_every_steps = 100  # The tutorial prints every 100 steps.
    return config
