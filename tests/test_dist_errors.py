"""dtrain.distributed's errors: misuse before init, bad arguments, a bad environment, ranks
that call different collectives (DistMismatchError on every rank, no hang), ranks that never
call (DistTimeoutError naming op, group, sequence number and missing rank), monitored_barrier
naming who is missing, and destroy_process_group followed by a new init in the same processes.
"""
import time
from datetime import timedelta

import numpy as np
import pytest

import dtrain.distributed as dist
from multiproc import run_ranks

UNINITIALIZED = ("Default process group has not been initialized, please make sure to call "
                 "init_process_group.")

BEFORE_INIT = {
    "get_rank": lambda d, t: d.get_rank(),
    "get_world_size": lambda d, t: d.get_world_size(),
    "get_backend": lambda d, t: d.get_backend(),
    "get_process_group_ranks": lambda d, t: d.get_process_group_ranks(None),
    "new_group": lambda d, t: d.new_group([0]),
    "all_reduce": lambda d, t: d.all_reduce(t),
    "broadcast": lambda d, t: d.broadcast(t, 0),
    "all_gather": lambda d, t: d.all_gather([t], t),
    "barrier": lambda d, t: d.barrier(),
    "monitored_barrier": lambda d, t: d.monitored_barrier(),
    "send": lambda d, t: d.send(t, 1),
    "recv": lambda d, t: d.recv(t),
    "isend": lambda d, t: d.isend(t, 1),
    "broadcast_object_list": lambda d, t: d.broadcast_object_list([1]),
    "all_gather_object": lambda d, t: d.all_gather_object([None], 1),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("call", sorted(BEFORE_INIT))
def test_anything_before_init_raises_torchs_value_error(call):
    import dtrain
    assert not dist.is_initialized() and dist.is_available()
    with pytest.raises(ValueError) as ours:
        BEFORE_INIT[call](dist, dtrain.zeros(1))
    assert str(ours.value) == UNINITIALIZED


@pytest.mark.torch
@pytest.mark.timeout(30)
def test_before_init_message_is_torchs(torch):
    with pytest.raises(ValueError) as theirs:
        torch.distributed.all_reduce(torch.zeros(1))
    assert str(theirs.value) == UNINITIALIZED


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29555")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    yield monkeypatch
    dist.destroy_process_group()  # in case a bad argument was accepted


@pytest.mark.timeout(30)
@pytest.mark.parametrize("backend", ["nccl", "NCCL", "mpi", "ucc", "cuda"])
def test_unavailable_backend_is_a_clear_error(env, backend):
    with pytest.raises(RuntimeError) as e:
        dist.init_process_group(backend)
    assert backend.lower() in str(e.value) and "gloo" in str(e.value)
    assert not dist.is_initialized()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("port", ["abc", "", "12.5", "70000", "0", "-1"])
def test_malformed_master_port_is_a_value_error_naming_it(env, port):
    env.setenv("MASTER_PORT", port)
    with pytest.raises(ValueError, match="MASTER_PORT"):
        dist.init_process_group("gloo")
    assert not dist.is_initialized()


@pytest.mark.timeout(30)
def test_missing_master_addr_and_port_are_named(env):
    env.delenv("MASTER_PORT")
    with pytest.raises(ValueError, match="MASTER_PORT"):
        dist.init_process_group("gloo")
    env.delenv("MASTER_ADDR")
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        dist.init_process_group("gloo")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kwargs, environ, needle", [
    (dict(rank=2, world_size=2), {}, "rank"),
    (dict(rank=-5, world_size=2), {"RANK": "7", "WORLD_SIZE": "2"}, "rank"),
    (dict(world_size=0, rank=0), {}, "world_size"),
    ({}, {"RANK": "zero"}, "RANK"),
    ({}, {"WORLD_SIZE": "two"}, "WORLD_SIZE"),
    ({}, {"RANK": "3", "WORLD_SIZE": "3"}, "rank"),
    (dict(init_method="file:///tmp/x"), {}, "init_method"),
    (dict(init_method="tcp://127.0.0.1"), {}, "tcp://host:port"),
])
def test_invalid_rank_world_size_or_init_method_is_a_value_error(env, kwargs, environ, needle):
    for k, v in environ.items():
        env.setenv(k, v)
    with pytest.raises(ValueError, match=needle):
        dist.init_process_group("gloo", **kwargs)
    assert not dist.is_initialized()


@pytest.mark.timeout(30)
def test_rank_and_world_size_unset_are_named(env):
    env.delenv("RANK")
    with pytest.raises(ValueError, match="RANK"):
        dist.init_process_group("gloo")
    env.setenv("RANK", "0")
    env.delenv("WORLD_SIZE")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        dist.init_process_group("gloo")


