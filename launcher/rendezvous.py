"""The launcher's side of the rendezvous: node 0 hosts the job's store; every node's launcher
uses it to tell the others when an attempt failed or was stopped, and to wait for them at the
end.

Launcher keys live under ``dtrain-run/<attempt>/``, beside the workers' ``dtrain/<attempt>/``:

    end    "failed K" or "stopped K": node K's workers failed, or node K got a signal
    done   how many nodes' workers all succeeded
    left   how many nodes other than 0 have seen every node done (node 0 then closes the store)
"""
import errno
import socket
import time
from dataclasses import dataclass
from datetime import timedelta

from dtrain.distributed.errors import DistError
from dtrain.distributed.store import TCPStore

NODE_POLL = 0.5  # seconds between looks at the other nodes' news
CONNECT_TIMEOUT = 300.0  # how long nodes 1.. wait for node 0's store
EXIT_BARRIER_TIMEOUT = 300.0  # how long a node that is done waits for the others (as torchrun)


class LaunchError(Exception):
    """The job could not start; the message is a full sentence for the user."""


@dataclass
class NodeNews:
    """What happened elsewhere in an attempt: node K's workers "failed", or node K was
    "stopped" by a signal; node 0's store was "lost"; or the others did not finish in time
    ("timeout")."""

    what: str
    node: int
    attempt: int

    def __str__(self):
        if self.what == "lost":
            return "lost contact with node 0's launcher (its rendezvous store does not answer)"
        if self.what == "timeout":
            return (f"the other nodes did not finish within {EXIT_BARRIER_TIMEOUT:.0f} s of "
                    f"this one")
        return f"node {self.node}'s workers {self.what} in attempt {self.attempt}"


class Rendezvous:
    """The job's store as one node's launcher sees it: hosted here on node 0, reached on the
    others. ``port`` is the MASTER_PORT that workers get."""

    def __init__(self, job, token):
        self.nnodes, self.node_rank = job.nnodes, job.node_rank
        secret = token.encode()
        if job.node_rank == 0:
            host = job.master_addr  # only there: never every interface
            if job.master_port is not None:
                _check_port(host, job.master_port)
            try:
                self.store = TCPStore(host, job.master_port or 0, is_master=True,
                                      timeout=timedelta(seconds=30), token=secret)
            except DistError as e:
                raise LaunchError(f"could not host the rendezvous store: {e}") from None
        else:
            try:
                self.store = TCPStore(job.master_addr, job.master_port, is_master=False,
                                      timeout=timedelta(seconds=CONNECT_TIMEOUT), token=secret)
            except DistError as e:
                raise LaunchError(f"node {job.node_rank} could not reach node 0's launcher: "
                                  f"{e}") from None
        self.store.set_timeout(timedelta(seconds=10))
        self.port = self.store.port

    def close(self):
        self.store.close()

    def workers_joined(self, attempt):
        """How many workers met at the store in this attempt, once they all have; None before.
        dtrain/distributed/rendezvous.py counts them under dtrain/<attempt>/1/ (1: a worker's
        first init_process_group) and sets "all_joined" when the last one arrives."""
        prefix = f"dtrain/{attempt}/1/"
        try:
            if not self.store.check([prefix + "all_joined"]):
                return None
            return self.store.add(prefix + "joined", 0)
        except DistError:
            return None

    def tell(self, attempt, what):
        """Tell the other nodes that this node's attempt "failed" or was "stopped"."""
        if self.nnodes > 1:
            try:
                self.store.set(f"dtrain-run/{attempt}/end", f"{what} {self.node_rank}")
            except DistError:
                pass  # node 0's store is gone: the other nodes notice that themselves

    def news(self, attempt):
        """NodeNews if another node ended this attempt or node 0's store is gone; else None."""
        key = f"dtrain-run/{attempt}/end"
        try:
            if not self.store.check([key]):
                return None
            what, node = self.store.get(key).decode().split()
            return NodeNews(what, int(node), attempt)
        except DistError:
            return NodeNews("lost", 0, attempt)

    def wait_for_nodes(self, attempt, interrupted, say):
        """After this node's workers all succeeded: "done" once every node's did, NodeNews if
        one failed meanwhile (then this node restarts too), None once ``interrupted()``. Node 0
        keeps the store up until the other nodes have seen the end."""
        if self.nnodes == 1:
            return "done"
        done, left = f"dtrain-run/{attempt}/done", f"dtrain-run/{attempt}/left"
        deadline = time.monotonic() + EXIT_BARRIER_TIMEOUT
        try:
            count = self.store.add(done, 1)
            if count < self.nnodes:
                say("workers on this node are done; waiting for the other nodes")
            while count < self.nnodes:
                news = self.news(attempt)
                if interrupted() or news is not None:
                    return news
                if time.monotonic() > deadline:
                    return NodeNews("timeout", None, attempt)
                time.sleep(NODE_POLL)
                count = self.store.add(done, 0)
            if self.node_rank != 0:
                self.store.add(left, 1)
                return "done"
            deadline = time.monotonic() + 10
            while self.store.add(left, 0) < self.nnodes - 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        except DistError:
            return NodeNews("lost", 0, attempt)
        return "done"


def _check_port(host, port):
    """A clear error now, rather than the store's, when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ binds
        try:
            probe.bind((host, port))
        except socket.gaierror as e:
            raise LaunchError(f"the master address {host!r} does not resolve ({e.strerror}); "
                              f"check --master-addr") from None
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise LaunchError(
                    f"port {port} on {host} is already in use (another job, or another "
                    f"program). Pick another --master-port, or leave it out on a single node "
                    f"to get a free port.") from None
            raise LaunchError(f"cannot listen on {host}:{port}: {e.strerror or e}. Check "
                              f"--master-addr and --master-port.") from None
