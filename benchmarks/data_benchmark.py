"""Training-data benchmark: the samples/s the trainer receives through train.py's own pipeline.

For each task, the data stream of ``train.py`` (``src.data.train_dataset.TrainPairs`` through ``batches``: a
GeneratorDataset with ``--workers`` worker processes, one worker being a thread of the training process), batched as
the trainer batches it, from generated ImageNet-like JPEGs (``--width`` x ``--height``, quality ``--quality``: the
scikit-image photographs resized, cropped and mirrored). Beside it, the bare cost: the same samples made one after
the other in this process, without the pipeline (what one core does).

Prints, per task and worker count, batches/s, samples/s, samples/s per worker, samples per CPU-second of the whole
pipeline (its processes and threads together: what one busy core yields, a figure that other programs sharing the
machine disturb far less than the wall-clock rates) and the workers one device needs at the 910A step rate
(``--step_s`` per batch of ``--batch``, 0.16 s for 32: the figure recorded for mindediting's IPT), from the
per-CPU-second rate;
``--json PATH`` writes {"machine", "results": [{"task", "workers", "samples_per_s", "samples_per_s_per_worker",
...}]}.

    .venv/bin/python benchmarks/data_benchmark.py [--tasks sr_x2 ...] [--workers 1 2] [--batch 32] [--json FILE]
"""
import argparse
import importlib.util
import math
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
import src.data.blas_threads  # noqa: E402,F401  (train.py's setting, before NumPy loads OpenBLAS)

TASKS = ("sr_x2", "sr_x3", "sr_x4", "derain", "denoise_30", "denoise_50")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "hubble_deep_field", "immunohistochemistry",
          "colorwheel", "camera", "moon")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


forward_benchmark = _load("forward_benchmark", "benchmarks/forward_benchmark.py")
progress = forward_benchmark.progress


