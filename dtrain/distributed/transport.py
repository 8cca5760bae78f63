"""The engine: one thread per process owns every ZeroMQ socket (pyzmq sockets are not
thread-safe). API calls hand it closures; it sends, receives, matches messages to the
operations waiting for them, runs collective algorithms, and fails operations at their
deadlines.

Each rank binds one ROUTER socket and connects one DEALER to every peer's ROUTER, with its rank
as identity, so the ROUTER knows who sent each message and the messages between two ranks
arrive in the order sent. Incoming messages wait in mailboxes keyed by (group, tag) for
point-to-point (p2p.py) and (group, sequence number, source) for collectives, so an early
message from one rank never confuses an operation waiting for another.
"""
import collections
import os
import resource
import threading
import time

import numpy as np
import zmq

from . import auth, fastpath, rings, shm, wire
from .errors import DistBackendError, DistMismatchError, DistPeerError, DistTimeoutError
from .liveness import GRACE, PeerWatch
from .p2p import Receives, Sends
from .runs import Runs

ZERO_COPY_MIN = 64 * 1024  # smaller payloads are copied: cheaper than tracking them
_POLL_MAX_MS = 1000
_ABORT_KINDS = (DistMismatchError, DistTimeoutError, DistPeerError)  # codes in an ABORT's op
_EMPTY = np.zeros(0, dtype=np.uint8)
_PING = wire.encode(wire.PING, 0, 0, 0, 0, 0, None, (), -1, 0)


