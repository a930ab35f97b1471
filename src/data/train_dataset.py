"""Training pairs made on the fly from a folder of clean images, for ``mindspore.dataset.GeneratorDataset``.

The data stream is an endless sequence of samples; sample ``g`` is a pure function of (seed, g): which image (a fresh
permutation of the folder every pass), where to crop, the noise, the rain layer and the augmentation all come from
``numpy.random.default_rng([seed, g])``. A run that resumes at step ``s`` therefore sees exactly the samples the
uninterrupted run would have seen, whatever the worker count.
"""
import hashlib
import logging
import os
import re

import cv2
import numpy as np
import mindspore.dataset as ds

from src import errors
from src.data.degradations import augment, degrade, hr_crop_size, procedural_rain, random_crop
from src.data.image_io import read_rgb
from src.errors import ConfigError, ImageError


def read_gray(path):
    """A rain-streak layer as an HxW uint8 array."""
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise ImageError(f"{path}: cannot decode image (corrupt or not an image)")
    return image


def check_size(image, min_side, path):
    h, w = image.shape[:2]
    if min(h, w) < min_side:
        raise ImageError(f"{path}: {h}x{w} pixels is too small for training; images need at least "
                         f"{min_side} pixels on each side (the LR patch size)")


MAX_SKIPS = 8  # unusable image files one sample can report (it skips any number of them)
DIGEST_BYTES = 8


def task_for_step(tasks, seed, step):
    """The task of optimisation step ``step`` of multi-task training: uniform over ``tasks`` and a function of
    (seed, step) alone, so every data-parallel rank, and a resumed run, draws the same task at a step."""
    tasks = tuple(tasks)
    return tasks[int(np.random.default_rng([seed, step, 2]).integers(len(tasks)))]


