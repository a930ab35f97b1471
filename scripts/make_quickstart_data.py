"""The quickstart's data: photographs bundled with scikit-image, split into training and held-out photos.

    python scripts/make_quickstart_data.py --output demo_output/data

Writes
  <output>/train/<name>.png     training photos (colour ones as RGB; grayscale ones as they are, single channel:
                                pre-training stacks them to RGB)
  <output>/heldout/HR/<name>.png  held-out photos, centre crops of HELDOUT_SIZE: a benchmark folder for eval.py
                                (SR: HR only, the LR is made with the MATLAB bicubic; denoising: the clean images)
Rain for deraining is procedural (pre-training's built-in rain-streak generator): no rain data set is needed.
Nothing is downloaded: the files ship inside scikit-image (``skimage.data.data_dir``).
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.data.image_io import write_png  # noqa: E402
from src.fileio import atomic_write  # noqa: E402

# Training photos: natural colour photographs, and grayscale photographs of textures and objects.
TRAIN_COLOUR = ("astronaut.png", "motorcycle_left.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png")
TRAIN_GRAY = ("camera.png", "brick.png", "grass.png", "gravel.png", "moon.png", "coins.png")
# Held-out photos: never seen in training (motorcycle_right, the other half of a stereo pair, is left out).
HELDOUT = ("chelsea.png", "rocket.jpg", "coffee.png")
HELDOUT_SIZE = (240, 360)  # height, width: multiples of 12, so every SR scale divides them


def read_bundled(name, flags):
    path = Path(skdata.data_dir) / name
    image = cv2.imread(str(path), flags)
    if image is None:
        raise SystemExit(f"make_quickstart_data: error: {path}: missing or unreadable (is scikit-image installed?)")
    return image


def centre_crop(image, height, width):
    h, w = image.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    return image[top:top + height, left:left + width]


def write_gray_png(path, gray):
    ok, buf = cv2.imencode(".png", gray)
    if not ok:
        raise SystemExit(f"make_quickstart_data: error: {path}: PNG encoding failed")
    with atomic_write(path) as f:
        f.write(buf.tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True)
    out = Path(parser.parse_args().output)
    for name in TRAIN_COLOUR:
        write_png(out / "train" / f"{Path(name).stem}.png", read_bundled(name, cv2.IMREAD_COLOR)[..., ::-1].copy())
    for name in TRAIN_GRAY:
        write_gray_png(out / "train" / f"{Path(name).stem}.png", read_bundled(name, cv2.IMREAD_GRAYSCALE))
    for name in HELDOUT:
        rgb = np.ascontiguousarray(centre_crop(read_bundled(name, cv2.IMREAD_COLOR), *HELDOUT_SIZE)[..., ::-1])
        write_png(out / "heldout" / "HR" / f"{Path(name).stem}.png", rgb)
    print(f"make_quickstart_data: {len(TRAIN_COLOUR) + len(TRAIN_GRAY)} training photos in {out / 'train'}, "
          f"{len(HELDOUT)} held-out photos in {out / 'heldout' / 'HR'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
