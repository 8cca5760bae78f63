"""Tests for dtrain.distributed.store: the rendezvous key-value store.

Behaviour tests run twice through the `impl` fixture, on dtrain's TCPStore and on
torch.distributed.TCPStore (skipped without torch), so each expectation is torch's. Tests of
what torch lacks or does differently (tokens, closing, error texts) run on dtrain only.
Multi-process tests start real processes on 127.0.0.1 that run `_child` below.
"""
import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from dtrain.distributed import store as store_module
from dtrain.distributed.errors import DistStoreError, DistTimeoutError
from dtrain.distributed import DistStoreTimeoutError, TCPStore

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def seconds(s):
    return timedelta(seconds=s)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_threads():
    return [t for t in threading.enumerate() if t.name.startswith("dtrain-store-server")]


@pytest.fixture(params=["dtrain", pytest.param("torch", marks=pytest.mark.torch)])
def impl(request):
    """(TCPStore, the DistStoreError it raises) of dtrain, then of torch (skipped without it)."""
    if request.param == "dtrain":
        return TCPStore, DistStoreError
    dist = request.getfixturevalue("torch").distributed
    return dist.TCPStore, dist.DistStoreError


@pytest.fixture
def master(impl):
    store = impl[0](HOST, 0, is_master=True, timeout=seconds(2))
    yield store
    getattr(store, "close", lambda: None)()  # torch's store closes when dropped


@pytest.fixture
def dtrain_master():
    with TCPStore(HOST, 0, is_master=True, timeout=seconds(2)) as store:
        yield store


def client_of(master, cls=TCPStore, **kw):
    return cls(HOST, master.port, is_master=False, timeout=kw.pop("timeout", seconds(2)), **kw)


def raises_within(limit, error, fn, *args):
    start = time.monotonic()
    with pytest.raises(error) as info:
        fn(*args)
    took = time.monotonic() - start
    assert took < limit, f"{fn.__name__} raised after {took:.2f} s, expected under {limit} s"
    return str(info.value), took


# --- every method, with torch's semantics -----------------------------------------------------

def test_set_get_str_and_bytes(master):
    master.set("a", "text")
    master.set("b", b"\x00\xffraw")
    master.set("é/ключ", "värde")
    master.set("empty", b"")
    assert master.get("a") == b"text"
    assert master.get("b") == b"\x00\xffraw"
    assert master.get("é/ключ") == "värde".encode()
    assert master.get("empty") == b""
    master.set("a", b"again")
    assert master.get("a") == b"again"


def test_keys_must_be_str(master):
    with pytest.raises(TypeError):
        master.set(1, "x")


def test_add_returns_new_value_stored_as_ascii(master):
    assert master.add("c", 5) == 5  # a missing counter starts at 0
    assert master.add("c", -2) == 3
    assert master.get("c") == b"3"
    assert master.add("zero", 0) == 0 and master.get("zero") == b"0"
    assert master.add("big", 2**40) == 2**40
    master.set("preset", "41")
    assert master.add("preset", 1) == 42


@pytest.mark.parametrize("before, expected, desired, returned, after", [
    (None, "", "v", b"v", b"v"),    # missing key matches an empty expected value
    (None, "z", "v", b"z", None),   # ...and no other: expected comes back, nothing written
    ("x", "x", "y", b"y", b"y"),    # match: swap, return desired
    ("x", "q", "z", b"x", b"x"),    # mismatch: return the current value
    ("", "", "n", b"n", b"n"),      # an existing empty value matches ""
    (None, "", "", b"", b""),       # empty desired value on a missing key creates it
    ("x", b"x", b"w", b"w", b"w"),  # bytes work like str
])
def test_compare_set(master, before, expected, desired, returned, after):
    if before is not None:
        master.set("k", before)
    assert master.compare_set("k", expected, desired) == returned
    assert master.check(["k"]) == (after is not None)
    if after is not None:
        assert master.get("k") == after


def test_delete_key(master):
    master.set("a", "1")
    assert master.delete_key("a") is True
    assert master.delete_key("a") is False
    assert master.delete_key("never") is False
    assert not master.check(["a"])


def test_num_keys(master):
    assert master.num_keys() == 0
    master.set("a", "1")
    master.add("b", 1)
    master.compare_set("c", "", "x")
    assert master.num_keys() == 3
    master.set("a", "overwrite")
    assert master.num_keys() == 3
    master.delete_key("a")
    assert master.num_keys() == 2


