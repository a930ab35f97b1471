"""Write docs/procedural_rain.png: generated rain-streak layers (src.data.degradations.procedural_rain) added to
photo crops as pre-training's deraining inputs are made (clean | streak layer | rainy, one seed per row).

    python scripts/make_rain_samples.py [OUTPUT.png]
"""
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.data.degradations import add_rain, procedural_rain, random_crop  # noqa: E402
from src.data.image_io import to_uint8, write_png  # noqa: E402

SIZE, ZOOM = 96, 2


def main(out="docs/procedural_rain.png"):
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    rows = []
    for seed, photo in enumerate(photos):
        rng = np.random.default_rng([seed, 7])
        clean = random_crop(photo, SIZE, rng).astype(np.float32)
        streak = procedural_rain(SIZE, rng)
        tiles = [clean, np.repeat(streak[..., None], 3, axis=2), add_rain(clean, streak)]
        tiles = [cv2.resize(to_uint8(t), None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST) for t in tiles]
        gap = np.full((SIZE * ZOOM, 6, 3), 255, np.uint8)
        rows.append(np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    for k, label in enumerate(("clean crop", "generated streaks", "rainy input")):
        cv2.putText(header, label, (k * (SIZE * ZOOM + 6) + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (30, 30, 30), 1,
                    cv2.LINE_AA)
    write_png(out, np.concatenate([header, *rows[:-1]], axis=0))
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
