"""The rendezvous key-value store: torch.distributed.TCPStore's API over ZeroMQ.

One process (rank 0, or the launcher) hosts the server: a daemon thread that owns a ROUTER
socket and the table. Every TCPStore, the master's included, is a client with one DEALER socket
and one request in flight at a time. Blocking reads (get, wait, multi_get) are parked by the
server and answered when their keys are set, or with an error at their deadline; the client
waits for the answer with its own deadline, so no call can hang.

Wire format (every frame is bytes; nothing is pickled):

    request  [b"DTS1", token, seq, op, *args]      seq: ascii int, echoed in the reply
    reply    [seq, b"ok", *results]
             [seq, b"err", kind, message, *keys]   kind: timeout | auth | bad

    op       args                                   results
    ping     -                                      -
    set      key, value                             -
    get      timeout_ms, key                        value
    wait     timeout_ms, *keys                      -
    mget     timeout_ms, *keys                      *values
    mset     key, value, key, value, ...            -
    add      key, amount                            new value (ascii int)
    cas      key, expected, desired                 value
    append   key, value                             -
    del      key                                    b"1" or b"0"
    check    *keys                                  b"1" or b"0"
    nkeys    -                                      count (ascii int)
    join     amount                                 clients joined so far (ascii int)

Integers travel as ascii, and add's counters are stored as ascii ints, as in torch.
"""
import socket
import threading
import time
import weakref
from datetime import timedelta

import zmq

from . import auth
from .errors import DistStoreError, DistStoreTimeoutError
from .store_server import (_GRACE, _MAGIC, _StoreServer, _encode_key, _encode_value,
                           _endpoint, _names)
from .work import seconds

__all__ = ["DistStoreTimeoutError", "Store", "TCPStore"]


class Store:
    """The base class of key-value stores, as torch.distributed.Store; see TCPStore.

    >>> issubclass(dist.TCPStore, dist.Store)
    True
    """


def _shutdown(ctx, sock, server, lock):
    # a weakref.finalize callback, so it must not hold the TCPStore itself. close() holds the
    # lock already; at exit a daemon thread may still be inside a call on the client socket:
    # then leave that socket to the OS rather than close it under the thread
    stopped = server.stop() if server is not None else True
    if lock.acquire(blocking=False):
        try:
            sock.close(linger=0)
            if stopped:
                ctx.term()  # every socket is closed, so this returns at once
        finally:
            lock.release()


