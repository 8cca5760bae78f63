"""Point-to-point between the processes of one host: one ring per ordered pair of ranks.

Through the engine, a 4-byte send wakes four threads before the receiver has it (this rank's
engine, ZeroMQ's I/O threads on both sides, the peer's engine) and the receiver's caller last.
Instead, rank a's caller thread writes its message to rank b as a record (the wire header, then
the payload) into a's ring to b, in a's shared-memory file (shm.Lanes), which b maps read-only;
it publishes the record by advancing the ring's write position, then rings b's doorbell. b's
caller reads the record in place when it waits for the message, and says how far it has read
in its own file, which a maps: that is the room a may write again. Nobody else wakes up.

A message larger than MAX_PAYLOAD travels beside the ring: a copies it into its *bulk* area
for b, a memfd of its own that grows to the largest such message and is reused, and the
record carries the area's path instead of the payload; b maps the area (once per area) and
copies the message out. That is two memory copies, against the socket path's copies, thread
hand-offs and freshly allocated receive buffers. The bulk area holds one message at a time:
while b has not read the last one, the next large message goes by socket.

A message that finds the ring full goes by socket too: writing never waits for the reader.
Every message a sends b, either way, carries a sequence number, so b takes them in the order
sent (p2p.py). x86-64 only, as fastpath.py: a position stored after the record is seen after
the record.
"""
import mmap
import os
import re

import numpy as np

from . import wire
from .shm import RING_BYTES, ring_bell

MAX_PAYLOAD = 64 << 10  # larger messages go through the bulk area: the ring holds few of them
MAX_BULK = 1 << 30      # larger still: by socket (a bulk area stays as large as its largest)
_ALIGN = 64
_PREFIX = 32  # a record's header length, payload length and bulk path length, as int64
_PAD = -1  # a record length that says "the rest of the ring is unused: go on at its start"
_BULK_PATH = re.compile(r"/proc/\d+/fd/\d+")


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
        self._bulk = None        # (fd, mapping, bytes, path) of the bulk area, once made
        self._bulk_read_at = 0   # the ring position the peer reads past when done with it

    def put(self, head, payload):
        """Write one message and wake the peer; False if it must go by socket (the ring or
        the bulk area is not free, or it is too large; then nothing was written).
        ``payload``: a contiguous array."""
        nbytes = payload.nbytes
        path = b""
        if nbytes > MAX_PAYLOAD:
            if nbytes > MAX_BULK or int(self._their_read[0]) < self._bulk_read_at:
                return False
            path = self._bulk_for(nbytes)
        inline = 0 if path else nbytes
        start = _aligned(_PREFIX + len(head) + len(path))
        need = start + _aligned(inline)
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
        data[offset:offset + 24].view(np.int64)[:] = (len(head), nbytes, len(path))
        at = offset + _PREFIX
        data[at:at + len(head)] = np.frombuffer(head, np.uint8)
        data[at + len(head):at + len(head) + len(path)] = np.frombuffer(path, np.uint8)
        if path:
            self._bulk[2][:nbytes] = payload.reshape(-1).view(np.uint8)
        elif nbytes:
            data[offset + start:offset + start + nbytes] = payload.reshape(-1).view(np.uint8)
        self._position = position + need
        if path:
            self._bulk_read_at = self._position
        self._written[0] = self._position  # last: this publishes the record
        ring_bell(self._bell)
        return True

    def _bulk_for(self, nbytes):
        """The bulk area's path, made (or remade larger) to hold ``nbytes``."""
        if self._bulk is None or len(self._bulk[1]) < nbytes:
            self.close()
            fd = os.memfd_create("dtrain-bulk", os.MFD_CLOEXEC)
            size = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
            os.ftruncate(fd, size)
            area = mmap.mmap(fd, size)
            self._bulk = (fd, area, np.frombuffer(area, np.uint8),
                          f"/proc/{os.getpid()}/fd/{fd}".encode())
        return self._bulk[3]

    def unread(self):
        """Whether the peer has yet to read the last message in the bulk area (which goes
        with this process)."""
        return self._bulk is not None and int(self._their_read[0]) < self._bulk_read_at

    def close(self):
        if self._bulk is not None:
            fd, area = self._bulk[:2]
            self._bulk = None
            try:
                area.close()
            except BufferError:  # a view is still referenced; the mapping goes with it
                pass
            os.close(fd)


class Inbound:
    """A peer's ring to this rank (read under the receiver's lock, in any thread)."""

    def __init__(self, own, peer_lanes, me, peer):
        self.peer = peer
        self._written, _, self._data = peer_lanes.ring(me)
        _, self._read, _ = own.ring(peer)
        self._position = int(self._read[0])
        self._next = None  # (header, payload, size) of the record at _position, once read
        self._bulk = None  # (path, mapping, bytes) of the peer's bulk area, once mapped

    def peek(self):
        """The oldest unread message as (header, payload bytes, read-only view into the ring),
        or None. Raises ValueError if the record is malformed."""
        if self._next is not None:
            return self._next[:2]
        while self._position < int(self._written[0]):
            offset = self._position % RING_BYTES
            data = self._data
            hlen, nbytes, plen = (int(v) for v in data[offset:offset + 24].view(np.int64))
            if hlen == _PAD:
                self._position += RING_BYTES - offset
                continue
            inline = 0 if plen else nbytes
            start = _aligned(_PREFIX + max(hlen, 0) + max(plen, 0))
            size = start + _aligned(max(inline, 0))
            if not 0 < hlen <= 4096 or not 0 <= plen <= 4096 \
                    or not 0 <= nbytes <= (MAX_BULK if plen else MAX_PAYLOAD) \
                    or offset + size > RING_BYTES:
                raise ValueError(f"rank {self.peer}'s point-to-point ring holds a malformed "
                                 f"record ({hlen} header bytes, {nbytes} payload bytes)")
            at = offset + _PREFIX
            header = wire.decode(data[at:at + hlen].tobytes(), nbytes)
            if header.kind != wire.P2P:
                raise ValueError(f"rank {self.peer}'s point-to-point ring holds a message of "
                                 f"kind {header.kind}")
            if plen:
                path = data[at + hlen:at + hlen + plen].tobytes().decode("ascii", "replace")
                payload = self._bulk_area(path, nbytes)[:nbytes]
            else:
                payload = data[offset + start:offset + start + nbytes]
            self._next = (header, payload, size)
            return self._next[:2]
        return None

    def _bulk_area(self, path, nbytes):
        """The peer's bulk area at ``path`` (mapped read-only, once per area)."""
        # (a new, larger area may reuse the old one's fd number, so its path: it is always
        # larger than the area the reader mapped, since the reader read every bulk message)
        if self._bulk is None or self._bulk[0] != path or len(self._bulk[2]) < nbytes:
            self.close()
            if not _BULK_PATH.fullmatch(path):
                raise ValueError(f"rank {self.peer} names {path!r} as its bulk area")
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise ValueError(f"rank {self.peer}'s large message at {path} cannot be "
                                 f"read: {e}") from None
            try:
                area = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            self._bulk = (path, area, np.frombuffer(area, np.uint8))
        if len(self._bulk[2]) < nbytes:
            raise ValueError(f"rank {self.peer}'s bulk area is smaller than its message")
        return self._bulk[2]

    def close(self):
        self._next = None
        if self._bulk is not None:
            area = self._bulk[1]
            self._bulk = None
            try:
                area.close()
            except BufferError:
                pass

    def pop(self):
        """Done with the message ``peek`` returned: its room may be written again."""
        self._position += self._next[2]
        self._next = None
        self._read[0] = self._position
