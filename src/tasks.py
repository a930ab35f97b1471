"""The IPT tasks, by name.

A task owns a head, a tail and a query; the body is shared. Names replace the official code's positional indices
(``--scale 2+3+4+1+1+1``); ``OFFICIAL_PRETRAIN_ORDER`` is the order of the official 6-task pre-trained model.
"""
from dataclasses import dataclass
from typing import Optional

from src.errors import ConfigError


@dataclass(frozen=True)
class Task:
    name: str
    scale: int                      # output size / input size
    kind: str                       # "sr", "derain" or "denoise"
    noise_sigma: Optional[int] = None


TASKS = {t.name: t for t in (
    Task("sr_x2", 2, "sr"),
    Task("sr_x3", 3, "sr"),
    Task("sr_x4", 4, "sr"),
    Task("derain", 1, "derain"),
    Task("denoise_30", 1, "denoise", 30),
    Task("denoise_50", 1, "denoise", 50),
)}

OFFICIAL_PRETRAIN_ORDER = ("sr_x2", "sr_x3", "sr_x4", "derain", "denoise_30", "denoise_50")


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name is a ConfigError listing the valid ones."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]


def check_task_list(names, key):
    """A list of task names as config key ``key`` holds it: not empty, every name known, none twice (ConfigErrors
    naming ``key``)."""
    names = list(names)
    if not names:
        raise ConfigError(f"{key} is empty: an IPT model needs at least one task")
    for name in names:
        get_task(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"{key} names a task twice: {names}")


def tasks_for_scales(scales, given=None):
    """Name the tasks of a checkpoint whose tails have ``scales`` (in head/tail order).

    ``given`` names them: a list with one name per tail, or one name for a single-tail checkpoint (a single name is
    ignored for several tails, where it only picks which task to run). Without it, the official 6-task layout
    ``[2, 3, 4, 1, 1, 1]`` and any set of distinct SR scales are named; scale-1 tails (derain / denoise_30 /
    denoise_50) are ambiguous and need ``given``.
    """
    scales = [int(s) for s in scales]
    if isinstance(given, str):
        given = [given] if len(scales) == 1 else None
    if given:
        given = list(given)
        if len(given) != len(scales):
            raise ConfigError(f"--task names {len(given)} task(s) ({', '.join(given)}) but the checkpoint has "
                              f"{len(scales)} (scales {scales})")
        for name, scale in zip(given, scales):
            if get_task(name).scale != scale:
                raise ConfigError(f"task {name!r} has scale {get_task(name).scale} but the checkpoint's tail for it "
                                  f"has scale {scale}")
        if len(set(given)) != len(given):
            raise ConfigError(f"--task names a task twice: {given}")
        return tuple(given)
    if scales == [2, 3, 4, 1, 1, 1]:
        return OFFICIAL_PRETRAIN_ORDER
    if 1 in scales:
        raise ConfigError(f"the checkpoint's tails have scales {scales}: a scale-1 tail may be derain, denoise_30 or "
                          f"denoise_50; say which with --task")
    if len(set(scales)) != len(scales):
        raise ConfigError(f"the checkpoint has several tails of the same scale ({scales}); name them with --task")
    return tuple(f"sr_x{s}" for s in scales)


def pick_task(requested, available, ckpt_path):
    """The task to run: ``requested``, or the only task of a single-task model."""
    if requested:
        get_task(requested)
        return requested
    if len(available) == 1:
        return available[0]
    raise ConfigError(f"{ckpt_path} holds several tasks ({', '.join(available)}); choose one with --task")
