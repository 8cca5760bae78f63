"""Timelines: each rank records spans of what it did; merged, they open in Perfetto.

``dtrain-run --trace DIR`` (or DTRAIN_TRACE=DIR in the workers' environment) turns recording on
when dtrain is imported. Each process then records forward (the outermost module call),
backward, ``optimizer.step``, every collective and point-to-point op (bytes, peer or group,
algorithm, sequence number) and every DDP bucket, and writes ``DIR/rank-N.json`` when it exits.
The launcher merges those into ``DIR/trace.json`` in Chrome's trace event format: one process
per rank, a "compute" track and as many "communication" tracks as overlapping ops need.

Times come from ``time.time_ns()``, one clock for every process of a machine; across machines
the spans are only as aligned as the machines' clocks are (NTP: about a millisecond).

When recording is off, ``recorder`` is None: testing that is all the hot paths pay.

>>> import dtrain.timeline as timeline
>>> timeline.start("traces")            # or DTRAIN_TRACE=traces before starting Python
>>> with timeline.span("load data"):
...     batch = next(it)
>>> timeline.stop()                     # writes traces/rank-N.json (also done at exit)
>>> timeline.merge("traces")            # traces/trace.json (dtrain-run does this)
"""
import atexit
import json
import multiprocessing.util
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

COMPUTE, COMM = "compute", "communication"  # span categories; each gets its own tracks
MERGED = "trace.json"

recorder = None  # the Recorder while recording, else None


