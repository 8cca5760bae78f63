"""The timeline (dtrain/timeline.py): spans recorded in-process, the merge into a Chrome trace,
and real jobs traced through `dtrain-run --trace` and DTRAIN_TRACE."""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dtrain
import dtrain.nn.functional as F
from dtrain import timeline
from dtrain.distributed import collectives
from dtrain.distributed.process_group import ProcessGroup
from multiproc import run_ranks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def recording(tmp_path):
    """Record this process's spans into tmp_path; stop (without writing) afterwards."""
    assert timeline.recorder is None, "DTRAIN_TRACE is set in the tests' environment"
    yield timeline.start(tmp_path)
    timeline.recorder = None


def spans_of(rec):
    return [(name, cat) for name, cat, *_ in rec.spans]


# --- checks shared by the tests on real jobs


def check_schema(trace):
    assert set(trace) >= {"traceEvents", "displayTimeUnit"}
    for e in trace["traceEvents"]:
        assert e["ph"] in ("X", "M"), e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int) and e["name"]
        if e["ph"] == "X":
            assert e["ts"] >= 0 and e["dur"] >= 0 and isinstance(e["args"], dict), e
            assert e["cat"] in (timeline.COMPUTE, timeline.COMM)


def check_nesting(events):
    """On every track, spans are nested or disjoint: never partly overlapping."""
    eps = 1e-6  # microseconds: float rounding of ts + dur
    tracks = {}
    for e in events:
        if e["ph"] == "X":
            tracks.setdefault((e["pid"], e["tid"]), []).append(e)
    for track, spans in tracks.items():
        open_ends = []
        for e in sorted(spans, key=lambda e: (e["ts"], -e["dur"])):
            while open_ends and open_ends[-1] <= e["ts"] + eps:
                open_ends.pop()
            end = e["ts"] + e["dur"]
            assert not open_ends or end <= open_ends[-1] + eps, \
                f"{e['name']} at {e['ts']} on track {track} overlaps its enclosing span"
            open_ends.append(end)
    return tracks


def names_by_rank(events):
    ranks = {}
    for e in events:
        if e["ph"] == "X":
            ranks.setdefault(e["pid"], set()).add(e["name"])
    return ranks


def process_names(events):
    return {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}


# --- in one process


def test_off_records_nothing():
    assert timeline.recorder is None
    pg = ProcessGroup(7, [0], 0, None, 5.0)
    work = pg.run("barrier", collectives.barrier, (), np.dtype(np.uint8), ())
    assert work.wait() and work._watch is None


def test_training_step_spans(recording):
    model = dtrain.nn.Sequential(dtrain.nn.Linear(4, 3), dtrain.nn.ReLU(), dtrain.nn.Linear(3, 2))
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1)
    with timeline.span("step", index=0):
        loss = F.cross_entropy(model(dtrain.randn(5, 4)), dtrain.tensor([0, 1, 0, 1, 1]))
        loss.backward()
        opt.step()
    # one forward span for the outermost module, not one per layer
    assert spans_of(recording) == [("forward", "compute"), ("backward", "compute"),
                                   ("optimizer.step", "compute"), ("step", "compute")]
    forward, backward, step, outer = recording.spans
    assert forward[4] == {"module": "Sequential"} and step[4] == {"optimizer": "SGD"}
    assert outer[4] == {"index": 0}
    assert outer[2] <= forward[2] <= forward[3] <= backward[2] <= step[3] <= outer[3]


def test_a_collective_is_a_span(recording):
    pg = ProcessGroup(7, [0], 0, None, 5.0)
    buf = np.ones(6, np.float32)
    pg.run("all_reduce", collectives.all_reduce, (buf, 0), buf.dtype, buf.shape, op=0).wait()
    (name, cat, start, end, args), = recording.spans
    assert (name, cat) == ("all_reduce", "communication") and start <= end
    assert args == {"group": 7, "bytes": 24, "dtype": np.float32, "shape": (6,), "seq": 1,
                    "algorithm": args["algorithm"]}


