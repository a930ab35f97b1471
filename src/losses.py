"""Training losses, on the 0..255 scale of the network's inputs and outputs."""
from mindspore import nn, ops


class L1Loss(nn.Cell):
    """Mean absolute error over every element (the official L1, in 0..255 units)."""

    def construct(self, pred, target):
        return ops.abs(pred - target).mean()


class RestorationLoss(nn.Cell):
    """``criterion(net(lr), hr)``: the scalar that one task's training step differentiates.

    Keeps the parameter names of ``net`` (no prefix), so checkpoints and optimizer state use the model's names.
    """

    def __init__(self, net, criterion):
        super().__init__(auto_prefix=False)
        self.net = net
        self.criterion = criterion

    def construct(self, lr, hr):
        return self.criterion(self.net(lr), hr)
