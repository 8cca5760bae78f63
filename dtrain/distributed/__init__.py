"""torch.distributed's API over ZeroMQ: process groups, point-to-point and collectives.

The backend is "zmq"; "gloo" is accepted as its alias so torch code runs unchanged. This module
only checks arguments and delegates: process_group.py turns calls into Work, collectives.py
holds the algorithms, transport.py the engine thread that owns the sockets.

>>> import dtrain.distributed as dist
>>> dist.init_process_group("gloo", rank=rank, world_size=2)   # MASTER_ADDR/PORT in env
>>> t = dtrain.ones(1)
>>> dist.all_reduce(t, op=dist.ReduceOp.SUM)
"""
import numpy as np

from . import collectives
from .debug import DebugLevel, get_debug_level, set_debug_level, set_debug_level_from_env
from .errors import (DistBackendError, DistError, DistMismatchError, DistPeerError,
                     DistStoreError, DistStoreTimeoutError, DistTimeoutError)
from .process_group import ProcessGroup, ReduceOp, flat
from .state import (Backend, GroupMember, destroy_process_group, get_backend, group,
                    init_process_group, is_available, is_initialized, monitored_barrier,
                    new_group, resolve)
from .store import Store, TCPStore
from .work import CompletedWork, Work

__all__ = [
    "Backend", "DebugLevel", "DistBackendError", "DistError", "DistMismatchError",
    "DistPeerError", "DistStoreError", "DistStoreTimeoutError", "DistTimeoutError",
    "GroupMember", "P2POp", "ProcessGroup", "ReduceOp", "Store", "TCPStore", "Work",
    "all_gather", "all_gather_into_tensor", "all_reduce", "all_to_all", "all_to_all_single",
    "barrier", "batch_isend_irecv", "broadcast", "destroy_process_group", "gather",
    "get_backend", "get_debug_level", "get_global_rank", "get_group_rank",
    "get_process_group_ranks", "get_rank", "get_world_size", "group", "init_process_group",
    "irecv", "is_available", "is_initialized", "isend", "monitored_barrier", "new_group",
    "recv", "reduce", "reduce_scatter", "reduce_scatter_tensor", "scatter", "send",
    "set_debug_level", "set_debug_level_from_env",
]


# --- who am I --------------------------------------------------------------------------------

def get_rank(group=None):
    """This process's rank in ``group`` (the default group if None); -1 if not a member.
    >>> if dist.get_rank() == 0: print("loss", loss.item())"""
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return resolve(group).me


def get_world_size(group=None):
    """The number of processes in ``group``; -1 if this process is not a member.
    >>> dist.all_reduce(grad); grad /= dist.get_world_size()"""
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return resolve(group).size()


def get_group_rank(group, global_rank):
    """A global rank's rank inside ``group``.
    >>> g = dist.new_group([2, 3]); dist.get_group_rank(g, 3)   # 1"""
    return resolve(group).group_rank(global_rank)


def get_global_rank(group, group_rank):
    """The global rank of ``group``'s member number ``group_rank``.
    >>> g = dist.new_group([2, 3]); dist.get_global_rank(g, 0)   # 2"""
    pg = resolve(group)
    if not 0 <= group_rank < pg.size():
        raise ValueError(f"group rank {group_rank} is out of range for group {pg.id} of size "
                         f"{pg.size()}")
    return pg.ranks[group_rank]


def get_process_group_ranks(group):
    """The global ranks of ``group``'s members.
    >>> dist.get_process_group_ranks(dist.new_group([0, 2]))   # [0, 2]"""
    return list(resolve(group).ranks)


# --- point-to-point ----------------------------------------------------------------------------

def _peer(pg, peer, what):
    if not isinstance(peer, (int, np.integer)) or isinstance(peer, bool):
        raise TypeError(f"{what} must be an int rank, got {type(peer).__name__}")
    me = pg.ranks[pg.me]
    if peer not in pg.ranks:
        raise ValueError(f"{what}={peer} is not a rank of group {pg.id} (ranks {pg.ranks})")
    if peer == me:
        raise ValueError(f"{what}={peer} is this process's own rank: a rank cannot send to or "
                         "receive from itself")
    return int(peer)


def isend(tensor, dst, group=None, tag=0):
    """Start sending ``tensor`` to global rank ``dst``; returns a Work. Do not modify the
    tensor before ``wait()`` returns. >>> req = dist.isend(t, dst=1); req.wait()"""
    pg = resolve(group)
    dst = _peer(pg, dst, "dst")
    arr, _, _ = flat(tensor, writable=False)
    return pg.send(arr, dst, int(tag))


