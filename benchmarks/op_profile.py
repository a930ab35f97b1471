"""Where the forward time goes: MindSpore's CPU profiler on the sr_x2 graph of forward_benchmark.py, by op type.

For the op types that do the arithmetic (MatMul: the body's linear layers; BatchMatMul: attention scores and mixing;
Conv2D: head and tail) it prints the achieved GFLOP/s, from IPTConfig.macs_by_kind. The reference rate is MatMul's own
rate in the same profiled calls (the machine is too noisy for a peak read at another moment; a square fp32 MatMul
peak is also read right after, best of 5, for information). It then answers what a target fraction of that rate
(``--target``, 0.9 by default) would require of the whole forward:
  at the sum of ops       the whole forward's GFLOP/s as a fraction of the MatMul rate
  arithmetic only         the same if every op other than MatMul, BatchMatMul and Conv2D took no time
  budget for the rest     the time per call that Softmax, Gather, BiasAdd, ReLU, Add, ... may take together
                          for the target to be met, against the time they take
Then the time between kernels (from the profiler's per-kernel timestamps), by the kernel that follows each gap (layer
numbers left out, so the 12 layers' kernels add up): work that is no op of the graph shows up there, such as the
runtime's copy of a view before a kernel that needs contiguous input (``--gaps N`` rows).

    .venv/bin/python benchmarks/op_profile.py [--batch 8] [--calls 2] [--target 0.9] [--gaps 12] [--json out.json]
        [--tiny]

CPU only: the table is read from the CPU profiler's ``cpu_op_type_info`` file.
"""
import argparse
import csv
import glob
import os
import re
import shutil
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import forward_benchmark as fb  # noqa: E402  (also puts the repository root on sys.path)

ARITHMETIC = {"MatMul": "linear", "BatchMatMul": "attention", "Conv2D": "conv"}  # op type -> IPTConfig.macs_by_kind


def read_op_types(profile_dir):
    """{op type: total ms over the profiled calls} from the CPU profiler's op type table."""
    found = glob.glob(os.path.join(profile_dir, "**", "cpu_op_type_info_*.csv"), recursive=True)
    if not found:
        raise RuntimeError(f"the profiler wrote no cpu_op_type_info_*.csv under {profile_dir}")
    totals = {}
    for path in found:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                totals[row["op_type"]] = totals.get(row["op_type"], 0.0) + float(row["total_compute_time"])
    return totals


def read_kernel_times(profile_dir):
    """[(start ms, duration ms, full op name)] in start order from the CPU profiler's ``cpu_op_execute_timestamp``
    files (lines ``<name>;<stream>;<start ns>,<duration ms>,<...>``). They hold one launch per kernel of the graph,
    whatever the number of profiled calls: one call's timeline."""
    found = glob.glob(os.path.join(profile_dir, "**", "cpu_op_execute_timestamp_*.txt"), recursive=True)
    if not found:
        raise RuntimeError(f"the profiler wrote no cpu_op_execute_timestamp_*.txt under {profile_dir}")
    kernels = []
    for path in found:
        with open(path) as f:
            for line in f:
                if line.strip():
                    name, _, times = line.strip().split(";")
                    start_ns, duration_ms = times.split(",")[:2]
                    kernels.append((int(start_ns) / 1e6, float(duration_ms), name))
    return sorted(kernels)


def kernel_gaps(kernels, rows=12):
    """The time between consecutive kernels of one call (``read_kernel_times``): the total, and the largest ``rows``
    groups by the kernel that follows a gap, named without layer numbers (``.../3-DecoderLayer/...`` ->
    ``.../DecoderLayer/...``)."""
    if len(kernels) < 2:
        raise RuntimeError(f"{len(kernels)} kernel launch(es) in the timeline; nothing to measure between")
    groups = {}
    for (start, duration, _), (next_start, _, name) in zip(kernels, kernels[1:]):
        key = re.sub(r"/\d+-", "/", name)
        n, ms = groups.get(key, (0, 0.0))
        groups[key] = (n + 1, ms + next_start - (start + duration))
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][1])
    return {"kernels": len(kernels), "gap_ms": sum(ms for _, ms in groups.values()),
            "largest": [{"before": k, "count": n, "ms": ms} for k, (n, ms) in ranked[:rows]]}


def analyse(totals_ms, calls, batch, macs_by_kind, target):
    """Per-call times, shares, GFLOP/s of the arithmetic op types, and what ``target`` x the MatMul rate requires."""
    per_call = {op: ms / calls for op, ms in totals_ms.items()}
    missing = [op for op in ARITHMETIC if per_call.get(op, 0.0) <= 0]
    if missing:
        raise RuntimeError(f"the profile has no time for op type(s) {missing}; op types seen: {sorted(per_call)}")
    total = sum(per_call.values())
    flop = {op: 2.0 * batch * macs_by_kind[kind] for op, kind in ARITHMETIC.items()}
    rate = {op: flop[op] / (per_call[op] / 1e3) / 1e9 for op in ARITHMETIC}
    ref = rate["MatMul"]
    ops = []
    for op, ms in sorted(per_call.items(), key=lambda kv: -kv[1]):
        row = {"op_type": op, "ms_per_call": ms, "share": ms / total}
        if op in rate:
            row.update(gflops=rate[op], of_matmul_rate=rate[op] / ref)
        ops.append(row)
    all_gflop = sum(flop.values()) / 1e9
    arithmetic_ms = sum(per_call[op] for op in ARITHMETIC)
    fraction = lambda ms: all_gflop / (ms / 1e3) / ref  # noqa: E731  whole-forward rate / MatMul rate
    return {"ops": ops, "sum_ms_per_call": total, "gflop_per_call": all_gflop, "matmul_gflops": ref,
            "fraction_at_op_sum": fraction(total), "fraction_arithmetic_only": fraction(arithmetic_ms),
            "target": target, "rest_ms_per_call": total - arithmetic_ms,
            "rest_budget_ms_per_call": all_gflop / (target * ref) * 1e3 - arithmetic_ms}


