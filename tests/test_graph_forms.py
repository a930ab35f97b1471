"""The two graph forms (``src/models/forms.py``): what their exported graphs contain, how they behave where matrix
units run in float16, and the settings that choose them.

The float64 oracle checks of both forms (outputs and every parameter's gradient) are in test_checkpoint.py.
"""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn, ops
from skimage import data as skdata

from src.errors import ConfigError
from src.exported import kernel_count, op_inventory
from src.models.forms import check_compute_dtype, resolve_graph_form
from src.models.ipt import IPT, IPTConfig

ROOT = Path(__file__).resolve().parents[1]
# The official architecture (12 + 12 layers, 12 heads, 256 tokens, six tails) at 4 feature channels: the same nodes
# as the official size (the op inventory does not depend on widths) in a file of a few MB.
NARROW_OFFICIAL = IPTConfig(tasks=("sr_x2",), n_feats=4)


def inventory(form, tmp_path, batch=8, cfg=NARROW_OFFICIAL):
    from export import export_task
    path = export_task(IPT(cfg, graph_form=form), "sr_x2", batch, tmp_path / f"{form}_b{batch}")
    return op_inventory(path)


@pytest.fixture(scope="module")
def inventories(tmp_path_factory):
    d = tmp_path_factory.mktemp("inventory")
    return {form: inventory(form, d) for form in ("native", "cpu")}


def test_native_mindir_has_the_papers_ops_and_no_reduction_by_matmul(inventories):
    counts, constant_fed = inventories["native"]
    layers, attentions = 12 + 12, 12 + 2 * 12
    assert counts["LayerNorm"] == 2 * 12 + 3 * 12 == 60
    assert counts["Softmax"] == attentions == 36
    # projections: linear encoding, per encoder layer in_proj + out_proj + FFN (4), per decoder layer two
    # in-projection blocks per attention + two out_proj + FFN (8), MLP head (2); two products per attention
    assert counts["MatMul"] == 1 + 4 * 12 + 8 * 12 + 2 == 147
    assert counts["BatchMatMul"] == 2 * attentions
    assert counts["Gather"] == 0 and constant_fed == []
    assert not {"Rsqrt", "ReduceSum", "ReduceMean"} & set(counts)  # no hand-made statistics
    assert layers == 24


def test_cpu_form_inventory_shows_what_it_trades(inventories):
    """The cpu form takes LayerNorm's statistics by MatMul (two constant-fed per norm) and moves heads by gathers at
    batch > 1; the native form needs at most two thirds of its kernels. Counts are printed for benchmarks/README.md."""
    native, cpu = inventories["native"][0], inventories["cpu"][0]
    assert cpu["LayerNorm"] == 0 and len(inventories["cpu"][1]) == 2 * 60 and cpu["Gather"] == 4 * 36
    ratio = kernel_count(native) / kernel_count(cpu)
    print(f"\nkernels per batch-8 forward: native {kernel_count(native)}, cpu {kernel_count(cpu)} "
          f"({ratio:.2f}); native {dict(sorted(native.items()))}; cpu {dict(sorted(cpu.items()))}")
    assert ratio <= 2 / 3


class CubeMatMul(nn.Cell):
    """A float32 MatMul or BatchMatMul as Ascend's Cube unit runs it in its default precision mode (and the 310
    always): operands rounded to float16, products accumulated in float32, the result rounded to float16."""

    def __init__(self, prim):
        super().__init__()
        self.prim = prim

    def construct(self, a, b):
        half = ms.float16
        a, b = ops.cast(ops.cast(a, half), ms.float32), ops.cast(ops.cast(b, half), ms.float32)
        return ops.cast(ops.cast(self.prim(a, b), half), ms.float32)


def emulate_cube(net):
    """Replace every MatMul/BatchMatMul primitive of ``net``'s cells by ``CubeMatMul``; returns how many."""
    replaced = 0
    for _, cell in list(net.cells_and_names()):
        for name, prim in list(cell._primitives.items()):  # pylint: disable=protected-access
            if isinstance(prim, (ops.MatMul, ops.BatchMatMul)):
                setattr(cell, name, CubeMatMul(prim))
                replaced += 1
    return replaced


