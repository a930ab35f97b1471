"""The ``cpu`` graph form: IPT's cells rewritten for the speed of MindSpore 2.10's CPU kernels.

Same parameters, names and arithmetic as ``layers.py`` (each class here subclasses the native cell and only changes
how it computes), so every checkpoint loads into both forms and they agree to float32 rounding. Chosen by
``graph_form: cpu`` (``auto`` picks it on CPU; ``src/models/forms.py``).

The constraint these cells serve, and why they stay off Ascend and GPU: MindSpore 2.10's CPU LayerNorm, softmax
gradient, last-axis reductions, broadcasting adds and gather gradients are slow scalar or generic loops, so here
row means, row sums and outer products are MatMuls against constant 1/dim or ones vectors, per-row shifts are
BiasAdds, and several cells carry a hand-written ``bprop``. On a matrix unit that runs float32 MatMuls in float16
(Ascend's Cube by default; the 310 always) those statistics overflow and the output is destroyed (tested by Cube
emulation in tests/test_graph_forms.py), and the extra kernels cost launches where nothing fuses them. This form
is therefore float32 only. The timings behind each choice are in benchmarks/README.md.
"""
import math

import numpy as np
import mindspore as ms
from mindspore import nn, ops

from src.losses import SupConLoss
from src.models.layers import SELF_ATTENTION, LayerNorm, Linear, MultiheadAttention


class RowBiasAdd(nn.Cell):
    """``ops.BiasAdd`` of a (C,) vector to every row of a 2-D (R, C) array, whose bias gradient is a column ReduceSum:
    MindSpore 2.10's CPU BiasAddGrad is a slow generic loop (timings in benchmarks/README.md)."""

    def __init__(self):
        super().__init__()
        self.bias_add = ops.BiasAdd()
        self.col_sum = ops.ReduceSum(keep_dims=False)

    def construct(self, x, bias):
        return self.bias_add(x, bias)

    def bprop(self, x, bias, out, dout):
        return dout, self.col_sum(dout, 0)


class CpuLinear(Linear):
    """``layers.Linear`` with the bias added by ``RowBiasAdd``, and two more ways to call it: with its weight scaled
    by a constant (``with_weight_scale``) and on inputs given as columns (``from_columns``)."""

    def __init__(self, in_features, out_features, has_bias=True):
        super().__init__(in_features, out_features, has_bias)
        self.matmul_tt = ops.MatMul(transpose_a=True, transpose_b=True)
        self.row_bias_add = RowBiasAdd()

    def construct(self, x):
        return self.with_weight_scale(x, 1.0)

    def with_weight_scale(self, x, factor):
        """x (factor W)^T + b: the layer with its weight scaled by a constant (``CpuMultiheadAttention``)."""
        lead = x.shape[:-1]
        weight = self.weight if factor == 1.0 else self.weight * factor
        y = self.matmul(x.reshape(-1, self.in_features), weight)
        return self._add_bias(y).reshape(lead + (self.out_features,))

    def from_columns(self, x_t):
        """The same layer on inputs given as the columns of ``x_t`` (in, R): returns (R, out) = x_t^T W^T + b."""
        return self._add_bias(self.matmul_tt(x_t, self.weight))

    def _add_bias(self, y):
        """y (R, out) + b, when the layer has a bias: ``RowBiasAdd``, not ``y + self.bias`` (see ``CpuAddTable``)."""
        if self.has_bias:
            y = self.row_bias_add(y, self.bias)
        return y


class CpuLayerNorm(LayerNorm):
    """``layers.LayerNorm`` computed by ``RowNorm``: MindSpore 2.10's CPU LayerNorm and LayerNormGrad kernels are
    scalar loops (timings in benchmarks/README.md)."""

    def __init__(self, dim, eps=1e-5):
        super().__init__(dim, eps)
        self.norm = RowNorm(dim, eps)

    def construct(self, x):
        y, _, _ = self.norm(x.reshape(-1, x.shape[-1]), self.gamma, self.beta)
        return y.reshape(x.shape)


