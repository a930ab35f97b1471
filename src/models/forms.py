"""Graph forms and compute dtypes: which cells build IPT's graph, and in which precision its matrix ops run.

Two forms, one set of parameters (same names and shapes, so every checkpoint loads into both):

- ``native`` (``layers.py``): MindSpore's own fused kernels, LayerNorm, Softmax and their gradients, heads by
  Reshape + Transpose, no hand-written ``bprop``; statistics are float32 vector ops. What Ascend and GPU run and what
  ``export.py`` writes by default (MindSpore Lite, ATC, the 310 and onnxruntime consume it).
- ``cpu`` (``cpu_kernels.py``): the cells tuned for MindSpore 2.10's CPU kernels (statistics as MatMuls, gathers,
  hand-written backward passes). float32 only: on a matrix unit that runs MatMuls in float16 its statistics overflow.

``auto`` is native on Ascend and GPU, cpu on CPU. ``compute_dtype`` float16 or bfloat16 runs the projections,
attention products and convolutions (MatMul, BatchMatMul, Conv2D) in that dtype through ``mindspore.amp``; everything
else, the parameters and the graph's input and output stay float32.
"""
import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass

import mindspore as ms
from mindspore import amp, ops

from src.errors import ConfigError
from src.losses import SupConLoss
from src.models import cpu_kernels, layers

GRAPH_FORMS = ("auto", "native", "cpu")
COMPUTE_DTYPES = {"float32": ms.float32, "float16": ms.float16, "bfloat16": ms.bfloat16}
# The primitives mixed precision runs in the compute dtype (mindspore.amp's white list, cut to the matrix ops IPT
# has); everything else stays float32, as amp's own black list keeps LayerNorm and Softmax.
MIXED_PRECISION_OPS = (ops.MatMul, ops.BatchMatMul, ops.Conv2D)


@dataclass(frozen=True)
class GraphForm:
    """The cell classes one form builds IPT from (the model's other cells, convolutions and reshuffles, are shared)."""
    name: str
    linear: type
    layer_norm: type
    attention: type
    add_table: type
    contrastive: type


FORMS = {
    "native": GraphForm("native", layers.Linear, layers.LayerNorm, layers.MultiheadAttention, layers.AddTable,
                        SupConLoss),
    "cpu": GraphForm("cpu", cpu_kernels.CpuLinear, cpu_kernels.CpuLayerNorm, cpu_kernels.CpuMultiheadAttention,
                     cpu_kernels.CpuAddTable, cpu_kernels.CpuSupConLoss),
}


def resolve_graph_form(value, device_target, compute_dtype="float32"):
    """The form (``native`` or ``cpu``) for the ``graph_form`` setting ``value`` on ``device_target``, and why:
    ``auto`` is cpu on CPU in float32, native otherwise (Ascend, GPU, or a reduced ``compute_dtype``)."""
    value = str(value).strip().lower()
    if value not in GRAPH_FORMS:
        raise ConfigError(f"graph_form {value!r}; expected one of {', '.join(GRAPH_FORMS)}")
    if value != "auto":
        return value, f"graph_form {value} (asked for)"
    if device_target != "CPU":
        return "native", f"graph_form auto: native on {device_target} (MindSpore's fused kernels, fp32 statistics)"
    if compute_dtype != "float32":
        return "native", f"graph_form auto: native for {compute_dtype} (the cpu form is float32 only)"
    return "cpu", "graph_form auto: cpu on CPU (cells tuned for MindSpore's CPU kernels)"


def check_compute_dtype(compute_dtype, device_target, graph_form):
    """The MindSpore dtype for ``compute_dtype``; a ConfigError where the combination cannot run."""
    if compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"compute_dtype {compute_dtype!r}; expected one of {', '.join(COMPUTE_DTYPES)}")
    if compute_dtype == "bfloat16" and device_target == "CPU":
        raise ConfigError("compute_dtype bfloat16 on CPU: MindSpore 2.10's CPU kernels have no bfloat16 MatMul or "
                          "Conv2D; use float32 (or float16) on CPU, bfloat16 on Ascend Atlas A2 or a GPU")
    if compute_dtype != "float32" and graph_form == "cpu":
        raise ConfigError(f"compute_dtype {compute_dtype} with graph_form cpu: the cpu form takes its LayerNorm and "
                          "softmax statistics by MatMul, which would run in reduced precision and overflow; use "
                          "graph_form native for float16/bfloat16")
    return COMPUTE_DTYPES[compute_dtype]


_rewrite_dir = None


def _private_rewrite_dir():
    """A folder of this process's own for the Python source ``mindspore.amp`` writes when it rewrites a network
    (MindSpore's rewrite saves it to ``./rewritten_network`` and imports it from there; the source must stay
    readable until the graph is compiled, so the folder lives until the process exits)."""
    global _rewrite_dir
    if _rewrite_dir is None:
        _rewrite_dir = tempfile.mkdtemp(prefix="ipt_amp_")
        atexit.register(shutil.rmtree, _rewrite_dir, True)
    return _rewrite_dir


def apply_compute_dtype(net, compute_dtype):
    """``net`` with MatMul, BatchMatMul and Conv2D in ``compute_dtype`` (float16 or bfloat16) through
    ``mindspore.amp.custom_mixed_precision``, which casts those ops' inputs down and their outputs back to float32;
    ``net`` itself for float32. The parameters stay shared and keep their names (the rewritten network renames the
    parameters it holds after its own attribute paths, which would change the model's checkpoint names)."""
    if compute_dtype == ms.float32:
        return net
    names = [(p, p.name) for p in net.get_parameters()]
    cwd = os.getcwd()
    os.chdir(_private_rewrite_dir())
    try:
        rewritten = amp.custom_mixed_precision(net, white_list=list(MIXED_PRECISION_OPS), dtype=compute_dtype)
    finally:
        os.chdir(cwd)
    for param, name in names:
        param.name = name
    return rewritten
