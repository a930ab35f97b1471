"""Validation during training: PSNR-Y of every task on held-out images, each degraded once with a fixed seed.

Each validation image gives one centre crop of the task's HR size (resized up first if smaller), degraded as in
training (``degradations.degrade``; deraining with a layer from the rain folder or a generated one) with a generator
seeded by (seed, image index), so every validation of a run, and of a resumed run, scores the same inputs. All crops
of a task go through the network as one batch (one compiled graph per task). The score is ``metrics.psnr_y`` of the
output rounded to uint8 (border: the scale for SR, none otherwise), averaged over the images, next to the PSNR-Y of
the input (bicubic-upscaled for SR), the baseline the network must beat.
"""
import cv2
import numpy as np
import mindspore as ms

from src.data.degradations import degrade, hr_crop_size, procedural_rain, random_crop
from src.data.image_io import read_rgb, to_uint8
from src.data.train_dataset import check_size, read_gray
from src.errors import ImageError
from src.metrics import border_for, psnr_y
from src.runtime import log
from src.tasks import get_task

VALIDATION_STREAM = 10 ** 9  # seeds (seed, VALIDATION_STREAM, k): apart from the training samples' (seed, g)


def centre_crop(image, size):
    h, w = image.shape[:2]
    if min(h, w) < size:
        image = cv2.resize(image, (max(size, w), max(size, h)), interpolation=cv2.INTER_LINEAR)
        h, w = image.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return image[y:y + size, x:x + size]


class Validator:
    """``validator(step)`` -> {task: (mean PSNR-Y of the output, mean PSNR-Y of the input)} for ``ipt``."""

    def __init__(self, ipt, tasks, images, lr_patch_size, seed=0, rain_images=()):
        self.ipt, self.tasks = ipt, tuple(tasks)
        self.sets, self.nets = {}, {}
        usable = []
        for path in images:
            try:
                image = read_rgb(path, warn=False)
                check_size(image, lr_patch_size, path)
            except ImageError as exc:
                log.warning("validation image skipped: %s", exc)
                continue
            usable.append(image)
        if not usable:
            raise ImageError("no usable validation image (see the warnings above)")
        for task in self.tasks:
            lrs, hrs = [], []
            for k, image in enumerate(usable):
                rng = np.random.default_rng([seed, VALIDATION_STREAM, k])
                hr = centre_crop(image, hr_crop_size(task, lr_patch_size))
                streak = None
                if task == "derain":
                    streak = (random_crop(read_gray(rain_images[k % len(rain_images)]), lr_patch_size, rng)
                              if rain_images else procedural_rain(lr_patch_size, rng))
                lr, hr = degrade(task, hr, rng, streak)
                lrs.append(lr.transpose(2, 0, 1))
                hrs.append(to_uint8(hr))
            self.sets[task] = (ms.Tensor(np.stack(lrs)), hrs)
        self.count = len(usable)

    def __call__(self, step=None):
        results = {}
        for task in self.tasks:
            if task not in self.nets:
                self.nets[task] = self.ipt.task_net(task)
            lr, hrs = self.sets[task]
            out = self.nets[task](lr).asnumpy()
            scale = get_task(task).scale
            border = border_for(scale)
            scores, inputs = [], []
            for k, hr in enumerate(hrs):
                scores.append(psnr_y(to_uint8(out[k].transpose(1, 2, 0)), hr, border))
                source = to_uint8(lr[k].asnumpy().transpose(1, 2, 0))
                if scale > 1:
                    source = cv2.resize(source, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC)
                inputs.append(psnr_y(source, hr, border))
            results[task] = (float(np.mean(scores)), float(np.mean(inputs)))
        return results
