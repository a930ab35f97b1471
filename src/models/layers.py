"""Building blocks of IPT, with one switch for mixed precision.

Every layer takes ``compute_dtype``: with float32 nothing is cast; with float16 the matmuls and convolutions run in
float16 (Ascend/GPU) while LayerNorm, softmax, biases and the residual stream stay float32. Parameters are always
float32. The graph is the same on every device; only the dtype switch differs.
"""
import math

import numpy as np
import mindspore as ms
from mindspore import nn, ops, Parameter
from mindspore.common.initializer import initializer, HeUniform, Uniform, Normal

FP32 = ms.float32


def _uniform_bias(fan_in):
    return Uniform(1.0 / math.sqrt(fan_in))


class _Precision(nn.Cell):
    """Mixin-like base: ``_in`` casts an operand to the compute dtype, ``_out`` back to float32."""

    def __init__(self, compute_dtype=FP32):
        super().__init__()
        self.half = compute_dtype != FP32
        self.compute_dtype = compute_dtype

    def _in(self, x):
        if self.half:
            return ops.cast(x, self.compute_dtype)
        return x

    def _out(self, x):
        if self.half:
            return ops.cast(x, FP32)
        return x


class Linear(_Precision):
    """y = x W^T + b over the last axis; W is (out, in) as in PyTorch. Initialised like torch.nn.Linear."""

    def __init__(self, in_features, out_features, has_bias=True, compute_dtype=FP32):
        super().__init__(compute_dtype)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(initializer(HeUniform(negative_slope=math.sqrt(5)), (out_features, in_features), FP32),
                                name="weight")
        self.has_bias = has_bias
        if has_bias:
            self.bias = Parameter(initializer(_uniform_bias(in_features), (out_features,), FP32), name="bias")
        self.matmul = ops.MatMul(transpose_b=True)
        self.matmul_tt = ops.MatMul(transpose_a=True, transpose_b=True)
        self.bias_add = RowBiasAdd()

    def construct(self, x):
        return self.with_weight_scale(x, 1.0)

    def with_weight_scale(self, x, factor):
        """x (factor W)^T + b: the layer with its weight scaled by a constant (``MultiheadAttention``)."""
        lead = x.shape[:-1]
        weight = self.weight if factor == 1.0 else self.weight * factor
        y = self._out(self.matmul(self._in(x.reshape(-1, self.in_features)), self._in(weight)))
        return self._add_bias(y).reshape(lead + (self.out_features,))

    def from_columns(self, x_t):
        """The same layer on inputs given as the columns of ``x_t`` (in, R): returns (R, out) = x_t^T W^T + b."""
        return self._add_bias(self._out(self.matmul_tt(self._in(x_t), self._in(self.weight))))

    def _add_bias(self, y):
        """y (R, out) + b, when the layer has a bias: ``RowBiasAdd``, not ``y + self.bias`` (see ``add_table``)."""
        if self.has_bias:
            y = self.bias_add(y, self.bias)
        return y


class RowBiasAdd(nn.Cell):
    """``ops.BiasAdd`` of a (C,) vector to every row of a 2-D (R, C) array, whose bias gradient is a column ReduceSum:
    MindSpore 2.10's CPU BiasAddGrad takes 5x longer (9.6 against 1.8 ms on a (2048, 2304) array)."""

    def __init__(self):
        super().__init__()
        self.bias_add = ops.BiasAdd()
        self.col_sum = ops.ReduceSum(keep_dims=False)

    def construct(self, x, bias):
        return self.bias_add(x, bias)

    def bprop(self, x, bias, out, dout):
        return dout, self.col_sum(dout, 0)


