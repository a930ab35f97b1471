"""How fast two CPUs of this machine exchange data right now: the round trip of one cache line between two threads
pinned to them (``cross_core.c``, built here with the C compiler on first use).

On shared hosts this changes for minutes at a time, and with it the speed of both frameworks (benchmarks/README.md,
"Why calls are paired"); the forward benchmark records it between the turns of its paired calls.

    .venv/bin/python benchmarks/cross_core.py [--cpus 0 1] [--watch SECONDS]
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cross_core.c")


def build():
    """Path of the compiled probe (cached under the temporary folder by the source's hash); None when this machine has
    no C compiler or the build fails."""
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    binary = os.path.join(tempfile.gettempdir(), f"ipt_cross_core_{digest}")
    if os.path.exists(binary):
        return binary
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    partial = f"{binary}.{os.getpid()}.tmp"
    proc = subprocess.run([compiler, "-O2", "-pthread", SOURCE, "-o", partial], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    os.replace(partial, binary)  # atomic: a concurrent build never sees half a file
    return binary


def default_cpus():
    """The first two CPUs this process may run on; None on a one-CPU machine."""
    cpus = sorted(os.sched_getaffinity(0))
    return tuple(cpus[:2]) if len(cpus) >= 2 else None


def measure(binary, cpus, round_trips=20000, repeats=3):
    """Median of ``repeats`` runs: nanoseconds per round trip between ``cpus``."""
    values = []
    for _ in range(repeats):
        proc = subprocess.run([binary, str(cpus[0]), str(cpus[1]), str(round_trips)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"cross-core probe failed on CPUs {cpus}: {proc.stderr.strip()}")
        values.append(float(proc.stdout))
    return sorted(values)[len(values) // 2]


def probe():
    """A function that returns the round trip in ns now, or None where the probe cannot run (no compiler, one CPU)."""
    cpus = default_cpus()
    binary = build() if cpus else None
    if binary is None:
        return lambda: None
    return lambda: measure(binary, cpus)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpus", type=int, nargs=2, help="the two CPUs (default: the first two this process may use)")
    p.add_argument("--watch", type=float, default=0.0, help="sample once a second for this many seconds")
    args = p.parse_args(argv)
    cpus = tuple(args.cpus) if args.cpus else default_cpus()
    if cpus is None:
        raise SystemExit("cross_core: this process may run on one CPU only; there is no pair to measure")
    binary = build()
    if binary is None:
        raise SystemExit(f"cross_core: no C compiler could build {SOURCE} (set CC, or install gcc)")
    end = time.time() + args.watch
    while True:
        print(f"{time.strftime('%H:%M:%S')} CPUs {cpus[0]},{cpus[1]}: {measure(binary, cpus):.0f} ns per round trip",
              flush=True)
        if time.time() >= end:
            return 0
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
