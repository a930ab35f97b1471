"""Forward benchmark of the official single-task IPT sr_x2 graph (IPTConfig() defaults, random weights).

Every batch size runs in a fresh subprocess, which measures:
  compile   first call minus the median steady call (graph build, kernel selection, first-run overheads)
  tiles/s   batch / median of ``--repeats`` timed calls, after ``--warmup`` untimed ones
  GFLOP/s   tiles/s * 66.65 (one 48x48 x2 tile is 33.32 G multiply-adds: IPTConfig.macs_per_tile)
  peak RSS  ru_maxrss of that subprocess once the forward has run (before the matmul below is allocated)
  peak      the machine's fp32 matmul peak: the best of 3 square MatMuls in graph mode after each timed forward
            call of the same process, so that both see the same machine; the peak is the best of all of them and
            ``of peak`` is GFLOP/s / peak.
  x-core ns the round trip of a cache line between two CPUs (benchmarks/cross_core.py), measured before each pair of
            calls while the workers are idle, median: which state of a shared host the row comes from
  vs torch  with the PyTorch reference (the network written like the official code, in its own fresh subprocess):
            MindSpore's speed over PyTorch's, the median over pairs of calls. Both workers compile and warm up one
            after the other, then their timed calls take turns (``run_paired``), so that call i of each sees the same
            machine: on shared hosts the same process runs 20-25% slower for minutes at a time.
Prints a table; ``--json PATH`` also writes the results (atomically).

    .venv/bin/python benchmarks/forward_benchmark.py [--batch_sizes 1 8] [--repeats 5] [--json out.json]
"""
import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The environment as the user gave it: importing MindSpore sets OMP_NUM_THREADS=1 (and more) in os.environ, which
# would leak into the worker processes and run the PyTorch reference on one thread.
USER_ENV = dict(os.environ)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TASK = "sr_x2"
TINY = dict(n_feats=4, num_heads=3, num_encoder_layers=1, num_decoder_layers=1)  # --tiny: the test suite's sizes
# MindSpore's native CPU kernels (BiasAdd, Gather, Mul, Add, ...) choose how to split their work over the threads by
# timing their first launches, 5 launches per candidate (1 task, 2, 4, ...), keeping the fastest (its
# ParallelLaunchAutoSearch); the first 5 run on one thread. A batch-1 forward runs 5% slower in calls 2-5 than from
# call 6 on, where it stays (benchmarks/README.md). The first call plus 5 warm-up calls cover that.
WARMUP_CALLS = 5


def load_module(name, path):
    """The module at ``path`` (relative to the repository root) by file, whatever ``sys.path`` holds."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_config(tiny):
    from src.models.ipt import IPTConfig

    return IPTConfig(tasks=(TASK,), **(TINY if tiny else {}))


def gflop_per_tile(tiny):
    """2 x multiply-adds of one 48x48 tile (official sr_x2: 2 x 33.32 G)."""
    return 2 * model_config(tiny).macs_per_tile(2) / 1e9


def progress(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def peak_rss_bytes():
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb if platform.system() == "Darwin" else kb * 1024  # macOS reports bytes, Linux KiB


def _median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ----------------------------------------------------------------------------------------------- workers


def time_calls(call, args, label, after_each=None):
    """The first call (compilation included), ``--warmup`` untimed calls, then ``--repeats`` timed calls, each followed
    by ``after_each()`` (its text joins the progress line). Under a paired run (``args._turns``, see ``run_paired``)
    each timed call waits for this worker's turn. Returns (first output, first call s, timed call s list, peak RSS
    bytes after the warm-up, wall-clock start of each timed call)."""
    def timed():
        t0 = time.perf_counter()
        out = call()
        return time.perf_counter() - t0, out

    progress(f"{label}: first call")
    first, out = timed()
    progress(f"{label}: first call {first:.1f} s; {args.warmup} warm-up call(s)")
    for _ in range(args.warmup):
        call()
    rss = peak_rss_bytes()
    turns = WorkerTurns(args._turns) if getattr(args, "_turns", None) else None
    times, starts = [], []
    for i in range(args.repeats):
        if turns:
            turns.wait()
        starts.append(time.time())
        dt, _ = timed()
        times.append(dt)
        extra = f"; {after_each()}" if after_each else ""
        if turns:
            turns.done()
        progress(f"{label}: call {i + 1}/{args.repeats} {dt:.3f} s ({args.batch / dt:.3f} tiles/s){extra}")
    if turns:
        turns.wait()  # exit only when every worker is done: a process tearing down slows the others' calls
    return out, first, times, rss, starts


class WorkerTurns:
    """The worker's end of ``run_paired``: two pipe descriptors "READ,WRITE" from the parent. ``wait()`` says the
    worker is ready (first time only) and blocks until the parent gives it the turn; ``done()`` hands it back. After
    its timed calls a worker waits once more, for the parent's word that all workers are done."""

    def __init__(self, fds):
        read_fd, write_fd = (int(fd) for fd in fds.split(","))
        self.inbox, self.outbox = os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w")
        self.ready = False

    def _say(self, word):
        self.outbox.write(word + "\n")
        self.outbox.flush()

    def wait(self):
        if not self.ready:
            self._say("ready")
            self.ready = True
        if self.inbox.readline().strip() != "go":
            raise RuntimeError("the benchmark driver went away")

    def done(self):
        self._say("done")