def test_official_size_forms_agree_and_only_the_native_one_survives_a_float16_cube():
    """Official-size sr_x2 with random official-format weights on a real photo tile. Both forms give the same float32
    output; with every matrix product rounded as a float16 Cube rounds it, the native form stays within a fraction of
    a grey level, while the cpu form's LayerNorm statistics (MatMuls of squared deviations) lose the image: the reason
    the cpu form is kept off Ascend and GPU."""
    cfg = IPTConfig(tasks=("sr_x2",))
    tile = ms.Tensor(skdata.astronaut()[200:248, 200:248].transpose(2, 0, 1)[None].astype(np.float32))
    ms.set_seed(0)
    native = IPT(cfg, graph_form="native")
    cpu = IPT(cfg, graph_form="cpu")
    ms.load_param_into_net(cpu, {p.name: p for p in native.get_parameters()}, strict_load=True)
    errors = {}
    for form, ipt in (("native", native), ("cpu", cpu)):
        exact = ipt.task_net("sr_x2")(tile).asnumpy()
        if form == "native":
            reference = exact
        else:
            assert np.abs(exact - reference).max() < 2e-3 * np.abs(reference).max()
        net = ipt.task_net("sr_x2")
        assert emulate_cube(net) > 0
        errors[form] = np.abs(net(tile).asnumpy() - exact)
    print(f"\nfloat16-Cube emulation, official-size sr_x2, grey levels: native mean {errors['native'].mean():.3f} "
          f"max {errors['native'].max():.2f}; cpu mean {errors['cpu'].mean():.2f} max {errors['cpu'].max():.1f}")
    assert errors["native"].mean() < 1.0
    assert errors["cpu"].mean() > 10 * errors["native"].mean() and errors["cpu"].max() > 10


def test_auto_picks_native_on_devices_and_cpu_on_cpu():
    assert resolve_graph_form("auto", "CPU")[0] == "cpu"
    assert resolve_graph_form("auto", "CPU", "float16")[0] == "native"
    assert resolve_graph_form("auto", "Ascend")[0] == resolve_graph_form("auto", "GPU")[0] == "native"
    assert resolve_graph_form("native", "CPU")[0] == "native" and resolve_graph_form("cpu", "GPU")[0] == "cpu"
    assert check_compute_dtype("bfloat16", "Ascend", "native") == ms.bfloat16


@pytest.mark.parametrize("call, message", [
    (lambda: resolve_graph_form("fast", "CPU"), "graph_form 'fast'; expected one of auto, native, cpu"),
    (lambda: check_compute_dtype("float64", "CPU", "native"),
     "compute_dtype 'float64'; expected one of float32, float16, bfloat16"),
    (lambda: check_compute_dtype("bfloat16", "CPU", "native"), "bfloat16 on CPU: MindSpore 2.10's CPU kernels have no"),
    (lambda: check_compute_dtype("float16", "GPU", "cpu"), "float16 with graph_form cpu"),
    (lambda: IPT(NARROW_OFFICIAL, ms.float16, "cpu"), "the cpu graph form runs in float32 only"),
])
def test_bad_settings_are_config_errors(call, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        call()


@pytest.mark.parametrize("flags, message", [
    (["--graph_form", "fast"], "graph_form 'fast'; expected one of auto, native, cpu"),
    (["--compute_dtype", "bfloat16"], "compute_dtype bfloat16 on CPU"),
])
def test_entry_points_refuse_bad_settings_before_anything_runs(flags, message, tmp_path):
    """eval.py, export.py and train.py: one line, exit 2, nothing written."""
    ckpt = ROOT / "tests" / "fixtures" / "ipt_tiny_sr_x4_legacy.pt"
    photos = Path(skdata.__file__).parent  # scikit-image's own photos
    commands = {
        "eval.py": ["--ckpt_path", ckpt, "--num_heads", 3, "--input", photos / "chelsea.png", "--output",
                    tmp_path / "out"],
        "export.py": ["--ckpt_path", ckpt, "--num_heads", 3, "--file_name", tmp_path / "model"],
        "train.py": ["--task", "sr_x2", "--data.train_dir", photos, "--output_dir", tmp_path / "train"],
    }
    for script, args in commands.items():
        proc = subprocess.run([sys.executable, script, *map(str, args), *flags], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (script, proc.stderr)
    assert list(tmp_path.iterdir()) == []
