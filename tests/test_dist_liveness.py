"""Slow and hung peers (dtrain/distributed/liveness.py): a collective that waits long names the
ranks it waits for (DTRAIN_STALL_SECONDS), and a peer that stops answering, though alive, is
declared gone after DTRAIN_PEER_TIMEOUT (the engines' PINGs)."""
import logging
import os
import signal
import time

import numpy as np
import pytest

from multiproc import run_ranks, run_script

# (collective, float32 elements): through a mailbox or slots in the caller's thread, or the engine
PATHS = {"mailbox": ("all_reduce", 4), "slots": ("all_reduce", 1 << 20),
         "engine": ("all_gather", 1 << 18)}


def call(dist, kind, size, world):
    """Make the collective ``kind`` on ``size`` ones; check and return nothing."""
    t = np.ones(size, np.float32)
    if kind == "all_reduce":
        dist.all_reduce(t)
        assert (t == world).all()
    else:
        outs = [np.zeros(size, np.float32) for _ in range(world)]
        dist.all_gather(outs, t)
        assert all((o == 1).all() for o in outs)


def late(rank, world, kind, size):
    import dtrain.distributed as dist
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("dtrain.distributed").addHandler(handler)
    dist.init_process_group("gloo")
    if rank == world - 1:
        time.sleep(1.6)
    call(dist, kind, size, world)
    dist.destroy_process_group()
    return [r.getMessage() for r in records if "stall" in r.getMessage()]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", list(PATHS))
def test_a_long_wait_logs_which_ranks_have_not_arrived(path):
    # on one host every rank reads every other's part, so it knows who is late (over the
    # network, a ring's rank knows only the neighbour it waits for)
    kind, size = PATHS[path]
    results = run_ranks(late, 3, kind, size, timeout=50,
                        env={"DTRAIN_STALL_SECONDS": "0.6", "DTRAIN_SHM": "1"})
    for rank in (0, 1):
        assert len(results[rank]) == 1, f"rank {rank} logged {results[rank]}"
        line = results[rank][0]
        assert f"[rank{rank}] stall: {kind} (group 0, op #1)" in line and "rank 2" in line
    assert results[2] == []


def hangs(rank, world, kind, size, tmp):
    import dtrain.distributed as dist
    pid_file, ready = os.path.join(tmp, "pid"), os.path.join(tmp, "ready")
    try:
        dist.init_process_group("gloo")
        if rank == 1:
            with open(pid_file, "w") as f:
                f.write(str(os.getpid()))
            # its own init messages may still wait in its ZeroMQ queue when its init returns:
            # stop only once rank 0's init has returned (it has them)
            while not os.path.exists(ready):
                time.sleep(0.005)
            os.kill(os.getpid(), signal.SIGSTOP)  # alive, but answers nothing
        open(ready, "w").close()
        while not os.path.exists(pid_file):
            time.sleep(0.005)
        start = time.monotonic()
        try:
            call(dist, kind, size, world)
            return "no error", 0.0
        except dist.DistError as e:
            return f"{type(e).__name__}: {e}", time.monotonic() - start
    finally:
        if rank == 0 and os.path.exists(pid_file):  # also when init failed: no 40 s hang
            os.kill(int(open(pid_file).read()), signal.SIGKILL)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", list(PATHS))
def test_a_peer_that_stops_answering_is_declared_gone(path, tmp_path):
    results = run_ranks(hangs, 2, *PATHS[path], str(tmp_path), timeout=40, expect_failure=True,
                        env={"DTRAIN_PEER_TIMEOUT": "1.5"})
    assert results[0][0] == "ok", results[0]
    message, took = results[0][1]
    assert message.startswith("DistPeerError") and "rank 1 is gone" in message, message
    assert 1.0 < took < 6.0, f"noticed after {took:.1f} s with a 1.5 s peer timeout"


CRASH = """
import sys, time
import numpy as np
import dtrain.distributed as dist
dist.init_process_group("gloo")
if dist.get_rank() == 1:
    raise ValueError("bad batch")   # uncaught: the process dies of it
start = time.monotonic()
try:
    dist.all_reduce(np.ones(4, np.float32))
except dist.DistPeerError as e:
    print(f"{time.monotonic() - start:.2f}", e)
"""


@pytest.mark.timeout(60)
def test_a_rank_dying_of_an_exception_leaves_at_once(tmp_path):
    # it does not wait for the others in the parting barrier: they learn of it at once
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    out = run_script(script)
    took, message = out[0][0].split(" ", 1)
    assert "rank 1 has left the process group" in message, out
    assert float(took) < 2.0, f"rank 0 learnt of rank 1's exit after {took} s"
    assert "ValueError: bad batch" in out[1][1]