# --- bad arguments once initialized ------------------------------------------------------------

def expect(error, call, needle=None):
    try:
        call()
    except error as e:
        if needle is not None:
            assert needle in str(e), f"{needle!r} not in: {e}"
        return str(e)
    except Exception as e:
        raise AssertionError(f"expected {error.__name__}, got {type(e).__name__}: {e}")
    raise AssertionError(f"expected {error.__name__}, nothing was raised")


def bad_arguments(rank, world):
    import dtrain
    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    t = dtrain.zeros(3)
    f = np.zeros(3, np.float32)
    i = np.zeros(3, np.int32)
    messages = {
        "init twice": expect(RuntimeError, lambda: dist.init_process_group("gloo")),
        "send to self": expect(ValueError, lambda: dist.send(t, dst=rank)),
        "isend to self": expect(ValueError, lambda: dist.isend(t, dst=rank)),
        "recv from self": expect(ValueError, lambda: dist.recv(t, src=rank)),
        "irecv from self": expect(ValueError, lambda: dist.irecv(t, src=rank)),
    }
    for bad in (world, world + 5, -1):
        messages[f"send dst={bad}"] = expect(ValueError, lambda: dist.send(t, dst=bad), str(bad))
        messages[f"recv src={bad}"] = expect(ValueError, lambda: dist.recv(t, src=bad), str(bad))
        expect(ValueError, lambda: dist.broadcast(t, src=bad), str(bad))
        expect(ValueError, lambda: dist.reduce(t, dst=bad), str(bad))
        expect(ValueError, lambda: dist.gather(t, [t] * world, dst=bad), str(bad))
        expect(ValueError, lambda: dist.scatter(t, [t] * world, src=bad), str(bad))
        expect(ValueError, lambda: dist.broadcast_object_list([1], src=bad), str(bad))
        expect(ValueError, lambda: dist.get_global_rank(dist.group.WORLD, bad))
    for op in ("BAND", "BOR", "BXOR"):
        messages[f"{op} on floats"] = expect(
            ValueError, lambda: dist.all_reduce(f, op=getattr(dist.ReduceOp, op)), op)
        expect(ValueError, lambda: dist.reduce(f, 0, op=getattr(dist.ReduceOp, op)))
        expect(ValueError, lambda: dist.reduce_scatter(f, [f] * world,
                                                       op=getattr(dist.ReduceOp, op)))
    expect(ValueError, lambda: dist.all_reduce(f, op=99))
    expect(ValueError, lambda: dist.all_gather([f] * (world + 1), f), "one tensor per rank")
    expect(ValueError, lambda: dist.all_gather([i] * world, f))
    expect(ValueError, lambda: dist.all_gather_into_tensor(np.zeros(3 * world + 1), f))
    expect(ValueError, lambda: dist.reduce_scatter_tensor(np.zeros(2, np.float32), f))
    expect(ValueError, lambda: dist.all_to_all_single(f, f, [3] + [0] * world, [3]))
    expect(TypeError, lambda: dist.all_reduce([1.0, 2.0]))
    expect(TypeError, lambda: dist.send(t, dst="1" if world > 1 else "0"))
    expect(ValueError, lambda: dist.P2POp(dist.all_reduce, t, 0))
    expect(ValueError, lambda: dist.batch_isend_irecv([]))
    expect(ValueError, lambda: dist.all_reduce(dtrain.zeros(1).expand(3)), "read-only")
    # none of the refused calls consumed a sequence number: collectives still line up
    x = np.ones(2, np.float64)
    dist.all_reduce(x)
    assert x.tolist() == [world, world]
    dist.barrier()
    dist.destroy_process_group()
    return messages


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", [1, 3])
def test_bad_arguments_are_refused_before_anything_is_sent(world):
    messages = run_ranks(bad_arguments, world, timeout=40)
    assert "twice" in messages[0]["init twice"]
    assert "itself" in messages[0]["send to self"]


def unsupported_dtypes(rank, world):
    import dtrain.distributed as dist
    dist.init_process_group("gloo", timeout=timedelta(seconds=5))
    seen = {}
    for dtype in ["uint32", "complex64", ">f4"]:
        arr = np.ones(3, dtype)
        for name, call in [("all_reduce", lambda: dist.all_reduce(arr)),
                           ("isend", lambda: dist.isend(arr, dst=1 - rank).wait(timeout=1))]:
            try:
                call()
                seen[f"{name} {dtype}"] = "accepted"
            except (TypeError, ValueError) as e:
                seen[f"{name} {dtype}"] = "refused"
                assert str(np.dtype(dtype)) in str(e) or dtype in str(e), str(e)
            except Exception as e:
                seen[f"{name} {dtype}"] = f"{type(e).__name__}: {e}"
    x = np.ones(1)
    dist.all_reduce(x, async_op=True).wait(timeout=10)  # the engine is still alive
    dist.destroy_process_group()
    return seen


