"""The degradations IPT trains on, made on the fly from clean images (numpy/cv2, pure functions, explicit RNG).

Every function takes HxWxC arrays on the 0..255 scale and, where randomness is involved, a ``numpy.random.Generator``
so that a sample is a function of its seed alone. ``degrade`` is the per-task recipe of the official MindSpore
pre-training pipeline (reference notes s4.2): SR LR = MATLAB-style antialiased bicubic downscale of an HR crop, rounded;
denoising LR = HR + sigma * N(0, 1), clipped, not rounded; deraining LR = clip(HR + rain-streak layer).
"""
from functools import lru_cache

import cv2
import numpy as np

from src.tasks import get_task


def cubic(x):
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0)))


@lru_cache(maxsize=64)
def resize_weights(in_len, out_len):
    """(out_len, in_len) float64 matrix of MATLAB ``imresize`` bicubic along one axis (read-only).

    When shrinking (scale = out_len / in_len < 1) the kernel is widened by 1/scale (antialiasing); taps that fall
    outside the input are mirrored back (MATLAB's symmetric padding). Each row sums to 1.
    """
    scale = out_len / in_len
    width, kernel = 4.0, cubic
    if scale < 1:
        width = 4.0 / scale
        kernel = lambda x: scale * cubic(scale * x)  # noqa: E731
    centre = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinates
    taps = np.floor(centre - width / 2)[:, None] + np.arange(int(np.ceil(width)) + 2)
    weights = kernel(centre[:, None] - taps)
    weights /= weights.sum(axis=1, keepdims=True)
    index = np.mod(taps.astype(np.int64) - 1, 2 * in_len)
    index = np.where(index >= in_len, 2 * in_len - 1 - index, index)
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps.shape[1]), index.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def imresize(image, out_h, out_w):
    """MATLAB-style bicubic resize (antialiased when shrinking) of an HxWxC array to out_h x out_w; float64, not
    rounded or clipped. Two matrix products (rows, then columns): the sums of the weights of each axis in turn."""
    h, w, c = image.shape
    rows, cols = resize_weights(h, out_h), resize_weights(w, out_w)
    x = (rows @ np.asarray(image, np.float64).reshape(h, w * c)).reshape(out_h, w, c)
    return (x.transpose(0, 2, 1) @ cols.T).transpose(0, 2, 1)


def bicubic_downscale(hr, scale):
    """The SR input for an HR patch whose sides are multiples of ``scale``: float32, rounded and clipped to 0..255."""
    h, w = hr.shape[:2]
    lr = imresize(hr, h // scale, w // scale)
    return np.clip(np.rint(lr), 0, 255).astype(np.float32)


def add_noise(hr, sigma, rng):
    """hr + sigma * N(0, 1), clipped to [0, 255]; float32 (not rounded)."""
    noisy = hr.astype(np.float32) + np.float32(sigma) * rng.standard_normal(hr.shape, dtype=np.float32)
    return np.clip(noisy, 0, 255)


def add_rain(hr, streak):
    """clip(hr + streak, 0, 255); a single-channel HxW streak layer is added to every channel. float32."""
    streak = np.asarray(streak, np.float32)
    if streak.ndim == 2:
        streak = streak[..., None]
    return np.clip(hr.astype(np.float32) + streak, 0, 255)


def procedural_rain(size, rng):
    """A seeded synthetic rain-streak layer: size x size float32 on 0..255, to add to a clean image (``add_rain``).

    Straight anti-aliased streaks drawn on a canvas three times wider (so that they enter from outside the crop) and
    softened by a small Gaussian blur. Per layer: density (about 0.1 % to 0.8 % of the canvas pixels start a
    streak), angle (-30..30 degrees from vertical, each streak within a few degrees of it), length (8..40 px),
    width (1 or 2 px) and brightness (60..220, each streak 60..100 % of it) are all drawn from ``rng``; so a layer is
    a function of the generator's state, like every other degradation here.
    """
    side = 3 * size
    canvas = np.zeros((side, side), np.float32)
    count = max(1, int(rng.uniform(0.001, 0.008) * side * side))
    angle = np.deg2rad(rng.uniform(-30, 30))
    max_len = rng.uniform(8, 40)
    width = int(rng.integers(1, 3))
    brightness = rng.uniform(60, 220)
    starts = rng.uniform(0, side, (count, 2))
    angles = angle + np.deg2rad(rng.normal(0, 2, count))
    lengths = rng.uniform(0.5, 1.0, count) * max_len
    levels = brightness * rng.uniform(0.6, 1.0, count)
    ends = starts + lengths[:, None] * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    for (x0, y0), (x1, y1), level in zip(starts, ends, levels):
        cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), float(level), width, cv2.LINE_AA)
    canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.4, 1.0))
    return np.ascontiguousarray(canvas[size:2 * size, size:2 * size])


def cover(image, size):
    """``image`` itself if both sides are >= size, else resized up bilinearly (aspect kept) until they are."""
    h, w = image.shape[:2]
    if min(h, w) >= size:
        return image
    f = size / min(h, w)
    new_h, new_w = max(size, int(np.ceil(h * f))), max(size, int(np.ceil(w * f)))
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def random_crop(image, size, rng):
    """A size x size crop at a uniformly random position; the image is first resized up if it is smaller."""
    image = cover(image, size)
    h, w = image.shape[:2]
    y, x = rng.integers(h - size + 1), rng.integers(w - size + 1)
    return image[y:y + size, x:x + size]


def augment(arrays, rng):
    """The same random horizontal flip, vertical flip and 90-degree rotation applied to each HxW(xC) array."""
    hflip, vflip, rot = rng.integers(2, size=3)
    out = []
    for a in arrays:
        if hflip:
            a = a[:, ::-1]
        if vflip:
            a = a[::-1]
        if rot:
            a = np.rot90(a)
        out.append(np.ascontiguousarray(a))
    return out


def hr_crop_size(task, lr_patch_size):
    """Side of the HR crop a ``task`` sample is cut from."""
    return lr_patch_size * get_task(task).scale


def degrade(task, hr, rng, streak=None):
    """(lr, hr) float32 HxWx3 on 0..255 for ``task`` from an HR patch of ``hr_crop_size``.

    ``streak`` is the rain layer (HxW or HxWx3, LR-sized) that deraining needs.
    """
    t = get_task(task)
    hr = np.asarray(hr, np.float32)
    if t.kind == "sr":
        return bicubic_downscale(hr, t.scale), hr
    if t.kind == "denoise":
        return add_noise(hr, t.noise_sigma, rng), hr
    if streak is None:
        raise ValueError("derain needs a rain-streak layer")
    return add_rain(hr, streak), hr
