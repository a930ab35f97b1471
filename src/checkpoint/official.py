"""The official IPT weights in our layout.

Both official code bases name parameters alike (reference §2): the MindSpore model zoo's names are first brought to
PyTorch's (``to_torch_names``), then ``from_torch_names`` infers the architecture from the shapes and renames every
tensor to ours. Every key must be used: an unmapped key is an error, never dropped.
"""
import math
import re

import numpy as np

from src.errors import CheckpointError
from src.models.ipt import IPTConfig, RGB_MEAN
from src.tasks import tasks_for_scales

# State a MindSpore trainer writes beside the weights (Adam moments, loss scale, counters); not part of the model.
_OPTIMIZER_PREFIXES = ("moment1.", "moment2.", "adam_m.", "adam_v.", "accum.")
_OPTIMIZER_SCALARS = {"beta1_power", "beta2_power", "learning_rate", "global_step", "scale_sense", "loss_scale",
                      "current_iterator_step", "last_overflow_iterator_step", "epoch_num", "step_num"}
_ROOTS = ("head.", "body.", "tail.", "sub_mean.", "add_mean.")
_WRAPPER_PREFIXES = ("model.", "network.", "_backbone.", "net.")

_MS_RENAMES = (  # (pattern, replacement) from MindSpore model-zoo names (both generations) to PyTorch names
    (re.compile(r"\.in_proj_layer$"), ".in_proj_weight"),
    (re.compile(r"\.(norm\d)\.layernorm\.gamma$"), r".\1.weight"),
    (re.compile(r"\.(norm\d)\.layernorm\.beta$"), r".\1.bias"),
    (re.compile(r"\.(norm\d)\.gamma$"), r".\1.weight"),
    (re.compile(r"\.(norm\d)\.beta$"), r".\1.bias"),
    (re.compile(r"\.embedding_table$"), ".weight"),
)
_MS_TAIL = re.compile(r"^tail\.(\d+)\.0\.net\.(\d+)\.conv\.(weight|bias)$")


def is_optimizer_state(name):
    return name.startswith(_OPTIMIZER_PREFIXES) or name in _OPTIMIZER_SCALARS


