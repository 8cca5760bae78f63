"""Point-to-point: numbering sends, and matching messages to posted receives in that order.

Every message one rank sends another carries a sequence number, counted per pair of ranks
(Sends). It goes by socket, through the engine thread, or, between processes of one host,
through shared memory that the sender writes and the receiver reads in their own threads
(rings.py).
A sender's messages are taken strictly in sequence order, whichever way each came, so the two
ways never overtake each other.

Messages taken before their receive wait in mailboxes keyed by (group, tag), searched in
arrival order for the wanted source; receives posted before their message wait likewise. So
the messages one rank sends another with one tag are received in the order sent, as in torch.

Receives are posted, and rings read, in the callers' threads; socket messages are delivered,
and receives failed, in the engine's. One lock keeps them apart. A receive that a ring may
complete is waited for by reading the rings, sleeping on this rank's doorbell in between,
which a peer rings when it writes to a ring and the engine when it completes a receive.
"""
import collections
import threading
import time

import numpy as np

from . import wire
from .errors import DistBackendError, DistMismatchError, DistTimeoutError
from .shm import CHECK_EVERY, CPUS, SPINS, ring_bell, wait_word



class Sends:
    """The point-to-point sends of one process (posted from any thread)."""

    def __init__(self, engine):
        self._engine = engine
        self._lock = threading.Lock()  # numbers the messages in sending order
        self._sent = collections.Counter()  # peer -> messages sent it
        self.rings = {}  # peer on this host -> rings.Outbound

    def post(self, dst, group, tag, array, work):
        """Send ``array`` to ``dst``: through shared memory when ``dst`` is on this host and
        its ring (or, for a large message, the bulk area beside it) is free, else through the
        engine thread. Either way it is numbered, in order."""
        engine = self._engine
        engine._check_open()
        if engine.refuse(group, work, (dst,)):
            return
        ring = self.rings.get(dst)
        with self._lock:
            seq = self._sent[dst]
            self._sent[dst] = seq + 1
            header = wire.encode(wire.P2P, group, seq, tag, 0, 0, array.dtype, array.shape, -1,
                                 array.nbytes)
            payload = np.ascontiguousarray(array)  # (at least one dim: the header keeps shape)
            if ring is not None and ring.put(header, payload):
                work._finish()
                return
            engine.call(engine._send_now, dst, header, payload, work)

    def wait_for_readers(self, gone, receive_all, limit=3.0):
        """Give the peers up to ``limit`` s to read the large messages still in this process's
        bulk areas (they go with it), as the sockets linger for theirs (engine thread, at the
        end; ``gone(rank)``: it will not read; ``receive_all()``: take the goodbyes)."""
        end = time.monotonic() + limit
        while time.monotonic() < end and any(
                ring.unread() for rank, ring in self.rings.items() if not gone(rank)):
            time.sleep(0.002)
            receive_all()

    def close(self):
        while self.rings:  # (no loop variable may keep a view of the mappings)
            self.rings.popitem()[1].close()


