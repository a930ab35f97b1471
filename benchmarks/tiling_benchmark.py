"""End-to-end restoration speed of one LR image through the tiler, both tiling modes (default: 256x256 at x2, the
official sr_x2 sizes with random weights, fp32, graph mode).

Every mode runs in a fresh subprocess, which measures:
  compile s   the first (tile_batch, 3, 48, 48) call: graph compilation plus one batch
  s/image     wall time of ``Restorer.restore`` on the image after that (tiling, network, stitching)
  tiles/s     tiles run / s/image
  compiles    graphs MindSpore compiled in the process for the task net (must be 1)
  peak RSS    ru_maxrss of the subprocess at the end
plus the tile counts: ours per mode, and the official PyTorch ``forward_chop``'s for the same image.

    .venv/bin/python benchmarks/tiling_benchmark.py --json results/tiling.json
    .venv/bin/python benchmarks/tiling_benchmark.py --tiny --size 64      # smoke run (tests)
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TINY = dict(n_feats=4, num_heads=3, num_encoder_layers=1, num_decoder_layers=1)  # --tiny: the test suite's sizes


def worker(args):
    import numpy as np
    from src.inference import Restorer
    from src.models.ipt import IPT, IPTConfig
    from src.runtime import setup

    setup("CPU")
    config = IPTConfig(tasks=("sr_x2",), **(TINY if args.tiny else {}))
    restorer = Restorer(IPT(config), "sr_x2", args.tile_batch, args._mode)
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3)).astype(np.float32)
    start = time.perf_counter()
    restorer.run_batch(np.zeros((args.tile_batch, 3, 48, 48), np.float32))
    compile_s = time.perf_counter() - start
    done = []
    start = time.perf_counter()
    out = restorer.restore(image, lambda d, t: (done.append(d), print(f"\r{d}/{t} tiles", end="", file=sys.stderr)))
    seconds = time.perf_counter() - start
    print(file=sys.stderr)
    assert out.shape == (2 * args.size, 2 * args.size, 3)
    result = {"mode": args._mode, "tiles": done[-1], "compile_s": compile_s, "seconds_per_image": seconds,
              "tiles_per_s": done[-1] / seconds, "compiles": restorer.compiles,
              "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    Path(args._result).write_text(json.dumps(result))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="LR side in pixels (square image)")
    p.add_argument("--modes", nargs="+", default=["fast", "paper"], choices=["fast", "paper"])
    p.add_argument("--tile_batch", type=int, default=8)
    p.add_argument("--tiny", action="store_true", help="the test suite's tiny sizes instead of the official ones")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--_mode", help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args._mode:
        return worker(args)
    from src.fileio import atomic_write
    from src.tiler import official_tile_count
    results = []
    for mode in args.modes:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            cmd = [sys.executable, __file__, "--size", str(args.size), "--tile_batch", str(args.tile_batch),
                   "--_mode", mode, "--_result", str(out)] + (["--tiny"] if args.tiny else [])
            proc = subprocess.run(cmd, cwd=ROOT)  # the worker's setup() picks the CPU kernels
            if proc.returncode != 0:
                print(f"error: the {mode} worker failed (status {proc.returncode})", file=sys.stderr)
                return 1
            results.append(json.loads(out.read_text()))
    from src.runtime import cpu_description  # after the workers: importing MindSpore changes os.environ
    summary = {"size": args.size, "scale": 2, "tile_batch": args.tile_batch, "tiny": args.tiny,
               "cpu": cpu_description()[0],
               "official_forward_chop_tiles": official_tile_count(args.size, args.size), "results": results}
    print(f"{args.size}x{args.size} LR at x2, tile batch {args.tile_batch}, "
          f"{'tiny' if args.tiny else 'official'} sizes, {summary['cpu']}")
    print(f"official forward_chop: {summary['official_forward_chop_tiles']} tiles")
    print(f"{'mode':<6} {'tiles':>6} {'compile s':>10} {'s/image':>9} {'tiles/s':>8} {'compiles':>9} {'peak RSS':>9}")
    for r in results:
        print(f"{r['mode']:<6} {r['tiles']:>6} {r['compile_s']:>10.1f} {r['seconds_per_image']:>9.2f} "
              f"{r['tiles_per_s']:>8.2f} {r['compiles']:>9} {r['peak_rss_gb']:>7.2f} GB")
    if args.json:
        with atomic_write(args.json, "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
    return 0 if all(r["compiles"] == 1 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
