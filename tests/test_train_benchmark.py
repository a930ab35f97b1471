"""One real run of the training benchmark at the tiny test sizes (a smoke test of its arithmetic, not a timing)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_benchmark import assert_took_turns

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "benchmarks" / "train_benchmark.py"


def test_tiny_training_benchmark(tmp_path):
    out = tmp_path / "bench.json"
    pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--batch", "2", "--repeats", "2", "--warmup", "0",
                           "--reference", "torch", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [r["step"] for r in data["rows"]] == ["finetune", "pretrain"] and data["batch"] == 2
    for row in data["rows"]:
        ms_, th = row["mindspore"], row["torch"]
        assert len(ms_["times_s"]) == len(th["times_s"]) == 2
        assert ms_["samples_per_s"] == pytest.approx(2 * ms_["steps_per_s"])
        assert_took_turns(ms_, th)
        assert len(row["cross_core_ns"]) == 2  # the host's state before each pair (None without a C compiler)
        pairs = [t / m for m, t in zip(ms_["times_s"], th["times_s"])]
        assert row["speed_vs_torch"] == pytest.approx(sum(pairs) / 2)  # the median of 2 pairs
    total, l1, contrastive = data["rows"][1]["mindspore"]["loss"]
    assert contrastive > 0 and total == pytest.approx(l1 + 0.1 * contrastive, rel=1e-5)
    assert data["rows"][0]["mindspore"]["loss"][2] == 0
    assert "tiny test sizes" in proc.stdout and "vs torch" in proc.stdout