class RowNorm(nn.Cell):
    """Layer normalisation of the rows of a 2-D float32 array, gamma and beta as inputs; returns (y, -mean, rstd).

    Written with MatMul (row means against a 1/dim vector, outer products that spread a per-row or per-column vector
    over the array), BiasAdd (per-row shifts), element-wise Mul and a column ReduceSum, forward and backward (``bprop``,
    the textbook gradient). Two-pass (centred) variance as PyTorch's kernel. ``-mean`` and ``rstd`` (R, 1) are for the
    backward, not differentiable.
    """

    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.mean_weights = ms.Tensor(np.full((dim, 1), 1.0 / dim, np.float32))
        self.neg_mean_weights = ms.Tensor(np.full((dim, 1), -1.0 / dim, np.float32))  # saves a Neg kernel per use
        self.ones_row = ms.Tensor(np.ones((1, dim), np.float32))
        self.matmul = ops.MatMul()
        self.bias_add = ops.BiasAdd()
        self.col_sum = ops.ReduceSum(keep_dims=False)
        self.real_div = ops.RealDiv()
        self.one = ms.Tensor(np.ones((1, 1), np.float32))
        self.onnx_ops = False  # see layers.use_onnx_ops

    def _row_mean(self, x):
        return self.matmul(x, self.mean_weights)  # (R, 1)

    def _neg_row_mean(self, x):
        return self.matmul(x, self.neg_mean_weights)  # (R, 1)

    def _shift_rows(self, x, shift):
        """x + shift[r] for every row r; shift (R, 1). With ``onnx_ops`` a broadcasting Add (the same sums): MindSpore
        2.10 exports BiasAdd to ONNX as an Add over the last axis, see ``layers.channel_bias_add``."""
        if self.onnx_ops:
            return x + shift
        return shift_rows(x, shift, self.bias_add)

    def construct(self, x, gamma, beta):
        neg_mean = self._neg_row_mean(x)
        centred = self._shift_rows(x, neg_mean)
        var_eps = self._row_mean(centred * centred) + self.eps
        if self.onnx_ops:  # MindSpore 2.10 exports neither Rsqrt nor Reciprocal to ONNX: 1 / sqrt as RealDiv
            rstd = self.real_div(self.one, ops.sqrt(var_eps))
        else:  # one kernel instead of two
            rstd = ops.rsqrt(var_eps)
        y = self.bias_add(centred * self.matmul(rstd, gamma.reshape(1, -1)), beta)  # (x - mean) * rstd * gamma + beta
        return y, neg_mean, rstd

    def bprop(self, x, gamma, beta, out, dout):
        _, neg_mean, rstd = out
        dy = dout[0]
        spread_rstd = self.matmul(rstd, self.ones_row)
        xhat = self._shift_rows(x, neg_mean) * spread_rstd
        g = dy * self.matmul(ops.ones((x.shape[0], 1), ms.float32), gamma.reshape(1, -1))  # dy * gamma
        # dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), per row
        dx = spread_rstd * g + self.matmul(rstd * self._neg_row_mean(g * xhat), self.ones_row) * xhat
        dx = self._shift_rows(dx, rstd * self._neg_row_mean(g))
        return dx, self.col_sum(dy * xhat, 0), self.col_sum(dy, 0)


class CpuAddTable(nn.Cell):
    """``x + table`` for x (N, *S) and table (*S), i.e. the same table added to every sample, as one BiasAdd.

    Same arithmetic as the broadcasting Add, but MindSpore 2.10's CPU runtime handles a broadcasting Add badly in
    graph mode: it is slow and keeps several full-size buffers per call alive until the end of the graph (a 20-step
    chain of broadcast adds grows the peak RSS by many times what the BiasAdd version does; benchmarks/README.md).
    """

    def __init__(self):
        super().__init__()
        self.bias_add = RowBiasAdd()

    def construct(self, x, table):
        n = x.shape[0]
        return self.bias_add(x.reshape(n, -1), table.reshape(-1)).reshape(x.shape)