@pytest.mark.timeout(60)
def test_unsupported_dtypes_are_refused_at_the_call():
    """Dtypes the wire has no code for (uint32, complex, big-endian) are refused up front with
    TypeError/ValueError naming the dtype, on the calling rank, without breaking the engine."""
    seen = run_ranks(unsupported_dtypes, 2, timeout=40)
    for rank in range(2):
        bad = {k: v for k, v in seen[rank].items() if v != "refused"}
        assert not bad, f"rank {rank}: {bad}"


# --- mismatched collectives ---------------------------------------------------------------------

def mismatches(rank, world):
    import dtrain.distributed as dist
    from dtrain.distributed import DistError
    dist.init_process_group("gloo")
    last = world - 1
    odd = rank == last  # the rank that calls something else

    def f(n=3, dtype=np.float32):
        return np.ones(n, dtype)

    cases = {
        "all_reduce vs broadcast": lambda g: (dist.broadcast(f(), src=0, group=g) if odd
                                              else dist.all_reduce(f(), group=g)),
        "all_reduce vs broadcast from the odd rank": lambda g: (
            dist.broadcast(f(), src=last, group=g) if odd else dist.all_reduce(f(), group=g)),
        "shapes": lambda g: dist.all_reduce(f(4 if odd else 3), group=g),
        "all_gather shapes": lambda g: dist.all_gather([f(4 if odd else 3)] * world,
                                                       f(4 if odd else 3), group=g),
        "dtypes": lambda g: dist.all_reduce(f(3, np.float64 if odd else np.float32), group=g),
        "ops": lambda g: dist.all_reduce(f(), op=dist.ReduceOp.MAX if odd else
                                         dist.ReduceOp.SUM, group=g),
        "reduce roots": lambda g: dist.reduce(f(), dst=1 if odd else 0, group=g),
        "broadcast roots": lambda g: dist.broadcast(f(), src=1 if odd else 0, group=g),
        "all_reduce vs barrier": lambda g: (dist.barrier(group=g) if odd
                                            else dist.all_reduce(f(), group=g)),
    }
    results = {}
    for name, call in cases.items():
        g = dist.new_group(list(range(world)), timeout=4)  # a fresh group: a mismatch breaks it
        start = time.monotonic()
        try:
            call(g)
            dist.barrier(group=g)  # a rank whose part only sent learns of it here at the latest
            results[name] = ("no error", None, time.monotonic() - start)
        except DistError as e:
            results[name] = (type(e).__name__, str(e), time.monotonic() - start)
        dist.barrier()  # the default group is not affected
    x = np.ones(1)
    dist.all_reduce(x)
    assert x[0] == world
    dist.destroy_process_group()
    return results


