"""Collectives of Python objects, as in torch: objects travel as cloudpickle bytes inside
uint8 tensors (sizes first, then the bytes). Unpickling runs code, so only use these between
processes of your own job."""
import cloudpickle
import numpy as np

from . import all_gather, broadcast, gather, recv, scatter, send
from .state import resolve


def _to_bytes(obj):
    return np.frombuffer(cloudpickle.dumps(obj), dtype=np.uint8)


def _from_bytes(arr, size):
    return cloudpickle.loads(arr[:size].tobytes())


def broadcast_object_list(object_list, src=0, group=None, device=None):
    """Replace ``object_list``'s items on every rank with rank ``src``'s items.

    >>> objs = [config] if rank == 0 else [None]
    >>> dist.broadcast_object_list(objs, src=0)
    """
    pg = resolve(group)
    me = pg.ranks[pg.me]
    payloads = [_to_bytes(o) for o in object_list] if me == src else None
    sizes = np.array([p.size for p in payloads] if payloads else [0] * len(object_list),
                     dtype=np.int64)
    broadcast(sizes, src, group)
    data = np.concatenate(payloads) if payloads else np.empty(int(sizes.sum()), np.uint8)
    if data.size:
        broadcast(data, src, group)
    if me != src:
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        for i in range(len(object_list)):
            object_list[i] = _from_bytes(data[offsets[i]:], int(sizes[i]))


def _gather_sizes(payload, pg, group):
    sizes = [np.zeros(1, np.int64) for _ in range(pg.size())]
    all_gather(sizes, np.array([payload.size], np.int64), group)
    return [int(s[0]) for s in sizes]


def _padded(payload, size):
    out = np.zeros(size, np.uint8)
    out[:payload.size] = payload
    return out


def all_gather_object(object_list, obj, group=None):
    """``object_list[i]`` becomes rank i's ``obj``, on every rank.

    >>> out = [None] * dist.get_world_size()
    >>> dist.all_gather_object(out, {"rank": dist.get_rank()})
    >>> out   # on every rank of a two-rank job
    [{'rank': 0}, {'rank': 1}]
    """
    pg = resolve(group)
    payload = _to_bytes(obj)
    sizes = _gather_sizes(payload, pg, group)
    longest = max(sizes)
    bufs = [np.zeros(longest, np.uint8) for _ in sizes]
    all_gather(bufs, _padded(payload, longest), group)
    for i, (buf, size) in enumerate(zip(bufs, sizes)):
        object_list[i] = _from_bytes(buf, size)


def gather_object(obj, object_gather_list=None, dst=0, group=None):
    """``object_gather_list[i]`` on rank ``dst`` becomes rank i's ``obj``; other ranks may pass
    None as the list.

    >>> out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    >>> dist.gather_object(f"rank {dist.get_rank()}", out, dst=0)
    >>> out   # on rank 0 of a two-rank job
    ['rank 0', 'rank 1']
    """
    pg = resolve(group)
    payload = _to_bytes(obj)
    sizes = _gather_sizes(payload, pg, group)
    longest = max(sizes)
    me = pg.ranks[pg.me]
    bufs = [np.zeros(longest, np.uint8) for _ in sizes] if me == dst else None
    gather(_padded(payload, longest), bufs, dst, group)
    if me == dst:
        for i, (buf, size) in enumerate(zip(bufs, sizes)):
            object_gather_list[i] = _from_bytes(buf, size)


def scatter_object_list(scatter_object_output_list, scatter_object_input_list=None, src=0,
                        group=None):
    """``scatter_object_output_list[0]`` on rank i becomes rank ``src``'s input item i; other
    ranks may pass None as the input list.

    >>> out = [None]
    >>> shards = [{"shard": i} for i in range(dist.get_world_size())] if rank == 0 else None
    >>> dist.scatter_object_list(out, shards, src=0)
    >>> out   # on rank 1
    [{'shard': 1}]
    """
    pg = resolve(group)
    me = pg.ranks[pg.me]
    payloads = [_to_bytes(o) for o in scatter_object_input_list] if me == src else None
    longest = np.array([max(p.size for p in payloads) if payloads else 0], np.int64)
    broadcast(longest, src, group)
    sizes = np.array([p.size for p in payloads] if payloads else [0] * pg.size(), np.int64)
    broadcast(sizes, src, group)
    out = np.zeros(int(longest[0]), np.uint8)
    scatter(out, [_padded(p, int(longest[0])) for p in payloads] if payloads else None, src,
            group)
    scatter_object_output_list[0] = _from_bytes(out, int(sizes[pg.me]))


def send_object_list(object_list, dst, group=None, device=None):
    """Send a list of objects to rank ``dst`` (which calls recv_object_list).

    >>> dist.send_object_list(["step", 10], dst=1)   # on rank 0
    """
    payloads = [_to_bytes(o) for o in object_list]
    send(np.array([p.size for p in payloads], np.int64), dst, group)
    data = np.concatenate(payloads) if payloads else np.empty(0, np.uint8)
    send(data, dst, group)


def recv_object_list(object_list, src=None, group=None, device=None):
    """Fill ``object_list`` with the objects rank ``src`` sent; returns the sender's rank.
    ``object_list`` must have as many items as the list sent.

    >>> objs = [None, None]
    >>> dist.recv_object_list(objs, src=0)   # on rank 1
    0
    >>> objs
    ['step', 10]
    """
    sizes = np.zeros(len(object_list), np.int64)
    sender = recv(sizes, src, group)
    data = np.empty(int(sizes.sum()), np.uint8)
    recv(data, sender, group)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for i in range(len(object_list)):
        object_list[i] = _from_bytes(data[offsets[i]:], int(sizes[i]))
    return sender
