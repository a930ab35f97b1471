"""Benchmark folders as the paper's evaluations lay them out: (input, ground truth) pairs per task.

- SR (``sr_x{s}``): ``DIR/HR/<name>.<ext>`` + ``DIR/LR_bicubic/X{s}/<name>x{s}.png`` (EDSR / model-zoo layout); DIR may
  also hold one set one level down as ``DIR/benchmark/<set>/``. Without an ``LR_bicubic/X{s}`` folder the LR inputs are
  made from HR with the MATLAB-exact bicubic (``src.data.degradations.bicubic_downscale``, rounded) after cropping HR
  to a multiple of s. HR is cropped to LR size x s (the official protocol); an LR size other than HR size // s is an
  error naming both sizes.
- Denoising (``denoise_30``, ``denoise_50``): a flat folder of clean images (``DIR/*`` or ``DIR/HR/*``). The noisy
  input is ``clip(hr + sigma * N(0, 1), 0, 255)`` in float32, not rounded (as the official test), drawn from
  ``numpy.random.default_rng(noise_seed(name, sigma))``: the seed is a function of the file's name only, so scores do
  not depend on file order or on the other files.
- Deraining (``derain``): the PReNet layout ``DIR/rainy/rain-<id>.png`` + ``DIR/norain-<id>.png``, or a flat
  ``DIR/rain-<id>.png`` + ``DIR/norain-<id>.png``. Every rainy image is scored; one without its ``norain-`` image is
  an error naming it.

Layout problems (no HR folder, a missing counterpart, size mismatch) are ImageErrors found before any restoration.
"""
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from src.data.degradations import add_noise, bicubic_downscale, imresize
from src.data.image_io import IMAGE_EXTENSIONS, read_rgb
from src.errors import ImageError
from src.tasks import get_task


@dataclass(frozen=True)
class BenchmarkPair:
    """One scored image: ``load()`` -> (input float32 HxWx3 on 0..255, ground truth uint8 cropped to output size)."""
    name: str
    input_path: Path
    target_path: Path
    load: Callable


def noise_seed(name: str, sigma: int) -> int:
    """The denoising benchmark's noise seed for the image called ``name`` (its file name, extension included):
    the first 8 bytes of SHA-256 of ``"<name>:<sigma>"``, big-endian."""
    return int.from_bytes(hashlib.sha256(f"{name}:{sigma}".encode()).digest()[:8], "big")


def _images(folder: Path):
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _set_root(root: Path) -> Path:
    """DIR itself if it has HR/, else the one set under DIR/benchmark/."""
    if (root / "HR").is_dir():
        return root
    bench = root / "benchmark"
    if bench.is_dir():
        sets = sorted(p for p in bench.iterdir() if (p / "HR").is_dir())
        if len(sets) == 1:
            return sets[0]
        if len(sets) > 1:
            raise ImageError(f"{bench}: holds several sets ({', '.join(p.name for p in sets)}); "
                             f"pass one of them as --benchmark")
    raise ImageError(f"{root}: no HR/ folder (expected DIR/HR/ + DIR/LR_bicubic/X<s>/, or DIR/benchmark/<set>/HR/)")