class CpuMultiheadAttention(MultiheadAttention):
    """``layers.MultiheadAttention`` with heads moved by row gathers or taken feature-major, and the softmax gradient
    written out (``Softmax``).

    For a batch of several images the projections are token-major, (N*L, D), and each head's (L, head_dim) rows are
    gathered into head-major order (``head_rows``), then merged back the same way: on CPU each Transpose output stays
    alive until the end of the graph. For one image the projections are taken feature-major instead, W x^T (D, L),
    whose rows are already head-major: (H, head_dim, L) is a reshape, scores and mixing are batched matmuls on
    transposed operands, and ``out_proj`` reads the (D, L) result as columns (``CpuLinear.from_columns``): no copies,
    which makes the batch-1 forward (the tiler's default) faster on CPU.

    The 1/sqrt(head_dim) scale of the scores: for one image on the queries; for several on the weights: W_q by the
    scale, W_q|W_k by its square root, the encoder's packed W_q|W_k|W_v by the square root with ``out_proj``'s weight
    by the inverse (for v), which saves a Mul over the (N*L, D) queries.
    """

    linear_cell = CpuLinear

    def __init__(self, dim, num_heads, num_tokens, out_proj_bias=False, blocks=SELF_ATTENTION):
        super().__init__(dim, num_heads, num_tokens, out_proj_bias, blocks)
        self.softmax = Softmax(num_tokens)
        # Head split/merge as row permutations (see ``head_rows``): split into 1, 2 or 3 parts of a packed projection.
        self.split = nn.CellList([RowPermutation([head_rows(num_tokens, num_heads, part, parts)
                                                  for part in range(parts)]) for parts in (1, 2, 3)])
        self.merge = RowPermutation([np.argsort(head_rows(num_tokens, num_heads, 0, 1))])
        self.scores_by_columns = ops.BatchMatMul(transpose_a=True)
        self.mix_by_columns = ops.BatchMatMul(transpose_b=True)
        self.root_scale = math.sqrt(self.scale)
        self.out_proj_scale = 1.0 / self.root_scale if self.blocks == SELF_ATTENTION else 1.0

    def _project(self, x, weight, factor=1.0):
        """x (N, L, D) -> x @ (factor * weight)^T, (N*L, rows of weight)."""
        if factor != 1.0:
            weight = weight * factor
        return self.matmul(x.reshape(-1, self.dim), weight)

    def _gather_heads(self, proj, n, parts):
        """(N*L, parts*D) projection -> ``parts`` tensors (N, H, L, head_dim): q|k|v and heads split by row gathers."""
        rows = self.split[parts - 1](proj.reshape(n, -1, self.head_dim))  # ``parts`` x (N, H*L, hd)
        return [r.reshape(n, self.num_heads, -1, self.head_dim) for r in rows]

    def attend(self, q, k, v, n):
        """q, k, v: (N, H, L, head_dim), the scores' scale already in q and k -> (N, L, D), out_proj included."""
        probs = self.softmax(self.scores(q, k))
        out = self.mix(probs, v)  # (N, H, L, hd)
        out = self.merge(out.reshape(n, -1, self.head_dim))[0]  # (N, L*H, hd)
        return self.out_proj.with_weight_scale(out.reshape(n, -1, self.dim), self.out_proj_scale)

    def _heads_by_columns(self, x, weight, parts):
        """One image's x (1, L, D) -> ``parts`` tensors (H, head_dim, L): weight @ x^T split by rows (see the class)."""
        proj = self.matmul(weight, x.reshape(-1, self.dim))  # (parts*D, L)
        rows = ops.split(proj, self.dim, 0) if parts > 1 else (proj,)
        return [r.reshape(self.num_heads, self.head_dim, -1) for r in rows]

    def attend_by_columns(self, q, k, v):
        """q, k, v: (H, head_dim, L) of one image -> (1, L, D), out_proj included."""
        probs = self.softmax(self.scores_by_columns(q * self.scale, k))  # (H, L, L)
        out = self.mix_by_columns(v, probs)  # (H, hd, L): the output's columns
        return self.out_proj.from_columns(out.reshape(self.dim, -1)).reshape(1, -1, self.dim)

    def self_attention(self, x):
        n = x.shape[0]
        if n == 1:
            return self.attend_by_columns(*self._heads_by_columns(x, self.in_proj_weight, 3))
        q, k, v = self._gather_heads(self._project(x, self.in_proj_weight, self.root_scale), n, 3)
        return self.attend(q, k, v, n)

    def query_key_attention(self, qk, v):
        n = qk.shape[0]
        if n == 1:
            q, k = self._heads_by_columns(qk, self.in_proj_weight_qk, 2)
            return self.attend_by_columns(q, k, self._heads_by_columns(v, self.in_proj_weight_v, 1)[0])
        q, k = self._gather_heads(self._project(qk, self.in_proj_weight_qk, self.root_scale), n, 2)
        v = self._gather_heads(self._project(v, self.in_proj_weight_v), n, 1)[0]
        return self.attend(q, k, v, n)

    def cross_attention(self, q, kv):
        n = q.shape[0]
        if n == 1:
            k, v = self._heads_by_columns(kv, self.in_proj_weight_kv, 2)
            return self.attend_by_columns(self._heads_by_columns(q, self.in_proj_weight_q, 1)[0], k, v)
        k, v = self._gather_heads(self._project(kv, self.in_proj_weight_kv), n, 2)
        q = self._gather_heads(self._project(q, self.in_proj_weight_q, self.scale), n, 1)[0]
        return self.attend(q, k, v, n)


