"""The paper's point at CPU scale: does multi-task pre-training help a task fine-tuned afterwards?

1. Split scikit-image's bundled photographs into training photos and test photos (the test ones cut into 96x96
   tiles, every tile a validation crop).
2. Pre-train the tiny 6-task model (configs/pretrain_tiny.yaml) on the training photos for ``--pretrain_steps``.
3. Fine-tune its sr_x2 task for ``--steps`` steps, and train the same tiny sr_x2 model from a random init for the
   same steps with the same optimiser, data and seed; both validated on the test tiles every ``--val_every`` steps
   (PSNR-Y of the output and of bicubic upscaling, src/validation.py).
4. Write OUT/summary.json, OUT/curves.png (validation PSNR-Y against step, both runs and bicubic) and print a table.

    .venv/bin/python scripts/pretrain_experiment.py [--out results/pretrain_experiment] [--pretrain_steps 600]
"""
import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.data.image_io import write_png  # noqa: E402
from src.fileio import atomic_write  # noqa: E402

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "camera", "moon", "brick", "grass",
                "gravel", "clock", "page", "text", "colorwheel")
TEST_PHOTOS = ("chelsea", "motorcycle", "immunohistochemistry", "coins")
TINY = ["--model.n_feats", "4", "--model.num_heads", "3", "--model.num_encoder_layers", "1",
        "--model.num_decoder_layers", "1"]


def photo(name):
    image = skdata.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skdata, name)()
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def write_photos(out):
    train, test = out / "photos_train", out / "photos_test_tiles"
    for name in TRAIN_PHOTOS:
        write_png(train / f"{name}.png", np.ascontiguousarray(photo(name)))
    for name in TEST_PHOTOS:
        image = photo(name)
        for y in range(0, image.shape[0] - 95, 96):
            for x in range(0, image.shape[1] - 95, 96):
                write_png(test / f"{name}_{y:04d}_{x:04d}.png", np.ascontiguousarray(image[y:y + 96, x:x + 96]))
    return train, test


def train(args, *flags):
    cmd = [sys.executable, "train.py", *map(str, flags)]
    print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - t0


def val_rows(run_dir):
    with open(run_dir / "val.csv", newline="") as f:
        return [(int(r["step"]), float(r["psnr_y"]), float(r["input_psnr_y"])) for r in csv.DictReader(f)]


