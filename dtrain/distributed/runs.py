"""The collectives running on the engine thread, and the check that ranks made the same calls.

Messages for a collective that this rank has not called yet wait in mailboxes keyed by (group,
sequence number, source). Every message carries its sender's call, and is compared with this
rank's call at that point: on arrival if this rank has made it, when it makes it, or (for a
call already finished) against what it was. A collective that has waited PROBE_AFTER for a
peer sends it a PROBE carrying its call, so a mismatch is found even where no data would flow;
one that has waited DTRAIN_STALL_SECONDS logs which rank it waits for.
"""
import collections
import time

import numpy as np

from . import wire
from .collective_run import PROBE_AFTER, mismatch, signature_of
from .liveness import report_stall, stall_seconds

_FINISHED_KEPT = 4096
_EMPTY = np.zeros(0, dtype=np.uint8)


class Runs:
    """One engine's collectives: running, finished of late, and their early messages."""

    def __init__(self, engine):
        self._engine = engine
        self._running = {}   # (group, seq) -> CollectiveRun
        self._finished = {}  # (group, seq) -> signature of a recently finished collective
        self._mail = collections.defaultdict(collections.deque)  # (group, seq, src) -> msgs
        self._probes = {}    # (group, seq) -> probes that came before this rank's call
        self._stall = stall_seconds()

    def __bool__(self):
        return bool(self._running)

    def start(self, run):
        """Start ``run`` (engine thread), unless its group is broken or a member gone."""
        engine = self._engine
        if engine.refuse(run.group.id, run.work, run.ranks):
            return
        key = (run.group.id, run.seq)
        run.attach(engine)
        self._running[key] = run
        engine.pending[id(run.work)] = (run.work, run.timeout)
        # messages and probes that arrived before this call: did they come from the same call?
        for src, header in self._probes.pop(key, ()):
            if self._compare(key, src, header):
                return
        for src in run.ranks:
            for header, _ in self._mail.get((key[0], key[1], src), ()):
                if self._compare(key, src, header):
                    return
        run.start(engine)

    def deliver(self, src, header, payload):
        """A collective's message arrived."""
        key = (header.group, header.seq)
        run = self._running.get(key)
        if run is not None and run.waiting_for == src:
            run.resume(src, header, payload)
        elif self._compare(key, src, header):
            pass  # another call than ours: the group is broken now
        elif key not in self._finished:
            self._mail[(header.group, header.seq, src)].append((header, payload))

    def probed(self, src, header):
        """A peer asks which call this rank made at the probe's (group, seq)."""
        key = (header.group, header.seq)
        if key not in self._running and key not in self._finished:
            self._probes.setdefault(key, []).append((src, header))
        else:
            self._compare(key, src, header)

    def take_mail(self, group, seq, src):
        """The next message ``src`` sent for (group, seq), or None."""
        mail = self._mail.get((group, seq, src))
        if mail:
            item = mail.popleft()
            if not mail:
                del self._mail[(group, seq, src)]
            return item
        return None

    def done(self, run):
        """``run`` finished or failed: remember its call."""
        engine = self._engine
        key = (run.group.id, run.seq)
        self._running.pop(key, None)
        engine.pending.pop(id(run.work), None)
        self._remember(key, run.signature)

    def noted(self, group, seq, signature):
        """A call this rank made outside the engine (Engine.note_call): compare what came."""
        key = (group, seq)
        self._remember(key, signature)
        for src, header in self._probes.pop(key, ()):
            if self._compare(key, src, header):
                return
        for mail in [m for m in self._mail if m[:2] == key]:
            for header, _ in self._mail.pop(mail):
                if self._compare(key, mail[2], header):
                    return

    def in_group(self, group):
        return [run for (g, _), run in self._running.items() if g == group]

    def with_rank(self, rank):
        return [run for run in self._running.values() if rank in run.ranks]

    def fail_all(self, error):
        for run in list(self._running.values()):
            run.fail(error)
        self._running.clear()

    def turn(self):
        """Each engine turn: probe silent peers, report stalls."""
        now = time.monotonic()
        for (group, seq), run in self._running.items():
            src = run.waiting_for
            if src is None:
                continue
            if run.probed != src and now - run.wait_since >= PROBE_AFTER:
                run.probed = src
                code, op, dtype, shape, root = run.signature
                self._engine.send(src, wire.encode(wire.PROBE, group, seq, 0, code, op, dtype,
                                                   shape, root, 0), _EMPTY)
            if not run.stall_reported and now - run.wait_since >= self._stall:
                run.stall_reported = True
                report_stall(self._engine.rank, f"{run.name} (group {group}, op #{seq})",
                             [src], now - run.wait_since)

    def next_time(self, soonest):
        """The earlier of ``soonest`` and the next probe or stall report due."""
        for run in self._running.values():
            if run.waiting_for is not None and run.probed != run.waiting_for:
                soonest = min(soonest, run.wait_since + PROBE_AFTER)
            if run.waiting_for is not None and not run.stall_reported:
                soonest = min(soonest, run.wait_since + self._stall)
        return soonest

    def _compare(self, key, src, header):
        """Break the group if ``header`` shows that ``src`` made another call than this rank
        at (group, seq). Returns True on a mismatch."""
        run = self._running.get(key)
        mine = run.signature if run is not None else self._finished.get(key)
        theirs = signature_of(header)
        if mine is None or mine == theirs:
            return False
        engine = self._engine
        peers = run.ranks if run is not None else engine.peer_ranks()
        engine.break_group(key[0], mismatch(engine.rank, key[0], key[1], mine, src, theirs),
                           notify=True, peers=peers)
        return True

    def _remember(self, key, signature):
        self._finished[key] = signature
        if len(self._finished) > _FINISHED_KEPT:
            del self._finished[next(iter(self._finished))]
