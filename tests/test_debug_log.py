"""DTRAIN_DEBUG (dtrain/distributed/debug.py): the debug-level API, as torch's, and the log
lines that INFO and DETAIL write on real ranks."""
import re

import pytest

import dtrain.distributed as dist
from dtrain.distributed import debug
from multiproc import run_ranks


@pytest.fixture
def restore_level():
    before = dist.get_debug_level()
    yield
    dist.set_debug_level(before)


def test_debug_level_api(restore_level, monkeypatch):
    assert dist.get_debug_level() is dist.DebugLevel.OFF
    assert [level.name for level in dist.DebugLevel] == ["OFF", "INFO", "DETAIL"]
    assert repr(dist.DebugLevel.INFO) == "<DebugLevel.INFO: 1>"
    assert str(dist.DebugLevel.DETAIL) == "DebugLevel.DETAIL"
    assert dist.DebugLevel.INFO != 1 and dist.DebugLevel(2) is dist.DebugLevel.DETAIL
    dist.set_debug_level(dist.DebugLevel.DETAIL)
    assert dist.get_debug_level() is dist.DebugLevel.DETAIL and debug.detail
    with pytest.raises(TypeError, match="DebugLevel"):
        dist.set_debug_level("INFO")
    monkeypatch.setenv("DTRAIN_DEBUG", "info")
    dist.set_debug_level_from_env()
    assert dist.get_debug_level() is dist.DebugLevel.INFO and not debug.detail
    monkeypatch.setenv("DTRAIN_DEBUG", "verbose")
    with pytest.raises(ValueError, match="DTRAIN_DEBUG must be OFF, INFO, or DETAIL, got "
                                         "'verbose'"):
        dist.set_debug_level_from_env()
    monkeypatch.delenv("DTRAIN_DEBUG")
    dist.set_debug_level_from_env()
    assert dist.get_debug_level() is dist.DebugLevel.OFF


def test_debug_level_api_matches_torch(torch):
    import torch.distributed as tdist
    assert [level.name for level in tdist.DebugLevel.__members__.values()] == \
        [level.name for level in dist.DebugLevel]
    assert repr(tdist.DebugLevel.INFO) == repr(dist.DebugLevel.INFO)
    assert str(tdist.DebugLevel.DETAIL) == str(dist.DebugLevel.DETAIL)
    for name in ("get_debug_level", "set_debug_level", "set_debug_level_from_env"):
        assert hasattr(tdist, name) and hasattr(dist, name)


def logged_job(rank, world, capture):
    """A small job; returns what the "dtrain.distributed" logger wrote on this rank."""
    import io
    import logging
    import sys

    import dtrain
    import dtrain.distributed as dist
    import dtrain.nn.functional as F
    from dtrain.nn.parallel import DistributedDataParallel as DDP

    if capture == "handler":  # logging configured by the program
        lines = []
        handler = logging.Handler()
        handler.emit = lambda record: lines.append(record.getMessage())
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)  # the logger's own level decides
    else:  # not configured: dtrain prints to stderr
        sys.stderr = io.StringIO()
    dist.init_process_group("gloo")
    dist.all_reduce(dtrain.ones(3, 2))
    t = dtrain.zeros(4, dtype=dtrain.int64)
    if rank == 0:
        dist.send(t, dst=1)
    elif rank == 1:
        dist.recv(t, src=0)
    pair = dist.new_group([0, 1])
    dist.broadcast(t, src=0, group=pair)
    model = DDP(dtrain.nn.Linear(3, 2), bucket_cap_mb=0.00001)
    F.mse_loss(model(dtrain.ones(2, 3)), dtrain.zeros(2, 2)).backward()
    dist.destroy_process_group()
    return lines if capture == "handler" else sys.stderr.getvalue().splitlines()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("capture", ["handler", "stderr"])
def test_detail_logs_every_op_with_seq_and_duration(capture):
    logs = run_ranks(logged_job, 2, capture, env={"DTRAIN_DEBUG": "DETAIL"}, timeout=50)
    ms = r"\d+\.\d{3} ms"
    for rank, lines in enumerate(logs):
        assert lines and all(line.startswith(f"[rank{rank}] ") for line in lines), lines
        text = "\n".join(lines)
        assert re.search(rf"init_process_group: joined as rank {rank} of 2 \(group 0 'default'",
                         text), text
        assert f"new_group 1: as rank {rank} of 2" in text
        # sequence numbers count per group, from 1
        assert re.search(rf"all_reduce #1 \(group 0\): float32\[3, 2\], 24 bytes.*, {ms}$", text,
                         re.M), text
        assert re.search(rf"broadcast #1 \(group 1\): int64\[4\], 32 bytes.*, {ms}$", text, re.M)
        way = "send to rank 1" if rank == 0 else "recv from rank 0"
        assert re.search(rf"{way} \(group 0, tag 0\): int64\[4\], 32 bytes, {ms}$", text, re.M)
        # DDP: the bucket of the bias and of the weight, then the wait at the end of backward
        buckets = re.findall(rf"DDP bucket (\d) \(1 param, (\d+) bytes\): launched to "
                             rf"reduced in {ms}, all_reduce #(\d+) {ms}", text)
        assert sorted(buckets) == [("0", "8", "5"), ("1", "24", "6")], text
        assert re.search(rf"DDP backward: waited {ms} for 2 buckets at its end", text)
        assert "DistributedDataParallel: 2 parameters in 2 buckets of [8, 24] bytes" in text


def test_detail_names_the_algorithm():
    line = debug.OpWatch.describe
    watch = debug.OpWatch.__new__(debug.OpWatch)
    watch.name, watch.seq, watch.group, watch.tag = "all_reduce", 9, 0, None
    watch.dtype, watch.shape, watch.nbytes = "float32", (1024,), 4096
    watch.start_ns, watch.end_ns = 0, 1_500_000
    assert line(watch, "ring", None) == \
        "all_reduce #9 (group 0): float32[1024], 4096 bytes, algorithm ring, 1.500 ms"
    assert line(watch, "all_reduce", None).endswith("4096 bytes, 1.500 ms")
    assert line(watch, "ring", TimeoutError()).endswith("failed after 1.500 ms: TimeoutError")


@pytest.mark.timeout(60)
def test_info_logs_groups_but_not_ops():
    logs = run_ranks(logged_job, 2, "handler", env={"DTRAIN_DEBUG": "INFO"}, timeout=50)
    for rank, lines in enumerate(logs):
        assert len(lines) == 3, lines  # init, new_group, DDP
        assert "init_process_group: joined" in lines[0] and "new_group 1:" in lines[1]
        assert "DistributedDataParallel" in lines[2]


@pytest.mark.timeout(60)
def test_off_logs_nothing():
    assert run_ranks(logged_job, 2, "handler", env={"DTRAIN_DEBUG": "OFF"}, timeout=50) == \
        [[], []]
