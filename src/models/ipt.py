"""IPT (Chen et al., "Pre-Trained Image Processing Transformer", CVPR 2021) as MindSpore Cells.

``IPT`` holds the shared transformer ``body`` and, per task, a head, a tail and a task query under
``tasks.<name>``. ``IPTTaskNet(ipt, name)`` is the graph for one task: it shares the parameters of ``ipt``, takes a
static (N, 3, patch_size, patch_size) float32 batch on the 0..rgb_range scale and returns the restored batch on the
same scale (the mean shift is inside the graph). One graph is compiled per (task, batch size).

``IPT(cfg, compute_dtype, graph_form)``: the graph form picks the cells the body is built from (``forms.py``:
``native``, MindSpore's own kernels, or ``cpu``, the cells tuned for its CPU kernels), with the same parameters.
"""
from dataclasses import dataclass, asdict, fields
from typing import Optional, Tuple

from mindspore import nn, ops

from src.errors import ConfigError
from src.tasks import check_task_list, get_task
from src.models.forms import FORMS, GraphForm, apply_compute_dtype
from src.models.layers import (CROSS_ATTENTION, QUERY_KEY_ATTENTION, Conv2d, channel_bias_add, normal_parameter,
                               numpy_constant, permute, FP32)

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean used by the official MeanShift
UPSAMPLE_STAGES = {1: [], 2: [2], 3: [3], 4: [2, 2]}  # pixel-shuffle factors of the official tails, by scale