def test_stop_writes_the_rank_file(recording, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "3")
    with timeline.span("work"):
        pass
    path = timeline.stop()
    assert path == tmp_path / "rank-3.json" and timeline.recorder is None
    record = json.loads(path.read_text())
    assert record["rank"] == 3 and record["pid"] == os.getpid()
    assert [s["name"] for s in record["spans"]] == ["work"]
    assert [p.name for p in tmp_path.iterdir()] == ["rank-3.json"]  # no temporary left


def test_nothing_recorded_writes_nothing(recording, tmp_path):
    assert timeline.stop() is None and list(tmp_path.iterdir()) == []


# --- merging


def record(rank, spans, host="h"):
    return {"rank": rank, "pid": 100 + rank, "host": host, "clock": "time.time_ns",
            "spans": [{"name": n, "cat": c, "start_ns": s, "end_ns": e, "args": {}}
                      for n, c, s, e in spans]}


def test_merge_synthetic(tmp_path):
    us, ms = 1000, 1_000_000
    t0 = 1_700_000_000 * 10**9
    rank0 = [("forward", "compute", t0 + 1 * ms, t0 + 3 * ms),
             ("backward", "compute", t0 + 4 * ms, t0 + 9 * ms),
             # two buckets in flight at once, each with its all_reduce inside
             ("DDP bucket 0", "communication", t0 + 5 * ms, t0 + 8 * ms),
             ("all_reduce", "communication", t0 + 5500 * us, t0 + 8 * ms),
             ("DDP bucket 1", "communication", t0 + 6 * ms, t0 + 9 * ms),
             ("all_reduce", "communication", t0 + 6500 * us, t0 + 9 * ms)]
    rank1 = [("forward", "compute", t0 + 2 * ms, t0 + 4 * ms)]
    for rank, spans in ((0, rank0), (1, rank1)):
        (tmp_path / f"rank-{rank}.json").write_text(json.dumps(record(rank, spans)))
    out = timeline.merge(tmp_path)
    assert out == tmp_path / "trace.json"
    trace = json.loads(out.read_text())
    check_schema(trace)
    events = trace["traceEvents"]
    assert process_names(events) == {0: "rank 0", 1: "rank 1"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e["name"] == "thread_name"}
    assert threads == {(0, 1): "compute", (0, 2): "communication", (0, 3): "communication 2",
                       (1, 1): "compute"}
    tracks = check_nesting(events)
    assert [(e["name"], e["ts"], e["dur"]) for e in tracks[0, 2]] == \
        [("DDP bucket 0", 4000.0, 3000.0), ("all_reduce", 4500.0, 2500.0)]
    assert [e["name"] for e in tracks[0, 3]] == ["DDP bucket 1", "all_reduce"]
    assert tracks[1, 1][0]["ts"] == 1000.0  # one origin for every rank: the earliest span
    assert trace["otherData"]["origin_ns"] == t0 + ms


def test_merge_nothing(tmp_path):
    assert timeline.merge(tmp_path) is None and list(tmp_path.iterdir()) == []


def test_lanes_always_nest():
    rng = random.Random(0)
    for trial in range(200):
        spans = []
        for _ in range(rng.randint(1, 30)):
            start = rng.randint(0, 100)
            spans.append({"start_ns": start, "end_ns": start + rng.randint(0, 40)})
        lanes = timeline._lanes(spans)
        assert sorted(map(id, spans)) == sorted(id(s) for lane in lanes for s in lane)
        for lane in lanes:
            check_nesting([{"ph": "X", "pid": 0, "tid": 0, "name": "s", "ts": s["start_ns"],
                            "dur": s["end_ns"] - s["start_ns"]} for s in lane])


