"""Read PyTorch checkpoints (``torch.save`` files) without torch: standard library and numpy only.

Two on-disk formats exist (facts checked against torch 2.13 ``torch/serialization.py``):

* zip (torch >= 1.6 default): ``<archive>/data.pkl`` is the object pickle; each storage it references through the
  persistent id ``('storage', storage_type, key, location, numel)`` is the raw little-endian (unless
  ``<archive>/byteorder`` says ``big``) record ``<archive>/data/<key>``. The archive folder name varies.
* legacy (torch <= 1.5, or ``_use_new_zipfile_serialization=False``): consecutive pickles in one file: the magic
  number, the protocol version 1001, a sys_info dict, the object pickle with persistent ids
  ``('storage', storage_type, root_key, location, numel, view_metadata)``, the list of storage keys; then, for each
  key in that order, an int64 little-endian element count followed by the storage's raw little-endian bytes.

Unpickling is restricted to the few globals a tensor checkpoint needs; anything else (code execution, whole pickled
modules) is refused with a CheckpointError naming the global. Tensors come back as contiguous numpy arrays
(bfloat16 widened exactly to float32); OrderedDicts come back as plain dicts, order kept.
"""
import collections
import math
import pickle
import zipfile

import numpy as np

from src.errors import CheckpointError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# A legacy file opens with the magic number pickled as a 10-byte LONG1 (opcode 0x8a, length 10), after "\x80<proto>".
_LEGACY_MAGIC_PICKLED = b"\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")
_ZIP_MAGIC = b"PK\x03\x04"

# torch storage class name -> numpy dtype of its elements (byte order applied when read); "bfloat16" is special.
_STORAGE_DTYPES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?", "ComplexFloatStorage": "c8", "ComplexDoubleStorage": "c16", "UntypedStorage": "u1",
}

# Wrapper keys under which training scripts commonly store the state dict, in the order they are tried.
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "params", "net")


class _StorageType:
    """Stands in for ``torch.<Name>Storage`` while unpickling."""

    def __init__(self, name):
        self.name = name
        self.bfloat16 = _STORAGE_DTYPES[name] == "bfloat16"
        self.dtype = np.dtype("u2" if self.bfloat16 else _STORAGE_DTYPES[name])


class _Storage:
    """One storage record; ``array`` (1-D, native byte order) is filled once its bytes are read."""

    def __init__(self, stype, key, numel):
        self.stype, self.key, self.numel = stype, key, numel
        self.array = None


class _StorageSlice:
    """A storage as a tensor sees it: the whole record, or a legacy view ``[start, start + numel)`` of it."""

    def __init__(self, storage, start, numel):
        self.storage, self.start, self.numel = storage, start, numel


