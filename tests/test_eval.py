"""eval.py as a user runs it (real processes, real files, the tiny official-format checkpoint): images of any size and
depth, benchmark folders of every layout, and bad input. Plus the benchmark-folder logic in-process."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from numpy_ipt import ipt_forward
from src.data.benchmark_sets import benchmark_pairs, noise_seed
from src.data.degradations import add_noise, bicubic_downscale, imresize
from src.data.image_io import read_rgb, to_float, to_uint8, to_uint16
from src.errors import ImageError
from src.metrics import score
from src.tiler import restore

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PRETRAIN = FIXTURES / "ipt_tiny_pretrain_zip.pt"
SCALES = [2, 3, 4, 1, 1, 1]


def run(*args):
    proc = subprocess.run([sys.executable, "eval.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def errors(stderr):
    return [ln for ln in stderr.splitlines() if "error" in ln.lower() and not ln.startswith("[WARNING]")]


def write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


@pytest.fixture(scope="module")
def oracle():
    data = np.load(FIXTURES / "ipt_tiny_pretrain_zip.npz")
    sd = {k: data[k] for k in data.files if k.split(".")[0] in ("head", "body", "tail", "sub_mean", "add_mean")}
    return lambda task_index: (lambda b: ipt_forward(sd, b.astype(np.float64), task_index, SCALES, 3)
                               .astype(np.float32))


TINY_ARGS = ("--ckpt_path", PRETRAIN, "--num_heads", "3")


def test_restore_folder_any_size_16bit_and_a_corrupt_file(tmp_path, oracle):
    inputs = tmp_path / "in"
    write_rgb(inputs / "coffee.png", skdata.coffee()[100:161, 200:275])     # 61x75: 4 tiles, odd sides
    write_rgb(inputs / "tiny.jpg", skdata.astronaut()[:20, :9])               # under one tile
    deep = (skdata.chelsea()[50:100, 60:112].astype(np.uint16) * 257 + 99)    # 16-bit, not a multiple of 257
    write_rgb(inputs / "deep.png", deep)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    out = tmp_path / "out"
    code, _, err = run(*TINY_ARGS, "--task", "sr_x2", "--input", inputs, "--output", out, "--save_npy",
                       "--tile_batch", "3")
    assert code == 2, err
    lines = errors(err)
    assert any("broken.png: cannot decode image" in ln for ln in lines), err
    assert "1 image(s) failed and were skipped (errors above): broken.png" in lines[-1]
    assert "graph compiled 1 time(s)" in err
    assert sorted(p.name for p in out.iterdir()) == ["coffee.npy", "coffee.png", "deep.npy", "deep.png",
                                                     "tiny.npy", "tiny.png"]
    for name in ("coffee", "tiny", "deep"):
        src = next(inputs.glob(f"{name}.*"))
        image = read_rgb(src, allow_16bit=True)
        y = np.load(out / f"{name}.npy")
        ref = restore(to_float(image), oracle(0), 2, tile_batch=3)
        assert y.shape == (2 * image.shape[0], 2 * image.shape[1], 3)
        assert np.abs(y - ref).max() < 1e-3
        png = cv2.imread(str(out / f"{name}.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
        if name == "deep":
            assert png.dtype == np.uint16
            np.testing.assert_array_equal(png, to_uint16(y))
        else:
            np.testing.assert_array_equal(png, to_uint8(y))
    # full precision in: the 16-bit input differs from its 8-bit rounding, and the output follows the 16-bit one
    eight = restore(np.rint(to_float(deep)), oracle(0), 2, tile_batch=3)
    assert np.abs(np.load(out / "deep.npy") - eight).max() > 1e-2


def make_sr_set(root, scale, with_lr=True, sizes=((100, 98), (75, 61))):
    photos = [skdata.astronaut()[50:, 80:], skdata.coffee()[30:, 40:]]
    for i, ((h, w), photo) in enumerate(zip(sizes, photos)):
        hr = np.ascontiguousarray(photo[:h, :w])
        write_rgb(root / "HR" / f"img{i}.png", hr)
        if with_lr:
            lr = bicubic_downscale(hr[:h // scale * scale, :w // scale * scale], scale).astype(np.uint8)
            write_rgb(root / "LR_bicubic" / f"X{scale}" / f"img{i}x{scale}.png", lr)
    return root


def test_sr_benchmark_paper_mode_metrics_json(tmp_path, oracle):
    data = tmp_path / "data"
    make_sr_set(data / "benchmark" / "Set2", 2)
    metrics = tmp_path / "m" / "metrics.json"
    out = tmp_path / "sr"
    code, stdout, err = run(*TINY_ARGS, "--task", "sr_x2", "--benchmark", data, "--tile_mode", "paper",
                            "--metrics_json", metrics, "--save_outputs", "true", "--output", out)
    assert code == 0, err
    doc = json.loads(metrics.read_text())
    assert set(doc) == {"task", "tile_mode", "images", "mean"}
    assert doc["task"] == "sr_x2" and doc["tile_mode"] == "paper"
    assert [im["name"] for im in doc["images"]] == ["img0", "img1"]
    for im in doc["images"]:
        pair = next(p for p in benchmark_pairs(data, "sr_x2") if p.name == im["name"])
        lr, hr = pair.load()
        sr = to_uint8(restore(lr, oracle(0), 2, mode="paper"))
        saved = cv2.imread(str(out / f"{im['name']}.png"))[..., ::-1]
        # float32 against the float64 oracle (~1e-4 apart): a value at a .5 boundary may round the other way
        off = np.abs(saved.astype(int) - sr)
        assert off.max() <= 1 and np.count_nonzero(off) <= 1e-3 * off.size
        expected = score(saved, hr, 2)
        for key in ("psnr_y", "psnr_rgb", "ssim_y"):
            assert im[key] == pytest.approx(expected[key], abs=1e-5)
    for key in ("psnr_y", "psnr_rgb", "ssim_y"):
        assert doc["mean"][key] == pytest.approx(np.mean([im[key] for im in doc["images"]]), abs=1e-5)
    table = stdout.splitlines()
    assert table[1].split() == ["image", "psnr_y", "psnr_rgb", "ssim_y"]
    assert table[-1].split()[0] == "mean" and float(table[-1].split()[1]) == pytest.approx(doc["mean"]["psnr_y"],
                                                                                             abs=1e-3)


def test_baseline_scores_what_one_has_without_ipt(tmp_path):
    """--baseline: bicubic for SR (MATLAB imresize of the LR input), the noisy input for denoising; checked here with
    skimage's resize-free path: the denoising baseline is the seeded noisy image itself, scored by src.metrics."""
    data = tmp_path / "clean"
    hr = write_rgb(data / "coffee.png", skdata.coffee()[60:110, 100:170])
    metrics = tmp_path / "dn.json"
    code, stdout, err = run(*TINY_ARGS, "--task", "denoise_30", "--benchmark", data, "--baseline", "true",
                            "--metrics_json", metrics)
    assert code == 0, err
    doc = json.loads(metrics.read_text())
    clean = read_rgb(hr)
    noisy = add_noise(clean, 30, np.random.default_rng(noise_seed("coffee.png", 30)))
    expected = score(to_uint8(noisy), clean, 0)
    assert doc["baseline"]["name"] == "noisy input"
    for key in ("psnr_y", "psnr_rgb", "ssim_y"):
        assert doc["images"][0]["baseline"][key] == pytest.approx(expected[key], abs=1e-5)
        assert doc["baseline"]["mean"][key] == pytest.approx(expected[key], abs=1e-5)
    gain = float(stdout.splitlines()[-1].split()[-1])
    assert gain == pytest.approx(doc["mean"]["psnr_y"] - expected["psnr_y"], abs=2e-3)

    sr_data = make_sr_set(tmp_path / "set", 2)
    code, stdout, err = run(*TINY_ARGS, "--task", "sr_x2", "--benchmark", sr_data, "--baseline", "true")
    assert code == 0, err
    assert "baseline: bicubic" in stdout and stdout.splitlines()[1].split()[-1] == "gain_y"
    lr, target = benchmark_pairs(sr_data, "sr_x2")[0].load()
    # bicubic x2 of a rounded bicubic /2: close to the original, far from the tiny random network
    bicubic = score(to_uint8(imresize(lr, *target.shape[:2])), target, 2)["psnr_y"]
    row = next(ln.split() for ln in stdout.splitlines() if ln.startswith("img0"))
    assert float(row[4]) == pytest.approx(bicubic, abs=1e-3) and bicubic > 25


