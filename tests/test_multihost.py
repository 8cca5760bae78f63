"""Several hosts (issue 8, item 7): two Linux network namespaces joined by a veth pair are two
nodes, 10.213.0.1 and 10.213.0.2, each running `dtrain-run --nnodes 2 --nprocs 2` (4 ranks).

- all_reduce (small and 4M floats) and a DDP step are correct across the two hosts, and ranks
  on different hosts do not take the same-host shared-memory path;
- cutting the link while the workers loop on all_reduce gives DistPeerError or
  DistTimeoutError (DTRAIN_TIMEOUT=5) and both launchers exit non-zero soon after;
- the workers' sockets listen on, and connect between, the namespaces' own addresses; and
  nothing is left afterwards (namespaces, veth, processes).

They need root and iproute2 and skip with the reason otherwise (tests/netns.py).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import netns

ROOT = Path(__file__).resolve().parent.parent
PORT = 29500  # each test has fresh namespaces, so a fixed port is free
TOKEN = "multihost-test-token-0123456789abcdef"
WORLD = 4

# the DDP problem, shared by the workers (exec'd there) and the single-process reference here
PROBLEM = r'''
import numpy as np
import dtrain

BATCH = 4  # per rank

def problem(world):
    """A float64 model with fixed starting values, and the global batch (inputs, targets)."""
    nn = dtrain.nn
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    rng = np.random.default_rng(7)
    with dtrain.no_grad():
        for p in model.parameters():
            p.copy_(dtrain.from_numpy(rng.uniform(-0.5, 0.5, tuple(p.shape))))
    x = rng.standard_normal((world * BATCH, 6))
    y = rng.standard_normal((world * BATCH, 2))
    return model, x, y

def step(model, params, x, y):
    """One SGD step on the mean squared error of (x, y)."""
    opt = dtrain.optim.SGD(params, lr=0.5)
    opt.zero_grad()
    loss = dtrain.nn.functional.mse_loss(model(dtrain.from_numpy(x)), dtrain.from_numpy(y))
    loss.backward()
    opt.step()
'''

WORKER = PROBLEM + r'''
import json, os, sys, time
import dtrain.distributed as dist
from dtrain.distributed import shm
from dtrain.nn.parallel import DistributedDataParallel as DDP

def emit(**kw):
    print("RESULT " + json.dumps(kw), flush=True)

mode = sys.argv[1]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()

if mode == "compute":
    small = dtrain.arange(10, dtype=dtrain.float64) * (rank + 1)
    dist.all_reduce(small)
    n = 4 << 20
    pattern = (np.arange(n) % 1000).astype(np.float32)
    big = dtrain.from_numpy(pattern + np.float32(rank))
    dist.all_reduce(big)  # sums of small integers: exact in float32, whatever the order
    big_ok = bool(np.array_equal(big.numpy(), world * pattern + sum(range(world))))
    model, x, y = problem(world)
    ddp = DDP(model)
    mine = slice(rank * BATCH, (rank + 1) * BATCH)
    step(ddp, ddp.parameters(), x[mine], y[mine])
    emit(rank=rank, pid=os.getpid(), host=shm.host_key(), small=small.numpy().tolist(),
         big_ok=big_ok, big_head=big.numpy()[:3].tolist(),
         params=[p.detach().numpy().tolist() for p in model.parameters()])
elif mode == "loop":  # all_reduce every 50 ms until some rank sees the stop file, or 60 s
    stop = sys.argv[2]
    t = dtrain.ones(1000)
    dist.all_reduce(t)
    emit(rank=rank, pid=os.getpid(), ready=True)
    end = time.monotonic() + 60
    while True:
        t = dtrain.ones(1000)
        # summed, so every rank stops after the same call
        t[-1] = float(os.path.exists(stop) or time.monotonic() > end)
        dist.all_reduce(t)
        assert float(t[0]) == world, float(t[0])
        if float(t[-1]) > 0:
            break
        time.sleep(0.05)
dist.destroy_process_group()
'''

_RESULT = re.compile(r"^\[rank(\d+)\]:RESULT (.*)$", re.M)
_ERROR = re.compile(r"^\[rank\d+\]:\S*Dist(Peer|Timeout)Error: ", re.M)  # a worker's traceback


@pytest.fixture(scope="module")
def can_netns():
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def hosts(can_netns, workdir):
    """Two fresh namespaces with a veth between them; torn down (and checked) afterwards,
    before workdir (the job's files outlive its processes)."""
    with netns.TwoHosts() as h:
        yield h
    assert not set(h.names) & set(netns.namespaces()), "a test namespace was left behind"
    assert not [pid for pid in h.seen if netns.alive(pid)], "a process was left behind"


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="dtrain-multihost-"))
    (path / "worker.py").write_text(WORKER)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Job:
    """dtrain-run on both hosts, each launcher's console in workdir/node<K>.log."""

    def __init__(self, hosts, workdir, mode, *args, timeout=30):
        self.hosts, self.workdir = hosts, workdir
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DTRAIN_", "MASTER_", "RANK", "WORLD_SIZE"))}
        env.update(DTRAIN_JOB_TOKEN=TOKEN, DTRAIN_TIMEOUT=str(timeout), OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                            env.get("PYTHONPATH")])))
        self.logs = [workdir / f"node{k}.log" for k in range(2)]
        self.launchers = []
        for k in range(2):
            argv = [sys.executable, "-m", "launcher", "--nnodes", "2", "--node-rank", str(k),
                    "--nprocs", "2", "--master-addr", hosts.addrs[0], "--master-port",
                    str(PORT), "--grace-period", "2", str(workdir / "worker.py"), mode, *args]
            with open(self.logs[k], "wb") as log:
                self.launchers.append(hosts.popen(k, argv, cwd=ROOT, env=env, stdout=log,
                                                  stderr=subprocess.STDOUT))

    def output(self):
        return "\n".join(f"--- node {k} ---\n" + log.read_text(errors="replace")
                         for k, log in enumerate(self.logs) if log.exists())

    def results(self):
        return {int(r): json.loads(body) for r, body in _RESULT.findall(self.output())}

    def wait_results(self, want, timeout, what):
        """Poll the logs until ``want(results)``; fail with the output after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            results = self.results()
            if want(results):
                return results
            if any(p.poll() is not None for p in self.launchers):
                break
            time.sleep(0.05)
        pytest.fail(f"no {what} within {timeout} s; exit codes "
                    f"{[p.poll() for p in self.launchers]}:\n{self.output()}")

    def wait(self, timeout):
        """The launchers' exit codes, or a failure with their output after ``timeout``."""
        deadline = time.monotonic() + timeout
        for p in self.launchers:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                pytest.fail(f"the launchers did not exit within {timeout} s:\n{self.output()}")
        return [p.returncode for p in self.launchers]