@pytest.mark.parametrize("master_waits", [True, False])
def test_num_keys_counts_the_key_that_coordinates_workers(impl, master_waits):
    # torch: "one greater than the number of keys added by set() and add() since one key is
    # used to coordinate all the workers", once a store with a world_size has joined
    cls = impl[0]
    m = cls(HOST, 0, 2, is_master=True, timeout=seconds(2), wait_for_workers=False)
    c = cls(HOST, m.port, 2, is_master=False, timeout=seconds(2), wait_for_workers=master_waits)
    assert m.num_keys() == (1 if master_waits else 0)
    m.set("a", "1")
    assert c.num_keys() == (2 if master_waits else 1)
    for s in (c, m):
        getattr(s, "close", lambda: None)()


def test_check(master):
    master.set("a", "1")
    master.set("b", "2")
    assert master.check(["a"]) and master.check(["a", "b"]) and master.check([])
    assert not master.check(["a", "nope"])


def test_append(master):
    master.append("log", "x")
    master.append("log", b"y")
    assert master.get("log") == b"xy"


def test_multi_set_multi_get(master):
    master.multi_set(["p", "q"], ["1", b"2"])
    assert master.multi_get(["q", "p"]) == [b"2", b"1"]


def test_get_of_a_missing_key_times_out_naming_it(impl, master):
    master.set_timeout(seconds(0.5))
    message, took = raises_within(2.0, impl[1], master.get, "missing")
    assert "missing" in message and took >= 0.45


def test_wait_on_several_keys(impl, master):
    other = client_of(master, impl[0])
    timer = threading.Timer(0.2, lambda: (other.set("k1", "1"), other.set("k2", "2")))
    timer.start()
    master.wait(["k1", "k2"])  # parked until both exist
    timer.join()
    master.wait(["k1", "k2"], seconds(0.1))  # present: returns at once
    message, took = raises_within(2.0, impl[1], master.wait, ["k1", "k3", "k4"], seconds(0.3))
    assert "k3" in message and "k4" in message and took >= 0.25
    getattr(other, "close", lambda: None)()


def test_timeout_property_and_set_timeout(impl, master):
    assert master.timeout == seconds(2)
    master.set_timeout(seconds(0.3))
    assert master.timeout == seconds(0.3)
    raises_within(1.5, impl[1], master.get, "missing")


def test_host_and_port(impl, master):
    assert master.host == HOST and 0 < master.port < 65536
    client = client_of(master, impl[0])
    assert client.port == master.port and client.host == HOST


def test_get_blocks_until_another_client_sets_the_key(impl, master):
    other = client_of(master, impl[0])
    threading.Timer(0.3, other.set, ("late", "here")).start()
    start = time.monotonic()
    assert master.get("late") == b"here"
    assert 0.25 < time.monotonic() - start < 1.5
    getattr(other, "close", lambda: None)()


def test_clients_in_threads_rendezvous(impl, master):
    n, errors, seen = 4, [], {}

    def rank(r):
        try:
            store = client_of(master, impl[0], timeout=seconds(5))
            store.set(f"addr/{r}", f"tcp://host:{5000 + r}")
            store.wait([f"addr/{i}" for i in range(n)])
            seen[r] = [store.get(f"addr/{i}") for i in range(n)]
            store.add("arrived", 1)
            getattr(store, "close", lambda: None)()
        except Exception as e:  # pragma: no cover - shown by the assert below
            errors.append(e)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors
    expected = [f"tcp://host:{5000 + i}".encode() for i in range(n)]
    assert seen == {r: expected for r in range(n)}
    assert master.get("arrived") == b"4"


def test_master_waits_for_workers_until_timeout(impl):
    message, took = raises_within(3.0, impl[1], impl[0], HOST, 0, 3, True, seconds(1))
    assert "1/3" in message and took >= 0.9


# --- dtrain only ------------------------------------------------------------------------------

def test_store_timeouts_are_both_store_and_timeout_errors(dtrain_master):
    dtrain_master.set_timeout(seconds(0.2))
    with pytest.raises(DistStoreTimeoutError) as info:
        dtrain_master.get("missing")
    assert isinstance(info.value, DistStoreError) and isinstance(info.value, DistTimeoutError)
    assert isinstance(info.value, TimeoutError)
    assert f"{HOST}:{dtrain_master.port}" in str(info.value)


def test_wait_names_only_the_missing_keys(dtrain_master):
    dtrain_master.set("k1", "1")
    with pytest.raises(DistStoreTimeoutError, match=r"still missing: 'k2'\. Check"):
        dtrain_master.wait(["k1", "k2"], seconds(0.2))


