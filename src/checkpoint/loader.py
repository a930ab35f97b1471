"""The one checkpoint loader: our .ckpt, official PyTorch .pt (zip or legacy) and official MindSpore model-zoo .ckpt.

Our checkpoints describe themselves: beside the parameters they carry ``ipt_config`` (the architecture as JSON,
task names included), so nothing else needs to be passed to load them, and ``ipt_format``, the format version.
Loading is strict: a missing, unexpected or mis-shaped parameter is a CheckpointError naming it.

Format versions (docs/checkpoints.md): 1 stored each decoder attention's in-projection either packed
(``in_proj_weight``) or as the row blocks the cells hold; 2 (project 0.9.0 on) always stores the row blocks. Both are
read: packed weights are split on load (``split_packed_projections``). A newer format is refused with one line.
"""
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import mindspore as ms

from src.errors import CheckpointError, ConfigError
from src.checkpoint import official
from src.checkpoint.torch_pickle import extract_state_dict, is_torch_file, load_torch_file
from src.models.ipt import DECODER_ATTENTION_BLOCKS, IPT, IPTConfig
from src.models.layers import FP32, IN_PROJ_ROWS, in_proj_name

CONFIG_KEY = "ipt_config"
FORMAT_KEY = "ipt_format"
FORMAT_VERSION = "ipt-mindspore/2"
READABLE_FORMATS = ("ipt-mindspore/1", FORMAT_VERSION)
OFFICIAL_NUM_HEADS = 12  # the official models' attention heads, which their files do not store
log = logging.getLogger("ipt")


@dataclass
class LoadedWeights:
    """Architecture and weights (our names, float32 numpy) read from any supported file."""
    config: IPTConfig
    params: dict
    source_format: str              # "ours", "pytorch" or "mindspore-zoo"
    extra: dict = field(default_factory=dict)  # other scalars stored in our checkpoints (epoch, step, ...)


def _read_mindspore(path):
    try:
        return ms.load_checkpoint(str(path))
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint: neither a PyTorch file nor a MindSpore .ckpt "
                              f"({str(exc).splitlines()[0][:120]})") from None


