"""Reading PyTorch checkpoints without torch (src/checkpoint/torch_pickle.py).

The committed fixtures were written by real torch (scripts/make_torch_fixtures.py); their .npz companions hold the
state dict as torch saw it. Hand-made files cover what torch 2.13 cannot write (big-endian data, legacy storage
views) and the error paths; if torch is importable, freshly saved checkpoints are checked too.
"""
import collections
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from src.checkpoint.torch_pickle import LEGACY_MAGIC, LEGACY_PROTOCOL, extract_state_dict, is_torch_file, \
    load_torch_file
from src.errors import CheckpointError

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ["ipt_tiny_pretrain_zip", "ipt_tiny_sr_x4_legacy", "ipt_tiny_denoise_legacy", "ipt_tiny_sr_x3_outbias_zip"]
NPZ_EXTRAS = ("input", "scales", "num_heads")


@pytest.mark.parametrize("name", NAMES)
def test_fixture_state_dict_is_bit_identical(name):
    path = FIXTURES / f"{name}.pt"
    assert is_torch_file(path)
    sd = extract_state_dict(load_torch_file(path), path)
    data = np.load(FIXTURES / f"{name}.npz")
    keys = [k for k in data.files if k not in NPZ_EXTRAS and not k.startswith("output_")]
    assert list(sd) == keys
    for key in keys:
        assert sd[key].dtype == data[key].dtype and sd[key].shape == data[key].shape, key
        assert np.array_equal(sd[key], data[key]), key
        assert sd[key].flags.c_contiguous and sd[key].flags.owndata
    ids = sd["body.position_encoding.position_ids"]          # saved by torch as an expanded view, stride (0, 1)
    assert ids.dtype == np.int64 and np.array_equal(ids, np.arange(256)[None])


# ---- hand-made checkpoints: protocol-2 pickles whose stand-in globals are rewritten to torch's names -------------

class FloatStorage:
    dtype = np.dtype("f4")


class LongStorage:
    dtype = np.dtype("i8")


class BFloat16Storage:
    dtype = np.dtype("u2")


class QInt8Storage:
    dtype = np.dtype("i1")


def _rebuild_tensor_v2(*args):
    raise AssertionError("stand-in, never called")


def _rebuild_parameter(*args):
    raise AssertionError("stand-in, never called")


class Storage:
    def __init__(self, stype, key, data, view=None):
        self.stype, self.key, self.data, self.view = stype, key, data, view   # data: bytes in the file


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return _rebuild_tensor_v2, self.args


class Parameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        return _rebuild_parameter, (self.tensor, True, collections.OrderedDict())


def torch_pickle(obj, legacy, numel=None):
    """Pickle ``obj`` as torch does; ``numel(storage)`` overrides the element count recorded for a storage."""
    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if not isinstance(o, Storage):
                return None
            n = numel(o) if numel else len(o.data) // o.stype.dtype.itemsize
            return ("storage", o.stype, o.key, "cpu", n) + ((o.view,) if legacy else ())

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    here = f"c{__name__}\n".encode()
    return buf.getvalue().replace(here + b"_rebuild", b"ctorch._utils\n_rebuild").replace(here, b"ctorch\n")


