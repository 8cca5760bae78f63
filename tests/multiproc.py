"""Run a function in N real processes that talk over real sockets on 127.0.0.1.

``run_ranks(fn, world_size)`` starts ``world_size`` fresh interpreters with MASTER_ADDR,
MASTER_PORT (a free port), RANK and WORLD_SIZE set, calls ``fn(rank, world_size, *args)`` in each
(shipped with cloudpickle, so closures and lambdas work), and returns the list of return values.
It enforces a hard timeout (then kills every child), and when a child fails it raises an
AssertionError that shows each failing child's traceback and output.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cloudpickle

ROOT = Path(__file__).resolve().parent.parent

_BOOT = """
import sys, traceback, cloudpickle
spec, out = sys.argv[1], sys.argv[2]
with open(spec, "rb") as f:
    fn, rank, size, args, kwargs = cloudpickle.load(f)
try:
    result = ("ok", fn(rank, size, *args, **kwargs))
except BaseException as e:
    result = ("error", f"{type(e).__name__}: {e}", traceback.format_exc())
with open(out, "wb") as f:
    cloudpickle.dump(result, f)
sys.exit(0 if result[0] == "ok" else 1)
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RankFailure(AssertionError):
    """One or more ranks failed; ``errors`` maps rank -> (message, traceback)."""

    def __init__(self, text, errors):
        super().__init__(text)
        self.errors = errors


def run_ranks(fn, world_size, *args, timeout=60, env=None, expect_failure=False, **kwargs):
    """Run ``fn(rank, world_size, *args, **kwargs)`` in ``world_size`` processes.

    Returns the ranks' return values. With ``expect_failure``, returns a dict rank ->
    ("ok", value) or ("error", message, traceback) instead of raising when a rank fails.
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dtrain-ranks-") as tmp:
        procs = []
        for rank in range(world_size):
            spec = os.path.join(tmp, f"spec{rank}")
            with open(spec, "wb") as f:
                cloudpickle.dump((fn, rank, world_size, args, kwargs), f)
            child_env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                             RANK=str(rank), WORLD_SIZE=str(world_size), OMP_NUM_THREADS="1",
                             OPENBLAS_NUM_THREADS="1",
                             PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                                         os.environ.get("PYTHONPATH", "")]))
            child_env.update(env or {})
            log = open(os.path.join(tmp, f"log{rank}"), "w+b")
            procs.append((subprocess.Popen(
                [sys.executable, "-c", _BOOT, spec, os.path.join(tmp, f"out{rank}")],
                env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
                log))
        deadline = time.monotonic() + timeout
        timed_out = False
        try:
            for proc, _ in procs:
                left = deadline - time.monotonic()
                try:
                    proc.wait(max(left, 0.01))
                except subprocess.TimeoutExpired:
                    timed_out = True
                    break
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        results, errors, logs = {}, {}, {}
        for rank, (proc, log) in enumerate(procs):
            log.seek(0)
            logs[rank] = log.read().decode(errors="replace")
            log.close()
            out = os.path.join(tmp, f"out{rank}")
            if os.path.exists(out):
                with open(out, "rb") as f:
                    results[rank] = cloudpickle.load(f)
            else:
                how = "was killed at the timeout" if timed_out else f"exited with {proc.returncode}"
                results[rank] = ("error", f"rank {rank} {how} without a result", logs[rank])
            if results[rank][0] != "ok":
                errors[rank] = results[rank][1:]
    if expect_failure:
        return results
    if timed_out or errors:
        parts = [f"{len(errors)} of {world_size} ranks failed"
                 + (f" (timeout {timeout} s: a hang)" if timed_out else "")]
        for rank, (message, trace) in sorted(errors.items()):
            parts.append(f"--- rank {rank}: {message}\n{trace}\n--- output:\n{logs[rank][-3000:]}")
        raise RankFailure("\n".join(parts), errors)
    return [results[r][1] for r in range(world_size)]


def run_script(path, world_size=2, timeout=40):
    """Run the script at ``path`` as ranks 0 .. world_size-1 with a fresh MASTER_PORT; returns
    each rank's (stdout, stderr). For what a worker function cannot show: a process that dies
    of an uncaught exception, or leaves by itself."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               WORLD_SIZE=str(world_size), PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, str(path)], env=dict(env, RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(world_size)]
    try:
        return [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def running(pid):
    """Whether pid is a live process (a zombie is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tagged(tag):
    """The live processes whose environment holds DTRAIN_TEST_TAG=tag."""
    needle = f"DTRAIN_TEST_TAG={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0") and running(int(entry)):
                        found.append(int(entry))
            except OSError:
                pass
    return found