def test_add_on_a_non_integer_is_refused_and_the_store_keeps_serving(dtrain_master):
    dtrain_master.set("name", "alice")
    with pytest.raises(DistStoreError, match="'name'.*is not an integer"):
        dtrain_master.add("name", 1)
    assert dtrain_master.add("n", 2) == 2


def test_one_client_shared_by_threads(dtrain_master):
    client = client_of(dtrain_master)
    results = []

    def adds():
        results.extend(client.add("n", 1) for _ in range(100))

    threads = [threading.Thread(target=adds) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(results) == list(range(1, 401))
    client.close()


def test_a_late_reply_is_not_taken_for_the_next_one(dtrain_master, monkeypatch):
    # the client gives up before the server answers; that answer must be skipped later
    monkeypatch.setattr(store_module, "_GRACE", -0.2)
    with pytest.raises(DistStoreError, match="did not answer wait"):
        dtrain_master.wait(["nope"], seconds(0.3))
    time.sleep(0.3)  # the server's timeout reply to the abandoned wait is now queued
    monkeypatch.setattr(store_module, "_GRACE", 1.0)
    dtrain_master.set("k", "v")
    assert dtrain_master.get("k") == b"v"
    assert dtrain_master.add("n", 7) == 7


def test_unreachable_address_is_named_within_the_timeout():
    port = free_port()  # bound and released: nothing listens there now
    message, _ = raises_within(2.0, DistStoreError, TCPStore, HOST, port, None, False,
                               seconds(1))
    assert f"{HOST}:{port}" in message and "MASTER_ADDR" in message
    assert "connection refused" in message


def test_a_server_that_starts_late_is_found():
    port, found = free_port(), []
    thread = threading.Thread(target=lambda: found.append(
        TCPStore(HOST, port, timeout=seconds(5))))
    thread.start()
    time.sleep(0.4)
    with TCPStore(HOST, port, is_master=True, timeout=seconds(5)) as master:
        thread.join(timeout=5)
        assert found and found[0].port == port
        found[0].set("hello", "world")
        assert master.get("hello") == b"world"
        found[0].close()


def test_get_fails_when_the_master_is_gone(dtrain_master):
    client = client_of(dtrain_master, timeout=seconds(0.3))
    dtrain_master.close()
    message, _ = raises_within(3.0, DistStoreError, client.get, "k")
    assert "did not answer" in message
    client.close()


def test_token_is_checked(dtrain_master):
    with TCPStore(HOST, 0, is_master=True, timeout=seconds(2), token=b"s3cret") as guarded:
        with TCPStore(HOST, guarded.port, timeout=seconds(2), token=b"s3cret") as friend:
            friend.set("k", "v")
            assert guarded.get("k") == b"v"
        for wrong in (b"guess", None):
            with pytest.raises(DistStoreError, match="token does not match"):
                TCPStore(HOST, guarded.port, timeout=seconds(2), token=wrong)
    with pytest.raises(DistStoreError, match="token does not match"):
        TCPStore(HOST, dtrain_master.port, timeout=seconds(2), token=b"unasked")


def test_bind_conflict_is_explained(dtrain_master):
    with pytest.raises(DistStoreError, match="MASTER_PORT"):
        TCPStore(HOST, dtrain_master.port, is_master=True, timeout=seconds(1))


def test_close_stops_the_server_and_frees_the_port():
    before = len(server_threads())
    with TCPStore(HOST, 0, is_master=True, timeout=seconds(1)) as master:
        port = master.port
        assert len(server_threads()) == before + 1
    master.close()  # twice is fine
    assert len(server_threads()) == before
    with pytest.raises(DistStoreError, match="closed"):
        master.get("k")
    TCPStore(HOST, port, is_master=True, timeout=seconds(1)).close()  # the port is free again


def test_a_dropped_master_stops_its_server():
    before = len(server_threads())
    master = TCPStore(HOST, 0, is_master=True, timeout=seconds(1))
    assert len(server_threads()) == before + 1
    del master
    gc.collect()
    assert len(server_threads()) == before


# --- real processes ---------------------------------------------------------------------------

def _child(role, rank, port, *args):
    """Entry point of the processes that the multi-process tests start; prints one JSON line."""
    rank, port = int(rank), int(port)
    if role == "rendezvous":  # rank 0 hosts the store and waits for all to join
        n = int(args[0])
        store = TCPStore(HOST, port, n, is_master=rank == 0, timeout=seconds(15))
        store.set(f"addr/{rank}", f"rank{rank}")
        store.wait([f"addr/{r}" for r in range(n)])
        addrs = [store.get(f"addr/{r}").decode() for r in range(n)]
        store.set(f"done/{rank}", "1")
        if rank == 0:  # the host stays until everyone has finished with the store
            store.wait([f"done/{r}" for r in range(n)])
        print(json.dumps(addrs))
    elif role == "count":
        store = TCPStore(HOST, port, timeout=seconds(15))
        print(json.dumps([store.add("counter", 1) for _ in range(int(args[0]))]))
    elif role == "master":  # joins with world_size and reports when its constructor returned
        store = TCPStore(HOST, port, int(args[0]), is_master=True, timeout=seconds(15))
        ready = time.time()
        store.wait(["release"])
        print(json.dumps(ready))
    elif role == "worker":
        TCPStore(HOST, port, int(args[0]), timeout=seconds(15)).set(f"w{rank}", "1")
        print(json.dumps("joined"))
    elif role == "token":
        token = args[0].encode() if args else None
        try:
            TCPStore(HOST, port, timeout=seconds(5), token=token).set(f"t{rank}", "in")
            print(json.dumps("accepted"))
        except DistStoreError as e:
            print(json.dumps(str(e)))
    elif role == "leave_open":  # exits without closing a master, a client and a blocked get
        master = TCPStore(HOST, 0, is_master=True, timeout=seconds(60))
        client = TCPStore(HOST, master.port, timeout=seconds(60))
        threading.Thread(target=client.get, args=("never",), daemon=True).start()
        time.sleep(0.2)
        print(json.dumps(master.num_keys()))


class Children:
    """Real processes running `_child`; on leaving, any still running are killed. `results`
    waits for all of them, and fails showing every child's stderr if one failed."""

    def __init__(self):
        self.procs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()

    def start(self, role, rank, port, *args):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [ROOT, HERE] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        code = "import sys, test_store; test_store._child(*sys.argv[1:])"
        self.procs.append(subprocess.Popen(
            [sys.executable, "-c", code, role, str(rank), str(port), *map(str, args)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))

    def results(self, timeout=20):
        deadline = time.monotonic() + timeout
        outs = []
        for p in self.procs:
            try:
                out, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                out, err = "", f"(killed: still running after {timeout} s)"
                p.kill()
            outs.append((p.returncode, out, err))
        failed = [(i, rc, err) for i, (rc, _, err) in enumerate(outs) if rc != 0]
        if failed:
            pytest.fail("\n".join(f"child {i} exited with {rc}:\n{err}" for i, rc, err in failed))
        return [json.loads(out.strip().splitlines()[-1]) for _, out, _ in outs]


@pytest.mark.timeout(30)
def test_processes_rendezvous_through_the_store():
    n, port = 4, free_port()
    with Children() as kids:
        for rank in range(n):
            kids.start("rendezvous", rank, port, n)
        results = kids.results()
    assert results == [[f"rank{r}" for r in range(n)]] * n


@pytest.mark.timeout(30)
def test_add_is_atomic_across_processes():
    with TCPStore(HOST, 0, is_master=True, timeout=seconds(10)) as master:
        with Children() as kids:
            for rank in range(4):
                kids.start("count", rank, master.port, 200)
            results = kids.results()
        assert master.get("counter") == b"800"
    assert sorted(v for r in results for v in r) == list(range(1, 801))  # each value once


@pytest.mark.timeout(30)
def test_master_waits_for_workers_across_processes():
    port = free_port()
    with Children() as kids:
        kids.start("master", 0, port, 3)
        time.sleep(1.0)
        workers_started = time.time()
        kids.start("worker", 1, port, 3)
        kids.start("worker", 2, port, 3)
        with TCPStore(HOST, port, timeout=seconds(15)) as store:
            store.wait(["w1", "w2"])
            store.set("release", "1")
            ready, *joined = kids.results()
    assert ready > workers_started and joined == ["joined", "joined"]


@pytest.mark.timeout(30)
def test_token_mismatch_is_rejected_across_processes():
    with TCPStore(HOST, 0, is_master=True, timeout=seconds(10), token=b"job-42") as master:
        with Children() as kids:
            kids.start("token", 0, master.port, "job-42")
            kids.start("token", 1, master.port, "job-41")
            kids.start("token", 2, master.port)
            accepted, wrong, missing = kids.results()
        assert accepted == "accepted" and master.check(["t0"])
        assert not master.check(["t1"]) and not master.check(["t2"])
    for message in (wrong, missing):
        assert "token does not match" in message and f"{HOST}:{master.port}" in message


@pytest.mark.timeout(30)
def test_a_process_with_live_stores_exits():
    with Children() as kids:
        kids.start("leave_open", 0, 0)
        assert kids.results(timeout=10) == [0]