def read_weights(path, task=None, num_heads=None) -> LoadedWeights:
    """Read ``path`` in any supported format.

    For official checkpoints, ``task`` names a single-task model's head (needed when its scale-1 tail is ambiguous;
    ignored for multi-task files, whose order is the official one) and ``num_heads`` sets the attention heads
    (default 12, the official value; shapes do not show it). Our own checkpoints carry both.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if is_torch_file(path):
        cfg, params = official.from_torch_names(extract_state_dict(load_torch_file(path), path), path, task,
                                                _official_num_heads(path, num_heads))
        return LoadedWeights(cfg, split_packed_projections(params, path), "pytorch")
    raw = _read_mindspore(path)
    if CONFIG_KEY in raw:
        try:
            cfg = IPTConfig.from_dict(json.loads(raw.pop(CONFIG_KEY)), where=str(path))
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: unreadable {CONFIG_KEY} entry ({exc})") from None
        file_format = raw.pop(FORMAT_KEY, FORMAT_VERSION)
        if file_format not in READABLE_FORMATS:
            raise CheckpointError(f"{path}: {FORMAT_KEY} {file_format!r} is a format this version cannot read "
                                  f"(it reads {', '.join(READABLE_FORMATS)}); load it with a newer version")
        if num_heads and num_heads != cfg.num_heads:
            raise ConfigError(f"{path} was saved with num_heads {cfg.num_heads}; it cannot be loaded with {num_heads}")
        extra = {k: v for k, v in raw.items() if not k.startswith(("body.", "tasks."))}
        params = split_packed_projections({k: v.asnumpy() for k, v in raw.items() if k not in extra}, path)
        extra = {k: (v if isinstance(v, str) else v.asnumpy().item()) for k, v in extra.items()}
        return LoadedWeights(cfg, params, "ours", extra)
    params = {k: v.asnumpy() for k, v in raw.items() if not isinstance(v, str)}
    cfg, params = official.from_torch_names(official.to_torch_names(params, path), path, task,
                                            _official_num_heads(path, num_heads))
    return LoadedWeights(cfg, split_packed_projections(params, path), "mindspore-zoo")


def _official_num_heads(path, num_heads):
    """``num_heads`` when given; else the official 12, said in one log line (an official file cannot tell)."""
    if num_heads:
        return num_heads
    log.info("%s: official files do not store the number of attention heads; assuming %d, the official value "
             "(--num_heads to change)", path, OFFICIAL_NUM_HEADS)
    return OFFICIAL_NUM_HEADS


def select_tasks(weights: LoadedWeights, tasks) -> LoadedWeights:
    """Keep only ``tasks`` (and the shared body): e.g. sr_x2 out of the 6-task pre-trained model."""
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    missing = [t for t in tasks if t not in weights.config.tasks]
    if missing:
        raise ConfigError(f"task(s) {missing} not in the checkpoint; it has: {', '.join(weights.config.tasks)}")
    keep = tuple(t for t in weights.config.tasks if t in tasks)
    params = {k: v for k, v in weights.params.items()
              if not k.startswith("tasks.") or k.split(".")[1] in keep}
    return LoadedWeights(weights.config.replace(tasks=keep), params, weights.source_format, weights.extra)


_PACKED_DECODER_PROJECTION = re.compile(rf"^(body\.decoder\.\d+\.({'|'.join(DECODER_ATTENTION_BLOCKS)})\.)"
                                        r"in_proj_weight$")


def split_packed_projections(params, path):
    """``params`` (our names) with each decoder attention's packed in-projection ``in_proj_weight`` (3D, D), as
    PyTorch and the model zoo store it and as our format-1 checkpoints may, split into the row blocks that the cell
    holds (``ipt.DECODER_ATTENTION_BLOCKS``: ``in_proj_weight_qk`` and ``_v``, ``_q`` and ``_kv``)."""
    out = {}
    for name, value in params.items():
        m = _PACKED_DECODER_PROJECTION.match(name)
        if not m:
            out[name] = value
            continue
        packed = np.asarray(value)
        dim = packed.shape[-1]
        if packed.shape != (3 * dim, dim):
            raise CheckpointError(f"{path}: parameter {name} has shape {packed.shape}, expected (3 * dim, dim): "
                                  f"the rows W_q | W_k | W_v")
        for block in DECODER_ATTENTION_BLOCKS[m[2]]:
            first, last = IN_PROJ_ROWS[block]
            out[m[1] + in_proj_name(block)] = packed[first * dim:last * dim]
    return out


def assign_strict(net, params, path):
    """Copy ``params`` into ``net``; every parameter must be present exactly once with its shape."""
    own = {p.name: p for p in net.get_parameters()}
    missing = sorted(set(own) - set(params))
    unexpected = sorted(set(params) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"{path}: parameters do not match the model: {'; '.join(parts)}")
    for name, p in own.items():
        value = np.asarray(params[name])
        if value.shape != tuple(p.shape):
            raise CheckpointError(f"{path}: parameter {name} has shape {value.shape}, "
                                  f"the model expects {tuple(p.shape)}")
        p.set_data(ms.Tensor(np.array(value, dtype=np.float32)))  # an owned, writable copy


def build_model(weights: LoadedWeights, compute_dtype=FP32, path="checkpoint", graph_form="native") -> IPT:
    net = IPT(weights.config, compute_dtype, graph_form)
    assign_strict(net, weights.params, path)
    return net


def load_model(path, task=None, num_heads=None, compute_dtype=FP32, graph_form="native"):
    """(IPT, LoadedWeights) from any supported checkpoint, in either graph form; see ``read_weights``."""
    weights = read_weights(path, task, num_heads)
    return build_model(weights, compute_dtype, path, graph_form), weights


def save_checkpoint(net: IPT, path, extra=None):
    """Write ``net`` and its configuration to ``path`` atomically (temporary file, then rename).

    ``extra`` holds scalars (int/float/str) to keep beside the weights, e.g. epoch and step for resuming.
    """
    path = Path(path)
    if path.suffix != ".ckpt":
        raise CheckpointError(f"{path}: checkpoint files must end in .ckpt")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.ckpt")
    append = {CONFIG_KEY: json.dumps(net.config.to_dict()), FORMAT_KEY: FORMAT_VERSION}
    append.update(extra or {})
    try:
        ms.save_checkpoint(net, str(tmp), append_dict=append)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
