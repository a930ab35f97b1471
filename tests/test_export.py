"""export.py and its sidecar: MindIR and ONNX files that run like the Cell, describe themselves, and refuse bad use."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import mindspore as ms
import numpy as np
import pytest

from src.checkpoint.loader import load_model, save_checkpoint
from src.errors import CheckpointError, ConfigError
from src.exported import SIDECAR_KEYS, load_exported, read_model_io, read_sidecar, sidecar_path, write_sidecar
from src.models.ipt import IPT
from src.models.layers import use_onnx_ops

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def run_export(*args):
    proc = subprocess.run([sys.executable, "export.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stderr


def user_lines(stderr):
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[WARNING]")]


def tiles(batch, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, 3, 48, 48)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The real sr_x3 fixture (official PyTorch file, out_proj bias) exported to MindIR and ONNX by the CLI."""
    d = tmp_path_factory.mktemp("export")
    ckpt = FIXTURES / "ipt_tiny_sr_x3_outbias_zip.pt"
    for fmt in ("MINDIR", "ONNX"):
        code, err = run_export("--ckpt_path", ckpt, "--num_heads", 3, "--batch_size", 2, "--file_format", fmt,
                               "--file_name", d / "x3")
        assert code == 0, err
    ipt, _ = load_model(ckpt, num_heads=3)
    return {"mindir": d / "x3.mindir", "onnx": d / "x3.onnx", "net": ipt.task_net("sr_x3"), "ckpt": ckpt}


def test_mindir_of_a_real_fixture_runs_like_the_cell(exported):
    run_batch, info = load_exported(exported["mindir"])
    x = tiles(2)
    np.testing.assert_allclose(run_batch(x), exported["net"](ms.Tensor(x)).asnumpy(), atol=1e-4)
    assert info["task"] == "sr_x3" and info["scale"] == 3 and info["batch_size"] == 2


def test_onnx_of_a_real_fixture_runs_in_onnxruntime_like_the_cell(exported):
    run_batch, info = load_exported(exported["onnx"])
    x = tiles(2, seed=1)
    out = run_batch(x)
    ref = exported["net"](ms.Tensor(x)).asnumpy()
    assert out.shape == (2, 3, 144, 144)
    # onnxruntime's own kernels (different summation order): measured max 2e-4 on 0..255
    np.testing.assert_allclose(out, ref, atol=2e-3)
    assert info["file_format"] == "ONNX" and info["inputs"][0]["name"] == "x"


@pytest.mark.parametrize("task", ["sr_x2", "denoise_30"])
def test_tiny_mindir_matches_cell_on_0_255(task, tiny_config, tmp_path):
    from export import export_task
    ipt = IPT(tiny_config(tasks=("sr_x2", "denoise_30")))
    target = export_task(ipt, task, 3, tmp_path / task)
    graph = ms.nn.GraphCell(ms.load(str(target)))
    x = tiles(3, seed=2)
    x[0] = 0.0
    x[1] = 255.0
    np.testing.assert_allclose(graph(ms.Tensor(x)).asnumpy(), ipt.task_net(task)(ms.Tensor(x)).asnumpy(), atol=1e-4)


def test_onnx_ops_compute_exactly_the_default_graph(tiny_config):
    """The export-only formulation (transpose, pair kernel size, broadcast Add) gives the same float32 values, and the
    default graph is not switched."""
    cfg = tiny_config(tasks=("sr_x4",))
    ipt = IPT(cfg)
    x = ms.Tensor(tiles(2, seed=3))
    default = ipt.task_net("sr_x4")(x).asnumpy()
    twin = IPT(cfg)
    ms.load_param_into_net(twin, {p.name: p for p in ipt.get_parameters()})
    net = twin.task_net("sr_x4")
    assert use_onnx_ops(net) > 0
    np.testing.assert_array_equal(net(x).asnumpy(), default)
    assert not any(getattr(c, "onnx_ops", False) for _, c in ipt.cells_and_names())


def test_sidecar_is_complete_and_its_shapes_are_the_files(exported):
    for key in ("mindir", "onnx"):
        path = exported[key]
        info = json.loads(sidecar_path(path).read_text())
        assert set(SIDECAR_KEYS) <= set(info)
        inputs, outputs = read_model_io(path)
        assert info["inputs"] == inputs and info["outputs"] == outputs
        assert inputs[0]["shape"] == [2, 3, 48, 48] and outputs[0]["shape"] == [2, 3, 144, 144]
        assert info["file"] == path.name and info["tile_size"] == 48 and info["value_range"] == [0.0, 255.0]
        assert info["dtype"] == "float32" and info["compute_dtype"] == "float32"
        assert set(info["tiling"]) == {"default", "fast", "paper"} and info["tiling"]["fast"]["ramp"] == 36
        assert info["checkpoint"]["path"] == str(exported["ckpt"]) and len(info["checkpoint"]["sha256"]) == 64
        assert info["project_version"]
    graph = ms.nn.GraphCell(ms.load(str(exported["mindir"])))
    assert list(graph(ms.Tensor(tiles(2))).shape) == outputs[0]["shape"]


