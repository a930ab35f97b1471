"""The quickstart's data: photographs bundled with scikit-image, split into training and held-out photos.

    python scripts/make_quickstart_data.py --output demo_output/data

Writes
  <output>/train/photos/<name>.png  training photos (colour ones as RGB; grayscale ones as they are, single channel:
                                training stacks them to RGB), and each colour photo with its channels swapped,
                                <name>_<order>.png (COLOUR_ORDERS), so that saturated blues and greens are as common as
                                the photos' reds and oranges (SR fine-tuning trains on this folder)
  <output>/train/exposures/<name>_<exposure>.png  every training photo through EXPOSURES (over- and under-exposed,
                                hazy, negative), so that saturated whites, near-black and near-white regions appear
                                at every contrast (pre-training and denoising train on all of <output>/train)
  <output>/heldout/HR/<name>.png  held-out photos, RGB, HELDOUT_SIZE: a benchmark folder for eval.py (SR: HR only, the
                                LR is made with the MATLAB bicubic; denoising: the clean images)
The held-out photos are centre crops of photos no training image comes from, and two scenes made from one of them
(camera.png, a man filming in front of buildings): ``sky``, its top right with the exposure raised so that the sky
is a hazy near-white, and ``lake``, the same scene over its own reflection in rippled water. Together they hold
what a denoiser must not get wrong: near-white sky and water (sky, lake), dark backgrounds (hubble_deep_field,
rocket), fine texture (grass, chelsea's fur) and everyday colour photos (coffee, chelsea, rocket).
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

# Training photos: natural colour photographs, and grayscale photographs of textures, objects and paper.
TRAIN_COLOUR = ("astronaut.png", "motorcycle_left.png", "retina.jpg", "ihc.png")
TRAIN_GRAY = ("brick.png", "grass.png", "moon.png", "coins.png", "page.png", "text.png", "cell.png")
# Channel orders of the colour photos' copies (the photo itself is "rgb").
COLOUR_ORDERS = {"bgr": [2, 1, 0], "gbr": [1, 2, 0]}
# Exposure variants of every training photo (values on 0..255, rounded and clipped by ``exposed``).
EXPOSURES = {
    "over": lambda x: 1.6 * x,                  # highlights saturate at 255
    "under": lambda x: 0.4 * x,                 # a dark, low-contrast photo
    "haze": lambda x: 255 - 0.4 * (255 - x),    # near-white and low-contrast, as a hazy sky
    "negative": lambda x: 255 - x,              # dark and bright swapped
}
# Held-out photos: never trained on (motorcycle_right, the other half of motorcycle_left's stereo pair, is left out).
HELDOUT_CROPS = ("chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "gravel.png")
HELDOUT_SCENE = "camera.png"  # the source of the sky and lake scenes
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


def exposed(image, exposure):
    """``image`` (uint8) through one of EXPOSURES, rounded and clipped to uint8."""
    return np.clip(np.rint(EXPOSURES[exposure](image.astype(np.float32))), 0, 255).astype(np.uint8)


def sky_scene(camera):
    """The top right of camera.png (HELDOUT_SIZE), exposure x1.2: a hazy sky at 230-255 over buildings."""
    height, width = HELDOUT_SIZE
    return np.clip(np.rint(1.2 * camera[:height, -width:].astype(np.float32)), 0, 255).astype(np.uint8)


def lake_scene(camera):
    """camera.png's buildings and sky (exposure x1.2) above their reflection in rippled water (HELDOUT_SIZE).

    The reflection is the scene mirrored at the horizon (row 236 of the photo), each row shifted sideways by a
    sine of the row's wave phase (waves shorter and ripples weaker towards the horizon, as in perspective), a
    little darker and hazier than the scene, as water reflects.
    """
    height, width = HELDOUT_SIZE
    water = 100
    scene = 1.2 * camera[236 - (height - water):236, -width:].astype(np.float32)
    mirrored = np.ascontiguousarray(scene[::-1][:water])
    rows = np.arange(water, dtype=np.float32)
    phase = 2 * np.pi * np.cumsum(1.0 / (5.0 + 0.25 * rows))
    cols = np.arange(width, dtype=np.float32)
    map_x = cols[None, :] + (0.5 + 0.05 * rows[:, None]) * np.sin(phase[:, None] + 0.02 * cols[None, :])
    map_y = np.repeat(rows[:, None], width, axis=1)
    reflection = cv2.remap(mirrored, map_x.astype(np.float32), map_y, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    lake = np.vstack([scene, 0.85 * reflection + 25.5])
    return np.clip(np.rint(lake), 0, 255).astype(np.uint8)


def write_gray_png(path, gray):
    ok, buf = cv2.imencode(".png", gray)
    if not ok:
        raise SystemExit(f"make_quickstart_data: error: {path}: PNG encoding failed")
    with atomic_write(path) as f:
        f.write(buf.tobytes())


def write_training_photo(folder, stem, image):
    """``image`` (RGB, or single-channel grayscale), its COLOUR_ORDERS copies (RGB only) and its EXPOSURES variants
    under ``folder``; returns the number of files."""
    write = write_png if image.ndim == 3 else write_gray_png
    write(folder / "photos" / f"{stem}.png", image)
    orders = COLOUR_ORDERS if image.ndim == 3 else {}
    for order, channels in orders.items():
        write(folder / "photos" / f"{stem}_{order}.png", np.ascontiguousarray(image[..., channels]))
    for exposure in EXPOSURES:
        write(folder / "exposures" / f"{stem}_{exposure}.png", exposed(image, exposure))
    return 1 + len(orders) + len(EXPOSURES)


def heldout_photos():
    """{name: RGB uint8 HELDOUT_SIZE image} of the held-out set."""
    photos = {}
    for name in HELDOUT_CROPS:
        bgr = centre_crop(read_bundled(name, cv2.IMREAD_COLOR), *HELDOUT_SIZE)
        photos[Path(name).stem] = np.ascontiguousarray(bgr[..., ::-1])
    camera = read_bundled(HELDOUT_SCENE, cv2.IMREAD_GRAYSCALE)
    for name, scene in (("sky", sky_scene), ("lake", lake_scene)):
        photos[name] = np.repeat(scene(camera)[..., None], 3, axis=2)
    return photos


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True)
    out = Path(parser.parse_args().output)
    count = 0
    for name in TRAIN_COLOUR:
        rgb = np.ascontiguousarray(read_bundled(name, cv2.IMREAD_COLOR)[..., ::-1])
        count += write_training_photo(out / "train", Path(name).stem, rgb)
    for name in TRAIN_GRAY:
        count += write_training_photo(out / "train", Path(name).stem, read_bundled(name, cv2.IMREAD_GRAYSCALE))
    photos = heldout_photos()
    for name, rgb in photos.items():
        write_png(out / "heldout" / "HR" / f"{name}.png", rgb)
    print(f"make_quickstart_data: {count} training images ({len(TRAIN_COLOUR) + len(TRAIN_GRAY)} photos, their colour "
          f"and exposure variants) in {out / 'train'}, {len(photos)} held-out photos in {out / 'heldout' / 'HR'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
