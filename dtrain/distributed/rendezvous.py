"""Joining a job: read rank and world size, meet at the store, exchange data-socket addresses.

Rank 0 hosts the rendezvous store at MASTER_ADDR:MASTER_PORT (unless a store is passed in).
Every rank binds its own data socket on a free port, publishes its card (that address, its
host, and the path of its shared-memory lanes) under its rank, reads everyone else's, maps the
lanes of the peers on its host, and connects. The store also catches two processes claiming one rank and
ranks that disagree on the world size.
"""
import ipaddress
import json
import os
import socket
import time
from datetime import timedelta
from urllib.parse import urlparse

from . import auth, shm
from .errors import DistError, DistTimeoutError
from .transport import Engine

DEFAULT_TIMEOUT = timedelta(minutes=30)

# launchers that set rank and world size under other names
_RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "PMI_RANK")
_SIZE_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "PMI_SIZE")


def default_timeout():
    """30 minutes as in torch, or DTRAIN_TIMEOUT seconds."""
    value = os.environ.get("DTRAIN_TIMEOUT")
    if not value:
        return DEFAULT_TIMEOUT
    try:
        return timedelta(seconds=float(value))
    except ValueError:
        raise ValueError(f"DTRAIN_TIMEOUT must be a number of seconds, got {value!r}") from None


def _env_int(names, what):
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"environment variable {name} must be an integer {what}, got "
                                 f"{value!r}") from None
    raise ValueError(f"environment variable {names[0]} expected, but not set: pass {what}= to "
                     f"init_process_group or set {names[0]} (dtrain-run sets it for you)")


def _port(value, source):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a port number, got {value!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"{source} must be a port number between 1 and 65535, got {port}")
    return port


def parse(init_method, rank, world_size):
    """(host, port, rank, world_size) from an init method and the environment."""
    init_method = init_method or "env://"
    url = urlparse(init_method)
    if url.scheme == "env":
        host = os.environ.get("MASTER_ADDR")
        if not host:
            raise ValueError("environment variable MASTER_ADDR expected, but not set: set it to "
                             "the address of rank 0 (for one machine, 127.0.0.1)")
        port = _port(os.environ.get("MASTER_PORT"), "environment variable MASTER_PORT")
    elif url.scheme == "tcp":
        if not url.hostname or url.port is None:
            raise ValueError(f"init_method {init_method!r} must look like tcp://host:port")
        host, port = url.hostname, _port(url.port, "the port of init_method")
    else:
        raise ValueError(f"init_method {init_method!r} is not supported: use 'env://' (the "
                         "default) or 'tcp://host:port'")
    if rank is None or rank < 0:
        rank = _env_int(_RANK_VARS, "rank")
    if world_size is None or world_size < 0:
        world_size = _env_int(_SIZE_VARS, "world_size")
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size - 1}] for world_size {world_size}, "
                         f"got {rank}")
    return host, port, rank, world_size


def local_host(master):
    """The address this rank's peers can reach it at: loopback for a local job, else the
    interface that routes to the master (DTRAIN_HOST overrides)."""
    chosen = os.environ.get("DTRAIN_HOST")
    if chosen:
        return chosen
    try:
        if master == "localhost" or ipaddress.ip_address(master).is_loopback:
            return "127.0.0.1"
    except ValueError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((socket.gethostbyname(master), 1))  # no packet is sent
            return probe.getsockname()[0]
    except socket.gaierror as e:
        raise DistError(f"MASTER_ADDR {master!r} does not resolve ({e.strerror}): set it to the "
                        "address of rank 0 (for one machine, 127.0.0.1)") from None
    except OSError as e:
        raise DistError(f"cannot find a local address that reaches MASTER_ADDR {master!r}: {e}. "
                        "Set DTRAIN_HOST to this machine's address.") from None


_generation = 0  # how many times this process has called init_process_group


