"""The forward benchmark's arithmetic, and one real run of it at the tiny test sizes (not a timing test)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_script
from src.models.ipt import IPTConfig

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "benchmarks" / "forward_benchmark.py"


def test_macs_per_tile_official_sr_x2():
    """The issue's figure: one 48x48 x2 tile of the official model is 33.32 G multiply-adds."""
    assert IPTConfig().macs_per_tile(2) == 33_323_728_896
    cfg = IPTConfig()
    # a larger scale only adds tail work; x4 has two x2 stages, x3 one x3 stage
    assert cfg.macs_per_tile(1) < cfg.macs_per_tile(2) < cfg.macs_per_tile(3) < cfg.macs_per_tile(4)


def _run(tmp_path, *extra):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--batch_sizes", "2", "--repeats", "2",
                           "--matmul_size", "256", "--json", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_tiny_run_writes_consistent_results(tmp_path):
    proc, data = _run(tmp_path, "--reference", "none")
    (row,) = data["results"]
    assert row["batch"] == 2 and len(row["rounds"]) == 1 and len(row["rounds"][0]["times_s"]) == 2
    assert row["tiles_per_s"] > 0 and row["matmul_peak_gflops"] > 0 and row["peak_rss_gb"] > 0.1
    assert row["gflops"] == pytest.approx(row["tiles_per_s"] * data["gflop_per_tile"])
    assert row["fraction_of_peak"] == pytest.approx(row["gflops"] / row["matmul_peak_gflops"])
    assert "speed_vs_torch" not in row
    readings = row["rounds"][0]["cross_core_ns"]  # one before each pair of calls (here: each call)
    if shutil.which("cc") or shutil.which("gcc"):
        assert len(readings) == 2 and all(20 < ns < 1e6 for ns in readings)
        assert row["cross_core_ns"] == pytest.approx(sum(readings) / 2)
    else:
        assert readings == [None, None] and row["cross_core_ns"] is None
    assert data["config"]["n_feats"] == 4 and "tiny test sizes" in proc.stdout
    machine = data["machine"]  # the CPU and the oneDNN kernels the table came from
    assert machine["cpu_model"] and machine["onednn_isa"] and machine["conv_impl"]
    assert f"runs {machine['conv_impl']}" in proc.stdout and "ISA flags:" in proc.stdout


def assert_took_turns(first, second):
    """Timed calls i of two workers of a paired run: A B, B A, A B, ..., each call starting after the one before
    it ended (wall-clock starts plus durations), so that the two never ran at the same time."""
    calls = sorted([(t, dt, "a") for t, dt in zip(first["starts"], first["times_s"])]
                   + [(t, dt, "b") for t, dt in zip(second["starts"], second["times_s"])])
    order = "".join(c[2] for c in calls)
    assert order == "".join("ab" if i % 2 == 0 else "ba" for i in range(len(first["starts"]))), order
    for (t0, dt0, _), (t1, _, _) in zip(calls, calls[1:]):
        assert t1 >= t0 + dt0


def test_tiny_run_with_torch_reference(tmp_path):
    pytest.importorskip("torch")
    _, data = _run(tmp_path, "--reference", "torch", "--repeats", "3")
    (row,) = data["results"]
    ms_row = row["rounds"][0]
    torch_row = ms_row["torch"]
    assert torch_row["tiles_per_s"] > 0
    # the reference runs on every core (MindSpore's import sets OMP_NUM_THREADS=1; it must not leak into it)
    assert torch_row["threads"] == len(os.sched_getaffinity(0))
    assert_took_turns(ms_row, torch_row)
    pairs = [t / m for m, t in zip(ms_row["times_s"], torch_row["times_s"])]
    assert ms_row["pair_ratios"] == pytest.approx(pairs)
    assert row["speed_vs_torch"] == pytest.approx(sorted(pairs)[1])  # the median of 3 pairs
    assert row["speed_vs_torch_range"] == pytest.approx([min(pairs), max(pairs)])
    split = row["speed_vs_torch_by_host_state"]  # every pair in one of the two groups, when the probe ran
    if ms_row["cross_core_ns"][0] is not None:
        assert sum(g["pairs"] for g in split.values()) == 3