def _allow_files(count):
    """Raise this process's soft limit on open files to ``count`` if the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        target = count if hard == resource.RLIM_INFINITY else min(count, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))


class Engine:
    """The communication thread of one process."""

    def __init__(self, rank, host, token=None, world_size=1):
        self.rank = rank
        self._world_size = world_size
        self._host = host
        self._token = token
        self._commands = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._ready = threading.Event()
        self._startup_error = None
        self._stopping = False
        self._submitted = {}  # group -> Works of its collectives given to other threads
        self._workers = {}    # group -> fastpath.Worker, for its async same-host calls
        self.sends = Sends(self)  # point-to-point sends, from any thread
        self.address = None
        self.card = None  # what peers need to reach this rank: address, host, shared memory
        self._thread = threading.Thread(target=self._run, name=f"dtrain-engine-{rank}",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    # --- called from any thread ---------------------------------------------------------------
    def call(self, fn, *args):
        """Run ``fn(*args)`` on the engine thread, soon."""
        self._check_open()
        self._commands.append((fn, args))
        os.write(self._wake_w, b"x")

    def _check_open(self):
        if self._stopping:
            raise DistBackendError("the process group was destroyed; call "
                                   "init_process_group() again before communicating")

    def submit(self, run):
        """Start a collective. Among processes of this host it runs through shared memory
        (fastpath.py): right here, in the caller's thread, or with async_op on the group's
        worker thread. The others go to the engine thread, through the worker when calls
        given to it are still running, so that calls in shared memory and on the engine never
        overlap."""
        group = run.group.id
        way = fastpath.choose(self, run)
        earlier = [w for w in self._submitted.pop(group, ()) if not w._done.is_set()]
        if way is not None and not run.async_op:
            fastpath.run_here(self, run, way, earlier)
            return
        self._submitted[group] = earlier + [run.work]
        worker = self._workers.get(group)
        if way is None and (worker is None or not worker.busy()):
            self.call(self.runs.start, run)
            return
        self._check_open()
        if worker is None:
            worker = self._workers[group] = fastpath.Worker(f"dtrain-group-{group}-{self.rank}")
        if way is None:
            worker.put(lambda: fastpath.start_on_engine(self, run, earlier))
        else:
            worker.put(lambda: fastpath.run_here(self, run, way, earlier))

    def note_call(self, group, seq, signature):
        """Record a collective this rank runs outside the engine thread (and waits long for),
        to compare with what peers send for it."""
        self.call(self.runs.noted, group, seq, signature)

    def peer_ranks(self):
        return list(self._peers)

    def broken(self, group):
        """The error that made ``group`` unusable, or None."""
        return self._broken.get(group)

    def gone(self, rank):
        """Why peer ``rank`` is gone, or None."""
        return self._watch.gone.get(rank)

    def close(self, timeout=10.0):
        """Stop the thread, flushing queued messages for up to a few seconds."""
        if self._stopping:
            return
        self._stopping = True  # first: a command posted after this is refused, not lost
        for worker in self._workers.values():  # before the lanes they read are unmapped
            worker.close(timeout)
        self._commands.append((self._stop, ()))
        os.write(self._wake_w, b"x")
        self._thread.join(timeout)
        os.close(self._wake_r)
        os.close(self._wake_w)

    # --- engine thread --------------------------------------------------------------------------
    def _run(self):
        try:
            self._setup()
        except Exception as e:  # reported to the constructor
            self._startup_error = DistBackendError(f"rank {self.rank} could not open its data "
                                                   f"socket on {self._host}: {e}")
            self._ready.set()
            return
        self._ready.set()
        poller = self._poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        if self._zap is not None:
            poller.register(self._zap, zmq.POLLIN)
        while not self._stopped:
            try:
                self._turn(poller)
            except Exception as e:  # a bug here must fail the work, not kill the engine
                try:
                    self._fail_all(DistBackendError(f"internal error in the engine on rank "
                                                    f"{self.rank}: {e!r}"))
                except Exception:
                    pass
        self._teardown()

    def _turn(self, poller):
        """One turn of the loop: wait for something, then handle all of it."""
        events = dict(poller.poll(self._poll_timeout_ms()))
        for mon in self._watch.monitors:
            if mon in events:
                self._watch.read(mon)
        if self._zap in events:
            while self._zap.poll(0):
                self._guard.answer(self._zap)
        if self._wake_r in events:
            try:
                os.read(self._wake_r, 65536)
            except BlockingIOError:
                pass
        while self._commands:
            fn, args = self._commands.popleft()
            fn(*args)
        if self._router in events:
            self._receive_all()
        for rank in self._watch.due():
            self._peer_gone(rank)
        for rank in self._watch.to_ping():
            self.send(rank, _PING, _EMPTY)
        if self.runs:
            self.runs.turn()
        self._check_deadlines()

    def _setup(self):
        self._ctx = zmq.Context()
        # each peer takes a DEALER and its monitor's pair of sockets, and a few file
        # descriptors: libzmq's default of 1,023 sockets would stop a job near 340 ranks
        self._ctx.set(zmq.MAX_SOCKETS, max(1023, 4 * self._world_size + 64))
        _allow_files(6 * self._world_size + 256)
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.RCVHWM, 0)
        self._router.setsockopt(zmq.LINGER, 0)
        self._zap = None
        self._client_guards = {}  # crosses hosts -> the token's client side
        if self._token:  # connections prove the job token before any message is read
            self._zap = self._ctx.socket(zmq.REP)
            self._zap.setsockopt(zmq.LINGER, 0)
            self._zap.bind(auth.ZAP_ENDPOINT)
            self._guard = auth.Guard(self._token, auth.crosses_hosts(self._host))
            self._guard.serve(self._router)
        port = self._router.bind_to_random_port(f"tcp://{self._host}")
        self.address = f"tcp://{self._host}:{port}"
        host = shm.host_key() if shm.enabled() else None
        own = shm.Lanes.create(self._world_size) if host else None
        self.shared = shm.SharedHost(self.rank, own)
        self.card = {"address": self.address, "host": host, "lanes": own and own.path,
                     "bell": own and own.bell_path}
        self._peers = {}
        self.pending = {}     # id(work) -> (work, on_timeout)
        self._tracked = {}     # rank -> Works waiting on zero-copy sends to it
        self._receives = Receives(self.rank, self.pending)
        self.runs = Runs(self)
        self._broken = {}      # group -> error that made it unusable
        self._watch = PeerWatch()
        self._stopped = False

    def _stop(self):
        bye = wire.encode(wire.BYE, 0, 0, 0, 0, 0, None, (), -1, 0)
        for rank in self._peers:
            self.send(rank, bye, _EMPTY)
        self._stopped = True

    def _teardown(self):
        self._fail_all(DistBackendError("the process group was destroyed while this "
                                        "operation was in flight"))
        self.sends.wait_for_readers(lambda rank: rank in self._watch.gone, self._receive_all)
        self._receive_all()  # goodbyes that came meanwhile: no lingering for those peers
        self._watch.close(self._peers.values())
        for rank, sock in self._peers.items():
            # let queued messages reach the peers that can still take them
            sock.close(linger=0 if rank in self._watch.gone else 3000)
        self._router.close(linger=0)
        if self._zap is not None:
            self._zap.close()
        # the rings' views of the mappings go first, or these could not close
        self.sends.close()
        self._receives.add_rings(None, None)
        self.shared.close()
        self._ctx.term()

    def connect(self, addresses, lanes=None):
        """Connect to every peer's data socket. ``addresses``: global rank -> address;
        ``lanes``: global rank -> the mapped lanes of the peers on this host."""
        self.shared.add_peers(lanes)
        if lanes and shm.STORES_IN_ORDER:
            own = self.shared.own
            self._receives.add_rings({r: rings.Inbound(own, peer, self.rank, r)
                                      for r, peer in lanes.items()}, own.bell)
            self.sends.rings.update({r: rings.Outbound(own, peer, self.rank, r)
                                     for r, peer in lanes.items()})
        for rank, address in addresses.items():
            if rank == self.rank or rank in self._peers:
                continue
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.IDENTITY, b"%d" % self.rank)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)
            if self._token:
                host = address.rsplit(":", 1)[0].split("//", 1)[1]
                self._client_guard(auth.crosses_hosts(host)).connect_as_client(sock)
            self._poller.register(self._watch.watch(rank, sock), zmq.POLLIN)
            sock.connect(address)
            self._peers[rank] = sock

    def _client_guard(self, encrypted):
        """The token's client side, made once per kind (its keys cost a derivation each)."""
        if encrypted not in self._client_guards:
            self._client_guards[encrypted] = auth.Guard(self._token, encrypted)
        return self._client_guards[encrypted]

    def send(self, dst, header, payload):
        """Send one message; returns a ZeroMQ tracker when the payload went without a copy."""
        sock = self._peers[dst]
        self._watch.spoke[dst] = time.monotonic()
        buf = memoryview(payload).cast("B") if payload.nbytes else b""
        if payload.nbytes >= ZERO_COPY_MIN:
            return sock.send_multipart([header, buf], copy=False, track=True)
        sock.send_multipart([header, buf])
        return None

    def _receive_all(self):
        heard = self._watch.heard
        now = time.monotonic()
        while True:
            try:
                ident, head, payload = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            except ValueError:  # not three frames: not one of ours
                continue
            try:
                src = int(ident.bytes)
                header = wire.decode(head.bytes, len(payload))
            except ValueError:
                continue  # not a dtrain message; ignore it
            if src in self._peers:
                heard[src] = now
            if header.kind == wire.P2P:
                self._receives.deliver(src, header, payload)
            elif header.kind == wire.COLLECTIVE:
                self.runs.deliver(src, header, payload)
            elif header.kind == wire.PROBE:
                self.runs.probed(src, header)
            elif header.kind == wire.BYE:
                # a peer that lost another may leave at once: name the lost one first, as the
                # cause, not this one's leaving (whose closed connection, if already seen,
                # is its goodbye's, not a loss)
                self._watch.lost.pop(src, None)
                for rank in self._watch.due(force=True):
                    self._peer_gone(rank)
                self._watch.said_goodbye(src)
                self._peer_gone(src)
            elif header.kind == wire.ABORT:
                text = bytes(payload.buffer).decode("utf-8", "replace")
                cls = _ABORT_KINDS[header.op] if header.op < len(_ABORT_KINDS) else DistPeerError
                self.break_group(header.group, cls(text), notify=False)

    # --- point-to-point -------------------------------------------------------------------------
    def _send_now(self, dst, header, array, work):
        """Send a numbered point-to-point message (Sends.post). NOTE: even if its group broke
        since it was posted: the peer counts on every number arriving (p2p.py)."""
        if self.refuse(None, work, (dst,)):
            return
        tracker = self.send(dst, header, array)
        if tracker is not None:
            work._trackers.append(tracker)
            self.track(dst, work)
        work._finish()

    def track(self, dst, work):
        """``work`` waits for zero-copy sends to ``dst``: if ``dst`` goes, it must not wait for
        ever (ZeroMQ would keep the message for a reconnect that never comes)."""
        works = self._tracked.setdefault(dst, [])
        if len(works) >= 64:
            works[:] = [w for w in works if not all(t.done for t in w._trackers)]
        works.append(work)

    def post_recv(self, src, group, tag, array, work):
        """Post a receive (any thread). A message that came before its sender left is still
        received; only then is a receive from a rank that is gone refused."""
        self._check_open()
        if self.refuse(group, work):
            return
        self._receives.post(src, group, tag, array, work,
                            lambda: src is not None and self.refuse(group, work, (src,)))

    # --- groups and peers -------------------------------------------------------------------------
    def break_group(self, group, error, notify=True, peers=()):
        """Make a group unusable: fail what waits on it and, if ``notify``, tell ``peers``."""
        if group in self._broken:
            return
        self._broken[group] = error
        if notify:
            kind = next(i for i, cls in enumerate(_ABORT_KINDS) if isinstance(error, cls)) \
                if isinstance(error, _ABORT_KINDS) else 2
            text = np.frombuffer(str(error).encode("utf-8"), dtype=np.uint8)
            header = wire.encode(wire.ABORT, group, 0, 0, 0, kind, None, (), -1, text.nbytes)
            for peer in peers:
                if peer != self.rank and peer in self._peers:
                    self.send(peer, header, text)
        for run in self.runs.in_group(group):
            run.fail(error)
        self._receives.fail(lambda work: error, group=group)

    def refuse(self, group, work, ranks=()):
        """Fail ``work`` at once if its group is broken or a rank it needs is gone."""
        error = self._broken.get(group)
        if error is None:
            gone = [r for r in ranks if r in self._watch.gone]
            if gone:
                error = DistPeerError(f"{work.description} on rank {self.rank} cannot complete: "
                                      f"{self._watch.gone[gone[0]]}.")
        if error is not None:
            work._finish(error)
            return True
        return False

    def _peer_gone(self, rank):
        """Fail everything that waits for ``rank``; groups with it can no longer communicate."""
        why = self._watch.gone[rank]
        for work in self._tracked.pop(rank, ()):
            work._abandon(DistPeerError(f"{work.description} on rank {self.rank} cannot "
                                        f"complete: {why}."))
        for run in self.runs.with_rank(rank):
            self.break_group(run.group.id, DistPeerError(
                f"{run.name} on rank {self.rank} (group {run.group.id}, op #{run.seq}) cannot "
                f"complete: {why}."), notify=False)
        self._receives.fail(lambda work: DistPeerError(
            f"{work.description} on rank {self.rank} cannot complete: {why}."), src=rank)

    # --- deadlines ------------------------------------------------------------------------------
    def _poll_timeout_ms(self):
        if not self.pending:
            return _POLL_MAX_MS if self._watch.next_time() is None else int(GRACE * 1000)
        # (a list first: callers' threads add receives to ``pending`` meanwhile)
        soonest = min(work.deadline for work, _ in list(self.pending.values()))
        if self._watch.next_time() is not None:
            soonest = min(soonest, self._watch.next_time())
        soonest = self.runs.next_time(soonest)
        return max(0, min(_POLL_MAX_MS, int((soonest - time.monotonic()) * 1000) + 1))

    def _check_deadlines(self):
        if not self.pending:
            return
        now = time.monotonic()
        for key, (work, on_timeout) in list(self.pending.items()):
            if work.deadline <= now:
                self.pending.pop(key, None)
                on_timeout()

    def _fail_all(self, error):
        for work, _ in list(self.pending.values()):
            work._finish(error)
        self.pending.clear()
        self.runs.fail_all(error)

