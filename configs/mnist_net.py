"""pytorch/examples mnist/main.py (which reports ~99% test accuracy).

Adadelta (lr 1.0), StepLR (gamma 0.7, stepped every epoch), batch 64,
14 epochs, inputs normalised with (0.1307, 0.3081); the network ends in
log_softmax and is trained with NLL (= cross-entropy of its log-probabilities):

    python train.py --config=configs/mnist_net.py --workdir=/tmp/jaxconv/mnist_net \
        --config.data_dir=../shared/datasets/mnist
"""

from configs import default


def get_config():
    config = default.get_config()  # Every field and its meaning: configs/default.py.
    config.model = "mnist_net"  # conv 32/64 k3, dropout 0.25/0.5, fc 9216->128->10, log_softmax.
    config.normalize_mean = (0.1307,)  # transforms.Normalize((0.1307,), (0.3081,)).
    config.normalize_std = (0.3081,)  # MNIST training-set mean and std.
    config.optimizer = "adadelta"  # optim.Adadelta(model.parameters(), lr=args.lr).
    config.learning_rate = 1.0  # --lr default 1.0.
    config.schedule = "step"  # StepLR(optimizer, step_size=1, gamma=args.gamma), stepped after each epoch.
    config.step_gamma = 0.7  # --gamma default 0.7.
    config.step_every_epochs = 1  # step_size=1.
    config.batch_size = 64  # --batch-size default 64.
    config.num_epochs = 14  # --epochs default 14.
    config.log_every_steps = 10  # --log-interval default 10.
    config.checkpoint_every_steps = 200  # Slow on a CPU: checkpoint within epochs too.
    return config
