"""Write demo inputs: tile-sized crops of colour photographs bundled with scikit-image, clean and with noise.

    python scripts/make_demo_inputs.py --output demo_output/inputs [--size 48] [--sigma 30]

Writes <output>/clean/<photo>.png and <output>/noisy<sigma>/<photo>.png (Gaussian noise, seed 0, rounded to uint8).
Nothing is downloaded: the photos ship inside scikit-image.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.data.image_io import to_uint8, write_png  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def centre_crop(image, size):
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--sigma", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    out = Path(args.output)
    for name in PHOTOS:
        crop = centre_crop(getattr(skdata, name)(), args.size)
        write_png(out / "clean" / f"{name}.png", crop)
        noisy = crop.astype(np.float64) + args.sigma * rng.standard_normal(crop.shape)
        write_png(out / f"noisy{args.sigma}" / f"{name}.png", to_uint8(noisy))
    print(f"wrote {len(PHOTOS)} clean and noisy {args.size}x{args.size} crops under {out}")


if __name__ == "__main__":
    main()