def run_paired(commands, repeats, pause_s=0.1, before_pair=None):
    """Run worker ``commands`` (argument lists, each given ``--_turns R,W``) so that they see the same machine:
    each is started, compiled and warmed up alone (the others wait, idle), then their ``repeats`` timed calls take
    turns, A B, B A, A B, ... with ``pause_s`` between turns for the last one's threads to go idle, and all exit
    together at the end (a process tearing down slows the others' calls by 2x). On shared hosts
    the speed of the same process changes over time by 20% and more (benchmarks/README.md), so call i of A is
    compared with call i of B, measured a second apart. ``before_pair()``, if given, runs before each pair while
    every worker is idle. Returns the exit statuses and the list of what ``before_pair`` returned."""
    procs, channels, readings = [], [], []
    try:
        for cmd in commands:
            to_child, from_parent = os.pipe()
            to_parent, from_child = os.pipe()
            proc = subprocess.Popen(cmd + ["--_turns", f"{to_child},{from_child}"], cwd=ROOT, env=USER_ENV,
                                    pass_fds=(to_child, from_child))
            os.close(to_child)
            os.close(from_child)
            channel = (os.fdopen(from_parent, "w"), os.fdopen(to_parent, "r"))
            procs.append(proc)
            channels.append(channel)
            _expect(channel, "ready", proc)
        for i in range(repeats):
            if before_pair:
                readings.append(before_pair())
            order = range(len(procs)) if i % 2 == 0 else reversed(range(len(procs)))
            for k in order:
                channels[k][0].write("go\n")
                channels[k][0].flush()
                _expect(channels[k], "done", procs[k])
                time.sleep(pause_s)
        for to_worker, _ in channels:  # the last turn: write the results and exit
            to_worker.write("go\n")
            to_worker.flush()
        return [proc.wait() for proc in procs], readings
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for channel in channels:
            for f in channel:
                f.close()


