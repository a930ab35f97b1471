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
    single process reproduces a data-parallel run exactly with it.

    Written for speed with MatMuls (row sums, per-image sums) and element-wise ops only: MindSpore 2.10's CPU
    ReduceSum/ReduceMax over the last axis and broadcasting ops, and their gradients, made the masked textbook form
    cost about 0.9 s of a 2048-token training step. The logits are shifted by the constant 1/t, the largest cosine
    (a token with itself), where the textbook form subtracts the row maximum, which is that same self term.
    """

    def __init__(self, temperature=0.07, groups=1):
        super().__init__()
        self.temperature = float(temperature)
        self.groups = int(groups)
        self.matmul = ops.MatMul()
        self.matmul_ta = ops.MatMul(transpose_a=True)
        self.matmul_tb = ops.MatMul(transpose_b=True)

    def _row_sum(self, x):
        return self.matmul(x, ops.ones((x.shape[1], 1), ms.float32))  # (R, 1)

    def _one_hot(self, labels, classes):
        return (labels.reshape(-1, 1) == ops.arange(0, classes, 1, dtype=ms.int32).reshape(1, -1)).astype(ms.float32)

    def construct(self, tokens):
        n, t, d = tokens.shape
        rows = n * t
        z = tokens.reshape(rows, d)
        # z / max(|z|, 1e-12), the norm spread over the row by an outer product (no broadcasting op, no Rsqrt)
        inv_norm = 1.0 / ops.sqrt(ops.maximum(self._row_sum(z * z), 1e-24))
        z = z * self.matmul(inv_norm, ops.ones((1, d), ms.float32))
        image = ops.arange(0, rows, 1, dtype=ms.int32) // t
        in_image = self._one_hot(image, n)  # (R, n)
        in_group = self._one_hot(image % self.groups, self.groups)  # (R, groups)
        # denominator: exp(logit) of every other token of the anchor's group
        others = 1.0 - ops.eye(rows, rows, ms.float32)
        scaled = ops.exp((self.matmul_tb(z, z) - 1.0) / self.temperature) * others  # (R, R), self term removed
        denominator = self._row_sum(self.matmul(scaled, in_group) * in_group)  # (R, 1)
        # sum of the anchor's T - 1 positive logits: z_i . (sum of its image's tokens) - z_i . z_i, shifted by 1/t
        image_sums = self.matmul(in_image, self.matmul_ta(in_image, z))  # (R, d): row i = sum over i's image
        cosines = self._row_sum(z * image_sums) - self._row_sum(z * z)
        positive_logits = (cosines - (t - 1)) / self.temperature
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