class Conv2d(_Precision):
    """Square convolution, stride 1, zero "same" padding, with bias; weight OIHW as in PyTorch."""

    def __init__(self, in_channels, out_channels, kernel_size, compute_dtype=FP32):
        super().__init__(compute_dtype)
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = Parameter(initializer(HeUniform(negative_slope=math.sqrt(5)),
                                            (out_channels, in_channels, kernel_size, kernel_size), FP32), name="weight")
        self.bias = Parameter(initializer(_uniform_bias(fan_in), (out_channels,), FP32), name="bias")
        self.conv = ops.Conv2D(out_channels, kernel_size, pad_mode="pad", pad=kernel_size // 2)
        # The same convolution with the kernel size as a pair: MindSpore 2.10's ONNX exporter fails on the int
        # ``kernel_size`` attribute ("Cast value from type Int64Imm to ValueTuple"). Used only with ``onnx_ops``.
        self.conv_onnx = ops.Conv2D(out_channels, (kernel_size, kernel_size), pad_mode="pad", pad=kernel_size // 2)
        self.onnx_ops = False
        self.bias_add = ops.BiasAdd()

    def construct(self, x):
        if self.onnx_ops:
            y = self.conv_onnx(self._in(x), self._in(self.weight))
        else:
            y = self.conv(self._in(x), self._in(self.weight))
        return channel_bias_add(self._out(y), self.bias, self.bias_add, self.onnx_ops)


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis in float32, eps 1e-5 as in PyTorch (MindSpore's default is 1e-7)."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.gamma = Parameter(initializer("ones", (dim,), FP32), name="gamma")
        self.beta = Parameter(initializer("zeros", (dim,), FP32), name="beta")
        self.norm = RowNorm(dim, eps)

    def construct(self, x):
        y, _, _ = self.norm(x.reshape(-1, x.shape[-1]), self.gamma, self.beta)
        return y.reshape(x.shape)


class RowNorm(nn.Cell):
    """Layer normalisation of the rows of a 2-D float32 array, gamma and beta as inputs; returns (y, -mean, rstd).

    Written with MatMul (row means against a 1/dim vector, outer products that spread a per-row or per-column vector
    over the array), BiasAdd (per-row shifts), element-wise Mul and a column ReduceSum, forward and backward (``bprop``,
    the textbook gradient). MindSpore 2.10's CPU LayerNorm and LayerNormGrad kernels are scalar loops: 3.8 and 15.5 ms
    on a (2048, 576) array, against 1.8 and about 5 ms for these ops. Same arithmetic on every device; two-pass
    (centred) variance as PyTorch's kernel. ``-mean`` and ``rstd`` (R, 1) are for the backward, not differentiable.
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
        self.onnx_ops = False  # see use_onnx_ops

    def _row_mean(self, x):
        return self.matmul(x, self.mean_weights)  # (R, 1)

    def _neg_row_mean(self, x):
        return self.matmul(x, self.neg_mean_weights)  # (R, 1)

    def _shift_rows(self, x, shift):
        """x + shift[r] for every row r; shift (R, 1). With ``onnx_ops`` a broadcasting Add (the same sums): MindSpore
        2.10 exports BiasAdd to ONNX as an Add over the last axis, see ``channel_bias_add``."""
        if self.onnx_ops:
            return x + shift
        return shift_rows(x, shift, self.bias_add)

    def construct(self, x, gamma, beta):
        neg_mean = self._neg_row_mean(x)
        centred = self._shift_rows(x, neg_mean)
        var_eps = self._row_mean(centred * centred) + self.eps
        if self.onnx_ops:  # MindSpore 2.10 exports neither Rsqrt nor Reciprocal to ONNX: 1 / sqrt as RealDiv
            rstd = self.real_div(self.one, ops.sqrt(var_eps))
        else:  # one kernel instead of two (60 fewer launches per forward)
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


# Row blocks of PyTorch's packed in-projection weight W_q | W_k | W_v (3D, D), as (first, last) in units of D.
IN_PROJ_ROWS = {"qkv": (0, 3), "qk": (0, 2), "v": (2, 3), "q": (0, 1), "kv": (1, 3)}
# The blocks each way of attending projects with (see MultiheadAttention).
SELF_ATTENTION, QUERY_KEY_ATTENTION, CROSS_ATTENTION = ("qkv",), ("qk", "v"), ("q", "kv")


def in_proj_name(block):
    """Parameter name of an in-projection row block: ``in_proj_weight`` for the whole packed weight (as PyTorch),
    ``in_proj_weight_<block>`` for part of it."""
    return "in_proj_weight" if block == "qkv" else f"in_proj_weight_{block}"


class MultiheadAttention(_Precision):
    """Multi-head attention with PyTorch's parameters, written with batched matmuls.

    PyTorch packs W_q | W_k | W_v row-wise in one ``in_proj_weight`` (3D, D), with no bias; ``out_proj`` has a bias
    only with ``out_proj_bias`` (torch 1.5-1.7 always wrote one). Queries are scaled by 1/sqrt(head_dim). Inputs are
    (N, num_tokens, D). ``blocks`` says how the cell attends, and so which row blocks of the packed weight it holds as
    parameters (``IN_PROJ_ROWS``, named by ``in_proj_name``), each projecting equal inputs together:
    ``SELF_ATTENTION`` (q = k = v, the encoder: the whole packed weight), ``QUERY_KEY_ATTENTION`` (q = k, separate v:
    rows W_q|W_k and W_v) and ``CROSS_ATTENTION`` (separate q, k = v: rows W_q and W_k|W_v). Holding the blocks
    rather than taking rows of one packed weight in the graph saves a copy of the weight per call: MindSpore 2.10's
    CPU MatMul copies a ``mint.narrow`` row view first (about 8 ms of a batch-1 forward, between the kernels), a
    slice is a StridedSlice copy. The checkpoint loader splits packed weights into these blocks
    (``checkpoint.loader.split_packed_projections``).

    Heads: for a batch of several images the projections are token-major, (N*L, D), and each head's (L, head_dim)
    rows are gathered into head-major order (``head_rows``), then merged back the same way: four copies of the
    activations per attention. For one image the projections are taken feature-major instead, W x^T (D, L), whose
    rows are already head-major: (H, head_dim, L) is a reshape, scores and mixing are batched matmuls on transposed
    operands, and ``out_proj`` reads the (D, L) result as columns (``Linear.from_columns``). The same arithmetic with
    no copies; a batch-1 forward (the tiler's default) is 2-6% faster on CPU, most where the two vCPUs do not share a
    cache. The batch size is static, so each graph holds one of the two forms on every device.

    The 1/sqrt(head_dim) scale of the scores: for one image on the queries (L x D values, fewer than a weight's
    D x D); for several on the weights: W_q by the scale, W_q|W_k by its square root, the encoder's packed
    W_q|W_k|W_v by the square root with ``out_proj``'s weight by the inverse (for v). A Mul over the (N*L, D)
    queries cost 1.3-1.9% of a batch-8 forward on CPU where the two vCPUs do not share a cache.
    """

    def __init__(self, dim, num_heads, num_tokens, out_proj_bias=False, compute_dtype=FP32, blocks=SELF_ATTENTION):
        super().__init__(compute_dtype)
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by num_heads {num_heads}")
        if tuple(blocks) not in (SELF_ATTENTION, QUERY_KEY_ATTENTION, CROSS_ATTENTION):
            raise ValueError(f"in-projection blocks {blocks!r}; expected one of {SELF_ATTENTION}, "
                             f"{QUERY_KEY_ATTENTION}, {CROSS_ATTENTION}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        bound = math.sqrt(6.0 / (dim + 3 * dim))  # xavier_uniform on the packed (3D, D), torch's default for in_proj
        for block in blocks:
            first, last = IN_PROJ_ROWS[block]
            setattr(self, in_proj_name(block), Parameter(initializer(Uniform(bound), ((last - first) * dim, dim), FP32),
                                                         name=in_proj_name(block)))
        self.out_proj = Linear(dim, dim, has_bias=out_proj_bias, compute_dtype=compute_dtype)
        self.matmul = ops.MatMul(transpose_b=True)
        self.scores = ops.BatchMatMul(transpose_b=True)
        self.mix = ops.BatchMatMul()
        self.softmax = Softmax(num_tokens)
        # Head split/merge as row permutations (see ``head_rows``): split into 1, 2 or 3 parts of a packed projection.
        self.split = nn.CellList([RowPermutation([head_rows(num_tokens, num_heads, part, parts)
                                                  for part in range(parts)]) for parts in (1, 2, 3)])
        self.merge = RowPermutation([np.argsort(head_rows(num_tokens, num_heads, 0, 1))])
        self.scores_by_columns = ops.BatchMatMul(transpose_a=True)
        self.mix_by_columns = ops.BatchMatMul(transpose_b=True)
        # For several images, the scores' scale as factors of the weights (see the class): W_q|W_k by its square
        # root (with W_v in the encoder's packed weight, and out_proj by the inverse), a lone W_q by all of it.
        self.root_scale = math.sqrt(self.scale)
        self.out_proj_scale = 1.0 / self.root_scale if tuple(blocks) == SELF_ATTENTION else 1.0

    def _project(self, x, weight, factor=1.0):
        """x (N, L, D) -> x @ (factor * weight)^T, (N*L, rows of weight)."""
        if factor != 1.0:
            weight = weight * factor
        return self._out(self.matmul(self._in(x.reshape(-1, self.dim)), self._in(weight)))

    def _heads(self, proj, n, parts):
        """(N*L, parts*D) projection -> ``parts`` tensors (N, H, L, head_dim): q|k|v and heads split by row gathers."""
        rows = self.split[parts - 1](proj.reshape(n, -1, self.head_dim))  # ``parts`` x (N, H*L, hd)
        return [r.reshape(n, self.num_heads, -1, self.head_dim) for r in rows]

    def attend(self, q, k, v, n):
        """q, k, v: (N, H, L, head_dim), the scores' scale already in q and k -> (N, L, D) attention output, out_proj
        included."""
        probs = self.softmax(self._out(self.scores(self._in(q), self._in(k))))
        out = self._out(self.mix(self._in(probs), self._in(v)))  # (N, H, L, hd)
        out = self.merge(out.reshape(n, -1, self.head_dim))[0]  # (N, L*H, hd)
        return self.out_proj.with_weight_scale(out.reshape(n, -1, self.dim), self.out_proj_scale)

    def _heads_by_columns(self, x, weight, parts):
        """One image's x (1, L, D) -> ``parts`` tensors (H, head_dim, L): weight @ x^T split by rows (see the class)."""
        proj = self._out(self.matmul(self._in(weight), self._in(x.reshape(-1, self.dim))))  # (parts*D, L)
        rows = ops.split(proj, self.dim, 0) if parts > 1 else (proj,)
        return [r.reshape(self.num_heads, self.head_dim, -1) for r in rows]

    def attend_by_columns(self, q, k, v):
        """q, k, v: (H, head_dim, L) of one image -> (1, L, D), out_proj included."""
        probs = self.softmax(self._out(self.scores_by_columns(self._in(q * self.scale), self._in(k))))  # (H, L, L)
        out = self._out(self.mix_by_columns(self._in(v), self._in(probs)))  # (H, hd, L): the output's columns
        return self.out_proj.from_columns(out.reshape(self.dim, -1)).reshape(1, -1, self.dim)

    def self_attention(self, x):
        """q = k = v = x (encoder)."""
        n = x.shape[0]
        if n == 1:
            return self.attend_by_columns(*self._heads_by_columns(x, self.in_proj_weight, 3))
        q, k, v = self._heads(self._project(x, self.in_proj_weight, self.root_scale), n, 3)
        return self.attend(q, k, v, n)

    def query_key_attention(self, qk, v):
        """q = k = qk, separate v (decoder self-attention with the task query)."""
        n = qk.shape[0]
        if n == 1:
            q, k = self._heads_by_columns(qk, self.in_proj_weight_qk, 2)
            return self.attend_by_columns(q, k, self._heads_by_columns(v, self.in_proj_weight_v, 1)[0])
        q, k = self._heads(self._project(qk, self.in_proj_weight_qk, self.root_scale), n, 2)
        v = self._heads(self._project(v, self.in_proj_weight_v), n, 1)[0]
        return self.attend(q, k, v, n)

    def cross_attention(self, q, kv):
        """separate q, k = v = kv (decoder cross-attention on the encoder memory)."""
        n = q.shape[0]
        if n == 1:
            k, v = self._heads_by_columns(kv, self.in_proj_weight_kv, 2)
            return self.attend_by_columns(self._heads_by_columns(q, self.in_proj_weight_q, 1)[0], k, v)
        k, v = self._heads(self._project(kv, self.in_proj_weight_kv), n, 2)
        q = self._heads(self._project(q, self.in_proj_weight_q, self.scale), n, 1)[0]
        return self.attend(q, k, v, n)


class Softmax(nn.Cell):
    """Softmax over the last axis (of length ``size``), with its backward written out for speed.

    dx = y * (dy - sum(dy * y)) over the last axis, with the row sums as a MatMul against a ones vector and the
    subtraction as a BiasAdd over rows. The same arithmetic as MindSpore's own softmax gradient, whose last-axis
    ReduceSum and broadcasting Sub take 4x longer on CPU (ReduceSum alone 15 ms on a 24576 x 256 array, the MatMul
    2 ms). The graph is the same on every device.
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
    (UnsortedSegmentSum) wrapped in two Transposes, 8x slower on CPU in the training step. Values are never changed.
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
    takes about 2.5x longer (5.9 against 2.4 ms on a 24576 x 256 array)."""
    return bias_add(x.reshape((1,) + x.shape), shift.reshape(-1)).reshape(x.shape)


def head_rows(num_tokens, num_heads, part, parts):
    """Row index that takes part ``part`` of a packed projection, seen as (L, parts, H) rows of head_dim values, to
    head-major order (H, L): output row h*L + l is input row (l*parts + part)*H + h.

    Splitting heads is a permutation of head_dim-long rows, so ``ops.gather`` does it with contiguous row copies.
    In MindSpore 2.10 graph mode on CPU this is both the fastest way and the only one that frees its memory: each
    ``ops.Transpose`` output stayed alive until the end of the graph (+1.3 GB at batch 8), and ``mint.permute``
    views pay a generic element-wise copy (about 5x slower than the gather). Values are copied, never changed.
    """
    l, h = np.meshgrid(np.arange(num_tokens), np.arange(num_heads))  # (H, L) grids
    return ((l * parts + part) * num_heads + h).reshape(-1).astype(np.int32)


def permute(x, perm):
    """Axis permutation for the few reshuffles outside the attention (tokens <-> feature map, pixel shuffle).

    ``ops.transpose`` (a real Transpose kernel). ``mint.permute`` gives a view whose copy, made by the consumer, is a
    generic element-wise loop in MindSpore 2.10 on CPU: 1.7 ms against 0.07 for the batch-1 tokens <-> feature map
    reshuffle, 11.5 against 1.3 ms at batch 8 (measured in one process; the copies showed up as gaps between kernels in
    the profile, not as ops). Transpose outputs stay alive until the end of the graph on CPU, which is why the
    attention's many head splits use ``head_rows`` gathers instead; for these three feature-map reshuffles that is a
    few MB. It is also what MindSpore exports to ONNX. Values are never changed.
    """
    return ops.transpose(x, perm)


def channel_bias_add(x, bias, bias_add, onnx_ops=False):
    """``x + bias`` per channel of an NCHW ``x``: ``bias_add`` (an ``ops.BiasAdd()``), or with ``onnx_ops`` a
    broadcasting Add of the (1, C, 1, 1) bias. Same float32 sums; MindSpore 2.10 exports BiasAdd to ONNX as a plain
    Add of the (C,) vector, which broadcasts over the last axis (W), not C, and onnxruntime rejects it."""
    if onnx_ops:
        return x + bias.reshape(1, -1, 1, 1)
    return bias_add(x, bias)


def use_onnx_ops(net, enabled=True):
    """Switch every cell of ``net`` that has an ``onnx_ops`` flag to its ONNX-exportable op sequence (``enabled=False``
    switches back); returns how many cells have the flag.

    For ``ms.export(..., "ONNX")`` only: the switched ops compute the same values (a convolution whose kernel size is written as a pair, a broadcasting Add instead of an NCHW BiasAdd), while the default graph, the one trained, evaluated
    and exported to MindIR, is never switched.
    """
    switched = 0
    for _, cell in net.cells_and_names():
        if hasattr(cell, "onnx_ops"):
            cell.onnx_ops = enabled
            switched += 1
    return switched


def add_table(x, table, bias_add):
    """``x + table`` for x (N, *S) and table (*S), i.e. the same table added to every sample, as one BiasAdd.

    Same arithmetic as the broadcasting Add, but MindSpore 2.10's CPU runtime handles a broadcasting Add badly in
    graph mode: it is slow and keeps several full-size buffers per call alive until the end of the graph (a 20-step
    chain of broadcast adds on 100 MB grew the peak RSS by 7.9 GB, the BiasAdd version by 0.15 GB).
    ``bias_add`` is a ``RowBiasAdd()`` instance of the calling cell.
    """
    n = x.shape[0]
    return bias_add(x.reshape(n, -1), table.reshape(-1)).reshape(x.shape)


def normal_parameter(shape, name, sigma=1.0):
    """A float32 parameter drawn from N(0, sigma^2), torch.nn.Embedding's default."""
    return Parameter(initializer(Normal(sigma=sigma), shape, FP32), name=name)


def numpy_constant(values, shape):
    return ms.Tensor(np.asarray(values, np.float32).reshape(shape))
