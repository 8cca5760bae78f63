"""dtrain.multiprocessing: spawn with real processes, and its exceptions compared with torch's.

Each test starts real interpreters (~0.3 s each here), so they use few processes. Functions
that run in a child are defined inside the tests and use only modules: cloudpickle then ships
them by value and the child does not import this file.
"""
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import dtrain.multiprocessing as mp

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]


def pid_exists(pid):
    """True while pid is a process, a zombie included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_files(paths, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in paths):
        assert time.monotonic() < deadline, f"children did not write {paths} in {timeout} s"
        time.sleep(0.02)


def python(tmp_path, *argv):
    """Start `python *argv` in tmp_path, with dtrain importable."""
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, *argv], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def spawn_queue():
    """A queue children can put to: multiprocessing objects must come from a spawn context."""
    return mp.get_context("spawn").SimpleQueue()


# --- what fn receives


@pytest.mark.parametrize("nprocs", [1, 2, 3, 4])
def test_fn_gets_index_and_args(tmp_path, nprocs):
    def record(i, directory, word):
        (directory / f"{i}.txt").write_text(f"{word} {os.getpid()}")

    assert mp.spawn(record, args=(tmp_path, "hello"), nprocs=nprocs) is None
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"{i}.txt" for i in range(nprocs)]
    words, pids = zip(*(path.read_text().split() for path in tmp_path.iterdir()))
    assert set(words) == {"hello"}
    assert len(set(pids)) == nprocs and str(os.getpid()) not in pids


def test_lambda():
    queue = spawn_queue()
    assert mp.spawn(lambda i, q, word: q.put((i, word)), args=(queue, "lambda")) is None
    assert queue.get() == (0, "lambda")


def test_torch_cannot_send_a_lambda(torch):
    # the difference cloudpickle makes; torch fails in the parent, before starting a child
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        torch.multiprocessing.spawn(lambda i: None, nprocs=1)


def test_closure():
    offset, queue = 100, spawn_queue()

    def add_offset(i, q):
        q.put(i + offset)

    mp.spawn(add_offset, args=(queue,), nprocs=2)
    assert sorted(queue.get() for _ in range(2)) == [100, 101]


MAIN_PROGRAM = """
import dtrain.multiprocessing as mp

def square(i, q):
    q.put(i * i)

if __name__ == "__main__":
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(square, args=(queue,), nprocs=2)
    print(sorted(queue.get() for _ in range(2)))
