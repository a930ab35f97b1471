"""One real run of the data benchmark at tiny sizes (a smoke test of its arithmetic and its JSON, not a timing)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "benchmarks" / "data_benchmark.py"


def test_tiny_data_benchmark(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tasks", "sr_x2", "derain", "--workers", "1", "2",
                           "--batch", "2", "--batches", "3", "--warmup", "1", "--bare_samples", "3", "--images", "4",
                           "--width", "160", "--height", "120", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [(r["task"], r["workers"]) for r in data["results"]] == [("sr_x2", 1), ("sr_x2", 2), ("derain", 1),
                                                                    ("derain", 2)]
    for r in data["results"]:
        assert r["samples_per_s"] > 0 and r["bare_samples_per_s"] > 0
        # per CPU-second: None only where the CPU clock did not tick during these few samples
        assert all(r[k] is None or r[k] > 0 for k in ("samples_per_cpu_s", "bare_samples_per_cpu_s"))
        assert r["samples_per_s"] == pytest.approx(2 * r["batches_per_s"])
        assert r["samples_per_s_per_worker"] == pytest.approx(r["samples_per_s"] / r["workers"])
        core_rate = r["samples_per_cpu_s"] or r["samples_per_s_per_worker"]
        assert r["workers_per_device"] >= 1 and r["workers_per_device"] * core_rate >= 2 / 0.16
    machine = data["machine"]  # the other benchmarks' machine description
    assert machine["cpu_model"] and machine["onednn_isa"] and data["image_size"] == [160, 120]
    assert "workers/device" in proc.stdout and "160x120 JPEGs (quality 90)" in proc.stdout


def test_generated_images_are_jpegs_of_the_size_asked(tmp_path):
    import cv2
    from conftest import load_script

    bench = load_script(SCRIPT)
    paths = bench.make_images(tmp_path, 12, 500, 375, 90)
    images = [cv2.imread(p) for p in paths]
    assert all(im.shape == (375, 500, 3) for im in images)
    assert len({im.tobytes() for im in images}) == 12 and open(paths[0], "rb").read(2) == b"\xff\xd8"
