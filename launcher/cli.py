"""dtrain-run's command line: parse it into a Job and run the agent."""
import argparse
import os
import sys
from pathlib import Path

from .agent import Agent, Job

_DESCRIPTION = """\
Start N worker processes of a training script on this machine, watch them, and report.

Each worker is a fresh Python interpreter running the script as __main__, with RANK,
LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK (the node rank), MASTER_ADDR, MASTER_PORT,
DTRAIN_RESTART_COUNT, DTRAIN_MAX_RESTARTS and DTRAIN_JOB_TOKEN set, so that
dist.init_process_group("gloo") needs no arguments. The launcher hosts the rendezvous store.
If a worker fails, the others are stopped (SIGTERM, then SIGKILL after --grace-period), and a
summary shows the failed worker's traceback; or the whole group restarts (--max-restarts).
Ctrl-C stops every worker; no worker outlives the launcher."""

_EXAMPLES = """\
examples:
  dtrain-run --nprocs 4 train.py --epochs 3
      4 workers on this machine, on a free port
  dtrain-run --nprocs 4 -m mypackage.train
      run a module, as python -m does
  dtrain-run --nprocs 4 --max-restarts 3 train.py
      restart all workers up to 3 times; they read DTRAIN_RESTART_COUNT to resume
  dtrain-run --nprocs 2 --log-dir logs --tee train.py
      per-rank logs in logs/attempt_0/rank_R.stdout.log (and .stderr.log), and the console
  dtrain-run --nprocs 4 --trace traces train.py
      a timeline of every rank in traces/trace.json: open it at https://ui.perfetto.dev
  DTRAIN_DEBUG=DETAIL dtrain-run --nprocs 2 train.py
      log every collective with its sequence number, shapes and duration (or INFO)
  export DTRAIN_JOB_TOKEN=<the same secret on every node>
  dtrain-run --nnodes 2 --node-rank 0 --nprocs 4 --master-addr node0 --master-port 29500 train.py
  dtrain-run --nnodes 2 --node-rank 1 --nprocs 4 --master-addr node0 --master-port 29500 train.py
      two nodes: 8 workers, ranks 0-3 on node 0 and 4-7 on node 1

exit status: 0 when every worker succeeded, 1 when one failed or the job could not start,
128+N after signal N (130 after Ctrl-C), 2 for a bad command line."""


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _count(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _seconds(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def _port(text):
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number in 1..65535, got {value}")
    return value


def parser():
    p = argparse.ArgumentParser(
        prog="dtrain-run", description=_DESCRIPTION, epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
        usage="%(prog)s [options] script.py [args ...]\n       %(prog)s [options] -m module "
              "[args ...]")
    p.add_argument("--nprocs", "--nproc-per-node", "--nproc_per_node", dest="nprocs",
                   type=_positive, default=1, metavar="N",
                   help="workers on this node (default 1)")
    p.add_argument("--nnodes", type=_positive, default=1, metavar="M",
                   help="nodes in the job, one launcher each (default 1)")
    p.add_argument("--node-rank", "--node_rank", dest="node_rank", type=_count, default=0,
                   metavar="K", help="this node's rank in [0, M-1]; its workers get ranks "
                   "K*N .. K*N+N-1 (default 0)")
    p.add_argument("--master-addr", "--master_addr", dest="master_addr", metavar="HOST",
                   help="node 0's address (default 127.0.0.1; required with --nnodes > 1)")
    p.add_argument("--master-port", "--master_port", dest="master_port", type=_port,
                   metavar="PORT", help="the rendezvous store's port on node 0 (default: a "
                   "free port; required with --nnodes > 1)")
    p.add_argument("--max-restarts", "--max_restarts", dest="max_restarts", type=_count,
                   default=0, metavar="R", help="restart all workers up to R times after a "
                   "failure (default 0)")
    p.add_argument("--grace-period", dest="grace_period", type=_seconds, default=5.0,
                   metavar="S", help="seconds between SIGTERM and SIGKILL when stopping "
                   "workers (default 5)")
    p.add_argument("--log-dir", dest="log_dir", type=Path, metavar="DIR",
                   help="write each worker's stdout and stderr to files in DIR instead of the "
                   "console")
    p.add_argument("--tee", action="store_true",
                   help="with --log-dir: write to the files and to the console")
    p.add_argument("--trace", type=Path, metavar="DIR",
                   help="record a timeline: each worker writes DIR/rank-N.json, merged at the "
                   "end into DIR/trace.json for https://ui.perfetto.dev (default: "
                   "$DTRAIN_TRACE, if set)")
    p.add_argument("--no-prefix", dest="prefix", action="store_false",
                   help="do not prefix console lines with [rankR]:")
    p.add_argument("-m", "--module", action="store_true",
                   help="run the script argument as a module, as python -m does")
    p.add_argument("script", metavar="script.py | module",
                   help="the training script (or module, with -m)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    return p


def parse(argv=None):
    """The Job that a command line asks for; exits with status 2 and a message if it is bad."""
    p = parser()
    a = p.parse_args(argv)
    if a.node_rank >= a.nnodes:
        p.error(f"--node-rank must be in [0, {a.nnodes - 1}] for --nnodes {a.nnodes}, "
                f"got {a.node_rank}")
    if a.nnodes > 1:
        missing = [flag for flag, value in (("--master-addr", a.master_addr),
                                            ("--master-port", a.master_port)) if value is None]
        if missing:
            p.error(f"--nnodes {a.nnodes} needs {' and '.join(missing)}: every node's "
                    f"launcher must meet node 0's at the same address and port")
        if not os.environ.get("DTRAIN_JOB_TOKEN"):
            p.error("--nnodes > 1 needs DTRAIN_JOB_TOKEN set to the same secret on every node, "
                    "e.g. export DTRAIN_JOB_TOKEN=$(python3 -c 'import secrets; "
                    "print(secrets.token_hex(16))') and copy it to the other nodes")
    if a.tee and a.log_dir is None:
        p.error("--tee copies the workers' output to the console and to --log-dir's files: "
                "give --log-dir DIR too")
    if a.trace is None and os.environ.get("DTRAIN_TRACE"):
        a.trace = Path(os.environ["DTRAIN_TRACE"])
    for flag, directory in (("--log-dir", a.log_dir), ("--trace", a.trace)):
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                p.error(f"cannot create {flag} {str(directory)!r}: {e.strerror or e}")
    if not a.module and not os.path.isfile(a.script):
        p.error(f"the script {a.script!r} does not exist (to run a module, use -m "
                f"{a.script})")
    command = (["-m", a.script] if a.module else [a.script]) + a.args
    return Job(command=command, nprocs=a.nprocs, nnodes=a.nnodes, node_rank=a.node_rank,
               master_addr=a.master_addr or "127.0.0.1", master_port=a.master_port,
               max_restarts=a.max_restarts, grace_period=a.grace_period, log_dir=a.log_dir,
               tee=a.tee, prefix=a.prefix, trace_dir=a.trace and a.trace.resolve())


def main(argv=None):
    """The dtrain-run command: ``dtrain-run --nprocs 4 train.py``. Returns the exit status
    (the console script passes it to sys.exit)."""
    return Agent(parse(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
