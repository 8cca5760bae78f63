"""The rendezvous store's server: the table and the thread that serves it (see store.py for
the wire format), plus the encoding helpers the client shares."""
import hmac
import threading
import time

import zmq

from .errors import DistStoreError

_MAGIC = b"DTS1"
# how long past a parked request's own deadline the client waits for the server's answer
_GRACE = 1.0
_WRITING_OPS = (b"set", b"mset", b"add", b"cas", b"append")


class _Refusal(Exception):
    """The server's answer to a request it will not serve: an err reply of this kind."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind, self.message = kind, message


class _Parked:
    __slots__ = ("ident", "seq", "op", "keys", "deadline")

    def __init__(self, ident, seq, op, keys, deadline):
        self.ident, self.seq, self.op, self.keys, self.deadline = ident, seq, op, keys, deadline


def _endpoint(host, port):
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def _encode_key(key):
    if not isinstance(key, str):
        raise TypeError(f"store keys are str, got {type(key).__name__} {key!r}")
    return key.encode()


def _encode_value(value):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"store values are bytes or str, got {type(value).__name__}")


def _names(keys):
    return ", ".join(repr(k.decode(errors="replace") if isinstance(k, bytes) else k)
                     for k in keys)


class _StoreServer:
    """The table and the thread that serves it over one ROUTER socket."""

    def __init__(self, ctx, host, port, token, guard=None):
        self._token = token
        self._data = {}
        self._joined = 0  # torch counts its worker-coordination key in num_keys; so do we
        self._parked = []
        self._router = ctx.socket(zmq.ROUTER)
        self._router.linger = 0
        self._router.ipv6 = ":" in host
        if guard is not None:
            guard.serve(self._router, check=False)  # every request also carries the token
        try:
            self._router.bind(_endpoint(host, port))
        except zmq.ZMQError as e:
            self._router.close()
            raise DistStoreError(
                f"could not start the rendezvous store on {host}:{port}: {e}. Another job may "
                f"be using that port: pick another MASTER_PORT, or port 0 for a free one."
            ) from None
        self.port = int(self._router.last_endpoint.rsplit(b":", 1)[1])
        # close() wakes the thread through this pair; the thread alone uses the router
        wake = f"inproc://dtrain-store-wake-{id(self)}"
        self._wake_recv = ctx.socket(zmq.PAIR)
        self._wake_recv.bind(wake)
        self._wake_send = ctx.socket(zmq.PAIR)
        self._wake_send.connect(wake)
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                         name=f"dtrain-store-server-{self.port}")
        self._thread.start()

    def stop(self):
        """Stop the thread; it closes its own sockets. Returns whether it stopped."""
        if self._wake_send is None:
            return not self._thread.is_alive()
        try:
            self._wake_send.send(b"stop", zmq.NOBLOCK)
        except zmq.Again:
            pass  # the thread is gone already
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._wake_send.close(linger=0)
        self._wake_send = None
        return not self._thread.is_alive()

    def _serve(self):
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_recv, zmq.POLLIN)
        try:
            while True:
                events = dict(poller.poll(self._next_deadline_ms()))
                if self._wake_recv in events:
                    break
                if self._router in events:
                    while True:
                        try:
                            frames = self._router.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._handle(frames)
                self._expire(time.monotonic())
        finally:
            self._router.close(linger=0)
            self._wake_recv.close(linger=0)

    def _next_deadline_ms(self):
        if not self._parked:
            return None
        left = min(p.deadline for p in self._parked) - time.monotonic()
        return max(0, int(left * 1000) + 1)

    def _reply(self, ident, seq, frames):
        self._router.send_multipart([ident, seq, *frames])

    def _handle(self, frames):
        if len(frames) < 5 or frames[1] != _MAGIC:
            return  # not one of ours: nothing to answer to
        ident, _, token, seq, op, *args = frames
        try:
            # every request proves the job token; across hosts the connection is encrypted
            # with keys derived from it (auth.py), so the token never crosses in clear
            if not hmac.compare_digest(token, self._token):
                raise _Refusal(b"auth", "the job token does not match the store's")
            method = getattr(self, "_op_" + op.decode("ascii", "replace"), None)
            if method is None:
                raise _Refusal(b"bad", f"unknown store operation {op!r}")
            try:
                result = method(ident, seq, *args)
            except (TypeError, ValueError, UnicodeDecodeError):
                raise _Refusal(b"bad", f"malformed {op.decode()} request ({len(args)} arguments)")
        except _Refusal as r:
            self._reply(ident, seq, [b"err", r.kind, r.message.encode()])
            return
        if result is not None:  # None: parked until its keys are set
            self._reply(ident, seq, [b"ok", *result])
        if op in _WRITING_OPS:
            self._release()

    # --- operations: each returns its result frames, or None when parked --------------------

    def _op_ping(self, ident, seq):
        return []

    def _op_set(self, ident, seq, key, value):
        self._data[key] = value
        return []

    def _op_mset(self, ident, seq, *pairs):
        if len(pairs) % 2:
            raise ValueError("odd number of frames")
        self._data.update(zip(pairs[0::2], pairs[1::2]))
        return []

    def _op_add(self, ident, seq, key, amount):
        old = self._data.get(key, b"0")
        try:
            new = int(old) + int(amount)
        except ValueError:
            raise _Refusal(b"bad", f"the value under key {_names([key])} ({old[:40]!r}) is not an "
                                   f"integer. Use add only on keys that add created.")
        self._data[key] = str(new).encode()
        return [self._data[key]]

    def _op_cas(self, ident, seq, key, expected, desired):
        # torch: a missing key counts as b"" only when expected is b""; otherwise the
        # reply is expected itself and nothing is written
        current = self._data.get(key)
        if current is None:
            if expected:
                return [expected]
            current = b""
        if current == expected:
            self._data[key] = desired
            return [desired]
        return [current]

    def _op_append(self, ident, seq, key, value):
        self._data[key] = self._data.get(key, b"") + value
        return []

    def _op_del(self, ident, seq, key):
        return [b"1" if self._data.pop(key, None) is not None else b"0"]

    def _op_check(self, ident, seq, *keys):
        return [b"1" if all(k in self._data for k in keys) else b"0"]

    def _op_nkeys(self, ident, seq):
        return [str(len(self._data) + (self._joined > 0)).encode()]

    def _op_join(self, ident, seq, amount):
        self._joined += int(amount)
        return [str(self._joined).encode()]

    def _op_get(self, ident, seq, timeout_ms, key):
        return self._park(ident, seq, b"get", timeout_ms, (key,))

    def _op_wait(self, ident, seq, timeout_ms, *keys):
        return self._park(ident, seq, b"wait", timeout_ms, keys)

    def _op_mget(self, ident, seq, timeout_ms, *keys):
        return self._park(ident, seq, b"mget", timeout_ms, keys)

    # --- parked reads -----------------------------------------------------------------------

    def _park(self, ident, seq, op, timeout_ms, keys):
        if all(k in self._data for k in keys):
            return self._ready(op, keys)
        deadline = time.monotonic() + int(timeout_ms) / 1000
        self._parked.append(_Parked(ident, seq, op, keys, deadline))
        return None

    def _ready(self, op, keys):
        return [] if op == b"wait" else [self._data[k] for k in keys]

    def _release(self):
        waiting = []
        for p in self._parked:
            if all(k in self._data for k in p.keys):
                self._reply(p.ident, p.seq, [b"ok", *self._ready(p.op, p.keys)])
            else:
                waiting.append(p)
        self._parked = waiting

    def _expire(self, now):
        if not any(p.deadline <= now for p in self._parked):
            return
        waiting = []
        for p in self._parked:
            if p.deadline <= now:
                missing = [k for k in p.keys if k not in self._data]
                self._reply(p.ident, p.seq, [b"err", b"timeout", b"keys not set", *missing])
            else:
                waiting.append(p)
        self._parked = waiting