class Receives:
    """The posted receives and the unclaimed messages of one process."""

    def __init__(self, rank, pending):
        self.rank = rank
        self._pending = pending  # the engine's id(work) -> (work, on_timeout)
        self._lock = threading.Lock()
        self._mail = collections.defaultdict(collections.deque)  # (group, tag) -> messages
        self._waiting = collections.defaultdict(list)            # (group, tag) -> receives
        self._expected = collections.Counter()  # sender -> sequence number of its next message
        self._early = collections.defaultdict(dict)  # sender -> seq -> message ahead of turn
        self._rings = {}    # sender -> rings.Inbound, for the peers on this host
        self._unreadable = {}  # sender -> why its ring cannot be read (then nor its messages)
        self._bell = None   # this rank's doorbell, with rings
        self._spin = False
        self._polling = None  # the receive whose caller is taking messages now (no need to wake)

    def add_rings(self, rings, bell):
        """Read these peers' rings (sender -> rings.Inbound); ``bell``: this rank's doorbell.
        None, None: forget them all (the engine closes the memory)."""
        with self._lock:
            if rings is None:
                for ring in self._rings.values():
                    ring.close()
                self._rings.clear()
            self._rings.update(rings or {})
            self._bell = bell
            self._spin = len(self._rings) + 1 <= CPUS

    # --- any thread -----------------------------------------------------------------------------
    def post(self, src, group, tag, array, work, refuse=lambda: False):
        """Receive into ``array`` from ``src`` (None: any rank), unless no message is there
        yet and ``refuse()`` fails the receive."""
        with self._lock:
            senders = self._senders(src)
            for sender in senders:
                self._catch_up(sender)
            mail = self._mail[(group, tag)]
            for i, (sender, header, payload) in enumerate(mail):
                if src is None or sender == src:
                    del mail[i]
                    self._complete(work, array, sender, header, payload)
                    return
            if src in self._unreadable:
                self._finish(work, self._unreadable[src])
                return
            if refuse():
                return
            self._waiting[(group, tag)].append((src, array, work))
            self._pending[id(work)] = (work, lambda: self._timeout(group, tag, src, work))
            if senders:
                work._receives, work._peer = self, src

    def poll(self, work):
        """Take what the rings hold for ``work`` (in the caller's thread)."""
        with self._lock:
            self._polling = work
            for sender in self._senders(work._peer):
                self._catch_up(sender)
            self._polling = None

    def wait(self, work, end):
        """Wait, in the caller's thread, until ``work`` completes, its deadline passes (then it
        fails) or ``end`` comes."""
        bell = self._bell
        while bell is not None and not work._done.is_set():  # (None: the engine has stopped)
            seen = int(bell[0])
            self.poll(work)
            now = time.monotonic()
            if work._done.is_set() or now >= end:
                return
            if now >= work.deadline:
                entry = self._pending.pop(id(work), None)
                if entry is not None:
                    entry[1]()
                return
            for _ in range(SPINS if self._spin else 0):
                if bell[0] != seen:
                    break
            else:
                wait_word(bell, seen, min(CHECK_EVERY, end - now, work.deadline - now))

    # --- engine thread --------------------------------------------------------------------------
    def deliver(self, sender, header, payload):
        """A message came by socket: take it, and what it was waiting for, in turn."""
        with self._lock:
            if header.seq >= self._expected[sender]:  # else not in turn: not one of ours
                self._early[sender][header.seq] = (header, payload.buffer)
                self._catch_up(sender)

    def fail(self, error_for, group=None, src=None):
        """Fail the receives waiting in ``group`` or for ``src`` (each None: any), with the
        error ``error_for(work)``."""
        with self._lock:
            for (g, _), waiting in self._waiting.items():
                if group is not None and g != group:
                    continue
                for entry in [w for w in waiting if src is None or w[0] == src]:
                    waiting.remove(entry)
                    self._pending.pop(id(entry[2]), None)
                    self._finish(entry[2], error_for(entry[2]))

    # --- under the lock -------------------------------------------------------------------------
    def _senders(self, src):
        if src is None:
            return list(self._rings)
        return [src] if src in self._rings else []

    def _catch_up(self, sender):
        """Take ``sender``'s messages in sequence order, as far as they have come."""
        ring, early = self._rings.get(sender), self._early.get(sender)
        while True:
            seq = self._expected[sender]
            if early and seq in early:
                self._take(sender, *early.pop(seq))
            elif ring is not None:
                try:
                    got = ring.peek()
                    if got is not None and got[0].seq < seq:
                        raise ValueError(f"rank {sender} sent message #{got[0].seq} twice")
                except ValueError as e:
                    self._broken_ring(sender, e)
                    return
                if got is None or got[0].seq != seq:
                    return  # the next message comes by socket
                self._take(sender, *got, copy=True)
                ring.pop()
            else:
                return
            self._expected[sender] = seq + 1

    def _take(self, sender, header, payload, copy=False):
        """Complete the first receive waiting for this message, or keep it (``copy``: the
        payload is a view of a ring, and about to be written again)."""
        waiting = self._waiting[(header.group, header.tag)]
        for i, (src, array, work) in enumerate(waiting):
            if src is None or src == sender:
                del waiting[i]
                self._pending.pop(id(work), None)
                self._complete(work, array, sender, header, payload)
                return
        self._mail[(header.group, header.tag)].append(
            (sender, header, np.array(payload) if copy else payload))

    def _complete(self, work, array, sender, header, payload):
        if header.dtype != array.dtype or header.shape != array.shape:
            self._finish(work, DistMismatchError(
                f"recv on rank {self.rank}: rank {sender} sent a tensor of shape "
                f"{list(header.shape)} and dtype {header.dtype}, but the receive buffer has "
                f"shape {list(array.shape)} and dtype {array.dtype}. Allocate the buffer with "
                "the sender's shape and dtype."), source=sender)
            return
        if array.nbytes:
            np.copyto(array, wire.as_array(payload, array.dtype, array.shape))
        self._finish(work, source=sender)

    def _finish(self, work, error=None, source=None):
        work._finish(error, source)
        if work._receives is not None and work is not self._polling and self._bell is not None:
            ring_bell(self._bell)  # its caller may sleep on the doorbell

    def _broken_ring(self, sender, error):
        self._rings.pop(sender)
        why = self._unreadable[sender] = DistBackendError(
            f"rank {self.rank} cannot read rank {sender}'s messages: {error}")
        for (g, _), waiting in self._waiting.items():
            for entry in [w for w in waiting if w[0] == sender]:
                waiting.remove(entry)
                self._pending.pop(id(entry[2]), None)
                self._finish(entry[2], why)

    def _timeout(self, group, tag, src, work):
        with self._lock:
            waiting = self._waiting[(group, tag)]
            waiting[:] = [w for w in waiting if w[2] is not work]
            who = f"rank {src}" if src is not None else "any rank"
            self._finish(work, DistTimeoutError(
                f"{work.description} on rank {self.rank} timed out waiting for a message from "
                f"{who} with tag {tag} (group {group}). Check that the sender calls send with "
                "the same tag and group."))
