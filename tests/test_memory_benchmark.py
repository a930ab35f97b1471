"""One real run of benchmarks/memory_benchmark.py at the tiny sizes on two small photos (a smoke test, not a memory
assertion: the measured table lives in the README)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_two_sizes(tmp_path):
    out = tmp_path / "memory.json"
    proc = subprocess.run([sys.executable, "benchmarks/memory_benchmark.py", "--sizes", "40x30", "130x100",
                           "--modes", "fast", "--tile_batch", "4", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["model"] == "tiny" and data["scale"] == 2 and len(data["results"]) == 2
    small, large = data["results"]
    assert (large["width"], large["height"], large["out_width"], large["out_height"]) == (130, 100, 260, 200)
    assert small["tiles"] == 1 and large["tiles"] == 12
    assert small["growth_gb"] == 0 and small["peak_rss_gb"] > 0.1 and large["png_mb"] > 0
    assert 260 * 200 * 3 / 2**30 < large["estimate_gb"] < 0.01
    assert "eval.py end to end, sr_x2, tiny sizes" in proc.stdout and "130x100" in proc.stdout
    bad = subprocess.run([sys.executable, "benchmarks/memory_benchmark.py", "--sizes", "40by30"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "size '40by30': expected WIDTHxHEIGHT" in bad.stderr
