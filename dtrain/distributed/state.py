"""The process's distributed state: the default group, the groups made since, the engine and
the store; init_process_group, new_group and destroy_process_group."""
import atexit
import multiprocessing.util
import os
import sys
import time

import numpy as np

from . import auth, collectives
from .errors import DistError, DistTimeoutError
from .process_group import ProcessGroup
from .rendezvous import bind_host, default_timeout, join, parse, scoped
from .store import TCPStore
from .work import seconds


class Backend(str):
    """Backend names. dtrain's backend is "zmq"; "gloo" is its alias, so torch code that asks
    for gloo runs unchanged. >>> dist.Backend("gloo")"""

    ZMQ = "zmq"
    GLOO = "gloo"
    NCCL = "nccl"
    MPI = "mpi"
    UCC = "ucc"

    def __new__(cls, name):
        name = (name or "zmq").lower()
        if name.startswith("cpu:"):
            name = name[4:]
        if name not in ("zmq", "gloo"):
            raise RuntimeError(f"backend {name!r} is not available: dtrain's backend is 'zmq' "
                               "(CPU, over ZeroMQ), and 'gloo' is accepted as its alias. Use "
                               "backend='gloo' or leave it out.")
        return super().__new__(cls, name)


class _NonGroupMember:
    def __repr__(self):
        return "GroupMember.NON_GROUP_MEMBER"


class GroupMember:
    """``WORLD`` stands for the default group (None before init_process_group);
    ``NON_GROUP_MEMBER`` is what ``new_group`` returns to processes that are not in the new group.

    >>> g = dist.new_group([0, 1])
    >>> if g is not dist.GroupMember.NON_GROUP_MEMBER: dist.all_reduce(t, group=g)
    """

    WORLD = None
    NON_GROUP_MEMBER = _NonGroupMember()


class group:  # noqa: N801 - torch's name: dist.group.WORLD
    """``group.WORLD`` is the default group once initialized (None before).

    >>> dist.all_reduce(t, group=dist.group.WORLD)   # the same as group=None
    """

    WORLD = None


_GROUP = group  # destroy_process_group's argument is also called group


class _World:
    def __init__(self, pg, engine, store, kv, backend, timeout):
        self.default, self.engine, self.store, self.kv = pg, engine, store, kv
        self.backend, self.timeout = backend, timeout
        self.next_gid = 1
        self.groups = {0: pg}


_world = None
_RENDEZVOUS_GROUP = 0xFFFFFFFF  # the id of the one barrier that ends init_process_group
_PARTING_GROUP = 0xFFFFFFFE     # and of the one in destroy_process_group
_PARTING_TIMEOUT = 5.0


def is_available():
    """dtrain.distributed is always available.

    >>> dist.is_available()
    True
    """
    return True


def is_initialized():
    """True between init_process_group and destroy_process_group.

    >>> if not dist.is_initialized(): dist.init_process_group("gloo")
    """
    return _world is not None


def _uninitialized():
    return ValueError("Default process group has not been initialized, please make sure to call "
                      "init_process_group.")