def test_clear_removes_an_earlier_run(tmp_path):
    for name in ("rank-0.json", "pid-12.json", "trace.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    timeline.clear(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# --- real jobs

JOB = """
import dtrain, dtrain.distributed as dist, dtrain.nn.functional as F
from dtrain import timeline
from dtrain.nn.parallel import DistributedDataParallel as DDP
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
dtrain.manual_seed(0)
model = DDP(dtrain.nn.Sequential(dtrain.nn.Linear(8, 16), dtrain.nn.ReLU(),
                                 dtrain.nn.Linear(16, 4)), bucket_cap_mb=0.0001)
opt = dtrain.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    with timeline.span("step", step=step):
        opt.zero_grad()
        F.cross_entropy(model(dtrain.randn(4, 8)), dtrain.tensor([0, 1, 2, 3])).backward()
        opt.step()
t = dtrain.ones(5)
if rank == 0:
    dist.send(t, dst=1)
elif rank == 1:
    dist.recv(t, src=0)
dist.all_reduce(dtrain.ones(1 << 16))
pair = dist.new_group([0, 1])
if rank < 2:
    dist.broadcast(t, src=0, group=pair)
dist.destroy_process_group()
"""


def check_job(trace, world):
    check_schema(trace)
    events = trace["traceEvents"]
    assert process_names(events) == {r: f"rank {r}" for r in range(world)}
    check_nesting(events)
    names = names_by_rank(events)
    assert sorted(names) == list(range(world))
    for rank, seen in names.items():
        assert {"forward", "backward", "optimizer.step", "step", "all_reduce",
                "DDP bucket 0", "DDP bucket 1"} <= seen, (rank, seen)
    assert {"send"} <= names[0] and {"recv"} <= names[1] and "broadcast" in names[1]
    spans = [e for e in events if e["ph"] == "X"]
    for e in spans:
        if e["cat"] == timeline.COMM and not e["name"].startswith("DDP"):
            assert {"group", "bytes", "dtype", "shape"} <= set(e["args"]), e
            assert ("seq" in e["args"] and "algorithm" in e["args"]) or "peer" in e["args"], e
    (send,) = [e for e in spans if e["name"] == "send"]
    assert send["args"]["peer"] == 1 and send["args"]["bytes"] == 20
    assert send["args"]["dtype"] == "float32" and send["args"]["shape"] == [5]
    big = [e for e in spans if e["name"] == "all_reduce" and e["args"]["bytes"] == 4 << 16]
    assert len(big) == world
    # a bucket's span holds its all_reduce (launch, then the reduction)
    for bucket in (e for e in spans if e["name"].startswith("DDP bucket")):
        (inner,) = [e for e in spans if e["pid"] == bucket["pid"] and e["name"] == "all_reduce"
                    and e["args"].get("seq") == bucket["args"]["seq"]]
        assert bucket["ts"] <= inner["ts"]
        assert inner["ts"] + inner["dur"] <= bucket["ts"] + bucket["dur"] + 1e-6
    # the user's step spans hold forward, backward and the optimizer step
    for rank in range(world):
        steps = [e for e in spans if e["pid"] == rank and e["name"] == "step"]
        inner = [e for e in spans if e["pid"] == rank
                 and e["name"] in ("forward", "backward", "optimizer.step")]
        assert len(steps) == 3 and len(inner) == 9
        assert all(any(s["ts"] <= e["ts"] and e["ts"] + e["dur"] <= s["ts"] + s["dur"] + 1e-6
                       for s in steps) for e in inner)


@pytest.mark.timeout(60)
def test_dtrain_run_trace(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "rank-7.json").write_text("{}")  # an earlier run's: the launcher removes it
    env = dict(os.environ, TMPDIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("DTRAIN_TRACE", None)
    proc = subprocess.run([sys.executable, "-m", "launcher", "--nprocs", "3", "--trace",
                           "traces", str(script)], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in traces.iterdir()) == \
        ["rank-0.json", "rank-1.json", "rank-2.json", "trace.json"]
    check_job(json.loads((traces / "trace.json").read_text()), 3)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("dtrain-run:")]
    assert any(line.startswith("dtrain-run: started 3 workers (pids ") for line in lines)
    assert any(line.startswith("dtrain-run: rendezvous complete: 3/3 workers joined in ")
               for line in lines), proc.stderr
    assert f"dtrain-run: timeline: {traces / 'trace.json'} (open it at" in proc.stderr


def traced_job(rank, world):
    import dtrain.timeline
    assert dtrain.timeline.recorder is not None
    exec(compile(JOB, "job.py", "exec"), {})
    return True


@pytest.mark.timeout(60)
def test_dtrain_trace_environment(tmp_path):
    assert run_ranks(traced_job, 2, env={"DTRAIN_TRACE": str(tmp_path)}, timeout=50) == \
        [True, True]
    check_job(json.loads(timeline.merge(tmp_path).read_text()), 2)