def test_derain_flat_layout_with_self_ensemble(tmp_path, oracle):
    data = tmp_path / "Rain"
    clean = skdata.chelsea()[:60, :70]
    rainy = np.clip(clean.astype(int) + 40 * (np.arange(70) % 9 == 0)[:, None], 0, 255).astype(np.uint8)
    write_rgb(data / "rain-001.png", rainy)
    write_rgb(data / "norain-001.png", clean)
    metrics = tmp_path / "derain.json"
    code, stdout, err = run(*TINY_ARGS, "--task", "derain", "--benchmark", data, "--self_ensemble", "true",
                            "--metrics_json", metrics)
    assert code == 0, err
    doc = json.loads(metrics.read_text())
    assert doc["task"] == "derain" and doc["tile_mode"] == "fast" and doc["images"][0]["name"] == "rain-001"
    assert "graph compiled 1 time(s)" in err


def test_layout_errors_name_the_file(tmp_path):
    data = make_sr_set(tmp_path / "set", 2)
    (data / "LR_bicubic" / "X2" / "img1x2.png").unlink()
    code, _, err = run(*TINY_ARGS, "--task", "sr_x2", "--benchmark", data)
    assert code == 2 and f"img1.png: no LR image {data / 'LR_bicubic' / 'X2' / 'img1x2.png'}" in errors(err)[-1]
    derain = tmp_path / "Rain100L"
    write_rgb(derain / "rainy" / "rain-7.png", skdata.coffee()[:50, :50])
    code, _, err = run(*TINY_ARGS, "--task", "derain", "--benchmark", derain)
    assert code == 2 and f"rain-7.png: no ground truth {derain / 'norain-7.png'}" in errors(err)[-1]


