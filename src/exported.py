"""Exported models (MindIR, ONNX) and the JSON sidecar that describes them.

``export.py`` writes ``<model file>.json`` beside every exported file: task, scale, tile size, batch size, dtypes,
input/output names and shapes (read back from the written file), value range, the tiling modes and their parameters,
the project version and the checkpoint it came from. Everything that runs an exported file (the Python check here, the
C++ harness in ``ascend310_infer/``) reads the sidecar and checks it against the file before trusting it.
"""
import hashlib
import json
from pathlib import Path

import numpy as np

from src.errors import CheckpointError, ConfigError
from src.fileio import atomic_write
from src.tiler import make_plan

SIDECAR_FORMAT = "ipt-mindspore-export/1"
FILE_FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}
SIDECAR_KEYS = ("format", "file", "file_format", "task", "scale", "tile_size", "batch_size", "dtype", "compute_dtype",
                "graph_form", "layout", "color", "value_range", "inputs", "outputs", "tiling", "project_version",
                "checkpoint")
# Keys a sidecar written before they existed may lack, with the value such files have: every export before the
# graph forms was the CPU-tuned graph.
SIDECAR_DEFAULTS = {"graph_form": "cpu"}
# MindIR nodes that are not kernels: constants, parameter loads, tuple plumbing and ordering (``op_inventory``).
NOT_KERNELS = ("Constant", "Load", "MakeTuple", "TupleGetItem", "UpdateState", "Depend", "Return")


def tiling_modes(scale, patch_size):
    """The tiling modes a consumer of the exported file may use, with their parameters: those of ``src/tiler.py``
    (its module docstring has the formulas) for this tile size and scale. The C++ harness checks them."""
    p = patch_size
    fast = make_plan(p, p, scale, p, "fast")
    return {
        "default": "fast",
        "fast": {"patch_size": p, "max_step": p - p // 4, "min_overlap": p // 4, "ramp": fast.ramp,
                 "origins": "n = ceil((L - P) / max_step) + 1, origin_i = round_half_up(i * (L - P) / (n - 1))",
                 "weight": "w(u) = min(1, (u + 0.5) / ramp, (T - u - 0.5) / ramp), T = P * scale"},
        "paper": {"patch_size": p, "shave": p // 2, "stride": p // 4,
                  "description": "the official forward_chop: averaged centres, border strips and corner"},
    }


def sidecar_path(model_path):
    """``<model file>.json``: e.g. ``ipt_sr_x2_b8.mindir.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def sha256_of(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_model_io(path):
    """The inputs and outputs a model file declares itself: ``(inputs, outputs)``, lists of
    ``{"name", "shape", "dtype"}``. MindIR is parsed with MindSpore's own protobuf schema, ONNX with onnxruntime."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".mindir":
        from mindspore.train import mind_ir_pb2
        model = _read_mindir(path)
        type_name = mind_ir_pb2.TensorProto.DataType.Name
        mindir_types = {"FLOAT": "float32", "FLOAT16": "float16"}

        def describe(values):
            return [{"name": v.name, "shape": [int(d) for d in v.tensor[0].dims],
                     "dtype": mindir_types.get(type_name(v.tensor[0].data_type), type_name(v.tensor[0].data_type))}
                    for v in values]
        if not model.graph.input:
            raise CheckpointError(f"{path}: not a readable MindIR file (no graph inputs)")
        return describe(model.graph.input), describe(model.graph.output)
    if suffix == ".onnx":
        session = _onnx_session(path)
        onnx_types = {"tensor(float)": "float32", "tensor(float16)": "float16"}

        def describe(values):
            return [{"name": v.name, "shape": list(v.shape), "dtype": onnx_types.get(v.type, v.type)} for v in values]
        return describe(session.get_inputs()), describe(session.get_outputs())
    raise ConfigError(f"{path}: unknown model file type {suffix!r}; expected .mindir or .onnx")


def _read_mindir(path):
    """The ``ModelProto`` of a MindIR file, parsed with MindSpore's own protobuf schema."""
    from google.protobuf.message import DecodeError
    from mindspore.train import mind_ir_pb2
    model = mind_ir_pb2.ModelProto()
    try:
        model.ParseFromString(Path(path).read_bytes())
    except DecodeError as exc:
        raise CheckpointError(f"{path}: not a readable MindIR file ({exc})") from None
    return model


def op_inventory(path):
    """What a MindIR file computes: ``(counts, constant_fed)``. ``counts`` maps each op type (``MatMul``,
    ``LayerNorm``, ...) to its number of nodes; ``constant_fed`` lists the MatMul/BatchMatMul nodes with a constant
    tensor operand (a ones or 1/dim vector: a reduction done by a matrix unit). ``kernel_count(counts)`` sums the
    kernels."""
    from collections import Counter
    graph = _read_mindir(path).graph
    constants = {n.output[0] for n in graph.node if n.op_type == "Constant"}
    counts, constant_fed = Counter(), []
    for node in graph.node:
        op = node.op_type.split("::")[-1].split(":")[0]  # "REF::MatMul:39" -> "MatMul"
        counts[op] += 1
        if op in ("MatMul", "BatchMatMul") and any(i in constants for i in node.input[:2]):
            constant_fed.append(node.name)
    return counts, constant_fed


