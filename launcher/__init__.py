"""dtrain-run, the launcher: start N workers of a training script, watch, restart, report.

    dtrain-run --nprocs 4 train.py          (or: python -m launcher --nprocs 4 train.py)

cli.py parses the command line into a Job; agent.py starts, watches, stops and restarts the
workers; rendezvous.py hosts the job's store on node 0 and carries the news between nodes;
each worker starts in bootstrap.py, which captures its traceback and ties its life to the
launcher's; output.py routes the workers' output and summary.py writes the failure report.
"""
from .agent import Agent, Job
from .rendezvous import LaunchError
from .cli import main

__all__ = ["Agent", "Job", "LaunchError", "main"]