def plot(curves, bicubic, title):
    """Validation PSNR-Y against step of each run (one colour each) and the bicubic baseline, one RGB image."""
    h, w = 400, 720
    img = np.full((h, w, 3), 255, np.uint8)
    lo = min(min(v for _, v in c) for c in curves.values())
    hi = max(max(v for _, v in c) for c in curves.values())
    lo, hi = min(lo, bicubic) - 0.2, max(hi, bicubic) + 0.2
    left, right, top, bottom = 80, 20, 36, 44
    steps = [s for c in curves.values() for s, _ in c]
    x0, x1 = 0, max(steps)

    def xy(s, v):
        return (int(round(left + (s - x0) / (x1 - x0) * (w - left - right))),
                int(round(top + (hi - v) / (hi - lo) * (h - top - bottom))))

    font, ink = cv2.FONT_HERSHEY_SIMPLEX, (40, 40, 40)
    for v in np.linspace(lo, hi, 5):
        cv2.line(img, (left, xy(0, v)[1]), (w - right, xy(0, v)[1]), (210, 210, 210), 1)
        cv2.putText(img, f"{v:.2f}", (8, xy(0, v)[1] + 4), font, 0.4, ink, 1, cv2.LINE_AA)
    for s in np.linspace(x0, x1, 5):
        cv2.putText(img, f"{s:.0f}", (xy(s, lo)[0] - 12, h - bottom + 18), font, 0.4, ink, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (w - right, h - bottom), ink, 1)
    cv2.line(img, xy(x0, bicubic), xy(x1, bicubic), (120, 120, 120), 1, cv2.LINE_AA)
    cv2.putText(img, "bicubic", (w - right - 70, xy(x1, bicubic)[1] - 6), font, 0.45, (120, 120, 120), 1,
                cv2.LINE_AA)
    colours = {"fine-tuned from 6-task pre-training": (200, 60, 30), "from scratch": (30, 90, 200)}
    for k, (label, curve) in enumerate(curves.items()):
        cv2.polylines(img, [np.array([xy(s, v) for s, v in curve], np.int32)], False, colours[label], 2, cv2.LINE_AA)
        cv2.putText(img, label, (left + 10, top + 20 + 18 * k), font, 0.45, colours[label], 1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 24), font, 0.5, ink, 1, cv2.LINE_AA)
    cv2.putText(img, "step", (w // 2 - 14, h - 8), font, 0.45, ink, 1, cv2.LINE_AA)
    return img


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "pretrain_experiment")
    p.add_argument("--pretrain_steps", type=int, default=600)
    p.add_argument("--steps", type=int, default=400, help="sr_x2 steps of both the fine-tuning and the scratch run")
    p.add_argument("--val_every", type=int, default=50)
    p.add_argument("--lr", type=float, default=5e-4, help="Adam lr of all three runs")
    p.add_argument("--batch", type=int, default=4)
    args = p.parse_args(argv)
    out = args.out.resolve()
    train_dir, test_dir = write_photos(out)
    tiles = len(list(test_dir.iterdir()))
    common = ["--data.train_dir", train_dir, "--data.batch_size", args.batch, "--data.num_workers", 1,
              "--optim.lr", args.lr, "--optim.milestones", "[]", "--log_every", 50, "--save_every", 0,
              "--overwrite", "true"]  # a rerun of the experiment replaces the previous one
    times = {"pretrain": train(args, "--config", "configs/pretrain_tiny.yaml", *common, "--steps",
                               args.pretrain_steps, "--output_dir", out / "pretrain")}
    val = ["--data.val_dir", test_dir, "--data.val_images", tiles, "--val_every", args.val_every]
    times["finetune"] = train(args, "--ckpt_path", out / "pretrain" / "ipt_pretrain_last.ckpt", "--task", "sr_x2",
                              *common, *val, "--steps", args.steps, "--output_dir", out / "finetune")
    times["scratch"] = train(args, "--task", "sr_x2", *TINY, *common, *val, "--steps", args.steps,
                             "--output_dir", out / "scratch")
    runs = {"fine-tuned from 6-task pre-training": val_rows(out / "finetune"),
            "from scratch": val_rows(out / "scratch")}
    bicubic = runs["from scratch"][0][2]
    summary = {"train_photos": TRAIN_PHOTOS, "test_photos": TEST_PHOTOS, "test_tiles": tiles,
               "pretrain_steps": args.pretrain_steps, "steps": args.steps, "lr": args.lr, "batch": args.batch,
               "bicubic_psnr_y": bicubic, "seconds": times,
               "final_psnr_y": {k: v[-1][1] for k, v in runs.items()},
               "best_psnr_y": {k: max(r[1] for r in v) for k, v in runs.items()},
               "curves": {k: [(s, p) for s, p, _ in v] for k, v in runs.items()}}
    with atomic_write(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    write_png(out / "curves.png", plot({k: [(s, p) for s, p, _ in v] for k, v in runs.items()}, bicubic,
                                       f"sr_x2 PSNR-Y on {tiles} unseen 96x96 test tiles (tiny model)"))
    print(f"{'run':<40} {'final PSNR-Y':>12} {'best':>8}")
    for k in runs:
        print(f"{k:<40} {summary['final_psnr_y'][k]:>12.2f} {summary['best_psnr_y'][k]:>8.2f}")
    print(f"{'bicubic':<40} {bicubic:>12.2f}")
    print(f"wrote {out / 'summary.json'} and {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
