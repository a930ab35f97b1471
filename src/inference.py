"""Restoring images of any size with a loaded IPT: the tiler (src/tiler.py) feeding one compiled task graph."""
import numpy as np
import mindspore as ms

from src import tiler
from src.models.ipt import IPT


MEMINFO = "/proc/meminfo"


def memory_available():
    """``MemAvailable`` of /proc/meminfo (``MEMINFO``) in bytes: what the kernel can give without swapping; None
    where the file or the line is missing (not Linux)."""
    try:
        with open(MEMINFO, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    value, unit = line.split()[1:3]
                    return int(value) * {"kB": 1024}[unit]
    except (OSError, ValueError, KeyError):
        return None
    return None


def _ensemble_views():
    """The 8 flips/transposes of the official ``forward_x8`` on HxWxC arrays. Each returns a NumPy view: applied to
    the output array, writing into the view writes the inverse transform of what is written."""
    views = []
    for transpose in (False, True):
        for flip_h in (False, True):
            for flip_v in (False, True):
                def view(a, t=transpose, fh=flip_h, fv=flip_v):
                    if fv:
                        a = a[:, ::-1]
                    if fh:
                        a = a[::-1]
                    return a.transpose(1, 0, 2) if t else a
                views.append(view)
    return views


class Restorer:
    """Runs one task of ``ipt`` on images of any size through the tiler.

    Every network call is a ``(tile_batch, 3, P, P)`` batch, so the graph compiles once per (task, tile_batch) in a
    process whatever the image sizes; ``compiles`` counts the graphs MindSpore compiled for it, ``tiles_run`` the
    tiles sent to the network (fill-up copies of the last batch not counted).
    """

    def __init__(self, ipt: IPT, task: str, tile_batch=8, tile_mode="fast", self_ensemble=False):
        if tile_mode not in tiler.MODES:
            raise ValueError(f"tile mode {tile_mode!r}; expected one of {', '.join(tiler.MODES)}")
        self.net = ipt.task_net(task)
        self.net.set_train(False)
        self.task = task
        self.scale = self.net.scale
        self.patch_size = self.net.patch_size
        self.rgb_range = ipt.config.rgb_range
        self.tile_batch = int(tile_batch)
        self.tile_mode = tile_mode
        self.self_ensemble = bool(self_ensemble)
        self.tiles_run = 0

    @property
    def compiles(self) -> int:
        """Graphs compiled for this restorer's task net so far (MindSpore's per-cell compile cache)."""
        return len(self.net.compile_cache)

    def run_batch(self, batch):
        """(tile_batch, 3, P, P) float32 on 0..255 -> (tile_batch, 3, P*s, P*s) float32 on 0..255."""
        x = batch if self.rgb_range == 255 else batch * np.float32(self.rgb_range / 255.0)
        y = self.net(ms.Tensor(np.ascontiguousarray(x, np.float32))).asnumpy()
        return y if self.rgb_range == 255 else y * np.float32(255.0 / self.rgb_range)

    def tiles_per_image(self, height, width):
        """Network tiles one image of this LR size costs (x8 with self-ensemble)."""
        n = len(tiler.make_plan(height, width, self.scale, self.patch_size, self.tile_mode).tiles)
        return 8 * n if self.self_ensemble else n

    def restore(self, image, progress=None):
        """RGB (H, W, 3) on 0..255 (uint8, or float32 e.g. from a 16-bit file) -> float32 (H*s, W*s, 3) on 0..255,
        before rounding and clipping. ``progress(tiles_done, tiles_total)`` after every batch."""
        out = tiler.RowsToArray(np.shape(image)[0] * self.scale)
        self.restore_rows(image, out, progress)
        return out.array

    def restore_rows(self, image, write_rows, progress=None):
        """Like ``restore``, but the float32 result goes to ``write_rows(y, rows)`` in row blocks, top to bottom, as the
        tiler finishes them (``tiler.restore_rows``). With self-ensemble the 8 views are summed in a float64 array of
        the whole output first (their rows come in 8 different orders), then handed on in blocks of rows."""
        image = self._as_input(image)
        if not self.self_ensemble:
            self._restore_one(image, write_rows, progress)
            return
        per_view = self.tiles_per_image(*image.shape[:2]) // 8
        total = np.empty((image.shape[0] * self.scale, image.shape[1] * self.scale, 3), np.float64)
        for k, forward in enumerate(_ensemble_views()):
            def view_progress(done, _total, k=k):
                if progress is not None:
                    progress(k * per_view + done, 8 * per_view)

            def add(y, rows, view=forward(total), first=k == 0):  # the sum seen in this view's orientation
                if first:
                    view[y:y + len(rows)] = rows
                else:
                    view[y:y + len(rows)] += rows
            self._restore_one(np.ascontiguousarray(forward(image)), add, view_progress)
        block = max(1, (1 << 20) // (total.shape[1] * 3))
        for y in range(0, total.shape[0], block):
            write_rows(y, (total[y:y + block] / 8).astype(np.float32))

    def memory_needed(self, height, width, float_input=False, output_dtype=np.uint8) -> int:
        """Bytes that restoring a decoded (height, width) image into an ``output_dtype`` image takes beyond that image
        and the network: the output image, the tiler's band and batches (``tiler.stitch_bytes``), a float32 copy of
        the input with ``float_input`` (16-bit images), and with self-ensemble the float64 sum of the output and one
        view of the input. Row blocks on their way to the output are within the tiler's band."""
        plan = tiler.make_plan(height, width, self.scale, self.patch_size, self.tile_mode)
        out_values = height * self.scale * width * self.scale * 3
        input_bytes = height * width * 3 * (4 if float_input else 1)
        need = out_values * np.dtype(output_dtype).itemsize + tiler.stitch_bytes(plan, self.tile_batch)
        if float_input:
            need += input_bytes
        if self.self_ensemble:
            need += out_values * 8 + input_bytes
        return need

    @staticmethod
    def _as_input(image):
        image = np.asarray(image)
        return image if image.dtype == np.uint8 else image.astype(np.float32, copy=False)

    def _restore_one(self, image, write_rows, progress):
        counted = []

        def on_batch(done, total):
            counted.append(done)
            if progress is not None:
                progress(done, total)
        tiler.restore_rows(image, self.run_batch, write_rows, self.scale, self.patch_size, self.tile_batch,
                           self.tile_mode, on_batch)
        self.tiles_run += counted[-1] if counted else 0
