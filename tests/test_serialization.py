"""save/load: exact round trips of tensors and nested containers, file objects, errors for
corrupt, foreign and torch files, map_location, and atomic writes (including a save killed
mid-write by SIGKILL in a real subprocess).
"""
import collections
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dtrain
from dtrain.serialization import CheckpointError, load, save

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
SHAPES = [(), (0,), (5,), (2, 0, 3), (3, 4, 5)]
CPU_ONLY = "dtrain runs on the CPU only"


def sample(dtype, shape, seed=0):
    """A tensor of ``dtype`` with values across the dtype's range (nan and infinities too)."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        arr = rng.random(shape) < 0.5
    elif dtype.startswith("float"):
        arr = (rng.standard_normal(shape) * 1e3).astype(dtype)
        arr.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, -0.0][:arr.size]
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return dtrain.from_numpy(np.asarray(arr, dtype=dtype))


def same(a, b):
    """a and b are equal with identical types all the way down; tensors bit for bit."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dtrain.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        assert np.ascontiguousarray(a._data).tobytes() == b._data.tobytes()
    elif isinstance(a, dict):
        assert list(a) == list(b) and [type(k) for k in a] == [type(k) for k in b]
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b and repr(a) == repr(b)  # repr tells -0.0 from 0.0


def round_trip(obj, how="bytesio", tmp_path=None, **load_kwargs):
    if how == "bytesio":
        buf = io.BytesIO()
        save(obj, buf)
        buf.seek(0)
        return load(buf, **load_kwargs)
    path = tmp_path / "ckpt.pt"
    save(obj, path if how == "pathlike" else str(path))
    return load(path, mmap=how == "mmap", **load_kwargs)


def training_checkpoint():
    """What a training loop saves: a model state_dict, an optimizer state_dict, metadata."""
    model = collections.OrderedDict([
        ("layer1.0.weight", sample("float32", (4, 3))), ("layer1.0.bias", sample("float32", (4,))),
        ("bn.running_mean", sample("float32", (4,))),
        ("bn.num_batches_tracked", dtrain.tensor(7))])
    optim = {"state": {0: {"momentum_buffer": sample("float32", (4, 3)), "step": dtrain.tensor(7.)},
                       1: {"momentum_buffer": sample("float32", (4,)), "step": dtrain.tensor(7.)}},
             "param_groups": [{"lr": 0.1, "params": [0, 1], "betas": (0.9, 0.999), "eps": 1e-08,
                               "weight_decay": 0, "nesterov": False, "foreach": None,
                               "maximize": False}]}
    return {"model": model, "optimizer": optim, "epoch": 3, "best": float("inf"),
            "name": "résumé ✓", "history": [(1, 0.5), (2, float("nan"))],
            "shape": dtrain.Size([4, 3])}


# --- exact round trips ---------------------------------------------------------------------