def kernel_count(counts):
    """The kernels among ``op_inventory`` counts: every op but constants, loads, tuples and ordering nodes, and
    Reshape (a view on every device)."""
    return sum(n for op, n in counts.items() if op not in NOT_KERNELS + ("Reshape",))


def _onnx_session(path):
    import onnxruntime as ort
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CheckpointError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})") from None


def write_sidecar(model_path, info):
    """Write ``info`` as ``<model file>.json`` atomically; returns its path."""
    missing = [k for k in SIDECAR_KEYS if k not in info]
    if missing:
        raise ValueError(f"sidecar for {model_path} lacks {missing}")
    target = sidecar_path(model_path)
    with atomic_write(target, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    return target


def read_sidecar(model_path, batch_size=None):
    """The sidecar of ``model_path``, checked against the file: every key present, the input and output shapes equal
    to the file's own, and ``batch_size`` (when given) equal to the exported one. Clear one-line errors otherwise."""
    model_path = Path(model_path)
    side = sidecar_path(model_path)
    if not side.is_file():
        raise CheckpointError(f"{model_path}: its sidecar {side.name} is missing; export.py writes it beside the "
                              "model (re-export, or copy it along with the model)")
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{side}: not valid JSON ({exc})") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{side}: expected a JSON object")
    for key, value in SIDECAR_DEFAULTS.items():
        info.setdefault(key, value)
    missing = [k for k in SIDECAR_KEYS if k not in info]
    if missing:
        raise CheckpointError(f"{side}: missing key(s) {missing}")
    if info["format"] != SIDECAR_FORMAT:
        raise CheckpointError(f"{side}: format {info['format']!r}; expected {SIDECAR_FORMAT!r}")
    inputs, outputs = read_model_io(model_path)
    for kind, declared, actual in (("input", info["inputs"], inputs), ("output", info["outputs"], outputs)):
        if [d.get("shape") for d in declared] != [a["shape"] for a in actual]:
            raise CheckpointError(f"{side}: {kind} shapes {[d.get('shape') for d in declared]} disagree with the "
                                  f"model file's {[a['shape'] for a in actual]} ({model_path.name})")
        if [d.get("dtype") for d in declared] != [a["dtype"] for a in actual]:
            raise CheckpointError(f"{side}: {kind} dtypes {[d.get('dtype') for d in declared]} disagree with the "
                                  f"model file's {[a['dtype'] for a in actual]} ({model_path.name})")
    if inputs[0]["shape"][0] != info["batch_size"]:
        raise CheckpointError(f"{side}: batch_size {info['batch_size']} disagrees with the model's input shape "
                              f"{inputs[0]['shape']}")
    if batch_size is not None and batch_size != info["batch_size"]:
        raise ConfigError(f"batch size {batch_size}: {model_path.name} was exported with batch size "
                          f"{info['batch_size']} (its input is {inputs[0]['shape']}); use {info['batch_size']} or "
                          "re-export with --batch_size")
    return info


