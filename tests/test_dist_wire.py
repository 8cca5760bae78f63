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
    for kind in (wire.ABORT, wire.PROBE, wire.BYE):
        h = wire.decode(wire.encode(kind, 0, 0, 0, 0, 0, None, (), -1, 0), 0)
        assert h.kind == kind and h.dtype is None and h.shape == ()
    for kind in (wire.P2P, wire.COLLECTIVE):  # these carry a tensor, so they need a dtype
        with pytest.raises(ValueError, match="has no dtype"):
            wire.decode(wire.encode(kind, 0, 0, 0, 0, 0, None, (), -1, 0))


@pytest.mark.parametrize("frame", [
    b"", b"DT", b"XX" + bytes(40),
    wire.encode(wire.P2P, 0, 0, 0, 0, 0, np.dtype(np.float32), (3,), -1, 12)[:-1],
    wire.encode(wire.P2P, 0, 0, 0, 0, 0, np.dtype(np.float32), (3,), -1, 12) + b"\0",
    b"DT\x02" + wire.encode(wire.P2P, 0, 0, 0, 0, 0, None, (), -1, 0)[3:],  # version 2
], ids=["empty", "magic only", "bad magic", "short shape", "long shape", "other version"])
def test_decode_refuses_what_is_not_a_dtrain_header(frame):
    with pytest.raises(ValueError):
        wire.decode(frame)


F32 = np.dtype(np.float32)
TB = 2**40


def _with_byte(frame, offset, value):  # byte 26 of a header is its dtype code
    return frame[:offset] + bytes([value]) + frame[offset + 1:]


@pytest.mark.parametrize("frame, payload, message", [
    # the payload that arrived is not the size the header declares
    (wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (TB // 4,), -1, TB), 16,
     f"declares {TB} payload bytes but 16 arrived"),
    (wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (4,), -1, 16), 15,
     "declares 16 payload bytes but 15 arrived"),
    (wire.encode(wire.COLLECTIVE, 0, 1, 0, 1, 0, F32, (4,), -1, 8), 0,
     "declares 8 payload bytes but 0 arrived"),
    (wire.encode(wire.BYE, 0, 0, 0, 0, 0, None, (), -1, 0), 3,
     "declares 0 payload bytes but 3 arrived"),
    # sizes that disagree within the header
    (wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (4,), -1, 12), 12,
     r"declares 12 payload bytes but shape \[4\] of float32 has 16"),
    (wire.encode(wire.COLLECTIVE, 0, 1, 0, 1, 0, F32, (4,), -1, 6), 6,
     "not a whole number of float32 elements"),
    # structure
    (wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (2, -3), -1, 0), None, "negative dimension"),
    (wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (1,) * 65, -1, 4), None, "65 dimensions"),
    (wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (2**31, 2**31, 2**31), -1, 0), None,
     "more than the limit"),
    (wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (2**62, 0), -1, 0), None, "more than the limit"),
    (wire.encode(wire.COLLECTIVE, 0, 1, 0, 1, 0, F32, (), -1, 2**60), None,
     f"declares {2**60} payload bytes, more than the limit"),
    (wire.encode(0, 0, 0, 0, 0, 0, None, (), -1, 0), None, "unknown kind 0"),
    (wire.encode(9, 0, 0, 0, 0, 0, None, (), -1, 0), None, "unknown kind 9"),
    (_with_byte(wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (), -1, 4), 26, 200), None,
     "unknown dtype code 200"),
], ids=["terabytes", "one byte short", "collective", "bye with payload", "p2p shape vs nbytes",
        "partial element", "negative dim", "too many dims", "huge shape", "huge dim",
        "huge nbytes", "kind 0", "kind 9", "dtype code"])
def test_decode_names_what_is_wrong_with_a_lying_header(frame, payload, message):
    with pytest.raises(ValueError, match=message):
        wire.decode(frame, payload)


def test_decode_checks_sizes_only_where_the_protocol_fixes_them():
    # a ring step's chunk is smaller than the call's tensor: fine for a collective
    h = wire.decode(wire.encode(wire.COLLECTIVE, 3, 9, 0, 1, 0, F32, (1000,), -1, 40), 40)
    assert h.shape == (1000,) and h.nbytes == 40
    # a probe carries its call's shape but no payload
    assert wire.decode(wire.encode(wire.PROBE, 3, 9, 0, 1, 0, F32, (1000,), -1, 0), 0)
    # an ABORT carries its text, and declares its length
    assert wire.decode(wire.encode(wire.ABORT, 0, 0, 0, 0, 2, None, (), -1, 11), 11)
    for nbytes in (0, 5):
        with pytest.raises(ValueError, match=f"declares {nbytes} payload bytes but 11 arrived"):
            wire.decode(wire.encode(wire.ABORT, 0, 0, 0, 0, 2, None, (), -1, nbytes), 11)
    # an empty tensor, and the biggest one allowed
    assert wire.decode(wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (0, 5), -1, 0), 0)
    big = wire.encode(wire.P2P, 0, 0, 0, 0, 0, F32, (2**24, 2**22), -1, 2**48)
    assert wire.decode(big).nbytes == wire.MAX_NBYTES


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