def to_torch_names(params, path):
    """MindSpore model-zoo names -> PyTorch names; wrapper prefixes (``model.``) stripped, optimizer state skipped."""
    out = {}
    for name, value in params.items():
        if is_optimizer_state(name):
            continue
        while not name.startswith(_ROOTS) and name.startswith(_WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        for pattern, repl in _MS_RENAMES:
            name = pattern.sub(repl, name)
        m = _MS_TAIL.match(name)
        if m:
            name = f"tail.{m[1]}.0.{2 * int(m[2])}.{m[3]}"
        if name in out:
            raise CheckpointError(f"{path}: two parameters map to {name!r}")
        out[name] = value
    return out


def _get(sd, key, path):
    if key not in sd:
        raise CheckpointError(f"{path}: missing parameter {key!r}")
    return sd[key]


_MEAN_SHIFT_KEYS = ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias")


def _mean_shift_range(sd, path):
    """The rgb_range of the frozen MeanShift convs, after checking they are the standard ones (255 if absent)."""
    if "sub_mean.bias" not in sd:
        return 255.0
    sub_w, sub_b, add_w, add_b = (_get(sd, k, path) for k in _MEAN_SHIFT_KEYS)
    rgb_range = float(-sub_b[0] / RGB_MEAN[0])
    eye = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    ok = (np.allclose(sub_w, eye) and np.allclose(add_w, eye) and np.allclose(add_b, -sub_b, rtol=1e-5)
          and np.allclose(-sub_b, np.array(RGB_MEAN) * rgb_range, rtol=1e-4))
    if not ok:
        raise CheckpointError(f"{path}: sub_mean/add_mean are not the standard MeanShift (identity, mean "
                              f"{RGB_MEAN} x rgb_range); this model is not supported")
    return round(rgb_range, 3)


def _indices(sd, pattern):
    return sorted({int(m[1]) for k in sd for m in [re.match(pattern, k)] if m})


def _tail_scale(sd, t, n_feats, path):
    convs = sorted(int(m[1]) for k in sd for m in [re.match(rf"tail\.{t}\.0\.(\d+)\.weight$", k)] if m)
    outs = [sd[f"tail.{t}.0.{k}.weight"].shape[0] for k in convs]
    known = {(): 1, (4 * n_feats,): 2, (9 * n_feats,): 3, (4 * n_feats, 4 * n_feats): 4}
    if tuple(outs) not in known:
        raise CheckpointError(f"{path}: tail {t} has an upsampler of output channels {outs}, "
                              f"not one of x1, x2, x3, x4 for n_feats {n_feats}")
    return known[tuple(outs)]


def infer_config(sd, path, task=None, num_heads=12):
    """The IPTConfig of a PyTorch-named state dict, from shapes; ``task`` may name a single-task model's head.

    The number of attention heads leaves no trace in the shapes: the official models use 12.
    """
    heads = _indices(sd, r"head\.(\d+)\.0\.weight$")
    if not heads or heads != list(range(len(heads))):
        raise CheckpointError(f"{path}: not an IPT checkpoint (no head.<i>.0.weight parameters)")
    n_feats = sd["head.0.0.weight"].shape[0]
    scales = [_tail_scale(sd, t, n_feats, path) for t in heads]
    token_dim = _get(sd, "body.linear_encoding.weight", path).shape[0]
    patch_dim = int(round(math.sqrt(token_dim / n_feats)))
    num_tokens = _get(sd, "body.position_encoding.pe.weight", path).shape[0]
    grid = int(round(math.sqrt(num_tokens)))
    if patch_dim * patch_dim * n_feats != token_dim or grid * grid != num_tokens:
        raise CheckpointError(f"{path}: token dim {token_dim} / {num_tokens} positions do not fit n_feats {n_feats}")
    queries = _get(sd, "body.query_embed.weight", path).shape[0]
    if queries != len(heads):
        raise CheckpointError(f"{path}: body.query_embed has {queries} rows (task queries) but the checkpoint has "
                              f"{len(heads)} head(s) and tail(s); cannot tell which query belongs to which task")
    return IPTConfig(
        tasks=tasks_for_scales(scales, task),
        n_feats=n_feats,
        patch_size=grid * patch_dim,
        patch_dim=patch_dim,
        num_heads=num_heads,
        num_encoder_layers=len(_indices(sd, r"body\.encoder\.layers\.(\d+)\.")),
        num_decoder_layers=len(_indices(sd, r"body\.decoder\.layers\.(\d+)\.")),
        ffn_dim=_get(sd, "body.mlp_head.0.weight", path).shape[0],
        out_proj_bias=any(k.endswith("out_proj.bias") for k in sd),
        rgb_range=_mean_shift_range(sd, path),
    )


def _layer_renames(kind, i):
    src, dst = f"body.{kind}.layers.{i}.", f"body.{kind}.{i}."
    pairs = [("self_attn.in_proj_weight", "self_attn.in_proj_weight"),
             ("self_attn.out_proj.weight", "self_attn.out_proj.weight"),
             ("self_attn.out_proj.bias", "self_attn.out_proj.bias"),
             ("linear1.weight", "linear1.weight"), ("linear1.bias", "linear1.bias"),
             ("linear2.weight", "linear2.weight"), ("linear2.bias", "linear2.bias")]
    if kind == "decoder":
        pairs += [("multihead_attn.in_proj_weight", "cross_attn.in_proj_weight"),
                  ("multihead_attn.out_proj.weight", "cross_attn.out_proj.weight"),
                  ("multihead_attn.out_proj.bias", "cross_attn.out_proj.bias")]
    for n in (1, 2, 3) if kind == "decoder" else (1, 2):
        pairs += [(f"norm{n}.weight", f"norm{n}.gamma"), (f"norm{n}.bias", f"norm{n}.beta")]
    return [(src + a, dst + b) for a, b in pairs]


def from_torch_names(sd, path, task=None, num_heads=12):
    """(IPTConfig, {our name: array}) from a PyTorch-named state dict. Leftover keys are an error naming them."""
    sd = dict(sd)
    cfg = infer_config(sd, path, task, num_heads)
    for key in _MEAN_SHIFT_KEYS:  # checked by infer_config; the mean shift is a constant of our graph
        sd.pop(key, None)
    ids = sd.pop("body.position_encoding.position_ids", None)
    if ids is not None and not np.array_equal(np.asarray(ids).ravel(), np.arange(cfg.num_tokens)):
        raise CheckpointError(f"{path}: body.position_encoding.position_ids is not 0..{cfg.num_tokens - 1}")
    renames = [("body.linear_encoding.weight", "body.linear_encoding.weight"),
               ("body.linear_encoding.bias", "body.linear_encoding.bias"),
               ("body.position_encoding.pe.weight", "body.position_embedding"),
               ("body.mlp_head.0.weight", "body.mlp_head.0.weight"), ("body.mlp_head.0.bias", "body.mlp_head.0.bias"),
               ("body.mlp_head.3.weight", "body.mlp_head.2.weight"), ("body.mlp_head.3.bias", "body.mlp_head.2.bias")]
    for i in range(cfg.num_encoder_layers):
        renames += _layer_renames("encoder", i)
    for i in range(cfg.num_decoder_layers):
        renames += _layer_renames("decoder", i)
    for t, name in enumerate(cfg.tasks):
        ours = f"tasks.{name}."
        renames += [(f"head.{t}.0.{p}", f"{ours}head.conv.{p}") for p in ("weight", "bias")]
        renames += [(f"head.{t}.{r}.body.{c}.{p}", f"{ours}head.res_blocks.{r - 1}.conv{c // 2 + 1}.{p}")
                    for r in (1, 2) for c in (0, 2) for p in ("weight", "bias")]
        renames += [(f"tail.{t}.0.{k}.{p}", f"{ours}tail.upsampler.{k // 2}.{p}") for k in (0, 2)
                    for p in ("weight", "bias")]
        renames += [(f"tail.{t}.1.{p}", f"{ours}tail.conv.{p}") for p in ("weight", "bias")]
    out = {dst: sd.pop(src) for src, dst in renames if src in sd}
    query = sd.pop("body.query_embed.weight")
    for t, name in enumerate(cfg.tasks):
        out[f"tasks.{name}.query"] = np.asarray(query[t]).reshape(cfg.num_tokens, cfg.token_dim)
    if sd:
        raise CheckpointError(f"{path}: {len(sd)} parameter(s) map to nothing in IPT: {', '.join(sorted(sd)[:5])}"
                              + (" ..." if len(sd) > 5 else ""))
    return cfg, out