class _TensorRef:
    """A tensor awaiting its storage bytes: element offset, size and stride into a storage slice."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


def _latin1_encode(text, encoding):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes objects; nothing else is allowed."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"unexpected _codecs.encode encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch", "Size"): tuple,
    ("_codecs", "encode"): _latin1_encode,
    **{("builtins", t.__name__): t for t in (set, frozenset, list, tuple, dict, int, float, complex, bool, str,
                                             bytes, bytearray, slice)},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only what a tensor checkpoint holds; storages become ``_Storage`` records collected in ``storages``."""

    def __init__(self, file, path, legacy):
        super().__init__(file, encoding="utf-8")
        self.path, self.legacy = path, legacy
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module in ("torch", "torch.storage") and name.endswith("Storage"):
            if name in _STORAGE_DTYPES:
                return _StorageType(name)
            raise CheckpointError(f"{self.path}: unsupported tensor dtype in checkpoint: {module}.{name}")
        raise CheckpointError(f"{self.path}: unsupported object in checkpoint: {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            kind = pid[0] if isinstance(pid, tuple) and pid else pid
            raise CheckpointError(f"{self.path}: unsupported persistent record {kind!r} in checkpoint "
                                  "(a pickled nn.Module or other object, not a state dict?)")
        if len(pid) != (6 if self.legacy else 5):
            raise CheckpointError(f"{self.path}: malformed storage record {pid[:5]!r}")
        stype, key, _location, numel = pid[1:5]
        if not isinstance(stype, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"{self.path}: malformed storage record for key {key!r}")
        storage = self.storages.setdefault(key, _Storage(stype, key, numel))
        if storage.stype.dtype != stype.dtype or storage.stype.bfloat16 != stype.bfloat16:
            raise CheckpointError(f"{self.path}: storage {key!r} is referenced with two different dtypes")
        view = pid[5] if self.legacy else None
        if view is None:
            return _StorageSlice(storage, 0, storage.numel)
        _view_key, start, view_numel = view   # legacy storage view: elements [start, start + view_numel) of the root
        if start < 0 or view_numel < 0 or start + view_numel > storage.numel:
            raise CheckpointError(f"{self.path}: storage view out of bounds in storage {key!r}")
        return _StorageSlice(storage, start, view_numel)


def _decode_storage(storage, raw, byteorder, path):
    """Turn a storage's raw bytes into its 1-D numpy array (native byte order; bfloat16 -> float32)."""
    stype = storage.stype
    expected = storage.numel * stype.dtype.itemsize
    if len(raw) != expected:
        raise CheckpointError(f"{path}: storage {storage.key!r} has {len(raw)} bytes, expected {expected} "
                              "(truncated or corrupt file)")
    array = np.frombuffer(raw, dtype=stype.dtype.newbyteorder(byteorder))
    if stype.bfloat16:  # bfloat16 is the top half of a float32: widening is exact
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(stype.dtype.newbyteorder("="), copy=False)


def _materialize(ref, path):
    """The tensor ``ref`` as a contiguous numpy array copied out of its storage."""
    if not isinstance(ref.storage, _StorageSlice):
        raise CheckpointError(f"{path}: malformed tensor record (no storage)")
    size, stride, offset = tuple(ref.size), tuple(ref.stride), ref.offset
    if len(size) != len(stride) or min(size + stride + (offset,)) < 0:
        raise CheckpointError(f"{path}: malformed tensor record (size {size}, stride {stride}, offset {offset})")
    storage = ref.storage.storage
    data = storage.array[ref.storage.start:ref.storage.start + ref.storage.numel]
    if math.prod(size) == 0:
        return np.empty(size, dtype=data.dtype)
    if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= data.size:
        raise CheckpointError(f"{path}: tensor of size {size} lies outside its storage {storage.key!r}")
    view = np.lib.stride_tricks.as_strided(data[offset:], shape=size, strides=[s * data.itemsize for s in stride],
                                           writeable=False)
    return np.array(view, order="C")


def _resolve(obj, path):
    """Replace tensor placeholders by arrays and OrderedDicts by dicts, recursively through dicts, lists, tuples."""
    if isinstance(obj, _TensorRef):
        return _materialize(obj, path)
    if isinstance(obj, _StorageSlice):   # a bare storage saved in the checkpoint: its elements as a 1-D array
        return _materialize(_TensorRef(obj, 0, (obj.numel,), (1,)), path)
    if isinstance(obj, dict):
        return {k: _resolve(v, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, path) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, path) for v in obj)
    return obj


def _load_zip(path):
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pkl = next((n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)),
                       None)
            if pkl is None:
                raise CheckpointError(f"{path}: zip archive without data.pkl (not a PyTorch checkpoint)")
            prefix = pkl[:-len("data.pkl")]
            if prefix + "constants.pkl" in names:
                raise CheckpointError(f"{path}: a TorchScript archive (torch.jit.save), not a torch.save checkpoint")
            byteorder = "<"
            if prefix + "byteorder" in names:
                mark = archive.read(prefix + "byteorder")
                if mark not in (b"little", b"big"):
                    raise CheckpointError(f"{path}: unknown byte order {mark[:20]!r} in checkpoint")
                byteorder = "<" if mark == b"little" else ">"
            with archive.open(pkl) as f:
                unpickler = _RestrictedUnpickler(f, path, legacy=False)
                obj = unpickler.load()
            for key, storage in unpickler.storages.items():
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise CheckpointError(f"{path}: missing storage record {record}")
                storage.array = _decode_storage(storage, archive.read(record), byteorder, path)
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{path}: corrupt or truncated zip archive ({exc})") from None
    return obj