class WorkerStopped(Exception):
    """A benchmark worker ended early, with exit status ``status``."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def _expect(channel, word, proc):
    line = channel[1].readline().strip()
    if line != word:
        status = proc.wait()
        raise WorkerStopped(f"benchmark worker {' '.join(proc.args[1:4])} stopped (exit status {status}) "
                            f"instead of saying {word!r}", status)


def make_matmul(n):
    """A graph-mode (n, n) x (n, n) fp32 MatMul; returns a function that times one call in seconds."""
    import numpy as np
    import mindspore as ms
    from mindspore import nn, ops

    class MM(nn.Cell):
        def __init__(self):
            super().__init__()
            self.mm = ops.MatMul()

        def construct(self, a, b):
            return self.mm(a, b)

    rng = np.random.default_rng(0)
    a = ms.Tensor(rng.standard_normal((n, n), np.float32))
    b = ms.Tensor(rng.standard_normal((n, n), np.float32))
    net = MM()
    net(a, b).asnumpy()  # compile

    def timed():
        t0 = time.perf_counter()
        net(a, b).asnumpy()
        return time.perf_counter() - t0

    return timed


def worker_forward(args):
    import numpy as np
    import mindspore as ms
    from src.runtime import setup
    from src.models.ipt import IPT

    _, form = setup(args.device_target, "float32", args.onednn_isa, graph_form=args.graph_form)
    ms.set_seed(0)
    cfg = model_config(args.tiny)
    net = IPT(cfg, graph_form=form).task_net(TASK)
    net.set_train(False)
    bs = args.batch
    x = ms.Tensor(np.random.default_rng(0).uniform(0, 255, (bs, 3, cfg.patch_size, cfg.patch_size)).astype(np.float32))

    def call():
        return net(x).asnumpy()  # asnumpy waits for the result

    matmul, flop, peaks = None, 2.0 * args.matmul_size ** 3, []

    def measure_peak():
        nonlocal matmul
        if matmul is None:  # built after the warm-up, so that the forward's peak RSS is read without it
            matmul = make_matmul(args.matmul_size)
        peaks.append(flop / min(matmul() for _ in range(3)) / 1e9)
        return f"matmul {peaks[-1]:.1f} GFLOP/s"

    y, first, times, rss, starts = time_calls(call, args, f"batch {bs}", after_each=measure_peak)
    if not np.isfinite(y).all():
        raise RuntimeError("non-finite output")
    steady = _median(times)
    tiles = bs / steady
    peak = max(peaks)
    gflops = tiles * gflop_per_tile(args.tiny)
    return {"batch": bs, "graph_form": form, "first_call_s": first, "steady_s": steady, "compile_s": first - steady,
            "times_s": times, "starts": starts, "tiles_per_s": tiles, "gflops": gflops,
            "matmul_peak_gflops": peak, "matmul_peaks_gflops": peaks, "fraction_of_peak": gflops / peak,
            "peak_rss_gb": rss / 1e9}


def worker_torch(args):
    """The same network in PyTorch, written like the official code (``scripts/make_torch_fixtures.py`` modules:
    nn.MultiheadAttention, unfold/fold), eval mode under no_grad, on all the cores the process may use: the
    reference."""
    import numpy as np
    import torch

    torch_ipt = load_module("torch_ipt", "scripts/make_torch_fixtures.py")
    # every core the process may use, as torch does by default; not OMP_NUM_THREADS=1, which importing MindSpore
    # sets (in this process through src.models, and in any process started from one that imported it)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    cfg = model_config(args.tiny)
    if cfg.num_encoder_layers != cfg.num_decoder_layers:
        raise ValueError("the PyTorch reference has as many decoder layers as encoder layers")
    net = torch_ipt.IPT([2], cfg.num_encoder_layers, n_feats=cfg.n_feats, num_heads=cfg.num_heads).eval()
    bs = args.batch
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (bs, 3, cfg.patch_size, cfg.patch_size))
                         .astype(np.float32))

    def call():
        with torch.no_grad():
            net(x, 0)

    _, first, times, _, starts = time_calls(call, args, f"PyTorch {torch.__version__} batch {bs}")
    steady = _median(times)
    return {"batch": bs, "torch_version": torch.__version__, "threads": torch.get_num_threads(), "first_call_s": first,
            "steady_s": steady, "times_s": times, "starts": starts, "tiles_per_s": bs / steady,
            "gflops": bs / steady * gflop_per_tile(args.tiny),
            "peak_rss_gb": peak_rss_bytes() / 1e9}


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------- driver


def cross_core_probe():
    """``benchmarks/cross_core.py``'s probe: ns per cache-line round trip between two CPUs now (None if unavailable)."""
    return load_module("cross_core", "benchmarks/cross_core.py").probe()


def _median_or_none(values):
    values = [v for v in values if v is not None]
    return _median(values) if values else None


