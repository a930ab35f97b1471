"""Train IPT: fine-tune one task with L1, or pre-train all six with L1 + contrastive, from images degraded on the fly.

    python train.py --ckpt_path IPT_pretrain.pt --task sr_x2 --data.train_dir DIV2K_train_HR
    python train.py --config configs/pretrain.yaml --data.train_dir imagenet/train
    python train.py --resume auto --output_dir train_output ...   (continue from the newest checkpoint there)

Data parallel: start it with scripts/run_distribute_train.sh (msrun) or scripts/run_distribute_train_rank_table.sh;
data.batch_size is the global batch, split over the ranks. Writes (rank 0) ``output_dir/ipt_<name>_step<N>.ckpt``
every ``save_every`` steps and ``ipt_<name>_last.ckpt`` at the end, ``<name>`` the task or ``pretrain`` (our format:
eval.py and export.py load them with no flags; ``.opt.ckpt`` beside each holds the optimizer state for --resume),
plus ``loss.csv``/``loss.png`` and, with validation, ``val.csv``/``val.png``. Every key of configs/train.yaml is a
flag (``python train.py --help``).
"""
import src.data.blas_threads  # noqa: F401  (first: before NumPy loads OpenBLAS)
import itertools
import sys
from pathlib import Path

import mindspore as ms

from src.checkpoint.loader import build_model, read_weights, select_tasks
from src.config import load_yaml, parse_config
from src.data.image_io import list_images
from src.data.train_dataset import (TrainPairs, UnusableFiles, batches, data_workers, first_usable_image,
                                    sink_dataset)
from src.errors import CheckpointError, ConfigError, run_main
from src.models.ipt import IPT, IPTConfig, count_trainable
from src import runtime
from src.runtime import (distributed_device_id, init_data_parallel, launched_world_size, local_process_count, log,
                         setup)
from src.tasks import check_task_list, get_task, pick_task
from src.train_outputs import check_output_dir, latest_checkpoint, remove_earlier_outputs
from src.step_feeds import DatasetSink, HostBatches
from src.training import Trainer

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "train.yaml"
MODES = ("finetune", "pretrain")


def check_numbers(cfg):
    """Range checks of the keys (parse_config already checked the types)."""
    at_least = {"steps": (cfg.steps, 1), "log_every": (cfg.log_every, 1), "save_every": (cfg.save_every, 0),
                "val_every": (cfg.val_every, 0), "sink_size": (cfg.sink_size, 0),
                "data.batch_size": (cfg.data.batch_size, 1),
                "data.lr_patch_size": (cfg.data.lr_patch_size, 1), "optim.weight_decay": (cfg.optim.weight_decay, 0),
                "optim.clip_grad_norm": (cfg.optim.clip_grad_norm, 0),
                "loss.contrastive_groups": (cfg.loss.contrastive_groups, 1),
                "data.val_images": (cfg.data.val_images, 1)}
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
    if cfg.mode not in MODES:
        raise ConfigError(f"mode is {cfg.mode!r}; expected one of {', '.join(MODES)}")
    weight = cfg.loss.contrastive_weight
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0):
        raise ConfigError(f"loss.contrastive_weight is {weight!r}; expected a number >= 0 (or null: 0.1 for "
                          f"pretrain, 0 for finetune)")
    if cfg.loss.temperature <= 0:
        raise ConfigError(f"loss.temperature is {cfg.loss.temperature}; it must be positive")
    check_task_list(cfg.tasks, "tasks")


def check_sink_size(cfg, device_target):
    """Refuse dataset sink mode (``sink_size`` > 0) where it cannot serve this run, before anything is read: with
    several tasks (pre-training draws a task per step, each task its own graph, and one sunk graph trains one), when
    it does not divide steps, log_every, save_every or val_every (losses are read, checkpoints written and
    validation run between sink calls), and on CPU (``mindspore.data_sink`` runs on Ascend and GPU only)."""
    size = cfg.sink_size
    if not size:
        return
    if cfg.mode == "pretrain" and len(cfg.tasks) > 1:
        raise ConfigError(f"sink_size {size}: dataset sink mode trains one task (fine-tuning); pre-training draws "
                          f"one of {len(cfg.tasks)} tasks per step, each its own graph, which one sunk graph cannot "
                          f"serve: set sink_size 0")
    every = {"steps": cfg.steps, "log_every": cfg.log_every, "save_every": cfg.save_every,
             "val_every": cfg.val_every if cfg.data.val_dir else 0}
    for key, value in every.items():
        if value % size:
            raise ConfigError(f"sink_size {size} does not divide {key} {value}: each sink call trains {size} steps "
                              f"and losses, checkpoints and validation happen between calls; choose a sink_size "
                              f"that divides steps, log_every, save_every and val_every")
    if device_target not in ("Ascend", "GPU"):
        raise ConfigError(f"sink_size {size}: dataset sink mode runs on Ascend and GPU only (mindspore.data_sink); "
                          f"this run is on {device_target}: set sink_size 0")


