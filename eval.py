"""Restore images with IPT, or score it on a benchmark folder.

    python eval.py --ckpt_path CKPT --task TASK --input FILE_OR_DIR --output DIR [--save_npy] [--tile_mode paper]
    python eval.py --ckpt_path CKPT --task TASK --benchmark DIR [--tile_mode paper] [--metrics_json FILE]

Images of any size go through the tiler (src/tiler.py) in fixed batches of --tile_batch tiles: one graph compile per
run. CKPT may be one of our .ckpt files, an official PyTorch .pt or an official MindSpore model-zoo .ckpt. Every key
of configs/eval.yaml is a flag (``python eval.py --help`` lists them).
"""
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from src.checkpoint.loader import load_model
from src.config import parse_config
from src.data.benchmark_sets import BASELINES, baseline_output, benchmark_pairs
from src.data.image_io import OutputImage, list_images, read_rgb, save_npy, to_float, to_uint8, write_png
from src.errors import ConfigError, ImageError, run_main
from src.fileio import atomic_write
from src.inference import Restorer, memory_available
from src.metrics import border_for, score
from src.progress import ProgressBar
from src.runtime import log, setup
from src.tasks import get_task, pick_task
from src.tiler import MODES

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "eval.yaml"
METRICS = ("psnr_y", "psnr_rgb", "ssim_y")


class TileProgress:
    """Progress over a run of images: a bar with tiles/s redrawn on a terminal. Elsewhere (a log file, a batch job),
    a log line every ``log_every`` seconds within an image (tiles done, tiles/s, time left) and one per image."""

    def __init__(self, total_images, stream=sys.stderr, log_every=60.0):
        self.total_images, self.stream, self.log_every = total_images, stream, log_every
        self.bar = ProgressBar(1, stream, width=24) if stream.isatty() else None
        self.tiles_done, self.start = 0, time.perf_counter()

    def image(self, index, name):
        self.index, self.name, self.image_start, self.image_tiles = index, name, time.perf_counter(), 0
        self.next_log = self.image_start + self.log_every

        def update(done, total):
            self.image_tiles = done
            now = time.perf_counter()
            if self.bar:
                rate = (self.tiles_done + done) / max(now - self.start, 1e-9)
                self.bar.update(done, f"tiles {rate:.2f} tiles/s", prefix=f"[{index}/{self.total_images}] {name} ",
                                total=total)
            elif now >= self.next_log and done < total:
                self.next_log = now + self.log_every
                rate = done / max(now - self.image_start, 1e-9)
                log.info("[%d/%d] %s: %d/%d tiles, %.2f tiles/s, about %.0f min left", index, self.total_images,
                         name, done, total, rate, (total - done) / max(rate, 1e-9) / 60)
        return update

    def done(self, message):
        seconds = time.perf_counter() - self.image_start
        self.tiles_done += self.image_tiles
        if self.bar:
            self.bar.clear()
        log.info("[%d/%d] %s (%d tiles, %.1f s, %.2f tiles/s)", self.index, self.total_images, message,
                 self.image_tiles, seconds, self.image_tiles / max(seconds, 1e-9))