def load_exported(model_path):
    """``(run_batch, info)`` for an exported file: ``run_batch`` maps a float32 (B, 3, P, P) array to the model's
    (B, 3, P*s, P*s) output, after checking the batch against the sidecar's input shape."""
    info = read_sidecar(model_path)
    shape = tuple(info["inputs"][0]["shape"])
    if str(model_path).lower().endswith(".onnx"):
        session = _onnx_session(model_path)
        name = session.get_inputs()[0].name

        def forward(batch):
            return session.run(None, {name: batch})[0]
    else:
        import mindspore as ms
        graph = ms.nn.GraphCell(ms.load(str(model_path)))

        def forward(batch):
            return graph(ms.Tensor(batch)).asnumpy()

    def run_batch(batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.shape != shape:
            raise ConfigError(f"input batch of shape {batch.shape}; {Path(model_path).name} takes {shape} "
                              "(its sidecar's batch size and tile size)")
        return forward(batch)
    return run_batch, info


def record_batches(run_batch, folder):
    """``run_batch`` that also writes every batch it is given, and the output it returns, as raw float32 in C order:
    ``folder/in_NNNNN.bin`` and ``out_NNNNN.bin``, NNNNN counting the calls from 0. These are the recorded tiles that
    ``ascend310_infer``'s ``ipt_infer_replay`` stitches in place of a runtime (docs/export.md). ``folder`` is created;
    one that holds recorded batches already is an error. Returns (the recording run_batch, the list of calls)."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.glob("in_*.bin")):
        raise ConfigError(f"{folder}: holds recorded batches already (in_*.bin); give a new or empty folder")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: is an existing file; give a folder for the recorded batches")
    folder.mkdir(parents=True, exist_ok=True)
    calls = []

    def record(batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        out = np.ascontiguousarray(run_batch(batch), dtype=np.float32)
        for kind, array in (("in", batch), ("out", out)):
            with atomic_write(folder / f"{kind}_{len(calls):05d}.bin") as f:
                f.write(array.tobytes())
        calls.append(len(calls))
        return out
    return record, calls


def restore_through(model_path, image_path, output_path, tile_mode=None, compare_ckpt=None, tolerance=1e-3,
                    record_tiles=None):
    """Restore ``image_path`` through the exported file with the tiler (the sidecar's tile size, batch and default
    mode), write the PNG atomically; with ``compare_ckpt`` also restore it with that checkpoint's Cell (the same task,
    tile batch and mode, and the export's own graph form and compute dtype, so that a float16 export is compared
    with a float16 Cell) and raise an IPTError when they differ by more than ``tolerance`` on 0..255. With
    ``record_tiles`` every batch through the exported file is recorded there (``record_batches``). Returns
    (output float32 array, largest difference or None)."""
    from src import tiler
    from src.data.image_io import read_rgb, to_float, to_uint8, write_png
    from src.errors import IPTError

    run_batch, info = load_exported(model_path)
    if record_tiles is not None:
        run_batch, _ = record_batches(run_batch, record_tiles)
    mode = tile_mode or info["tiling"]["default"]
    if mode not in tiler.MODES:
        raise ConfigError(f"tile mode {mode!r}; expected one of {', '.join(tiler.MODES)}")
    image = to_float(read_rgb(image_path, allow_16bit=True))
    out = tiler.restore(image, run_batch, info["scale"], info["tile_size"], info["batch_size"], mode)
    write_png(output_path, to_uint8(out))
    if compare_ckpt is None:
        return out, None
    from src.checkpoint.loader import load_model
    from src.inference import Restorer

    from src.models.forms import COMPUTE_DTYPES
    ipt, _ = load_model(compare_ckpt, info["task"], compute_dtype=COMPUTE_DTYPES[info["compute_dtype"]],
                        graph_form=info["graph_form"])
    reference = Restorer(ipt, info["task"], info["batch_size"], mode).restore(image)
    diff = float(np.abs(out.astype(np.float64) - reference).max())
    if not diff <= tolerance:
        raise IPTError(f"{model_path}: its output differs from the Cell of {compare_ckpt} by {diff:.3g} on 0..255 "
                       f"(tolerance {tolerance})")
    return out, diff


def main(argv=None):
    """``python -m src.exported check MODEL [--batch_size N]``: the sidecar checked against the file, one line.
    ``python -m src.exported restore MODEL --input IMAGE --output PNG [--compare_ckpt CKPT] [--record_tiles DIR]``:
    an image restored through the exported file with the tiler (optionally checked against the checkpoint's Cell, and
    its tile batches recorded for ``ipt_infer_replay``)."""
    import argparse
    from src.errors import run_main

    parser = argparse.ArgumentParser(prog="python -m src.exported")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check MODEL's sidecar against the model file")
    check.add_argument("model")
    check.add_argument("--batch_size", type=int, default=None)
    rest = sub.add_parser("restore", help="restore an image through MODEL with the tiler")
    rest.add_argument("model")
    rest.add_argument("--input", required=True, help="an image file")
    rest.add_argument("--output", required=True, help="the restored PNG to write")
    rest.add_argument("--tile_mode", choices=("fast", "paper"), default=None, help="default: the sidecar's")
    rest.add_argument("--compare_ckpt", default=None,
                      help="also restore with this checkpoint's Cell and fail if the outputs differ")
    rest.add_argument("--tolerance", type=float, default=1e-3, help="largest difference allowed, on 0..255")
    rest.add_argument("--record_tiles", metavar="DIR", default=None,
                      help="also write every tile batch the model saw and returned to DIR (in_NNNNN.bin, "
                           "out_NNNNN.bin): the recorded tiles ascend310_infer's ipt_infer_replay stitches")
    rest.add_argument("--device_target", default="CPU")
    args = parser.parse_args(argv)

    def run(_):
        if args.command == "check":
            info = read_sidecar(args.model, args.batch_size)
            print(f"{args.model}: {info['task']} x{info['scale']}, input {info['inputs'][0]['shape']} "
                  f"{info['inputs'][0]['dtype']}, output {info['outputs'][0]['shape']}: sidecar agrees with the file")
            return 0
        from src.runtime import setup
        info = read_sidecar(args.model)
        setup(args.device_target, info["compute_dtype"], graph_form=info["graph_form"])
        _, diff = restore_through(args.model, args.input, args.output, args.tile_mode, args.compare_ckpt,
                                  args.tolerance, args.record_tiles)
        print(f"{args.input} -> {args.output} through {args.model}"
              + (f"; largest difference to the Cell of {args.compare_ckpt}: {diff:.2e} on 0..255"
                 if diff is not None else ""))
        return 0
    return run_main(run)


if __name__ == "__main__":
    raise SystemExit(main())
