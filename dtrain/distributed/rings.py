"""Point-to-point between the processes of one host: one ring per ordered pair of ranks.

Through the engine, a 4-byte send wakes four threads before the receiver has it (this rank's
engine, ZeroMQ's I/O threads on both sides, the peer's engine) and the receiver's caller last.
Instead, rank a's caller thread writes its message to rank b as a record (the wire header, then
the payload) into a's ring to b, in a's shared-memory file (shm.Lanes), which b maps read-only;
it publishes the record by advancing the ring's write position, then rings b's doorbell. b's
caller reads the record in place when it waits for the message, and says how far it has read
in its own file, which a maps: that is the room a may write again. Nobody else wakes up.

A message larger than MAX_PAYLOAD, or one that finds the ring full, goes by socket instead:
writing never waits for the reader. Every message a sends b, either way, carries a sequence
number, so b takes them in the order sent (p2p.py). x86-64 only, as fastpath.py: a position
stored after the record is seen after the record.
"""
import platform

import numpy as np

from . import wire
from .shm import RING_BYTES, ring_bell

MAX_PAYLOAD = 64 << 10  # larger messages go by socket: this ring holds a few of them at most
ENABLED = platform.machine() == "x86_64"
_ALIGN = 64
_PAD = -1  # a record length that says "the rest of the ring is unused: go on at its start"


def _aligned(n):
    return -(-n // _ALIGN) * _ALIGN


class Outbound:
    """This rank's ring to one peer (written in the caller's threads, under the engine's send
    lock)."""

    def __init__(self, own, peer_lanes, me, peer):
        self._written, _, self._data = own.ring(peer)
        _, self._their_read, _ = peer_lanes.ring(me)
        self._bell = peer_lanes.bell
        self._position = int(self._written[0])

    def put(self, head, payload):
        """Write one message and wake the peer; False if the ring has no room for it (then
        nothing was written). ``payload``: a contiguous array."""
        nbytes = payload.nbytes
        if nbytes > MAX_PAYLOAD:
            return False
        start = _aligned(16 + len(head))
        need = start + _aligned(nbytes)
        position = self._position
        offset = position % RING_BYTES
        skip = RING_BYTES - offset if need > RING_BYTES - offset else 0
        if position + skip + need - int(self._their_read[0]) > RING_BYTES:
            return False
        data = self._data
        if skip:
            data[offset:offset + 8].view(np.int64)[0] = _PAD
            position += skip
            offset = 0
        data[offset:offset + 16].view(np.int64)[:] = (len(head), nbytes)
        data[offset + 16:offset + 16 + len(head)] = np.frombuffer(head, np.uint8)
        if nbytes:
            data[offset + start:offset + start + nbytes] = payload.reshape(-1).view(np.uint8)
        self._position = position + need
        self._written[0] = self._position  # last: this publishes the record
        ring_bell(self._bell)
        return True


class Inbound:
    """A peer's ring to this rank (read under the receiver's lock, in any thread)."""

    def __init__(self, own, peer_lanes, me, peer):
        self.peer = peer
        self._written, _, self._data = peer_lanes.ring(me)
        _, self._read, _ = own.ring(peer)
        self._position = int(self._read[0])
        self._next = None  # (header, payload, size) of the record at _position, once read

    def peek(self):
        """The oldest unread message as (header, payload bytes, read-only view into the ring),
        or None. Raises ValueError if the record is malformed."""
        if self._next is not None:
            return self._next[:2]
        while self._position < int(self._written[0]):
            offset = self._position % RING_BYTES
            data = self._data
            hlen, nbytes = (int(v) for v in data[offset:offset + 16].view(np.int64))
            if hlen == _PAD:
                self._position += RING_BYTES - offset
                continue
            start = _aligned(16 + max(hlen, 0))
            size = start + _aligned(max(nbytes, 0))
            if not 0 < hlen <= 4096 or not 0 <= nbytes <= MAX_PAYLOAD \
                    or offset + size > RING_BYTES:
                raise ValueError(f"rank {self.peer}'s point-to-point ring holds a malformed "
                                 f"record ({hlen} header bytes, {nbytes} payload bytes)")
            header = wire.decode(data[offset + 16:offset + 16 + hlen].tobytes(), nbytes)
            if header.kind != wire.P2P:
                raise ValueError(f"rank {self.peer}'s point-to-point ring holds a message of "
                                 f"kind {header.kind}")
            self._next = (header, data[offset + start:offset + start + nbytes], size)
            return self._next[:2]
        return None

    def pop(self):
        """Done with the message ``peek`` returned: its room may be written again."""
        self._position += self._next[2]
        self._next = None
        self._read[0] = self._position