def irecv(tensor, src=None, group=None, tag=0):
    """Start receiving into ``tensor`` from ``src`` (any rank if None); returns a Work whose
    ``source_rank()`` tells the sender. >>> req = dist.irecv(t, src=0); req.wait()"""
    pg = resolve(group)
    if src is not None:
        src = _peer(pg, src, "src")
    arr, _, _ = flat(tensor)
    return pg.recv(arr, src, int(tag))


def send(tensor, dst, group=None, tag=0):
    """Send ``tensor`` to global rank ``dst`` and wait until it may be reused.
    >>> dist.send(dtrain.ones(3), dst=1)"""
    isend(tensor, dst, group, tag).wait()


def recv(tensor, src=None, group=None, tag=0):
    """Receive into ``tensor`` from ``src`` (any rank if None); returns the sender's rank.
    >>> t = dtrain.zeros(3); sender = dist.recv(t)"""
    work = irecv(tensor, src, group, tag)
    work.wait()
    return work.source_rank()


class P2POp:
    """One send or receive for ``batch_isend_irecv``.

    >>> ops = [dist.P2POp(dist.isend, t, 1), dist.P2POp(dist.irecv, r, 1)]
    """

    def __init__(self, op, tensor, peer=None, group=None, tag=0):
        if op not in (isend, irecv):
            raise ValueError("P2POp's op must be dtrain.distributed.isend or "
                             "dtrain.distributed.irecv")
        self.op, self.tensor, self.peer, self.group, self.tag = op, tensor, peer, group, tag


def batch_isend_irecv(p2p_op_list):
    """Start every P2POp in the list; returns their Works.
    >>> for work in dist.batch_isend_irecv(ops): work.wait()"""
    if not p2p_op_list or not all(isinstance(p, P2POp) for p in p2p_op_list):
        raise ValueError("batch_isend_irecv expects a non-empty list of P2POp")
    return [p.op(p.tensor, p.peer, p.group, p.tag) for p in p2p_op_list]


# --- collectives -------------------------------------------------------------------------------

def _op(op, dtype):
    code = ReduceOp(op).op
    if code in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and dtype.kind not in "biu":
        raise ValueError(f"ReduceOp.{('BAND', 'BOR', 'BXOR')[code - 5]} works on integer and "
                         f"bool tensors only, got {dtype}")
    if code == ReduceOp.AVG and dtype.kind != "f":
        raise ValueError(f"ReduceOp.AVG needs a floating-point tensor, got {dtype}; use SUM "
                         "and divide")
    return int(code)


def _finish(work, async_op):
    if async_op:
        return work
    work.wait()
    return None