"""


@pytest.mark.parametrize("how", ["python -c", "script"])
def test_function_defined_in_main(tmp_path, how):
    if how == "script":
        (tmp_path / "main.py").write_text(MAIN_PROGRAM)
        program = python(tmp_path, "main.py")
    else:
        program = python(tmp_path, "-c", MAIN_PROGRAM)
    out, err = program.communicate(timeout=40)
    assert program.returncode == 0, err
    assert out == "[0, 1]\n"


def test_start_processes_with_fork(tmp_path):
    def record(i, directory):
        (directory / str(i)).write_text(str(os.getpid()))

    assert mp.start_processes(record, args=(tmp_path,), nprocs=2, start_method="fork") is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["0", "1"]


def test_unpicklable_args_fail_in_the_parent():
    with pytest.raises(pickle.PicklingError, match="cloudpickle.*inside fn"):
        mp.spawn(lambda i, lock: None, args=(threading.Lock(),), nprocs=2)
    assert mp.active_children() == []


# --- failures


def test_raising_child():
    def fail_on_one(i):
        if i == 1:
            raise ValueError(f"rank {i} is broken")

    with pytest.raises(mp.ProcessRaisedException) as info:
        mp.spawn(fail_on_one, nprocs=2)
    error = info.value
    assert isinstance(error, mp.ProcessException)
    assert error.error_index == 1 and not pid_exists(error.error_pid)
    assert str(error).startswith("\n\n-- Process 1 terminated with the following error:\n"
                                 "Traceback (most recent call last):\n")
    assert 'raise ValueError(f"rank {i} is broken")' in str(error)  # the child's source line
    assert str(error).endswith("ValueError: rank 1 is broken\n")


def test_long_traceback_does_not_block():
    # larger than a pipe's buffer: the child can only exit once the parent reads it
    with pytest.raises(mp.ProcessRaisedException, match="x{200000}"):
        mp.spawn(lambda i: exec("raise RuntimeError('x' * 200000)"))


@pytest.mark.parametrize("how, message, exit_code, signal_name", [
    ("exit", "process 1 terminated with exit code 3", 3, None),
    ("kill", "process 1 terminated with signal SIGKILL", -signal.SIGKILL, "SIGKILL"),
])
def test_child_exits_without_exception(how, message, exit_code, signal_name):
    def die_on_one(i, how):
        if i == 1 and how == "exit":
            os._exit(3)
        if i == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(mp.ProcessExitedException) as info:
        mp.spawn(die_on_one, args=(how,), nprocs=2)
    error = info.value
    assert isinstance(error, mp.ProcessException)
    assert (str(error), error.exit_code, error.signal_name) == (message, exit_code, signal_name)
    assert error.error_index == 1 and not pid_exists(error.error_pid)


def test_failure_stops_the_others(tmp_path):
    def fail_or_sleep(i, directory):
        if i == 1:
            (directory / "sleeper.pid").write_text(str(os.getpid()))
            time.sleep(60)
        while not (directory / "sleeper.pid").exists():
            time.sleep(0.01)
        raise RuntimeError("fail fast")

    start = time.monotonic()
    with pytest.raises(mp.ProcessRaisedException, match="RuntimeError: fail fast"):
        mp.spawn(fail_or_sleep, args=(tmp_path,), nprocs=2)
    assert time.monotonic() - start < 15
    assert not pid_exists(int((tmp_path / "sleeper.pid").read_text()))  # stopped and reaped


def test_child_that_ignores_sigterm_is_killed(tmp_path):
    def exit_or_ignore_sigterm(i, directory):
        if i == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            (directory / "ready").touch()
            time.sleep(60)
        while not (directory / "ready").exists():
            time.sleep(0.01)
        os._exit(5)

    context = mp.spawn(exit_or_ignore_sigterm, args=(tmp_path,), nprocs=2, join=False)
    assert [process.daemon for process in context.processes] == [False, False]
    start = time.monotonic()
    with pytest.raises(mp.ProcessExitedException, match="process 1 terminated with exit code 5"):
        while not context.join(grace_period=0.5):
            pass
    assert context.processes[0].exitcode == -signal.SIGKILL
    assert time.monotonic() - start < 15
    assert not any(pid_exists(pid) for pid in context.pids())
    with pytest.raises(mp.ProcessExitedException, match="exit code 5"):
        context.join()  # the failure stays the answer


# --- join=False and daemon


def test_join_false_returns_a_context_to_poll():
    def report(i, q):
        q.put((i, multiprocessing.current_process().daemon))
        time.sleep(0.5)

    queue = spawn_queue()
    context = mp.spawn(report, args=(queue,), nprocs=2, join=False, daemon=True)
    assert isinstance(context, mp.ProcessContext)
    assert context.pids() == [process.pid for process in context.processes]
    assert [process.daemon for process in context.processes] == [True, True]
    polls = 0
    while not context.join(timeout=0.05):
        polls += 1
    assert polls > 0
    assert context.join() is True
    assert [process.exitcode for process in context.processes] == [0, 0]
    assert sorted(queue.get() for _ in range(2)) == [(0, True), (1, True)]


# --- the standard multiprocessing API, used as in the seed (run.py)

SEED_RUN = """
import os
import dtrain.multiprocessing as mp

def run(rank, size, queue):
    queue.put((rank, size))

