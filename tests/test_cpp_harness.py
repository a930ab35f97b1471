"""The C++ harness (ascend310_infer/) against the Python side, in real processes.

- Plans: ``ipt_tile_plan`` prints the same JSON as ``src.tiler`` for many sizes, scales and both modes.
- Stitching: Python restores an image through the real (tiny, exported) MindIR with ``src.tiler`` and records every
  batch the model saw and returned; ``ipt_infer_replay`` (the harness with recorded outputs in place of the runtime)
  tiles the same PNG itself, checks each input batch is bit-identical to the recorded one, stitches the recorded
  outputs and writes its PNG and float32 result: the two PNG files must be byte-identical and the float32 results
  bit-identical (both modes, odd sizes).
- Metrics: ``ipt_score`` equals ``src.metrics`` to 1e-6 dB (SSIM to 1e-9).
- Build: a missing SDK is one clear line (build.sh exit 3), the rest is still built; the SDK part takes MindSpore Lite
  only, its headers as system includes (CMake configured on a stand-in SDK folder: the SDK cannot be installed here).
- Precision mode: an unknown MindSpore Lite precision mode is one line naming the five, before anything is read or
  written.
The C++ library itself is unit-tested by ctest (scripts/run_tests.sh); the binaries are built by the fixture if absent.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from src import metrics
from src.data.image_io import read_rgb, to_uint8, write_png
from src.exported import load_exported, record_batches, write_sidecar
from src.tiler import make_plan, restore

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "ascend310_infer" / "build"
FIXTURES = ROOT / "tests" / "fixtures"


def run(*args, timeout=300):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


PLAN_CASES = [(h, w, s) for (h, w) in [(48, 48), (1, 1), (1, 70), (20, 3), (47, 49), (49, 47), (57, 86), (61, 130),
                                       (100, 61), (96, 97), (256, 256), (321, 481)] for s in (1, 2, 3, 4)]


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_cpp_plan_dumps_equal_python(cpp_tools, mode):
    for h, w, s in PLAN_CASES:
        code, out, err = run(cpp_tools["ipt_tile_plan"], "--height", h, "--width", w, "--scale", s, "--mode", mode)
        assert code == 0, err
        assert json.loads(out) == make_plan(h, w, s, 48, mode).to_json_dict(), f"{mode} {h}x{w} x{s}"
    for p, (h, w) in [(16, (9, 300)), (16, (17, 100)), (32, (70, 33))]:
        code, out, err = run(cpp_tools["ipt_tile_plan"], "--height", h, "--width", w, "--scale", 2, "--mode", mode,
                             "--patch_size", p)
        assert code == 0 and json.loads(out) == make_plan(h, w, 2, p, mode).to_json_dict(), f"P={p} {h}x{w}"


def test_cpp_plan_dump_equals_the_python_cli_and_errors_alike(cpp_tools):
    args = ["plan", "--height", "61", "--width", "130", "--scale", "3", "--mode", "paper"]
    py = subprocess.run([sys.executable, "-m", "src.tiler", *args], cwd=ROOT, capture_output=True, text=True)
    code, out, _ = run(cpp_tools["ipt_tile_plan"], *args[1:])
    assert py.returncode == 0 and code == 0 and json.loads(out) == json.loads(py.stdout)
    code, _, err = run(cpp_tools["ipt_tile_plan"], "--height", "0", "--width", "9", "--scale", "2")
    assert code == 2 and err.strip() == "error: height must be a positive integer, got 0"


@pytest.fixture(scope="module")
def tiny_mindir(tmp_path_factory):
    """The real sr_x3 fixture (official PyTorch file) exported to a batch-4 MindIR with its sidecar."""
    import export
    from src.checkpoint.loader import load_model
    d = tmp_path_factory.mktemp("mindir")
    ckpt = FIXTURES / "ipt_tiny_sr_x3_outbias_zip.pt"
    ipt, weights = load_model(ckpt, num_heads=3)
    target = export.export_task(ipt, "sr_x3", 4, d / "ipt_sr_x3_b4")
    write_sidecar(target, export.sidecar_info(target, ipt, "sr_x3", 4, "MINDIR", "float32", ckpt,
                                              weights.source_format))
    return target


@pytest.mark.parametrize("mode, size", [("fast", (61, 53)), ("paper", (61, 53)), ("fast", (30, 97)),
                                        ("paper", (100, 49))])
def test_cpp_stitching_of_real_mindir_outputs_is_byte_identical(cpp_tools, tiny_mindir, tmp_path, mode, size):
    h, w = size
    photo = skdata.astronaut()[100:100 + h, 150:150 + w]
    lr = tmp_path / "lr"
    write_png(lr / "astronaut.png", photo)
    run_batch, info = load_exported(tiny_mindir)
    record, calls = record_batches(run_batch, tmp_path / "tiles")
    image = read_rgb(lr / "astronaut.png").astype(np.float32)
    out = restore(image, record, info["scale"], info["tile_size"], info["batch_size"], mode)
    write_png(tmp_path / "py" / "astronaut.png", to_uint8(out))
    code, stdout, err = run(cpp_tools["ipt_infer_replay"], "--mindir_path", tiny_mindir, "--input_path", lr,
                            "--output_path", tmp_path / "cpp", "--tiles_dir", tmp_path / "tiles", "--tile_mode", mode,
                            "--device_type", "CPU", "--save_float", "true")
    assert code == 0, err + stdout
    cpp_float = np.fromfile(tmp_path / "cpp" / "astronaut.bin", np.float32).reshape(out.shape)
    np.testing.assert_array_equal(cpp_float, out)   # bit-identical float32 stitching, not only after rounding
    assert f"{len(calls)} batch(es)" in stdout and "NN inference cost average time" in stdout
    cpp_png = (tmp_path / "cpp" / "astronaut.png").read_bytes()
    py_png = (tmp_path / "py" / "astronaut.png").read_bytes()
    np.testing.assert_array_equal(read_rgb(tmp_path / "cpp" / "astronaut.png"), to_uint8(out))
    assert cpp_png == py_png


def test_documented_recording_is_what_the_replay_tool_reads(cpp_tools, tiny_mindir, tmp_path):
    """docs/export.md's way to record tiles for ipt_infer_replay: ``python -m src.exported restore ... --record_tiles
    DIR``; the replay of that recording writes the PNG the Python command wrote, byte for byte."""
    write_png(tmp_path / "lr" / "coffee.png", skdata.coffee()[200:259, 300:371])
    py = subprocess.run([sys.executable, "-m", "src.exported", "restore", str(tiny_mindir), "--input",
                         str(tmp_path / "lr" / "coffee.png"), "--output", str(tmp_path / "py" / "coffee.png"),
                         "--record_tiles", str(tmp_path / "tiles")], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
    assert py.returncode == 0, py.stderr
    code, stdout, err = run(cpp_tools["ipt_infer_replay"], "--mindir_path", tiny_mindir, "--input_path",
                            tmp_path / "lr" / "coffee.png", "--output_path", tmp_path / "cpp", "--tiles_dir",
                            tmp_path / "tiles", "--device_type", "CPU")
    assert code == 0, err + stdout
    assert (tmp_path / "cpp" / "coffee.png").read_bytes() == (tmp_path / "py" / "coffee.png").read_bytes()
    again = subprocess.run([sys.executable, "-m", "src.exported", "restore", str(tiny_mindir), "--input",
                            str(tmp_path / "lr" / "coffee.png"), "--output", str(tmp_path / "py2.png"),
                            "--record_tiles", str(tmp_path / "tiles")], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'tiles'}: holds recorded batches already (in_*.bin); give a new or empty folder")


@pytest.mark.parametrize("tool, first_line", [
    ("ipt_tile_plan", "usage: ipt_tile_plan --height H --width W --scale S"),
    ("ipt_score", "usage: ipt_score --sr_path DIR --gt_path DIR --scale 1..4"),
    ("ipt_infer_replay", "usage: "),
])
def test_every_tool_has_a_usage_text(cpp_tools, tool, first_line):
    for flag in ("--help", "-h"):
        code, out, err = run(cpp_tools[tool], flag)
        assert code == 0 and out.startswith(first_line) and not err, (tool, flag, out, err)


def test_cpp_metrics_equal_python(cpp_tools, tmp_path):
    rng = np.random.default_rng(0)
    hr = skdata.chelsea()[:90, :120]
    sr_dir, hr_dir = tmp_path / "sr", tmp_path / "hr"
    pairs = {"noisy": np.clip(hr + rng.normal(0, 6, hr.shape), 0, 255).astype(np.uint8),
             "shifted": np.roll(hr, 1, axis=1), "same": hr.copy()}
    for name, sr in pairs.items():
        write_png(sr_dir / f"{name}.png", sr)
        write_png(hr_dir / f"{name}.png", hr)
    for scale in (1, 3):
        code, out, err = run(cpp_tools["ipt_score"], "--sr_path", sr_dir, "--gt_path", hr_dir, "--scale", scale)
        assert code == 0, err
        lines = {Path(ln.split()[0]).stem: ln.split() for ln in out.splitlines() if not ln.startswith("mean")}
        for name, sr in pairs.items():
            want = metrics.score(sr, hr, metrics.border_for(scale))
            got = dict(zip(lines[name][1::2], map(float, lines[name][2::2])))
            for key in ("psnr_y", "psnr_rgb"):
                if np.isinf(want[key]):
                    assert np.isinf(got[key])
                else:
                    assert abs(got[key] - want[key]) < 1e-6, (name, key, got[key], want[key])
            assert abs(got["ssim_y"] - want["ssim_y"]) < 1e-9, (name, got["ssim_y"], want["ssim_y"])


def test_build_without_sdk_says_what_is_missing(cpp_tools, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("MS_LITE_HOME", None)
    proc = subprocess.run(["bash", str(ROOT / "ascend310_infer" / "build.sh")], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "build.sh: error: no MindSpore Lite SDK, ipt_infer not built: set MS_LITE_HOME to an unpacked "
        "mindspore-lite-<version>-linux-<arch> (runtime/include/api/model.h, runtime/lib/libmindspore-lite.so); "
        "the library, tools and tests were built"]
    assert (BUILD / "ipt_infer_replay").exists()
    proc = subprocess.run(["bash", str(ROOT / "ascend310_infer" / "build.sh")], capture_output=True, text=True,
                          env={**env, "MS_LITE_HOME": str(tmp_path)}, timeout=900)
    assert proc.returncode == 2 and f"MS_LITE_HOME={tmp_path} is not a MindSpore Lite package" in proc.stderr


def test_sdk_part_takes_lite_only_with_its_headers_as_system_includes(tmp_path):
    """CMake's SDK branch, configured for real on stand-in SDK folders (file layout only: no SDK installs here)."""
    def configure(sdk):
        return subprocess.run(["cmake", "-S", str(ROOT / "ascend310_infer"), "-B", str(tmp_path / "build" / sdk.name),
                               f"-DMINDSPORE_PATH={sdk}"], capture_output=True, text=True, timeout=300)

    framework = tmp_path / "framework"    # MindSpore's own C++ API layout (libmindspore.so): no longer taken
    (framework / "include" / "api").mkdir(parents=True)
    (framework / "lib").mkdir()
    (framework / "include" / "api" / "model.h").write_text("")
    (framework / "lib" / "libmindspore.so").write_text("")
    proc = configure(framework)
    assert proc.returncode != 0
    assert f"MINDSPORE_PATH={framework} is not a MindSpore Lite runtime: it needs lib/libmindspore-lite.so and " \
           "include/api/model.h" in " ".join(proc.stderr.split())
    lite = tmp_path / "runtime"           # $MS_LITE_HOME/runtime
    (lite / "include" / "api").mkdir(parents=True)
    (lite / "lib").mkdir()
    (lite / "include" / "api" / "model.h").write_text("")
    (lite / "lib" / "libmindspore-lite.so").write_text("")
    proc = configure(lite)
    assert proc.returncode == 0, proc.stderr
    flags = (tmp_path / "build" / "runtime" / "CMakeFiles" / "ipt_infer.dir" / "flags.make").read_text()
    includes = next(ln for ln in flags.splitlines() if ln.startswith("CXX_INCLUDES"))
    assert f"-isystem {lite} -isystem {lite / 'include'}" in includes and f"-I{lite}" not in includes
    assert "ENABLE_LITE" not in flags


