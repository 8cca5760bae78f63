"""Point-to-point receives on the engine thread: matching messages to posted receives.

Messages that arrive before their receive wait in mailboxes keyed by (group, tag), searched in
arrival order for the wanted source; receives posted before their message wait likewise. So
the messages one rank sends another with one tag are received in the order sent, as in torch.
"""
import collections

import numpy as np

from . import wire
from .errors import DistMismatchError, DistTimeoutError


class Receives:
    """The posted receives and the unclaimed messages of one engine."""

    def __init__(self, rank, pending):
        self.rank = rank
        self._pending = pending  # the engine's id(work) -> (work, on_timeout)
        self._mail = collections.defaultdict(collections.deque)  # (group, tag) -> messages
        self._waiting = collections.defaultdict(list)            # (group, tag) -> receives

    def post(self, src, group, tag, array, work):
        """Receive into ``array`` from ``src`` (None: any rank)."""
        mail = self._mail[(group, tag)]
        for i, (sender, header, payload) in enumerate(mail):
            if src is None or sender == src:
                del mail[i]
                self._complete(work, array, sender, header, payload)
                return
        self._waiting[(group, tag)].append((src, array, work))
        self._pending[id(work)] = (work, lambda: self._timeout(group, tag, src, work))

    def deliver(self, sender, header, payload):
        """A message arrived: complete the first receive waiting for it, or keep it."""
        key = (header.group, header.tag)
        waiting = self._waiting[key]
        for i, (src, array, work) in enumerate(waiting):
            if src is None or src == sender:
                del waiting[i]
                self._pending.pop(id(work), None)
                self._complete(work, array, sender, header, payload)
                return
        self._mail[key].append((sender, header, payload))

    def fail(self, error_for, group=None, src=None):
        """Fail the receives waiting in ``group`` or for ``src`` (each None: any), with the
        error ``error_for(work)``."""
        for (g, _), waiting in self._waiting.items():
            if group is not None and g != group:
                continue
            for entry in [w for w in waiting if src is None or w[0] == src]:
                waiting.remove(entry)
                self._pending.pop(id(entry[2]), None)
                entry[2]._finish(error_for(entry[2]))

    def _complete(self, work, array, sender, header, payload):
        if header.dtype != array.dtype or header.shape != array.shape:
            work._finish(DistMismatchError(
                f"recv on rank {self.rank}: rank {sender} sent a tensor of shape "
                f"{list(header.shape)} and dtype {header.dtype}, but the receive buffer has "
                f"shape {list(array.shape)} and dtype {array.dtype}. Allocate the buffer with "
                "the sender's shape and dtype."), source=sender)
            return
        if array.nbytes:
            np.copyto(array, wire.as_array(payload.buffer, array.dtype, array.shape))
        work._finish(source=sender)

    def _timeout(self, group, tag, src, work):
        waiting = self._waiting[(group, tag)]
        waiting[:] = [w for w in waiting if w[2] is not work]
        who = f"rank {src}" if src is not None else "any rank"
        work._finish(DistTimeoutError(
            f"{work.description} on rank {self.rank} timed out waiting for a message from "
            f"{who} with tag {tag} (group {group}). Check that the sender calls send with the "
            "same tag and group."))