def check_writable(folder: Path, what: str):
    """Create ``folder`` and prove a file can be written there, or a ConfigError naming it."""
    if folder.is_file():
        raise ConfigError(f"{folder}: {what} is an existing file; give a folder (the outputs are written into it)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"{folder}: {what} is not writable ({exc.strerror or exc})") from None


def json_number(x):
    return None if not math.isfinite(x) else round(float(x), 6)


def restore_images(cfg, restorer, out_dir):
    images = list_images(cfg.input)
    progress = TileProgress(len(images))
    failed = []
    for i, path in enumerate(images, 1):
        target = out_dir / f"{path.stem}.png"
        if target.resolve() == path.resolve():
            raise ConfigError(f"{target}: the output would overwrite the input; choose another --output")
        try:
            image = read_rgb(path, allow_16bit=True)
            check_memory(path, restorer, image)
        except ImageError as exc:
            log.error("%s (skipped)", exc)
            failed.append(path.name)
            continue
        height, width = image.shape[0] * restorer.scale, image.shape[1] * restorer.scale
        with OutputImage(height, width, image.dtype, out_dir / f"{path.stem}.npy" if cfg.save_npy else None) as output:
            restorer.restore_rows(to_float(image) if image.dtype == np.uint16 else image, output,
                                  progress.image(i, path.name))
            output.write_png(target)
        progress.done(f"{path} -> {target}" + (" (16-bit)" if image.dtype == np.uint16 else ""))
    return failed


def check_memory(path, restorer, image):
    """An ImageError naming ``path`` when restoring ``image`` needs more memory than is available (the estimate of
    ``Restorer.memory_needed`` against MemAvailable), before any tile runs."""
    need = restorer.memory_needed(image.shape[0], image.shape[1], image.dtype == np.uint16, image.dtype)
    available = memory_available()
    if available is not None and need > available:
        raise ImageError(f"{path}: not enough memory to restore it: its {image.shape[1] * restorer.scale}x"
                         f"{image.shape[0] * restorer.scale} output needs about {need / 2**30:.2f} GB more, and "
                         f"{available / 2**30:.2f} GB is available (MemAvailable)")


def evaluate_benchmark(cfg, restorer, task, out_dir):
    pairs = benchmark_pairs(cfg.benchmark, task)
    border = border_for(get_task(task).scale)
    progress = TileProgress(len(pairs))
    rows, failed = [], []
    for i, pair in enumerate(pairs, 1):
        try:
            lr, hr = pair.load()
        except ImageError as exc:
            log.error("%s (skipped)", exc)
            failed.append(pair.name)
            continue
        output = restorer.restore(lr, progress.image(i, pair.name))
        sr = to_uint8(output)
        if sr.shape != hr.shape:
            raise ImageError(f"{pair.target_path}: ground truth {hr.shape[1]}x{hr.shape[0]} but the output of "
                             f"{pair.input_path} is {sr.shape[1]}x{sr.shape[0]}")
        metrics = score(sr, hr, border)
        row = {"name": pair.name, **metrics}
        if cfg.baseline:
            row["baseline"] = score(to_uint8(baseline_output(task, lr, hr.shape)), hr, border)
        rows.append(row)
        if cfg.save_outputs:
            write_png(out_dir / f"{pair.name}.png", sr)
            if cfg.save_npy:
                save_npy(out_dir / f"{pair.name}.npy", output)
        progress.done(f"{pair.name}: PSNR-Y {metrics['psnr_y']:.3f} dB, SSIM-Y {metrics['ssim_y']:.4f}")
    mean = mean_metrics(rows)
    baseline = BASELINES[get_task(task).kind] if cfg.baseline else None
    base_mean = mean_metrics([r["baseline"] for r in rows]) if baseline else None
    print_table(rows, mean, task, cfg.tile_mode, baseline, base_mean)
    if cfg.metrics_json and failed:
        log.error("%s not written: not every image was scored", cfg.metrics_json)
    elif cfg.metrics_json:
        doc = {"task": task, "tile_mode": cfg.tile_mode,
               "images": [{"name": r["name"], **{k: json_number(r[k]) for k in METRICS}} for r in rows],
               "mean": {k: json_number(mean[k]) for k in METRICS}}
        if baseline:
            doc["baseline"] = {"name": baseline, "mean": {k: json_number(base_mean[k]) for k in METRICS}}
            for image, row in zip(doc["images"], rows):
                image["baseline"] = {k: json_number(row["baseline"][k]) for k in METRICS}
        with atomic_write(cfg.metrics_json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    return failed


def mean_metrics(rows):
    return {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in METRICS}


def print_table(rows, mean, task, tile_mode, baseline=None, base_mean=None):
    """Per image and mean; with a ``baseline`` (its name) also its metrics and IPT's gain in PSNR-Y over it."""
    width = max([len(r["name"]) for r in rows] + [5])
    print(f"# {task}, tile mode {tile_mode}: PSNR on Y and RGB (dB), SSIM on Y"
          + (f"; baseline: {baseline}" if baseline else ""))
    head = f"{'image':<{width}}  {'psnr_y':>8}  {'psnr_rgb':>8}  {'ssim_y':>7}"
    if baseline:
        head += f"  {'base_psnr_y':>11}  {'base_ssim_y':>11}  {'gain_y':>7}"
    print(head)
    means = {"name": "mean", **mean, **({"baseline": base_mean} if baseline else {})}
    for r in rows + [means]:
        line = f"{r['name']:<{width}}  {r['psnr_y']:8.3f}  {r['psnr_rgb']:8.3f}  {r['ssim_y']:7.4f}"
        if baseline:
            b = r["baseline"]
            line += f"  {b['psnr_y']:11.3f}  {b['ssim_y']:11.4f}  {r['psnr_y'] - b['psnr_y']:+7.3f}"
        print(line)
    sys.stdout.flush()


def main(argv=None):
    cfg = parse_config(sys.argv[1:] if argv is None else argv, DEFAULT_CONFIG, __doc__)
    if not cfg.ckpt_path:
        raise ConfigError("--ckpt_path is required")
    if bool(cfg.input) == bool(cfg.benchmark):
        raise ConfigError("give either --input (images to restore) or --benchmark (a folder to score), not both")
    if cfg.tile_mode not in MODES:
        raise ConfigError(f"--tile_mode {cfg.tile_mode!r}; expected one of {', '.join(MODES)}")
    if not isinstance(cfg.tile_batch, int) or cfg.tile_batch < 1:
        raise ConfigError(f"--tile_batch {cfg.tile_batch!r}; expected a positive integer")
    out_dir = Path(cfg.output)
    # fail fast, before loading anything
    if cfg.input:
        list_images(cfg.input)
    if cfg.task:
        get_task(cfg.task)
        if cfg.benchmark:
            benchmark_pairs(cfg.benchmark, cfg.task)
    compute_dtype, graph_form = setup(cfg.device_target, cfg.compute_dtype, cfg.onednn_isa, graph_form=cfg.graph_form)
    if cfg.input or cfg.save_outputs:
        check_writable(out_dir, "the output folder")
    if cfg.benchmark and cfg.metrics_json:
        check_writable(Path(cfg.metrics_json).resolve().parent, "the folder of --metrics_json")
    ipt, weights = load_model(cfg.ckpt_path, cfg.task, cfg.num_heads, compute_dtype, graph_form)
    task = pick_task(cfg.task, weights.config.tasks, cfg.ckpt_path)
    restorer = Restorer(ipt, task, cfg.tile_batch, cfg.tile_mode, cfg.self_ensemble)
    log.info("%s (%s checkpoint): task %s, tile mode %s, %d tiles per batch%s", cfg.ckpt_path, weights.source_format,
             task, cfg.tile_mode, cfg.tile_batch, ", self-ensemble x8" if cfg.self_ensemble else "")
    if cfg.benchmark:
        failed = evaluate_benchmark(cfg, restorer, task, out_dir)
    else:
        failed = restore_images(cfg, restorer, out_dir)
    log.info("%d tiles run, graph compiled %d time(s)", restorer.tiles_run, restorer.compiles)
    if failed:
        raise ImageError(f"{len(failed)} image(s) failed and were skipped (errors above): {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
