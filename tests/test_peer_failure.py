"""A rank SIGKILLed in the middle of communication (issue 8, item 1).

Three ranks meet; one, the victim, is SIGKILLed during an all_reduce, a point-to-point call or a
DDP backward. Every survivor must raise DistPeerError naming the victim within 10 s, and exit;
nothing may be left running. Each case runs twice: under dtrain-run (`python -m launcher`), and
with manual env:// start-up (MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE, one Popen per rank).

The worker script talks to the test through files in its directory: ``pid<R>`` when it starts,
``entering<R>`` just before a survivor blocks in the call under test (the victim writes
``ready<R>`` instead, and then sleeps, or kills itself and writes ``killing<R>`` first), and
``result<R>`` (JSON) with the exception a survivor got and the time.monotonic() it got it
(CLOCK_MONOTONIC is one clock for every process on Linux, so the test compares it with the
moment it sent SIGKILL).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from multiproc import ROOT, free_port, running, tagged

WORLD = 3
BOUND = 10.0  # s: the limit from the kill to DistPeerError on every survivor
EXIT_BOUND = BOUND + 5  # s: from the kill to every survivor's exit

WORKER = r'''
import json, os, signal, sys, time
import dtrain, dtrain.distributed as dist

case, out, victim = sys.argv[1], sys.argv[2], int(sys.argv[3])
rank = int(os.environ["RANK"])


def mark(name, text=""):
    path = os.path.join(out, f"{name}{rank}")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)  # whole, or not there: the test reads it once it exists


def die():
    mark("killing", repr(time.monotonic()))
    os.kill(os.getpid(), signal.SIGKILL)


mark("pid", str(os.getpid()))
dist.init_process_group("gloo")
survivors = [r for r in range(dist.get_world_size()) if r != victim]
t = dtrain.ones(256 * 1024 if case == "all_reduce_large" else 4)
dist.all_reduce(t)  # every rank works before the failure
assert t[0].item() == dist.get_world_size(), t

if case == "ddp":
    import dtrain.nn as nn
    import dtrain.nn.functional as F
    from dtrain.nn.parallel import DistributedDataParallel as DDP
    dtrain.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                        nn.Linear(64, 10))
    model = DDP(net, bucket_cap_mb=0.01)  # a bucket per layer: several all_reduces per backward
    x, y = dtrain.randn(16, 64), dtrain.randint(0, 10, (16,))
    F.cross_entropy(model(x), y).backward()  # a whole step first
    if rank == victim:
        # the first layer's gradient comes last: the later layers' buckets are in flight
        net[0].weight.register_hook(lambda grad: die())
    loss = F.cross_entropy(model(x), y)
    mark("entering", repr(time.monotonic()))
    call = loss.backward
elif rank == victim:
    if case in ("p2p", "send_large"):  # take what the survivors send until killed
        senders = survivors if case == "send_large" else survivors[1:]
        buf = dtrain.zeros(256 * 1024 if case == "send_large" else 4)
        for i in range(100000):
            dist.recv(buf, src=senders[i % len(senders)])
            if i == 4:
                mark("ready")
    else:
        mark("ready")
    time.sleep(60)  # no part in the call: the test kills this process here
    sys.exit("the victim was not killed")
elif case.startswith("all_reduce"):
    call = lambda: dist.all_reduce(t)
elif case == "p2p" and rank == survivors[0]:
    call = lambda: dist.recv(t, src=victim)  # the victim never sends to this rank
else:  # p2p's other survivor sends 16 B, with send and isend + wait; send_large's send 1 MB
    data = dtrain.ones(256 * 1024 if case == "send_large" else 4)

    def call():
        for i in range(100000):
            if i == 5:
                mark("entering", repr(time.monotonic()))
            if i % 2 and case == "p2p":
                dist.isend(data, dst=victim).wait()
            else:
                dist.send(data, dst=victim)  # send_large: zero-copy, tracked by ZeroMQ
            time.sleep(0.002)
        raise SystemExit("the victim was not killed")

if case in ("all_reduce", "all_reduce_large") or (case == "p2p" and rank == survivors[0]):
    mark("entering", repr(time.monotonic()))
try:
    call()
    result = {"type": None, "message": "the call returned"}
except BaseException as e:
    result = {"type": type(e).__name__, "message": str(e),
              "peer_error": isinstance(e, dist.DistPeerError)}
    raise
finally:
    result["t"] = time.monotonic()
    mark("result", json.dumps(result))
    print("survivor", rank, "got", result["type"], ":", result["message"], flush=True)
'''

CASES = ["all_reduce", "p2p", "ddp"]


# --- processes ----------------------------------------------------------------------------


def wait_for(condition, timeout, what, must_run=()):
    """Wait until condition(); fail after timeout s, or as soon as a process of ``must_run``
    has exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        ended = [p.args for p in must_run if p.poll() is not None]
        assert not ended or condition(), f"no {what}: {ended} exited before"
        time.sleep(0.01)


