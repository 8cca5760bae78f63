"""Single-process unit tests of dtrain.distributed's wire format (wire.py), of Work (work.py)
and of ReduceOp: no sockets, no processes."""
import threading
import time
from datetime import timedelta

import numpy as np
import pytest

from dtrain.distributed import DistTimeoutError, ReduceOp, wire
from dtrain.distributed.work import CompletedWork, Work, seconds

SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 0, 3), (1,) * 8]


@pytest.mark.parametrize("dtype", wire.DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_header_round_trip(dtype, shape):
    nbytes = int(np.prod(shape)) * dtype.itemsize
    head = wire.encode(wire.COLLECTIVE, 7, 2**40, -3, 4, 2, dtype, shape, 1, nbytes)
    h = wire.decode(head)
    assert (h.kind, h.group, h.seq, h.tag, h.collective, h.op, h.root, h.nbytes) == \
        (wire.COLLECTIVE, 7, 2**40, -3, 4, 2, 1, nbytes)
    assert h.dtype == dtype and h.shape == tuple(shape)
    assert "Header(" in repr(h)


def test_header_without_dtype_and_every_kind():
    for kind in (wire.P2P, wire.COLLECTIVE, wire.ABORT):
        h = wire.decode(wire.encode(kind, 0, 0, 0, 0, 0, None, (), -1, 0))
        assert h.kind == kind and h.dtype is None and h.shape == ()


@pytest.mark.parametrize("frame", [
    b"", b"DT", b"XX" + bytes(40),
    wire.encode(wire.P2P, 0, 0, 0, 0, 0, np.dtype(np.float32), (3,), -1, 12)[:-1],
    wire.encode(wire.P2P, 0, 0, 0, 0, 0, np.dtype(np.float32), (3,), -1, 12) + b"\0",
    b"DT\x02" + wire.encode(wire.P2P, 0, 0, 0, 0, 0, None, (), -1, 0)[3:],  # version 2
], ids=["empty", "magic only", "bad magic", "short shape", "long shape", "other version"])
def test_decode_refuses_what_is_not_a_dtrain_header(frame):
    with pytest.raises(ValueError):
        wire.decode(frame)


def test_as_array_is_a_read_only_view_of_the_payload():
    payload = np.arange(6, dtype=np.int32).tobytes()
    arr = wire.as_array(payload, np.dtype(np.int32), (2, 3))
    assert arr.shape == (2, 3) and arr.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert not arr.flags.writeable
    assert wire.as_array(b"", np.dtype(np.float64), (0, 4)).shape == (0, 4)


# --- Work ---------------------------------------------------------------------------------------

def test_work_wait_returns_true_and_runs_its_callbacks_once():
    w = Work("op", time.monotonic() + 10)
    ran = []
    w._after.append(lambda: ran.append(1))
    assert not w.is_completed()
    threading.Timer(0.05, w._finish).start()
    assert w.wait() is True and w.wait() is True
    assert ran == [1]
    assert w.is_completed() and w.is_success() and w.exception() is None
    assert "done" in repr(w)


def test_work_failure_is_raised_by_wait_and_returned_by_exception():
    w = Work("all_reduce (group 0, op #3)", time.monotonic() + 10)
    error = DistTimeoutError("boom")
    ran = []
    w._after.append(lambda: ran.append(1))
    w._finish(error)
    w._finish()  # a second finish does not overwrite the first
    with pytest.raises(DistTimeoutError, match="boom"):
        w.wait()
    assert w.exception() is error and w.is_completed() and not w.is_success()
    assert ran == []  # nothing is written back after a failure


def test_work_wait_with_a_timeout_names_the_operation():
    w = Work("recv from rank 1 with tag 2 (group 0)", time.monotonic() + 100)
    start = time.monotonic()
    with pytest.raises(DistTimeoutError, match="recv from rank 1 with tag 2"):
        w.wait(timeout=timedelta(seconds=0.1))
    assert time.monotonic() - start < 2
    assert "pending" in repr(w)


def test_source_rank_only_for_completed_receives():
    w = Work("recv", time.monotonic() + 10)
    with pytest.raises(RuntimeError, match="wait"):
        w.source_rank()
    w._finish(source=3)
    assert w.source_rank() == 3
    with pytest.raises(RuntimeError):
        CompletedWork().source_rank()
    assert CompletedWork(source=1).source_rank() == 1
    assert CompletedWork().wait() is True


def test_seconds():
    assert seconds(None) is None
    assert seconds(timedelta(minutes=1)) == 60.0
    assert seconds(2) == 2.0


# --- ReduceOp -----------------------------------------------------------------------------------

NAMES = ["SUM", "PRODUCT", "MAX", "MIN", "AVG", "BAND", "BOR", "BXOR"]


def test_reduce_op_accepts_members_names_and_itself():
    for name in NAMES:
        op = getattr(ReduceOp, name)
        assert ReduceOp(op) == op and ReduceOp(name.lower()) == op
        assert hash(ReduceOp(op)) == hash(ReduceOp(name))
    assert ReduceOp(ReduceOp.SUM) != ReduceOp.MAX
    with pytest.raises(ValueError):
        ReduceOp("MEDIAN")


@pytest.mark.torch
def test_reduce_ops_print_and_number_as_torchs(torch):
    ours = {n: (repr(getattr(ReduceOp, n)), int(getattr(ReduceOp, n))) for n in NAMES}
    theirs = {n: (repr(getattr(torch.distributed.ReduceOp, n)),
                  int(getattr(torch.distributed.ReduceOp, n))) for n in NAMES}
    assert ours == theirs