def scoped(store):
    """The store as this meeting of the job sees it: keys scoped by DTRAIN_RESTART_COUNT and by
    how many times the process initialized before, so a restarted job, or a second
    init_process_group, meets afresh in a store that outlived the previous one (dtrain-run's)."""
    global _generation
    _generation += 1
    restart = os.environ.get("DTRAIN_RESTART_COUNT", "0")
    return _Scoped(store, f"dtrain/{restart}/{_generation}/")


def bind_host(master_host, token):
    """The address this rank's data socket binds (local_host), refusing to talk to other
    machines without the job token."""
    host = local_host(master_host)
    if token is None and auth.crosses_hosts(host):
        raise DistError(f"this job would talk to other machines (from {host}), which needs the "
                        "job token: set DTRAIN_JOB_TOKEN to the same secret on every node (e.g. "
                        "python3 -c 'import secrets; print(secrets.token_hex(16))'). dtrain-run "
                        "sets one for a one-machine job.")
    return host


def join(store, rank, world_size, host, timeout, token=None):
    """Open this rank's engine on ``host`` (bind_host) and connect it to every other rank's.
    Returns the engine. Connections prove ``token`` (auth.py).

    A rank that finds the job misconfigured (a rank claimed twice, world sizes that differ)
    posts the reason under "abort" before raising, and every rank still meeting reads it there,
    so each one raises that reason instead of a timeout.
    """
    deadline = time.monotonic() + timeout
    claims = store.add(f"rank/{rank}", 1)
    if claims > 1:
        _abort(store, f"two processes claim rank {rank}: each process needs its own RANK in "
                      f"[0, {world_size - 1}]")
    store.set(f"world_size/{rank}", str(world_size))
    engine = Engine(rank, host, token, world_size)
    try:
        store.set(f"addr/{rank}", json.dumps(engine.card))
        cards = {}
        for r in range(world_size):
            theirs = int(_get(store, f"world_size/{r}", deadline, timeout))
            if theirs != world_size:
                _abort(store, f"rank {r} was started with world_size {theirs} but rank {rank} "
                              f"with world_size {world_size}; every process must use the same "
                              "world size")
            cards[r] = json.loads(_get(store, f"addr/{r}", deadline, timeout))
        lanes = shm.open_peers(cards, rank)
        engine.call(engine.connect, {r: c["address"] for r, c in cards.items()}, lanes)
        if store.add("joined", 1) == world_size:
            store.set("all_joined", b"1")
        _get(store, "all_joined", deadline, timeout)
    except BaseException:
        engine.close()
        raise
    return engine


_ABORT_POLL = 0.5  # s


def _abort(store, reason):
    store.set("abort", reason)
    _linger()
    raise DistError(reason)


def _linger():
    # the store may live in this process (rank 0): keep it up long enough for every rank that
    # polls for "abort" to read it before this process raises and closes it
    time.sleep(2 * _ABORT_POLL)


def _get(store, key, deadline, timeout):
    """store.get(key), but raise the reason another rank posted under "abort" meanwhile."""
    while True:
        left = deadline - time.monotonic()
        try:
            store.wait([key], max(min(_ABORT_POLL, left), 0.001))
            return store.get(key)
        except DistTimeoutError:
            if store.check(["abort"]):
                reason = store.get("abort").decode()
                _linger()
                raise DistError(reason) from None
            if left <= _ABORT_POLL:
                raise DistTimeoutError(
                    f"the rendezvous timed out after {timeout:.1f} s waiting for {key!r}: a rank "
                    "has not started, or is stuck. Check that all WORLD_SIZE processes run with "
                    "distinct RANKs and the same MASTER_ADDR/MASTER_PORT.") from None


class _Scoped:
    """A view of a store with every key under a prefix."""

    def __init__(self, store, prefix):
        self._store, self._prefix = store, prefix

    def add(self, key, amount):
        return self._store.add(self._prefix + key, amount)

    def set(self, key, value):
        self._store.set(self._prefix + key, value)

    def get(self, key):
        return self._store.get(self._prefix + key)

    def wait(self, keys, timeout):
        self._store.wait([self._prefix + k for k in keys], timeout)

    def check(self, keys):
        return self._store.check([self._prefix + k for k in keys])
