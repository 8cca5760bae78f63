"""Collectives between the processes of one host, run in the caller's thread.

Through the engine (transport.py) a 4-byte all_reduce wakes one thread after another: this
rank's engine, ZeroMQ's I/O thread, the peer's I/O thread, the peer's engine, and the caller
again. Each wake-up costs 10-25 us on a small virtual machine, and with more processes than
cores a rank waits whole scheduler slices for a peer's engine to run. Here, instead, every
rank writes its part into its own shared-memory lane (shm.py) and reads its peers' in place:

- small calls (up to MAILBOX_BYTES): the call's header and payload go into a mailbox;
- a larger all_reduce: its header goes into a mailbox and its data, chunk by chunk, into the
  lane's slots, each chunk announced by raising a counter (slots.py).

Every rank publishes a header, even one with nothing to send (a broadcast's receivers, a
barrier), so a call is one exchange in which every rank checks every other rank's call, and a
mailbox is reused only once everyone has read it: mailbox f % 2 holds the group's f-th call
here, and a rank writes call f+2 only after every peer has published call f+1, which each does
after it has finished reading call f.

Waiting spins briefly (when every rank has a core), then sleeps on a futex on the peer's flag
or counter, which the peer wakes when it raises it, checking the deadline, the group and the
peers' liveness every 50 ms. A call that waits long tells the engine what it is, so that a peer
that made another call (and so went through its engine, probing this rank) gets
DistMismatchError instead of a hang.

Whether a call goes this way depends only on the call (its kind and size) and its group, so
every rank decides alike. A call made with async_op=True runs on the group's Worker thread
instead of the caller's, by the same steps, so ranks may mix the two. Calls of the group still
running elsewhere finish first, so a group's calls keep their order. x86-64 only: its memory
order makes a flag stored after the data visible after the data.
"""
import math
import os
import queue
import threading
import time

import numpy as np

from . import collectives, wire
from .collective_run import PROBE_AFTER, mismatch, signature_of
from .errors import (DistBackendError, DistError, DistMismatchError, DistPeerError,
                     DistTimeoutError)
from .liveness import report_stall, stall_seconds
from .shm import (CHECK_EVERY, CPUS, MAILBOX_BYTES, SPINS, STORES_IN_ORDER, publish,
                  wait_word)
from .slots import large_all_reduce

# measured: with more ranks than CPUs, a rank that yields its CPU a few times before sleeping
# on a peer's flag or counter finishes sooner (world 4 on 2 cores, 3 alternating runs each:
# 16 MB all_reduce 5.29-5.41 ms against 5.66-5.69 sleeping at once, 4 B 146-147 us against
# 162-165 us)
YIELDS = 10


def _all_reduce(ex, buf, op):
    whole = collectives.joined(buf)
    collectives.combine(whole, ex.exchange(whole), op)
    collectives.average(whole, op, len(ex.run.ranks))
    collectives.scatter_back(whole, buf)


def _reduce(ex, buf, op, root):
    parts = ex.exchange(buf)
    if ex.me == root:
        collectives.combine(buf, parts, op)
        collectives.average(buf, op, len(ex.run.ranks))


def _broadcast(ex, buf, root):
    parts = ex.exchange(buf if ex.me == root else None)
    if ex.me != root:
        np.copyto(buf, parts[root])


def _all_gather(ex, outs, buf):
    for out, part in zip(outs, ex.exchange(buf)):
        np.copyto(out, part)


def _gather(ex, outs, buf, root):
    parts = ex.exchange(buf)
    if ex.me == root:
        for out, part in zip(outs, parts):
            np.copyto(out, part)


def _barrier(ex):
    ex.exchange(None)


_WAYS = {collectives.all_reduce: _all_reduce, collectives.reduce: _reduce,
         collectives.broadcast: _broadcast, collectives.all_gather: _all_gather,
         collectives.gather: _gather, collectives.barrier: _barrier}


def choose(engine, run):
    """How ``run`` goes this way, or None if it does not."""
    way = _WAYS.get(run._algorithm)
    if way is None or not STORES_IN_ORDER or not engine.shared.covers(run.group):
        return None
    _, _, dtype, shape, _ = run.signature
    if math.prod(shape) * dtype.itemsize <= MAILBOX_BYTES:
        return way
    return large_all_reduce if way is _all_reduce else None


