"""Reading and writing RGB images (8-bit, and 16-bit for restoration) and arrays, one-line errors for bad inputs."""
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from src.errors import ImageError
from src.fileio import atomic_write

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

logger = logging.getLogger("ipt")


def list_images(path, recursive=False) -> list:
    """``[path]`` for an image file, or the sorted image files directly inside a directory (hidden files skipped);
    with ``recursive`` also those in its sub-folders at any depth (hidden folders skipped), e.g. ImageNet's
    ``train/<class>/*.JPEG``."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ImageError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)})")
        return [path]
    if not path.is_dir():
        raise ImageError(f"{path}: not a file or directory")
    try:
        if recursive:
            found = sorted(Path(root, name) for root, dirs, names in os.walk(path)
                           if not any(part.startswith(".") for part in Path(root).relative_to(path).parts)
                           for name in names
                           if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("."))
        else:
            found = sorted(p for p in path.iterdir()
                           if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file())
    except OSError as exc:
        raise ImageError(f"{path}: cannot list directory: {exc.strerror}") from None
    if not found:
        where = "this folder or its sub-folders" if recursive else "this directory"
        raise ImageError(f"{path}: no image files in {where} (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    return found


def read_rgb(path, allow_16bit=False, warn=True) -> np.ndarray:
    """The image at ``path`` as a contiguous HxWx3 RGB array: uint8, or uint16 for a 16-bit file if ``allow_16bit``.

    Grayscale is expanded to RGB and an alpha channel is dropped (each with a warning on the ``ipt`` logger unless
    ``warn`` is false, as for training's thousands of images); unreadable, corrupt, empty and floating-point images
    are ImageErrors, and so are 16-bit images unless ``allow_16bit`` (restoration takes them at full precision;
    training and benchmark scoring are 8-bit). EXIF orientation is not applied.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error:
        img = None
    if img is None:
        raise ImageError(f"{path}: cannot decode image (corrupt or not an image)")
    if img.size == 0:
        raise ImageError(f"{path}: image has zero size")
    if img.dtype == np.uint16 and not allow_16bit:
        raise ImageError(f"{path}: 16-bit image; only restoration (eval.py --input) takes 16-bit images, "
                         "training and benchmark scoring need 8-bit")
    if img.dtype.kind == "f":
        raise ImageError(f"{path}: floating-point images are not supported; convert to 8-bit")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{path}: unsupported pixel type {img.dtype}; convert to 8-bit")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels == 1:
        if warn:
            logger.warning("%s: grayscale image converted to RGB", path)
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2RGB)
    if channels == 4:
        if warn:
            logger.warning("%s: alpha channel dropped", path)
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    raise ImageError(f"{path}: unsupported number of channels ({channels})")


def write_png(path, rgb: np.ndarray) -> None:
    """Write an HxWx3 uint8 or uint16 RGB array to ``path`` as an 8- or 16-bit PNG, atomically (parents created)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype not in (np.uint8, np.uint16) or rgb.ndim != 3 \
            or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"write_png needs a non-empty HxWx3 uint8 or uint16 array, got "
                         f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageError(f"{path}: PNG encoding failed")
    with atomic_write(path) as f:
        f.write(buf.tobytes())


def save_npy(path, array) -> None:
    """Save ``array`` to ``path`` in ``.npy`` format (no pickled objects), atomically."""
    with atomic_write(path) as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def to_uint8(x) -> np.ndarray:
    """Quantise values on the 0..255 scale to uint8: round half to even, then clip to [0, 255].

    This equals IPT's ``quantize`` with ``rgb_range=255`` (clamp, then ``round``, which also rounds half to even).
    """
    return np.clip(np.rint(np.asarray(x)), 0, 255).astype(np.uint8)


UINT16_TO_255 = np.float32(255.0 / 65535.0)


def to_float(rgb) -> np.ndarray:
    """An image as float32 on the 0..255 scale: uint8 by plain conversion, uint16 as ``x * (255 / 65535)`` in float32
    (full precision: never rounded to 8 bits)."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) * UINT16_TO_255
    return rgb.astype(np.float32)


def to_uint16(x) -> np.ndarray:
    """Values on the 0..255 scale as 16-bit: ``clip(rint(x * 65535 / 255), 0, 65535)``."""
    return np.clip(np.rint(np.asarray(x, np.float64) * (65535.0 / 255.0)), 0, 65535).astype(np.uint16)
