"""Noticing that a peer is gone.

ZeroMQ reports when the connection to a peer's data socket closes. A peer that leaves with
destroy_process_group says goodbye first (a BYE message, the last on its connection); a peer
whose connection closes without one has exited, crashed or been killed. Either way, what waits
for it fails at once with DistPeerError naming it, instead of waiting out the timeout.
"""
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

GRACE = 0.2  # s: the peer's last messages travel on another connection; let them arrive first


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
            self.gone[r] = (f"rank {r} is gone: its connection closed without it leaving the "
                            "process group (it exited, crashed or was killed)")
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
