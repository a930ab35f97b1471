"""Peak memory of eval.py end to end (decode, restore, write the PNG) against the image size, both tiling modes.

Every (mode, size) runs ``eval.py --input photo.jpg`` in its own process on a generated 8-bit JPEG photo of that size
(the astronaut upscaled, with mild noise), with a checkpoint of random weights for sr_x<scale>: the test suite's tiny
sizes by default (the default sizes: 6 eval.py runs, about a minute and a half on 2 cores), the official sizes with
--official. Reported per run:
  peak RSS   ru_maxrss of the eval.py process (from wait4), GB = 2^30 bytes
  growth     peak RSS minus that of the smallest size in the same mode: what the image costs
  estimate   eval.py's own estimate of what the image needs beyond the decoded input and the network
             (``Restorer.memory_needed``, checked against MemAvailable before any tile runs)
  s          wall time of the eval.py process (compile included)

    .venv/bin/python benchmarks/memory_benchmark.py --json results/memory.json
    .venv/bin/python benchmarks/memory_benchmark.py --sizes 96x96 6000x4000 --modes fast           # a 24 MP photo
    .venv/bin/python benchmarks/memory_benchmark.py --sizes 96x96 6000x4000 --modes fast --scale 4
    .venv/bin/python benchmarks/memory_benchmark.py --official --sizes 96x96 6000x4000 --modes fast
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TINY = dict(n_feats=4, num_heads=3, num_encoder_layers=1, num_decoder_layers=1)  # the test suite's sizes
DEFAULT_SIZES = ("96x96", "320x240", "640x480")


def make_checkpoint(path, scale, official):
    """Random weights for sr_x<scale> (run in its own process: importing MindSpore changes os.environ)."""
    from src.checkpoint.loader import save_checkpoint
    from src.models.ipt import IPT, IPTConfig
    from src.runtime import setup
    setup("CPU")
    save_checkpoint(IPT(IPTConfig(tasks=(f"sr_x{scale}",), **({} if official else TINY))), path)


def make_photo(path, width, height):
    import cv2
    import numpy as np
    from skimage import data
    photo = cv2.resize(data.astronaut()[..., ::-1], (width, height), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).integers(0, 7, photo.shape, dtype=np.uint8)
    photo = cv2.subtract(cv2.add(photo, noise), np.full_like(photo, 3))
    assert cv2.imwrite(str(path), photo, [cv2.IMWRITE_JPEG_QUALITY, 92])


def run_eval(ckpt, photo, out_dir, scale, mode, tile_batch):
    """Peak RSS (bytes) and wall seconds of one eval.py process."""
    cmd = [sys.executable, str(ROOT / "eval.py"), "--ckpt_path", str(ckpt), "--task", f"sr_x{scale}", "--input",
           str(photo), "--output", str(out_dir), "--tile_mode", mode, "--tile_batch", str(tile_batch)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"eval.py failed (status {proc.returncode}): {' '.join(cmd)}")
    return usage.ru_maxrss * 1024, time.perf_counter() - start


def parse_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 6000x4000") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: sides must be positive")
    return width, height


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=parse_size, default=[parse_size(s) for s in DEFAULT_SIZES],
                   help=f"LR photo sizes WIDTHxHEIGHT, smallest first (default: {' '.join(DEFAULT_SIZES)})")
    p.add_argument("--modes", nargs="+", default=["fast", "paper"], choices=["fast", "paper"])
    p.add_argument("--scale", type=int, default=2, choices=[2, 3, 4])
    p.add_argument("--tile_batch", type=int, default=8)
    p.add_argument("--official", action="store_true", help="the official sizes instead of the tiny ones")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--_make_checkpoint", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args._make_checkpoint:
        return make_checkpoint(args._make_checkpoint, args.scale, args.official)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "random.ckpt"
        subprocess.run([sys.executable, __file__, "--_make_checkpoint", str(ckpt), "--scale", str(args.scale)]
                       + (["--official"] if args.official else []), cwd=ROOT, check=True)
        for width, height in args.sizes:
            photo = tmp / f"photo_{width}x{height}.jpg"
            make_photo(photo, width, height)
            for mode in args.modes:
                print(f"{mode} {width}x{height} ...", file=sys.stderr, flush=True)
                peak, seconds = run_eval(ckpt, photo, tmp / "out", args.scale, mode, args.tile_batch)
                results.append({"mode": mode, "width": width, "height": height, "out_width": width * args.scale,
                                "out_height": height * args.scale, "peak_rss_gb": peak / 2**30, "seconds": seconds,
                                "png_mb": (tmp / "out" / f"{photo.stem}.png").stat().st_size / 2**20})
            photo.unlink()
    # after the eval.py processes: importing MindSpore changes os.environ
    from src.inference import Restorer
    from src.models.ipt import IPT, IPTConfig
    from src.runtime import cpu_description
    from src.tiler import make_plan
    ipt = IPT(IPTConfig(tasks=(f"sr_x{args.scale}",), **TINY))   # the estimate does not depend on the network
    for mode in args.modes:
        mine = [r for r in results if r["mode"] == mode]
        restorer = Restorer(ipt, f"sr_x{args.scale}", args.tile_batch, mode)
        for r in mine:
            r["growth_gb"] = r["peak_rss_gb"] - mine[0]["peak_rss_gb"]
            r["estimate_gb"] = restorer.memory_needed(r["height"], r["width"]) / 2**30
            r["tiles"] = len(make_plan(r["height"], r["width"], args.scale, 48, mode).tiles)
    summary = {"model": "official" if args.official else "tiny", "scale": args.scale, "tile_batch": args.tile_batch,
               "cpu": cpu_description()[0], "results": results}
    print(f"eval.py end to end, sr_x{args.scale}, {summary['model']} sizes (random weights), tile batch "
          f"{args.tile_batch}, {summary['cpu']}")
    print(f"{'mode':<6} {'LR':>11} {'output':>12} {'tiles':>7} {'peak RSS':>9} {'growth':>8} {'estimate':>9} "
          f"{'PNG MB':>7} {'s':>7}")
    for r in results:
        print(f"{r['mode']:<6} {r['width']:>5}x{r['height']:<5} {r['out_width']:>6}x{r['out_height']:<5} "
              f"{r['tiles']:>7} {r['peak_rss_gb']:>6.2f} GB {r['growth_gb']:>5.2f} GB {r['estimate_gb']:>6.2f} GB "
              f"{r['png_mb']:>7.1f} {r['seconds']:>7.1f}")
    if args.json:
        from src.fileio import atomic_write
        with atomic_write(args.json, "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