def init_process(rank, size, fn, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29500"
    fn(rank, size, queue)

if __name__ == "__main__":
    size = 2
    queue = mp.Queue()
    processes = []
    for rank in range(size):
        p = mp.Process(target=init_process, args=(rank, size, run, queue))
        p.start()
        processes.append(p)
    results = sorted(queue.get(timeout=30) for _ in range(size))
    for p in processes:
        p.join()
    print(results, [p.exitcode for p in processes])
"""


def test_process_and_queue_as_in_the_seed(tmp_path):
    (tmp_path / "run.py").write_text(SEED_RUN)
    program = python(tmp_path, "run.py")
    out, err = program.communicate(timeout=40)
    assert program.returncode == 0, err
    assert out == "[(0, 2), (1, 2)] [0, 0]\n"


def test_standard_api_is_exported():
    for name in multiprocessing.__all__:
        assert getattr(mp, name) is getattr(multiprocessing, name), name
    assert set(multiprocessing.__all__) < set(mp.__all__)


# --- the parent is interrupted while joining

SLEEPERS = """
import os, signal, sys, time
import dtrain.multiprocessing as mp

def sleep(i, directory):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the parent's SIGTERM can stop us
    with open(os.path.join(directory, f"{i}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)

if __name__ == "__main__":
    # as from a terminal: a shell without job control starts background jobs with SIGINT
    # ignored, and Python then leaves it so (CI may run the tests that way)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mp.spawn(sleep, args=(sys.argv[1],), nprocs=2)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_parent_stops_children(tmp_path, signum):
    (tmp_path / "sleepers.py").write_text(SLEEPERS)
    program = python(tmp_path, "sleepers.py", str(tmp_path))
    try:
        pid_files = [tmp_path / "0.pid", tmp_path / "1.pid"]
        wait_for_files(pid_files)
        program.send_signal(signum)
        out, err = program.communicate(timeout=20)
    finally:
        program.kill()
        program.wait()
    # died by the signal, as it would have without children (for SIGINT, Python does that
    # itself after printing the KeyboardInterrupt traceback)
    assert program.returncode == -signum, err
    assert ("KeyboardInterrupt" in err) == (signum == signal.SIGINT), err
    for path in pid_files:
        assert not pid_exists(int(path.read_text())), "a child outlived the parent"


INTERRUPTED_AT_START = """
import multiprocessing.context, os, signal, sys, time
import dtrain.multiprocessing as mp

def sleep(i, directory):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(os.path.join(directory, f"{i}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)

start = multiprocessing.context.SpawnProcess.start

def start_then_interrupt(self):
    start(self)  # the child runs: Ctrl-C comes in the moment start() returns
    if self.name.endswith("-2"):
        raise KeyboardInterrupt

if __name__ == "__main__":
    multiprocessing.context.SpawnProcess.start = start_then_interrupt
    try:
        mp.spawn(sleep, args=(sys.argv[1],), nprocs=3)
    except KeyboardInterrupt:
        print("interrupted")
"""


def test_an_interrupt_while_starting_stops_the_children_already_started(tmp_path):
    (tmp_path / "run.py").write_text(INTERRUPTED_AT_START)
    program = python(tmp_path, "run.py", str(tmp_path))
    try:
        out, err = program.communicate(timeout=30)
    finally:
        program.kill()
        program.wait()
    assert out == "interrupted\n", err
    for path in tmp_path.glob("*.pid"):  # a child stopped before it wrote its file is gone too
        assert not pid_exists(int(path.read_text())), f"child {path.stem} outlived the parent"


# --- compared with torch


def test_exception_classes_match_torch(torch):
    theirs = sys.modules["torch.multiprocessing.spawn"]  # where ProcessException lives
    for name in ["ProcessException", "ProcessRaisedException", "ProcessExitedException"]:
        assert ([c.__name__ for c in getattr(mp, name).__mro__]
                == [c.__name__ for c in getattr(theirs, name).__mro__])
    args = ("process 1 terminated with signal SIGKILL", 1, 4242, -9, "SIGKILL")
    ours, torchs = mp.ProcessExitedException(*args), theirs.ProcessExitedException(*args)
    fields = ["msg", "error_index", "error_pid", "exit_code", "signal_name"]
    for error in (ours, pickle.loads(pickle.dumps(ours))):
        assert [getattr(error, f) for f in fields] == [getattr(torchs, f) for f in fields]
        assert str(error) == str(torchs)
    assert set(theirs.__all__) - {"SpawnContext"} <= set(mp.__all__)


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_exit_messages_match_torch(torch, tmp_path, how):
    def die(i, how):
        if how == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)

    context = mp.spawn(die, args=(how,), join=False)
    for process in context.processes:
        process.join()
    # torch's own join, over the same processes (no error file: nothing was raised)
    torch_context = torch.multiprocessing.ProcessContext(context.processes,
                                                         [str(tmp_path / "no-error-file")])
    with pytest.raises(torch.multiprocessing.ProcessExitedException) as theirs:
        torch_context.join()
    with pytest.raises(mp.ProcessExitedException) as ours:
        context.join()
    fields = ["msg", "error_index", "error_pid", "exit_code", "signal_name"]
    assert [getattr(ours.value, f) for f in fields] == [getattr(theirs.value, f) for f in fields]