def format_report(result):
    lines = [f"op types of the {fb.TASK} forward, batch {result['batch']}, {result['calls']} profiled call(s) "
             f"(wall {result['wall_ms_per_call']:.1f} ms per call); fp32 MatMul peak read right after: "
             f"{result['matmul_peak_gflops']:.1f} GFLOP/s",
             f"{'op type':<16} {'ms/call':>9} {'share':>7} {'GFLOP/s':>8} {'of MatMul':>10}"]
    for r in result["ops"]:
        extra = f" {r['gflops']:>8.1f} {100 * r['of_matmul_rate']:>9.1f}%" if "gflops" in r else ""
        lines.append(f"{r['op_type']:<16} {r['ms_per_call']:>9.1f} {100 * r['share']:>6.1f}%{extra}")
    t = result["target"]
    lines += [f"{'sum of ops':<16} {result['sum_ms_per_call']:>9.1f}",
              f"whole forward, at the sum of ops: {100 * result['fraction_at_op_sum']:.1f}% of the MatMul rate",
              f"whole forward, if only MatMul/BatchMatMul/Conv2D took time: "
              f"{100 * result['fraction_arithmetic_only']:.1f}% of the MatMul rate",
              f"for {100 * t:.0f}% of the MatMul rate the other ops may take "
              f"{result['rest_budget_ms_per_call']:.1f} ms per call together; "
              f"they take {result['rest_ms_per_call']:.1f} ms"]
    gaps = result.get("gaps")
    if gaps:
        lines += [f"between kernels (the profiler's timeline of one call): {gaps['gap_ms']:.1f} ms over "
                  f"{gaps['kernels']} kernels; the largest, by the kernel that follows:",
                  f"{'ms':>9} {'gaps':>6}  before"]
        lines += [f"{g['ms']:>9.2f} {g['count']:>6}  {g['before']}" for g in gaps["largest"]]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8, help="tiles per call")
    p.add_argument("--calls", type=int, default=2,
                   help="profiled calls (after the compiling call and forward_benchmark.WARMUP_CALLS warm-up calls)")
    p.add_argument("--matmul_size", type=int, default=2048, help="side of the square matmul for the peak")
    p.add_argument("--target", type=float, default=0.9, help="fraction of the MatMul rate to budget for")
    p.add_argument("--gaps", type=int, default=12, help="rows of the time-between-kernels table (0: none)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (atomically)")
    p.add_argument("--tiny", action="store_true", help="the test suite's tiny sizes instead of the official ones")
    p.add_argument("--onednn_isa", default="auto", help="CPU kernel set-up of src/runtime.py (auto, off, an ISA name)")
    p.add_argument("--graph_form", choices=("auto", "native", "cpu"), default="auto",
                   help="MindSpore graph form (src/models/forms.py); auto: cpu on CPU")
    args = p.parse_args(argv)
    if args.batch < 1 or args.calls < 1 or args.gaps < 0:
        p.error(f"--batch and --calls must be >= 1 and --gaps >= 0 (got --batch {args.batch}, --calls {args.calls}, "
                f"--gaps {args.gaps})")
    if not 0 < args.target <= 1:
        p.error(f"--target must be in (0, 1] (got {args.target})")
    return args


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import mindspore as ms
    from mindspore.profiler import Profiler
    from src.runtime import setup
    from src.models.ipt import IPT

    _, form = setup("CPU", "float32", args.onednn_isa, graph_form=args.graph_form)
    ms.set_seed(0)
    cfg = fb.model_config(args.tiny)
    net = IPT(cfg, graph_form=form).task_net(fb.TASK)
    net.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).uniform(0, 255, (args.batch, 3, cfg.patch_size, cfg.patch_size))
                  .astype(np.float32))
    fb.progress(f"batch {args.batch}: compiling and {fb.WARMUP_CALLS} warm-up calls")
    for _ in range(1 + fb.WARMUP_CALLS):  # the kernels' thread split settles over their first launches
        net(x).asnumpy()
    profile_dir = tempfile.mkdtemp(prefix="ipt_profile_")
    try:
        profiler = Profiler(output_path=profile_dir)
        t0 = time.perf_counter()
        for i in range(args.calls):
            net(x).asnumpy()
            fb.progress(f"profiled call {i + 1}/{args.calls}")
        wall_ms = (time.perf_counter() - t0) / args.calls * 1e3
        profiler.stop()
        profiler.analyse()
        totals = read_op_types(profile_dir)
        kernels = read_kernel_times(profile_dir)
    finally:
        shutil.rmtree(profile_dir, ignore_errors=True)
    matmul = fb.make_matmul(args.matmul_size)
    peak = 2.0 * args.matmul_size ** 3 / min(matmul() for _ in range(5)) / 1e9
    result = analyse(totals, args.calls, args.batch, cfg.macs_by_kind(2), args.target)
    result.update(batch=args.batch, calls=args.calls, wall_ms_per_call=wall_ms, matmul_peak_gflops=peak,
                  matmul_size=args.matmul_size, config=cfg.to_dict(), time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    if args.gaps:
        result["gaps"] = kernel_gaps(kernels, args.gaps)
    print(format_report(result))
    if args.json:
        fb.write_json_atomic(args.json, result)
        fb.progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
