"""One real run of benchmarks/tiling_benchmark.py at the tiny test sizes (a smoke test, not a timing test)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_both_modes(tmp_path):
    out = tmp_path / "tiling.json"
    proc = subprocess.run([sys.executable, "benchmarks/tiling_benchmark.py", "--tiny", "--size", "64",
                           "--tile_batch", "4", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["official_forward_chop_tiles"] == 4 + 1 + 4 * 2        # 2x2 grid, corner, 4 strips of 2
    by_mode = {r["mode"]: r for r in data["results"]}
    assert by_mode["fast"]["tiles"] == 4 and by_mode["paper"]["tiles"] == 9
    for r in by_mode.values():
        assert r["compiles"] == 1 and r["tiles_per_s"] > 0 and r["peak_rss_gb"] > 0.1
    assert "official forward_chop: 13 tiles" in proc.stdout