NEEDLES = {
    "all_reduce vs broadcast": ["all_reduce", "broadcast"],
    "all_reduce vs broadcast from the odd rank": ["all_reduce", "broadcast"],
    "shapes": ["shape=[3]", "shape=[4]"],
    "all_gather shapes": ["shape=[3]", "shape=[4]"],
    "dtypes": ["float32", "float64"],
    "ops": ["SUM", "MAX"],
    "reduce roots": ["root=0", "root=1"],
    "broadcast roots": ["root=0", "root=1"],
    "all_reduce vs barrier": ["all_reduce", "barrier"],
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("world", [2, 3])
def test_mismatched_collectives_raise_on_every_rank_naming_both_calls(world):
    results = run_ranks(mismatches, world, timeout=80)
    problems = []
    for name, needles in NEEDLES.items():
        for rank in range(world):
            kind, message, took = results[rank][name]
            if kind != "DistMismatchError" or took > 3 or \
                    not all(n in message for n in needles):
                problems.append(f"{name}: rank {rank} got {kind} after {took:.1f} s: {message}")
    assert not problems, "\n".join(problems)


# --- timeouts -----------------------------------------------------------------------------------

def missing_rank(rank, world):
    """DTRAIN_TIMEOUT=2: the last rank never joins an all_reduce."""
    import dtrain.distributed as dist
    from dtrain.distributed import DistError
    dist.init_process_group("gloo")
    g = dist.new_group(list(range(world)))
    dist.barrier(group=g)  # op #1
    out = {}
    if rank == world - 1:
        time.sleep(3.5)  # alive, but not calling
        start = time.monotonic()
        try:
            dist.all_reduce(np.ones(1), group=g)  # too late: the group gave up on it
            out["late"] = ("no error", time.monotonic() - start)
        except DistError as e:
            out["late"] = (type(e).__name__, time.monotonic() - start)
    else:
        if rank == 0 and world > 2:
            time.sleep(0.5)  # rank 1 gives up first: rank 0 must still see a timeout
        start = time.monotonic()
        work = dist.all_reduce(np.ones(1), group=g, async_op=True)  # op #2
        try:
            work.wait()
            out["error"] = ("no error", "", 0)
        except DistError as e:
            out["error"] = (type(e).__name__, str(e), time.monotonic() - start)
            assert work.is_completed() and not work.is_success()
            assert work.exception() is e
    dist.barrier()  # the default group still works
    dist.destroy_process_group()
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", [2, 3])
def test_a_rank_that_never_calls_gives_a_timeout_naming_it(world):
    results = run_ranks(missing_rank, world, timeout=40, env={"DTRAIN_TIMEOUT": "2"})
    missing = world - 1
    for rank in range(missing):
        kind, message, took = results[rank]["error"]
        assert kind == "DistTimeoutError", f"rank {rank}: {kind}: {message}"
        for needle in ["all_reduce", "group 1", "op #2", f"rank {missing}"]:
            assert needle in message, f"rank {rank}: {needle!r} not in: {message}"
        assert 1.0 < took < 6, f"rank {rank} gave up after {took:.1f} s with a 2 s timeout"
    kind, took = results[missing]["late"]
    assert kind != "no error" and took < 2, f"the late rank got {kind} after {took:.1f} s"


def p2p_timeout(rank, world):
    import dtrain.distributed as dist
    from dtrain.distributed import DistTimeoutError
    dist.init_process_group("gloo", timeout=timedelta(seconds=2))  # beats DTRAIN_TIMEOUT=60
    out = None
    if rank == 0:
        start = time.monotonic()
        try:
            dist.recv(np.zeros(1), src=1, tag=5)
        except DistTimeoutError as e:
            out = (str(e), time.monotonic() - start)
    else:
        time.sleep(3)
    dist.barrier()
    dist.destroy_process_group()
    return out


@pytest.mark.timeout(60)
def test_a_receive_that_never_matches_times_out_naming_the_peer_and_tag():
    message, took = run_ranks(p2p_timeout, 2, timeout=40, env={"DTRAIN_TIMEOUT": "60"})[0]
    assert "rank 1" in message and "tag 5" in message, message
    assert 1.5 < took < 6, took


def monitored(rank, world):
    import dtrain.distributed as dist
    from dtrain.distributed import DistError
    dist.init_process_group("gloo")
    dist.monitored_barrier(timeout=10)  # everyone: passes
    dist.barrier()
    if rank != 0:
        return None  # ranks 1.. never reach the next monitored_barrier
    out = []
    for wait_all in (True, False):
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=1.5), wait_all_ranks=wait_all)
            out.append(("no error", ""))
        except DistError as e:
            out.append((type(e).__name__, str(e)))
    return out


@pytest.mark.timeout(60)
def test_monitored_barrier_names_the_missing_ranks_on_rank_0():
    (all_kind, all_msg), (first_kind, first_msg) = run_ranks(monitored, 4, timeout=40)[0]
    assert all_kind == "DistTimeoutError" and "[1, 2, 3]" in all_msg, all_msg
    assert first_kind == "DistTimeoutError" and "rank 1" in first_msg, first_msg
    assert "2" not in first_msg.split("rank 1")[1].split("within")[0], first_msg


# --- destroy, then init again -------------------------------------------------------------------

def reinit(rank, world):
    import dtrain.distributed as dist
    old = None
    for cycle in range(3):
        dist.init_process_group("gloo")
        assert dist.get_rank() == rank and dist.get_world_size() == world
        if old is not None:  # a group of the previous init is refused
            expect(ValueError, lambda: dist.all_reduce(np.zeros(1), group=old))
        g = dist.new_group(list(range(world)))
        x = np.full(2, cycle + rank, np.float64)
        dist.all_reduce(x)
        dist.all_reduce(x, group=g)
        assert x[0] == world * sum(cycle + r for r in range(world))
        old = g
        dist.destroy_process_group()
        assert not dist.is_initialized()
        dist.destroy_process_group()  # twice is fine
    expect(ValueError, lambda: dist.get_rank(), "not been initialized")
    return True


@pytest.mark.timeout(30)
@pytest.mark.parametrize("world", [1, 3])
def test_destroy_then_init_again_in_the_same_processes(world):
    run_ranks(reinit, world, timeout=15)