def resolve(pg):
    """The ProcessGroup a user passed (None means the default group), checked."""
    if _world is None:
        raise _uninitialized()
    if pg is None or pg is _world.default:
        return _world.default
    if pg is GroupMember.NON_GROUP_MEMBER:
        raise ValueError(f"rank {_world.default.me} is not a member of this group: new_group() "
                         "returned GroupMember.NON_GROUP_MEMBER here. Only the ranks passed to "
                         "new_group() may use the group it returns.")
    if not isinstance(pg, ProcessGroup):
        raise TypeError(f"group must be a ProcessGroup from new_group() or None, got "
                        f"{type(pg).__name__}")
    if _world.groups.get(pg.id) is not pg:
        raise ValueError(f"group {pg.id} was destroyed or belongs to an earlier "
                         "init_process_group(); create it again with new_group()")
    return pg


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    """Join the job: meet the other ranks at the rendezvous store and connect to them.

    ``init_method`` is "env://" (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from the
    environment) or "tcp://host:port". Backend "zmq" is the default; "gloo" is its alias.
    The timeout (30 minutes, or DTRAIN_TIMEOUT seconds) bounds every operation.

    >>> dist.init_process_group("gloo", rank=0, world_size=2)
    """
    global _world
    if _world is not None:
        raise RuntimeError("trying to initialize the default process group twice! Call "
                           "destroy_process_group() first.")
    name = Backend(backend)
    limit = _positive_seconds(timeout) if timeout is not None else \
        default_timeout().total_seconds()
    token = auth.job_token()
    if store is None:
        host, port, rank, world_size = parse(init_method, rank, world_size)
        bind = bind_host(host, token)
        # dtrain-run hosts the store itself and says so; otherwise rank 0 hosts it
        hosted = os.environ.get("DTRAIN_STORE_HOSTED") == "1"
        store = _open_store(host, port, world_size, rank == 0 and not hosted, limit, token)
        owned = True
    else:
        owned = False
        if rank is None or rank < 0 or world_size is None or world_size < 1:
            raise ValueError("with store=..., pass rank= and world_size= too")
        bind = bind_host(getattr(store, "host", "127.0.0.1"), token)
    kv = scoped(store)
    engine = None
    try:
        engine = join(kv, rank, world_size, bind, limit, token)
        # meet once over the data sockets (in a group of its own, so the user's first op is
        # #1): after this no rank waits on the store, so rank 0 may leave and close it any time
        meeting = ProcessGroup(_RENDEZVOUS_GROUP, range(world_size), rank, engine, limit)
        meeting.run("barrier", collectives.barrier, (), np.dtype(np.uint8), ()).wait()
    except BaseException:
        if engine is not None:
            engine.close()
        if owned:
            store.close()
        raise
    pg = ProcessGroup(0, range(world_size), rank, engine, limit, group_name or "default")
    _world = _World(pg, engine, store if owned else None, kv, str(name), limit)
    GroupMember.WORLD = _GROUP.WORLD = pg


def _open_store(host, port, world_size, master, limit, token):
    """Host the store (rank 0) or reach it. If rank 0 finds the port taken by a dtrain store,
    another process claims rank 0 too: join that store as a client, so that the rendezvous
    tells every process so, instead of reporting a busy port."""
    try:
        return TCPStore(host, port, world_size, is_master=master, timeout=limit,
                        wait_for_workers=False, token=token)
    except DistError as error:
        if not master or "in use" not in str(error):
            raise
        try:
            return TCPStore(host, port, world_size, is_master=False, timeout=min(limit, 2.0),
                            wait_for_workers=False, token=token)
        except DistError:
            raise error from None


def _positive_seconds(timeout):
    try:
        limit = seconds(timeout)
    except (TypeError, ValueError):
        limit = None
    if limit is None or not limit > 0:
        raise ValueError(f"timeout must be a positive number of seconds or a timedelta, got "
                         f"{timeout!r}")
    return limit


def new_group(ranks=None, timeout=None, backend=None, pg_options=None,
              use_local_synchronization=False, group_desc=None):
    """A group of some ranks. Every process must call new_group, with the same ranks, in the
    same order, as in torch; non-members get GroupMember.NON_GROUP_MEMBER.

    >>> g = dist.new_group([0, 1])
    """
    if _world is None:
        raise _uninitialized()
    Backend(backend)
    size = _world.default.size()
    members = sorted(set(range(size) if ranks is None else (int(r) for r in ranks)))
    bad = [r for r in members if not 0 <= r < size]
    if bad:
        raise ValueError(f"new_group got ranks {bad} outside the world [0, {size - 1}]")
    if not members:
        raise ValueError("new_group needs at least one rank")
    gid = _world.next_gid
    _world.next_gid += 1
    me = _world.default.me
    if me not in members:
        return GroupMember.NON_GROUP_MEMBER
    limit = _positive_seconds(timeout) if timeout is not None else _world.timeout
    pg = ProcessGroup(gid, members, me, _world.engine, limit, group_desc or "")
    _world.groups[gid] = pg
    return pg


