"""Process groups: who takes part, their ranks, sequence numbers, and how calls become Work."""
import math
import time

import numpy as np

from .. import timeline
from ..tensor import Tensor
from . import debug
from .collective_run import NO_OP, OP_NAMES, CollectiveRun
from .wire import DTYPE_CODE
from .work import Work


class RedOpType(int):
    """One reduce op; prints as torch's do."""

    def __repr__(self):
        return f"<RedOpType.{OP_NAMES[self]}: {int(self)}>"


class ReduceOp:
    """Reduction operations, as ``torch.distributed.ReduceOp``: SUM, PRODUCT, MAX, MIN, AVG,
    and BAND/BOR/BXOR for integer and bool tensors.

    >>> dist.all_reduce(t, op=dist.ReduceOp.MAX)
    """

    RedOpType = RedOpType
    # torch's numbering
    SUM, AVG, PRODUCT, MIN, MAX, BAND, BOR, BXOR = (RedOpType(i) for i in range(8))

    def __init__(self, op):
        self.op = RedOpType(_op_code(op))

    def __eq__(self, other):
        return _op_code(self) == _op_code(other)

    def __hash__(self):
        return hash(self.op)


_INTERNAL = 0xFFFFFF00  # group ids from here on: init's and destroy's own meetings, not logged


def _op_code(op):
    if isinstance(op, ReduceOp):
        return int(op.op)
    if isinstance(op, str):
        name = op.upper()
        if hasattr(ReduceOp, name):
            return int(getattr(ReduceOp, name))
    elif isinstance(op, (int, np.integer)) and 0 <= int(op) < 8:
        return int(op)
    raise ValueError(f"unknown reduce op {op!r}; use dist.ReduceOp.SUM, PRODUCT, MAX, MIN, AVG, "
                     "BAND, BOR or BXOR")


class ProcessGroup:
    """A set of ranks that communicate together. Every process of the job holds the same
    groups, created in the same order, so a group's id is the same everywhere.

    >>> g = dist.new_group([0, 1])
    >>> g.size(), g.rank()   # on global rank 1
    (2, 1)
    """

    def __init__(self, gid, ranks, my_global_rank, engine, timeout, name=""):
        self.id = gid
        self.ranks = list(ranks)
        self.me = self.ranks.index(my_global_rank)  # this process's rank in the group
        self.engine = engine
        self.timeout = timeout
        self.name = name or str(gid)
        self.seq = 0
        if gid == 0 and timeline.recorder is not None:
            timeline.recorder.rank = my_global_rank
        if debug.get_debug_level() is not debug.DebugLevel.OFF and gid < _INTERNAL:
            what = "init_process_group: joined" if gid == 0 else f"new_group {gid}:"
            debug.log(my_global_rank, f"{what} as rank {self.me} of {len(self.ranks)} (group "
                                      f"{gid} {self.name!r}, ranks {_span(self.ranks)}, timeout "
                                      f"{timeout:g} s)")

    def size(self):
        """The number of ranks in the group, as torch's ProcessGroup.size()."""
        return len(self.ranks)

    def rank(self):
        """This process's rank in the group, as torch's ProcessGroup.rank()."""
        return self.me

    def group_rank(self, global_rank):
        try:
            return self.ranks.index(global_rank)
        except ValueError:
            raise ValueError(f"rank {global_rank} is not part of group {self.id} (ranks "
                             f"{self.ranks})") from None

    def _work(self, description):
        return Work(description, time.monotonic() + self.timeout)

    def run(self, name, algorithm, args, dtype, shape, op=NO_OP, root=-1, after=None,
            async_op=False):
        """Start a collective; returns its Work. ``after`` runs in the caller's thread once the
        work has succeeded (copying results back into non-contiguous tensors, AVG's divide).
        ``async_op``: the caller does not wait for the work now."""
        self.seq += 1
        work = self._work(f"{name} (group {self.id}, op #{self.seq})")
        if after is not None:
            work._after.append(after)
        run = CollectiveRun(self, self.seq, name, op, dtype, shape, root, work, algorithm, args)
        run.async_op = async_op
        if (debug.detail or timeline.recorder is not None) and self.id < _INTERNAL:
            nbytes = sum(a.nbytes for a in args[1]) if name == "all_to_all" else \
                math.prod(shape) * dtype.itemsize  # all_to_all's shape is ()
            work._watch = debug.OpWatch(self, name, dtype, shape, nbytes, seq=self.seq, run=run)
        if len(self.ranks) == 1:
            _run_alone(run)
        else:
            self.engine.submit(run)
        return work

    def send(self, array, dst, tag):
        work = self._work(f"send to rank {dst} with tag {tag} (group {self.id})")
        if debug.detail or timeline.recorder is not None:
            work._watch = debug.OpWatch(self, "send", array.dtype, array.shape, array.nbytes,
                                        peer=dst, tag=tag)
        self.engine.sends.post(dst, self.id, tag, array, work)
        return work

    def recv(self, array, src, tag):
        who = "any rank" if src is None else f"rank {src}"
        work = self._work(f"recv from {who} with tag {tag} (group {self.id})")
        if debug.detail or timeline.recorder is not None:
            work._watch = debug.OpWatch(self, "recv", array.dtype, array.shape, array.nbytes,
                                        peer=src, tag=tag)
        self.engine.post_recv(src, self.id, tag, array, work)
        return work

    def __repr__(self):
        return f"<ProcessGroup {self.id} ranks={self.ranks}>"


def _span(ranks):
    """Ranks as "0-3" when consecutive, else the list."""
    if len(ranks) > 2 and ranks == list(range(ranks[0], ranks[-1] + 1)):
        return f"{ranks[0]}-{ranks[-1]}"
    return str(ranks)


def _run_alone(run):
    """A group of one: run the algorithm here; it never communicates."""
    gen = run._algorithm(run, *run._args)
    for _ in gen:
        raise AssertionError("a single-rank collective tried to receive")
    run.work._finish()


def flat(tensor, name="tensor", writable=True):
    """The numpy array behind a Tensor or array argument, checked, and a flat contiguous view
    of it (or a contiguous copy plus a function that writes results back)."""
    if isinstance(tensor, Tensor):
        arr = tensor._data
        if writable:
            tensor._bump()
    elif isinstance(tensor, np.ndarray):
        arr = tensor
    else:
        raise TypeError(f"{name} must be a dtrain Tensor or a numpy array, got "
                        f"{type(tensor).__name__}")
    if arr.dtype not in DTYPE_CODE:
        raise TypeError(f"{name} has dtype {arr.dtype}, which dtrain.distributed cannot send; "
                        "use bool, uint8, int8, int16, int32, int64, float16, float32 or "
                        "float64 (native byte order)")
    if writable and not arr.flags.writeable:
        raise ValueError(f"{name} is read-only (for example an expanded view); pass a tensor "
                         "that owns its memory, such as .clone()")
    if arr.flags.c_contiguous:
        return arr, arr.reshape(-1), None
    buf = np.ascontiguousarray(arr).reshape(-1)
    return arr, buf, (lambda: np.copyto(arr, buf.reshape(arr.shape))) if writable else None