def run_here(engine, run, way, earlier):
    """Run ``run`` in this thread, once the group's ``earlier`` calls are done."""
    run.algorithm = "shared" if way is large_all_reduce else "mailbox"
    try:
        _wait_for(engine, run, earlier)
        way(_Exchange(engine, run), *run._args)
    except DistError as e:
        run.work._finish(e)
    except Exception as e:  # a bug: fail the call (it may run on a Worker) instead of hanging
        error = DistBackendError(f"{run.name} failed on rank {run.ranks[run.me]}: {e!r}")
        engine.shared.failed.setdefault(run.group.id, error)
        run.work._finish(error)
    else:
        run.work._finish()


def start_on_engine(engine, run, earlier):
    """Give ``run`` to the engine thread once the group's ``earlier`` calls are done (on the
    group's Worker, when some of them run there)."""
    try:
        _wait_for(engine, run, earlier)
        engine.call(engine.runs.start, run)
    except DistError as e:
        run.work._finish(e)


def _wait_for(engine, run, earlier):
    """Wait until the Works ``earlier`` are done; a call never overlaps the group's earlier
    ones. Raises if the group is destroyed meanwhile, or one outlives its deadline."""
    for work in earlier:
        while not work._done.wait(CHECK_EVERY):
            engine._check_open()
            if time.monotonic() > work.deadline + 5.0:
                raise DistTimeoutError(
                    f"{run.name} on rank {run.ranks[run.me]} (group {run.group.id}, op "
                    f"#{run.seq}) cannot start: {work.description} has not ended 5 s after "
                    "its deadline.")


class Worker:
    """A thread that runs one group's calls, in order, for callers that do not wait for them
    (async_op=True)."""

    def __init__(self, name):
        self._tasks = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0  # calls queued or running
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, fn):
        with self._lock:
            self._pending += 1
        self._tasks.put(fn)

    def busy(self):
        return self._pending > 0

    def _run(self):
        while True:
            fn = self._tasks.get()
            if fn is None:
                return
            fn()
            del fn  # and the buffers of the call (DDP's gradients): not kept till the next call
            with self._lock:
                self._pending -= 1

    def close(self, timeout):
        """Stop once the calls queued are done or have failed (a destroyed group's calls fail
        within CHECK_EVERY s)."""
        self._tasks.put(None)
        self._thread.join(timeout)


