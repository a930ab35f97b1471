"""Export one IPT task (MindIR or ONNX) with a static tile batch and a JSON sidecar that describes it.

    python export.py --ckpt_path CKPT --task sr_x2 --batch_size 8 [--file_format MINDIR|ONNX]
                     [--compute_dtype float16] [--graph_form native|cpu] [--file_name FILE]

The graph takes (batch_size, 3, P, P) float32 RGB tiles on 0..255 (P = patch_size, 48 for the official models) and
returns (batch_size, 3, P*scale, P*scale) on the same scale: the mean shift is inside, nothing to add or subtract.
Beside ``FILE.mindir`` (or ``.onnx``) it writes ``FILE.mindir.json`` (see ``src/exported.py``). The graph is the
native form by default (MindSpore's own LayerNorm and Softmax: what MindSpore Lite, ATC, the Ascend 310 and
onnxruntime consume); ``--graph_form cpu`` writes the CPU-tuned cells for CPU-only deployments.
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import mindspore as ms

from src import __version__
from src.checkpoint.loader import load_model
from src.config import parse_config
from src.errors import ConfigError, run_main
from src.exported import FILE_FORMATS, SIDECAR_FORMAT, read_model_io, sha256_of, tiling_modes, write_sidecar
from src.models.layers import use_onnx_ops
from src.runtime import log, setup
from src.tasks import get_task, pick_task

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "export.yaml"


def export_task(ipt, task, batch_size, file_name, file_format="MINDIR"):
    """Write ``<file_name>.mindir`` (or ``.onnx``) atomically; returns its path. No sidecar (see ``sidecar_info``).

    ONNX goes through MindSpore's exporter with the cells switched to their ONNX-exportable op sequence
    (``layers.use_onnx_ops``: same values) for the export only. AIR needs the Ascend backend. MindSpore writes into a
    private temporary folder beside the target (its ONNX exporter sets the mode of the file's folder to 700), and
    the file is then moved into place: the user's folders keep their modes.
    """
    if file_format not in FILE_FORMATS:
        raise ConfigError(f"file_format {file_format!r}; expected one of {', '.join(FILE_FORMATS)}")
    if file_format == "AIR" and ms.get_context("device_target") != "Ascend":
        raise ConfigError("file_format AIR needs --device_target Ascend (MindSpore exports AIR only with the Ascend "
                          f"backend; this run uses {ms.get_context('device_target')}); use MINDIR or ONNX")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    net = ipt.task_net(task)
    net.set_train(False)
    p = ipt.config.patch_size
    suffix = FILE_FORMATS[file_format]
    target = Path(f"{file_name}{suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f".{target.stem}.", dir=target.parent))
    written = private / f"model{suffix}"
    onnx = file_format == "ONNX"
    try:
        if onnx:
            use_onnx_ops(net)
        ms.export(net, ms.Tensor(np.zeros((batch_size, 3, p, p), np.float32)), file_name=str(private / "model"),
                  file_format=file_format)
        os.replace(written, target)
    finally:
        if onnx:
            use_onnx_ops(net, enabled=False)
        shutil.rmtree(private, ignore_errors=True)
    return target



def sidecar_info(target, ipt, task, batch_size, file_format, compute_dtype, ckpt_path, source_format):
    """The sidecar of an exported file; inputs and outputs are read back from the file itself."""
    inputs, outputs = read_model_io(target)
    scale = get_task(task).scale
    p = ipt.config.patch_size
    return {
        "format": SIDECAR_FORMAT,
        "file": target.name,
        "file_format": file_format,
        "task": task,
        "scale": scale,
        "tile_size": p,
        "batch_size": batch_size,
        "dtype": inputs[0]["dtype"],
        "compute_dtype": compute_dtype,
        "graph_form": ipt.graph_form,
        "layout": "NCHW",
        "color": "RGB",
        "value_range": [0.0, float(ipt.config.rgb_range)],
        "inputs": inputs,
        "outputs": outputs,
        "tiling": tiling_modes(scale, p),
        "project_version": __version__,
        "checkpoint": {"path": str(Path(ckpt_path).resolve()), "format": source_format,
                       "sha256": sha256_of(ckpt_path)},
    }


def main(argv=None):
    cfg = parse_config(sys.argv[1:] if argv is None else argv, DEFAULT_CONFIG, __doc__)
    if not cfg.ckpt_path:
        raise ConfigError("--ckpt_path is required")
    if cfg.task:
        get_task(cfg.task)  # fail fast, before loading anything
    file_format = str(cfg.file_format).upper()
    if file_format not in FILE_FORMATS:
        raise ConfigError(f"file_format {cfg.file_format!r}; expected one of {', '.join(FILE_FORMATS)}")
    compute_dtype, graph_form = setup(cfg.device_target, cfg.compute_dtype, cfg.onednn_isa,
                                      graph_form=cfg.graph_form)
    ipt, weights = load_model(cfg.ckpt_path, cfg.task, cfg.num_heads, compute_dtype, graph_form)
    task = pick_task(cfg.task, weights.config.tasks, cfg.ckpt_path)
    file_name = cfg.file_name or f"ipt_{task}_b{cfg.batch_size}"
    target = export_task(ipt, task, cfg.batch_size, file_name, file_format)
    info = sidecar_info(target, ipt, task, cfg.batch_size, file_format, cfg.compute_dtype, cfg.ckpt_path,
                        weights.source_format)
    side = write_sidecar(target, info)
    log.info("exported %s of %s to %s (input %s, output %s) with its sidecar %s", task, cfg.ckpt_path, target,
             info["inputs"][0]["shape"], info["outputs"][0]["shape"], side)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
