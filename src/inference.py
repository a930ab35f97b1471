"""Restoring images of any size with a loaded IPT: the tiler (src/tiler.py) feeding one compiled task graph."""
import numpy as np
import mindspore as ms

from src import tiler
from src.models.ipt import IPT


def _ensemble_transforms():
    """The 8 flips/transposes of the official ``forward_x8``, as (forward, inverse) pairs on HxWxC arrays."""
    pairs = []
    for transpose in (False, True):
        for flip_h in (False, True):
            for flip_v in (False, True):
                def forward(a, t=transpose, fh=flip_h, fv=flip_v):
                    if fv:
                        a = a[:, ::-1]
                    if fh:
                        a = a[::-1]
                    return a.transpose(1, 0, 2) if t else a

                def inverse(a, t=transpose, fh=flip_h, fv=flip_v):
                    if t:
                        a = a.transpose(1, 0, 2)
                    if fh:
                        a = a[::-1]
                    return a[:, ::-1] if fv else a
                pairs.append((forward, inverse))
    return pairs


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
        image = np.asarray(image, np.float32)
        if not self.self_ensemble:
            return self._restore_one(image, progress)
        views = _ensemble_transforms()
        per_view = self.tiles_per_image(*image.shape[:2]) // 8
        total = None
        for k, (forward, inverse) in enumerate(views):
            def view_progress(done, _total, k=k):
                if progress is not None:
                    progress(k * per_view + done, 8 * per_view)
            out = inverse(self._restore_one(np.ascontiguousarray(forward(image)), view_progress))
            total = out.astype(np.float64) if total is None else total + out
        return (total / 8).astype(np.float32)

    def _restore_one(self, image, progress):
        counted = []

        def on_batch(done, total):
            counted.append(done)
            if progress is not None:
                progress(done, total)
        out = tiler.restore(image, self.run_batch, self.scale, self.patch_size, self.tile_batch, self.tile_mode,
                            on_batch)
        self.tiles_run += counted[-1] if counted else 0
        return out