def test_cpp_harness_unknown_precision_mode_is_one_line_before_anything(cpp_tools, tiny_mindir, tmp_path):
    five = "enforce_fp32, preferred_fp32, enforce_fp16, enforce_origin or preferred_optimal"
    for model in (tiny_mindir, tmp_path / "absent.mindir"):   # checked before the model or its sidecar is read
        code, stdout, err = run(cpp_tools["ipt_infer_replay"], "--mindir_path", model, "--input_path", tmp_path / "lr",
                                "--output_path", tmp_path / "out", "--tiles_dir", tmp_path / "tiles",
                                "--device_type", "Ascend", "--precision_mode", "must_keep_origin_dtype")
        assert code == 2 and stdout == ""
        assert err.splitlines() == [f"error: --precision_mode 'must_keep_origin_dtype'; MindSpore Lite's Ascend "
                                    f"precision modes are {five}"]
    code, _, err = run(cpp_tools["ipt_infer_replay"], "--mindir_path", tiny_mindir, "--input_path", tmp_path / "lr",
                       "--output_path", tmp_path / "out", "--tiles_dir", tmp_path / "tiles", "--device_type", "CPU",
                       "--precision_mode", "enforce_fp32")
    assert code == 2 and err.splitlines() == ["error: --precision_mode enforce_fp32 is for --device_type Ascend "
                                              "(MindSpore Lite's AscendDeviceInfo); this run's device type is CPU"]
    assert not (tmp_path / "out").exists()