@pytest.mark.timeout(60)
def test_all_reduce_and_ddp_step_across_two_hosts(hosts, workdir):
    job = Job(hosts, workdir, "compute")
    codes = job.wait(45)
    out = job.output()
    assert codes == [0, 0], out
    results = job.results()
    assert sorted(results) == list(range(WORLD)), out

    expect_small = (np.arange(10) * sum(range(1, WORLD + 1))).tolist()
    for r, res in results.items():
        assert res["small"] == expect_small, (r, res["small"])
        assert res["big_ok"], (r, res["big_head"])

    # ranks 0-1 share a host (the shared-memory key), ranks 2-3 the other; the hosts differ,
    # so the cross-host halves of each collective went over TCP between the namespaces
    keys = [results[r]["host"] for r in range(WORLD)]
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2], keys

    # replicas bit-identical after one DDP step, and equal to one process on the whole batch
    params = [[np.array(p) for p in results[r]["params"]] for r in range(WORLD)]
    for r in range(1, WORLD):
        for a, b in zip(params[0], params[r]):
            np.testing.assert_array_equal(a, b, err_msg=f"rank {r} differs from rank 0")
    ns = {}
    exec(PROBLEM, ns)
    model, x, y = ns["problem"](WORLD)
    start = [np.array(p.detach().numpy(), copy=True) for p in model.parameters()]
    ns["step"](model, model.parameters(), x, y)
    for got, want, before in zip(params[0], model.parameters(), start):
        want = want.detach().numpy()
        assert got.dtype == np.float64
        assert not np.array_equal(want, before)  # the step moved the parameters
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


@pytest.mark.timeout(60)
def test_cutting_the_link_fails_the_workers_within_the_deadline(hosts, workdir):
    deadline = 5  # DTRAIN_TIMEOUT, seconds
    job = Job(hosts, workdir, "loop", str(workdir / "never"), timeout=deadline)
    job.wait_results(lambda res: len(res) == WORLD, 30, "'ready' from every rank")
    time.sleep(0.3)  # a few more all_reduces across the link
    hosts.cut()
    cut = time.monotonic()
    raised = {}  # node -> seconds from the cut until its workers' output named the error
    while time.monotonic() - cut < 30 and any(p.poll() is None for p in job.launchers):
        for k, log in enumerate(job.logs):
            if k not in raised and _ERROR.search(log.read_text(errors="replace")):
                raised[k] = time.monotonic() - cut
        time.sleep(0.05)
    codes = job.wait(1)
    took = time.monotonic() - cut
    out = job.output()
    for k, log in enumerate(job.logs):  # each node's workers raise it themselves
        if k not in raised and _ERROR.search(log.read_text(errors="replace")):
            raised[k] = took
    assert sorted(raised) == [0, 1], f"a node's workers did not raise:\n{out}"
    assert max(raised.values()) < deadline + 3, (raised, out)
    assert all(code not in (0, None) for code in codes), (codes, out)
    # the workers take ~5 s more to exit (destroy_process_group's parting barrier at exit), and
    # node 1's launcher notices node 0's store is gone after its 10 s store timeout
    assert took < 3 * deadline, f"the launchers took {took:.1f} s after the cut:\n{out}"


