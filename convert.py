"""Convert an official IPT checkpoint (PyTorch .pt or MindSpore model-zoo .ckpt) to our self-describing .ckpt.

    python convert.py --ckpt_path IPT_pretrain.pt --output ipt_pretrain.ckpt
    python convert.py --ckpt_path IPT_pretrain.pt --keep "[sr_x2]" --output ipt_sr_x2_from_pretrain.ckpt
    python convert.py --ckpt_path IPT_dn30.pt --task denoise_30 --output ipt_denoise_30.ckpt

No PyTorch is needed. Every parameter of the source must map to the model, or nothing is written.
"""
import sys
from pathlib import Path

from src.checkpoint.loader import build_model, read_weights, save_checkpoint, select_tasks
from src.config import parse_config
from src.errors import ConfigError, run_main
from src.models.ipt import count_trainable
from src.runtime import log, setup

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "convert.yaml"


def main(argv=None):
    cfg = parse_config(sys.argv[1:] if argv is None else argv, DEFAULT_CONFIG, __doc__)
    for key in ("ckpt_path", "output"):
        if not cfg[key]:
            raise ConfigError(f"--{key} is required")
    setup("CPU", onednn_isa=cfg.onednn_isa)
    weights = read_weights(cfg.ckpt_path, cfg.task, cfg.num_heads)
    if cfg.keep:
        weights = select_tasks(weights, cfg.keep)
    net = build_model(weights, path=cfg.ckpt_path)
    save_checkpoint(net, cfg.output)
    log.info("%s (%s) -> %s: tasks %s, %d trainable parameters, config %s", cfg.ckpt_path, weights.source_format,
             cfg.output, ", ".join(weights.config.tasks), count_trainable(net), weights.config.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
