"""dtrain-run end to end: real launchers (`python -m launcher`) start real workers.

Every launcher runs in its own session with a unique DTRAIN_TEST_TAG in its environment, which
its workers and their children inherit; after each test, the `job` fixture checks that no
running process carries the tag (zombies count as gone: here nothing may reap orphans).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from multiproc import running, tagged

ROOT = Path(__file__).resolve().parents[1]

ALL_REDUCE = """
import json, os, sys
import dtrain, dtrain.distributed as dist
dist.init_process_group("gloo")
t = dtrain.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
keys = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
        "MASTER_PORT", "DTRAIN_RESTART_COUNT", "DTRAIN_MAX_RESTARTS", "DTRAIN_JOB_TOKEN",
        "OMP_NUM_THREADS"]
print(json.dumps({"sum": t.item(), "rank": dist.get_rank(), "name": __name__,
                  "argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in keys}}))
print("a line on stderr", file=sys.stderr)
dist.destroy_process_group()
"""

# rank 1 fails (raises, or is SIGKILLed); rank 2 ignores SIGTERM; 0 and 3 wait at a barrier
FAIL = """
import os, signal, sys, time
import dtrain.distributed as dist
open(os.path.join(sys.argv[1], "pid" + os.environ["RANK"]), "w").write(str(os.getpid()))
dist.init_process_group("gloo")
# rank 1's init messages may still be on their way when its init returns: it fails only once
# every rank is through init
dist.barrier()
if dist.get_rank() == 1:
    if sys.argv[2] == "raise":
        raise ValueError("bad batch on rank 1")
    os.kill(os.getpid(), signal.SIGKILL)
if dist.get_rank() == 2:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
dist.barrier()
"""

SLEEP = """
import os, sys, time
out = sys.argv[1]
try:
    path = os.path.join(out, "pid" + os.environ["RANK"])
    open(path + ".tmp", "w").write(str(os.getpid()))
    os.replace(path + ".tmp", path)  # whole, or not there: the test reads it as soon as it exists
    time.sleep(60)
except KeyboardInterrupt:
    open(os.path.join(out, "interrupted" + os.environ["RANK"]), "w").close()
    raise
"""

RESTART = """
import os
import dtrain, dtrain.distributed as dist
dist.init_process_group("gloo")
count = int(os.environ["DTRAIN_RESTART_COUNT"])
t = dtrain.tensor([1.0])
dist.all_reduce(t)
if count == 0 and dist.get_rank() == dist.get_world_size() - 1:
    raise RuntimeError("the first attempt fails")
print(f"attempt {count} of {os.environ['DTRAIN_MAX_RESTARTS']}: sum {t.item()}, rank "
      f"{os.environ['RANK']}, node {os.environ['GROUP_RANK']}, local {os.environ['LOCAL_RANK']}")
"""

PRINT = """
import os, sys
print("out of", os.environ["RANK"])
print("err of", os.environ["RANK"], file=sys.stderr)
"""


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.02)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Jobs:
    """Starts launchers in tmp_path (with TMPDIR there too), tagged for the leftover check."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.tag = uuid.uuid4().hex
        self.env = dict(os.environ, DTRAIN_TEST_TAG=self.tag, TMPDIR=str(tmp_path),
                        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        for name in ("OMP_NUM_THREADS", "DTRAIN_JOB_TOKEN", "RANK", "WORLD_SIZE"):
            self.env.pop(name, None)
        self.procs = []

    def script(self, name, text):
        path = self.dir / name
        path.write_text(text)
        return str(path)

    def start(self, *argv, env=None, command=None):
        proc = subprocess.Popen(command or [sys.executable, "-m", "launcher", *argv],
                                cwd=self.dir, env=dict(self.env, **(env or {})), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, *argv, env=None, timeout=30, command=None):
        """Run a launcher to its end: (exit code, stdout, stderr, seconds)."""
        started = time.monotonic()
        proc = self.start(*argv, env=env, command=command)
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err, time.monotonic() - started

    def leftovers(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        deadline = time.monotonic() + 5
        while tagged(self.tag) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = tagged(self.tag)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return left


@pytest.fixture
def jobs(tmp_path):
    jobs = Jobs(tmp_path)
    yield jobs
    left = jobs.leftovers()
    assert not left, f"processes of the test still running after it: {left}"


def worker_lines(stdout):
    """{rank: [line, ...]} from [rankR]: prefixed output."""
    lines = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"\[rank(\d+)\]:(.*)", line)
        assert match, f"a line without a rank prefix: {line!r}"
        lines.setdefault(int(match[1]), []).append(match[2])
    return lines


def pids(directory, nprocs):
    return {rank: int((directory / f"pid{rank}").read_text()) for rank in range(nprocs)}


# --- running a job


@pytest.mark.timeout(30)
def test_four_workers_all_reduce(jobs):
    script = jobs.script("all_reduce.py", ALL_REDUCE)
    code, out, err, _ = jobs.run("--nprocs", "4", script, "--lr", "0.1")
    assert code == 0, err
    reports = {rank: json.loads(lines[0]) for rank, lines in worker_lines(out).items()}
    assert sorted(reports) == [0, 1, 2, 3]
    ports = set()
    for rank, report in reports.items():
        env = report["env"]
        assert report["sum"] == 10.0 and report["rank"] == rank
        assert report["name"] == "__main__" and report["argv"] == ["--lr", "0.1"]
        assert env["RANK"] == env["LOCAL_RANK"] == str(rank)
        assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["GROUP_RANK"]) == ("4", "4", "0")
        assert (env["MASTER_ADDR"], env["DTRAIN_RESTART_COUNT"]) == ("127.0.0.1", "0")
        assert (env["DTRAIN_MAX_RESTARTS"], env["OMP_NUM_THREADS"]) == ("0", "1")
        assert len(env["DTRAIN_JOB_TOKEN"]) >= 32
        ports.add(env["MASTER_PORT"])
    assert len(ports) == 1 and len({r["env"]["DTRAIN_JOB_TOKEN"] for r in reports.values()}) == 1
    assert err.count("OMP_NUM_THREADS=1") == 1
    assert sorted(re.findall(r"\[rank(\d)\]:a line on stderr", err)) == ["0", "1", "2", "3"]


@pytest.mark.timeout(30)
def test_two_jobs_at_once_get_their_own_ports(jobs):
    script = jobs.script("all_reduce.py", ALL_REDUCE)
    mine = jobs.start("--nprocs", "2", script,
                      env={"DTRAIN_JOB_TOKEN": "our-secret", "OMP_NUM_THREADS": "3"})
    theirs = jobs.start("--nprocs", "2", script)
    (out1, err1), (out2, _) = mine.communicate(timeout=20), theirs.communicate(timeout=20)
    assert mine.returncode == 0 and theirs.returncode == 0, err1
    env1 = json.loads(worker_lines(out1)[0][0])["env"]
    env2 = json.loads(worker_lines(out2)[0][0])["env"]
    assert env1["MASTER_PORT"] != env2["MASTER_PORT"]
    assert (env1["DTRAIN_JOB_TOKEN"], env1["OMP_NUM_THREADS"]) == ("our-secret", "3")
    assert "OMP_NUM_THREADS" not in err1  # set by the user: nothing to say
    assert env2["DTRAIN_JOB_TOKEN"] != "our-secret"


@pytest.mark.timeout(30)
def test_module_mode_runs_as_main(jobs):
    (jobs.dir / "trainpkg").mkdir()
    (jobs.dir / "trainpkg" / "__init__.py").write_text("")
    (jobs.dir / "trainpkg" / "helper.py").write_text("WORD = 'helped'\n")
    (jobs.dir / "trainpkg" / "train.py").write_text(
        "import os, sys\nfrom trainpkg.helper import WORD\n"
        "if __name__ == '__main__':\n"
        "    print(WORD, os.environ['RANK'], sys.argv[1:], os.path.basename(sys.argv[0]))\n")
    code, out, err, _ = jobs.run("--nprocs", "2", "-m", "trainpkg.train", "-x", "1")
    assert code == 0, err
    assert worker_lines(out) == {0: ["helped 0 ['-x', '1'] train.py"],
                                 1: ["helped 1 ['-x', '1'] train.py"]}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["log-dir", "tee", "no-prefix"])
def test_output_to_console_and_log_files(jobs, mode):
    script = jobs.script("print.py", PRINT)
    logs = jobs.dir / "logs"
    flags = {"log-dir": ["--log-dir", str(logs)], "tee": ["--log-dir", str(logs), "--tee"],
             "no-prefix": ["--no-prefix"]}[mode]
    code, out, err, _ = jobs.run("--nprocs", "2", *flags, script)
    assert code == 0, err
    if mode == "log-dir":
        assert out == "" and "err of" not in err
    elif mode == "tee":
        assert worker_lines(out) == {0: ["out of 0"], 1: ["out of 1"]}
    else:
        assert sorted(out.splitlines()) == ["out of 0", "out of 1"]
        assert "[rank" not in err and "err of 0" in err
    if mode != "no-prefix":
        for rank in range(2):
            files = logs / "attempt_0"
            assert (files / f"rank_{rank}.stdout.log").read_text() == f"out of {rank}\n"
            assert (files / f"rank_{rank}.stderr.log").read_text() == f"err of {rank}\n"


# --- failures


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["raise", "sigkill"])
def test_failed_rank_stops_the_others_and_is_reported(jobs, how):
    script = jobs.script("fail.py", FAIL)
    code, out, err, seconds = jobs.run("--nprocs", "4", "--grace-period", "1", script,
                                       str(jobs.dir), how)
    assert code == 1, err
    assert seconds < 10, f"the launcher took {seconds:.1f} s to stop the job"
    pid = pids(jobs.dir, 4)[1]
    assert f"root cause: rank 1 (local rank 1, node 0, host {socket.gethostname()}, pid {pid})" \
        in err
    summary = err[err.index("root cause"):]
    if how == "raise":
        assert "exit code 1" in summary and "ValueError: bad batch on rank 1" in summary
        assert 'File "' + str(jobs.dir / "fail.py") + '", line 11, in <module>' in summary
        assert "bootstrap" not in summary and "runpy" not in summary
    else:
        assert "signal SIGKILL" in summary
    assert re.search(r"stopped by the launcher: ranks? [0-3]", summary)
    assert not [p for p in pids(jobs.dir, 4).values() if running(p)]


@pytest.mark.timeout(30)
def test_restart_after_a_failure(jobs):
    script = jobs.script("restart.py", RESTART)
    code, out, err, _ = jobs.run("--nprocs", "2", "--max-restarts", "3", script)
    assert code == 0, err
    lines = worker_lines(out)
    assert lines[1] == ["attempt 1 of 3: sum 2.0, rank 1, node 0, local 1"]
    assert lines[0][-1] == "attempt 1 of 3: sum 2.0, rank 0, node 0, local 0"
    assert "RuntimeError: the first attempt fails" in err and "(attempt 1 of 4)" in err
    assert "restarting all workers (restart 1 of 3" in err and "restart 2" not in err


@pytest.mark.timeout(30)
def test_restarts_run_out(jobs):
    script = jobs.script("always_fails.py", "raise SystemExit(3)\n")
    code, _, err, _ = jobs.run("--max-restarts", "1", script)
    assert code == 1
    assert "(attempt 1 of 2)" in err and "(attempt 2 of 2)" in err and "exit code 3" in err
    assert err.count("restarting all workers") == 1


@pytest.mark.timeout(30)
def test_port_in_use_is_named(jobs):
    script = jobs.script("print.py", PRINT)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err, _ = jobs.run("--nprocs", "2", "--master-port", str(port), script)
    assert code == 1 and out == ""
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--master-port" in err
    assert "Traceback" not in err


# --- signals


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_launcher_stops_every_worker(jobs, sig):
    script = jobs.script("sleep.py", SLEEP)
    launcher = jobs.start("--nprocs", "3", script, str(jobs.dir))
    wait_until(lambda: all((jobs.dir / f"pid{r}").exists() for r in range(3)), 20,
               "the workers did not start")
    workers = pids(jobs.dir, 3)
    launcher.send_signal(sig)  # Ctrl-C in a terminal reaches the launcher's group alone
    _, err = launcher.communicate(timeout=10)
    assert launcher.returncode == 128 + sig
    assert f"got {sig.name}" in err and "Traceback" not in err
    assert not [p for p in workers.values() if running(p)]
    if sig == signal.SIGINT:  # the workers got KeyboardInterrupt, so they could clean up
        assert all((jobs.dir / f"interrupted{r}").exists() for r in range(3))


@pytest.mark.timeout(30)
def test_workers_die_with_a_killed_launcher(jobs):
    script = jobs.script("sleep.py", SLEEP)
    launcher = jobs.start("--nprocs", "3", script, str(jobs.dir))
    wait_until(lambda: all((jobs.dir / f"pid{r}").exists() for r in range(3)), 20,
               "the workers did not start")
    workers = pids(jobs.dir, 3)
    launcher.kill()
    launcher.communicate()
    wait_until(lambda: not any(running(p) for p in workers.values()), 10,
               "workers outlived their SIGKILLed launcher")


# --- several nodes, and other launchers


@pytest.mark.timeout(40)
def test_two_nodes_restart_together(jobs):
    """Two launchers on one host play two nodes; a rank on node 1 fails once."""
    script = jobs.script("restart.py", RESTART)
    common = ["--nnodes", "2", "--nprocs", "2", "--master-addr", "127.0.0.1", "--master-port",
              str(free_port()), "--max-restarts", "1"]
    env = {"DTRAIN_JOB_TOKEN": uuid.uuid4().hex}
    nodes = [jobs.start(*common, "--node-rank", str(k), script, env=env) for k in (0, 1)]
    results = [node.communicate(timeout=30) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], results
    for k, (out, _) in enumerate(results):
        lines = worker_lines(out)
        for local in range(2):
            rank = 2 * k + local
            assert lines[rank][-1] == (f"attempt 1 of 1: sum 4.0, rank {rank}, node {k}, "
                                       f"local {local}")
    assert "node 1's workers failed in attempt 0" in results[0][1]


@pytest.mark.timeout(30)
def test_mpirun_starts_a_job_unchanged(jobs):
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        pytest.skip("mpirun is not installed (CI installs Debian's openmpi-bin)")
    script = jobs.script("all_reduce.py", ALL_REDUCE)
    code, out, err, _ = jobs.run(
        command=[mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "2", sys.executable,
                 script],
        env={"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())})
    assert code == 0, err
    # mpirun forwards output in chunks, which may run two ranks' lines together
    decoder = json.JSONDecoder()
    reports = sorted((decoder.raw_decode(out, m.start())[0] for m in re.finditer('{"sum"', out)),
                     key=lambda r: r["rank"])
    assert [(r["rank"], r["sum"]) for r in reports] == [(0, 3.0), (1, 3.0)]
    assert all(r["env"]["RANK"] is None for r in reports)  # rank came from OMPI_COMM_WORLD_RANK


# --- the command line


@pytest.mark.timeout(30)
def test_help_has_examples(jobs):
    code, out, _, _ = jobs.run("--help")
    assert code == 0
    for text in ("--nprocs", "--nproc-per-node", "--max-restarts", "--grace-period", "--tee",
                 "--no-prefix", "-m", "examples:", "dtrain-run --nprocs 4 train.py"):
        assert text in out


@pytest.mark.parametrize("argv, message", [
    (["--nnodes", "2", "--node-rank", "1", "x.py"], "needs --master-addr and --master-port"),
    (["--nnodes", "2", "--node-rank", "2", "x.py"], "--node-rank must be in [0, 1]"),
    (["--tee", "x.py"], "give --log-dir DIR too"),
    (["--nprocs", "0", "x.py"], "must be at least 1"),
    (["missing.py"], "the script 'missing.py' does not exist"),
])
def test_bad_command_lines(argv, message, capsys, tmp_path, monkeypatch):
    from launcher.cli import parse

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.py").write_text("")
    with pytest.raises(SystemExit) as exit_:
        parse(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_nodes_need_a_shared_token(capsys, tmp_path, monkeypatch):
    from launcher.cli import parse

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DTRAIN_JOB_TOKEN", raising=False)
    (tmp_path / "x.py").write_text("")
    argv = ["--nnodes", "2", "--master-addr", "h", "--master-port", "29500", "x.py"]
    with pytest.raises(SystemExit):
        parse(argv)
    assert "DTRAIN_JOB_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("DTRAIN_JOB_TOKEN", "s3cret")
    job = parse(argv + ["--lr", "1"])
    assert (job.world_size, job.command, job.master_port) == (2, ["x.py", "--lr", "1"], 29500)