def run_paired_workers(kinds, command, repeats, what):
    """A fresh worker per framework in ``kinds`` ("mindspore", "torch"), ``command(kind, result_path)`` giving its
    argument list, their timed calls taking turns (``run_paired``, the cross-core probe before each pair). Returns
    ({kind: the worker's result}, the cross-core readings, and per pair of calls i PyTorch's time over MindSpore's
    (MindSpore's speed relative to PyTorch's) when both ran, else None). ``what`` names the workers in errors."""
    paths = []
    for kind in kinds:
        fd, path = tempfile.mkstemp(prefix=f"ipt_bench_{kind}_", suffix=".json")
        os.close(fd)
        paths.append(path)
    try:
        statuses, cross_core = run_paired([command(kind, path) for kind, path in zip(kinds, paths)], repeats,
                                          before_pair=cross_core_probe())
        results = {}
        for kind, path, status in zip(kinds, paths, statuses):
            if status != 0:
                raise WorkerStopped(f"{kind} {what} worker failed with exit status {status}", status)
            with open(path) as f:
                results[kind] = json.load(f)
    finally:
        for path in paths:
            os.unlink(path)
    ratios = None
    if "mindspore" in results and "torch" in results:
        ratios = [t / m for m, t in zip(results["mindspore"]["times_s"], results["torch"]["times_s"])]
    return results, cross_core, ratios


def format_ns(value):
    """A cross-core round trip (ns) as a 10-wide table cell, '-' when the probe could not run (None)."""
    return f"{value:>10.0f}" if value is not None else f"{'-':>10}"


def run_round(args, batch, kinds):
    """One round for one batch size (``run_paired_workers``). Returns the MindSpore worker's result, with the
    PyTorch worker's under "torch" and, per pair of calls i, MindSpore's speed over PyTorch's as "pair_ratios"."""
    def command(kind, path):
        return ([sys.executable, os.path.abspath(__file__), "--_worker", kind, "--device_target", args.device_target,
                 "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--matmul_size", str(args.matmul_size),
                 "--onednn_isa", args.onednn_isa, "--graph_form", args.graph_form, "--_batch", str(batch),
                 "--_result", path]
                + (["--tiny"] if args.tiny else []))

    results, cross_core, ratios = run_paired_workers(kinds, command, args.repeats, f"benchmark batch {batch}")
    row = results["mindspore"]
    row["cross_core_ns"] = cross_core
    if ratios is not None:
        row["torch"] = results["torch"]
        row["pair_ratios"] = ratios
        row["speed_vs_torch"] = _median(ratios)
    return row