def test_lr_hr_size_mismatch_is_named_with_both_sizes(tmp_path):
    data = make_sr_set(tmp_path / "set", 2)
    write_rgb(data / "LR_bicubic" / "X2" / "img0x2.png", skdata.coffee()[:40, :45])
    metrics = tmp_path / "m.json"
    code, stdout, err = run(*TINY_ARGS, "--task", "sr_x2", "--benchmark", data, "--metrics_json", metrics)
    assert code == 2
    assert any("img0x2.png: LR 45x40 does not match HR" in ln and "98x100 at scale 2 (expected LR 49x50)" in ln
               for ln in errors(err)), err
    assert "img1" in stdout and "img0" not in stdout          # the other image is still scored
    assert not metrics.exists()                              # no partial metrics file


def test_unwritable_output_folder(tmp_path):
    image = write_rgb(tmp_path / "a.png", skdata.coffee()[:50, :50])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(*TINY_ARGS, "--task", "sr_x2", "--input", image, "--output", blocker / "out")
    assert code == 2 and f"{blocker / 'out'}: the output folder is not writable" in errors(err)[-1], err


def test_truncated_6000x4000_jpeg_is_named_and_skipped(tmp_path):
    inputs = tmp_path / "in"
    photo = cv2.resize(skdata.astronaut(), (6000, 4000), interpolation=cv2.INTER_LINEAR)
    ok, jpeg = cv2.imencode(".jpg", photo)
    inputs.mkdir()
    (inputs / "big.jpg").write_bytes(jpeg.tobytes()[:jpeg.size * 2 // 3])
    write_rgb(inputs / "small.png", skdata.coffee()[:40, :30])
    out = tmp_path / "out"
    code, _, err = run(*TINY_ARGS, "--task", "sr_x2", "--input", inputs, "--output", out)
    assert code == 2, err
    lines = errors(err)
    assert f"{inputs / 'big.jpg'}: truncated JPEG (the file ends before its image data does) (skipped)" in lines[0]
    assert lines[-1].endswith("1 image(s) failed and were skipped (errors above): big.jpg")
    assert [p.name for p in out.iterdir()] == ["small.png"]


def test_output_beyond_available_memory_is_named_before_any_tile(tmp_path, monkeypatch, caplog):
    """In-process, with MemAvailable read from a stand-in for /proc/meminfo (the real file is read in the next
    test): the image whose output does not fit is named with the estimate, no tile of it runs, the others are
    restored."""
    import eval as eval_py
    from src import inference
    from src.checkpoint.loader import load_model
    from src.inference import Restorer
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:          100000 kB\nMemAvailable:     50000 kB\n")
    monkeypatch.setattr(inference, "MEMINFO", str(meminfo))
    assert inference.memory_available() == 50000 * 1024
    inputs = tmp_path / "in"
    write_rgb(inputs / "big.png", np.full((2000, 3000, 3), 128, np.uint8))
    write_rgb(inputs / "small.png", skdata.coffee()[:40, :30])
    ipt, _ = load_model(PRETRAIN, "sr_x2", 3)
    restorer = Restorer(ipt, "sr_x2", tile_batch=3)
    need = restorer.memory_needed(2000, 3000)
    assert 6000 * 4000 * 3 < need < 6000 * 4000 * 3 + 2**26            # the uint8 output and the tiler's band
    cfg = type("Cfg", (), {"input": str(inputs), "save_npy": True})
    with caplog.at_level("ERROR", logger="ipt"):
        failed = eval_py.restore_images(cfg, restorer, tmp_path / "out")
    assert failed == ["big.png"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{inputs / 'big.png'}: not enough memory to restore it: its 6000x4000 output needs about "
        f"{need / 2**30:.2f} GB more, and 0.05 GB is available (MemAvailable) (skipped)"]
    assert restorer.tiles_run == restorer.tiles_per_image(40, 30)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.npy", "small.png"]


def test_memory_available_reads_proc_meminfo(tmp_path, monkeypatch):
    from src import inference
    total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    assert 0 < inference.memory_available() <= total
    monkeypatch.setattr(inference, "MEMINFO", str(tmp_path / "missing"))
    assert inference.memory_available() is None


def test_output_that_is_a_file(tmp_path):
    """``--output photo_x2.png`` naming an existing file: the error says it is a file, not that it is unwritable."""
    image = write_rgb(tmp_path / "a.png", skdata.coffee()[:50, :50])
    existing = write_rgb(tmp_path / "photo_x2.png", skdata.coffee()[:20, :20])
    code, _, err = run(*TINY_ARGS, "--task", "sr_x2", "--input", image, "--output", existing)
    assert code == 2 and errors(err) == [f"error: {existing}: the output folder is an existing file; give a folder "
                                         "(the outputs are written into it)"], err


# --- benchmark folders in-process (real files, no network) ---------------------------------------------------------

def test_sr_hr_only_gets_matlab_bicubic_lr(tmp_path):
    data = make_sr_set(tmp_path / "Set", 3, with_lr=False, sizes=((100, 98), (61, 75)))
    pairs = benchmark_pairs(data, "sr_x3")
    lr, hr = pairs[0].load()
    assert hr.shape == (99, 96, 3) and lr.shape == (33, 32, 3)
    np.testing.assert_array_equal(lr, bicubic_downscale(hr, 3))


def test_sr_hr_cropped_to_lr_times_scale(tmp_path):
    data = make_sr_set(tmp_path / "Set", 4, sizes=((101, 98), (75, 61)))
    lr, hr = benchmark_pairs(data, "sr_x4")[0].load()
    assert lr.shape == (25, 24, 3) and hr.shape == (100, 96, 3)


def test_several_sets_under_benchmark_is_an_error(tmp_path):
    make_sr_set(tmp_path / "benchmark" / "A", 2)
    make_sr_set(tmp_path / "benchmark" / "B", 2)
    with pytest.raises(ImageError, match="several sets"):
        benchmark_pairs(tmp_path, "sr_x2")
    with pytest.raises(ImageError, match="no HR/ folder"):
        benchmark_pairs(tmp_path / "benchmark", "sr_x2")


def test_lr_without_hr_is_an_error(tmp_path):
    data = make_sr_set(tmp_path / "Set", 2)
    write_rgb(data / "LR_bicubic" / "X2" / "extrax2.png", skdata.coffee()[:20, :20])
    with pytest.raises(ImageError, match="extrax2.png: no ground truth"):
        benchmark_pairs(data, "sr_x2")


def test_denoise_noise_depends_on_the_name_only(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    img = skdata.astronaut()[:40, :50]
    write_rgb(a / "x.png", img)
    write_rgb(a / "y.png", skdata.coffee()[:40, :50])
    write_rgb(b / "x.png", img)
    first = {p.name: p.load() for p in benchmark_pairs(a, "denoise_50")}
    alone = benchmark_pairs(b, "denoise_50")[0].load()
    np.testing.assert_array_equal(first["x"][0], alone[0])
    noisy, clean = alone
    assert noisy.dtype == np.float32 and noisy.min() >= 0 and noisy.max() <= 255
    assert np.any(noisy != np.rint(noisy))                   # float, not rounded
    np.testing.assert_array_equal(noisy, add_noise(clean, 50, np.random.default_rng(noise_seed("x.png", 50))))
    assert 40 < np.std(noisy - clean) < 50                    # sigma 50, minus clipping
    assert noise_seed("x.png", 30) != noise_seed("x.png", 50)


def test_derain_prenet_layout(tmp_path):
    write_rgb(tmp_path / "rainy" / "rain-1.png", skdata.coffee()[:30, :30])
    write_rgb(tmp_path / "norain-1.png", skdata.coffee()[30:60, :30])
    write_rgb(tmp_path / "rainy" / "rain-2.png", skdata.coffee()[:30, :30])
    write_rgb(tmp_path / "norain-2.png", skdata.coffee()[:31, :30])
    pairs = benchmark_pairs(tmp_path, "derain")
    assert [p.name for p in pairs] == ["rain-1", "rain-2"]
    x, y = pairs[0].load()
    assert x.dtype == np.float32 and y.dtype == np.uint8
    with pytest.raises(ImageError, match=r"rain-2.png: 30x30 but its ground truth .*norain-2.png is 30x31"):
        pairs[1].load()
