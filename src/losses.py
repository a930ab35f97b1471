"""Training losses, on the 0..255 scale of the network's inputs and outputs."""
import mindspore as ms
from mindspore import nn, ops


class L1Loss(nn.Cell):
    """Mean absolute error over every element (the official L1, in 0..255 units)."""

    def construct(self, pred, target):
        return ops.abs(pred - target).mean()


class SupConLoss(nn.Cell):
    """Supervised-contrastive loss of IPT's pre-training on the body's output tokens (N, T, D).

    Tokens are L2-normalised; every token is an anchor; its positives are the other T - 1 tokens of the same image,
    the denominator runs over every other token of its group (the same image's and other images'):

        loss_i = -1/(T-1) * sum_{p positive} log( exp(s_ip / t) / sum_{a != i} exp(s_ia / t) ),  s = cosine

    averaged over all N * T anchors (the SupCon form of the official MindSpore trainer, base temperature = t).
    ``groups`` > 1 splits the batch into groups of images (image n in group n % groups) that do not see each other,
    which is what ``groups`` data-parallel ranks compute between them (rank r holds images r, r + groups, ...): a
    single process reproduces a data-parallel run exactly with it. The logits are shifted by the constant 1/t, the
    largest cosine (a token with itself), where the textbook form subtracts the row maximum, which is that same
    self term.

    The native form: the one matrix product is the (R, R) cosine table; norms and every sum are ReduceSum vector
    ops over masks, in float32 (the cpu form, ``cpu_kernels.CpuSupConLoss``, takes them by MatMul).
    """

    def __init__(self, temperature=0.07, groups=1):
        super().__init__()
        self.temperature = float(temperature)
        self.groups = int(groups)
        self.matmul_tb = ops.MatMul(transpose_b=True)
        self.row_sum = ops.ReduceSum(keep_dims=True)

    def construct(self, tokens):
        n, t, d = tokens.shape
        rows = n * t
        z = tokens.reshape(rows, d)
        z = z * (1.0 / ops.sqrt(ops.maximum(self.row_sum(z * z, -1), 1e-24)))  # z / max(|z|, 1e-12)
        cosines = self.matmul_tb(z, z)  # (R, R)
        image = ops.arange(0, rows, 1, dtype=ms.int32) // t
        group = image % self.groups
        others = 1.0 - ops.eye(rows, rows, ms.float32)
        same_image = (image.reshape(-1, 1) == image.reshape(1, -1)).astype(ms.float32) * others
        same_group = (group.reshape(-1, 1) == group.reshape(1, -1)).astype(ms.float32) * others
        denominator = self.row_sum(ops.exp((cosines - 1.0) / self.temperature) * same_group, -1)  # (R, 1)
        positive_logits = (self.row_sum(cosines * same_image, -1) - (t - 1)) / self.temperature
        per_anchor = positive_logits / (t - 1) - ops.log(denominator)
        return -per_anchor.mean()


class RestorationLoss(nn.Cell):
    """``criterion(net(lr), hr)`` (+ ``contrastive_weight * contrastive(tokens)`` when ``contrastive`` is given and
    ``net`` returns (output, body tokens)): the scalar one task's training step differentiates.

    Returns (total, L1 part, contrastive part); the contrastive part is 0 without it. The L1 path runs through
    head, body and tail (the official MindSpore trainer's contrastive branch applied the tail to the head's output).
    Keeps the parameter names of ``net`` (no prefix), so checkpoints and optimizer state use the model's names.
    """

    def __init__(self, net, criterion, contrastive=None, contrastive_weight=0.0):
        super().__init__(auto_prefix=False)
        self.net = net
        self.criterion = criterion
        self.contrastive = contrastive
        self.contrastive_weight = float(contrastive_weight)

    def construct(self, lr, hr):
        if self.contrastive is None:
            l1 = self.criterion(self.net(lr), hr)
            return l1, l1, ops.zeros((), ms.float32)
        out, tokens = self.net(lr)
        l1 = self.criterion(out, hr)
        con = self.contrastive(tokens)
        return l1 + self.contrastive_weight * con, l1, con