def describe_machine(args):
    """CPU model and ISA flags, and what oneDNN runs with this run's ``--onednn_isa``: its ISA line and the kernel it
    picks for an official-size head convolution (``python -m src.runtime``, a fresh process through setup())."""
    from src.runtime import cpu_description

    model, flags = cpu_description()
    proc = subprocess.run([sys.executable, "-m", "src.runtime", "--onednn_isa", args.onednn_isa], cwd=ROOT,
                          env=USER_ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the oneDNN probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    kernels = json.loads(proc.stdout.strip().splitlines()[-1])
    isa_flags = sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    return {"cpu_model": model, "isa_flags": isa_flags, "onednn_isa_setting": args.onednn_isa,
            "onednn_isa": kernels["onednn_isa"], "conv_impl": kernels["conv_impl"],
            "conv_gflops": kernels["conv_gflops"], "setup": kernels["setting"]}


def format_machine(machine):
    if not machine:
        return []
    return [f"CPU: {machine['cpu_model']}, {os.cpu_count()} cores; ISA flags: {' '.join(machine['isa_flags'])}",
            f"oneDNN (onednn_isa {machine['onednn_isa_setting']}): ISA {machine['onednn_isa']}; 8x64x48x48 5x5 conv "
            f"runs {machine['conv_impl']} at {machine['conv_gflops']} GFLOP/s"]


def write_json_atomic(path, data):
    from src.fileio import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


# Cross-core round trips below this are this project's shared host in its fast state (130-160 ns: the two vCPUs share
# a cache), above it in its slow one (330-600 ns); see benchmarks/README.md, "Why calls are paired".
CROSS_CORE_SPLIT_NS = 250


def ratios_by_host_state(rounds, split_ns=CROSS_CORE_SPLIT_NS):
    """The pair ratios of ``rounds`` grouped by the cross-core round trip read before each pair: {"fast" (below
    ``split_ns``) / "slow": {"pairs", "median", "range", "cross_core_ns": [min, max]}}, groups with pairs only."""
    groups = {}
    for r in rounds:
        for ns, ratio in zip(r["cross_core_ns"], r["pair_ratios"]):
            if ns is not None:
                groups.setdefault("fast" if ns < split_ns else "slow", []).append((ns, ratio))
    return {state: {"pairs": len(g), "median": _median([q for _, q in g]),
                    "range": [min(q for _, q in g), max(q for _, q in g)],
                    "cross_core_ns": [min(ns for ns, _ in g), max(ns for ns, _ in g)]}
            for state, g in sorted(groups.items())}


def summarize(rounds, gflop):
    """One row from the rounds of one batch size: medians of speed and compile time, the best matmul peak, the
    largest RSS; ``vs torch`` is the median of all the rounds' pair ratios (call i of MindSpore against call i of
    PyTorch, taken in turns: ``run_paired``)."""
    tiles = _median([r["tiles_per_s"] for r in rounds])
    peak = max(r["matmul_peak_gflops"] for r in rounds)
    row = {"batch": rounds[0]["batch"], "compile_s": _median([r["compile_s"] for r in rounds]),
           "steady_s": rounds[0]["batch"] / tiles, "tiles_per_s": tiles, "gflops": tiles * gflop,
           "matmul_peak_gflops": peak, "fraction_of_peak": tiles * gflop / peak,
           "peak_rss_gb": max(r["peak_rss_gb"] for r in rounds),
           "cross_core_ns": _median_or_none([v for r in rounds for v in r["cross_core_ns"]]), "rounds": rounds}
    if all("torch" in r for r in rounds):
        row["torch_tiles_per_s"] = _median([r["torch"]["tiles_per_s"] for r in rounds])
        ratios = [q for r in rounds for q in r["pair_ratios"]]
        row["speed_vs_torch"] = _median(ratios)
        row["speed_vs_torch_range"] = [min(ratios), max(ratios)]
        row["speed_vs_torch_by_host_state"] = ratios_by_host_state(rounds)
    return row


def format_table(results, matmul_size, gflop, tiny):
    head = (f"{'batch':>5} {'compile s':>10} {'steady s':>9} {'tiles/s':>8} {'GFLOP/s':>8} {'peak':>6} "
            f"{'of peak':>8} {'peak RSS GB':>12} {'x-core ns':>10} {'torch tiles/s':>14} {'vs torch':>9}")
    lines = [f"IPT {TASK} forward ({'tiny test sizes' if tiny else 'official sizes'}), fp32 graph mode; "
             f"{gflop:.2f} GFLOP per 48x48 tile; "
             f"peak = {matmul_size}^3 fp32 MatMul GFLOP/s in the same process", head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['batch']:>5} {r['compile_s']:>10.1f} {r['steady_s']:>9.3f} {r['tiles_per_s']:>8.3f} "
                     f"{r['gflops']:>8.1f} {r['matmul_peak_gflops']:>6.1f} {100 * r['fraction_of_peak']:>7.1f}% "
                     f"{r['peak_rss_gb']:>12.2f} {format_ns(r['cross_core_ns'])}"
                     + (f" {r['torch_tiles_per_s']:>14.3f} {r['speed_vs_torch']:>8.2f}x"
                                                        if "speed_vs_torch" in r else f" {'-':>14} {'-':>9}"))
    for r in results:
        for state, g in r.get("speed_vs_torch_by_host_state", {}).items():
            lines.append(f"batch {r['batch']}, pairs taken at a cross-core round trip of {g['cross_core_ns'][0]:.0f}-"
                         f"{g['cross_core_ns'][1]:.0f} ns ({state} state of a shared host, split at "
                         f"{CROSS_CORE_SPLIT_NS} ns): {g['median']:.2f}x PyTorch ({g['range'][0]:.2f}-"
                         f"{g['range'][1]:.2f}, {g['pairs']} pairs)")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device_target", default="CPU", choices=("CPU", "GPU", "Ascend"))
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--warmup", type=int, default=WARMUP_CALLS, help="untimed calls after the first one (default: "
                   "enough for MindSpore's CPU kernels to settle their thread split, see WARMUP_CALLS)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls; the median is reported")
    p.add_argument("--rounds", type=int, default=1,
                   help="fresh processes per batch size (and framework); medians over the rounds are reported")
    p.add_argument("--matmul_size", type=int, default=2048, help="side of the square matmul for the peak")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (atomically)")
    p.add_argument("--tiny", action="store_true", help="the test suite's tiny sizes instead of the official ones")
    p.add_argument("--onednn_isa", default="auto",
                   help="CPU kernel set-up of src/runtime.py: auto (AVX2 cap on AVX-512 CPUs), off, or an ISA name")
    p.add_argument("--reference", choices=("auto", "torch", "none"), default="auto",
                   help="also time the PyTorch model of the official code (auto: when torch is installed)")
    p.add_argument("--graph_form", choices=("auto", "native", "cpu"), default="auto",
                   help="MindSpore graph form (src/models/forms.py); auto: cpu on CPU, native on GPU and Ascend")
    p.add_argument("--_worker", choices=("mindspore", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--_batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    p.add_argument("--_turns", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args._worker:
        args.batch = args._batch
        result = worker_forward(args) if args._worker == "mindspore" else worker_torch(args)
        with open(args._result, "w") as f:
            json.dump(result, f)
        return 0
    if any(b < 1 for b in args.batch_sizes) or args.repeats < 1 or args.rounds < 1:
        raise SystemExit("batch sizes, --repeats and --rounds must be >= 1")

    progress(f"device {args.device_target}, batch sizes {args.batch_sizes}, {args.repeats} timed call(s) each")
    if args.reference == "torch" and not torch_available():
        raise SystemExit("--reference torch: PyTorch is not installed in this environment (README.md, Installation, "
                         "says how to add it)")
    with_torch = args.reference == "torch" or (args.reference == "auto" and torch_available())
    machine = describe_machine(args) if args.device_target == "CPU" else {}
    for line in format_machine(machine):
        progress(line)
    results = []
    for bs in args.batch_sizes:
        rounds = []
        for i in range(args.rounds):
            progress(f"batch {bs}: round {i + 1}/{args.rounds}, fresh processes")
            r = run_round(args, bs, ("mindspore", "torch") if with_torch else ("mindspore",))
            progress(f"batch {bs}: {r['tiles_per_s']:.3f} tiles/s, compile {r['compile_s']:.1f} s, "
                     f"peak RSS {r['peak_rss_gb']:.2f} GB"
                     + (f"; {r['speed_vs_torch']:.2f}x PyTorch (median of {len(r['pair_ratios'])} paired calls)"
                        if with_torch else ""))
            rounds.append(r)
        results.append(summarize(rounds, gflop_per_tile(args.tiny)))
    print("\n".join(format_machine(machine)))
    print(format_table(results, args.matmul_size, gflop_per_tile(args.tiny), args.tiny))
    if args.json:
        write_json_atomic(args.json, {
            "task": TASK, "config": model_config(args.tiny).to_dict(), "weights": "random", "dtype": "float32",
            "device_target": args.device_target, "graph_form": args.graph_form,
            "gflop_per_tile": gflop_per_tile(args.tiny),
            "matmul_size": args.matmul_size, "results": results, "warmup": args.warmup, "repeats": args.repeats,
            "rounds": args.rounds, "machine": machine, "host": platform.node(), "cpu_count": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        progress(f"wrote {args.json}")
    return 0


def run_script(main_fn):
    """Exit status of a benchmark script's ``main_fn(argv)``, run as the project's scripts run (``src.errors.run_main``:
    an error is one line, ``IPT_DEBUG=1`` prints the traceback), driver and workers alike. A worker that stopped with
    status 1 or 2 has printed its own line, so the driver exits with that status and adds nothing."""
    from src.errors import run_main

    def driver(argv):
        try:
            return main_fn(argv)
        except WorkerStopped as exc:
            if exc.status in (1, 2) and os.environ.get("IPT_DEBUG") != "1":
                return exc.status
            raise

    return run_main(driver)


if __name__ == "__main__":
    sys.exit(run_script(main))