class TrainPairs:
    """Random-access source of (lr, hr, skipped, digest) samples for one task or, one task per step, for several.

    ``lr`` is float32 CHW on 0..255, ``hr`` uint8 CHW (the clean crop: whole numbers, a quarter of the bytes to move
    between processes and to the device; the training step makes it float32); ``skipped`` (int64, MAX_SKIPS) lists
    the indices in ``images`` of unusable files this sample passed over (-1 padded), so that the training process
    can count and report them;
    ``digest`` (uint8, DIGEST_BYTES) is a hash of ``lr``'s bytes, made here (in the data workers) so that the
    training process can tell which inputs it trained on without reading them back.

    Item ``i`` of this shard is sample ``(start + i) * num_shards + shard_id`` of the stream, so ``num_shards``
    data-parallel ranks with the same seed together read consecutive samples and never the same one. ``start`` is
    the first local item (step * batch size when resuming). ``task`` is a task name, or a sequence of them: then
    local item ``i`` belongs to step ``(start + i) // batch_size`` (``batch_size`` per shard) and takes that step's
    ``task_for_step``; the step's global batch is samples step * batch_size * num_shards onwards on every shard.

    Unusable images (unreadable, corrupt, or with a side below ``lr_patch_size``) are skipped: the sample takes the
    next image of the same pass instead; only when no image of the list is usable is it an ImageError. Images smaller
    than an HR crop are resized up bilinearly (as the official loader). Deraining adds a random crop of one of
    ``rain_images`` (rain-streak layers) or, with ``procedural_rain``, a generated layer
    (``degradations.procedural_rain``).
    """

    def __init__(self, images, task, length, lr_patch_size=48, seed=0, augment=True, rain_images=(), start=0,
                 num_shards=1, shard_id=0, batch_size=1, procedural_rain=False):
        self.tasks = (task,) if isinstance(task, str) else tuple(task)
        if "derain" in self.tasks and not rain_images and not procedural_rain:
            raise ValueError("derain needs rain-streak layers or procedural_rain")
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id {shard_id} is not in [0, {num_shards})")
        self.images, self.rain_images = [str(p) for p in images], [str(p) for p in rain_images]
        self.task, self.length, self.lr_patch_size = task, length, lr_patch_size
        self.seed, self.augment, self.start = seed, augment, start
        self.num_shards, self.shard_id, self.batch_size = num_shards, shard_id, batch_size
        self.procedural_rain = procedural_rain
        self._order = (None, None)  # (pass number, permutation of the images) of the last sample
        self._unusable = {}  # image index -> why (this process's memory of bad files, so each is decoded once)

    def __len__(self):
        return self.length

    def sample_index(self, i):
        return (self.start + i) * self.num_shards + self.shard_id

    def task_of(self, i):
        """The task of local item ``i``."""
        if len(self.tasks) == 1:
            return self.tasks[0]
        return task_for_step(self.tasks, self.seed, (self.start + i) // self.batch_size)

    def _permutation(self, epoch):
        if self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.images)))
        return self._order[1]

    def image_for(self, g, offset=0):
        """Path of sample ``g``'s image (every image once per pass of len(images) samples); ``offset`` > 0: the
        image ``offset`` places after it in the same pass (what the sample falls back to)."""
        return self.images[self._image_index(g, offset)]

    def _image_index(self, g, offset=0):
        n = len(self.images)
        return int(self._permutation(g // n)[(g % n + offset) % n])

    def _read_usable(self, g):
        """(HxWx3 uint8 image, indices of the unusable images passed over) for sample ``g``."""
        skipped = []
        for offset in range(len(self.images)):
            index = self._image_index(g, offset)
            if index not in self._unusable:
                path = self.images[index]
                try:
                    image = read_rgb(path, warn=False)
                    check_size(image, self.lr_patch_size, path)
                    return image, skipped
                except ImageError as exc:
                    self._unusable[index] = str(exc)
            skipped.append(index)
        first = self._unusable[min(self._unusable)]
        raise ImageError(f"none of the {len(self.images)} training image(s) can be used (unreadable or too small); "
                         f"the first: {first}")

    def rain_layer(self, rng):
        """An lr_patch_size^2 rain-streak layer: a random crop of a random rain image, or a generated one."""
        if not self.rain_images:
            return procedural_rain(self.lr_patch_size, rng)
        rain_path = self.rain_images[rng.integers(len(self.rain_images))]
        layer = read_gray(rain_path)
        check_size(layer, self.lr_patch_size, rain_path)
        return random_crop(layer, self.lr_patch_size, rng)

    def __getitem__(self, i):
        if not 0 <= i < self.length:
            raise IndexError(i)
        g = self.sample_index(i)
        task = self.task_of(i)
        rng = np.random.default_rng([self.seed, g])
        image, skipped = self._read_usable(g)
        hr = random_crop(image, hr_crop_size(task, self.lr_patch_size), rng)
        streak = self.rain_layer(rng) if task == "derain" else None
        lr, _ = degrade(task, hr, rng, streak)  # its float32 copy of hr is hr itself
        if self.augment:
            lr, hr = augment((lr, hr), rng)
        reported = np.full(MAX_SKIPS, -1, np.int64)
        reported[:min(len(skipped), MAX_SKIPS)] = skipped[:MAX_SKIPS]
        lr = lr.transpose(2, 0, 1).copy()
        digest = np.frombuffer(hashlib.blake2b(lr.tobytes(), digest_size=DIGEST_BYTES).digest(), np.uint8)
        return lr, hr.transpose(2, 0, 1).astype(np.uint8), reported, digest


def first_usable_image(images, lr_patch_size, seed=0):
    """The path of the stream's first usable image (sample 0's), reading the images in stream order until one is
    usable; an ImageError when none is. Checks a training folder before any process group forms."""
    pairs = TrainPairs(images, "sr_x2", 1, lr_patch_size, seed)  # the task does not matter: only images are read
    _, skipped = pairs._read_usable(0)
    return pairs.image_for(0, len(skipped))


def host_cores():
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def data_workers(setting, local_processes, cores=None):
    """(data workers per training process, why) for ``data.num_workers`` ``setting``: ``auto`` splits the host's
    cores over its ``local_processes`` training processes (at least one each); a count must be 1..cores."""
    cores = host_cores() if cores is None else cores
    if setting == "auto":
        workers = max(1, cores // local_processes)
        return workers, f"data.num_workers auto: {workers} ({cores} cores / {local_processes} training process(es))"
    if isinstance(setting, bool) or not isinstance(setting, int) or not 1 <= setting <= cores:
        raise ConfigError(f"data.num_workers is {setting!r}; expected auto or a count from 1 to {cores} (the cores of "
                          f"this host)")
    return setting, f"data.num_workers {setting}"


class Batched:
    """Item ``k``: items ``k * batch_size`` .. ``(k + 1) * batch_size - 1`` of ``source`` stacked column by column
    (a last, incomplete batch is dropped)."""

    def __init__(self, source, batch_size):
        self.source, self.batch_size = source, batch_size

    def __len__(self):
        return len(self.source) // self.batch_size

    def __getitem__(self, k):
        if not 0 <= k < len(self):
            raise IndexError(k)
        samples = [self.source[k * self.batch_size + j] for j in range(self.batch_size)]
        return tuple(np.stack(column) for column in zip(*samples))


def batch_dataset(source, batch_size, num_workers=1):
    """``source`` in order as a GeneratorDataset of (lr, hr, skipped, digest) batches (``num_workers`` > 1: worker
    processes). A worker makes whole batches (``Batched``): one hand-over per batch instead of one per sample, which
    is most of what the pipeline costs beyond the samples themselves (benchmarks/data_benchmark.py)."""
    return ds.GeneratorDataset(Batched(source, batch_size), column_names=["lr", "hr", "skipped", "digest"],
                               shuffle=False, num_parallel_workers=num_workers, python_multiprocessing=num_workers > 1)


def sink_dataset(source, batch_size, num_workers=1):
    """The (lr, hr) columns of ``batch_dataset``: the batches ``batches`` yields, in the same order, for
    ``mindspore.data_sink`` to send to the device (the training process never sees them, so ``skipped`` and
    ``digest`` are left out)."""
    return batch_dataset(source, batch_size, num_workers).project(["lr", "hr"])


def batches(source, batch_size, num_workers=1):
    """Iterate ``source`` in order as (lr, hr, skipped, digest) NumPy batches of ``batch_dataset``. NumPy, so that
    the training loop reads ``skipped`` and ``digest`` without waiting for the device. An IPTError raised inside a
    worker comes out as itself, not as the pipeline's report."""
    iterator = batch_dataset(source, batch_size, num_workers).create_tuple_iterator(num_epochs=1, output_numpy=True)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError as exc:
            user_error = _user_error(exc)
            if user_error is None:
                raise
            raise user_error from None
        yield batch


def _user_error(exc):
    """The IPTError a dataset worker raised, rebuilt from the pipeline's RuntimeError report; None if there is none."""
    names = "|".join(name for name, cls in vars(errors).items()
                     if isinstance(cls, type) and issubclass(cls, errors.IPTError))
    found = re.findall(rf"^(?:src\.errors\.)?({names}): (.+)$", str(exc), re.M)
    if not found:
        return None
    name, message = found[-1]
    return getattr(errors, name)(message)


class UnusableFiles:
    """The training process's count of the unusable image files the data stream skipped (``TrainPairs`` reports
    their indices in ``images``); each is logged once with the reason."""

    def __init__(self, images, lr_patch_size):
        self.images, self.lr_patch_size = [str(p) for p in images], lr_patch_size
        self.seen = set()

    @property
    def count(self):
        return len(self.seen)

    def add(self, indices):
        for index in set(int(i) for i in np.ravel(indices) if i >= 0) - self.seen:
            self.seen.add(index)
            path = self.images[index]
            try:
                check_size(read_rgb(path, warn=False), self.lr_patch_size, path)
                why = f"{path}: unusable"
            except ImageError as exc:
                why = str(exc)
            logging.getLogger("ipt").warning("skipped: %s", why)