@pytest.mark.parametrize("how", ["bytesio", "path", "pathlike", "mmap"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_shape_round_trips_bit_for_bit(dtype, how, tmp_path):
    tensors = [sample(dtype, shape, seed=i) for i, shape in enumerate(SHAPES)]
    loaded = round_trip(tensors, how, tmp_path)
    same(tensors, loaded)
    assert all(str(t.dtype) == f"dtrain.{dtype}" for t in loaded)


@pytest.mark.parametrize("how", ["bytesio", "path", "mmap"])
def test_training_checkpoint_round_trips_with_types_intact(how, tmp_path):
    ckpt = training_checkpoint()
    loaded = round_trip(ckpt, how, tmp_path)
    same(ckpt, loaded)
    assert type(loaded["model"]) is collections.OrderedDict
    assert list(loaded["optimizer"]["state"]) == [0, 1]  # int keys stay ints
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert type(loaded["optimizer"]["param_groups"][0]["weight_decay"]) is int


def test_scalars_keep_their_exact_type_and_value():
    values = [None, True, False, 0, -1, 2**100, 1.0, -0.0, 0.1, 5e-324, 1.7976931348623157e308,
              float("inf"), float("-inf"), float("nan"), "", "nul\0 and \ud800", (), [], {},
              collections.OrderedDict()]
    same(values, round_trip(values))
    keys = {1: "int", 1.5: "float", "1": "str", None: "none", (1, "a"): "tuple", False: "bool"}
    same(keys, round_trip(keys))


def test_deep_nesting_round_trips():
    obj = {"leaf": dtrain.ones(2)}
    for i in range(100):
        obj = [(i, {i: obj})] if i % 2 else collections.OrderedDict(next=obj)
    same(obj, round_trip(obj))


def test_requires_grad_is_kept_and_grad_is_not():
    w = dtrain.randn(3, requires_grad=True)
    (w * 2).sum().backward()
    loaded = round_trip({"w": w, "y": w * 2, "c": dtrain.ones(2)})
    assert loaded["w"].requires_grad and loaded["w"].is_leaf and loaded["w"].grad is None
    assert loaded["y"].requires_grad and loaded["y"].is_leaf  # as torch: saved as a leaf
    assert not loaded["c"].requires_grad


def test_views_are_saved_by_value_and_load_contiguous():
    base = dtrain.arange(24, dtype=dtrain.float32).reshape(4, 6)
    views = [base.t(), base[::2, 1::3], base[1], base.expand(2, 4, 6)]
    loaded = round_trip(views)
    for view, got in zip(views, loaded):
        np.testing.assert_array_equal(got._data, view._data)
        assert got.is_contiguous()
    loaded[0][0, 0] = 100.  # separate copies: the views no longer share storage
    assert loaded[1][0, 0].item() == 1.


def test_one_tensor_saved_twice_loads_as_one_tensor():
    w = dtrain.ones(3)
    loaded = round_trip({"embed.weight": w, "head.weight": w, "other": dtrain.ones(3)})
    assert loaded["embed.weight"] is loaded["head.weight"]
    assert loaded["other"] is not loaded["head.weight"]


def test_same_object_gives_same_bytes():
    ckpt = training_checkpoint()
    a, b = io.BytesIO(), io.BytesIO()
    save(ckpt, a)
    save(ckpt, b)
    assert a.getvalue() == b.getvalue()


def test_numpy_can_inspect_a_checkpoint(tmp_path):
    save({"w": dtrain.arange(3)}, tmp_path / "c.pt")
    with np.load(tmp_path / "c.pt", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["tensors/0"], [0, 1, 2])
        assert json.loads(npz["checkpoint.json"])["version"] == 1


# --- unsupported objects -------------------------------------------------------------------

Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize("bad, type_name", [
    (np.float32(1), "numpy.float32"), (np.ones(2), "numpy.ndarray"), ({1, 2}, "builtins.set"),
    (Point(1, 2), "Point"), (collections.defaultdict(int), "collections.defaultdict"),
    (dtrain.float32, "dtrain._dtypes.dtype"), (b"bytes", "builtins.bytes")])
def test_unsupported_type_names_its_type_and_path_and_writes_nothing(bad, type_name, tmp_path):
    target = tmp_path / "ckpt.pt"
    save({"ok": 1}, target)
    before = target.read_bytes()
    with pytest.raises(TypeError, match=rf"cannot save obj\['state'\]\['foo'\]\[2\]: it is a "
                                        rf"\S*{type_name}, and a checkpoint holds only Tensors"):
        save({"state": {"foo": [0, 1, bad]}}, target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.pt"]


def test_unsupported_key_and_reference_cycle_are_refused():
    with pytest.raises(TypeError, match=r"cannot save a key of obj\['d'\]: it is a builtins.obj"):
        save({"d": {object(): 1}}, io.BytesIO())
    loop = [1]
    loop.append({"again": loop})
    with pytest.raises(ValueError, match=r"cannot save obj\[1\]\['again'\]: it contains itself"):
        save(loop, io.BytesIO())


# --- files and file objects ----------------------------------------------------------------

def test_open_file_objects_and_a_stream_at_an_offset(tmp_path):
    ckpt = training_checkpoint()
    with open(tmp_path / "c.pt", "wb") as f:
        save(ckpt, f)
    with open(tmp_path / "c.pt", "rb") as f:
        same(ckpt, load(f))
    buf = io.BytesIO()
    buf.write(b"header bytes ")
    save(ckpt, buf)
    buf.seek(len(b"header bytes "))
    same(ckpt, load(buf))


class StreamOnly(io.RawIOBase):
    """A pipe-like binary stream: no seek, no tell."""

    def __init__(self, data=b""):
        self.buf = io.BytesIO(data)

    def readable(self):
        return True

    def writable(self):
        return True

    def readinto(self, b):
        return self.buf.readinto(b)

    def write(self, b):
        return self.buf.write(b)


def test_unseekable_streams():
    out = StreamOnly()
    save({"w": dtrain.arange(5)}, out)
    assert dtrain.equal(load(StreamOnly(out.buf.getvalue()))["w"], dtrain.arange(5))


def test_bad_f_and_mmap_on_a_file_object():
    with pytest.raises(TypeError, match="must be a path .* or a binary file object"):
        save({}, 42)
    with pytest.raises(TypeError, match="must be a path .* or a binary file object"):
        load(b"not a path")
    with pytest.raises(ValueError, match="f must be a file path in order to use the mmap"):
        load(io.BytesIO(), mmap=True)


def test_mmap_tensors_are_copy_on_write(tmp_path):
    path = tmp_path / "c.pt"
    save({"w": dtrain.zeros(1000)}, path)
    before = path.read_bytes()
    w = load(path, mmap=True)["w"]
    w.add_(1)
    assert w.sum().item() == 1000 and path.read_bytes() == before


def test_save_to_a_missing_directory_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="the directory .*nope' does not exist"):
        save({}, tmp_path / "nope" / "c.pt")


def test_save_through_a_symlink_writes_its_target(tmp_path):
    (tmp_path / "real.pt").write_bytes(b"old")
    (tmp_path / "latest.pt").symlink_to("real.pt")
    save({"x": 1}, tmp_path / "latest.pt")
    assert (tmp_path / "latest.pt").is_symlink() and load(tmp_path / "real.pt") == {"x": 1}


def test_file_mode_follows_the_umask_like_open(tmp_path):
    save({}, tmp_path / "c.pt")
    (tmp_path / "plain").write_bytes(b"")
    assert (tmp_path / "c.pt").stat().st_mode == (tmp_path / "plain").stat().st_mode


# --- unreadable files ----------------------------------------------------------------------

def corrupt_message(name):
    return (rf"dtrain.load: '\S*{name}' is not a valid dtrain checkpoint \(truncated or corrupt: "
            r".*\)\. It may have been written by an interrupted save or by another program\.")


def test_every_truncation_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    save(training_checkpoint(), path)
    data = path.read_bytes()
    for n in list(range(0, 300)) + list(range(300, len(data), 7)):
        with pytest.raises(CheckpointError, match=corrupt_message("ckpt.pt")):
            load(_write(path, data[:n]))
    with pytest.raises(CheckpointError, match="dtrain.load: the BytesIO object is not a valid"):
        load(io.BytesIO(data[:-1]))


def _write(path, data):
    path.write_bytes(data)
    return path


def test_empty_random_and_flipped_files(tmp_path):
    path = tmp_path / "ckpt.pt"
    with pytest.raises(CheckpointError, match=r"\(truncated or corrupt: the file is empty\)"):
        load(_write(path, b""))
    rng = random.Random(0)
    for n in (1, 22, 100, 5000):
        with pytest.raises(CheckpointError, match=corrupt_message("ckpt.pt")):
            load(_write(path, bytes(rng.randrange(256) for _ in range(n))))
    save({"w": dtrain.zeros(10000)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # inside the tensor's values: zip's CRC catches it
    with pytest.raises(CheckpointError, match="Bad CRC-32"):
        load(_write(path, bytes(data)))


def crafted(tmp_path, doc, arrays=(), name="ckpt.pt"):
    """A zip in checkpoint layout with the given JSON document and .npy arrays."""
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("checkpoint.json", doc if isinstance(doc, str) else json.dumps(doc))
        for i, arr in enumerate(arrays):
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=True)
            zf.writestr(f"tensors/{i}.npy", buf.getvalue())
    return path


def doc(obj, tensors=()):
    return {"format": "dtrain.checkpoint", "version": 1, "tensors": list(tensors), "object": obj}


F32 = {"dtype": "float32", "shape": [2], "requires_grad": False}


@pytest.mark.parametrize("document, arrays, why", [
    ("{not json", [], "Expecting property name"),
    ({"format": "other"}, [], "does not describe a dtrain checkpoint"),
    (doc({"tensor": 0}, [F32]), [], "no item named 'tensors/0.npy'"),
    (doc({"tensor": 1}, [F32]), [np.ones(2, np.float32)], "unexpected JSON value"),
    (doc({"tensor": 0}, [F32]), [np.ones(3, np.float32)], "holds float32 of shape \\[3\\]"),
    (doc({"tensor": 0}, [F32]), [np.ones(2, ">f4")], "holds >f4"),
    (doc({"tensor": 0}, [dict(F32, dtype="complex64")]), [np.ones(2)], "invalid description"),
    (doc({"tensor": 0}, [dict(F32, dtype="int64", requires_grad=True)]), [np.ones(2, "i8")],
     "invalid description"),
    (doc({"set": [1]}), [], "unexpected JSON value"),
    (doc({"dict": [[{"list": []}, None]]}), [], "unhashable type"),
    (doc({"int": 1.5}), [], "unexpected JSON value"),
])
def test_malformed_contents_are_clear_errors(tmp_path, document, arrays, why):
    with pytest.raises(CheckpointError, match=rf"'\S*ckpt.pt' is not a valid dtrain checkpoint "
                                              rf"\(truncated or corrupt: .*{why}"):
        load(crafted(tmp_path, document, arrays))


def test_a_pickled_npy_entry_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = np.array([Payload()], dtype=object)
    for mmap in (False, True):
        path = crafted(tmp_path, doc({"tensor": 0}, [F32]), [evil])
        with pytest.raises(CheckpointError, match="corrupt"):
            load(path, mmap=mmap)
    assert not marker.exists()


def test_newer_format_and_foreign_zip(tmp_path):
    with pytest.raises(CheckpointError, match="written by a newer dtrain .*format 2.* Upgrade"):
        load(crafted(tmp_path, dict(doc(None), version=2)))
    np.savez(tmp_path / "arrays.npz", a=np.ones(2))
    with pytest.raises(CheckpointError, match="zip archive without the checkpoint.json entry"):
        load(tmp_path / "arrays.npz")


@pytest.mark.torch
@pytest.mark.parametrize("zipped", [True, False])
def test_torch_checkpoint_gets_a_specific_message(torch, tmp_path, zipped):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(CheckpointError, match=r"'\S*model.pt' is .*\. dtrain cannot read pickled "
                                              r"torch checkpoints .* Convert it once in torch"):
        load(path)


@pytest.mark.torch
def test_the_suggested_torch_conversion_is_exact(torch, tmp_path):
    sd = torch.nn.Linear(3, 2).state_dict()
    torch.save(sd, tmp_path / "model.pt")
    sd = torch.load(tmp_path / "model.pt", map_location="cpu")
    save({k: dtrain.from_numpy(v.numpy()) for k, v in sd.items()}, tmp_path / "model.dt")
    loaded = load(tmp_path / "model.dt")
    assert list(loaded) == list(sd)
    for k, v in sd.items():
        assert loaded[k]._data.tobytes() == v.numpy().tobytes()


# --- map_location and weights_only ---------------------------------------------------------

def _same_tensor(t, loc):
    return t


@pytest.mark.parametrize("where", [None, "cpu", dtrain.device("cpu"), {"cuda:0": "cpu"},
                                   {"cuda:0": "cuda:1"}, {"cpu": "cpu"}, _same_tensor,
                                   lambda t, loc: None, lambda t, loc: t.cpu()])
def test_map_location_to_cpu(where):
    ckpt = training_checkpoint()
    same(ckpt, round_trip(ckpt, map_location=where))


@pytest.mark.parametrize("where", ["cuda", "cuda:1", dtrain.device("cuda", 0), {"cpu": "cuda:0"},
                                   lambda t, loc: t.cuda()])
def test_map_location_to_cuda_is_dtrains_cpu_only_error(where):
    with pytest.raises(RuntimeError, match=CPU_ONLY):
        round_trip({"w": dtrain.ones(2)}, map_location=where)


def test_map_location_function_must_return_a_tensor():
    with pytest.raises(TypeError, match="map_location function returned a str"):
        round_trip({"w": dtrain.ones(2)}, map_location=lambda t, loc: "cpu")


@pytest.mark.torch
def test_map_location_accepts_torch_devices(torch):
    assert round_trip([1], map_location=torch.device("cpu")) == [1]
    with pytest.raises(RuntimeError, match=CPU_ONLY):
        round_trip([1], map_location=torch.device("cuda:0"))


@pytest.mark.parametrize("weights_only", [None, True, False])
def test_weights_only_is_accepted(weights_only):
    assert round_trip({"a": (1,)}, weights_only=weights_only) == {"a": (1,)}


# --- atomic writes -------------------------------------------------------------------------

@pytest.mark.parametrize("failure", ["fsync", "replace", "write", "interrupt"])
def test_failed_save_keeps_the_old_file_and_removes_its_temp_file(tmp_path, monkeypatch,
                                                                  failure):
    path = tmp_path / "ckpt.pt"
    save({"step": 1}, path)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt if failure == "interrupt" else OSError(28, "No space left")

    target = {"fsync": (os, "fsync"), "replace": (os, "replace")}.get(
        failure, (np.lib.format, "write_array"))
    monkeypatch.setattr(*target, fail)
    with pytest.raises((OSError, KeyboardInterrupt)):
        save({"step": 2, "w": dtrain.ones(3)}, path)
    monkeypatch.undo()
    assert load(path) == {"step": 1} and os.listdir(tmp_path) == ["ckpt.pt"]


SAVE_FOREVER = """
import sys
import numpy as np
import dtrain
from dtrain.serialization import save
base = np.arange(1 << 21, dtype=np.float64)
step = 1
while True:
    save({"step": step, "w": dtrain.from_numpy(base + step), "meta": {"lr": 0.1}}, sys.argv[1])
    step += 1
"""


def checked_step(path):
    """The step of the complete checkpoint at ``path``; fails if its contents disagree."""
    ckpt = load(path)
    step = ckpt["step"]
    assert ckpt["meta"] == {"lr": 0.1}
    np.testing.assert_array_equal(ckpt["w"]._data, np.arange(1 << 21, dtype=np.float64) + step)
    return step


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_save_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    save({"step": 0, "w": dtrain.from_numpy(np.arange(1 << 21, dtype=np.float64)),
          "meta": {"lr": 0.1}}, path)
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    rng = random.Random(0)
    step = 0
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(path)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # readers polling meanwhile only ever see complete checkpoints
            deadline = time.monotonic() + 30
            while checked_step(path) <= step:
                assert child.poll() is None, child.stderr.read().decode()
                assert time.monotonic() < deadline, "the saving subprocess made no progress"
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.1))
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        new_step = checked_step(path)
        assert new_step > step
        step = new_step
    # a killed save cannot remove its temp file; only the hidden temp files may remain, and
    # finding one shows that a kill landed mid-write
    temps = [p.name for p in tmp_path.iterdir() if p.name != "ckpt.pt"]
    assert temps and all(n.startswith(".ckpt.pt.") and n.endswith(".tmp") for n in temps)
