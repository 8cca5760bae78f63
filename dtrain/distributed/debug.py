"""Debug levels (DTRAIN_DEBUG, as torch's TORCH_DISTRIBUTED_DEBUG) and what each op did.

DTRAIN_DEBUG=INFO logs, per rank, joining the job and each group made; DETAIL also logs every
collective and point-to-point op (sequence number, op, dtype and shape, bytes, algorithm,
duration) and the DDP buckets of each backward pass. Lines go to the stdlib logger
"dtrain.distributed", each starting with ``[rankN]``; when logging is not configured, to stderr.

An ``OpWatch`` follows one op from its call to its completion on the engine thread, for the
DETAIL log and for the timeline (dtrain/timeline.py). Hot paths make one only when ``detail``
is set or the timeline records, so with both off an op costs two attribute tests.
"""
import enum
import logging
import os
import sys
import time

from .. import timeline

logger = logging.getLogger("dtrain.distributed")


class DebugLevel(enum.Enum):
    """How much dtrain.distributed logs, as ``torch.distributed.DebugLevel``.

    >>> dist.get_debug_level()
    <DebugLevel.OFF: 0>
    """

    OFF = 0
    INFO = 1
    DETAIL = 2


_level = DebugLevel.OFF
detail = False  # the level is DETAIL: hot paths read this one flag
_handler = None


def get_debug_level():
    """The current debug level, from DTRAIN_DEBUG at import or ``set_debug_level``.

    >>> if dist.get_debug_level() == dist.DebugLevel.DETAIL: ...
    """
    return _level


def set_debug_level(level):
    """Set the debug level (a ``DebugLevel``), as torch's ``set_debug_level``.

    >>> dist.set_debug_level(dist.DebugLevel.DETAIL)
    """
    global _level, detail
    if not isinstance(level, DebugLevel):
        raise TypeError(f"set_debug_level expects a dtrain.distributed.DebugLevel (OFF, INFO or "
                        f"DETAIL), got {level!r}")
    _level, detail = level, level is DebugLevel.DETAIL
    if level is not DebugLevel.OFF:
        logger.setLevel(logging.DEBUG if detail else logging.INFO)


def set_debug_level_from_env():
    """Set the debug level from DTRAIN_DEBUG (OFF, INFO or DETAIL; OFF when unset).

    >>> os.environ["DTRAIN_DEBUG"] = "INFO"; dist.set_debug_level_from_env()
    """
    value = os.environ.get("DTRAIN_DEBUG", "OFF").strip().upper() or "OFF"
    if value not in DebugLevel.__members__:
        raise ValueError(f"The value of DTRAIN_DEBUG must be OFF, INFO, or DETAIL, got "
                         f"{os.environ['DTRAIN_DEBUG']!r}.")
    set_debug_level(DebugLevel[value])


def log(rank, message, level=logging.INFO):
    """Log ``[rank<rank>] message`` (callers check the debug level first)."""
    global _handler
    if _handler is None and not logger.hasHandlers():
        # nobody configured logging: print to stderr rather than lose the lines
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(_handler)
    logger.log(level, "[rank%s] %s", rank, message)


class OpWatch:
    """One op from its call to its completion: logged at DETAIL, recorded on the timeline.

    ``Work._finish`` calls ``done`` on the engine thread before waking the waiter, so a span
    always ends before the caller's ``wait()`` returns.
    """

    __slots__ = ("rank", "name", "group", "seq", "dtype", "shape", "nbytes", "peer", "tag",
                 "run", "start_ns", "end_ns")

    def __init__(self, group, name, dtype, shape, nbytes, seq=None, peer=None, tag=None,
                 run=None):
        self.rank, self.group = group.ranks[group.me], group.id
        self.name, self.seq, self.dtype, self.shape, self.nbytes = name, seq, dtype, shape, nbytes
        self.peer, self.tag, self.run = peer, tag, run
        self.end_ns = None
        self.start_ns = time.time_ns()

    def done(self, error=None, source=None):
        self.end_ns = end = time.time_ns()
        if self.peer is None and source is not None:
            self.peer = source
        algorithm = self.run.algorithm if self.run is not None else None
        rec = timeline.recorder
        if rec is not None:
            # the dtype as is: str() costs microseconds, the file's writer calls it later
            args = {"group": self.group, "bytes": self.nbytes, "dtype": self.dtype,
                    "shape": self.shape}
            if self.seq is not None:
                args["seq"] = self.seq
            if algorithm is not None:
                args["algorithm"] = algorithm
            if self.tag is not None:
                args.update(peer=self.peer, tag=self.tag)
            if error is not None:
                args["error"] = type(error).__name__
            rec.add(self.name, timeline.COMM, self.start_ns, end, args)
        if detail:
            log(self.rank, self.describe(algorithm, error), logging.DEBUG)

    def describe(self, algorithm, error):
        ms = (self.end_ns - self.start_ns) / 1e6
        if self.tag is None:
            what = f"{self.name} #{self.seq} (group {self.group})"
        else:
            way = "to" if self.name == "send" else "from"
            who = "any rank" if self.peer is None else f"rank {self.peer}"
            what = f"{self.name} {way} {who} (group {self.group}, tag {self.tag})"
        text = (f"{what}: {self.dtype}{list(self.shape)}, {self.nbytes} bytes"
                + (f", algorithm {algorithm}" if algorithm and algorithm != self.name else ""))
        if error is not None:
            return f"{text}, failed after {ms:.3f} ms: {type(error).__name__}"
        return f"{text}, {ms:.3f} ms"


set_debug_level_from_env()