@dataclass(frozen=True)
class IPTConfig:
    """Architecture of an IPT model; what our checkpoints store. Defaults are the official sizes."""
    tasks: Tuple[str, ...] = ("sr_x2",)
    n_feats: int = 64
    patch_size: int = 48            # LR tile side the body accepts
    patch_dim: int = 3              # tokens are patch_dim x patch_dim feature patches
    num_heads: int = 12
    num_encoder_layers: int = 12
    num_decoder_layers: int = 12
    ffn_dim: Optional[int] = None   # hidden size of the FFNs and the MLP head; None = 4 * token dim
    out_proj_bias: bool = False     # attention out-projection bias (written by torch 1.5-1.7)
    rgb_range: float = 255.0

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        check_task_list(self.tasks, "model.tasks")
        if self.patch_size % self.patch_dim:
            raise ConfigError(f"model.patch_size {self.patch_size} is not a multiple of "
                              f"model.patch_dim {self.patch_dim}")
        if self.token_dim % self.num_heads:
            raise ConfigError(f"token dim n_feats*patch_dim^2 = {self.token_dim} is not divisible by "
                              f"model.num_heads {self.num_heads}")

    @property
    def token_dim(self):
        return self.n_feats * self.patch_dim * self.patch_dim

    @property
    def num_tokens(self):
        return (self.patch_size // self.patch_dim) ** 2

    @property
    def hidden_dim(self):
        return self.ffn_dim or 4 * self.token_dim

    def macs_by_kind(self, scale):
        """Multiply-adds of one patch_size^2 tile with a tail of ``scale``, by the kind of op that does them:
        ``conv`` (head and tail), ``linear`` (the body's projections, FFNs and MLP head: MatMul) and ``attention``
        (attention scores and mixing: batched matmuls)."""
        s2, n, tokens, d, f = self.patch_size ** 2, self.n_feats, self.num_tokens, self.token_dim, self.hidden_dim
        conv = s2 * 3 * n * 9 + 4 * s2 * n * n * 25                     # head: conv3x3, two ResBlocks of 5x5
        side = self.patch_size
        for r in UPSAMPLE_STAGES[scale]:                                  # tail: upsampler stages, conv3x3 -> 3
            conv += side * side * n * r * r * n * 9
            side *= r
        conv += side * side * n * 3 * 9
        core = 2 * tokens * tokens * d                                    # scores and mixing of one attention
        ffn = 2 * tokens * d * f
        encoder = tokens * d * 3 * d + tokens * d * d + ffn               # in_proj q|k|v, out_proj, FFN
        decoder = tokens * d * 6 * d + 2 * tokens * d * d + ffn           # two attentions' in/out projections, FFN
        linear = (tokens * d * d + self.num_encoder_layers * encoder + self.num_decoder_layers * decoder
                  + ffn)                                                  # linear encoding ... MLP head
        attention = (self.num_encoder_layers + 2 * self.num_decoder_layers) * core
        return {"conv": conv, "linear": linear, "attention": attention}

    def macs_per_tile(self, scale):
        """Multiply-adds of one patch_size^2 tile through head, body and a tail of ``scale`` (convs, matmuls)."""
        return sum(self.macs_by_kind(scale).values())

    def to_dict(self):
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    @classmethod
    def from_dict(cls, d, where="model"):
        """Build from a mapping; an unknown key is a ConfigError naming it."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown model key(s) {unknown}; valid keys: {sorted(names)}")
        return cls(**d)

    def replace(self, **changes):
        d = self.to_dict()
        d.update(changes)
        return IPTConfig.from_dict(d)


class ResBlock(nn.Cell):
    """conv -> ReLU -> conv, plus the input (EDSR block without BN, res_scale 1)."""

    def __init__(self, n_feats, kernel_size):
        super().__init__()
        self.conv1 = Conv2d(n_feats, n_feats, kernel_size)
        self.conv2 = Conv2d(n_feats, n_feats, kernel_size)
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.conv2(self.relu(self.conv1(x))) + x


class Head(nn.Cell):
    """conv3x3 (3 -> n_feats) then two ResBlocks of 5x5 convs."""

    def __init__(self, n_feats):
        super().__init__()
        self.conv = Conv2d(3, n_feats, 3)
        self.res_blocks = nn.CellList([ResBlock(n_feats, 5) for _ in range(2)])

    def construct(self, x):
        x = self.conv(x)
        for block in self.res_blocks:
            x = block(x)
        return x


class PixelShuffle(nn.Cell):
    """(N, C*r*r, H, W) -> (N, C, H*r, W*r) with torch.nn.PixelShuffle's channel order."""

    def __init__(self, r):
        super().__init__()
        self.r = r

    def construct(self, x):
        n, c, h, w = x.shape
        r = self.r
        x = permute(x.reshape(n, c // (r * r), r, r, h, w), (0, 1, 4, 2, 5, 3))
        return x.reshape(n, c // (r * r), h * r, w * r)


class Tail(nn.Cell):
    """Upsampler (conv3x3 + PixelShuffle per x2 stage, or one x3 stage; nothing for scale 1) then conv3x3 -> 3."""

    def __init__(self, n_feats, scale):
        super().__init__()
        factors = UPSAMPLE_STAGES[scale]
        self.upsampler = nn.CellList([Conv2d(n_feats, r * r * n_feats, 3) for r in factors])
        self.shuffles = nn.CellList([PixelShuffle(r) for r in factors])
        self.conv = Conv2d(n_feats, 3, 3)

    def construct(self, x):
        for conv, shuffle in zip(self.upsampler, self.shuffles):
            x = shuffle(conv(x))
        return self.conv(x)


class TaskAdapter(nn.Cell):
    """What one task owns: head, tail and its query (num_tokens, token_dim)."""

    def __init__(self, cfg: IPTConfig, name):
        super().__init__()
        self.scale = get_task(name).scale
        self.head = Head(cfg.n_feats)
        self.tail = Tail(cfg.n_feats, self.scale)
        self.query = normal_parameter((cfg.num_tokens, cfg.token_dim), "query")


class EncoderLayer(nn.Cell):
    """Pre-norm: t += MHA(LN1 t); t += FFN(LN2 t)."""

    def __init__(self, form: GraphForm, dim, heads, tokens, hidden, out_proj_bias):
        super().__init__()
        self.norm1 = form.layer_norm(dim)
        self.self_attn = form.attention(dim, heads, tokens, out_proj_bias)
        self.norm2 = form.layer_norm(dim)
        self.linear1 = form.linear(dim, hidden)
        self.linear2 = form.linear(hidden, dim)
        self.relu = nn.ReLU()

    def construct(self, t):
        t = t + self.self_attn.self_attention(self.norm1(t))
        return t + self.linear2(self.relu(self.linear1(self.norm2(t))))


# The in-projection row blocks each decoder attention holds (``layers.MultiheadAttention``; the loader splits
# packed weights by this).
DECODER_ATTENTION_BLOCKS = {"self_attn": QUERY_KEY_ATTENTION, "cross_attn": CROSS_ATTENTION}


class DecoderLayer(nn.Cell):
    """Pre-norm; the task query Q is added to q and k of self-attention and to q of cross-attention, never to v."""

    def __init__(self, form: GraphForm, dim, heads, tokens, hidden, out_proj_bias):
        super().__init__()
        self.norm1 = form.layer_norm(dim)
        self.self_attn = form.attention(dim, heads, tokens, out_proj_bias, DECODER_ATTENTION_BLOCKS["self_attn"])
        self.norm2 = form.layer_norm(dim)
        self.cross_attn = form.attention(dim, heads, tokens, out_proj_bias, DECODER_ATTENTION_BLOCKS["cross_attn"])
        self.norm3 = form.layer_norm(dim)
        self.linear1 = form.linear(dim, hidden)
        self.linear2 = form.linear(hidden, dim)
        self.relu = nn.ReLU()
        self.add_query = form.add_table()

    def construct(self, t, memory, query):
        a = self.norm1(t)
        t = t + self.self_attn.query_key_attention(self.add_query(a, query), a)
        t = t + self.cross_attn.cross_attention(self.add_query(self.norm2(t), query), memory)
        return t + self.linear2(self.relu(self.linear1(self.norm3(t))))


class Body(nn.Cell):
    """The shared transformer: 3x3 feature patches -> tokens -> encoder/decoder -> MLP head -> feature map."""

    def __init__(self, cfg: IPTConfig, form: GraphForm):
        super().__init__()
        dim, hidden = cfg.token_dim, cfg.hidden_dim
        self.n_feats, self.patch_dim, self.grid = cfg.n_feats, cfg.patch_dim, cfg.patch_size // cfg.patch_dim
        self.linear_encoding = form.linear(dim, dim)
        self.position_embedding = normal_parameter((cfg.num_tokens, dim), "position_embedding")
        layer_args = (form, dim, cfg.num_heads, cfg.num_tokens, hidden, cfg.out_proj_bias)
        self.encoder = nn.CellList([EncoderLayer(*layer_args) for _ in range(cfg.num_encoder_layers)])
        self.decoder = nn.CellList([DecoderLayer(*layer_args) for _ in range(cfg.num_decoder_layers)])
        self.mlp_head = nn.SequentialCell([form.linear(dim, hidden), nn.ReLU(), form.linear(hidden, dim)])
        self.add_position = form.add_table()

    def to_tokens(self, x):
        """(N, C, H, W) -> (N, tokens, C*p*p); value index c*p*p + ky*p + kx, tokens row-major (torch unfold)."""
        n, p, g = x.shape[0], self.patch_dim, self.grid
        x = permute(x.reshape(n, self.n_feats, g, p, g, p), (0, 2, 4, 1, 3, 5))
        return x.reshape(n, g * g, self.n_feats * p * p)

    def from_tokens(self, t):
        """Inverse of ``to_tokens`` (torch fold with kernel = stride)."""
        n, p, g = t.shape[0], self.patch_dim, self.grid
        t = permute(t.reshape(n, g, g, self.n_feats, p, p), (0, 3, 1, 4, 2, 5))
        return t.reshape(n, self.n_feats, g * p, g * p)

    def construct(self, x, query):
        """x: head features (N, n_feats, S, S); query: (tokens, dim). Returns (features, output tokens)."""
        t = self.to_tokens(x)
        t = self.add_position(self.linear_encoding(t) + t, self.position_embedding)
        for layer in self.encoder:
            t = layer(t)
        memory = t
        for layer in self.decoder:
            t = layer(t, memory, query)
        t = self.mlp_head(t) + t
        return self.from_tokens(t), t


class TaskContainer(nn.Cell):
    """Holds one TaskAdapter per task as attribute ``<task name>`` (parameter names ``tasks.<name>.*``)."""


class IPT(nn.Cell):
    """The multi-task model: a shared body and ``tasks.<name>`` adapters. Run it through ``task_net(name)``."""

    def __init__(self, cfg: IPTConfig, compute_dtype=FP32, graph_form="native"):
        super().__init__()
        if graph_form not in FORMS:
            raise ConfigError(f"graph_form {graph_form!r}; expected one of {', '.join(FORMS)}")
        if graph_form == "cpu" and compute_dtype != FP32:
            raise ConfigError("the cpu graph form runs in float32 only (its statistics are MatMuls); use the native "
                              "form for float16/bfloat16")
        self.config = cfg
        self.compute_dtype = compute_dtype
        self.form = FORMS[graph_form]
        self.body = Body(cfg, self.form)
        tasks = TaskContainer()  # filled before it is attached, so that names get the "tasks." prefix
        for name in cfg.tasks:
            setattr(tasks, name, TaskAdapter(cfg, name))
        self.tasks = tasks

    @property
    def graph_form(self):
        return self.form.name

    def adapter(self, name) -> TaskAdapter:
        if name not in self.config.tasks:
            raise ConfigError(f"task {name!r} is not in this model; it has: {', '.join(self.config.tasks)}")
        return getattr(self.tasks, name)

    def task_net(self, name, return_tokens=False):
        """The graph of task ``name``, in the model's compute dtype (``forms.apply_compute_dtype``)."""
        return apply_compute_dtype(IPTTaskNet(self, name, return_tokens), self.compute_dtype)


class IPTTaskNet(nn.Cell):
    """The graph of one task; shares (does not rename) the parameters of the IPT it was made from.

    Input (N, 3, S, S) float32 on 0..rgb_range, S = patch_size; output (N, 3, S*scale, S*scale) on the same scale,
    not clipped. With ``return_tokens`` also returns the body's output tokens (N, tokens, dim).
    """

    def __init__(self, ipt: IPT, name, return_tokens=False):
        super().__init__(auto_prefix=False)
        adapter = ipt.adapter(name)
        self.task = name
        self.scale = adapter.scale
        self.patch_size = ipt.config.patch_size
        self.head, self.tail, self.query, self.body = adapter.head, adapter.tail, adapter.query, ipt.body
        # per-channel mean as BiasAdd vectors (x - m == x + (-m) exactly); see cpu_kernels.CpuAddTable for why not Add
        self.mean = numpy_constant([m * ipt.config.rgb_range for m in RGB_MEAN], (3,))
        self.neg_mean = numpy_constant([-m * ipt.config.rgb_range for m in RGB_MEAN], (3,))
        self.bias_add = ops.BiasAdd()
        self.return_tokens = return_tokens
        self.onnx_ops = False  # see layers.use_onnx_ops

    def construct(self, x):
        h = self.head(channel_bias_add(x, self.neg_mean, self.bias_add, self.onnx_ops))
        features, tokens = self.body(h, self.query)
        out = channel_bias_add(self.tail(features + h), self.mean, self.bias_add, self.onnx_ops)
        if self.return_tokens:
            return out, tokens
        return out


def count_trainable(cell: nn.Cell) -> int:
    return sum(int(p.size) for p in cell.trainable_params())

