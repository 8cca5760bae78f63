"""How one collective runs on the engine thread.

An algorithm is a generator (see collectives.py): it sends with ``run.send(peer, array)`` and
receives with ``data = yield run.recv(peer)``, reading like sequential code. The engine resumes
it when the awaited message arrives. Every message carries the sender's call (kind, op, dtype,
shape, root); a message that does not match this rank's call makes every rank of the group
raise DistMismatchError naming both calls, instead of hanging or reducing garbage.
"""
import time

import numpy as np

from . import wire
from .errors import DistBackendError, DistError, DistMismatchError, DistTimeoutError

NAMES = ("?", "all_reduce", "broadcast", "reduce", "all_gather", "gather", "scatter",
         "reduce_scatter", "all_to_all", "barrier")
CODES = {name: i for i, name in enumerate(NAMES)}
OP_NAMES = ("SUM", "AVG", "PRODUCT", "MIN", "MAX", "BAND", "BOR", "BXOR")  # torch's numbering
NO_OP = 255  # collectives without a reduce op
PROBE_AFTER = 0.5  # s: a collective waiting this long asks the silent peer what it called


class CollectiveRun:
    """One collective call on one rank: its signature, its generator, and its Work."""

    def __init__(self, group, seq, name, op, dtype, shape, root, work, algorithm, args):
        self.group, self.seq, self.name = group, seq, name
        self.algorithm = name  # the algorithm that ran ("direct", "ring", ...), for traces
        self.signature = (CODES[name], op, dtype, tuple(shape), root)
        self.work = work
        self.async_op = False  # whether the caller goes on without waiting for it
        self.ranks, self.me = group.ranks, group.me
        self.waiting_for = None
        self.wait_since = 0.0  # when it began waiting on waiting_for
        self.probed = None     # the peer last asked which call it made
        self.stall_reported = False
        self._trackers = []
        self._algorithm, self._args = algorithm, args
        self._gen = None
        self._engine = None

    # --- used by algorithms -------------------------------------------------------------------
    @property
    def size(self):
        return len(self.ranks)

    def send(self, peer, array):
        """Send ``array`` (flat, contiguous) to group rank ``peer``; returns its tracker."""
        code, op, dtype, shape, root = self.signature
        header = wire.encode(wire.COLLECTIVE, self.group.id, self.seq, 0, code, op,
                             dtype, shape, root, array.nbytes)
        tracker = self._engine.send(self.ranks[peer], header, array)
        if tracker is not None:
            self._trackers.append(tracker)
            self._engine.track(self.ranks[peer], self.work)
        return tracker

    def recv(self, peer):
        """What an algorithm yields to receive from group rank ``peer``: a flat array."""
        return self.ranks[peer]

    def expect(self, data, count, peer):
        """Check that a received payload has ``count`` elements."""
        if data.size != count:
            raise DistMismatchError(
                f"{self.name} on rank {self.ranks[self.me]} (group {self.group.id}, op "
                f"#{self.seq}): rank {self.ranks[peer]} sent {data.size} elements where "
                f"{count} were expected. Every rank must pass tensors of matching sizes.")
        return data

    # --- engine side ----------------------------------------------------------------------------
    def attach(self, engine):
        self._engine = engine

    def start(self, engine):
        self._engine = engine
        try:
            self._gen = self._algorithm(self, *self._args)
        except DistError as e:
            self.fail(e)
            return
        self._step(None)

    def resume(self, src, header, payload):
        data = self._check(src, header, payload)
        if data is not None:
            self._step(data)

    def _step(self, value):
        while True:
            try:
                src = self._gen.send(value)
            except StopIteration:
                self._finish()
                return
            except DistMismatchError as e:
                self._break(e)
                return
            except DistError as e:
                self.fail(e)
                return
            except Exception as e:
                self.fail(DistBackendError(f"{self.name} failed on rank {self.ranks[self.me]}: "
                                           f"{e!r}"))
                return
            self.waiting_for = src
            mail = self._engine.runs.take_mail(self.group.id, self.seq, src)
            if mail is None:
                self.wait_since = time.monotonic()
                return
            value = self._check(src, *mail)
            if value is None:
                return

    def _check(self, src, header, payload):
        self.waiting_for = None
        theirs = signature_of(header)
        if theirs != self.signature:
            self._break(mismatch(self.ranks[self.me], self.group.id, self.seq, self.signature,
                                 src, theirs))
            return None
        if len(payload) % self.signature[2].itemsize:
            self._break(DistMismatchError(
                f"{self.name} on rank {self.ranks[self.me]} (group {self.group.id}, op "
                f"#{self.seq}): rank {src} sent {len(payload)} bytes, not a whole number of "
                f"{self.signature[2]} elements"))
            return None
        return np.frombuffer(payload.buffer, dtype=self.signature[2])

    def _finish(self):
        self.work._trackers.extend(self._trackers)
        self._engine.runs.done(self)
        self.work._finish()

    def fail(self, error):
        if self._gen is not None:
            self._gen.close()
        self._engine.runs.done(self)
        self.work._finish(error)

    def _break(self, error):
        """A mismatch: this group is unusable now; tell every member so none of them hangs."""
        self._engine.break_group(self.group.id, error, notify=True, peers=self.ranks)

    def timeout(self):
        me = self.ranks[self.me]
        if self.waiting_for is not None:
            waiting = (f"waiting for rank {self.waiting_for}, which has not sent its part of "
                       "this op")
        else:
            waiting = "while sending"
        error = DistTimeoutError(
            f"{self.name} on rank {me} timed out after {self.group.timeout:.1f} s {waiting} "
            f"(group {self.group.id}, op #{self.seq}). Check that every rank calls the same "
            "collectives in the same order, and that no rank is stuck.")
        self._engine.break_group(self.group.id, error, notify=True, peers=self.ranks)


def signature_of(header):
    """The call a collective or probe message was sent for."""
    return (header.collective, header.op, header.dtype, header.shape, header.root)


def mismatch(me, group, seq, mine, src, theirs):
    """The error for two ranks that made different calls at one point."""
    return DistMismatchError(
        f"{describe(mine).split('(')[0]} on rank {me} (group {group}, op #{seq}) does not match "
        f"rank {src}'s call: rank {me} called {describe(mine)}, rank {src} called "
        f"{describe(theirs)}. Every rank must call the same collectives with the same op, "
        "dtype, shape and root, in the same order.")


def describe(signature):
    code, op, dtype, shape, root = signature
    name = NAMES[code] if code < len(NAMES) else f"collective #{code}"
    parts = [f"dtype={dtype}", f"shape={list(shape)}"]
    if op < len(OP_NAMES):
        parts.insert(0, f"op={OP_NAMES[op]}")
    if root >= 0:
        parts.append(f"root={root}")
    return f"{name}({', '.join(parts)})"
