"""The layers of IPT in MindSpore's own kernels: the network as the paper and the official code write it.

This is the ``native`` graph form (``src/models/forms.py``), the one Ascend and GPU run and the one exported by
default: MatMul + BiasAdd for linear layers, Conv2D + BiasAdd, MindSpore's fused ``LayerNorm`` (eps 1e-5, as
PyTorch) and ``Softmax``, attention heads split and merged by Reshape + Transpose, and no hand-written ``bprop``
anywhere, so MindSpore's own gradients run. Every statistic (LayerNorm's mean and variance, softmax) is a vector
op in float32; only the projections, the attention products and the convolutions are matrix ops, which mixed
precision (``forms.apply_compute_dtype``) runs in float16 or bfloat16. The ``cpu`` form (``cpu_kernels.py``)
subclasses these cells with the same parameters.

Parameters are always float32 and named as in our checkpoints; both forms load every checkpoint.
"""
import math

import numpy as np
import mindspore as ms
from mindspore import nn, ops, Parameter
from mindspore.common.initializer import initializer, HeUniform, Uniform, Normal

FP32 = ms.float32


def _uniform_bias(fan_in):
    return Uniform(1.0 / math.sqrt(fan_in))


class Linear(nn.Cell):
    """y = x W^T + b over the last axis; W is (out, in) as in PyTorch. Initialised like torch.nn.Linear."""

    def __init__(self, in_features, out_features, has_bias=True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(initializer(HeUniform(negative_slope=math.sqrt(5)), (out_features, in_features), FP32),
                                name="weight")
        self.has_bias = has_bias
        if has_bias:
            self.bias = Parameter(initializer(_uniform_bias(in_features), (out_features,), FP32), name="bias")
        self.matmul = ops.MatMul(transpose_b=True)
        self.bias_add = ops.BiasAdd()

    def construct(self, x):
        lead = x.shape[:-1]
        y = self.matmul(x.reshape(-1, self.in_features), self.weight)
        if self.has_bias:
            y = self.bias_add(y, self.bias)
        return y.reshape(lead + (self.out_features,))


class Conv2d(nn.Cell):
    """Square convolution, stride 1, zero "same" padding, with bias; weight OIHW as in PyTorch."""

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
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
            y = self.conv_onnx(x, self.weight)
        else:
            y = self.conv(x, self.weight)
        return channel_bias_add(y, self.bias, self.bias_add, self.onnx_ops)


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis, eps 1e-5 as in PyTorch (MindSpore's default is 1e-7): MindSpore's fused
    ``LayerNorm`` kernel, a float32 vector op (its mean and variance never go through a matrix unit)."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.gamma = Parameter(initializer("ones", (dim,), FP32), name="gamma")
        self.beta = Parameter(initializer("zeros", (dim,), FP32), name="beta")
        self.eps = eps
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)

    def construct(self, x):
        return self.layer_norm(x, self.gamma, self.beta)[0]


class AddTable(nn.Cell):
    """``x + table`` for x (N, *S) and a table (*S) added to every sample (position embedding, task query)."""

    def construct(self, x, table):
        return x + table


# Row blocks of PyTorch's packed in-projection weight W_q | W_k | W_v (3D, D), as (first, last) in units of D.
IN_PROJ_ROWS = {"qkv": (0, 3), "qk": (0, 2), "v": (2, 3), "q": (0, 1), "kv": (1, 3)}
# The blocks each way of attending projects with (see MultiheadAttention).
SELF_ATTENTION, QUERY_KEY_ATTENTION, CROSS_ATTENTION = ("qkv",), ("qk", "v"), ("q", "kv")


def in_proj_name(block):
    """Parameter name of an in-projection row block: ``in_proj_weight`` for the whole packed weight (as PyTorch),
    ``in_proj_weight_<block>`` for part of it."""
    return "in_proj_weight" if block == "qkv" else f"in_proj_weight_{block}"


class MultiheadAttention(nn.Cell):
    """Multi-head attention with PyTorch's parameters: (N, num_tokens, D) inputs, scores scaled by 1/sqrt(head_dim).

    PyTorch packs W_q | W_k | W_v row-wise in one ``in_proj_weight`` (3D, D), with no bias; ``out_proj`` has a bias
    only with ``out_proj_bias`` (torch 1.5-1.7 always wrote one). ``blocks`` says how the cell attends, and so which
    row blocks of the packed weight it holds as parameters (``IN_PROJ_ROWS``, named by ``in_proj_name``), each
    projecting equal inputs together: ``SELF_ATTENTION`` (q = k = v, the encoder: the whole packed weight),
    ``QUERY_KEY_ATTENTION`` (q = k, separate v: rows W_q|W_k and W_v) and ``CROSS_ATTENTION`` (separate q,
    k = v: rows W_q and W_k|W_v). The checkpoint loader splits packed weights into these blocks
    (``checkpoint.loader.split_packed_projections``).

    Here (the native form): one MatMul per block, heads by Reshape + one Transpose per block
    (N, L, parts, H, hd) -> (parts, N, H, L, hd) and ``ops.split`` into q | k | v, scores and mixing as BatchMatMuls,
    ``ops.Softmax``, heads merged by the inverse Transpose, then ``out_proj``.
    """

    linear_cell = Linear  # the out-projection's cell (the cpu form's subclass swaps it)

    def __init__(self, dim, num_heads, num_tokens, out_proj_bias=False, blocks=SELF_ATTENTION):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by num_heads {num_heads}")
        if tuple(blocks) not in (SELF_ATTENTION, QUERY_KEY_ATTENTION, CROSS_ATTENTION):
            raise ValueError(f"in-projection blocks {blocks!r}; expected one of {SELF_ATTENTION}, "
                             f"{QUERY_KEY_ATTENTION}, {CROSS_ATTENTION}")
        self.dim = dim
        self.num_heads = num_heads
        self.num_tokens = num_tokens
        self.head_dim = dim // num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.blocks = tuple(blocks)
        bound = math.sqrt(6.0 / (dim + 3 * dim))  # xavier_uniform on the packed (3D, D), torch's default for in_proj
        for block in blocks:
            first, last = IN_PROJ_ROWS[block]
            setattr(self, in_proj_name(block), Parameter(initializer(Uniform(bound), ((last - first) * dim, dim), FP32),
                                                         name=in_proj_name(block)))
        self.out_proj = self.linear_cell(dim, dim, has_bias=out_proj_bias)
        self.matmul = ops.MatMul(transpose_b=True)
        self.scores = ops.BatchMatMul(transpose_b=True)
        self.mix = ops.BatchMatMul()
        self.softmax = ops.Softmax(axis=-1)

    def _heads(self, x, weight, parts):
        """x (N, L, D) -> ``parts`` tensors (N, H, L, head_dim): x W^T, seen as (N, L, parts, H, head_dim), moved to
        (parts, N, H, L, head_dim) by one Transpose, then split into q | k | v."""
        n, length = x.shape[0], x.shape[1]
        proj = self.matmul(x.reshape(-1, self.dim), weight)  # (N*L, parts*D)
        heads = ops.transpose(proj.reshape(n, length, parts, self.num_heads, self.head_dim), (2, 0, 3, 1, 4))
        chunks = ops.split(heads, 1, 0) if parts > 1 else (heads,)
        return [c.reshape(n, self.num_heads, length, self.head_dim) for c in chunks]

    def _attend(self, q, k, v):
        """q, k, v (N, H, L, head_dim) -> (N, L, D), out_proj included."""
        probs = self.softmax(self.scores(q * self.scale, k))  # (N, H, L, L)
        out = ops.transpose(self.mix(probs, v), (0, 2, 1, 3))  # (N, L, H, hd)
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], self.dim))

    def self_attention(self, x):
        """q = k = v = x (encoder)."""
        q, k, v = self._heads(x, self.in_proj_weight, 3)
        return self._attend(q, k, v)

    def query_key_attention(self, qk, v):
        """q = k = qk, separate v (decoder self-attention with the task query)."""
        q, k = self._heads(qk, self.in_proj_weight_qk, 2)
        return self._attend(q, k, self._heads(v, self.in_proj_weight_v, 1)[0])

    def cross_attention(self, q, kv):
        """separate q, k = v = kv (decoder cross-attention on the encoder memory)."""
        k, v = self._heads(kv, self.in_proj_weight_kv, 2)
        return self._attend(self._heads(q, self.in_proj_weight_q, 1)[0], k, v)


def permute(x, perm):
    """Axis permutation for the reshuffles outside the attention (tokens <-> feature map, pixel shuffle):
    ``ops.transpose``, a real Transpose kernel and what MindSpore exports to ONNX. (``mint.permute`` gives a view
    whose copy, made by the consumer, is a generic element-wise loop on CPU; benchmarks/README.md.)"""
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

    For ``ms.export(..., "ONNX")`` only: the switched ops compute the same values (a convolution whose kernel size is
    written as a pair, a broadcasting Add instead of an NCHW BiasAdd), while the graph trained, evaluated and
    exported to MindIR is never switched.
    """
    switched = 0
    for _, cell in net.cells_and_names():
        if hasattr(cell, "onnx_ops"):
            cell.onnx_ops = enabled
            switched += 1
    return switched


def normal_parameter(shape, name, sigma=1.0):
    """A float32 parameter drawn from N(0, sigma^2), torch.nn.Embedding's default."""
    return Parameter(initializer(Normal(sigma=sigma), shape, FP32), name=name)


def numpy_constant(values, shape):
    return ms.Tensor(np.asarray(values, np.float32).reshape(shape))
