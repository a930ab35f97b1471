"""Independent NumPy (float64) forward pass of IPT, written from the equations with PyTorch's conventions.

It reads the official PyTorch parameter names (reference notes s2.1) and is the oracle the MindSpore model is tested
against; the fixtures prove it matches real torch. Conventions: convolutions with zero "same" padding; tokens are
the 3x3 patches of the 48x48 feature map, row-major, values ordered c*9 + ky*3 + kx; multi-head attention packs its
input projection as rows q|k|v without bias, scales q by 1/sqrt(head_dim), and adds ``out_proj.bias`` only if the
dict has one; LayerNorm eps 1e-5; pre-norm encoder/decoder layers with ReLU FFNs and no final norm.

Imports nothing but numpy (no torch, no mindspore, nothing from src/).
"""
import numpy as np

RGB_MEAN = np.array([0.4488, 0.4371, 0.4040])
PATCH_DIM = 3
LN_EPS = 1e-5


def conv2d(x, w, b):
    """(N,C,H,W) conv (O,C,k,k) with bias, stride 1, zero padding k//2, as im2col + tensordot."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))   # (N, C, H, W, k, k)
    return np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2) + b[:, None, None]


def pixel_shuffle(x, r):
    n, c, h, w = x.shape
    x = x.reshape(n, c // (r * r), r, r, h, w)
    return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (r * r), h * r, w * r)


def unfold(f):
    """(N,C,H,W) -> (N, L, C*9): non-overlapping 3x3 patches, row-major, values ordered c*9 + ky*3 + kx."""
    n, c, h, w = f.shape
    p = PATCH_DIM
    return f.reshape(n, c, h // p, p, w // p, p).transpose(0, 2, 4, 1, 3, 5).reshape(n, (h // p) * (w // p), c * p * p)


def fold(t, c, h, w):
    """Inverse of ``unfold``."""
    n, p = t.shape[0], PATCH_DIM
    return t.reshape(n, h // p, w // p, c, p, p).transpose(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def linear(x, sd, name):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def layer_norm(x, sd, name):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LN_EPS) * sd[name + ".weight"] + sd[name + ".bias"]


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(q, k, v, sd, name, num_heads):
    """torch.nn.MultiheadAttention(bias=False) on batch-first (N, L, E) inputs."""
    assert name + ".in_proj_bias" not in sd, "in_proj bias is not part of IPT"
    w = sd[name + ".in_proj_weight"]
    e = q.shape[-1]
    d = e // num_heads

    def heads(x, rows):   # project, then (N, L, E) -> (N, heads, L, d)
        y = x @ w[rows].T
        return y.reshape(y.shape[0], y.shape[1], num_heads, d).transpose(0, 2, 1, 3)

    qh = heads(q, slice(0, e)) / np.sqrt(d)
    kh, vh = heads(k, slice(e, 2 * e)), heads(v, slice(2 * e, 3 * e))
    out = softmax(qh @ kh.transpose(0, 1, 3, 2)) @ vh                  # (N, heads, L, d)
    out = out.transpose(0, 2, 1, 3).reshape(q.shape)
    out = out @ sd[name + ".out_proj.weight"].T
    return out + sd[name + ".out_proj.bias"] if name + ".out_proj.bias" in sd else out


def ffn(x, sd, name):
    return linear(np.maximum(linear(x, sd, name + ".linear1"), 0), sd, name + ".linear2")


def num_layers(sd, stack):
    return sum(1 for k in sd if k.startswith(f"body.{stack}.layers.") and k.endswith(".norm1.weight"))


def body(f, sd, task_index, num_heads):
    """The shared transformer on head features f (N, C, 48, 48)."""
    n, c, h, w = f.shape
    t = unfold(f)
    t = linear(t, sd, "body.linear_encoding") + t
    query = sd["body.query_embed.weight"][task_index].reshape(t.shape[1], t.shape[2])  # per-token task query
    t = t + sd["body.position_encoding.pe.weight"]
    for i in range(num_layers(sd, "encoder")):
        p = f"body.encoder.layers.{i}"
        a = layer_norm(t, sd, p + ".norm1")
        t = t + attention(a, a, a, sd, p + ".self_attn", num_heads)
        t = t + ffn(layer_norm(t, sd, p + ".norm2"), sd, p)
    memory = t
    for i in range(num_layers(sd, "decoder")):
        p = f"body.decoder.layers.{i}"
        a = layer_norm(t, sd, p + ".norm1")
        t = t + attention(a + query, a + query, a, sd, p + ".self_attn", num_heads)
        b = layer_norm(t, sd, p + ".norm2")
        t = t + attention(b + query, memory, memory, sd, p + ".multihead_attn", num_heads)
        t = t + ffn(layer_norm(t, sd, p + ".norm3"), sd, p)
    t = linear(np.maximum(linear(t, sd, "body.mlp_head.0"), 0), sd, "body.mlp_head.3") + t
    return fold(t, c, h, w)


def tail(x, sd, task_index, scale):
    p = f"tail.{task_index}"
    stages = [3] if scale == 3 else [2] * int(np.log2(scale))   # scale 1: no upsampling conv at all
    for j, r in enumerate(stages):
        x = pixel_shuffle(conv2d(x, sd[f"{p}.0.{2 * j}.weight"], sd[f"{p}.0.{2 * j}.bias"]), r)
    return conv2d(x, sd[f"{p}.1.weight"], sd[f"{p}.1.bias"])


def ipt_forward(state_dict, x, task_index, scales, num_heads, rgb_range=255):
    """IPT forward for task ``task_index`` of a model whose tasks have ``scales``; x (N,3,H,W) in [0, rgb_range].

    The frozen MeanShift convs (``sub_mean``/``add_mean``: identity weight, bias -/+ rgb_range * RGB_MEAN) are applied
    from ``rgb_range``, so the dict need not contain them.
    """
    sd = {k: np.asarray(v, dtype=np.float64) for k, v in state_dict.items()}
    mean = rgb_range * RGB_MEAN[:, None, None]
    h = np.asarray(x, dtype=np.float64) - mean
    p = f"head.{task_index}"
    h = conv2d(h, sd[p + ".0.weight"], sd[p + ".0.bias"])
    for block in (1, 2):
        r = np.maximum(conv2d(h, sd[f"{p}.{block}.body.0.weight"], sd[f"{p}.{block}.body.0.bias"]), 0)
        h = conv2d(r, sd[f"{p}.{block}.body.2.weight"], sd[f"{p}.{block}.body.2.bias"]) + h
    f = body(h, sd, task_index, num_heads) + h
    return tail(f, sd, task_index, scales[task_index]) + mean
