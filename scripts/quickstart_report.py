"""Comparison sheets and the summary table of a quickstart run.

    python scripts/quickstart_report.py --benchmark DIR --out OUT --tasks sr_x2 denoise_30

For each task it reads what ``eval.py --benchmark DIR --baseline true --save_outputs true --output OUT/<task>/restored
--metrics_json OUT/<task>/metrics.json`` wrote, rebuilds the inputs and the baseline with the same code
(``src.data.benchmark_sets``), and writes ``OUT/<task>/comparison.png``: one row per photo, panels
input | bicubic | IPT | ground truth (denoising and deraining: noisy or rainy input | IPT | ground truth), each with
a zoomed crop (the most detailed 48x48 of the ground truth) and the PSNR-Y in the caption. Then it prints the table
of every task, photo by photo and the mean: IPT and baseline PSNR-Y / SSIM-Y, and the gain; and, per task, the photo
with the smallest gain (the worst).
"""
import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.data.benchmark_sets import BASELINES, baseline_output, benchmark_pairs  # noqa: E402
from src.data.image_io import read_rgb, to_uint8, write_png  # noqa: E402
from src.tasks import get_task  # noqa: E402

CROP, ZOOM, CAPTION, GAP = 48, 4, 28, 8
INK, PAPER, MARK = (30, 30, 30), (255, 255, 255), (230, 40, 40)


def detailed_crop(hr):
    """Top-left corner of the CROP x CROP window of ``hr`` with the most gradient energy (away from the border)."""
    gray = cv2.cvtColor(hr, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = cv2.Sobel(gray, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(gray, cv2.CV_32F, 0, 1) ** 2
    box = cv2.boxFilter(energy, -1, (CROP, CROP), normalize=False, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    h, w = gray.shape
    box = box[:h - CROP + 1, :w - CROP + 1]
    y, x = np.unravel_index(np.argmax(box), box.shape)
    return int(y), int(x)


def panel(image, caption, corner, width):
    """``image`` with a red box at the crop, its zoomed crop below, and the caption above; padded to ``width``."""
    y, x = corner
    zoom = cv2.resize(image[y:y + CROP, x:x + CROP], (CROP * ZOOM, CROP * ZOOM), interpolation=cv2.INTER_NEAREST)
    marked = image.copy()
    cv2.rectangle(marked, (x, y), (x + CROP - 1, y + CROP - 1), MARK, 2)
    h = CAPTION + image.shape[0] + GAP + zoom.shape[0]
    out = np.full((h, width, 3), PAPER, np.uint8)
    cv2.putText(out, caption, (4, CAPTION - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5, INK, 1, cv2.LINE_AA)
    out[CAPTION:CAPTION + image.shape[0], :image.shape[1]] = marked
    top = CAPTION + image.shape[0] + GAP
    out[top:top + zoom.shape[0], :zoom.shape[1]] = zoom
    return out


def sheet(benchmark, task, out_dir, metrics):
    """Write ``out_dir/comparison.png`` for ``task``; returns its path."""
    spec = get_task(task)
    baseline_name = BASELINES[spec.kind]
    by_name = {m["name"]: m for m in metrics["images"]}
    rows = []
    for pair in benchmark_pairs(benchmark, task):
        lr, hr = pair.load()
        restored = read_rgb(out_dir / "restored" / f"{pair.name}.png")
        base = to_uint8(baseline_output(task, lr, hr.shape))
        shown_input = to_uint8(lr)
        if spec.scale > 1:  # the LR input at the output size, each pixel repeated, so that the panels line up
            shown_input = cv2.resize(shown_input, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_NEAREST)
        m = by_name[pair.name]
        images = [shown_input, base, restored, hr]
        captions = [f"{pair.name}: input (x{spec.scale} LR)", f"{baseline_name}: {m['baseline']['psnr_y']:.2f} dB",
                    f"IPT: {m['psnr_y']:.2f} dB", "ground truth"]
        if spec.scale == 1:  # the baseline is the input itself: one panel for both
            images, captions = images[1:], [f"{pair.name}: {captions[1]}"] + captions[2:]
        corner = detailed_crop(hr)
        width = max(hr.shape[1], CROP * ZOOM)
        panels = [panel(img, cap, corner, width) for img, cap in zip(images, captions)]
        gap = np.full((panels[0].shape[0], GAP, 3), PAPER, np.uint8)
        rows.append(np.hstack([p if i == 0 else np.hstack([gap, p]) for i, p in enumerate(panels)]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    path = out_dir / "comparison.png"
    write_png(path, np.vstack(rows))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", required=True, help="the held-out benchmark folder eval.py scored")
    parser.add_argument("--out", required=True, help="the quickstart output folder (OUT/<task>/ from eval.py)")
    parser.add_argument("--tasks", nargs="+", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    results = {task: json.loads((out / task / "metrics.json").read_text()) for task in args.tasks}
    width = max([len("image")] + [len(m["name"]) for r in results.values() for m in r["images"]])
    lines = [f"{'task':<11} {'image':<{width}} {'IPT psnr_y':>10} {'ssim_y':>7}   {'baseline':<12} {'psnr_y':>7} "
             f"{'ssim_y':>7}   {'gain':>6}"]
    for task, metrics in results.items():
        path = sheet(Path(args.benchmark), task, out / task, metrics)
        base = metrics["baseline"]["name"]
        for m in metrics["images"] + [{"name": "mean", **metrics["mean"], "baseline": metrics["baseline"]["mean"]}]:
            b = m["baseline"]
            lines.append(f"{task:<11} {m['name']:<{width}} {m['psnr_y']:>10.2f} {m['ssim_y']:>7.4f}   {base:<12} "
                         f"{b['psnr_y']:>7.2f} {b['ssim_y']:>7.4f}   {m['psnr_y'] - b['psnr_y']:>+6.2f}")
        print(f"quickstart_report: {path}", file=sys.stderr)
    for task, metrics in results.items():
        worst = min(metrics["images"], key=lambda m: m["psnr_y"] - m["baseline"]["psnr_y"])
        gain = worst["psnr_y"] - worst["baseline"]["psnr_y"]
        lines.append(f"{task}: worst photo {worst['name']}, {gain:+.2f} dB PSNR-Y over the "
                     f"{metrics['baseline']['name']}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