def write_zip(path, pkl, records, byteorder=b"little"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        if byteorder is not None:
            zf.writestr("archive/byteorder", byteorder)
        for key, data in records.items():
            zf.writestr(f"archive/data/{key}", data)


def write_legacy(path, pkl, storages):
    """Legacy layout: magic, protocol, sys_info, object pickle, key list, then (int64 count, bytes) per key."""
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(pkl)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write((len(s.data) // s.stype.dtype.itemsize).to_bytes(8, "little") + s.data)


def bf16_bytes(values, byteorder="<"):
    return (np.asarray(values, np.float32).view(np.uint32) >> 16).astype(byteorder + "u2").tobytes()


BF16_VALUES = np.array([1.5, -2.25, 3.140625, 0.0, -0.0, np.inf, 2.0 ** -126, 65280.0], np.float32)  # all exact in bf16


@pytest.mark.parametrize("byteorder", [b"little", b"big", None])
def test_zip_strides_offsets_bfloat16_and_byte_order(tmp_path, byteorder):
    bo = ">" if byteorder == b"big" else "<"
    base = np.arange(24, dtype=np.float32)
    fs = Storage(FloatStorage, "0", base.astype(bo + "f4").tobytes())
    ls = Storage(LongStorage, "1", np.array([7, -8, 2**40], bo + "i8").tobytes())
    bs = Storage(BFloat16Storage, "2", bf16_bytes(BF16_VALUES, bo))
    obj = collections.OrderedDict(
        strided=Tensor(fs, 5, (2, 3), (1, 4)),              # element [i, j] = base[5 + i + 4j]
        param=Parameter(Tensor(fs, 0, (4, 6), (6, 1))),
        scalar=Tensor(fs, 23, (), ()),
        empty=Tensor(fs, 0, (0, 3), (3, 1)),
        long=Tensor(ls, 0, (3,), (1,)),
        bf16=Tensor(bs, 0, (8,), (1,)),
    )
    path = tmp_path / "hand.pt"
    write_zip(path, torch_pickle(obj, legacy=False), {s.key: s.data for s in (fs, ls, bs)}, byteorder)
    sd = load_torch_file(path)
    assert list(sd) == list(obj) and type(sd) is dict
    np.testing.assert_array_equal(sd["strided"], base[5 + np.arange(2)[:, None] + 4 * np.arange(3)[None]])
    np.testing.assert_array_equal(sd["param"], base.reshape(4, 6))
    assert sd["scalar"].shape == () and sd["scalar"] == 23 and sd["empty"].shape == (0, 3)
    np.testing.assert_array_equal(sd["long"], [7, -8, 2**40])
    assert sd["bf16"].dtype == np.float32 and np.array_equal(sd["bf16"], BF16_VALUES)   # exact widening
    assert all(v.dtype.isnative for v in sd.values())


def test_legacy_storage_views(tmp_path):
    root = Storage(FloatStorage, "140000001", np.arange(10, dtype="<f4").tobytes())
    view = Storage(FloatStorage, "140000001", root.data, view=("140000002", 2, 6))    # elements 2..7 of the root
    obj = {"view": Tensor(view, 1, (3,), (2,)), "whole": Tensor(root, 0, (10,), (1,))}
    path = tmp_path / "legacy.pt"
    write_legacy(path, torch_pickle(obj, legacy=True, numel=lambda s: 10), [root])
    assert is_torch_file(path)
    sd = load_torch_file(path)
    np.testing.assert_array_equal(sd["view"], [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(sd["whole"], np.arange(10))


# ---- errors -------------------------------------------------------------------------------------------------------

def payload(module, name, arg):
    """A protocol-2 pickle calling ``module.name(arg)``, written opcode by opcode."""
    text = arg.encode()
    return (b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + len(text).to_bytes(4, "little") + text
            + b"\x85R.")


def legacy_bytes(pkl):
    buf = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {}):
        pickle.dump(header, buf, protocol=2)
    return buf.getvalue() + pkl


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def check_error(path, *fragments):
    with pytest.raises(CheckpointError) as info:
        load_torch_file(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"), ("builtins", "eval"),
                                         ("subprocess", "Popen")])
def test_code_in_pickle_is_refused_not_run(tmp_path, fmt, module, name):
    marker = tmp_path / "pwned"
    pkl = payload(module, name, f"touch {marker}" if name != "eval" else f"open({str(marker)!r}, 'w')")
    path = tmp_path / "evil.pt"
    path.write_bytes(zip_bytes({"archive/data.pkl": pkl}) if fmt == "zip" else legacy_bytes(pkl))
    check_error(path, f"unsupported object in checkpoint: {module}.{name}")
    assert not marker.exists()


def test_unknown_storage_dtype(tmp_path):
    qs = Storage(QInt8Storage, "0", b"\x01\x02")
    path = tmp_path / "q.pt"
    write_zip(path, torch_pickle({"q": Tensor(qs, 0, (2,), (1,))}, legacy=False), {"0": qs.data})
    check_error(path, "unsupported tensor dtype in checkpoint: torch.QInt8Storage")


def test_tensor_outside_its_storage(tmp_path):
    fs = Storage(FloatStorage, "0", np.zeros(4, "<f4").tobytes())
    path = tmp_path / "oob.pt"
    write_zip(path, torch_pickle({"w": Tensor(fs, 2, (2, 2), (2, 1))}, legacy=False), {"0": fs.data})
    check_error(path, "outside its storage")


def test_storage_record_problems(tmp_path):
    fs = Storage(FloatStorage, "0", np.zeros(4, "<f4").tobytes())
    pkl = torch_pickle({"w": Tensor(fs, 0, (4,), (1,))}, legacy=False)
    write_zip(tmp_path / "missing.pt", pkl, {})
    check_error(tmp_path / "missing.pt", "missing storage record archive/data/0")
    write_zip(tmp_path / "short.pt", pkl, {"0": fs.data[:-2]})
    check_error(tmp_path / "short.pt", "storage '0' has 14 bytes, expected 16")
    write_zip(tmp_path / "order.pt", pkl, {"0": fs.data}, byteorder=b"middle")
    check_error(tmp_path / "order.pt", "unknown byte order")


def test_truncated_files(tmp_path):
    for name in ("ipt_tiny_sr_x3_outbias_zip", "ipt_tiny_denoise_legacy"):
        raw = (FIXTURES / f"{name}.pt").read_bytes()
        for cut in (len(raw) // 2, len(raw) - 10):
            path = tmp_path / f"{name}_{cut}.pt"
            path.write_bytes(raw[:cut])
            message = check_error(path)
            assert "truncated" in message or "corrupt" in message, message


def test_not_a_checkpoint(tmp_path):
    cases = {
        "empty.pt": (b"", "empty file"),
        "random.pt": (np.random.default_rng(0).bytes(4096), "not a PyTorch checkpoint"),
        "config.json": (json.dumps({"state_dict": {"w": [1, 2]}}).encode(), "not a PyTorch checkpoint"),
        "plain.pkl": (pickle.dumps({"w": 1}, protocol=2), "not a PyTorch checkpoint"),
        "nodata.zip": (zip_bytes({"archive/readme.txt": b"hello"}), "zip archive without data.pkl"),
        "script.pt": (zip_bytes({"m/data.pkl": b".", "m/constants.pkl": b"."}), "TorchScript archive"),
    }
    for fname, (raw, fragment) in cases.items():
        path = tmp_path / fname
        path.write_bytes(raw)
        assert not is_torch_file(path) or fname == "script.pt"
        check_error(path, fragment)
    check_error(tmp_path / "absent.pt", "cannot read checkpoint")
    assert not is_torch_file(tmp_path / "absent.pt")


def test_extract_state_dict():
    w = {"a.weight": np.zeros(2), "a.bias": np.ones(1)}
    assert extract_state_dict(w, "f.pt") is w
    for key in ("state_dict", "model", "model_state_dict", "params", "net"):
        assert extract_state_dict({"epoch": 3, key: w}, "f.pt") is w
    with pytest.raises(CheckpointError, match=r"^f\.pt: no state dict in checkpoint: .*top-level keys: 'epoch', "
                                              r"'optimizer'$"):
        extract_state_dict({"epoch": 3, "optimizer": {"lr": 1}}, "f.pt")
    with pytest.raises(CheckpointError, match=r"^f\.pt: no state dict in checkpoint: it holds a list"):
        extract_state_dict([w], "f.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        extract_state_dict({}, "f.pt")


# ---- fresh checkpoints from real torch ----------------------------------------------------------------------------

@pytest.mark.parametrize("legacy", [False, True])
def test_fresh_torch_checkpoints(tmp_path, legacy):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    base = torch.randn(5, 6)
    sd = collections.OrderedDict(
        weight=torch.nn.Parameter(torch.randn(3, 4)),
        bf16=torch.randn(7).to(torch.bfloat16),
        half=torch.randn(2, 3).half(),
        double=torch.randn(3).double(),
        transposed=base.t(),
        offset_slice=base[1:, 2:],
        every_other=base[:, ::2],
        expanded=torch.arange(4).expand(3, 4),
        scalar=torch.tensor(2.5),
        empty=torch.zeros(0, 3),
        **{str(dt).split(".")[1]: torch.arange(-3, 3).to(dt)
           for dt in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)},
    )
    path = tmp_path / "fresh.pt"
    torch.save({"state_dict": sd, "epoch": 4, "note": "x", "lr": [0.1, 0.01]}, path,
               _use_new_zipfile_serialization=not legacy)
    assert is_torch_file(path)
    obj = load_torch_file(path)
    assert (obj["epoch"], obj["note"], obj["lr"]) == (4, "x", [0.1, 0.01])
    got = extract_state_dict(obj, path)
    assert list(got) == list(sd)
    for key, tensor in sd.items():
        want = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).detach().numpy()
        assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
        assert np.array_equal(got[key], want), key


def test_pickled_module_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    check_error(path, "unsupported object in checkpoint: torch.nn.modules.linear.Linear")
