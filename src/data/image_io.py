"""Reading and writing RGB images (8-bit, and 16-bit for restoration) and arrays, one-line errors for bad inputs."""
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from src.errors import ImageError
from src.fileio import atomic_path, atomic_write

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
    are ImageErrors (a truncated JPEG too, which OpenCV would fill with gray), and so are 16-bit images unless
    ``allow_16bit`` (restoration takes them at full precision;
    training and benchmark scoring are 8-bit). EXIF orientation is not applied.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    if raw.startswith(b"\xff\xd8") and jpeg_is_truncated(raw):
        raise ImageError(f"{path}: truncated JPEG (the file ends before its image data does)")
    try:
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if raw else None
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


def jpeg_is_truncated(data: bytes) -> bool:
    """Whether the JPEG file ``data`` (it starts with SOI) ends before its end-of-image marker: walks the marker
    segments and the entropy-coded data of each scan (where 0xFF is followed by 0x00 or a restart marker).

    OpenCV's decoder returns such a file with the missing part gray and only a warning on stderr. Data after the
    end-of-image marker is allowed; a file whose structure is broken before that is left to the decoder (False).
    """
    n, i = len(data), 2
    while True:
        if i + 1 >= n:
            return True
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:                        # fill byte
            i += 1
            continue
        if marker == 0xD9:                        # end of image
            return False
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:   # no length field
            i += 2
            continue
        if i + 4 > n:
            return True
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
        if marker != 0xDA:                        # not a start of scan
            continue
        while True:                               # entropy-coded data up to the next marker
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                return True
            follow = data[j + 1]
            if follow == 0x00 or 0xD0 <= follow <= 0xD7:
                i = j + 2
            elif follow == 0xFF:
                i = j + 1
            else:
                i = j
                break


def write_png(path, rgb: np.ndarray) -> None:
    """Write an HxWx3 uint8 or uint16 RGB array to ``path`` as an 8- or 16-bit PNG, atomically (parents created)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype not in (np.uint8, np.uint16) or rgb.ndim != 3 \
            or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"write_png needs a non-empty HxWx3 uint8 or uint16 array, got "
                         f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}")
    _write_bgr_png(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_bgr_png(path, bgr):
    """OpenCV's PNG writer streams the rows of ``bgr`` to a temporary file (no encoded copy in memory), which then
    replaces ``path``."""
    with atomic_path(path, ".png") as tmp:
        try:
            ok = cv2.imwrite(str(tmp), bgr)
        except cv2.error:
            ok = False
        if not ok:
            raise ImageError(f"{path}: PNG encoding or writing failed")


class OutputImage:
    """A restored image filled by row blocks, as the tiler finishes them (a ``write_rows``), then written as PNG.

    ``output(y, rows)`` takes float32 rows on 0..255 in order; they are rounded and clipped at once into the uint8 or
    uint16 image (``to_uint8`` / ``to_uint16``), kept in BGR order for the PNG writer. With ``npy_path`` the float32
    rows are also appended to that ``.npy`` file (the same bytes as ``save_npy`` of the whole array), written
    atomically: it appears when the ``with`` block ends after every row came, and not at all otherwise. Only the
    integer image is held.
    """

    def __init__(self, height, width, dtype=np.uint8, npy_path=None):
        if np.dtype(dtype) not in (np.uint8, np.uint16):
            raise ValueError(f"OutputImage is uint8 or uint16, got {np.dtype(dtype)}")
        self.height, self.width, self.npy_path = height, width, npy_path
        self.bgr = np.empty((height, width, 3), dtype)
        self.rows_done = 0
        self._quantise = to_uint8 if np.dtype(dtype) == np.uint8 else to_uint16
        self._npy_writer = self._npy = None

    def __enter__(self):
        if self.npy_path is not None:
            self._npy_writer = atomic_write(self.npy_path)
            self._npy = self._npy_writer.__enter__()
            np.lib.format.write_array_header_1_0(self._npy, {"descr": np.lib.format.dtype_to_descr(
                np.dtype(np.float32)), "fortran_order": False, "shape": (self.height, self.width, 3)})
        return self

    def __call__(self, y, rows):
        rows = np.ascontiguousarray(rows, np.float32)
        if y != self.rows_done or rows.shape[1:] != (self.width, 3) or y + len(rows) > self.height:
            raise ValueError(f"rows {y}..{y + len(rows) - 1} of shape {rows.shape[1:]} do not continue a "
                             f"{self.height}x{self.width} image after row {self.rows_done}")
        self.bgr[y:y + len(rows)] = self._quantise(rows)[..., ::-1]
        if self._npy is not None:
            self._npy.write(rows)
        self.rows_done = y + len(rows)

    @property
    def rgb(self):
        """The integer image in RGB order (a view)."""
        return self.bgr[..., ::-1]

    def write_png(self, path):
        if self.rows_done != self.height:
            raise ValueError(f"{path}: only {self.rows_done} of {self.height} rows restored")
        _write_bgr_png(path, self.bgr)

    def __exit__(self, kind, exc, tb):
        if self._npy_writer is None:
            return False
        writer, self._npy_writer, self._npy = self._npy_writer, None, None
        if kind is None and self.rows_done != self.height:
            try:
                raise ValueError(f"{self.npy_path}: only {self.rows_done} of {self.height} rows restored")
            except ValueError as missing:
                writer.__exit__(ValueError, missing, missing.__traceback__)   # the temporary file is removed
                raise
        writer.__exit__(kind, exc, tb)
        return False


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
