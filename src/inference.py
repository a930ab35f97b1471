"""Restoring images with a loaded IPT: image arrays in, float outputs on the 0..255 scale out."""
import numpy as np
import mindspore as ms

from src.errors import ImageError
from src.models.ipt import IPT


class Restorer:
    """Runs one task of ``ipt`` on RGB uint8 images; compiles one graph (batch 1) on first use.

    Only tile-sized inputs (patch_size x patch_size, 48x48 for the official models) are restored for now: the network
    sees them in one pass. Larger images need the tiler.
    """

    def __init__(self, ipt: IPT, task: str):
        self.net = ipt.task_net(task)
        self.net.set_train(False)
        self.scale = self.net.scale
        self.patch_size = self.net.patch_size
        self.rgb_range = ipt.config.rgb_range

    def check_size(self, image, name):
        h, w = image.shape[:2]
        if (h, w) != (self.patch_size, self.patch_size):
            raise ImageError(f"{name}: {h}x{w} pixels; this version restores {self.patch_size}x{self.patch_size} "
                             f"inputs (one network pass); tiling of larger images is not implemented yet")

    def restore(self, image, name="image"):
        """uint8 (H, W, 3) RGB -> float32 (H*s, W*s, 3) RGB on the 0..255 scale, before rounding and clipping."""
        self.check_size(image, name)
        x = image.astype(np.float32).transpose(2, 0, 1)[None] * (self.rgb_range / 255.0)
        y = self.net(ms.Tensor(x)).asnumpy()[0]
        return (y * (255.0 / self.rgb_range)).transpose(1, 2, 0)