def check_sink_start(sink_size, start, source):
    """A resumed run in sink mode starts at a multiple of ``sink_size``, so that its sink calls end on the same
    steps as the logs, checkpoints and validation."""
    if sink_size and start % sink_size:
        raise ConfigError(f"sink_size {sink_size} does not divide step {start} of {source}, where this run resumes: "
                          f"resume it with sink_size 0 or a sink_size that divides {start}")


def resume_path(cfg):
    """The checkpoint this run continues: ``resume`` as given, for ``auto`` the newest consistent checkpoint in
    output_dir (``_last`` included), None to start afresh."""
    if cfg.resume != "auto":
        return cfg.resume or None
    found = latest_checkpoint(cfg.output_dir)
    if found is None:
        log.info("resume auto: no checkpoint in %s yet, starting from the beginning", cfg.output_dir)
        return None
    log.info("resume auto: %s (step %d), the newest checkpoint in %s", found[0], found[1], cfg.output_dir)
    return str(found[0])


def load_start(cfg, batch, resume):
    """(LoadedWeights or None for a random init, first step, where the weights come from), ``resume`` the
    checkpoint to continue (``resume_path``) or None."""
    if resume:
        if cfg.ckpt_path:
            log.info("resume given: ckpt_path %s is not used", cfg.ckpt_path)
        weights = read_weights(resume)
        if weights.source_format != "ours" or "step" not in weights.extra:
            raise CheckpointError(f"{resume}: not a checkpoint written by train.py (no stored step); "
                                  f"start from it with --ckpt_path instead")
        for key, value in (("seed", cfg.data.seed), ("batch_size", batch)):
            if weights.extra.get(key) != value:
                log.warning("%s was trained with data.%s %s, this run uses %s: the data stream will differ",
                            resume, key, weights.extra.get(key), value)
        return weights, int(weights.extra["step"]), str(resume)
    if cfg.ckpt_path:
        return read_weights(cfg.ckpt_path, cfg.task, cfg.num_heads), 0, cfg.ckpt_path
    return None, 0, "random init"


def model_spec(cfg, weights, tasks, source):
    """What to build: ``weights`` kept to ``tasks``, or (``weights`` None) the IPTConfig of a random init of
    ``model`` for ``tasks``."""
    if weights is None:
        if cfg.data.lr_patch_size % cfg.model.patch_dim:
            raise ConfigError(f"data.lr_patch_size {cfg.data.lr_patch_size} is not a multiple of model.patch_dim "
                              f"{cfg.model.patch_dim}")
        return IPTConfig.from_dict({**cfg.model.to_dict(), "tasks": list(tasks),
                                    "patch_size": cfg.data.lr_patch_size})
    weights = select_tasks(weights, tasks)
    if weights.config.patch_size != cfg.data.lr_patch_size:
        raise ConfigError(f"data.lr_patch_size is {cfg.data.lr_patch_size} but the model of {source} takes "
                          f"{weights.config.patch_size}x{weights.config.patch_size} inputs")
    return weights


def check_architecture(cfg, weights, source, resumed):
    """A resumed run must continue the architecture its flags describe: a checkpoint of another one is refused."""
    if not resumed or weights is None:
        return
    saved, defaults = weights.config, load_yaml(DEFAULT_CONFIG)["model"]
    wanted = {k: v for k, v in cfg.model.to_dict().items() if v != defaults.get(k)}  # set by a --config or flag
    differ = {k: (getattr(saved, k), v) for k, v in wanted.items() if getattr(saved, k) != v}
    if differ:
        text = ", ".join(f"model.{k} {a} in the checkpoint, {b} in this run" for k, (a, b) in differ.items())
        raise CheckpointError(f"{source} is a checkpoint of another architecture ({text}); resume it with the "
                              f"settings it was trained with, or start a new run in another output_dir")


