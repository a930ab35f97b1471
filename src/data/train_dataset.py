"""Training pairs made on the fly from a folder of clean images, for ``mindspore.dataset.GeneratorDataset``.

The data stream is an endless sequence of samples; sample ``g`` is a pure function of (seed, g): which image (a fresh
permutation of the folder every pass), where to crop, the noise, the rain layer and the augmentation all come from
``numpy.random.default_rng([seed, g])``. A run that resumes at step ``s`` therefore sees exactly the samples the
uninterrupted run would have seen, whatever the worker count.
"""
import re

import cv2
import numpy as np
import mindspore.dataset as ds

from src import errors
from src.data.degradations import augment, degrade, hr_crop_size, random_crop
from src.data.image_io import read_rgb
from src.errors import ImageError


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


class TrainPairs:
    """Random-access source of (lr, hr) float32 CHW pairs on 0..255 for one task.

    Item ``i`` of this shard is sample ``(start + i) * num_shards + shard_id`` of the stream, so ``num_shards``
    data-parallel ranks with the same seed together read consecutive samples and never the same one. ``start`` is
    the first local item (step * batch size when resuming). Images with a side below ``lr_patch_size`` are refused;
    those smaller than an HR crop are resized up bilinearly. ``rain_images`` (rain-streak layers) are needed for
    derain only.
    """

    def __init__(self, images, task, length, lr_patch_size=48, seed=0, augment=True, rain_images=(), start=0,
                 num_shards=1, shard_id=0):
        if task == "derain" and not rain_images:
            raise ValueError("derain needs rain-streak layers")
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id {shard_id} is not in [0, {num_shards})")
        self.images, self.rain_images = [str(p) for p in images], [str(p) for p in rain_images]
        self.task, self.length, self.lr_patch_size = task, length, lr_patch_size
        self.hr_size = hr_crop_size(task, lr_patch_size)
        self.seed, self.augment, self.start = seed, augment, start
        self.num_shards, self.shard_id = num_shards, shard_id
        self._order = (None, None)  # (pass number, permutation of the images) of the last sample

    def __len__(self):
        return self.length

    def sample_index(self, i):
        return (self.start + i) * self.num_shards + self.shard_id

    def image_for(self, g):
        """Path of sample ``g``'s image: every image once per pass of len(images) samples."""
        n = len(self.images)
        epoch = g // n
        if self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch, 1]).permutation(n))
        return self.images[self._order[1][g % n]]

    def __getitem__(self, i):
        if not 0 <= i < self.length:
            raise IndexError(i)
        g = self.sample_index(i)
        rng = np.random.default_rng([self.seed, g])
        path = self.image_for(g)
        image = read_rgb(path)
        check_size(image, self.lr_patch_size, path)
        hr = random_crop(image, self.hr_size, rng)
        streak = None
        if self.task == "derain":
            rain_path = self.rain_images[rng.integers(len(self.rain_images))]
            layer = read_gray(rain_path)
            check_size(layer, self.lr_patch_size, rain_path)
            streak = random_crop(layer, self.lr_patch_size, rng)
        lr, hr = degrade(self.task, hr, rng, streak)
        if self.augment:
            lr, hr = augment((lr, hr), rng)
        return lr.transpose(2, 0, 1).copy(), hr.transpose(2, 0, 1).copy()


def batches(source, batch_size, num_workers=1):
    """Iterate ``source`` in order as (lr, hr) Tensor batches through a GeneratorDataset (``num_workers`` > 1:
    worker processes). An IPTError raised inside a worker comes out as itself, not as the pipeline's report."""
    dataset = ds.GeneratorDataset(source, column_names=["lr", "hr"], shuffle=False,
                                  num_parallel_workers=num_workers, python_multiprocessing=num_workers > 1)
    iterator = dataset.batch(batch_size, drop_remainder=True).create_tuple_iterator(num_epochs=1)
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
