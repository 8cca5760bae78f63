"""Large all_reduces between the processes of one host (slots.large_all_reduce): through
shared-memory slots announced by counters, in the caller's thread, or on the group's worker
thread for async_op=True, so that the caller goes on and ranks may mix the two."""
import threading
import time

import numpy as np
import pytest

from multiproc import run_ranks

MB = 1 << 20
pytestmark = pytest.mark.usefixtures("shared_memory_on")


def init():
    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    return dist


def mixed(rank, world):
    """Rank 0 starts async calls while the others arrive late and block."""
    dist = init()
    big = np.arange(MB + 3, dtype=np.float32) % 97 * (rank + 1)  # 4 MB: eight chunks
    small = np.full(5, rank + 1, np.int64)
    returned = None
    if rank == 0:
        start = time.monotonic()
        works = [dist.all_reduce(big, async_op=True), dist.all_reduce(small, async_op=True)]
        returned = time.monotonic() - start
        threads = sorted(t.name for t in threading.enumerate() if t.name.startswith("dtrain-g"))
        for work in works:
            work.wait()
    else:
        time.sleep(1.0)
        threads = []
        dist.all_reduce(big)
        dist.all_reduce(small)
    total = world * (world + 1) // 2
    assert (big == np.arange(MB + 3, dtype=np.float32) % 97 * total).all()
    assert (small == total).all()
    dist.destroy_process_group()
    return returned, threads


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", [2, 3])
def test_an_async_call_returns_at_once_and_ranks_may_mix_async_and_blocking(world):
    results = run_ranks(mixed, world, timeout=50)
    returned, threads = results[0]
    # the peers arrive after 1 s: the caller did not wait for them
    assert returned < 0.5, f"all_reduce(async_op=True) took {returned:.2f} s to return"
    assert threads == ["dtrain-group-0-0"]


def exact(rank, world):
    """Every op on odd sizes and a list of arrays, against the sum in rank order."""
    dist = init()
    from dtrain.distributed import collectives
    rng = np.random.default_rng(7)
    size = 3 * MB // 2 + 11  # float32: not a whole number of chunks
    inputs = [rng.standard_normal(size).astype(np.float32) + 2 for _ in range(world)]
    for op, ufunc in [(dist.ReduceOp.SUM, np.add), (dist.ReduceOp.PRODUCT, np.multiply),
                      (dist.ReduceOp.MAX, np.maximum), (dist.ReduceOp.MIN, np.minimum)]:
        buf = inputs[rank].copy()
        dist.all_reduce(buf, op=op)
        want = inputs[0].copy()
        for x in inputs[1:]:
            ufunc(want, x, out=want)
        assert np.array_equal(buf, want), op
    # a list of arrays, reduced as their concatenation (DDP's gradients), averaged
    parts = [inputs[rank][:1000].copy(), inputs[rank][1000:].copy()]
    pg = dist.group.WORLD
    pg.run("all_reduce", collectives.all_reduce, (parts, collectives.AVG), np.dtype(np.float32),
           (size,), op=collectives.AVG).wait()
    want = inputs[0].copy()
    for x in inputs[1:]:
        want += x
    want /= np.float32(world)
    assert np.array_equal(np.concatenate(parts), want)
    dist.destroy_process_group()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("world", [2, 3, 4])
def test_results_are_exact_and_in_rank_order(world):
    run_ranks(exact, world, timeout=80)


def destroyed_while_waiting(rank, world):
    from dtrain.distributed import DistError
    dist = init()
    if rank == 1:  # never makes the call
        time.sleep(0.5)
        dist.destroy_process_group()
        return None
    work = dist.all_reduce(np.ones(MB, np.float32), async_op=True)
    time.sleep(0.2)
    start = time.monotonic()
    dist.destroy_process_group()
    took = time.monotonic() - start
    try:
        work.wait()
    except DistError as e:
        return took, str(e)
    return took, "no error"


@pytest.mark.timeout(60)
def test_destroying_the_group_fails_an_async_call_still_waiting():
    took, message = run_ranks(destroyed_while_waiting, 2, timeout=50)[0]
    # rank 1 leaves in the same moment: its goodbye may be seen first
    assert "destroyed" in message or "rank 1 has left" in message, message
    assert took < 3.0, f"destroy_process_group took {took:.1f} s"


def mismatched(rank, world, case):
    """Rank 1 passes twice the elements ("sizes"), or cuts them into other chunks, as if it
    saw another CPU count ("chunks")."""
    from dtrain.distributed import DistMismatchError, slots
    dist = init()
    size = MB
    if rank == 1 and case == "sizes":
        size = 2 * MB
    elif rank == 1:
        slots.chunk_bytes = lambda ranks: 256 << 10
    try:
        dist.all_reduce(np.ones(size, np.float32))
    except DistMismatchError as e:
        return str(e)
    finally:
        dist.destroy_process_group()
    return "no error"


