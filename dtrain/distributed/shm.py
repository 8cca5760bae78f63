"""The same-host data path: shared-memory lanes.

Each process makes one anonymous shared-memory file (memfd) when its engine starts: one lane per
process group (ids below LANES), each lane SLOTS slots of SLOT_BYTES for large all_reduces, two
mailboxes for small collectives, and two progress counters (slots.py). Its peers on the same
host map that file through /proc/<pid>/fd/<fd>, read-only. Only the same user may open it,
nothing is ever named in /dev/shm, and the memory goes away with the last process that maps it,
however the processes end. Pages are allocated on first touch, so the file's size reserves
address space, not memory: a lane costs what its slots hold.

A large all_reduce copies a chunk of its buffer into a slot of its own lane, says so by raising a
counter, and reads its peers' slots in place: one copy per byte instead of two socket copies,
the kernel's TCP work and a freshly allocated receive buffer.

After the lanes, the file holds one point-to-point ring per peer (rings.py). Each process also
has a doorbell: one word in a second, page-sized memfd that its peers map writable, so that a
peer that leaves a message can wake it (``ring_bell``) whatever it waits for.
"""
import collections
import ctypes
import mmap
import os
import platform

import numpy as np

from .errors import DistBackendError

SLOT_BYTES = 1 << 20
SLOTS = 3  # a slot is rewritten only once every peer has read it (slots.py says why)
MAILBOX_BYTES = 64 << 10  # the largest payload of a small collective
_BOX_HEAD = 4096          # a mailbox's flag, header length and header (fastpath.py)
_BOX = _BOX_HEAD + MAILBOX_BYTES
_PROGRESS = 4096          # a lane's counters: chunks put in its slots, and reduced
_LANE = SLOTS * SLOT_BYTES + 2 * _BOX + _PROGRESS
LANES = 64
RING_BYTES = 256 << 10  # a point-to-point ring's data (rings.py)
_RING_HEAD = 128        # its write position, and how far this rank has read the peer's ring
_RING = _RING_HEAD + RING_BYTES
_BELL_BYTES = 4096

# how a caller's thread waits on shared memory (fastpath.py, p2p.py): it checks a flag SPINS
# times (some 100 us) when every rank has one of the CPUS, then sleeps on a futex, waking every
# CHECK_EVERY s to check its deadline. Only where a flag stored after the data is seen after
# the data, as on x86-64 (STORES_IN_ORDER); elsewhere the engine carries everything.
SPINS = 2000
CPUS = len(os.sched_getaffinity(0))
CHECK_EVERY = 0.05
STORES_IN_ORDER = platform.machine() == "x86_64"


def chunk_bytes(ranks):
    """How much a large all_reduce among ``ranks`` processes of this host moves per step
    (slots.py). Measured (16 MB, world 2 and 4 on 2 cores): with a core per rank, half a
    slot, 512 KB, pipelines best (2.0 ms against 3.5 with 1 MB); with more ranks than cores,
    where every wait may cost a context switch, a whole slot (5.2-5.6 ms against 5.8-6.4).
    Every rank must choose alike: so the host's CPU count, not this process's affinity."""
    return SLOT_BYTES if ranks > os.cpu_count() else SLOT_BYTES // 2


_FUTEX = 202  # the futex syscall on x86_64 Linux, where fastpath.py runs
_FUTEX_WAIT, _FUTEX_WAKE, _FUTEX_WAKE_OP = 0, 1, 5
_ADD_ONE = (1 << 28) | (1 << 12)  # FUTEX_WAKE_OP's operation: add 1 to the word
_libc = ctypes.CDLL(None, use_errno=True)  # its calls release the GIL


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def wait_word(flag, value, timeout):
    """Sleep until the int64 ``flag`` (a one-element array in shared memory) no longer holds
    ``value``, someone calls ``wake_word`` on it, or ``timeout`` s pass (a futex on its low
    32 bits)."""
    ts = _Timespec(int(timeout), int(timeout % 1 * 1e9))
    _libc.syscall(_FUTEX, ctypes.c_void_p(flag.ctypes.data), _FUTEX_WAIT,
                  ctypes.c_uint32(value & 0xFFFFFFFF), ctypes.byref(ts), None, 0)


def wake_word(flag):
    """Wake every process sleeping in ``wait_word`` on ``flag``."""
    _libc.syscall(_FUTEX, ctypes.c_void_p(flag.ctypes.data), _FUTEX_WAKE,
                  ctypes.c_int(2**31 - 1), None, None, 0)


def publish(word, value):
    """Store ``value`` in the int64 ``word`` (in shared memory) and wake whoever waits on it."""
    word[0] = value
    wake_word(word)


def ring_bell(bell):
    """Add one to the int32 ``bell`` (a doorbell, in shared memory) and wake every process
    sleeping on it, in one atomic step: a sleeper that read the old value cannot miss it."""
    address = ctypes.c_void_p(bell.ctypes.data)
    _libc.syscall(_FUTEX, address, _FUTEX_WAKE_OP, ctypes.c_int(2**31 - 1), None, address,
                  ctypes.c_int(_ADD_ONE))


def enabled():
    """Whether this process offers shared memory to its peers (DTRAIN_SHM=0 turns it off)."""
    return os.environ.get("DTRAIN_SHM", "1") != "0"