class Softmax(nn.Cell):
    """Softmax over the last axis (of length ``size``), with its backward written out for speed.

    dx = y * (dy - sum(dy * y)) over the last axis, with the row sums as a MatMul against a ones vector and the
    subtraction as a BiasAdd over rows. The same arithmetic as MindSpore's own softmax gradient, whose last-axis
    ReduceSum and broadcasting Sub are generic loops on CPU (timings in benchmarks/README.md).
    """

    def __init__(self, size):
        super().__init__()
        self.softmax = ops.Softmax(axis=-1)
        self.row_sum = ops.MatMul()
        self.bias_add = ops.BiasAdd()
        self.ones = ms.Tensor(np.ones((size, 1), np.float32))

    def construct(self, x):
        return self.softmax(x)

    def bprop(self, x, out, dout):
        size = out.shape[-1]
        total = self.row_sum((dout * out).reshape(-1, size), self.ones)  # (rows, 1)
        centred = shift_rows(dout.reshape(-1, size), -total, self.bias_add)  # dy - sum, per row
        return (centred.reshape(out.shape) * out,)


class RowPermutation(nn.Cell):
    """Takes rows of x (N, R, k) along axis 1 by fixed indices, one output per index list: together the lists are a
    permutation of range(R). Forward: ``ops.gather`` per list. Backward: the gradients concatenated and gathered by
    the inverse permutation, a plain copy, where MindSpore's own gather gradient is a scatter-add
    (UnsortedSegmentSum) wrapped in two Transposes, far slower on CPU in the training step. Values are never changed.
    """

    def __init__(self, index_lists):
        super().__init__()
        index_lists = [np.asarray(i, np.int64) for i in index_lists]
        full = np.concatenate(index_lists)
        if not np.array_equal(np.sort(full), np.arange(full.size)):
            raise ValueError("RowPermutation: the index lists together must be a permutation of range(rows)")
        self.index = [ms.Tensor(i.astype(np.int32)) for i in index_lists]
        self.inverse = ms.Tensor(np.argsort(full).astype(np.int32))
        self.concat = ops.Concat(axis=1)

    def construct(self, x):
        return tuple(ops.gather(x, i, 1) for i in self.index)

    def bprop(self, x, out, dout):
        grads = dout[0] if len(dout) == 1 else self.concat(dout)
        return (ops.gather(grads, self.inverse, 1),)


def shift_rows(x, shift, bias_add):
    """x + shift[r] for every row r of a 2-D x, shift (R, 1) or (R,): one ``bias_add`` (an ``ops.BiasAdd()``) on a
    (1, R, C) view, whose channel axis is the rows. MindSpore 2.10's CPU broadcasting Add/Sub of an (R, 1) column
    is a slower generic loop (timings in benchmarks/README.md)."""
    return bias_add(x.reshape((1,) + x.shape), shift.reshape(-1)).reshape(x.shape)


def head_rows(num_tokens, num_heads, part, parts):
    """Row index that takes part ``part`` of a packed projection, seen as (L, parts, H) rows of head_dim values, to
    head-major order (H, L): output row h*L + l is input row (l*parts + part)*H + h.

    Splitting heads is a permutation of head_dim-long rows, so ``ops.gather`` does it with contiguous row copies: in
    MindSpore 2.10 graph mode on CPU both the fastest way and the only one that frees its memory (see
    ``CpuMultiheadAttention``). Values are copied, never changed.
    """
    token, head = np.meshgrid(np.arange(num_tokens), np.arange(num_heads))  # (H, L) grids
    return ((token * parts + part) * num_heads + head).reshape(-1).astype(np.int32)


class CpuSupConLoss(SupConLoss):
    """``losses.SupConLoss`` (the same loss, arguments and docstring formula) written for MindSpore 2.10's CPU
    kernels: MatMuls (row sums, per-image sums) and element-wise ops only. The CPU ReduceSum/ReduceMax over the
    last axis and broadcasting ops, and their gradients, made the masked form a large share of the training step
    (benchmarks/README.md).
    """

    def __init__(self, temperature=0.07, groups=1):
        super().__init__(temperature, groups)
        self.matmul = ops.MatMul()
        self.matmul_ta = ops.MatMul(transpose_a=True)

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
