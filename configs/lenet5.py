"""LeNet-5 with the training recipe of PyTorch's "Training a Classifier" tutorial.

SGD (lr 0.001, momentum 0.9), batch 4, 2 epochs, constant learning rate,
inputs normalised with mean 0.5 and std 0.5, as in that tutorial:

    python train.py --config=configs/lenet5.py --workdir=/tmp/jaxconv/lenet5 \
        --config.data_dir=../shared/datasets/mnist
"""

from configs import default


def get_config():
    config = default.get_config()  # Every field and its meaning: configs/default.py.
    config.model = "lenet5"  # conv 6/16 k5, fc 120/84/10 ("Neural Networks" tutorial).
    config.normalize_mean = (0.5,)  # transforms.Normalize((0.5,), (0.5,)).
    config.normalize_std = (0.5,)  # Maps [0, 1] pixels to [-1, 1].
    config.optimizer = "sgd"  # optim.SGD(net.parameters(), lr=0.001, momentum=0.9).
    config.learning_rate = 0.001  # lr=0.001.
    config.momentum = 0.9  # momentum=0.9.
    config.schedule = "constant"  # The tutorial has no scheduler.
    config.batch_size = 4  # DataLoader(batch_size=4, shuffle=True).
    config.num_epochs = 2  # for epoch in range(2).
    config.log_every_steps = 2000  # The tutorial prints the running loss every 2000 mini-batches.
    config.checkpoint_every_steps = 5000  # 15000 steps per epoch: checkpoint within epochs too.
    return config
