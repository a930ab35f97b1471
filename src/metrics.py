"""The image quality metrics of the paper's protocol, on uint8 RGB images (HxWx3), all computed in float64.

- ``psnr_y``: the official ``calc_psnr`` (IPT ``utility.py``): the difference ``(sr - hr) / 255`` weighted per channel
  by BT.601's luma row ``(65.738, 129.057, 25.064) / 256`` and summed (the +16 offset cancels in a difference),
  ``border`` pixels cropped on every side, MSE over the remaining pixels, ``-10 log10(MSE)``.
- ``psnr_rgb``: the same on the three RGB channels (MSE over all values).
- ``ssim_y``: SSIM (Wang et al. 2004) on the luma ``Y = (65.738 R + 129.057 G + 25.064 B) / 256 + 16`` (float, not
  rounded), ``border`` cropped first: 11x11 Gaussian window of sigma 1.5, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2,
  statistics with population (1/N) weights, mean of the SSIM map over the positions where the window fits ("valid").
  Equals scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255)`` on the same Y crops (tested).

The paper's convention for ``border`` is the scale for SR and 0 for scale 1 (denoising, deraining): ``border_for``.
Identical images give ``inf`` PSNR. Outputs are scored after rounding to uint8 (``src.data.image_io.to_uint8``).
"""
import cv2
import numpy as np

Y_WEIGHTS = np.array([65.738, 129.057, 25.064]) / 256.0
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5                 # 11x11 window
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def border_for(scale: int) -> int:
    """The official crop: ``scale`` pixels for SR, none for scale 1."""
    return int(scale) if scale > 1 else 0


def _pair(sr, hr, border):
    for name, img in (("sr", sr), ("hr", hr)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name}: expected an HxWx3 uint8 array, got "
                             f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
    if sr.shape != hr.shape:
        raise ValueError(f"sr {sr.shape[1]}x{sr.shape[0]} and hr {hr.shape[1]}x{hr.shape[0]} differ in size")
    border = int(border)
    if border < 0 or 2 * border >= min(sr.shape[:2]):
        raise ValueError(f"border {border} leaves no pixels of a {sr.shape[1]}x{sr.shape[0]} image")
    if border:
        sr, hr = sr[border:-border, border:-border], hr[border:-border, border:-border]
    return sr.astype(np.float64), hr.astype(np.float64)


def _psnr(mse):
    return float("inf") if mse == 0 else float(-10.0 * np.log10(mse))


def psnr_y(sr, hr, border) -> float:
    """PSNR on Y as the official ``calc_psnr`` (see module docstring), in dB."""
    sr, hr = _pair(sr, hr, border)
    diff = ((sr - hr) / 255.0) @ Y_WEIGHTS
    return _psnr(np.mean(diff ** 2))


def psnr_rgb(sr, hr, border) -> float:
    """PSNR over the RGB values, ``border`` cropped, in dB."""
    sr, hr = _pair(sr, hr, border)
    return _psnr(np.mean(((sr - hr) / 255.0) ** 2))


def luma(rgb) -> np.ndarray:
    """BT.601 luma of RGB on 0..255 (float64, 16..235), unrounded."""
    return np.asarray(rgb, np.float64) @ Y_WEIGHTS + 16.0


def _gaussian_window():
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    g = np.exp(-(x ** 2) / (2 * SSIM_SIGMA ** 2))
    g /= g.sum()
    return np.outer(g, g)


def ssim_y(sr, hr, border) -> float:
    """SSIM on Y with the standard Gaussian window and constants (see module docstring)."""
    sr, hr = _pair(sr, hr, border)
    if min(sr.shape[:2]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs at least 11x11 pixels after the border crop, got {sr.shape[1]}x{sr.shape[0]}")
    x, y = luma(sr), luma(hr)
    window = _gaussian_window()

    def filt(img):
        return cv2.filter2D(img, cv2.CV_64F, window, borderType=cv2.BORDER_REFLECT)[
            SSIM_RADIUS:-SSIM_RADIUS, SSIM_RADIUS:-SSIM_RADIUS]
    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x ** 2
    var_y = filt(y * y) - mu_y ** 2
    cov = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)) / \
               ((mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (var_x + var_y + SSIM_C2))
    return float(ssim_map.mean())


def score(sr, hr, border) -> dict:
    """All three metrics: ``{"psnr_y", "psnr_rgb", "ssim_y"}``."""
    return {"psnr_y": psnr_y(sr, hr, border), "psnr_rgb": psnr_rgb(sr, hr, border), "ssim_y": ssim_y(sr, hr, border)}