class TCPStore(Store):
    """A key-value store for rendezvous, as torch.distributed.TCPStore, served over ZeroMQ.

    The master (``is_master=True``) hosts the server in a daemon thread of this process,
    listening on ``host_name:port`` (``port=0`` picks a free port: read it from ``.port``); it
    is a client too. Other processes connect with ``is_master=False``. With ``world_size`` and
    ``wait_for_workers``, every client joins on construction and the master's constructor
    returns once ``world_size`` clients have joined, or raises at ``timeout``.

    Keys are str; values are bytes or str (encoded as utf-8); reads return bytes. Every call
    has a deadline: the store's ``timeout`` (or ``wait``'s own). ``get``/``wait`` timeouts raise
    DistStoreTimeoutError, a DistStoreError (as in torch) and a DistTimeoutError.

    ``token`` (bytes), when given, is proven on every request; the server refuses requests
    whose token differs from the master's. Differences from torch: ``multi_tenant`` and
    ``use_libuv`` are accepted and ignored (each master store hosts its own server), and
    ``master_listen_fd`` is not supported.

    Example::

        >>> from datetime import timedelta
        >>> store = TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=5))
        >>> store.set("rank0/addr", "tcp://10.0.0.1:5000")
        >>> store.get("rank0/addr")
        b'tcp://10.0.0.1:5000'
        >>> store.add("arrived", 1)
        1
        >>> store.close()
    """

    def __init__(self, host_name, port, world_size=None, is_master=False,
                 timeout=timedelta(seconds=300), wait_for_workers=True, multi_tenant=False,
                 master_listen_fd=None, use_libuv=True, token=None):
        if master_listen_fd is not None:
            raise ValueError("dtrain's TCPStore does not take master_listen_fd; pass port=0 to "
                             "pick a free port and read it from store.port")
        if token is not None and not isinstance(token, bytes):
            raise TypeError(f"token must be bytes, got {type(token).__name__}")
        self._host = host_name
        self._timeout = seconds(timeout)
        self._token = token or b""
        self._is_master = is_master
        self._lock = threading.RLock()
        self._seq = 0
        self._ctx = zmq.Context()
        # across hosts, CURVE with keys from the token hides the token and the keys' values
        guard = auth.Guard(token, encrypted=True) if token and auth.crosses_hosts(host_name) \
            else None
        try:
            self._server = (_StoreServer(self._ctx, host_name, port, self._token, guard)
                            if is_master else None)
        except BaseException:
            self._ctx.term()
            raise
        self._port = self._server.port if is_master else port
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.linger = 0
        if guard is not None:
            guard.connect_as_client(self._sock)
        self._finalizer = weakref.finalize(self, _shutdown, self._ctx, self._sock,
                                           self._server, self._lock)
        try:
            self._sock.ipv6 = ":" in host_name
            self._sock.connect(_endpoint(host_name, self._port))
            self._reach()
            if world_size is not None and wait_for_workers:
                self._wait_for_workers(world_size)
        except BaseException:
            self.close()
            raise

    def __repr__(self):
        role = "master" if self._is_master else "client"
        return f"TCPStore(host={self._host!r}, port={self._port}, {role})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the client socket and, on the master, stop the server. Safe to call twice;
        waits for a call in progress on another thread."""
        with self._lock:
            self._finalizer()

    # --- torch's API --------------------------------------------------------------------------

    @property
    def host(self):
        return self._host

    @property
    def port(self):
        return self._port

    @property
    def timeout(self):
        return timedelta(seconds=self._timeout)

    def set_timeout(self, timeout):
        """Set the deadline of every later call (a timedelta)."""
        self._timeout = seconds(timeout)

    def set(self, key, value):
        """Store value (bytes or str) under key, replacing any old value."""
        self._call(b"set", _encode_key(key), _encode_value(value))

    def get(self, key):
        """The value of key as bytes, waiting up to the store's timeout for it to be set."""
        return self._call(b"get", _encode_key(key), wait=self._timeout)[0]

    def wait(self, keys, timeout=None):
        """Wait until every key in keys is set, up to timeout (default: the store's)."""
        self._call(b"wait", *map(_encode_key, keys),
                   wait=self._timeout if timeout is None else seconds(timeout))

    def multi_get(self, keys):
        """The values of keys, waiting up to the store's timeout for all of them."""
        return self._call(b"mget", *map(_encode_key, keys), wait=self._timeout)

    def multi_set(self, keys, values):
        """Set keys[i] to values[i] for every i, in one request."""
        if len(keys) != len(values):
            raise ValueError(f"multi_set got {len(keys)} keys but {len(values)} values")
        frames = []
        for key, value in zip(keys, values):
            frames += [_encode_key(key), _encode_value(value)]
        self._call(b"mset", *frames)

    def add(self, key, amount):
        """Atomically add amount to the integer under key (0 if missing); return the new value."""
        return int(self._call(b"add", _encode_key(key), str(int(amount)).encode())[0])

    def compare_set(self, key, expected_value, desired_value):
        """Set key to desired_value if its value is expected_value; return the value after.

        As in torch: a missing key matches an empty expected_value; a missing key with any
        other expected_value is left unset and expected_value is returned.
        """
        return self._call(b"cas", _encode_key(key), _encode_value(expected_value),
                          _encode_value(desired_value))[0]

    def append(self, key, value):
        """Append value to the bytes under key (set it if missing)."""
        self._call(b"append", _encode_key(key), _encode_value(value))

    def delete_key(self, key):
        """Delete key; return whether it existed."""
        return self._call(b"del", _encode_key(key))[0] == b"1"

    def check(self, keys):
        """Whether every key in keys is set, without waiting."""
        return self._call(b"check", *map(_encode_key, keys))[0] == b"1"

    def num_keys(self):
        """How many keys are set; as in torch, one more once workers have joined."""
        return int(self._call(b"nkeys")[0])

    # --- the client -----------------------------------------------------------------------

    def _where(self):
        return f"the rendezvous store at {self._host}:{self._port}"

    def _call(self, op, *args, wait=None):
        """Send one request and return its result frames. wait: the seconds the server may
        park a get/wait for its keys; the client waits a grace period longer for the answer."""
        if wait is not None:
            args = (str(max(0, int(wait * 1000))).encode(), *args)
        budget = self._timeout if wait is None else wait + _GRACE
        reply = self._exchange(op, args, budget)
        if reply is None:
            raise DistStoreError(
                f"{self._where()} did not answer {op.decode()} within {budget:.1f} s. Check that "
                f"the process hosting it (rank 0 or the launcher) is still running.")
        return self._result(op, args, reply, wait)

    def _result(self, op, args, reply, wait):
        """A reply's result frames, or the error it carries, raised."""
        if reply[0] == b"ok":
            return reply[1:]
        kind, message, *keys = reply[1:]
        if kind == b"timeout":
            raise DistStoreTimeoutError(self._timeout_message(op, args[1:], keys, wait))
        if kind == b"auth":
            raise DistStoreError(f"{self._where()} refused this process: {message.decode()}. "
                                 f"Give every rank the same job token (DTRAIN_JOB_TOKEN).")
        raise DistStoreError(f"{self._where()} refused {op.decode()}: {message.decode()}")

    def _exchange(self, op, args, budget):
        """Send a request; its reply frames after seq, or None if none came within budget.
        Replies to earlier requests that timed out on this side may still arrive: skip them."""
        with self._lock:
            if not self._finalizer.alive:
                raise DistStoreError(f"this client of {self._where()} is closed")
            self._seq += 1
            seq = str(self._seq).encode()
            deadline = time.monotonic() + budget
            try:
                self._sock.send_multipart([_MAGIC, self._token, seq, op, *args], zmq.NOBLOCK)
            except zmq.Again:
                raise DistStoreError(f"could not send {op.decode()} to {self._where()}: its queue "
                                     f"is full, so the store has stopped answering") from None
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not self._sock.poll(max(1, int(left * 1000)), zmq.POLLIN):
                    return None
                frames = self._sock.recv_multipart()
                if len(frames) >= 2 and frames[0] == seq:
                    return frames[1:]

    def _timeout_message(self, op, keys, missing, wait):
        if op == b"get":
            return (f"get of key {_names(keys)} timed out after {wait:.1f} s: no rank set it in "
                    f"{self._where()}. Check that the rank that sets it is running and uses the "
                    f"same key.")
        return (f"{'multi_get' if op == b'mget' else 'wait'} for keys {_names(keys)} in "
                f"{self._where()} timed out after {wait:.1f} s; still missing: {_names(missing)}. "
                f"Check that the ranks that set them are running.")

    def _reach(self):
        """Ping the server until it answers or the timeout passes (ZeroMQ retries the
        connection in the background, so a server that starts late is found)."""
        reply = self._exchange(b"ping", (), self._timeout)
        if reply is None:
            raise DistStoreError(
                f"could not reach the rendezvous store at {self._host}:{self._port} within "
                f"{self._timeout:.1f} s: {self._diagnose()}. Check MASTER_ADDR/MASTER_PORT and "
                f"that rank 0 (or the launcher) started.")
        self._result(b"ping", (), reply, None)  # raises a refusal, such as a wrong token

    def _diagnose(self):
        """Why nothing answered, from one plain TCP connection attempt."""
        try:
            with socket.create_connection((self._host, self._port), timeout=0.5):
                return ("something accepts connections there but no dtrain store answered "
                        "(another program on that port?)")
        except socket.gaierror:
            return f"the host name {self._host!r} does not resolve"
        except ConnectionRefusedError:
            return "connection refused, nothing listens on that port"
        except OSError as e:
            return f"no connection ({e.strerror or e})"

    def _wait_for_workers(self, world_size):
        deadline = time.monotonic() + self._timeout
        joined = int(self._call(b"join", b"1")[0])
        if not self._is_master:
            return
        while joined < world_size:
            if time.monotonic() > deadline:
                raise DistStoreTimeoutError(
                    f"timed out after {self._timeout:.1f} s waiting for clients of "
                    f"{self._where()}: {joined}/{world_size} joined. Check that every rank "
                    f"started with the same MASTER_ADDR, MASTER_PORT and world size.")
            time.sleep(0.01)
            joined = int(self._call(b"join", b"0")[0])