class _Exchange:
    """One call's exchange of mailboxes, and its waits on the peers' counters."""

    def __init__(self, engine, run):
        self.engine, self.run, self.me = engine, run, run.me

    def check_usable(self):
        """Raise what made the group unusable, if anything did (on the engine, or in a call
        this rank made here)."""
        group = self.run.group.id
        error = self.engine.broken(group) or self.engine.shared.failed.get(group)
        if error is not None:  # e.g. the peers gave up waiting for this rank
            raise error

    def exchange(self, mine, tag=0):
        """Publish ``mine`` (a flat array, or None) and ``tag`` (what else every rank must
        agree on), then return every rank's part in rank order, as views of the mailboxes
        (empty for a rank that sent nothing)."""
        engine, run = self.engine, self.run
        group = run.group.id
        self.check_usable()
        count = engine.shared.mailbox_count[group]
        engine.shared.mailbox_count[group] = count + 1
        code, op, dtype, shape, root = run.signature
        nbytes = 0 if mine is None else mine.nbytes
        head = wire.encode(wire.COLLECTIVE, group, run.seq, tag, code, op, dtype, shape, root,
                           nbytes)
        flag, header, payload = engine.shared.own.mailbox(group, count)
        if nbytes:
            payload[:nbytes] = mine.view(np.uint8)
        header[:len(head)] = np.frombuffer(head, dtype=np.uint8)
        flag[1] = len(head)
        publish(flag, count + 1)  # last: this publishes the call
        boxes = {rank: engine.shared.lanes[rank].mailbox(group, count)
                 for k, rank in enumerate(run.ranks) if k != self.me}
        self.wait({rank: box[0] for rank, box in boxes.items()}, count + 1)
        parts = []
        for k, rank in enumerate(run.ranks):
            if k == self.me:
                parts.append(payload[:nbytes].view(dtype))  # not ``mine``: it may be the output
                continue
            flag, header, payload_k = boxes[rank]
            theirs = self._check(rank, wire.decode(header[:flag[1]].tobytes()), tag)
            parts.append(payload_k[:theirs.nbytes].view(dtype))
        return parts

    def _check(self, rank, theirs, tag):
        run = self.run
        if theirs.seq != run.seq:
            self._fail(DistMismatchError(
                f"{run.name} on rank {run.ranks[self.me]} (group {run.group.id}) is this "
                f"rank's op #{run.seq} but rank {rank}'s op #{theirs.seq}: the ranks called "
                "different collectives before it. Every rank must call the same "
                "collectives in the same order."), notify=False)
        if signature_of(theirs) != run.signature:
            self._fail(mismatch(run.ranks[self.me], run.group.id, run.seq, run.signature, rank,
                                signature_of(theirs)), notify=False)
        if theirs.tag != tag:
            self._fail(DistMismatchError(
                f"{run.name} on rank {run.ranks[self.me]} (group {run.group.id}, op "
                f"#{run.seq}) cuts the data into chunks of {tag} bytes, rank {rank} into chunks "
                f"of {theirs.tag}: the ranks see different CPU counts (os.cpu_count()). Run "
                "them alike, or set DTRAIN_SHM=0."), notify=False)
        return theirs

    def wait(self, flags, want, limit=None):
        """Wait until every flag or counter of ``flags`` (a peer's global rank -> an int64 in
        its lane) holds at least ``want``. With more ranks than CPUs, first give the CPU up
        YIELDS times (to the peer waited for, if it is the one runnable) before sleeping.
        A counter above ``limit`` means its rank gave this call up: raise."""
        # spinning only helps when every rank has a CPU; else it takes the CPU a peer needs
        spins, yields = (SPINS, 0) if self.run.size <= CPUS else (0, YIELDS)
        for rank, flag in flags.items():
            for _ in range(spins):
                if flag[0] >= want:
                    break
            else:
                for _ in range(yields):
                    if flag[0] >= want:
                        break
                    os.sched_yield()
                if flag[0] < want:
                    self._sleep(flags, want, rank)
            if limit is not None and flag[0] > limit:
                self._fail(self.engine.broken(self.run.group.id) or DistPeerError(
                    f"{self.run.name} on rank {self.run.ranks[self.me]} (group "
                    f"{self.run.group.id}, op #{self.run.seq}) cannot complete: rank {rank} "
                    "gave it up (see the error there) and went on."), notify=False)

    def _sleep(self, flags, want, rank):
        engine, run = self.engine, self.run
        flag = flags[rank]
        start = time.monotonic()
        noted = False
        stall = start + stall_seconds()
        while flag[0] < want:
            engine._check_open()
            broken = engine.broken(run.group.id)
            if broken is not None:
                raise broken
            why = engine.gone(rank)
            if why is not None:
                self._fail(DistPeerError(f"{run.name} on rank {run.ranks[self.me]} (group "
                                         f"{run.group.id}, op #{run.seq}) cannot complete: "
                                         f"{why}."), notify=True)
            now = time.monotonic()
            if not noted and now - start >= PROBE_AFTER:
                # a peer that made another call went through its engine, and waits for this
                # rank's messages: tell this rank's engine what was called here, to compare
                engine.note_call(run.group.id, run.seq, run.signature)
                noted = True
            if now >= stall:
                stall = float("inf")
                report_stall(run.ranks[self.me], f"{run.name} (group {run.group.id}, op "
                             f"#{run.seq})", [r for r, f in flags.items() if f[0] < want],
                             now - start)
            if now >= run.work.deadline:
                self._fail(DistTimeoutError(
                    f"{run.name} on rank {run.ranks[self.me]} timed out after "
                    f"{run.group.timeout:.1f} s waiting for rank {rank}, which has not made its "
                    f"part of this op (group {run.group.id}, op #{run.seq}). Check that every "
                    "rank calls the same collectives in the same order, and that no rank is "
                    "stuck."), notify=True)
            seen = int(flag[0])
            if seen < want:
                wait_word(flag, seen, CHECK_EVERY)

    def _fail(self, error, notify):
        """The group is unusable now: the next call here raises ``error`` too, the engine fails
        what else waits on it (and, if ``notify``, tells the peers), and this call raises it."""
        self.engine.shared.failed.setdefault(self.run.group.id, error)
        self.engine.call(self.engine.break_group, self.run.group.id, error, notify,
                         self.run.ranks)
        raise error