def make_images(folder, count, width=500, height=375, quality=90):
    """``count`` JPEGs of ``width`` x ``height`` (ImageNet's typical size) in ``folder``: scikit-image photographs,
    resized to cover the frame, cropped at varying offsets and mirrored, so no two files are the same."""
    import cv2
    import numpy as np
    from skimage import data as skdata

    paths = []
    for i in range(count):
        photo = np.asarray(getattr(skdata, PHOTOS[i % len(PHOTOS)])())
        photo = np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo[..., :3]
        h, w = photo.shape[:2]
        scale = max(width / w, height / h) * (1 + 0.1 * (i // len(PHOTOS) % 4))
        photo = cv2.resize(photo, (math.ceil(w * scale), math.ceil(h * scale)), interpolation=cv2.INTER_AREA)
        top = (photo.shape[0] - height) * (i % 3) // 2
        left = (photo.shape[1] - width) * (i % 5) // 4
        photo = photo[top:top + height, left:left + width]
        photo = photo[:, ::-1] if i // len(PHOTOS) % 2 else photo
        path = os.path.join(folder, f"image_{i:04d}.JPEG")
        if not cv2.imwrite(path, np.ascontiguousarray(photo[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise RuntimeError(f"could not write {path}")
        paths.append(path)
    return paths


def train_pairs(images, task, length, args):
    """The data stream train.py makes for ``task`` (one training process, seed 0, augmentation on, generated rain
    for deraining as in pre-training)."""
    from src.data.train_dataset import TrainPairs

    return TrainPairs(images, task, length, args.lr_patch_size, seed=0, augment=True, batch_size=args.batch,
                      procedural_rain=True)


def rate(count, seconds):
    """count / seconds; None when the clock did not move (CPU clocks tick in steps of 1-10 ms)."""
    return count / seconds if seconds > 0 else None


def cpu_seconds():
    """CPU time (user + system) of this process and its live child processes (the pipeline's workers)."""
    import psutil

    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)] if p.is_running())


def bare_rate(images, task, args):
    """(samples/s, samples per CPU-second) of making the samples one by one in this process (no pipeline)."""
    pairs = train_pairs(images, task, args.bare_samples + 1, args)
    pairs[0]
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, args.bare_samples + 1):
        pairs[i]
    return rate(args.bare_samples, time.perf_counter() - t0), rate(args.bare_samples, time.process_time() - c0)


def pipeline_rate(images, task, workers, args):
    """(batches/s, samples/s, samples per CPU-second of all the pipeline's processes and threads) of ``batches``
    with ``workers`` workers over ``--batches`` batches, after ``--warmup`` batches."""
    from src.data.train_dataset import batches

    # one batch more than timed, so that the workers are alive (and counted) when the window closes
    pairs = train_pairs(images, task, (args.warmup + args.batches + 1) * args.batch, args)
    stream = batches(pairs, args.batch, workers)
    for _ in range(args.warmup):
        next(stream)
    t0, c0 = time.perf_counter(), cpu_seconds()
    for _ in range(args.batches):
        next(stream)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    for _ in stream:
        pass
    samples = args.batches * args.batch
    return args.batches / seconds, samples / seconds, rate(samples, cpu)


def measure(images, args):
    rows = []
    for task in args.tasks:
        bare, bare_cpu = bare_rate(images, task, args)
        progress(f"{task}: bare {bare:.0f} samples/s, {fmt(bare_cpu)} per CPU-second (one by one in this process)")
        for workers in args.workers:
            batches_per_s, samples_per_s, per_cpu = pipeline_rate(images, task, workers, args)
            per_worker = samples_per_s / workers
            core_rate = per_cpu or per_worker  # what one core yields (wall-clock per worker if the CPU clock stood)
            rows.append({"task": task, "workers": workers, "batch": args.batch, "batches_per_s": batches_per_s,
                         "samples_per_s": samples_per_s, "samples_per_s_per_worker": per_worker,
                         "samples_per_cpu_s": per_cpu, "bare_samples_per_s": bare,
                         "bare_samples_per_cpu_s": bare_cpu,
                         "pipeline_vs_bare_cpu": per_cpu / bare_cpu if per_cpu and bare_cpu else None,
                         "workers_per_device": math.ceil(args.batch / args.step_s / core_rate)})
            progress(f"{task}, {workers} worker(s): {batches_per_s:.2f} batches/s, {samples_per_s:.0f} samples/s, "
                     f"{per_worker:.0f} per worker; {fmt(per_cpu)} per CPU-second (bare: {fmt(bare_cpu)})")
    return rows


def fmt(value):
    return "-" if value is None else f"{value:.0f}"


def format_table(rows, args):
    need = args.batch / args.step_s
    lines = [f"batch {args.batch}, LR patch {args.lr_patch_size}, {args.width}x{args.height} JPEGs (quality "
             f"{args.quality}); one device at {args.step_s} s per batch needs {need:.0f} samples/s; per CPU-s: "
             f"samples per CPU-second of the pipeline (all its processes), i.e. per busy core",
             f"{'task':<11} {'workers':>7} {'batches/s':>10} {'samples/s':>10} {'per worker':>11} {'per CPU-s':>10} "
             f"{'bare per CPU-s':>15} {'workers/device':>15}"]
    for r in rows:
        lines.append(f"{r['task']:<11} {r['workers']:>7} {r['batches_per_s']:>10.2f} {r['samples_per_s']:>10.0f} "
                     f"{r['samples_per_s_per_worker']:>11.0f} {fmt(r['samples_per_cpu_s']):>10} "
                     f"{fmt(r['bare_samples_per_cpu_s']):>15} {r['workers_per_device']:>15}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="data workers of the pipeline")
    p.add_argument("--batch", type=int, default=32, help="samples per batch (one device's batch)")
    p.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches first (the workers start)")
    p.add_argument("--bare_samples", type=int, default=200, help="samples timed one by one for the bare cost")
    p.add_argument("--lr_patch_size", type=int, default=48, help="network input side (48: the official size)")
    p.add_argument("--images", type=int, default=64, help="generated JPEGs")
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--step_s", type=float, default=0.16, help="seconds per training step of one device (910A: 0.16)")
    p.add_argument("--onednn_isa", default="auto", help=argparse.SUPPRESS)  # for the machine description
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (atomically)")
    args = p.parse_args(argv)
    if min(args.workers) < 1 or args.batch < 1 or args.batches < 1 or args.warmup < 0 or args.bare_samples < 1:
        p.error("--workers, --batch, --batches and --bare_samples must be >= 1, --warmup >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    from src.runtime import setup

    setup("CPU")
    machine = forward_benchmark.describe_machine(args)
    with tempfile.TemporaryDirectory(prefix="ipt_data_bench_") as folder:
        images = make_images(folder, args.images, args.width, args.height, args.quality)
        progress(f"{len(images)} generated {args.width}x{args.height} JPEGs (quality {args.quality})")
        rows = measure(images, args)
    print(format_table(rows, args))
    print("\n".join(forward_benchmark.format_machine(machine)))
    if args.json:
        forward_benchmark.write_json_atomic(args.json, {
            "machine": machine, "results": rows, "batch": args.batch, "lr_patch_size": args.lr_patch_size,
            "image_size": [args.width, args.height], "jpeg_quality": args.quality, "step_s": args.step_s,
            "host": platform.node(), "cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