def test_missing_sidecar_is_one_clear_error(exported, tmp_path):
    lone = tmp_path / "lone.mindir"
    lone.write_bytes(exported["mindir"].read_bytes())
    with pytest.raises(CheckpointError, match=r"lone.mindir: its sidecar lone.mindir.json is missing"):
        read_sidecar(lone)


def test_sidecar_that_disagrees_with_the_file_is_refused(exported, tmp_path):
    copy = tmp_path / "copy.mindir"
    copy.write_bytes(exported["mindir"].read_bytes())
    info = json.loads(sidecar_path(exported["mindir"]).read_text())
    info["outputs"][0]["shape"] = [2, 3, 96, 96]
    write_sidecar(copy, info)
    with pytest.raises(CheckpointError, match=r"output shapes \[\[2, 3, 96, 96\]\] disagree with the model file's "
                                              r"\[\[2, 3, 144, 144\]\]"):
        read_sidecar(copy)
    del info["tiling"]
    sidecar_path(copy).write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \['tiling'\]"):
        read_sidecar(copy)


def test_batch_size_the_model_was_not_exported_with_is_refused(exported):
    with pytest.raises(ConfigError, match="batch size 4: x3.mindir was exported with batch size 2"):
        read_sidecar(exported["mindir"], batch_size=4)
    run_batch, _ = load_exported(exported["mindir"])
    with pytest.raises(ConfigError, match=r"input batch of shape \(4, 3, 48, 48\); x3.mindir takes \(2, 3, 48, 48\)"):
        run_batch(tiles(4))


def test_air_without_ascend_and_unknown_format_are_clear_errors(tmp_path):
    ckpt = FIXTURES / "ipt_tiny_sr_x4_legacy.pt"
    code, err = run_export("--ckpt_path", ckpt, "--num_heads", 3, "--file_format", "AIR", "--file_name", tmp_path / "a")
    assert code == 2 and user_lines(err)[-1].startswith("error: file_format AIR needs --device_target Ascend"), err
    code, err = run_export("--ckpt_path", ckpt, "--num_heads", 3, "--file_format", "TFLITE")
    assert code == 2 and "file_format 'TFLITE'; expected one of MINDIR, ONNX, AIR" in user_lines(err)[-1], err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, task", [("ipt_tiny_pretrain_zip", "denoise_50"), ("ipt_tiny_sr_x4_legacy", "sr_x4")])
def test_mindir_of_the_other_real_fixtures_matches_the_cell(name, task, tmp_path):
    from export import export_task
    ipt, _ = load_model(FIXTURES / f"{name}.pt", task=task, num_heads=3)
    graph = ms.nn.GraphCell(ms.load(str(export_task(ipt, task, 1, tmp_path / name))))
    x = tiles(1, seed=4)
    np.testing.assert_allclose(graph(ms.Tensor(x)).asnumpy(), ipt.task_net(task)(ms.Tensor(x)).asnumpy(), atol=1e-4)


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_whole_image_through_the_exported_mindir_equals_the_cell(exported, mode):
    """The same photo restored with src.tiler through the exported MindIR and through the Cell."""
    from skimage import data as skdata
    from src.data.image_io import to_uint8
    from src.tiler import restore
    image = skdata.astronaut()[120:181, 200:253].astype(np.float32)  # 61x53: odd, several tiles
    run_batch, info = load_exported(exported["mindir"])
    net = exported["net"]
    via_file = restore(image, run_batch, info["scale"], info["tile_size"], info["batch_size"], mode)
    via_cell = restore(image, lambda b: net(ms.Tensor(b)).asnumpy(), 3, 48, 2, mode)
    assert via_file.shape == (183, 159, 3)
    np.testing.assert_allclose(via_file, via_cell, rtol=0, atol=1e-4)
    assert np.mean(to_uint8(via_file) != to_uint8(via_cell)) < 1e-3


