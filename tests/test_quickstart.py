"""The quickstart's own pieces, as it runs them (real processes): the data split of scikit-image's photos, the
report (comparison sheet and table) on what ``eval.py --benchmark --baseline --save_outputs --metrics_json`` wrote
(with the tiny official-format checkpoint instead of the trained one), and a short run of the quickstart's denoising
recipe that must generalise to every held-out photo. The whole quickstart is run by hand (README)."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = ROOT / "tests" / "fixtures" / "ipt_tiny_pretrain_zip.pt"
HELDOUT = ["chelsea", "coffee", "gravel", "hubble_deep_field", "lake", "rocket", "sky"]


def run(*args):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def quickstart_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("quickstart") / "data"
    run("scripts/make_quickstart_data.py", "--output", data)
    return data


def test_data_split(quickstart_data):
    data = quickstart_data
    photos = sorted(p.stem for p in (data / "train" / "photos").iterdir())
    exposures = sorted(p.stem for p in (data / "train" / "exposures").iterdir())
    heldout = sorted(p.stem for p in (data / "heldout" / "HR").iterdir())
    originals = [name for name in photos if not name.endswith(("_bgr", "_gbr"))]
    assert len(originals) == 11 and len(photos) == 11 + 2 * 4 and len(exposures) == 4 * 11
    assert heldout == HELDOUT
    split = load_script(ROOT / "scripts" / "make_quickstart_data.py")
    trained = set(split.TRAIN_COLOUR + split.TRAIN_GRAY)
    assert not trained & set(split.HELDOUT_CROPS + (split.HELDOUT_SCENE, "motorcycle_right.png"))
    assert {Path(name).stem for name in trained} == set(originals)
    for name in heldout:
        assert cv2.imread(str(data / "heldout" / "HR" / f"{name}.png")).shape == (240, 360, 3)
    assert cv2.imread(str(data / "train" / "photos" / "grass.png"), cv2.IMREAD_UNCHANGED).ndim == 2  # grayscale
    astronaut = cv2.imread(str(data / "train" / "photos" / "astronaut.png"))
    assert np.array_equal(cv2.imread(str(data / "train" / "photos" / "astronaut_bgr.png")), astronaut[..., ::-1])
    negative = cv2.imread(str(data / "train" / "exposures" / "astronaut_negative.png"))
    assert np.array_equal(negative, 255 - astronaut)
    over = cv2.imread(str(data / "train" / "exposures" / "moon_over.png"), cv2.IMREAD_UNCHANGED)
    moon = cv2.imread(str(data / "train" / "photos" / "moon.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(over, np.clip(np.rint(1.6 * moon.astype(np.float32)), 0, 255).astype(np.uint8))
    sky = cv2.imread(str(data / "heldout" / "HR" / "sky.png"), cv2.IMREAD_GRAYSCALE)
    lake = cv2.imread(str(data / "heldout" / "HR" / "lake.png"), cv2.IMREAD_GRAYSCALE)
    assert np.median(sky[:60]) >= 230 and np.median(lake[:60]) >= 230  # a near-white sky
    assert np.median(cv2.imread(str(data / "heldout" / "HR" / "hubble_deep_field.png"), 0)) < 20  # a dark one


def test_report(quickstart_data, tmp_path):
    data = quickstart_data

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
        assert sheet.shape[0] > len(HELDOUT) * (240 + 48 * 4)
        metrics = json.loads((out / task / "metrics.json").read_text())
        gains = {m["name"]: m["psnr_y"] - m["baseline"]["psnr_y"] for m in metrics["images"]}
        rows = {ln.split()[1]: float(ln.split()[-1]) for ln in table.splitlines() if ln.startswith(task + " ")}
        assert sorted(rows) == sorted(HELDOUT + ["mean"])
        for name, gain in gains.items():
            assert abs(rows[name] - gain) <= 0.005
        mean = metrics["mean"]["psnr_y"] - metrics["baseline"]["mean"]["psnr_y"]
        assert abs(rows["mean"] - mean) <= 0.005
        worst = min(gains, key=gains.get)
        assert f"{task}: worst photo {worst}, {gains[worst]:+.2f} dB PSNR-Y over the " in table
