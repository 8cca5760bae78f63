"""Bad input to dtrain.distributed that tests elsewhere do not cover (docs/errors.md lists them
all): a world size or rank that ranks disagree on, an unreachable or busy master, non-tensor
arguments, a wrong group, a wrong receive buffer, and mismatched collectives not yet covered by
test_dist_errors.py. Every involved rank must get a clear error, and none may hang.
"""
import socket
import time
from datetime import timedelta

import numpy as np
import pytest

import dtrain.distributed as dist
from multiproc import free_port, run_ranks


def errors_of(results, ranks):
    """rank -> 'Type: message' for the given ranks; fails if one of them did not raise."""
    out = {}
    for rank in ranks:
        assert results[rank][0] == "error", f"rank {rank} raised nothing: {results[rank]}"
        out[rank] = results[rank][1]
    return out


def within(seconds, fn, *args, **kwargs):
    start = time.monotonic()
    result = fn(*args, **kwargs)
    took = time.monotonic() - start
    assert took < seconds, f"took {took:.1f} s (limit {seconds} s): a hang"
    return result


# --- start-up: the environment and the rendezvous -------------------------------------------

@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.delenv("DTRAIN_STORE_HOSTED", raising=False)
    yield monkeypatch
    dist.destroy_process_group()


@pytest.mark.timeout(20)
def test_unreachable_master_addr_is_named_within_the_timeout(env):
    """A non-zero rank whose MASTER_ADDR:MASTER_PORT has no store behind it."""
    port = free_port()  # bound and released: nothing listens there now
    env.setenv("MASTER_PORT", str(port))
    env.setenv("RANK", "1")
    env.setenv("WORLD_SIZE", "2")
    with pytest.raises(dist.DistStoreError) as e:
        within(8, dist.init_process_group, "gloo", timeout=timedelta(seconds=2))
    assert f"127.0.0.1:{port}" in str(e.value) and "MASTER_ADDR" in str(e.value), str(e.value)
    assert not dist.is_initialized()


@pytest.mark.timeout(20)
def test_unresolvable_master_addr_is_named(env):
    env.setenv("MASTER_ADDR", "no-such-host.invalid")
    env.setenv("RANK", "1")
    env.setenv("WORLD_SIZE", "2")
    with pytest.raises(dist.DistError) as e:
        within(8, dist.init_process_group, "gloo", timeout=timedelta(seconds=2))
    assert "'no-such-host.invalid' does not resolve" in str(e.value), str(e.value)
    assert not dist.is_initialized()