def test_float16_export_describes_itself(tmp_path):
    """--compute_dtype float16: fp16 matmuls/convs inside, the file's input and output stay float32."""
    code, err = run_export("--ckpt_path", FIXTURES / "ipt_tiny_sr_x4_legacy.pt", "--num_heads", 3, "--batch_size", 1,
                           "--compute_dtype", "float16", "--file_name", tmp_path / "fp16")
    assert code == 0, err
    info = read_sidecar(tmp_path / "fp16.mindir")
    assert info["compute_dtype"] == "float16" and info["dtype"] == "float32" and info["graph_form"] == "native"
    assert info["outputs"][0] == {**info["outputs"][0], "shape": [1, 3, 192, 192], "dtype": "float32"}
    # restore --compare_ckpt compares with a Cell in the export's own dtype, at the default tolerance
    from skimage import data as skdata
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.ascontiguousarray(skdata.coffee()[100:150, 200:260][..., ::-1]))
    ours = tmp_path / "ours.ckpt"
    save_checkpoint(load_model(FIXTURES / "ipt_tiny_sr_x4_legacy.pt", num_heads=3)[0], ours)
    proc = subprocess.run([sys.executable, "-m", "src.exported", "restore", tmp_path / "fp16.mindir", "--input", image,
                           "--output", tmp_path / "out.png", "--compare_ckpt", ours], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "largest difference to the Cell" in proc.stdout, proc.stderr


def test_graph_form_of_the_export(tmp_path):
    """MindIR is the native form by default (MindSpore's LayerNorm and Softmax); --graph_form cpu writes the CPU-tuned
    cells; each sidecar says which, and each file runs like its Cell."""
    from src.exported import op_inventory
    ckpt = FIXTURES / "ipt_tiny_sr_x4_legacy.pt"
    for form in ("native", "cpu"):
        flags = [] if form == "native" else ["--graph_form", "cpu"]
        code, err = run_export("--ckpt_path", ckpt, "--num_heads", 3, "--batch_size", 2, "--file_name",
                               tmp_path / form, *flags)
        assert code == 0, err
        run_batch, info = load_exported(tmp_path / f"{form}.mindir")
        assert info["graph_form"] == form
        counts, constant_fed = op_inventory(tmp_path / f"{form}.mindir")
        assert (counts["LayerNorm"] > 0) == (form == "native") and bool(constant_fed) == (form == "cpu")
        cell = load_model(ckpt, num_heads=3, graph_form=form)[0].task_net("sr_x4")
        x = tiles(2, seed=5)
        np.testing.assert_allclose(run_batch(x), cell(ms.Tensor(x)).asnumpy(), atol=1e-4)


@pytest.mark.parametrize("file_format", ["ONNX", "MINDIR"])
def test_export_keeps_the_modes_of_the_users_folders(file_format, tmp_path):
    """MindSpore 2.10's ONNX exporter sets the mode of the folder it writes into to 700: the export writes into a
    private folder and moves the file, so the target folder keeps its mode and nothing else is left in it."""
    target = tmp_path / "models"
    target.mkdir()
    target.chmod(0o755)
    code, err = run_export("--ckpt_path", FIXTURES / "ipt_tiny_sr_x4_legacy.pt", "--num_heads", 3, "--batch_size", 1,
                           "--file_format", file_format, "--file_name", target / "m")
    assert code == 0, err
    assert (target.stat().st_mode & 0o777) == 0o755
    suffix = ".onnx" if file_format == "ONNX" else ".mindir"
    assert sorted(p.name for p in target.iterdir()) == [f"m{suffix}", f"m{suffix}.json"]


def test_restore_command_checks_the_file_against_the_cell(exported, tmp_path):
    """``python -m src.exported restore``: an image through the exported file, compared with the checkpoint's Cell;
    against another checkpoint's Cell (other weights) it fails with one line."""
    from skimage import data as skdata
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.ascontiguousarray(skdata.chelsea()[60:121, 100:153][..., ::-1]))

    def restore(*extra):
        proc = subprocess.run([sys.executable, "-m", "src.exported", "restore", exported["mindir"], "--input", image,
                               "--output", tmp_path / "out.png", *map(str, extra)], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        return proc.returncode, proc.stdout, proc.stderr

    ours = tmp_path / "ours.ckpt"  # our checkpoints carry num_heads; the official file would need --num_heads
    ipt, _ = load_model(exported["ckpt"], num_heads=3)
    save_checkpoint(ipt, ours)
    code, out, err = restore("--compare_ckpt", ours)
    assert code == 0, err
    assert "largest difference to the Cell" in out
    assert cv2.imread(str(tmp_path / "out.png")).shape == (183, 159, 3)
    other = tmp_path / "other.ckpt"
    for p in ipt.get_parameters():
        if p.name.endswith("tail.conv.bias"):
            p.set_data(ms.Tensor(p.asnumpy() + 5.0))
    save_checkpoint(ipt, other)
    code, _, err = restore("--compare_ckpt", other)
    lines = user_lines(err)
    assert code == 2 and "differs from the Cell of" in lines[-1], err
