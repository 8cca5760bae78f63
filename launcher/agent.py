"""The agent: host the rendezvous store, start the workers, watch them, stop or restart them.

One agent runs per node. Node 0's agent hosts the job's TCPStore for the whole job (workers get
DTRAIN_STORE_HOSTED=1, so rank 0 connects to it instead of starting one); a restart keeps the
store, and the workers' keys are scoped by DTRAIN_RESTART_COUNT, so each attempt meets afresh.
With several nodes, the agents tell each other through the store when an attempt ends
(rendezvous.py).

Each worker is a fresh interpreter running bootstrap.py in its own process group: signals reach
the worker and whatever it started, and a Ctrl-C in the terminal reaches the launcher alone,
which forwards it.
"""
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dtrain import timeline

from .output import Console, Output
from .rendezvous import NODE_POLL, LaunchError, NodeNews, Rendezvous
from .summary import WorkerEnd, failure_report

BOOTSTRAP = str(Path(__file__).resolve().with_name("bootstrap.py"))
POLL = 0.05  # seconds between looks at the workers
MEET_POLL = 0.1  # seconds between looks at the store, until the workers' rendezvous is done
SETTLE = 1.0  # seconds the other workers get to notice a failed one and exit by themselves
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Job:
    """What to run and how: the parsed command line."""

    command: list  # ["script.py", *args] or ["-m", "module", *args]
    nprocs: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = None  # None: a free port (single node only)
    max_restarts: int = 0
    grace_period: float = 5.0
    log_dir: Path = None
    tee: bool = False
    prefix: bool = True
    trace_dir: Path = None  # --trace: the workers record a timeline there

    @property
    def world_size(self):
        return self.nnodes * self.nprocs

    @property
    def name(self):
        return self.command[1] if self.command[0] == "-m" else self.command[0]


