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
import yaml
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


# The quickstart's denoising recipe, shortened: the same data (make_quickstart_data.py), model size
# (configs/quickstart_pretrain.yaml's model), fine-tuning settings (configs/quickstart_finetune.yaml +
# quickstart_denoise.yaml: batch, tile, learning rate) and held-out photos, but from a random init instead of the
# pre-trained model, for half the fine-tuning's steps (its milestones halved too). Its worst photo against the full
# quickstart's (dB PSNR-Y over the noisy input; 2026-12-03, the 2-core machine):
#   recipe                                   short run        full quickstart (denoise_30 fine-tuning)
#   as committed, data.seed 0 / 1 / 2        3.98 / 4.13 / 4.07   4.85 / 5.06 / -
#   without the exposure variants            4.11             5.15
#   lr 5e-4 instead of 2e-3                  3.51             3.88 (below 4)
#   80 steps (the earlier count; short: 40)  3.42             3.11 (below 4)
# The full run's worst photo is 0.4 to 1.0 dB above the short run's where both train 120+ steps, and 0.3 dB below it
# at 80 steps; 3.7 dB separates the recipes whose full run keeps every photo at +4 dB or more from those that do not.
# Rechecked with the in-graph schedule and whole-batch data workers: short run 3.98, full quickstart 4.85 (gravel),
# the same with 1 or 2 data workers.
SHORT_RUN_WORST_GAIN = 3.7  # dB PSNR-Y over the noisy input, on the worst held-out photo


def test_a_short_run_of_the_denoising_recipe_holds_up_on_every_heldout_photo(quickstart_data, tmp_path):
    """Fails when the quickstart's denoising recipe stops generalising to photos unlike its training photos."""
    model = yaml.safe_load((ROOT / "configs" / "quickstart_pretrain.yaml").read_text())["model"]
    denoise = yaml.safe_load((ROOT / "configs" / "quickstart_denoise.yaml").read_text())
    steps, milestones = denoise["steps"] // 2, [m // 2 for m in denoise["optim"]["milestones"]]
    run("train.py", "--config", "configs/quickstart_finetune.yaml", "--config", "configs/quickstart_denoise.yaml",
        "--task", "denoise_30", *[f"--model.{key}={value}" for key, value in model.items()], "--steps", steps,
        "--optim.milestones", str(milestones), "--log_every", steps, "--data.train_dir", quickstart_data / "train",
        "--output_dir", tmp_path / "run")
    run("eval.py", "--ckpt_path", tmp_path / "run" / "ipt_denoise_30_last.ckpt", "--task", "denoise_30",
        "--benchmark", quickstart_data / "heldout", "--baseline", "true", "--metrics_json", tmp_path / "metrics.json")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    gains = {m["name"]: round(m["psnr_y"] - m["baseline"]["psnr_y"], 2) for m in metrics["images"]}
    assert sorted(gains) == HELDOUT
    assert min(gains.values()) >= SHORT_RUN_WORST_GAIN, gains