@pytest.mark.timeout(20)
def test_master_port_in_use_is_named(env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env.setenv("MASTER_PORT", str(port))
        with pytest.raises(dist.DistStoreError) as e:
            within(8, dist.init_process_group, "gloo", timeout=timedelta(seconds=2))
    assert str(port) in str(e.value) and "MASTER_PORT" in str(e.value), str(e.value)
    assert not dist.is_initialized()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("value", ["soon", "1e", "-"])
def test_malformed_dtrain_timeout_is_named(env, value):
    env.setenv("DTRAIN_TIMEOUT", value)
    with pytest.raises(ValueError, match="DTRAIN_TIMEOUT"):
        dist.init_process_group("gloo")
    assert not dist.is_initialized()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("timeout", [timedelta(seconds=-1), timedelta(0), "soon", -5])
def test_bad_timeout_argument_is_refused(env, timeout):
    """A timeout that is not a positive number of seconds is refused up front, naming timeout
    (not reported later as an unreachable store)."""
    with pytest.raises((ValueError, TypeError), match="timeout"):
        dist.init_process_group("gloo", timeout=timeout)
    assert not dist.is_initialized()


def init_with(rank, world, settings):
    """Set this rank's environment from settings[rank], then init and run one all_reduce."""
    import os

    import dtrain.distributed as dist
    os.environ.update(settings.get(rank, {}))
    dist.init_process_group("gloo")
    x = np.ones(1)
    dist.all_reduce(x)
    dist.destroy_process_group()
    return x[0]


@pytest.mark.timeout(30)
def test_world_size_that_differs_between_ranks_fails_on_every_rank():
    results = within(15, run_ranks, init_with, 2, {1: {"WORLD_SIZE": "3"}}, timeout=15,
                     env={"DTRAIN_TIMEOUT": "3"}, expect_failure=True)
    for rank, message in errors_of(results, [0, 1]).items():
        # whichever rank notices first, the message names both sizes
        assert "world_size 3" in message and "world_size 2" in message, f"rank {rank}: {message}"
        assert "same world size" in message, f"rank {rank}: {message}"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("claimed", [1, 0])
def test_two_processes_claiming_one_rank_fail_on_every_rank(claimed):
    """World 3: the process meant to be rank 2 says RANK=claimed. Every process, not just the
    second claimant, must learn that rank `claimed` is claimed twice (not a bare timeout)."""
    results = within(15, run_ranks, init_with, 3, {2: {"RANK": str(claimed)}}, timeout=15,
                     env={"DTRAIN_TIMEOUT": "3"}, expect_failure=True)
    problems = [f"rank-process {p}: {m}" for p, m in errors_of(results, [0, 1, 2]).items()
                if f"claim rank {claimed}" not in m]
    assert not problems, "\n".join(problems)


# --- arguments once initialized --------------------------------------------------------------

def refused(error, call, *needles):
    """'ok' if call raises error naming every needle, else a description of what happened."""
    try:
        call()
    except error as e:
        missing = [n for n in needles if n not in str(e)]
        return f"message lacks {missing}: {e}" if missing else "ok"
    except Exception as e:
        return f"expected {error.__name__}, got {type(e).__name__}: {e}"
    return f"expected {error.__name__}, nothing was raised"


def non_tensors_and_groups(rank, world):
    import dtrain
    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    t = np.zeros(3, np.float32)
    peer = (rank + 1) % world
    out = {}
    for what, bad in [("list", [1.0, 2.0]), ("float", 3.0), ("None", None), ("str", "x")]:
        for name, call in [
            ("all_reduce", lambda: dist.all_reduce(bad)),
            ("broadcast", lambda: dist.broadcast(bad, src=0)),
            ("reduce", lambda: dist.reduce(bad, dst=0)),
            ("all_gather tensor", lambda: dist.all_gather([t] * world, bad)),
            ("all_gather list item", lambda: dist.all_gather([bad] * world, t)),
            ("send", lambda: dist.send(bad, dst=peer)),
            ("recv", lambda: dist.recv(bad, src=peer)),
            ("isend", lambda: dist.isend(bad, dst=peer)),
        ]:
            out[f"{name}({what})"] = refused(TypeError, call, type(bad).__name__)
    out["all_gather(tensor_list=tensor)"] = refused((TypeError, ValueError),
                                                    lambda: dist.all_gather(t, t))
    out["group='x'"] = refused(TypeError, lambda: dist.all_reduce(t, group="x"), "str")
    out["group=0"] = refused(TypeError, lambda: dist.all_reduce(t, group=0), "int")
    out["new_group out of range"] = refused(ValueError, lambda: dist.new_group([0, world]),
                                            str(world))
    out["op='total'"] = refused(ValueError, lambda: dist.all_reduce(t, op="total"), "total")
    g = dist.new_group([0])  # every rank calls new_group; only rank 0 is a member
    if rank != 0:
        out["non-member"] = refused(ValueError, lambda: dist.all_reduce(t, group=g),
                                    "not a member")
    if world > 1:  # a receive buffer of the wrong size, dtype or shape
        if rank == 0:
            dist.send(np.ones(3, np.float32), dst=1)
            dist.send(np.ones(3, np.float32), dst=1, tag=1)
            dist.send(np.ones((2, 3), np.float32), dst=1, tag=2)
        elif rank == 1:
            for label, buf, tag, needles in [
                ("recv too small", np.zeros(2, np.float32), 0, ["[3]", "[2]"]),
                ("recv wrong dtype", np.zeros(3, np.float64), 1, ["float32", "float64"]),
                ("recv wrong shape", np.zeros(6, np.float32), 2, ["[2, 3]", "[6]"]),
            ]:
                out[label] = within(5, refused, dist.DistMismatchError,
                                    lambda: dist.recv(buf, src=0, tag=tag), *needles)
    x = np.ones(2)
    dist.all_reduce(x)  # nothing refused broke the default group
    assert x.tolist() == [world, world]
    dist.destroy_process_group()
    return out


@pytest.mark.timeout(40)
def test_non_tensors_wrong_groups_and_wrong_receive_buffers_are_refused():
    results = run_ranks(non_tensors_and_groups, 3, timeout=30)
    problems = [f"rank {r}, {case}: {what}" for r, out in enumerate(results)
                for case, what in out.items() if what != "ok"]
    assert not problems, "\n".join(problems)


# --- mismatched collectives not covered by test_dist_errors.py -------------------------------

def more_mismatches(rank, world):
    import dtrain.distributed as dist
    from dtrain.distributed import DistError
    dist.init_process_group("gloo")
    last = world - 1
    odd = rank == last

    def f(n=3, dtype=np.float32):
        return np.ones(n, dtype)

    def gather(g, dst):
        dist.gather(f(), [f() for _ in range(world)] if rank == dst else None, dst=dst, group=g)

    def scatter(g, src):
        dist.scatter(f(), [f() for _ in range(world)] if rank == src else None, src=src, group=g)

    cases = {
        "gather roots": lambda g: gather(g, 1 if odd else 0),
        "scatter roots": lambda g: scatter(g, 1 if odd else 0),
        "all_gather dtypes": lambda g: dist.all_gather(
            [f(3, np.float64 if odd else np.float32) for _ in range(world)],
            f(3, np.float64 if odd else np.float32), group=g),
        "reduce_scatter shapes": lambda g: dist.reduce_scatter(
            f(4 if odd else 3), [f(4 if odd else 3) for _ in range(world)], group=g),
        "order of two collectives": lambda g: (
            (dist.broadcast(f(), src=0, group=g), dist.all_reduce(f(), group=g)) if odd
            else (dist.all_reduce(f(), group=g), dist.broadcast(f(), src=0, group=g))),
        "collective vs none": lambda g: None if odd else dist.all_reduce(f(), group=g),
    }
    results = {}
    for name, call in cases.items():
        g = dist.new_group(list(range(world)), timeout=3)  # a fresh group: a mismatch breaks it
        start = time.monotonic()
        try:
            call(g)
            dist.barrier(group=g)
            results[name] = ("no error", "", time.monotonic() - start)
        except DistError as e:
            results[name] = (type(e).__name__, str(e), time.monotonic() - start)
        dist.barrier()  # the default group is not affected
    dist.destroy_process_group()
    return results


MORE_NEEDLES = {
    "gather roots": ("DistMismatchError", ["root=0", "root=1"]),
    "scatter roots": ("DistMismatchError", ["root=0", "root=1"]),
    "all_gather dtypes": ("DistMismatchError", ["float32", "float64"]),
    "reduce_scatter shapes": ("DistMismatchError", ["[3]", "[4]"]),
    "order of two collectives": ("DistMismatchError", ["all_reduce", "broadcast"]),
    # the last rank calls barrier where the others call all_reduce
    "collective vs none": ("DistMismatchError", ["all_reduce", "barrier"]),
}


@pytest.mark.timeout(40)
def test_more_mismatched_collectives_raise_on_every_rank_naming_both_calls():
    world = 3
    results = run_ranks(more_mismatches, world, timeout=35)
    problems = []
    for name, (kind, needles) in MORE_NEEDLES.items():
        for rank in range(world):
            got, message, took = results[rank][name]
            if got != kind or took > 3 or not all(n in message for n in needles):
                problems.append(f"{name}: rank {rank} got {got} after {took:.1f} s: {message}")
    assert not problems, "\n".join(problems)
