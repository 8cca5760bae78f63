"""Noticing that a peer is gone, or slow.

ZeroMQ reports when the connection to a peer's data socket closes. A peer that leaves with
destroy_process_group says goodbye first (a BYE message, the last on its connection); a peer
whose connection closes without one has exited, crashed or been killed. Every engine also
sends each peer a PING when it has sent it nothing for a second, so a peer not heard from for
DTRAIN_PEER_TIMEOUT seconds (10 by default, counted from the connection to it) hangs, is
stopped, or is cut off. Either way, what waits for it fails with DistPeerError naming it,
instead of waiting out the timeout.

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


PING_EVERY = 1.0  # s: a peer sent nothing for this long gets a PING


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
        self.heard = {}      # rank -> when a message from it last arrived (or we connected)
        self.spoke = {}      # rank -> when this rank last sent it something
        self.timeout = _seconds("DTRAIN_PEER_TIMEOUT", 10.0)

    def watch(self, rank, sock):
        """Start watching the connection ``sock`` has to ``rank``; returns the monitor socket
        to poll."""
        mon = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self.monitors[mon] = rank
        # the clock starts now, not at its first message: a peer may stop before it sends any
        # (its first messages can all go through shared memory)
        self.spoke[rank] = self.heard[rank] = time.monotonic()
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

    def due(self, force=False):
        """Ranks whose loss is now certain (with ``force``, every lost one, grace or not);
        each is reported once."""
        now = time.monotonic()
        ready = [r for r, when in self.lost.items() if when <= now or force]
        for r in ready:
            del self.lost[r]
            self.gone[r] = (f"rank {r} is gone: its connection closed without it leaving the "
                            "process group (it exited, crashed or was killed)")
        for r, when in self.heard.items():
            if now - when > self.timeout and r not in self.gone and r not in self.left:
                self.lost.pop(r, None)
                self.gone[r] = (f"rank {r} is gone: nothing came from it for {self.timeout:g} s "
                                "(DTRAIN_PEER_TIMEOUT): it hangs, is stopped, or its network is "
                                "cut")
                ready.append(r)
        return ready

    def to_ping(self):
        """The peers this rank has sent nothing for PING_EVERY s, and that may still hear."""
        now = time.monotonic()
        return [r for r, when in self.spoke.items()
                if now - when >= PING_EVERY and r not in self.gone and r not in self.left]

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