def host_key():
    """What processes that can map each other's memfds share: the boot, and the network and
    pid namespaces (two containers on one host are two hosts here). None without /proc."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return "/".join([boot] + [str(os.stat(f"/proc/self/ns/{ns}").st_ino)
                                  for ns in ("net", "pid")])
    except OSError:
        return None


def open_peers(cards, me):
    """Map the lanes of every peer that shares this host and offers them: rank -> Lanes.
    ``cards``: rank -> {"host": host_key(), "lanes": path or None, "bell": path or None}."""
    mine = cards[me]
    peers = {}
    if not mine["lanes"]:
        return peers
    for rank, card in cards.items():
        if rank != me and card["lanes"] and card["host"] == mine["host"]:
            try:
                peers[rank] = Lanes.open(card["lanes"], card["bell"], len(cards))
            except OSError as e:
                for lanes in peers.values():
                    lanes.close()
                raise DistBackendError(
                    f"rank {me} cannot map rank {rank}'s shared memory ({card['lanes']}): {e}. "
                    "Set DTRAIN_SHM=0 on every rank to send everything over the network.") \
                    from None
    return peers


class SharedHost:
    """This rank's view of the shared memory on its host: its lanes and its peers', which
    groups can use them, and how far each group's mailboxes and slots have come."""

    def __init__(self, rank, own):
        self.rank, self.own = rank, own  # own: this rank's Lanes, or None
        self.lanes = {}  # global rank -> Lanes, for this rank and the peers on its host
        self.mailbox_count = collections.Counter()  # group -> its calls through mailboxes
        self.chunk_count = collections.Counter()    # group -> chunks its slots have carried
        self.failed = {}  # group -> the error of a call here that made it unusable

    def add_peers(self, peers):
        """Take the mapped lanes of the peers on this host (open_peers)."""
        if peers:
            self.lanes.update(peers)
            self.lanes[self.rank] = self.own

    def covers(self, group):
        """Whether every member of ``group`` can read this rank's lane for it, and it theirs."""
        return group.id < LANES and all(r in self.lanes for r in group.ranks)

    def close(self):
        for lanes in {id(v): v for v in [*self.lanes.values(), self.own] if v}.values():
            lanes.close()


class Lanes:
    """One process's lanes, rings and doorbell: its own (writable) or a peer's (read-only,
    but for the doorbell)."""

    def __init__(self, fd, bell_fd, writable, world):
        size = LANES * _LANE + world * _RING
        if writable:
            os.ftruncate(fd, size)
            os.ftruncate(bell_fd, _BELL_BYTES)
        self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ | (mmap.PROT_WRITE if writable
                                                                 else 0))
        self._bytes = np.frombuffer(self._map, dtype=np.uint8)
        self._bell_map = mmap.mmap(bell_fd, _BELL_BYTES)
        self.bell = np.frombuffer(self._bell_map, dtype=np.int32)[:1]

    @classmethod
    def create(cls, world):
        """This process's own, with a ring for each of ``world`` ranks."""
        fd = os.memfd_create("dtrain-lanes", os.MFD_CLOEXEC)
        bell_fd = os.memfd_create("dtrain-bell", os.MFD_CLOEXEC)
        lanes = cls(fd, bell_fd, writable=True, world=world)
        lanes.fds = (fd, bell_fd)
        lanes.path, lanes.bell_path = (f"/proc/{os.getpid()}/fd/{f}" for f in lanes.fds)
        return lanes

    @classmethod
    def open(cls, path, bell_path, world):
        """Map a peer's, given the paths it published."""
        fd = os.open(path, os.O_RDONLY)
        try:
            bell_fd = os.open(bell_path, os.O_RDWR)
            try:
                return cls(fd, bell_fd, writable=False, world=world)
            finally:
                os.close(bell_fd)
        finally:
            os.close(fd)

    def slot(self, lane, index, dtype, count):
        """Slot ``index % SLOTS`` of ``lane``, as ``count`` elements of ``dtype``."""
        start = lane * _LANE + index % SLOTS * SLOT_BYTES
        return self._bytes[start:start + count * dtype.itemsize].view(dtype)

    def mailbox(self, lane, index):
        """Mailbox ``index % 2`` of ``lane``: (flag and header length as two int64, header
        bytes, payload bytes)."""
        start = lane * _LANE + SLOTS * SLOT_BYTES + index % 2 * _BOX
        box = self._bytes[start:start + _BOX]
        return box[:16].view(np.int64), box[16:_BOX_HEAD], box[_BOX_HEAD:]

    def progress(self, lane):
        """The counters of ``lane``: how many chunks this process has put in its slots, and
        how many it has reduced its portion of (int64 arrays of one element)."""
        start = lane * _LANE + SLOTS * SLOT_BYTES + 2 * _BOX
        counters = self._bytes[start:start + 16].view(np.int64)
        return counters[0:1], counters[1:2]

    def ring(self, peer):
        """The ring block for rank ``peer``: (this process's write position in its ring to
        ``peer``, how far this process has read ``peer``'s ring to it; both int64 arrays of
        one element), and the ring's data bytes."""
        start = LANES * _LANE + peer * _RING
        head = self._bytes[start:start + _RING_HEAD].view(np.int64)
        return head[0:1], head[8:9], self._bytes[start + _RING_HEAD:start + _RING]

    def close(self):
        self._bytes = self.bell = None
        for m in (self._map, self._bell_map):
            try:
                m.close()
            except BufferError:  # a view is still referenced; the mapping goes with it
                pass
        for fd in getattr(self, "fds", ()):
            os.close(fd)
