"""save and load: checkpoints as a zip of .npy arrays plus a JSON description. No pickle.

Format, version 1. A checkpoint is an uncompressed zip archive in numpy's .npz layout (so
``numpy.load`` can open it for inspection) with these entries:

- ``checkpoint.json``: ``{"format": "dtrain.checkpoint", "version": 1, "tensors": [...],
  "object": node}``, where ``tensors[i]`` is ``{"dtype": "float32", "shape": [2, 3],
  "requires_grad": false}`` and the values of tensor ``i`` are in ``tensors/i.npy``.
- A node is ``null``, ``true``/``false`` or a string for itself; anything else is a one-key
  object naming its type: ``{"int": 3}``, ``{"float": 0.5}`` (or ``"nan"``, ``"inf"``,
  ``"-inf"``), ``{"tensor": i}``, ``{"list": [node, ...]}``, ``{"tuple": [...]}``,
  ``{"Size": [...]}``, ``{"dict": [[key, value], ...]}``, ``{"OrderedDict": [...]}``. Dicts
  are lists of pairs so that int and tuple keys keep their type.

Loading parses JSON and reads .npy entries with ``allow_pickle=False``: nothing in the file can
run code. Tensors are saved by value: one Tensor object saved twice loads as one tensor, but
two views of one storage load as independent copies, and a non-contiguous view loads
contiguous. ``requires_grad`` is kept; ``.grad`` and Parameter-ness are not (as state_dicts).
"""
import collections
import contextlib
import errno
import io
import json
import math
import mmap as _mmap
import os
import secrets
import struct
import tokenize
import zipfile

import numpy as np
from numpy.lib import format as npy

from ._dtypes import ALL, check_device
from .tensor import Size, Tensor

FORMAT = "dtrain.checkpoint"
VERSION = 1
_DOC = "checkpoint.json"
_DTYPES = {d.name: d.np for d in ALL}
_CONTAINERS = {list: "list", tuple: "tuple", Size: "Size", dict: "dict",
               collections.OrderedDict: "OrderedDict"}
_SEQUENCES = {"list": list, "tuple": tuple, "Size": Size}
_MAPPINGS = {"dict": dict, "OrderedDict": collections.OrderedDict}
_NPY_HEADERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
# what a malformed zip, JSON document or .npy header raises while being read
_MALFORMED = (zipfile.BadZipFile, EOFError, ValueError, KeyError, TypeError, IndexError,
              AttributeError, struct.error, NotImplementedError, SyntaxError,
              tokenize.TokenError)


class CheckpointError(RuntimeError):
    """A file that ``dtrain.load`` cannot read as a dtrain checkpoint."""


def save(obj, f):
    """Save ``obj`` (Tensors in any nesting of dicts, OrderedDicts, lists and tuples, with str,
    int, float, bool and None) to ``f``: a path, or a binary file object such as ``BytesIO``.

    Saving to a path is atomic: the file is written beside the target and renamed over it, so
    a crash leaves either the previous checkpoint or the new one (a save killed outright can
    leave its hidden ``.<name>.<hex>.tmp`` file behind; errors remove it). Unlike torch,
    nothing is pickled: other object types raise TypeError before anything is written.

    >>> dtrain.save({"model": model.state_dict(), "step": 100}, "ckpt.pt")
    """
    encoder = _Encoder()
    root = encoder.node(obj, "obj")
    doc = {"format": FORMAT, "version": VERSION, "tensors": encoder.meta, "object": root}
    if isinstance(f, (str, os.PathLike)):
        _write_atomic(os.fspath(f), lambda out: _write(out, doc, encoder.arrays))
    elif hasattr(f, "write"):
        _write(f, doc, encoder.arrays)
    else:
        raise TypeError(f"dtrain.save: f must be a path (str or os.PathLike) or a binary file "
                        f"object with a write() method, but got {type(f).__name__}.")


def load(f, map_location=None, *, weights_only=None, mmap=None):
    """Load an object saved by ``dtrain.save`` from a path or a binary file object.

    ``map_location`` takes torch's forms (None, a device or its name, a dict, or a callable
    ``fn(tensor, "cpu")`` returning a tensor or None); dtrain runs on the CPU only, so mapping
    to another device raises. ``weights_only`` is accepted for torch compatibility: loading
    never runs code, so it is always as safe as ``weights_only=True``. With ``mmap=True`` (a
    path only) tensors are copy-on-write memory maps of the file instead of copies.

    >>> ckpt = dtrain.load("ckpt.pt", map_location="cpu")
    >>> model.load_state_dict(ckpt["model"])
    """
    restore = _restore_location(map_location)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            return _load(fh, repr(os.fspath(f)), restore, mmap)
    if not hasattr(f, "read"):
        raise TypeError(f"dtrain.load: f must be a path (str or os.PathLike) or a binary file "
                        f"object with a read() method, but got {type(f).__name__}.")
    if mmap:
        raise ValueError("dtrain.load: f must be a file path in order to use the mmap "
                         "argument; pass the checkpoint's path instead of a file object.")
    name = getattr(f, "name", None)
    name = repr(name) if isinstance(name, str) else f"the {type(f).__name__} object"
    if not (hasattr(f, "seekable") and f.seekable()):
        f = io.BytesIO(f.read())  # zipfile needs to seek to the directory at the end
    return _load(f, name, restore, False)