def _lr_size_check(lr_path, lr_shape, hr_path, hr_shape, scale):
    (lh, lw), (hh, hw) = lr_shape[:2], hr_shape[:2]
    if (lh, lw) != (hh // scale, hw // scale):
        raise ImageError(f"{lr_path}: LR {lw}x{lh} does not match HR {hr_path} {hw}x{hh} at scale {scale} "
                         f"(expected LR {hw // scale}x{hh // scale})")


def _sr_pairs(root: Path, scale: int):
    root = _set_root(root)
    hr_files = _images(root / "HR")
    if not hr_files:
        raise ImageError(f"{root / 'HR'}: no images")
    lr_dir = root / "LR_bicubic" / f"X{scale}"
    pairs = []
    if lr_dir.is_dir():
        by_stem = {p.stem: p for p in hr_files}
        for lr in _images(lr_dir):
            stem = lr.stem[:-len(f"x{scale}")] if lr.stem.endswith(f"x{scale}") else lr.stem
            if stem not in by_stem:
                raise ImageError(f"{lr}: no ground truth {root / 'HR' / stem}.* for this LR image")
        for hr in hr_files:
            lr = lr_dir / f"{hr.stem}x{scale}.png"
            if not lr.is_file():
                raise ImageError(f"{hr}: no LR image {lr}")

            def load(lr=lr, hr=hr):
                lr_img, hr_img = read_rgb(lr), read_rgb(hr)
                _lr_size_check(lr, lr_img.shape, hr, hr_img.shape, scale)
                h, w = lr_img.shape[:2]
                return lr_img.astype(np.float32), np.ascontiguousarray(hr_img[:h * scale, :w * scale])
            pairs.append(BenchmarkPair(hr.stem, lr, hr, load))
    else:
        for hr in hr_files:
            def load(hr=hr):
                hr_img = read_rgb(hr)
                h, w = hr_img.shape[0] // scale, hr_img.shape[1] // scale
                if h < 1 or w < 1:
                    raise ImageError(f"{hr}: {hr_img.shape[1]}x{hr_img.shape[0]} is smaller than the scale {scale}")
                hr_img = np.ascontiguousarray(hr_img[:h * scale, :w * scale])
                return bicubic_downscale(hr_img, scale), hr_img
            pairs.append(BenchmarkPair(hr.stem, hr, hr, load))
    return pairs


def _denoise_pairs(root: Path, sigma: int):
    folder = root / "HR" if (root / "HR").is_dir() else root
    files = _images(folder)
    if not files:
        raise ImageError(f"{folder}: no clean images for the denoising benchmark")

    def pair(path):
        def load():
            hr = read_rgb(path)
            return add_noise(hr, sigma, np.random.default_rng(noise_seed(path.name, sigma))), hr
        return BenchmarkPair(path.stem, path, path, load)
    return [pair(p) for p in files]


def _derain_pairs(root: Path):
    rainy_dir = root / "rainy" if (root / "rainy").is_dir() else root
    rainy = [p for p in _images(rainy_dir) if p.name.startswith("rain")]
    if not rainy:
        raise ImageError(f"{rainy_dir}: no rain-*.png images (expected DIR/rainy/rain-<id>.png + DIR/norain-<id>.png, "
                         "or both in DIR)")
    pairs = []
    for path in rainy:
        gt = root / f"no{path.name}"
        if not gt.is_file():
            raise ImageError(f"{path}: no ground truth {gt}")

        def load(path=path, gt=gt):
            x, y = read_rgb(path), read_rgb(gt)
            if x.shape != y.shape:
                raise ImageError(f"{path}: {x.shape[1]}x{x.shape[0]} but its ground truth {gt} is "
                                 f"{y.shape[1]}x{y.shape[0]}")
            return x.astype(np.float32), y
        pairs.append(BenchmarkPair(path.stem, path, gt, load))
    return pairs


def benchmark_pairs(root, task: str):
    """The (input, ground truth) pairs of the benchmark folder ``root`` for ``task``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root}: benchmark folder not found")
    spec = get_task(task)
    if spec.kind == "sr":
        return _sr_pairs(root, spec.scale)
    if spec.kind == "denoise":
        return _denoise_pairs(root, spec.noise_sigma)
    return _derain_pairs(root)


BASELINES = {"sr": "bicubic", "denoise": "noisy input", "derain": "rainy input"}


def baseline_output(task: str, lr, shape):
    """What a user has without the network, as float32 on 0..255 of ``shape`` (H, W[, 3]): for SR the MATLAB-style
    bicubic upscaling of the input, for denoising and deraining the degraded input itself."""
    lr = np.asarray(lr, np.float32)
    if get_task(task).kind == "sr":
        return imresize(lr, shape[0], shape[1]).astype(np.float32)
    return lr