class Recorder:
    """Spans of one process, kept in memory until ``write``. Appending to a list is atomic
    under the GIL, so the engine thread and the main thread both record here."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.rank = None  # set when the default group is made; else RANK, else the pid
        self.spans = []
        self.forwarding = False  # inside the outermost Module call

    def add(self, name, category, start_ns, end_ns=None, args=None):
        """Record a span that started at ``start_ns`` (``time.time_ns()``) and ends now."""
        self.spans.append((name, category, start_ns, end_ns or time.time_ns(), args))

    def forward(self, module, args, kwargs):
        """Call ``module`` as the outermost module of a forward pass, as a "forward" span."""
        self.forwarding = True
        start = time.time_ns()
        try:
            return module(*args, **kwargs)
        finally:
            self.forwarding = False
            self.add("forward", COMPUTE, start, args={"module": type(module).__name__})

    def _rank(self):
        return self.rank if self.rank is not None else _int(os.environ.get("RANK"))

    def path(self):
        rank = self._rank()
        name = f"rank-{rank}" if rank is not None else f"pid-{os.getpid()}"
        return self.directory / f"{name}.json"

    def write(self):
        """Write every span so far to DIR/rank-N.json, atomically (a reader never sees half).
        A process that recorded nothing (dtrain-run itself) writes nothing."""
        spans = list(self.spans)
        if not spans:
            return None
        record = {"rank": self._rank(), "pid": os.getpid(), "host": socket.gethostname(),
                  "clock": "time.time_ns",
                  "spans": [{"name": n, "cat": c, "start_ns": s, "end_ns": e, "args": a or {}}
                            for n, c, s, e, a in spans]}
        target = self.path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, separators=(",", ":"), default=str)  # default: numpy dtypes
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        return target


def start(directory):
    """Start recording this process's spans; they go to ``directory`` at ``stop()`` or exit.

    >>> dtrain.timeline.start("traces")
    """
    global recorder
    if recorder is None:
        recorder = Recorder(directory)
    return recorder


def stop():
    """Stop recording and write the spans; returns the file written (None if not recording).

    >>> dtrain.timeline.stop()
    PosixPath('traces/rank-0.json')
    """
    global recorder
    rec, recorder = recorder, None
    return rec.write() if rec is not None else None


@contextmanager
def span(name, **args):
    """Record a span of your own on the compute track (nothing when not recording).

    >>> with dtrain.timeline.span("evaluate", epoch=3):
    ...     accuracy = evaluate(model)
    """
    rec = recorder
    if rec is None:
        yield
        return
    begin = time.time_ns()
    try:
        yield
    finally:
        rec.add(name, COMPUTE, begin, args=args or None)


def _files(directory):
    directory = Path(directory)
    return sorted(directory.glob("rank-*.json")) + sorted(directory.glob("pid-*.json"))


def clear(directory):
    """Remove the per-process files (and the merged trace) of an earlier run in ``directory``.

    >>> dtrain.timeline.clear("traces")
    """
    for path in _files(directory) + [Path(directory) / MERGED]:
        path.unlink(missing_ok=True)


def merge(directory, out=None):
    """Merge the ``rank-N.json`` files of ``directory`` into one Chrome trace (``trace.json``
    there unless ``out`` is given); returns its path, or None if there was nothing to merge.
    Open the result at https://ui.perfetto.dev or chrome://tracing.

    >>> dtrain.timeline.merge("traces")
    PosixPath('traces/trace.json')
    """
    directory = Path(directory)
    records = []
    for path in _files(directory):
        with open(path, encoding="utf-8") as f:
            records.append(json.load(f))
    if not records:
        return None
    out = Path(out) if out is not None else directory / MERGED
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(chrome_trace(records), f, separators=(",", ":"))
    os.replace(tmp, out)
    return out


def chrome_trace(records):
    """Chrome trace events from per-process records (as ``Recorder.write`` makes them): "X"
    events in microseconds from the earliest span, one pid per rank, and tracks (tids) packed
    so that spans on one track are nested or disjoint, never partly overlapping."""
    starts = [s["start_ns"] for r in records for s in r["spans"]]
    origin = min(starts) if starts else 0
    events = []
    for record in sorted(records, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["pid"])):
        rank = record["rank"]
        pid = rank if rank is not None else record["pid"]
        label = f"rank {rank}" if rank is not None else f"pid {record['pid']}"
        events.append(_meta("process_name", pid, 0, name=label))
        events.append(_meta("process_sort_index", pid, 0, sort_index=pid))
        tid = 0
        for category in (COMPUTE, COMM):
            spans = [s for s in record["spans"] if s["cat"] == category]
            for lane, lane_spans in enumerate(_lanes(spans)):
                tid += 1
                track = category if lane == 0 else f"{category} {lane + 1}"
                events.append(_meta("thread_name", pid, tid, name=track))
                events.append(_meta("thread_sort_index", pid, tid, sort_index=tid))
                for s in lane_spans:
                    events.append({"name": s["name"], "cat": category, "ph": "X",
                                   "ts": (s["start_ns"] - origin) / 1000,
                                   "dur": (s["end_ns"] - s["start_ns"]) / 1000,
                                   "pid": pid, "tid": tid, "args": s["args"]})
    hosts = sorted({r["host"] for r in records})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"clock": "time.time_ns", "origin_ns": origin, "hosts": hosts}}


def _meta(what, pid, tid, **args):
    return {"name": what, "ph": "M", "pid": pid, "tid": tid, "args": args}


def _lanes(spans):
    """Spans split into lanes, each properly nested: a span joins the first lane whose
    innermost open span contains it (or that has none open), else a new lane."""
    lanes, open_ends = [], []
    for s in sorted(spans, key=lambda s: (s["start_ns"], -s["end_ns"])):
        for lane, ends in zip(lanes, open_ends):
            while ends and ends[-1] <= s["start_ns"]:
                ends.pop()
            if not ends or s["end_ns"] <= ends[-1]:
                break
        else:
            lane, ends = [], []
            lanes.append(lane)
            open_ends.append(ends)
        lane.append(s)
        ends.append(s["end_ns"])
    return lanes


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _write_at_exit():
    rec = recorder
    try:
        stop()  # once: both hooks below may run
    except OSError as e:
        print(f"dtrain: could not write the timeline to {rec.path()}: {e}", file=sys.stderr)


# multiprocessing's children end with os._exit, which skips atexit but runs its finalizers
atexit.register(_write_at_exit)
multiprocessing.util.Finalize(None, _write_at_exit, exitpriority=0)

if os.environ.get("DTRAIN_TRACE"):
    start(os.environ["DTRAIN_TRACE"])

