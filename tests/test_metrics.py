"""Metrics (src/metrics.py): hand-computed PSNRs, the official crop convention, SSIM against scikit-image."""
import math

import numpy as np
import pytest
from skimage import data as skdata
from skimage.metrics import structural_similarity

from src.metrics import border_for, luma, psnr_rgb, psnr_y, score, ssim_y


@pytest.fixture(scope="module")
def photo():
    return np.ascontiguousarray(skdata.astronaut()[100:180, 150:250])   # 80x100 RGB uint8


def test_identical_images(photo):
    assert psnr_y(photo, photo, 2) == math.inf and psnr_rgb(photo, photo, 0) == math.inf
    assert ssim_y(photo, photo, 0) == pytest.approx(1.0, abs=1e-12)


def test_constant_offset_by_hand():
    hr = np.full((20, 30, 3), 100, np.uint8)
    sr = hr + np.uint8(10)
    # Y difference = 10 * (65.738 + 129.057 + 25.064) / 256 on 0..255; PSNR = -20 log10(that / 255)
    y_diff = 10 * 219.859 / 256
    assert psnr_y(sr, hr, 0) == pytest.approx(-20 * math.log10(y_diff / 255), abs=1e-9)
    assert psnr_y(sr, hr, 0) == pytest.approx(29.4527, abs=1e-4)
    assert psnr_rgb(sr, hr, 0) == pytest.approx(20 * math.log10(25.5), abs=1e-9)    # 28.1308 dB
    # one channel only: the Y weight of green
    sr_g = hr.copy()
    sr_g[..., 1] += 10
    assert psnr_y(sr_g, hr, 0) == pytest.approx(-20 * math.log10(10 * 129.057 / 256 / 255), abs=1e-9)
    assert psnr_rgb(sr_g, hr, 0) == pytest.approx(-10 * math.log10((10 / 255) ** 2 / 3), abs=1e-9)


def test_border_crop_is_the_scale_for_sr(photo):
    sr = photo.copy()
    sr[:2] = 255 - sr[:2]           # damage only a 2-pixel frame
    sr[:, -2:] = 0
    assert border_for(2) == 2 and border_for(4) == 4 and border_for(1) == 0
    assert psnr_y(sr, photo, border_for(2)) == math.inf
    assert psnr_y(sr, photo, border_for(1)) < 20
    sr[3, 3] = (sr[3, 3].astype(int) + 20).clip(0, 255)
    assert math.isfinite(psnr_y(sr, photo, 2)) and psnr_y(sr, photo, 4) == math.inf


def test_psnr_y_matches_the_official_formula_on_a_photo(photo):
    rng = np.random.default_rng(0)
    sr = np.clip(photo + rng.normal(0, 5, photo.shape), 0, 255).round().astype(np.uint8)
    d = (sr.astype(np.float64) - photo) / 255
    y = d[..., 0] * 65.738 / 256 + d[..., 1] * 129.057 / 256 + d[..., 2] * 25.064 / 256
    expected = -10 * math.log10(np.mean(y[3:-3, 3:-3] ** 2))
    assert psnr_y(sr, photo, 3) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("sigma", [3, 15, 40])
def test_ssim_against_scikit_image(photo, sigma):
    rng = np.random.default_rng(sigma)
    noisy = np.clip(photo + rng.normal(0, sigma, photo.shape), 0, 255).round().astype(np.uint8)
    for border in (0, 4):
        crop = (slice(border, -border or None),) * 2
        ref = structural_similarity(luma(noisy[crop]), luma(photo[crop]), gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255)
        assert ssim_y(noisy, photo, border) == pytest.approx(ref, abs=1e-9)
    assert 0 < ssim_y(noisy, photo, 0) < 1


def test_luma_is_bt601():
    assert luma(np.array([[0, 0, 0]]))[0] == pytest.approx(16)
    assert luma(np.array([[255, 255, 255]]))[0] == pytest.approx(16 + 255 * 219.859 / 256)


def test_bad_arguments(photo):
    with pytest.raises(ValueError, match="differ in size"):
        psnr_y(photo, photo[:-1], 0)
    with pytest.raises(ValueError, match="uint8"):
        psnr_rgb(photo.astype(np.float32), photo, 0)
    with pytest.raises(ValueError, match="border"):
        ssim_y(photo, photo, 40)
    assert set(score(photo, photo, 2)) == {"psnr_y", "psnr_rgb", "ssim_y"}