def _then(*fns):
    fns = [f for f in fns if f is not None]
    return (lambda: [f() for f in fns]) if fns else None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` across the group, in place, so every rank holds the result.

    >>> dist.all_reduce(t, op=dist.ReduceOp.SUM)
    """
    pg = resolve(group)
    arr, buf, write_back = flat(tensor)
    code = _op(op, arr.dtype)
    work = pg.run("all_reduce", collectives.all_reduce, (buf, code), arr.dtype, arr.shape,
                  op=code, after=write_back, async_op=async_op)
    return _finish(work, async_op)


def reduce(tensor, dst, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` across the group into global rank ``dst``'s tensor.
    >>> dist.reduce(t, dst=0, op=dist.ReduceOp.MAX)"""
    pg = resolve(group)
    root = pg.group_rank(dst)
    arr, buf, write_back = flat(tensor)
    code = _op(op, arr.dtype)
    work = pg.run("reduce", collectives.reduce, (buf, code, root), arr.dtype, arr.shape,
                  op=code, root=root, after=write_back if pg.me == root else None,
                  async_op=async_op)
    return _finish(work, async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """Copy global rank ``src``'s ``tensor`` into every other rank's ``tensor``.
    >>> dist.broadcast(param.data, src=0)"""
    pg = resolve(group)
    root = pg.group_rank(src)
    arr, buf, write_back = flat(tensor)
    work = pg.run("broadcast", collectives.broadcast, (buf, root), arr.dtype, arr.shape,
                  root=root, after=write_back if pg.me != root else None, async_op=async_op)
    return _finish(work, async_op)


def _outputs(tensors, like, name):
    """Flat views of a list of output tensors, checked against ``like`` (shape and dtype)."""
    bufs, backs = [], []
    for i, t in enumerate(tensors):
        arr, buf, back = flat(t, f"{name}[{i}]")
        if arr.dtype != like.dtype or arr.shape != like.shape:
            raise ValueError(f"{name}[{i}] has shape {list(arr.shape)} and dtype {arr.dtype}, but "
                             f"must match the input: shape {list(like.shape)}, dtype {like.dtype}")
        bufs.append(buf)
        backs.append(back)
    return bufs, _then(*backs)


def _count(pg, tensors, name):
    if len(tensors) != pg.size():
        raise ValueError(f"{name} must hold one tensor per rank of the group ({pg.size()}), got "
                         f"{len(tensors)}")


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Every rank's ``tensor`` into every rank's ``tensor_list`` (in rank order).
    >>> out = [dtrain.zeros(2) for _ in range(dist.get_world_size())]
    >>> dist.all_gather(out, dtrain.ones(2) * dist.get_rank())"""
    pg = resolve(group)
    _count(pg, tensor_list, "tensor_list")
    arr, buf, _ = flat(tensor, writable=False)
    outs, back = _outputs(tensor_list, arr, "tensor_list")
    work = pg.run("all_gather", collectives.all_gather, (outs, buf), arr.dtype, arr.shape,
                  after=back, async_op=async_op)
    return _finish(work, async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Every rank's input, concatenated (or stacked) in rank order into ``output_tensor``.
    >>> out = dtrain.zeros(2 * dist.get_world_size())
    >>> dist.all_gather_into_tensor(out, dtrain.ones(2))"""
    pg = resolve(group)
    arr, buf, _ = flat(input_tensor, writable=False)
    out, obuf, back = flat(output_tensor, "output_tensor")
    if out.dtype != arr.dtype or out.size != arr.size * pg.size():
        raise ValueError(f"output_tensor must have {pg.size()} x the input's elements and its "
                         f"dtype: got shape {list(out.shape)} ({out.dtype}) for an input of "
                         f"shape {list(arr.shape)} ({arr.dtype})")
    outs = np.split(obuf, pg.size())
    work = pg.run("all_gather", collectives.all_gather, (outs, buf), arr.dtype, arr.shape,
                  after=back, async_op=async_op)
    return _finish(work, async_op)


def gather(tensor, gather_list=None, dst=0, group=None, async_op=False):
    """Every rank's ``tensor`` into ``gather_list`` on global rank ``dst``.
    >>> bufs = [dtrain.zeros(2) for _ in range(world)] if rank == 0 else None
    >>> dist.gather(dtrain.ones(2), bufs, dst=0)"""
    pg = resolve(group)
    root = pg.group_rank(dst)
    arr, buf, _ = flat(tensor, writable=False)
    outs = back = None
    if pg.me == root:
        if gather_list is None:
            raise ValueError("gather_list is required on the destination rank")
        _count(pg, gather_list, "gather_list")
        outs, back = _outputs(gather_list, arr, "gather_list")
    elif gather_list:
        raise ValueError("gather_list must be None or empty on ranks other than dst")
    work = pg.run("gather", collectives.gather, (outs, buf, root), arr.dtype, arr.shape,
                  root=root, after=back, async_op=async_op)
    return _finish(work, async_op)


def scatter(tensor, scatter_list=None, src=0, group=None, async_op=False):
    """Rank ``src``'s ``scatter_list[i]`` into rank i's ``tensor``.
    >>> parts = [dtrain.full((2,), i) for i in range(world)] if rank == 0 else None
    >>> t = dtrain.zeros(2, dtype=dtrain.int64); dist.scatter(t, parts, src=0)"""
    pg = resolve(group)
    root = pg.group_rank(src)
    arr, buf, back = flat(tensor)
    ins = None
    if pg.me == root:
        if scatter_list is None:
            raise ValueError("scatter_list is required on the source rank")
        _count(pg, scatter_list, "scatter_list")
        ins = [flat(t, f"scatter_list[{i}]", writable=False) for i, t in enumerate(scatter_list)]
        for i, (a, _, _) in enumerate(ins):
            if a.dtype != arr.dtype or a.shape != arr.shape:
                raise ValueError(f"scatter_list[{i}] has shape {list(a.shape)} and dtype "
                                 f"{a.dtype}, but the output tensor has shape {list(arr.shape)} "
                                 f"and dtype {arr.dtype}")
        ins = [b for _, b, _ in ins]
    elif scatter_list:
        raise ValueError("scatter_list must be None or empty on ranks other than src")
    work = pg.run("scatter", collectives.scatter, (buf, ins, root), arr.dtype, arr.shape,
                  root=root, after=back, async_op=async_op)
    return _finish(work, async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """Rank i's ``output`` becomes the reduction of every rank's ``input_list[i]``.
    >>> out = dtrain.zeros(2)
    >>> dist.reduce_scatter(out, [dtrain.ones(2) for _ in range(world)])"""
    pg = resolve(group)
    _count(pg, input_list, "input_list")
    arr, buf, back = flat(output, "output")
    code = _op(op, arr.dtype)
    ins = []
    for i, t in enumerate(input_list):
        a, b, _ = flat(t, f"input_list[{i}]", writable=False)
        if a.dtype != arr.dtype or a.shape != arr.shape:
            raise ValueError(f"input_list[{i}] has shape {list(a.shape)} and dtype {a.dtype}, "
                             f"but output has shape {list(arr.shape)} and dtype {arr.dtype}")
        ins.append(b)
    work = pg.run("reduce_scatter", collectives.reduce_scatter, (buf, ins, code), arr.dtype,
                  arr.shape, op=code, after=back, async_op=async_op)
    return _finish(work, async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """``input`` is split into one chunk per rank; rank i gets the reduction of chunk i.
    >>> out = dtrain.zeros(2); dist.reduce_scatter_tensor(out, dtrain.ones(2 * world))"""
    pg = resolve(group)
    arr, _, _ = flat(input, "input", writable=False)
    out, _, _ = flat(output, "output", writable=False)
    if arr.size != out.size * pg.size():
        raise ValueError(f"input must have {pg.size()} x the output's elements: got "
                         f"{arr.size} and {out.size}")
    chunks = np.split(np.ascontiguousarray(arr).reshape(-1), pg.size())
    return reduce_scatter(output, [c.reshape(out.shape) for c in chunks], op, group, async_op)


def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op=False):
    """Rank i's ``input_tensor_list[j]`` lands in rank j's ``output_tensor_list[i]``.
    >>> outs = [dtrain.zeros(1) for _ in range(world)]
    >>> dist.all_to_all(outs, [dtrain.full((1,), rank * 10.0 + j) for j in range(world)])"""
    pg = resolve(group)
    _count(pg, output_tensor_list, "output_tensor_list")
    _count(pg, input_tensor_list, "input_tensor_list")
    ins = [flat(t, f"input_tensor_list[{i}]", writable=False)
           for i, t in enumerate(input_tensor_list)]
    outs = [flat(t, f"output_tensor_list[{i}]") for i, t in enumerate(output_tensor_list)]
    dtype = ins[0][0].dtype
    for i, (a, _, _) in enumerate(ins + outs):
        if a.dtype != dtype:
            raise ValueError(f"all_to_all needs one dtype for every tensor, got {dtype} and "
                             f"{a.dtype}")
    work = pg.run("all_to_all", collectives.all_to_all, ([b for _, b, _ in outs],
                                                         [b for _, b, _ in ins]),
                  dtype, (), after=_then(*[back for _, _, back in outs]), async_op=async_op)
    return _finish(work, async_op)


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                      group=None, async_op=False):
    """``all_to_all`` on single tensors split along dim 0 (evenly unless sizes are given).
    >>> out = dtrain.zeros(world); dist.all_to_all_single(out, dtrain.ones(world) * rank)"""
    pg = resolve(group)
    n = pg.size()

    def pieces(t, sizes, name):
        if sizes is None:
            if t.shape[0] % n:
                raise ValueError(f"{name}'s dim 0 ({t.shape[0]}) must divide by the group size "
                                 f"({n}) when no split sizes are given")
            sizes = [t.shape[0] // n] * n
        if len(sizes) != n or sum(sizes) != t.shape[0]:
            raise ValueError(f"{name} split sizes {list(sizes)} must be {n} numbers summing to "
                             f"{t.shape[0]}")
        return [t[a:a + s] for a, s in zip(np.cumsum([0] + list(sizes))[:-1], sizes)]
    return all_to_all(pieces(output, output_split_sizes, "output"),
                      pieces(input, input_split_sizes, "input"), group, async_op)


def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank of the group has reached this call. >>> dist.barrier()"""
    pg = resolve(group)
    work = pg.run("barrier", collectives.barrier, (), np.dtype(np.uint8), (), async_op=async_op)
    return _finish(work, async_op)


from .objects import (all_gather_object, broadcast_object_list, gather_object,  # noqa: E402
                      recv_object_list, scatter_object_list, send_object_list)

__all__ += ["all_gather_object", "broadcast_object_list", "gather_object", "recv_object_list",
            "scatter_object_list", "send_object_list", "CompletedWork"]
