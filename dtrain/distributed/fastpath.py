"""Small collectives between the processes of one host, run in the caller's thread.

Through the engine (transport.py) a 4-byte all_reduce wakes one thread after another: this
rank's engine, ZeroMQ's I/O thread, the peer's I/O thread, the peer's engine, and the caller
again. Each wake-up costs 10-25 us on a small virtual machine. Here, instead, every rank writes
its part (the call's header and its payload) into a mailbox of its shared-memory lane (shm.py)
and reads its peers' mailboxes in place, polling, so no one has to wake anyone.

Every rank publishes, even one with nothing to send (a broadcast's receivers, a barrier), so a
call is one exchange in which every rank checks every other rank's call, and a mailbox is reused
only once everyone has read it: mailbox f % 2 holds the group's f-th small call, and a rank
writes call f+2 only after every peer has published call f+1, which each does after it has
finished reading call f.

Waiting spins briefly (when every rank has a core), then sleeps on a futex on the peer's flag,
which the peer wakes when it publishes, checking the deadline, the group and the peers'
liveness every 50 ms. A call
that waits long tells the engine what it is, so that a peer that made another call (and so went
through its engine, probing this rank) gets DistMismatchError instead of a hang.

Whether a call goes this way depends only on the call (its kind and size) and its group, so
every rank decides alike. Calls of the group still running on the engine finish first, so a
group's calls keep their order. x86-64 only: its memory order makes a flag stored after the data
visible after the data.
"""
import math
import time

import numpy as np

from . import collectives, wire
from .collective_run import PROBE_AFTER, mismatch, signature_of
from .errors import DistError, DistMismatchError, DistPeerError, DistTimeoutError
from .liveness import report_stall, stall_seconds
from .shm import (CHECK_EVERY, CPUS, MAILBOX_BYTES, SPINS, STORES_IN_ORDER, wait_word,
                  wake_word)

VARIANT = 2  # the tag of a call made this way (collective_run.py's variants are 0 and 1)


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
    return way if math.prod(shape) * dtype.itemsize <= MAILBOX_BYTES else None


def run_here(engine, run, way, earlier):
    """Run ``run`` in this thread, once the group's ``earlier`` engine calls are done."""
    for work in earlier:
        work._done.wait(max(work.deadline - time.monotonic(), 0) + 5.0)
    run.algorithm, run.variant = "mailbox", VARIANT
    try:
        way(_Exchange(engine, run), *run._args)
    except DistError as e:
        run.work._finish(e)
    else:
        run.work._finish()


class _Exchange:
    """One call's exchange of mailboxes."""

    def __init__(self, engine, run):
        self.engine, self.run, self.me = engine, run, run.me

    def exchange(self, mine):
        """Publish ``mine`` (a flat array, or None), then return every rank's part in rank
        order, as views of the mailboxes (empty for a rank that sent nothing)."""
        engine, run = self.engine, self.run
        group = run.group.id
        broken = engine.broken(group)
        if broken is not None:  # e.g. the peers gave up waiting for this rank
            raise broken
        count = engine.shared.mailbox_count[group]
        engine.shared.mailbox_count[group] = count + 1
        code, op, dtype, shape, root = run.signature
        nbytes = 0 if mine is None else mine.nbytes
        head = wire.encode(wire.COLLECTIVE, group, run.seq, VARIANT, code, op, dtype, shape,
                           root, nbytes)
        flag, header, payload = engine.shared.own.mailbox(group, count)
        if nbytes:
            payload[:nbytes] = mine.view(np.uint8)
        header[:len(head)] = np.frombuffer(head, dtype=np.uint8)
        flag[1] = len(head)
        flag[0] = count + 1  # last: this publishes the call
        wake_word(flag)
        own = payload[:nbytes].view(dtype)  # not ``mine``: it may be the output too
        parts = []
        for k, rank in enumerate(run.ranks):
            if k == self.me:
                parts.append(own)
                continue
            flag, header, payload = engine.shared.lanes[rank].mailbox(group, count)
            self._wait(flag, count + 1, rank)
            theirs = self._check(rank, wire.decode(header[:flag[1]].tobytes()))
            parts.append(payload[:theirs.nbytes].view(dtype))
        return parts

    def _check(self, rank, theirs):
        run = self.run
        if theirs.seq != run.seq:
            self._fail(DistMismatchError(
                f"{run.name} on rank {run.ranks[self.me]} (group {run.group.id}) is this "
                f"rank's op #{run.seq} but rank {rank}'s op #{theirs.seq}: the ranks called "
                "different collectives before it. Every rank must call the same "
                "collectives in the same order."), notify=False)
        if signature_of(theirs) != run.signature or theirs.tag != VARIANT:
            self._fail(mismatch(run.ranks[self.me], run.group.id, run.seq, run.signature, rank,
                                signature_of(theirs)), notify=False)
        return theirs

    def _wait(self, flag, want, rank):
        # spinning only helps when every rank has a CPU; else it takes the CPU a peer needs
        for _ in range(SPINS if self.run.size <= CPUS else 0):
            if flag[0] == want:
                return
        engine, run = self.engine, self.run
        start = time.monotonic()
        noted = False
        stall = start + stall_seconds()
        while flag[0] != want:
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
                             f"#{run.seq})", self._missing(want), now - start)
            if now >= run.work.deadline:
                self._fail(DistTimeoutError(
                    f"{run.name} on rank {run.ranks[self.me]} timed out after "
                    f"{run.group.timeout:.1f} s waiting for rank {rank}, which has not made its "
                    f"part of this op (group {run.group.id}, op #{run.seq}). Check that every "
                    "rank calls the same collectives in the same order, and that no rank is "
                    "stuck."), notify=True)
            seen = int(flag[0])
            if seen != want:
                wait_word(flag, seen, CHECK_EVERY)

    def _missing(self, want):
        """The ranks that have not published the call that publishes ``want``."""
        engine, group = self.engine, self.run.group.id
        index = want - 1
        return [r for r in self.run.ranks if r != engine.rank
                and engine.shared.lanes[r].mailbox(group, index)[0][0] != want]

    def _fail(self, error, notify):
        """The group is unusable now: the engine fails what else waits on it (and, if
        ``notify``, tells the peers), and this call raises ``error``."""
        self.engine.call(self.engine.break_group, self.run.group.id, error, notify,
                         self.run.ranks)
        raise error