def _load_legacy(path):
    with open(path, "rb") as f:
        def next_pickle():
            unpickler = _RestrictedUnpickler(f, path, legacy=True)
            return unpickler.load(), unpickler

        if next_pickle()[0] != LEGACY_MAGIC:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (bad legacy magic number)")
        version = next_pickle()[0]
        if version != LEGACY_PROTOCOL:
            raise CheckpointError(f"{path}: unsupported legacy torch protocol version {version!r}")
        next_pickle()                                      # sys_info: data is little-endian whatever it says
        obj, unpickler = next_pickle()
        keys = next_pickle()[0]
        if not isinstance(keys, list) or set(keys) != set(unpickler.storages):
            raise CheckpointError(f"{path}: storage key list does not match the storages the checkpoint references")
        for key in keys:
            storage = unpickler.storages[key]
            head = f.read(8)
            if len(head) != 8:
                raise CheckpointError(f"{path}: truncated file (storage {key!r} missing)")
            count = int.from_bytes(head, "little", signed=True)
            if count != storage.numel:
                raise CheckpointError(f"{path}: storage {key!r} holds {count} elements, expected {storage.numel}")
            storage.array = _decode_storage(storage, f.read(count * storage.stype.dtype.itemsize), "<", path)
    return obj


def _sniff(path):
    """'zip', 'legacy' or None from the first bytes of ``path`` (OSError propagates)."""
    with open(path, "rb") as f:
        head = f.read(14)
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if len(head) == 14 and head[0] == 0x80 and head[2:] == _LEGACY_MAGIC_PICKLED:
        return "legacy"
    return None


def is_torch_file(path) -> bool:
    """True if ``path`` looks like a torch.save file: a zip holding a data.pkl, or a legacy torch pickle."""
    try:
        kind = _sniff(path)
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                return any(n == "data.pkl" or n.endswith("/data.pkl") for n in archive.namelist())
        return kind == "legacy"
    except (OSError, zipfile.BadZipFile):
        return False


def load_torch_file(path):
    """Unpickle the torch.save file ``path``: tensors become numpy arrays, OrderedDicts dicts.

    Raises CheckpointError (one line, starting with the path) for anything unreadable, corrupt or not allowed.
    """
    try:
        kind = _sniff(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    if kind is None:
        with open(path, "rb") as f:
            empty = not f.read(1)
        raise CheckpointError(f"{path}: empty file" if empty else
                              f"{path}: not a PyTorch checkpoint (neither a zip archive nor a legacy torch pickle)")
    try:
        obj = _load_zip(path) if kind == "zip" else _load_legacy(path)
        return _resolve(obj, path)
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - any failure while decoding means the file is corrupt
        detail = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {detail})") from None


def _is_state_dict(obj):
    return (isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) for k in obj)
            and all(isinstance(v, np.ndarray) for v in obj.values()))


def extract_state_dict(obj, path) -> dict:
    """The parameter-name -> array mapping in a loaded checkpoint: ``obj`` itself or the one under a usual key."""
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(obj.get(key)):
                return obj[key]
        shown = ", ".join(repr(k) for k in list(obj)[:8]) + (", ..." if len(obj) > 8 else "")
        raise CheckpointError(f"{path}: no state dict in checkpoint: expected a mapping of parameter names to "
                              f"tensors, or one under {', '.join(map(repr, STATE_DICT_KEYS))}; top-level keys: "
                              f"{shown or 'none'}")
    raise CheckpointError(f"{path}: no state dict in checkpoint: it holds a {type(obj).__name__}, "
                          "not a mapping of parameter names to tensors")
