"""Fine-tune IPT on one task with L1, from images degraded on the fly.

    python train.py --ckpt_path IPT_pretrain.pt --task sr_x2 --data.train_dir DIV2K_train_HR
    python train.py --resume train_output/ipt_sr_x2_step5000.ckpt --data.train_dir DIV2K_train_HR

Writes ``output_dir/ipt_<task>_step<N>.ckpt`` every ``save_every`` steps and ``ipt_<task>_last.ckpt`` at the end (our
format: eval.py and export.py load them with no flags; ``.opt.ckpt`` beside each holds the optimizer state for
--resume), plus ``loss.csv`` and ``loss.png``. Every key of configs/train.yaml is a flag (``python train.py --help``).
"""
import itertools
import sys
from pathlib import Path

import mindspore as ms

from src.checkpoint.loader import build_model, read_weights, select_tasks
from src.config import parse_config
from src.data.image_io import list_images
from src.data.train_dataset import TrainPairs, batches
from src.errors import CheckpointError, ConfigError, run_main
from src.models.ipt import IPT, IPTConfig, count_trainable
from src.runtime import log, setup
from src.tasks import get_task, pick_task
from src.training import Trainer

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "train.yaml"


def check_numbers(cfg):
    """Range checks of the numeric keys (parse_config already checked the types)."""
    at_least = {"steps": (cfg.steps, 1), "log_every": (cfg.log_every, 1), "save_every": (cfg.save_every, 0),
                "data.batch_size": (cfg.data.batch_size, 1), "data.num_workers": (cfg.data.num_workers, 1),
                "data.lr_patch_size": (cfg.data.lr_patch_size, 1), "optim.weight_decay": (cfg.optim.weight_decay, 0),
                "optim.clip_grad_norm": (cfg.optim.clip_grad_norm, 0)}
    for key, (value, low) in at_least.items():
        if value < low:
            raise ConfigError(f"{key} is {value}; it must be at least {low}")
    for key in ("lr", "eps", "gamma"):
        if cfg.optim[key] <= 0:
            raise ConfigError(f"optim.{key} is {cfg.optim[key]}; it must be positive")
    betas = cfg.optim.betas
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise ConfigError(f"optim.betas is {betas}; expected two numbers in [0, 1), like [0.9, 0.999]")
    if not all(isinstance(m, int) and m > 0 for m in cfg.optim.milestones):
        raise ConfigError(f"optim.milestones is {cfg.optim.milestones}; expected positive step numbers")


def load_start(cfg):
    """(LoadedWeights or None for a random init, first step, where the weights come from)."""
    if cfg.resume:
        if cfg.ckpt_path:
            log.info("resume given: ckpt_path %s is not used", cfg.ckpt_path)
        weights = read_weights(cfg.resume)
        if weights.source_format != "ours" or "step" not in weights.extra:
            raise CheckpointError(f"{cfg.resume}: not a checkpoint written by train.py (no stored step); "
                                  f"start from it with --ckpt_path instead")
        for key in ("seed", "batch_size"):
            if weights.extra.get(key) != cfg.data[key]:
                log.warning("%s was trained with data.%s %s, this run uses %s: the data stream will differ",
                            cfg.resume, key, weights.extra.get(key), cfg.data[key])
        return weights, int(weights.extra["step"]), cfg.resume
    if cfg.ckpt_path:
        return read_weights(cfg.ckpt_path, cfg.task, cfg.num_heads), 0, cfg.ckpt_path
    return None, 0, "random init"


def for_task(cfg, weights, task, source):
    """What to build: ``weights`` kept to ``task`` alone, or (``weights`` None) the IPTConfig of a random init of
    ``model`` for ``task``."""
    if weights is None:
        if cfg.data.lr_patch_size % cfg.model.patch_dim:
            raise ConfigError(f"data.lr_patch_size {cfg.data.lr_patch_size} is not a multiple of model.patch_dim "
                              f"{cfg.model.patch_dim}")
        return IPTConfig.from_dict({**cfg.model.to_dict(), "tasks": [task], "patch_size": cfg.data.lr_patch_size})
    weights = select_tasks(weights, [task])
    if weights.config.patch_size != cfg.data.lr_patch_size:
        raise ConfigError(f"data.lr_patch_size is {cfg.data.lr_patch_size} but the model of {source} takes "
                          f"{weights.config.patch_size}x{weights.config.patch_size} inputs")
    return weights


def main(argv=None):
    cfg = parse_config(sys.argv[1:] if argv is None else argv, DEFAULT_CONFIG, __doc__)
    check_numbers(cfg)
    if cfg.task:
        get_task(cfg.task)  # fail fast, before loading anything
    if not cfg.data.train_dir:
        raise ConfigError("--data.train_dir is required (a folder of clean training images)")
    images = list_images(cfg.data.train_dir)
    compute_dtype = setup(cfg.device_target, cfg.compute_dtype, cfg.onednn_isa)
    weights, start, source = load_start(cfg)
    if weights is None and not cfg.task:
        raise ConfigError("--task is required to train a randomly initialised model")
    task = pick_task(cfg.task, weights.config.tasks, source) if weights else cfg.task
    rain = []
    if task == "derain":
        if not cfg.data.rain_dir:
            raise ConfigError("derain training needs --data.rain_dir, a folder of rain-streak layer images "
                              "(e.g. RainTrainL rainstreak-*.png) to add to the clean images")
        rain = list_images(cfg.data.rain_dir)
    if start >= cfg.steps:
        raise ConfigError(f"{cfg.resume} is already at step {start}; set --steps above it to train on")
    spec = for_task(cfg, weights, task, source)
    batch = cfg.data.batch_size
    pairs = TrainPairs(images, task, (cfg.steps - start) * batch, cfg.data.lr_patch_size, cfg.data.seed,
                       cfg.data.augment, rain, start=start * batch)
    stream = batches(pairs, batch, cfg.data.num_workers)
    first = next(stream)  # unreadable or too small images in it fail now, before the model is built
    ms.set_seed(cfg.data.seed)
    ipt = IPT(spec, compute_dtype) if weights is None else build_model(spec, compute_dtype, source)
    trainer = Trainer(ipt, task, cfg.optim, loss_scaling=compute_dtype == ms.float16)
    if cfg.resume:
        trainer.resume(cfg.resume, start)
    log.info("%s: task %s, %d trainable parameters, %d image(s) in %s, steps %d..%d, batch %d", source, task,
             count_trainable(ipt.task_net(task)), len(images), cfg.data.train_dir, start, cfg.steps, batch)
    trainer.fit(itertools.chain([first], stream), cfg.steps, cfg.output_dir, cfg.log_every, cfg.save_every,
                extra={"seed": cfg.data.seed, "batch_size": batch})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
