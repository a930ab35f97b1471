"""Export one IPT task to MindIR with a static tile batch.

    python export.py --ckpt_path CKPT --task sr_x2 --batch_size 8

The graph takes (batch_size, 3, P, P) float32 RGB tiles on 0..255 (P = patch_size, 48 for the official models) and
returns (batch_size, 3, P*scale, P*scale) on the same scale: the mean shift is inside, nothing to add or subtract.
"""
import os
import sys
from pathlib import Path

import numpy as np
import mindspore as ms

from src.checkpoint.loader import load_model
from src.config import parse_config
from src.errors import ConfigError, run_main
from src.runtime import log, setup
from src.tasks import get_task, pick_task

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "export.yaml"


def export_task(ipt, task, batch_size, file_name, file_format="MINDIR"):
    """Write ``<file_name>.mindir`` atomically; returns its path."""
    if file_format != "MINDIR":
        raise ConfigError(f"file_format {file_format!r}; only MINDIR is supported")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    net = ipt.task_net(task)
    net.set_train(False)
    p = ipt.config.patch_size
    target = Path(f"{file_name}.mindir")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp")
    try:
        ms.export(net, ms.Tensor(np.zeros((batch_size, 3, p, p), np.float32)), file_name=str(tmp),
                  file_format="MINDIR")
        os.replace(f"{tmp}.mindir", target)
    finally:
        if os.path.exists(f"{tmp}.mindir"):
            os.remove(f"{tmp}.mindir")
    return target


def main(argv=None):
    cfg = parse_config(sys.argv[1:] if argv is None else argv, DEFAULT_CONFIG, __doc__)
    if not cfg.ckpt_path:
        raise ConfigError("--ckpt_path is required")
    if cfg.task:
        get_task(cfg.task)  # fail fast, before loading anything
    compute_dtype = setup(cfg.device_target, cfg.compute_dtype, cfg.onednn_isa)
    ipt, weights = load_model(cfg.ckpt_path, cfg.task, cfg.num_heads, compute_dtype)
    task = pick_task(cfg.task, weights.config.tasks, cfg.ckpt_path)
    file_name = cfg.file_name or f"ipt_{task}_b{cfg.batch_size}"
    target = export_task(ipt, task, cfg.batch_size, file_name, cfg.file_format)
    log.info("exported %s of %s to %s (input %d x 3 x %d x %d)", task, cfg.ckpt_path, target, cfg.batch_size,
             ipt.config.patch_size, ipt.config.patch_size)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