def main(argv=None):
    cfg = parse_config(sys.argv[1:] if argv is None else argv, DEFAULT_CONFIG, __doc__)
    check_numbers(cfg)
    pretrain = cfg.mode == "pretrain"
    if cfg.task:
        get_task(cfg.task)  # fail fast, before loading anything
    if not cfg.data.train_dir:
        raise ConfigError("--data.train_dir is required (a folder of clean training images; sub-folders are read "
                          "too)")
    compute_dtype, graph_form = setup(cfg.device_target, cfg.compute_dtype, cfg.onednn_isa, distributed_device_id(),
                                      cfg.graph_form)
    check_sink_size(cfg, runtime.device)
    images = list_images(cfg.data.train_dir, recursive=True)
    val_images = list_images(cfg.data.val_dir, recursive=True)[:cfg.data.val_images] if cfg.data.val_dir else []
    batch = cfg.data.batch_size
    world = launched_world_size()
    # before the cluster forms, so that every worker stops at once
    if batch % world:
        raise ConfigError(f"data.batch_size {batch} is the global batch; it must be divisible by the {world} "
                          f"workers")
    local_batch = batch // world
    if local_batch % cfg.loss.contrastive_groups:
        raise ConfigError(f"loss.contrastive_groups {cfg.loss.contrastive_groups} does not divide the batch of "
                          f"{local_batch} per worker")
    resume = resume_path(cfg)
    check_output_dir(cfg.output_dir, resume, cfg.overwrite)
    workers, why = data_workers(cfg.data.num_workers, local_process_count())
    log.info("%s", why)
    first_usable_image(images, cfg.data.lr_patch_size, cfg.data.seed)
    rank, world = init_data_parallel()
    weights, start, source = load_start(cfg, batch, resume)
    check_sink_start(cfg.sink_size, start, source)
    check_architecture(cfg, weights, source, resume)
    if pretrain:
        tasks = tuple(cfg.tasks)
    elif weights is None and not cfg.task:
        raise ConfigError("--task is required to fine-tune a randomly initialised model")
    else:
        tasks = (pick_task(cfg.task, weights.config.tasks, source) if weights else cfg.task,)
    rain = []
    if "derain" in tasks and cfg.data.rain_dir:
        rain = list_images(cfg.data.rain_dir, recursive=True)
    elif "derain" in tasks and not pretrain:
        raise ConfigError("derain training needs --data.rain_dir, a folder of rain-streak layer images "
                          "(e.g. RainTrainL rainstreak-*.png) to add to the clean images")
    if start >= cfg.steps:
        raise ConfigError(f"{source} is already at step {start}; set --steps above it to train on")
    if cfg.overwrite and rank == 0:
        removed = remove_earlier_outputs(cfg.output_dir)
        if removed:
            log.info("overwrite: removed %d file(s) of an earlier run from %s", removed, cfg.output_dir)
    spec = model_spec(cfg, weights, tasks, source)
    pairs = TrainPairs(images, tasks[0] if len(tasks) == 1 else tasks, (cfg.steps - start) * local_batch,
                       cfg.data.lr_patch_size, cfg.data.seed, cfg.data.augment, rain, start=start * local_batch,
                       num_shards=world, shard_id=rank, batch_size=local_batch, procedural_rain=not rain)
    if cfg.sink_size:
        feed = DatasetSink(sink_dataset(pairs, local_batch, workers), cfg.sink_size)
        log.info("dataset sink: %d steps per call, the losses of each call's last step kept; image files the data "
                 "workers skip are neither counted nor named (sink_size 0 lists them)", cfg.sink_size)
    else:
        stream = batches(pairs, local_batch, workers)
        first = next(stream)  # the workers start now, before the model is built
        feed = HostBatches(itertools.chain([first], stream), UnusableFiles(images, cfg.data.lr_patch_size))
    ms.set_seed(cfg.data.seed)
    ipt = (IPT(spec, compute_dtype, graph_form) if weights is None
           else build_model(spec, compute_dtype, source, graph_form))
    weight = cfg.loss.contrastive_weight
    weight = (0.1 if pretrain else 0.0) if weight is None else float(weight)
    trainer = Trainer(ipt, tasks, cfg.optim, loss_scaling=compute_dtype == ms.float16, contrastive_weight=weight,
                      temperature=cfg.loss.temperature, contrastive_groups=cfg.loss.contrastive_groups,
                      task_seed=cfg.data.seed, world_size=world, rank=rank)
    if start:
        trainer.resume(source, start)
    validate = None
    if val_images and cfg.val_every:
        from src.validation import Validator
        validate = Validator(ipt, tasks, val_images, cfg.data.lr_patch_size, cfg.data.seed, rain)
    log.info("%s: %s %s, %d trainable parameters, %d image(s) in %s, steps %d..%d, batch %d (%d per worker x %d), "
             "contrastive weight %g", source, cfg.mode, ", ".join(tasks), count_trainable(ipt), len(images),
             cfg.data.train_dir, start, cfg.steps, batch, local_batch, world, weight)
    trainer.fit(feed, cfg.steps, cfg.output_dir, cfg.log_every, cfg.save_every,
                extra={"seed": cfg.data.seed, "batch_size": batch}, samples_per_step=batch, validate=validate,
                val_every=cfg.val_every)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