def test_pair_ratios_split_by_host_state():
    """Recorded readings: each pair's ratio goes with the round trip read before it; pairs without a reading (no C
    compiler) are left out of the split, not of the row's overall median."""
    bench = load_script(SCRIPT)
    rounds = [{"cross_core_ns": [150.0, 420.0, 140.0], "pair_ratios": [1.04, 0.96, 1.02]},
              {"cross_core_ns": [None, 530.0, 160.0], "pair_ratios": [1.50, 0.98, 1.01]}]
    split = bench.ratios_by_host_state(rounds)
    assert split["fast"] == {"pairs": 3, "median": 1.02, "range": [1.01, 1.04], "cross_core_ns": [140.0, 160.0]}
    assert split["slow"]["pairs"] == 2 and split["slow"]["median"] == pytest.approx(0.97)
    assert split["slow"]["cross_core_ns"] == [420.0, 530.0]
    assert bench.ratios_by_host_state([{"cross_core_ns": [None], "pair_ratios": [1.0]}]) == {}
    row = {"batch": 1, "compile_s": 1.0, "steady_s": 0.5, "tiles_per_s": 2.0, "gflops": 1.0, "matmul_peak_gflops": 2.0,
           "fraction_of_peak": 0.5, "peak_rss_gb": 1.0, "cross_core_ns": 160.0, "torch_tiles_per_s": 2.0,
           "speed_vs_torch": 1.02, "speed_vs_torch_by_host_state": split}
    table = bench.format_table([row], 256, 1.0, True)
    assert "pairs taken at a cross-core round trip of 140-160 ns (fast state" in table
    assert "420-530 ns (slow state of a shared host, split at 250 ns): 0.97x PyTorch (0.96-0.98, 2 pairs)" in table


def test_cross_core_probe_runs(capsys):
    """The cross-core probe builds with the machine's C compiler and measures a plausible round trip (20 ns to 1 ms)."""
    cross_core = load_script(ROOT / "benchmarks" / "cross_core.py")
    if cross_core.build() is None or cross_core.default_cpus() is None:
        pytest.skip("no C compiler, or a single CPU, on this machine")
    assert cross_core.main([]) == 0
    ns = float(capsys.readouterr().out.split(": ")[-1].split()[0])
    assert 20 < ns < 1e6


def test_paired_run_reports_a_dead_worker():
    """A worker that exits before its first timed call stops the run with its exit status, not a hang."""
    bench = load_script(SCRIPT)
    with pytest.raises(bench.WorkerStopped, match="exit status 3"):
        bench.run_paired([[sys.executable, "-c", "import sys; sys.exit(3)"]], 2)


