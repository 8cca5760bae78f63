"""Run a benchmark function in N fresh processes on 127.0.0.1, and describe the machine.

``run_ranks(fn, world_size, *args)`` starts ``world_size`` interpreters with MASTER_ADDR,
MASTER_PORT (a free port), RANK and WORLD_SIZE set and one BLAS/OpenMP thread each, calls
``fn(rank, world_size, *args)`` in each (shipped with cloudpickle) and returns the list of
return values. A hard timeout kills every child; a failing child's traceback is raised.
The same idea as tests/multiproc.py, kept separate so benchmarks do not import the tests.
"""
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cloudpickle

ROOT = Path(__file__).resolve().parent.parent
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

_BOOT = """
import sys, traceback, cloudpickle
spec, out = sys.argv[1], sys.argv[2]
with open(spec, "rb") as f:
    fn, rank, size, args = cloudpickle.load(f)
try:
    result = ("ok", fn(rank, size, *args))
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


def run_ranks(fn, world_size, *args, timeout=300, env=None):
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` processes (``env`` added to their
    environment); their return values."""
    extra = env or {}
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dtrain-bench-") as tmp:
        procs = []
        for rank in range(world_size):
            spec = os.path.join(tmp, f"spec{rank}")
            with open(spec, "wb") as f:
                cloudpickle.dump((fn, rank, world_size, args), f)
            env = dict(os.environ, **ONE_THREAD, MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                       PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
            env.update(extra)
            log = open(os.path.join(tmp, f"log{rank}"), "w+b")
            procs.append((subprocess.Popen(
                [sys.executable, "-c", _BOOT, spec, os.path.join(tmp, f"out{rank}")],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log))
        deadline = time.monotonic() + timeout
        try:
            for proc, _ in procs:
                proc.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            pass
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        results, failures = [], []
        for rank, (proc, log) in enumerate(procs):
            log.seek(0)
            output = log.read().decode(errors="replace")
            log.close()
            out = os.path.join(tmp, f"out{rank}")
            if not os.path.exists(out):
                failures.append(f"--- rank {rank} exited with {proc.returncode} without a result "
                                f"(killed at the {timeout} s timeout if -9)\n{output[-3000:]}")
                continue
            with open(out, "rb") as f:
                result = cloudpickle.load(f)
            if result[0] != "ok":
                failures.append(f"--- rank {rank}: {result[1]}\n{result[2]}\n{output[-3000:]}")
            results.append(result[-1])
    if failures:
        raise RuntimeError(f"{len(failures)} of {world_size} benchmark processes failed:\n"
                           + "\n".join(failures))
    return results


def time_calls(call, repeat, warmup):
    """Seconds taken by each of ``repeat`` calls of ``call()``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def slowest_rank_median(per_rank_times):
    """The median over iterations of the slowest rank's time: a collective ends for the job
    when its last rank is done."""
    return statistics.median(max(ts) for ts in zip(*per_rank_times))


def repeats_for(nbytes, repeat, minimum=5):
    """Fewer repeats for large messages: ``repeat`` up to 1 MB, then about 4 MB x repeat worth
    of traffic, never below ``minimum``."""
    return max(minimum, min(repeat, repeat * 4 * 2**20 // max(nbytes, 1)))


def torch_or_none():
    """torch with one thread, or None (with a note) if it is not installed."""
    try:
        import torch
    except ImportError:
        print("torch is not installed: showing dtrain alone (gloo columns are '-')")
        return None
    torch.set_num_threads(1)
    return torch


def machine():
    """What the numbers were measured on, with the load average at the time of the call."""
    import numpy
    import zmq
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu": cpu, "nproc": os.cpu_count(),
            "python": platform.python_version(), "numpy": numpy.__version__,
            "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "torch": torch_version,
            "load_avg": os.getloadavg()}


def describe(meta):
    return (f"{meta['date']}; {meta['cpu']}, {meta['nproc']} cores; python {meta['python']}, "
            f"numpy {meta['numpy']}, pyzmq {meta['pyzmq']} (libzmq {meta['libzmq']}), "
            f"torch {meta['torch']}; load average {meta['load_avg'][0]:.2f}")


def fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


def fmt_bytes(n):
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"