class Job:
    """One run of the worker script in tmp_path; every process it starts carries a unique
    DTRAIN_TEST_TAG, so that ``cleanup`` finds and kills whatever is left, test passed or not."""

    def __init__(self, tmp_path, case, victim):
        self.dir, self.case, self.victim = tmp_path, case, victim
        self.script = tmp_path / "worker.py"
        self.script.write_text(WORKER)
        self.tag = uuid.uuid4().hex
        self.env = dict(os.environ, DTRAIN_TEST_TAG=self.tag, TMPDIR=str(tmp_path),
                        PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        for name in ("DTRAIN_JOB_TOKEN", "DTRAIN_TIMEOUT", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                     "MASTER_ADDR", "MASTER_PORT", "DTRAIN_STORE_HOSTED"):
            self.env.pop(name, None)
        self.procs = []
        self.logs = []
        self.killed_at = None

    def argv(self):
        return [str(self.script), self.case, str(self.dir), str(self.victim)]

    def popen(self, command, env, **kw):
        proc = subprocess.Popen(command, cwd=self.dir, env=env, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def file(self, name, rank):
        return self.dir / f"{name}{rank}"

    def pids(self):
        return {r: int(self.file("pid", r).read_text()) for r in range(WORLD)
                if self.file("pid", r).exists()}

    def kill_victim_during_the_call(self):
        """Wait until the survivors are about to block in the call and the victim is idle,
        let them block, then SIGKILL the victim (for "ddp", it kills itself)."""
        survivors = [r for r in range(WORLD) if r != self.victim]
        # until then, no process may end: the launcher, or a survivor started by hand
        must_run = self.procs if len(self.procs) == 1 else [self.procs[r] for r in survivors]
        wait_for(lambda: all(self.file("entering", r).exists() for r in survivors), 20,
                 "survivor entering the call", must_run)
        if self.case == "ddp":
            wait_for(lambda: self.file("killing", self.victim).exists(), 10, "victim's suicide",
                     must_run)
            self.killed_at = float(self.file("killing", self.victim).read_text())
            return
        wait_for(lambda: self.file("ready", self.victim).exists(), 10, "victim ready",
                 must_run + [self.procs[self.victim]] if len(self.procs) > 1 else must_run)
        time.sleep(0.3)  # the survivors are now waiting inside the call
        for r in survivors:
            assert not self.file("result", r).exists(), \
                f"rank {r} left the call before the kill: {self.file('result', r).read_text()}"
        self.killed_at = time.monotonic()
        os.kill(self.pids()[self.victim], signal.SIGKILL)

    def check_survivors(self, output=""):
        """Every survivor raised DistPeerError naming the victim, within BOUND of the kill;
        returns {rank: seconds from the kill to the error}."""
        results = {}
        for r in range(WORLD):
            path = self.file("result", r)
            if r != self.victim and path.exists():
                results[r] = json.loads(path.read_text())
                results[r]["after kill"] = round(results[r].pop("t") - self.killed_at, 3)
        seen = f"victim: rank {self.victim}; survivors' results: {results}\n{output}"
        for r in range(WORLD):
            if r == self.victim:
                continue
            assert r in results, f"rank {r} reported no error; {seen}"
            result = results[r]
            assert result["type"] == "DistPeerError" and result["peer_error"], seen
            assert re.search(rf"\brank {self.victim}\b", result["message"]), \
                f"rank {r}'s error does not name rank {self.victim}; {seen}"
            assert 0 <= result["after kill"] < BOUND, seen
        return {r: result["after kill"] for r, result in results.items()}

    def check_nothing_left(self):
        """Called once the launcher, or every rank, has exited: nothing of the job runs."""
        pids = self.pids()
        assert len(pids) == WORLD, f"workers that never started: {pids}"
        assert not [p for p in pids.values() if running(p)], "workers still running"
        assert not tagged(self.tag), "processes of the job still running"

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for pid in self.pids().values():  # the launcher's workers lead their own groups
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.procs:
            try:
                proc.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass
        for pid in tagged(self.tag):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def job(tmp_path):
    """job(case, victim) -> a Job; whatever it started is killed at the end of the test."""
    made = []

    def make(case, victim):
        made.append(Job(tmp_path, case, victim))
        return made[-1]

    yield make
    for j in made:
        j.cleanup()
        for log in j.logs:
            log.close()
        left = tagged(j.tag)
        assert not left, f"processes of the test still running after it: {left}"


def timing(delays):
    return ", ".join(f"rank {r} {d:.2f} s" for r, d in sorted(delays.items()))


# --- under dtrain-run ------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES)
def test_launcher_survivors_raise_peer_error_and_nothing_is_left(job, case):
    j = job(case, victim=1)
    launcher = j.popen([sys.executable, "-m", "launcher", "--nprocs", str(WORLD),
                        "--grace-period", "5", *j.argv()], j.env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        j.kill_victim_during_the_call()
    except AssertionError as e:
        os.killpg(launcher.pid, signal.SIGKILL)
        out, err = launcher.communicate()
        raise AssertionError(f"{e}\n--- stdout\n{out}\n--- stderr\n{err}") from None
    out, err = launcher.communicate(timeout=EXIT_BOUND + 5)
    exited = time.monotonic() - j.killed_at
    output = f"--- stdout\n{out}\n--- stderr\n{err}"
    assert launcher.returncode == 1, output
    assert exited < EXIT_BOUND, output
    summary = err[err.index("root cause"):] if "root cause" in err else ""
    pid = j.pids()[j.victim]
    assert f"root cause: rank {j.victim} (local rank {j.victim}, node 0" in summary, output
    assert f"pid {pid}): signal SIGKILL" in summary, output
    delays = j.check_survivors(output)
    for r in delays:
        assert re.search(rf"\[rank{r}\]:survivor {r} got DistPeerError : .*\brank {j.victim}\b",
                         out), output
        assert re.search(rf"rank {r} .*DistPeerError: .*\brank {j.victim}\b", summary), output
    j.check_nothing_left()
    print(f"{case}: DistPeerError after {timing(delays)}; launcher exited {exited:.2f} s "
          "after the kill")


# --- manual env:// start-up -------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case, victim", [
    ("all_reduce", 0),        # the victim also hosts the store
    ("all_reduce_large", 1),  # 1 MB: the ring algorithm
    ("p2p", 2),               # one survivor in recv from the victim, one sending to it
    ("send_large", 2),        # both survivors sending it 1 MB (zero-copy) messages
    ("ddp", 1),
])
def test_env_start_survivors_raise_peer_error_and_exit(job, case, victim):
    j = job(case, victim)
    port = free_port()
    for rank in range(WORLD):
        j.logs.append(open(j.dir / f"log{rank}", "w+"))
        env = dict(j.env, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                   WORLD_SIZE=str(WORLD))
        j.popen([sys.executable, *j.argv()], env, stdout=j.logs[rank], stderr=subprocess.STDOUT)
    exits = {}  # rank -> seconds from the kill to its exit

    def output():
        text = ""
        for rank, log in enumerate(j.logs):
            log.seek(0)
            text += f"--- rank {rank} (exit code {j.procs[rank].poll()})\n{log.read()[-3000:]}\n"
        return text

    try:
        j.kill_victim_during_the_call()
    except AssertionError as e:
        raise AssertionError(f"{e}\n{output()}") from None
    survivors = [r for r in range(WORLD) if r != victim]
    while len(exits) < WORLD and time.monotonic() < j.killed_at + EXIT_BOUND:
        if time.monotonic() > j.killed_at + BOUND and \
                not all(j.file("result", r).exists() for r in survivors):
            break  # a survivor missed the bound: no need to wait for its exit
        for rank, proc in enumerate(j.procs):
            if rank not in exits and proc.poll() is not None:
                exits[rank] = time.monotonic() - j.killed_at
        time.sleep(0.01)
    output = output()
    delays = j.check_survivors(output)
    codes = [proc.poll() for proc in j.procs]
    assert codes[victim] == -signal.SIGKILL, (codes, output)
    for r in delays:  # exited, by raising DistPeerError
        assert codes[r] == 1, (f"rank {r} did not exit within {EXIT_BOUND} s of the kill",
                               codes, output)
    j.check_nothing_left()
    print(f"{case}, victim {victim}: DistPeerError after {timing(delays)}; exited after "
          f"{timing({r: exits[r] for r in delays})}")