def copy_model(src, folder, sidecar_edit=None):
    """A copy of the MindIR (and its sidecar, edited by ``sidecar_edit(dict)`` unless that returns False)."""
    import shutil
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / src.name
    shutil.copyfile(src, target)
    info = json.loads(Path(f"{src}.json").read_text())
    if sidecar_edit is None or sidecar_edit(info) is not False:
        Path(f"{target}.json").write_text(json.dumps(info))
    return target


def test_cpp_harness_bad_input_is_one_clear_line_each(cpp_tools, tiny_mindir, tmp_path):
    lr = tmp_path / "lr"
    write_png(lr / "a.png", skdata.astronaut()[:50, :50])
    (lr / "broken.png").write_bytes(b"not an image")
    ok, jpeg = cv2.imencode(".jpg", skdata.astronaut())
    (lr / "cut.jpg").write_bytes(jpeg.tobytes()[:jpeg.size // 2])
    base = ["--input_path", lr, "--tiles_dir", tmp_path / "tiles", "--device_type", "CPU"]

    def replay(model, *extra, out="out"):
        code, stdout, err = run(cpp_tools["ipt_infer_replay"], "--mindir_path", model, "--output_path", tmp_path / out,
                                *base, *extra)
        return code, [ln for ln in err.splitlines() if ln.strip()]

    lone = copy_model(tiny_mindir, tmp_path / "lone", lambda info: False)
    code, err = replay(lone)
    assert code == 2 and err == [f"error: {lone}: its sidecar ipt_sr_x3_b4.mindir.json is missing; export.py writes "
                                 "it beside the model (copy it along, or re-export)"]
    bad = copy_model(tiny_mindir, tmp_path / "bad", lambda info: info["outputs"][0].update(shape=[4, 3, 96, 96]))
    code, err = replay(bad)
    assert code == 2 and len(err) == 1 and "outputs [4, 3, 96, 96] disagree with scale/tile_size" in err[0]
    code, err = replay(tiny_mindir, "--batch_size", "8")
    assert code == 2 and err == [f"error: --batch_size 8: {tiny_mindir} was exported with batch size 4 (input "
                                 "[4, 3, 48, 48]); use 4 or re-export with --batch_size 8"]
    assert not (tmp_path / "out").exists()
    # an unreadable image: one line naming it, the good image is still restored (recorded by Python first)
    run_batch, info = load_exported(tiny_mindir)
    record, _ = record_batches(run_batch, tmp_path / "tiles")
    restore(read_rgb(lr / "a.png").astype(np.float32), record, 3, 48, 4, "fast")
    code, err = replay(tiny_mindir)
    assert code == 1 and err[0] == f"error: {lr / 'broken.png'}: cannot decode image (corrupt or not an image)"
    assert err[1] == f"error: {lr / 'cut.jpg'}: truncated JPEG (the file ends before its image data does)"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "test_perform_static.txt"]


def test_python_sidecar_check_cli(tiny_mindir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "src.exported", "check", str(tiny_mindir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "sidecar agrees with the file" in proc.stdout, proc.stderr
    bad = copy_model(tiny_mindir, tmp_path / "bad", lambda info: info["inputs"][0].update(shape=[8, 3, 48, 48]))
    proc = subprocess.run([sys.executable, "-m", "src.exported", "check", str(bad)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "input shapes [[8, 3, 48, 48]] disagree with the model file's [[4, 3, 48, 48]]" \
        in proc.stderr.strip().splitlines()[-1]


def test_run_infer_310_checks_each_stage(cpp_tools, tiny_mindir, tmp_path):
    script = ROOT / "scripts" / "run_infer_310.sh"
    lr = tmp_path / "lr"
    write_png(lr / "a.png", skdata.astronaut()[:50, :50])
    env = {**os.environ, "PYTHON": sys.executable, "WORK_DIR": str(tmp_path / "work")}
    env.pop("MS_LITE_HOME", None)
    lone = copy_model(tiny_mindir, tmp_path / "lone", lambda info: False)
    proc = subprocess.run(["bash", str(script), str(lone), str(lr)], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and proc.stderr.strip() == \
        f"error: {lone}: its sidecar ipt_sr_x3_b4.mindir.json is missing; export.py writes it beside the model"
    proc = subprocess.run(["bash", str(script), str(tiny_mindir), str(lr), "", "x"], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 1 and "DEVICE_ID 'x': expected a non-negative integer" in proc.stderr
    # no SDK on this machine: stage 1 fails, with build.sh's line, and nothing after it runs
    proc = subprocess.run(["bash", str(script), str(tiny_mindir), str(lr)], capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode == 1 and "[1/4] compile_app" in proc.stdout and "[2/4]" not in proc.stdout
    assert proc.stderr.startswith("compile_app failed; last lines of") and "no MindSpore Lite SDK" in proc.stderr
