"""The quickstart's own pieces, as it runs them (real processes, the tiny official-format checkpoint instead of the
trained one): the data split of scikit-image's photos, and the report (comparison sheet and table) on what
``eval.py --benchmark --baseline --save_outputs --metrics_json`` wrote. The whole quickstart is run by hand (README)."""
import json
import subprocess
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = ROOT / "tests" / "fixtures" / "ipt_tiny_pretrain_zip.pt"


def run(*args):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_data_split_and_report(tmp_path):
    data = tmp_path / "data"
    run("scripts/make_quickstart_data.py", "--output", data)
    train = sorted(p.stem for p in (data / "train").iterdir())
    heldout = sorted(p.stem for p in (data / "heldout" / "HR").iterdir())
    assert len(train) == 11 and heldout == ["chelsea", "coffee", "rocket"] and not set(train) & set(heldout)
    assert cv2.imread(str(data / "heldout" / "HR" / "rocket.png")).shape == (240, 360, 3)
    assert cv2.imread(str(data / "train" / "camera.png"), cv2.IMREAD_UNCHANGED).ndim == 2  # grayscale kept as is

    out = tmp_path / "out"
    for task in ("sr_x2", "denoise_30"):
        run("eval.py", "--ckpt_path", PRETRAIN, "--num_heads", 3, "--task", task, "--benchmark", data / "heldout",
            "--baseline", "true", "--save_outputs", "true", "--output", out / task / "restored",
            "--metrics_json", out / task / "metrics.json")
    table = run("scripts/quickstart_report.py", "--benchmark", data / "heldout", "--out", out, "--tasks", "sr_x2",
                "denoise_30")
    for task, panels in (("sr_x2", 4), ("denoise_30", 3)):  # denoising: the noisy input is the baseline panel
        sheet = cv2.imread(str(out / task / "comparison.png"))
        assert sheet.shape[1] >= panels * 360 and sheet.shape[1] < (panels + 1) * 360
        assert sheet.shape[0] > 3 * (240 + 48 * 4)
        metrics = json.loads((out / task / "metrics.json").read_text())
        mean = next(ln.split() for ln in table.splitlines() if ln.startswith(task) and " mean " in ln)
        gain = metrics["mean"]["psnr_y"] - metrics["baseline"]["mean"]["psnr_y"]
        assert float(mean[-1]) == round(gain, 2) or abs(float(mean[-1]) - gain) <= 0.005
