"""The forward benchmark's arithmetic, and one real run of it at the tiny test sizes (not a timing test)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert data["config"]["n_feats"] == 4 and "tiny test sizes" in proc.stdout


def test_tiny_run_with_torch_reference(tmp_path):
    pytest.importorskip("torch")
    _, data = _run(tmp_path, "--reference", "torch")
    (row,) = data["results"]
    torch_row = row["rounds"][0]["torch"]
    assert torch_row["tiles_per_s"] > 0
    assert row["speed_vs_torch"] == pytest.approx(row["tiles_per_s"] / torch_row["tiles_per_s"])


def test_bad_arguments_exit_non_zero():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "0"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and "--rounds" in proc.stderr
