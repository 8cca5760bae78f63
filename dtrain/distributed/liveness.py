"""Noticing that a peer is gone, or slow.

ZeroMQ reports when the connection to a peer's data socket closes, and closes it itself when
the peer answers none of its heartbeats for DTRAIN_PEER_TIMEOUT seconds (10 by default): a
peer that hangs, is stopped, or whose network is cut. A peer that leaves with
destroy_process_group says goodbye first (a BYE message, the last on its connection); a peer
whose connection closes without one has exited, crashed, been killed or stopped answering.
Either way, what waits for it fails at once with DistPeerError naming it, instead of waiting
out the timeout.

A collective that waits longer than DTRAIN_STALL_SECONDS (60 by default) for some ranks logs
a warning naming them, once, and goes on waiting until its deadline.
"""
import logging
import os
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

GRACE = 0.2  # s: the peer's last messages travel on another connection; let them arrive first
logger = logging.getLogger("dtrain.distributed")


def _seconds(name, default):
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None


def stall_seconds():
    """How long a collective waits before reporting a stall (DTRAIN_STALL_SECONDS)."""
    return _seconds("DTRAIN_STALL_SECONDS", 60.0)


def keep_alive(sock):
    """Give ``sock``'s connections heartbeats: one that hears nothing back for
    DTRAIN_PEER_TIMEOUT seconds is closed, which ``PeerWatch`` reports."""
    timeout = _seconds("DTRAIN_PEER_TIMEOUT", 10.0)
    sock.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(min(1.0, timeout / 4) * 1000)))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(timeout * 1000)))
    sock.setsockopt(zmq.HEARTBEAT_TTL, max(100, int(timeout * 1000)))


def report_stall(rank, what, missing, waited):
    """Log, once per op, which ranks an op has waited ``waited`` s for."""
    logger.warning(f"[rank{rank}] stall: {what} has waited {waited:.0f} s for rank"
                   f"{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}, which "
                   "have not made their part of it yet; still waiting until its deadline")


class PeerWatch:
    """Which peers are connected, which left cleanly, and which were lost."""

    def __init__(self):
        self.monitors = {}   # monitor socket -> peer rank
        self.connected = set()
        self.left = set()    # said goodbye
        self.lost = {}       # rank -> when to act on its loss
        self.gone = {}       # rank -> why it is gone (a sentence)

    def watch(self, rank, sock):
        """Start watching the connection ``sock`` has to ``rank``; returns the monitor socket
        to poll."""
        mon = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self.monitors[mon] = rank
        return mon

    def read(self, mon):
        """Take the monitor's events."""
        rank = self.monitors[mon]
        while True:
            try:
                event = recv_monitor_message(mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_CONNECTED:
                self.connected.add(rank)
            elif event["event"] == zmq.EVENT_DISCONNECTED and rank in self.connected \
                    and rank not in self.left and rank not in self.gone:
                self.lost.setdefault(rank, time.monotonic() + GRACE)

    def said_goodbye(self, rank):
        self.left.add(rank)
        self.lost.pop(rank, None)
        self.gone[rank] = (f"rank {rank} has left the process group "
                           "(destroy_process_group)")

    def due(self):
        """Ranks whose loss is now certain; each is reported once."""
        now = time.monotonic()
        ready = [r for r, when in self.lost.items() if when <= now]
        for r in ready:
            del self.lost[r]
            self.gone[r] = (f"rank {r} is gone: its connection closed, or it answered nothing "
                            "for DTRAIN_PEER_TIMEOUT s, without it leaving the process group (it "
                            "exited, crashed, was killed, hangs, or its network is cut)")
        return ready

    def next_time(self):
        return min(self.lost.values()) if self.lost else None

    def close(self, sockets):
        for sock in sockets:
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
        for mon in self.monitors:
            mon.close(linger=0)
        self.monitors.clear()
