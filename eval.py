"""Restore images with IPT.

    python eval.py --ckpt_path CKPT --task TASK --input FILE_OR_DIR --output DIR [--save_npy]

CKPT may be one of our .ckpt files, an official PyTorch .pt or an official MindSpore model-zoo .ckpt. Every key of
configs/eval.yaml is a flag (``python eval.py --help`` lists them).
"""
import sys
from pathlib import Path

from src.checkpoint.loader import load_model
from src.config import parse_config
from src.data.image_io import list_images, read_rgb, save_npy, to_uint8, write_png
from src.errors import ConfigError, run_main
from src.inference import Restorer
from src.runtime import log, setup
from src.tasks import get_task, pick_task

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "eval.yaml"


def main(argv=None):
    cfg = parse_config(sys.argv[1:] if argv is None else argv, DEFAULT_CONFIG, __doc__)
    for key in ("ckpt_path", "input"):
        if not cfg[key]:
            raise ConfigError(f"--{key} is required")
    images = list_images(cfg.input)
    if cfg.task:
        get_task(cfg.task)  # fail fast, before loading anything
    compute_dtype = setup(cfg.device_target, cfg.compute_dtype, cfg.onednn_isa)
    ipt, weights = load_model(cfg.ckpt_path, cfg.task, cfg.num_heads, compute_dtype)
    task = pick_task(cfg.task, weights.config.tasks, cfg.ckpt_path)
    restorer = Restorer(ipt, task)
    log.info("%s (%s checkpoint): task %s, %d image(s)", cfg.ckpt_path, weights.source_format, task, len(images))
    out_dir = Path(cfg.output)
    for i, path in enumerate(images, 1):
        target = out_dir / f"{path.stem}.png"
        if target.resolve() == path.resolve():
            raise ConfigError(f"{target}: the output would overwrite the input; choose another --output")
        output = restorer.restore(read_rgb(path), str(path))
        write_png(target, to_uint8(output))
        if cfg.save_npy:
            save_npy(out_dir / f"{path.stem}.npy", output)
        log.info("[%d/%d] %s -> %s", i, len(images), path, target)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