def test_unusable_device_is_one_error_line():
    """--device_target GPU where MindSpore has no GPU backend: the worker's one-line error, no traceback from the
    worker or the driver, and the worker's exit status 2."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--device_target", "GPU", "--reference", "none"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "IPT_DEBUG"})
    if proc.returncode == 0:
        pytest.skip("MindSpore runs on a GPU on this machine")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert errors == [errors[0]] and "device_target GPU: MindSpore" in errors[0] and "cannot use GPU" in errors[0], \
        proc.stderr


def test_bad_arguments_exit_non_zero():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "0"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and "--rounds" in proc.stderr


# ----------------------------------------------------------------------------------------------- op_profile.py

PROFILE = ROOT / "benchmarks" / "op_profile.py"


def test_macs_by_kind_adds_up_and_splits_the_body():
    cfg = IPTConfig()
    kinds = cfg.macs_by_kind(2)
    assert sum(kinds.values()) == cfg.macs_per_tile(2)
    # 36 attentions (12 encoder, 2 x 12 decoder) of 2 x 256 x 256 x 576 multiply-adds each
    assert kinds["attention"] == 36 * 2 * 256 * 256 * 576
    assert kinds["linear"] > 10 * kinds["conv"]


def test_op_profile_arithmetic():
    """Hand-made profile totals (two calls): per-call times, rates and the target budget follow the definitions."""
    op_profile = load_script(PROFILE)
    macs = {"linear": 4e9, "attention": 1e9, "conv": 0.5e9}  # per tile; batch 2 -> 2 x 2 x macs FLOP per call
    totals = {"MatMul": 2 * 160.0, "BatchMatMul": 2 * 50.0, "Conv2D": 2 * 25.0, "LayerNorm": 2 * 15.0}
    r = op_profile.analyse(totals, calls=2, batch=2, macs_by_kind=macs, target=0.9)
    ops = {o["op_type"]: o for o in r["ops"]}
    assert r["sum_ms_per_call"] == pytest.approx(250.0)
    assert r["matmul_gflops"] == pytest.approx(16e9 / 0.160 / 1e9)  # 100 GFLOP/s
    assert ops["BatchMatMul"]["gflops"] == pytest.approx(4e9 / 0.050 / 1e9)
    assert ops["LayerNorm"]["share"] == pytest.approx(15 / 250) and "gflops" not in ops["LayerNorm"]
    assert r["fraction_at_op_sum"] == pytest.approx(22.0 / 0.250 / 100)
    assert r["fraction_arithmetic_only"] == pytest.approx(22.0 / 0.235 / 100)
    # 22 GFLOP at 90 GFLOP/s take 244.4 ms, of which the arithmetic ops take 235
    assert r["rest_budget_ms_per_call"] == pytest.approx(22.0 / 90.0 * 1e3 - 235.0)
    assert r["rest_ms_per_call"] == pytest.approx(15.0)
    with pytest.raises(RuntimeError, match="Conv2D"):
        op_profile.analyse({"MatMul": 1.0, "BatchMatMul": 1.0}, 1, 1, macs, 0.9)


def test_op_profile_gaps_between_kernels(tmp_path):
    """Hand-written timestamp lines in the profiler's format (the real file is read in the tiny run below): a gap is
    the next start - (start + duration), grouped by the following kernel without its layer number."""
    op_profile = load_script(PROFILE)
    lines = [f"{name};HostCpuOps;{1_000_000 + start_us * 1000},{dur_ms},0"
             for name, start_us, dur_ms in (("Default/body/Reshape-op0", 0, 0.1),
                                            ("Default/body/0-Layer/MatMul-op0", 300, 0.5),
                                            ("Default/body/1-Layer/MatMul-op0", 1000, 0.5),
                                            ("Default/body/Add-op1", 1600, 0.1))]
    folder = tmp_path / "prof" / "FRAMEWORK"
    folder.mkdir(parents=True)
    (folder / "cpu_op_execute_timestamp_0.txt").write_text("\n".join(lines[::-1]) + "\n")  # any order
    kernels = op_profile.read_kernel_times(tmp_path)
    assert [k[2] for k in kernels[:2]] == ["Default/body/Reshape-op0", "Default/body/0-Layer/MatMul-op0"]
    gaps = op_profile.kernel_gaps(kernels, rows=5)
    # 0.2 ms before the first MatMul, 0.2 before the second, 0.1 before Add
    assert gaps["kernels"] == 4 and gaps["gap_ms"] == pytest.approx(0.5)
    assert gaps["largest"][0] == {"before": "Default/body/Layer/MatMul-op0", "count": 2, "ms": pytest.approx(0.4)}
    assert gaps["largest"][1]["before"] == "Default/body/Add-op1" and len(gaps["largest"]) == 2
    with pytest.raises(RuntimeError, match="1 kernel launch"):
        op_profile.kernel_gaps(kernels[:1])


def test_op_profile_tiny_run(tmp_path):
    """A real profiled run of the tiny graph at batch 1: the op table holds the model's kernels and adds up."""
    out = tmp_path / "profile.json"
    proc = subprocess.run([sys.executable, str(PROFILE), "--tiny", "--batch", "1", "--calls", "1",
                           "--matmul_size", "256", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    ops = {o["op_type"]: o for o in data["ops"]}
    assert {"MatMul", "BatchMatMul", "Conv2D", "Softmax"} <= set(ops)
    assert "Gather" not in ops  # batch 1: the cpu form's attention takes its heads with no copies
    assert sum(o["share"] for o in data["ops"]) == pytest.approx(1.0)
    assert data["sum_ms_per_call"] == pytest.approx(sum(o["ms_per_call"] for o in data["ops"]))
    assert data["config"]["n_feats"] == 4 and data["matmul_peak_gflops"] > 0
    assert "of the MatMul rate" in proc.stdout
    gaps = data["gaps"]  # from the real timestamp file of the profiled call
    assert gaps["kernels"] > 100 and sum(g["count"] for g in gaps["largest"]) < gaps["kernels"]
    assert 0 < gaps["gap_ms"] < data["wall_ms_per_call"]
    assert "between kernels" in proc.stdout


def test_op_profile_bad_arguments():
    proc = subprocess.run([sys.executable, str(PROFILE), "--target", "1.5"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and "--target" in proc.stderr