def _sockets(hosts, k, state):
    """(local, peer, pids) of the TCP sockets in host k's namespace in ``state``; local and
    peer are (address, port)."""
    text = hosts.run(k, ["ss", "-Htnp", "state", state])
    rows = []
    for line in text.splitlines():
        fields = line.split()
        # with a state filter, ss leaves the state column out: Recv-Q Send-Q Local Peer Process
        ends = [(a.strip("[]"), p) for a, p in (f.rsplit(":", 1) for f in fields[2:4])]
        rows.append((*ends, {int(p) for p in re.findall(r"pid=(\d+)", line)}))
    return rows


@pytest.fixture(scope="module")
def sockets_during_a_job(can_netns):
    """Run one job that loops on all_reduce; while it runs, take every TCP socket in both
    namespaces; then stop it and tear everything down. What was seen, for the tests below."""
    workdir = Path(tempfile.mkdtemp(prefix="dtrain-multihost-"))
    try:
        (workdir / "worker.py").write_text(WORKER)
        stop = workdir / "stop"
        with netns.TwoHosts() as hosts:
            job = Job(hosts, workdir, "loop", str(stop))
            try:
                ready = job.wait_results(lambda res: len(res) == WORLD, 30,
                                         "'ready' from every rank")
                seen = dict(
                    hosts=hosts, workers={r: res["pid"] for r, res in ready.items()},
                    launchers=[p.pid for p in job.launchers],
                    listening={k: _sockets(hosts, k, "listening") for k in range(2)},
                    connected={k: _sockets(hosts, k, "established") for k in range(2)})
            finally:
                stop.touch()
            seen["codes"] = job.wait(20)
            seen["output"] = job.output()
        # the with block deleted the namespaces and killed what was left: nothing should be
        seen["namespaces_after"] = netns.namespaces()
        seen["links_after"] = [link for link in hosts.links
                               if netns.ip("link", "show", link, check=False).returncode == 0]
        yield seen
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.timeout(60)
def test_traffic_stays_on_the_namespaces_addresses_and_nothing_is_left(sockets_during_a_job):
    seen = sockets_during_a_job
    hosts, workers, launchers = seen["hosts"], seen["workers"], set(seen["launchers"])
    listening, connected = seen["listening"], seen["connected"]
    assert seen["codes"] == [0, 0], seen["output"]

    report = json.dumps({"listening": listening, "connected": connected}, default=sorted)
    for k in range(2):
        mine = {workers[r] for r in range(2 * k, 2 * k + 2)}
        # each worker's data socket listens on its host's own address, not on every interface
        bound = [(local, pids) for local, _, pids in listening[k] if pids & mine]
        assert {p for _, pids in bound for p in pids} == mine, report
        assert all(local[0] == hosts.addrs[k] for local, _ in bound), report
        # its connections run between the two hosts' addresses (none through 127.0.0.1), and
        # some cross to the other host
        links = [(local, peer) for local, peer, pids in connected[k] if pids & mine]
        assert all(local[0] == hosts.addrs[k] and netns.in_subnet(peer[0])
                   for local, peer in links), report
        assert any(peer[0] == hosts.addrs[1 - k] for _, peer in links), report
        # whatever else has a TCP socket here is the launcher (the rendezvous store)
        others = {p for _, _, pids in listening[k] + connected[k] for p in pids} - mine
        assert others <= launchers, report
        # and its connections are between the hosts' addresses too
        for local, peer, pids in connected[k]:
            if pids & launchers:
                assert netns.in_subnet(local[0]) and netns.in_subnet(peer[0]), \
                    (local, peer, report)

    # torn down: namespaces and veth gone, no launcher or worker left
    assert not set(hosts.names) & set(seen["namespaces_after"])
    assert not seen["links_after"]
    assert not [pid for pid in [*workers.values(), *launchers] if netns.alive(pid)]


@pytest.mark.timeout(60)
def test_store_listens_on_the_master_address_only(sockets_during_a_job):
    """Issue 8 item 4: "Sockets bind only to the address needed ... never all interfaces
    unless asked". Node 0's launcher hosts the rendezvous store."""
    seen = sockets_during_a_job
    node0 = seen["launchers"][0]
    store = [local[0] for local, _, pids in seen["listening"][0] if node0 in pids]
    assert store, seen["listening"]
    assert all(local == seen["hosts"].addrs[0] for local in store), \
        f"node 0's launcher listens on {store}, not only on {seen['hosts'].addrs[0]}"