class Worker:
    """One worker process, the leader of its own process group."""

    def __init__(self, rank, local_rank, proc, error_file, output, log_file):
        self.rank, self.local_rank, self.proc = rank, local_rank, proc
        self.error_file, self.output, self.log_file = error_file, output, log_file
        self.code = None

    def poll(self):
        """The exit code once the worker has exited (negative: a signal), else None."""
        if self.code is None:
            code = self.proc.poll()
            if code is not None:
                self.signal(signal.SIGKILL)  # whatever the worker left behind in its group
                self.code = code
        return self.code

    def signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def end(self):
        """How it ended, with its traceback (written by bootstrap's excepthook) if any."""
        try:
            trace = Path(self.error_file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            trace = ""
        return WorkerEnd(self.rank, self.local_rank, self.proc.pid, self.code, trace,
                         self.output.stderr_tail(), self.log_file)


class Agent:
    """Runs a Job on this node; ``run()`` returns the launcher's exit code."""

    def __init__(self, job, console=None):
        self.job = job
        self.console = console or Console()
        self.output = Output(self.console, job.prefix, job.log_dir, job.tee)
        self.token = os.environ.get("DTRAIN_JOB_TOKEN") or secrets.token_hex(16)
        self.rendezvous = None
        self.workers = None  # None until the first worker starts: a signal then just exits
        self.signal = None  # the first SIGINT/SIGTERM/SIGHUP received
        self.hurry = False  # a second one: SIGKILL without waiting out the grace period
        self.tmp = None
        self.started = None  # when the current attempt's workers started

    def run(self):
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _FORWARDED}
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix="dtrain-run-"))
            self.rendezvous = Rendezvous(self.job, self.token)
            env = self._environment()
            if self.job.trace_dir is not None:
                timeline.clear(self.job.trace_dir)
            code = self._attempts(env)
            if self.job.trace_dir is not None:
                self._merge_trace()
            return code
        except LaunchError as e:
            self.console.say(f"error: {e}")
            return 1
        except _Interrupted as e:
            self.console.say(f"got {signal.Signals(e.signum).name} before any worker started")
            return 128 + e.signum
        finally:
            if self.workers:
                self._stop(self.workers, signal.SIGKILL)  # no-op unless some are still running
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.rendezvous is not None:
                self.rendezvous.close()
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)

    # --- attempts -------------------------------------------------------------------------

    def _attempts(self, env):
        job = self.job
        for attempt in range(job.max_restarts + 1):
            workers = self._start(env, attempt)
            outcome = self._watch(workers, attempt)
            if outcome == "done":
                self._stop(workers, signal.SIGKILL)  # every worker has exited: this reaps
                outcome = self.rendezvous.wait_for_nodes(
                    attempt, lambda: self.signal is not None, self.console.say)
                if outcome == "done":
                    return 0
            if self.signal is not None:
                name = signal.Signals(self.signal).name
                self.console.say(f"got {name}: passing it to the {len(workers)} workers")
                self.rendezvous.tell(attempt, "stopped")
                self._stop(workers, self.signal)
                self.console.say(f"all workers stopped after {name}")
                return 128 + self.signal
            if isinstance(outcome, NodeNews):
                self.console.say(f"{outcome}: stopping the workers on this node")
                self._stop(workers, signal.SIGTERM)
                if outcome.what != "failed":
                    return 1
            else:
                self.rendezvous.tell(attempt, "failed")
                self._report(workers, outcome, attempt)
            if self.signal is not None:
                return 128 + self.signal
            if attempt < job.max_restarts:
                self.console.say(f"restarting all workers (restart {attempt + 1} of "
                                 f"{job.max_restarts}; they see DTRAIN_RESTART_COUNT="
                                 f"{attempt + 1})")
        return 1

    def _start(self, env, attempt):
        job = self.job
        errors = self.tmp / f"attempt_{attempt}"
        errors.mkdir()
        self.workers = workers = []
        for local_rank in range(job.nprocs):
            rank = job.node_rank * job.nprocs + local_rank
            error_file = errors / f"rank_{rank}.traceback"
            worker_env = dict(env, RANK=str(rank), LOCAL_RANK=str(local_rank),
                              DTRAIN_RESTART_COUNT=str(attempt),
                              DTRAIN_ERROR_FILE=str(error_file))
            proc = subprocess.Popen([sys.executable, BOOTSTRAP, *job.command], env=worker_env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
            workers.append(Worker(rank, local_rank, proc, error_file,
                                  self.output.attach(proc, rank, attempt),
                                  self.output.log_file(attempt, rank, "stderr")))
        self.started = time.monotonic()
        where = "" if job.nnodes == 1 else \
            f" on node {job.node_rank} (ranks {workers[0].rank}-{workers[-1].rank})"
        self.console.say(f"started {len(workers)} worker{'s' * (len(workers) > 1)}{where} "
                         f"(pids {', '.join(str(w.proc.pid) for w in workers)})")
        return workers

    def _watch(self, workers, attempt):
        """Wait for: every worker done ("done"), some failed (the list of them, the likely
        root cause first), another node's NodeNews, or a signal (None)."""
        next_look = time.monotonic() + NODE_POLL
        next_meet = time.monotonic() + MEET_POLL
        while self.signal is None:
            if next_meet is not None and time.monotonic() >= next_meet:
                next_meet = None if self._met(attempt) else time.monotonic() + MEET_POLL
            codes = [worker.poll() for worker in workers]
            failed = [w for w in workers if w.code not in (None, 0)]
            if failed:
                # several seen at once: a killed worker first (the others may have raised
                # because it left), then the earliest traceback
                return sorted(failed, key=lambda w: (w.code > 0, _mtime(w.error_file), w.rank))
            if all(code == 0 for code in codes):
                return "done"
            if self.job.nnodes > 1 and time.monotonic() >= next_look:
                news = self.rendezvous.news(attempt)
                if news is not None:
                    return news
                next_look = time.monotonic() + NODE_POLL
            time.sleep(POLL)
        return None

    def _met(self, attempt):
        """Say so once the workers' rendezvous is complete; True then."""
        joined = self.rendezvous.workers_joined(attempt)
        if joined is None:
            return False
        self.console.say(f"rendezvous complete: {joined}/{self.job.world_size} workers joined "
                         f"in {time.monotonic() - self.started:.1f} s")
        return True

    def _merge_trace(self):
        """Merge the workers' timelines into trace.json."""
        try:
            merged = timeline.merge(self.job.trace_dir)
        except (OSError, ValueError) as e:
            self.console.say(f"could not merge the timelines in {self.job.trace_dir}: {e}")
            return
        if merged is None:
            self.console.say(f"no timeline: no worker wrote one to {self.job.trace_dir} (they "
                             "write it when they exit, if they imported dtrain)")
        else:
            self.console.say(f"timeline: {merged} (open it at https://ui.perfetto.dev)")

    def _stop(self, workers, sig):
        """Send sig to every running worker's group; SIGKILL what remains after the grace
        period (at once if sig is SIGKILL or a second signal came); reap them all."""
        for worker in workers:
            if worker.poll() is None:
                worker.signal(sig)
        deadline = time.monotonic() + self.job.grace_period
        while (sig != signal.SIGKILL and not self.hurry and time.monotonic() < deadline
               and any(worker.poll() is None for worker in workers)):
            time.sleep(POLL)
        for worker in workers:
            if worker.poll() is None:
                worker.signal(signal.SIGKILL)
                worker.proc.wait()
                worker.poll()
        for worker in workers:
            worker.output.close()

    def _report(self, workers, failed, attempt):
        """Stop the workers still running and print the summary."""
        running = [w for w in workers if w.code is None]
        # let the others raise DistPeerError naming the failed worker (they notice in about
        # 0.2 s) and exit by themselves, so that the summary shows it; then stop the rest
        settle = time.monotonic() + SETTLE
        while time.monotonic() < settle and any(w.poll() is None for w in running):
            time.sleep(POLL)
        self._stop(workers, signal.SIGTERM)
        # those that raised while the others were being stopped failed too (often because of
        # the first failure: a peer that left); the rest were stopped
        raised = [w for w in running if w.code != 0 and os.path.exists(w.error_file)]
        stopped = [w for w in running if w not in raised]
        # the root cause first: a worker killed by a signal, else the earliest traceback (the
        # worker that failed first may have exited after those it made fail)
        killed = [w for w in failed if w.code < 0]
        failed = killed + sorted([w for w in failed + raised if w not in killed],
                                 key=lambda w: (_mtime(w.error_file), w.rank))
        title = (f"{self.job.name} failed (attempt {attempt + 1} of "
                 f"{self.job.max_restarts + 1})")
        self.console.say(failure_report(title, [w.end() for w in failed],
                                        [w.end() for w in stopped], self.job.node_rank))

    def _on_signal(self, signum, frame):
        if self.workers is None:
            raise _Interrupted(signum)
        if self.signal is None:
            self.signal = signum
        else:
            self.hurry = True

    # --- the workers' environment ---------------------------------------------------------

    def _environment(self):
        job = self.job
        env = dict(os.environ,
                   WORLD_SIZE=str(job.world_size), LOCAL_WORLD_SIZE=str(job.nprocs),
                   GROUP_RANK=str(job.node_rank), MASTER_ADDR=job.master_addr,
                   MASTER_PORT=str(self.rendezvous.port),
                   DTRAIN_MAX_RESTARTS=str(job.max_restarts), DTRAIN_JOB_TOKEN=self.token,
                   DTRAIN_STORE_HOSTED="1",
                   DTRAIN_LAUNCHER_PID=str(os.getpid()), PYTHONUNBUFFERED="1")
        if job.trace_dir is not None:
            env["DTRAIN_TRACE"] = str(job.trace_dir)
        if "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = "1"
            self.console.say("setting OMP_NUM_THREADS=1 for every worker, so that they do not "
                             "overload the machine; set it yourself to tune it")
        return env


class _Interrupted(BaseException):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return float("inf")


