"""The entry scripts as a user runs them: real processes, real checkpoints and photos, one-line errors."""
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from numpy_ipt import ipt_forward

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PRETRAIN = FIXTURES / "ipt_tiny_pretrain_zip.pt"


def run(*args, cwd=ROOT):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def error_line(stderr):
    """The user-facing lines of stderr (MindSpore's own [WARNING] lines and our INFO log lines aside)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[WARNING]")
             and not re.match(r"\d{4}-\d\d-\d\d [\d:,]+ INFO ", ln)]  # progress log lines are not errors
    return lines


def write_bgr(path, rgb):
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """48x48 crops of real photographs bundled with scikit-image."""
    d = tmp_path_factory.mktemp("photos")
    write_bgr(d / "astronaut.png", skdata.astronaut()[100:148, 200:248])
    write_bgr(d / "chelsea.png", skdata.chelsea()[120:168, 150:198])
    return d


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The 6-task fixture converted to ours, keeping sr_x2 and denoise_30."""
    out = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    code, _, err = run("convert.py", "--ckpt_path", PRETRAIN, "--num_heads", "3", "--keep", "[sr_x2, denoise_30]",
                       "--output", out)
    assert code == 0, err
    return out


def test_convert_then_restore_matches_oracle(converted, photos, tmp_path):
    out = tmp_path / "restored"
    code, _, err = run("eval.py", "--ckpt_path", converted, "--task", "sr_x2", "--input", photos, "--output", out,
                       "--save_npy")
    assert code == 0, err
    assert "INFO CPU " in err  # the runtime set-up's CPU kernel line (tests/test_runtime.py checks what it does)
    npz = np.load(FIXTURES / "ipt_tiny_pretrain_zip.npz")
    sd = {k: npz[k] for k in npz.files}
    for name in ("astronaut", "chelsea"):
        rgb = cv2.imread(str(photos / f"{name}.png"))[..., ::-1]
        y = np.load(out / f"{name}.npy")
        assert y.shape == (96, 96, 3) and y.dtype == np.float32
        oracle = ipt_forward(sd, rgb.transpose(2, 0, 1)[None].astype(np.float64), 0, [2, 3, 4, 1, 1, 1], 3)
        assert np.abs(y - oracle[0].transpose(1, 2, 0)).max() < 1e-3
        png = cv2.imread(str(out / f"{name}.png"))[..., ::-1]
        np.testing.assert_array_equal(png, np.clip(np.round(y), 0, 255).astype(np.uint8))


def test_official_file_directly_with_task(photos, tmp_path):
    code, _, err = run("eval.py", "--ckpt_path", FIXTURES / "ipt_tiny_denoise_legacy.pt", "--task", "denoise_50",
                       "--num_heads", "3", "--input", photos / "chelsea.png", "--output", tmp_path)
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "chelsea.png")).shape == (48, 48, 3)


def test_grayscale_and_rgba_inputs_are_converted_with_a_warning(converted, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "camera.png"), skdata.camera()[200:248, 200:248])
    rgba = np.dstack([skdata.coffee()[100:148, 100:148][..., ::-1], np.full((48, 48), 128, np.uint8)])
    cv2.imwrite(str(inputs / "coffee_rgba.png"), rgba)
    code, _, err = run("eval.py", "--ckpt_path", converted, "--task", "denoise_30", "--input", inputs,
                       "--output", tmp_path / "out")
    assert code == 0, err
    assert "grayscale image converted to RGB" in err and "alpha" in err
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"camera.png", "coffee_rgba.png"}


@pytest.mark.parametrize("args, message", [
    (["--task", "sr_x9"],
     "error: unknown task 'sr_x9'; valid tasks: sr_x2, sr_x3, sr_x4, derain, denoise_30, denoise_50"),
    (["--task", "derain"], "error: task 'derain' is not in this model; it has: sr_x2, denoise_30"),
    (["--taks", "sr_x2"], "error: unknown config key 'taks' (did you mean 'task'?)"),
    ([], "holds several tasks (sr_x2, denoise_30); choose one with --task"),
])
def test_bad_arguments_give_one_line(converted, photos, tmp_path, args, message):
    code, _, err = run("eval.py", "--ckpt_path", converted, "--input", photos, "--output", tmp_path, *args)
    lines = error_line(err)
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_bad_files_give_one_line(converted, tmp_path):
    """(Images of any size and 16-bit images are restored: tests/test_eval.py.)"""
    big = tmp_path / "big.png"
    write_bgr(big, skdata.coffee()[:64, :80])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    foreign = tmp_path / "foreign.ckpt"
    foreign.write_text("hello")
    cases = [
        (converted, broken, "broken.png: cannot decode image"),
        (foreign, big, "foreign.ckpt: not a readable checkpoint"),
        (tmp_path / "missing.ckpt", big, "missing.ckpt: no such checkpoint file"),
    ]
    for ckpt, image, message in cases:
        code, _, err = run("eval.py", "--ckpt_path", ckpt, "--task", "sr_x2", "--input", image,
                           "--output", tmp_path / "out")
        lines = error_line(err)
        assert code == 2 and any(message in ln for ln in lines) and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_export_mindir_runs_like_the_cell(converted, tmp_path):
    import mindspore as ms
    from src.checkpoint.loader import load_model

    code, _, err = run("export.py", "--ckpt_path", converted, "--task", "sr_x2", "--batch_size", "2",
                       "--file_name", tmp_path / "ipt_sr_x2_b2")
    assert code == 0, err
    graph = ms.nn.GraphCell(ms.load(str(tmp_path / "ipt_sr_x2_b2.mindir")))
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 48, 48)).astype(np.float32)
    ipt, _ = load_model(converted)
    np.testing.assert_allclose(graph(ms.Tensor(x)).asnumpy(), ipt.task_net("sr_x2")(ms.Tensor(x)).asnumpy(),
                               atol=1e-4)


def test_unavailable_device_target_is_one_clear_error(converted, photos, tmp_path):
    import mindspore as ms
    if ms.device_context.gpu.is_available():
        pytest.skip("this machine has a usable GPU build of MindSpore")
    code, _, err = run("eval.py", "--ckpt_path", converted, "--task", "sr_x2", "--input", photos,
                       "--output", tmp_path / "out", "--device_target", "GPU")
    ours = [ln for ln in error_line(err) if ln.startswith("error:")]
    assert code == 2 and len(ours) == 1 and "device_target GPU: MindSpore" in ours[0], err
    assert "cannot use GPU here" in ours[0] and "it can use CPU" in ours[0], err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