# --- saving --------------------------------------------------------------------------------

class _Encoder:
    """Turns an object into a JSON node, collecting its tensors' arrays on the way."""

    def __init__(self):
        self.arrays, self.meta = [], []
        self._index = {}  # id(tensor) -> entry, so a tensor saved twice loads as one
        self._open = set()  # ids of the containers being encoded, to catch cycles

    def node(self, obj, path):
        if obj is None or obj is True or obj is False or type(obj) is str:
            return obj
        if type(obj) is int:
            return {"int": obj}
        if type(obj) is float:
            return {"float": obj if math.isfinite(obj) else repr(obj)}  # 'nan', 'inf', '-inf'
        if isinstance(obj, Tensor):
            return {"tensor": self._tensor(obj)}
        kind = _CONTAINERS.get(type(obj))
        if kind is None:
            raise TypeError(
                f"dtrain.save cannot save {path}: it is a {type(obj).__module__}."
                f"{type(obj).__qualname__}, and a checkpoint holds only Tensors, dicts, "
                "OrderedDicts, lists, tuples, str, int, float, bool and None. Convert it first, "
                "e.g. a numpy array with dtrain.from_numpy(a), a numpy scalar with .item().")
        if id(obj) in self._open:
            raise ValueError(f"dtrain.save cannot save {path}: it contains itself, and a "
                             "checkpoint cannot hold reference cycles.")
        self._open.add(id(obj))
        try:
            if kind in _MAPPINGS:
                items = [[self.node(k, f"a key of {path}"), self.node(v, f"{path}[{k!r}]")]
                         for k, v in obj.items()]
            else:
                items = [self.node(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        finally:
            self._open.discard(id(obj))
        return {kind: items}

    def _tensor(self, t):
        index = self._index.get(id(t))
        if index is None:
            index = self._index[id(t)] = len(self.arrays)
            arr = t._data
            self.arrays.append(arr if arr.flags.c_contiguous else arr.copy(order="C"))
            self.meta.append({"dtype": t.dtype.name, "shape": list(arr.shape),
                              "requires_grad": t.requires_grad})
        return index


def _write(out, doc, arrays):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(_entry(_DOC), json.dumps(doc, allow_nan=False, separators=(",", ":")))
        for i, arr in enumerate(arrays):
            with zf.open(_entry(f"tensors/{i}.npy"), "w", force_zip64=arr.nbytes > 2**30) as e:
                npy.write_array(e, arr, allow_pickle=False)


def _entry(name):
    # a fixed timestamp, so that saving the same object twice gives the same bytes
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    return info


def _write_atomic(path, write):
    path = os.path.realpath(path)  # through a symlink to its target, as torch.save writes
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"dtrain.save: the directory '{directory}' does not exist, so "
                                f"'{path}' cannot be written. Create it first, e.g. with "
                                "os.makedirs(directory, exist_ok=True).")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 leaves the file mode to the umask, as a plain open() would
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    replaced = False
    try:
        with open(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        replaced = True
    finally:
        if not replaced:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_directory(directory)


def _fsync_directory(directory):
    # makes the rename durable; Windows and some filesystems cannot fsync a directory
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- loading -------------------------------------------------------------------------------

def _restore_location(map_location):
    """The per-tensor part of ``map_location``, or None. Every tensor was saved on the CPU, so
    only where 'cpu' maps to matters, and check_device refuses anything but the CPU."""
    if callable(map_location):
        return lambda t: _mapped_by(map_location, t)
    if isinstance(map_location, dict):
        map_location = map_location.get("cpu")
    check_device(map_location)
    return None


def _mapped_by(fn, t):
    out = fn(t, "cpu")
    if out is None:
        return t
    if not isinstance(out, Tensor):
        raise TypeError(f"dtrain.load: the map_location function returned a "
                        f"{type(out).__name__}; it must return the tensor it was given (or "
                        "None), since dtrain runs on the CPU only.")
    return out


def _load(fh, name, restore, use_mmap):
    try:
        doc, arrays = _read(fh, name, use_mmap)
    except CheckpointError:
        raise
    except _MALFORMED as e:
        raise _corrupt(name, e) from e
    except OSError as e:
        if e.errno != errno.EINVAL:  # a bad offset in the zip seeks before the file's start
            raise
        raise _corrupt(name, e) from e
    tensors = []
    for meta, arr in zip(doc["tensors"], arrays):
        t = Tensor._make(arr)
        if restore is not None:
            t = restore(t)
        t.requires_grad = meta["requires_grad"]
        tensors.append(t)
    try:
        return _decode(doc["object"], tensors)
    except _MALFORMED as e:
        raise _corrupt(name, e) from e


def _corrupt(name, error):
    why = str(error) or type(error).__name__
    return CheckpointError(f"dtrain.load: {name} is not a valid dtrain checkpoint (truncated or "
                           f"corrupt: {why}). It may have been written by an interrupted save "
                           "or by another program.")


def _torch_file(name, kind):
    return CheckpointError(
        f"dtrain.load: {name} is {kind}. dtrain cannot read pickled torch checkpoints "
        "(unpickling can run arbitrary code, so dtrain's format has no pickle). Convert it "
        "once in torch: sd = torch.load(path, map_location='cpu'); dtrain.save({k: "
        "dtrain.from_numpy(v.numpy()) for k, v in sd.items()}, new_path).")


def _read(fh, name, use_mmap):
    """The checkpoint's JSON document and its tensors' arrays, all checked against each other."""
    start = fh.tell()
    try:
        zf = zipfile.ZipFile(fh)
    except zipfile.BadZipFile:
        fh.seek(start)
        head = fh.read(1)
        if head == b"\x80":  # pickle protocol 2+: torch's legacy format or a bare pickle
            raise _torch_file(name, "a pickle file (torch's legacy torch.save format?)")
        raise ValueError("the file is empty" if not head else "it is not a zip archive")
    names = zf.namelist()
    if _DOC not in names:
        if any(n.endswith("data.pkl") for n in names):
            raise _torch_file(name, "a PyTorch checkpoint (a zip archive with a pickled data.pkl)")
        raise ValueError(f"it is a zip archive without the {_DOC} entry")
    if any(info.flag_bits & 0x1 for info in zf.infolist()):
        raise ValueError("its zip entries are marked as encrypted")
    doc = json.loads(zf.read(_DOC))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{_DOC} does not describe a dtrain checkpoint")
    version = doc.get("version")
    if type(version) is int and version > VERSION:
        raise CheckpointError(f"dtrain.load: {name} was written by a newer dtrain (checkpoint "
                              f"format {version}; this dtrain reads format {VERSION}). Upgrade "
                              "dtrain to load it.")
    if version != VERSION:
        raise ValueError(f"{_DOC} has an unknown format version {version!r}")
    mm = None
    if use_mmap:
        mm = _mmap.mmap(fh.fileno(), 0, access=_mmap.ACCESS_COPY)  # writes stay in memory
    return doc, [_read_array(zf, mm, i, meta) for i, meta in enumerate(doc["tensors"])]


def _read_array(zf, mm, i, meta):
    dtype, shape, grad = meta["dtype"], meta["shape"], meta["requires_grad"]
    if (dtype not in _DTYPES or type(shape) is not list or type(grad) is not bool
            or not all(type(s) is int and s >= 0 for s in shape)
            or (grad and _DTYPES[dtype].kind != "f")):
        raise ValueError(f"tensor {i} has an invalid description {meta!r:.200}")
    entry = f"tensors/{i}.npy"
    if mm is not None:
        arr = _map_array(zf, mm, entry)
    else:
        with zf.open(entry) as e:
            arr = npy.read_array(e, allow_pickle=False)
            if e.read(1):  # reading to the end also makes zipfile check the CRC
                raise ValueError(f"{entry} has bytes after its array")
    if arr.dtype != _DTYPES[dtype] or list(arr.shape) != shape:
        raise ValueError(f"{entry} holds {arr.dtype} of shape {list(arr.shape)}, but {_DOC} "
                         f"says {dtype} of shape {shape}")
    return arr


def _map_array(zf, mm, entry):
    """A view of ``entry``'s array inside the memory-mapped file (found through its zip local
    header), so nothing is read until used."""
    info = zf.getinfo(entry)
    h = info.header_offset
    if info.compress_type != zipfile.ZIP_STORED or mm[h:h + 4] != b"PK\x03\x04":
        raise ValueError(f"{entry} is not an uncompressed zip entry")
    name_len, extra_len = struct.unpack("<HH", mm[h + 26:h + 30])
    mm.seek(h + 30 + name_len + extra_len)
    end = mm.tell() + info.file_size
    shape, fortran, dtype = _NPY_HEADERS[npy.read_magic(mm)](mm)
    count = math.prod(shape)
    if dtype.hasobject or mm.tell() + count * dtype.itemsize != end:
        raise ValueError(f"{entry} does not hold a plain array of the size its header says")
    arr = np.frombuffer(mm, dtype, count=count, offset=mm.tell())
    return arr.reshape(shape, order="F" if fortran else "C")


def _decode(node, tensors):
    if node is None or type(node) in (bool, str):
        return node
    if type(node) is not dict or len(node) != 1:
        raise ValueError(f"unexpected JSON value {node!r:.80}")
    (kind, value), = node.items()
    if kind == "int" and type(value) is int:
        return value
    if kind == "float" and (type(value) in (int, float) or value in ("nan", "inf", "-inf")):
        return float(value)
    if kind == "tensor" and type(value) is int and 0 <= value < len(tensors):
        return tensors[value]
    if kind in _SEQUENCES and type(value) is list:
        return _SEQUENCES[kind](_decode(v, tensors) for v in value)
    if kind in _MAPPINGS and type(value) is list:
        return _MAPPINGS[kind]((_decode(k, tensors), _decode(v, tensors)) for k, v in value)
    raise ValueError(f"unexpected JSON value {node!r:.80}")