@pytest.mark.timeout(60)
def test_large_calls_of_different_sizes_raise_on_every_rank():
    for rank, message in enumerate(run_ranks(mismatched, 2, "sizes", timeout=50)):
        assert "does not match" in message and "shape=[1048576]" in message \
            and "shape=[2097152]" in message, f"rank {rank}: {message}"


def released(rank, world):
    import weakref
    dist = init()
    buf = np.ones(MB, np.float32)
    work = dist.all_reduce(buf, async_op=True)
    work.wait()
    ref = weakref.ref(buf)
    del buf, work
    deadline = time.monotonic() + 2.0
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    freed = ref() is None
    dist.destroy_process_group()
    return freed


@pytest.mark.timeout(60)
def test_the_worker_thread_keeps_no_buffer_of_a_finished_call():
    # DDP's gradients would otherwise outlive zero_grad() until the group's next call
    assert run_ranks(released, 2, timeout=50) == [True, True]


def given_up(rank, world):
    """Rank 1 stalls inside its first call until rank 0 has timed out of it; both had a
    second call queued behind. Rank 1 must not take rank 0's second call for the rest of the
    first (the chunk counters run on across calls)."""
    from dtrain.distributed import DistError, collectives
    dist = init()
    if rank == 1:
        combine, calls = collectives.combine, []

        def slow(*args):
            calls.append(1)
            if len(calls) == 2:
                time.sleep(3.0)  # past rank 0's 1.5 s timeout
            return combine(*args)
        collectives.combine = slow
    first = np.full(2 * MB, rank + 1.0, np.float32)    # 8 MB: sixteen chunks
    second = np.full(2 * MB, 100.0 * (rank + 1), np.float32)
    works = [dist.all_reduce(first, async_op=True), dist.all_reduce(second, async_op=True)]
    outcomes = []
    for work, buf, total in zip(works, (first, second), (3.0, 300.0)):
        try:
            work.wait()
            outcomes.append("exact" if (buf == total).all() else "wrong")
        except DistError as e:
            outcomes.append(type(e).__name__)
    dist.destroy_process_group()
    return outcomes


@pytest.mark.timeout(60)
def test_a_call_given_up_by_a_peer_fails_instead_of_reading_its_next_call():
    results = run_ranks(given_up, 2, timeout=50, env={"DTRAIN_TIMEOUT": "1.5"})
    for rank, outcomes in enumerate(results):
        assert "wrong" not in outcomes and "exact" not in outcomes, f"rank {rank}: {outcomes}"


@pytest.mark.timeout(60)
def test_ranks_that_would_cut_chunks_differently_raise():
    for rank, message in enumerate(run_ranks(mismatched, 2, "chunks", timeout=50)):
        assert "chunks of" in message and "cpu_count" in message, f"rank {rank}: {message}"


def engine_after_worker(rank, world):
    """An async all_reduce (shared memory, on the worker), then an async broadcast of the same
    tensor (the engine): the broadcast starts only once the all_reduce is done."""
    dist = init()
    exact = []
    for _ in range(5):
        t = np.full(4 * MB, rank + 1.0, np.float32)
        works = [dist.all_reduce(t, async_op=True), dist.broadcast(t, src=0, async_op=True)]
        for work in works:
            work.wait()
        exact.append(bool((t == world * (world + 1) / 2).all()))
    dist.destroy_process_group()
    return all(exact)


@pytest.mark.timeout(60)
def test_an_engine_call_waits_for_the_shared_memory_call_before_it():
    assert run_ranks(engine_after_worker, 2, timeout=50) == [True, True]


def destroyed_behind_an_engine_call(rank, world):
    from dtrain.distributed import DistError
    dist = init()
    if rank == 1:  # makes neither call
        time.sleep(0.5)
        dist.destroy_process_group()
        return None
    outs = [np.zeros(MB, np.float32) for _ in range(world)]
    gathering = dist.all_gather(outs, np.ones(MB, np.float32), async_op=True)  # the engine
    reducing = dist.all_reduce(np.ones(MB, np.float32), async_op=True)  # waits behind it
    time.sleep(0.2)
    start = time.monotonic()
    dist.destroy_process_group()
    took = time.monotonic() - start
    errors = []
    for work in (gathering, reducing):
        try:
            work.wait()
        except DistError as e:
            errors.append(type(e).__name__)
    return took, errors


@pytest.mark.timeout(60)
def test_destroy_fails_a_call_queued_behind_an_engine_call_at_once():
    took, errors = run_ranks(destroyed_behind_an_engine_call, 2, timeout=50)[0]
    assert len(errors) == 2, errors
    # the all_gather's message to rank 1 may keep its socket lingering up to 3 s (transport.py);
    # a worker left waiting would hold destroy for its 10 s join
    assert took < 6.0, f"destroy_process_group took {took:.1f} s"