def get_backend(group=None):
    """The backend's name: the one passed to init_process_group ("gloo" or "zmq"; "zmq" if none
    was). Raises ValueError before init_process_group.

    >>> dist.init_process_group("gloo"); dist.get_backend()
    'gloo'
    """
    resolve(group)
    return _world.backend


def destroy_process_group(group=None):
    """Leave the job (group None), or forget one group. Safe to call more than once.

    >>> dist.destroy_process_group(g)   # forget the group g from new_group
    >>> dist.destroy_process_group()    # leave the job, at the end of training
    """
    global _world
    if _world is None:
        return
    if group is not None and group is not GroupMember.WORLD:
        pg = resolve(group)
        if pg.id != 0:
            _world.groups.pop(pg.id, None)
            return
    _leave(part=True)


def _leave(part):
    """Close the store and the engine; with ``part``, first meet the others in a short barrier
    (so rank 0's store outlives their last use of it)."""
    global _world
    world, _world = _world, None
    GroupMember.WORLD = _GROUP.WORLD = None
    # close the store (if init made it) before the others may leave: a rank that calls
    # init_process_group again right away must not meet in this job's old store
    if world.store is not None:
        world.store.close()
    me = world.default.me
    parting = ProcessGroup(_PARTING_GROUP, world.default.ranks, me, world.engine,
                           min(world.timeout, _PARTING_TIMEOUT))
    try:
        if part and world.engine.broken(0) is None:  # else the others fail too: do not wait
            parting.run("barrier", collectives.barrier, (), np.dtype(np.uint8), ()).wait()
    except DistError:
        pass  # a rank already gone or never coming: leave anyway
    world.engine.close()


def monitored_barrier(group=None, timeout=None, wait_all_ranks=False):
    """A barrier that, on rank 0 of the group, names the ranks that did not arrive within
    ``timeout`` (all of them with ``wait_all_ranks``, else the first).

    >>> dist.monitored_barrier(timeout=datetime.timedelta(seconds=10))
    """
    pg = resolve(group)
    limit = seconds(timeout) if timeout is not None else pg.timeout
    pg.seq += 1
    key = f"monitored_barrier/{pg.id}/{pg.seq}"
    store = _world.kv
    me = pg.ranks[pg.me]
    store.set(f"{key}/{me}", b"1")
    if pg.me == 0:
        end = time.monotonic() + limit
        missing = []
        for r in pg.ranks[1:]:
            try:
                store.wait([f"{key}/{r}"], max(end - time.monotonic(), 0.001))
            except (DistTimeoutError, DistError):
                missing.append(r)
                if not wait_all_ranks:
                    break
        if missing:
            who = f"ranks {missing}" if wait_all_ranks else f"rank {missing[0]}"
            raise DistTimeoutError(f"monitored_barrier (group {pg.id}) on rank {me}: {who} "
                                   f"failed to pass the barrier within {limit:.1f} s")
        store.set(f"{key}/done", b"1")
    else:
        store.wait([f"{key}/done"], limit + 5)  # rank 0 may wait the whole limit first


def _close_at_exit():
    if _world is None:
        return
    try:
        # a process dying of an uncaught exception leaves at once: its peers then raise
        # DistPeerError naming it, instead of it waiting for them in the parting barrier
        _leave(part=getattr(sys, "last_value", None) is None)
    except Exception:
        pass


# Leave cleanly at exit, so that messages still queued reach their peers. multiprocessing's
# children end with os._exit, which skips atexit but runs multiprocessing's own finalizers.
atexit.register(_close_at_exit)
multiprocessing.util.Finalize(None, _close_at_exit, exitpriority=100)
