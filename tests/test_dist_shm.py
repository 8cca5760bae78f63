"""The same-host paths (shm.py, fastpath.py): large all_reduces through shared-memory slots and
small calls through mailboxes. When they are used, that they give exact
results under concurrency and in call order, and that they fail cleanly, without burning CPU,
and leave nothing behind."""
import os
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


def sharing(rank, world, off_on=None):
    """Which groups share memory, and that all_reduce over them is exact."""
    if rank == off_on:
        os.environ["DTRAIN_SHM"] = "0"
    dist = init()
    pg = dist.group.WORLD
    pair = dist.new_group([0, 1])
    shared = [pg.engine.shared.covers(pg), pg.engine.shared.covers(pair) if rank < 2 else None]
    buf = np.full(3 * MB // 4 + 5, rank + 1.0, np.float32)  # 3 MB: two slots
    dist.all_reduce(buf)
    assert (buf == world * (world + 1) / 2).all()
    dist.destroy_process_group()
    return shared


@pytest.mark.timeout(60)
def test_same_host_groups_share_memory():
    assert run_ranks(sharing, 3, timeout=50) == [[True, True]] * 2 + [[True, None]]


@pytest.mark.timeout(60)
def test_dtrain_shm_0_on_one_rank_turns_it_off_for_every_rank():
    # a rank that offers no lanes makes every group with it use the network, on every rank
    results = run_ranks(sharing, 2, 1, timeout=50)
    assert results == [[False, False]] * 2


def groups_beyond_the_lanes(rank, world):
    from dtrain.distributed import shm
    dist = init()
    groups = [dist.new_group([0, 1]) for _ in range(shm.LANES)]
    last = groups[-1]
    assert last.id >= shm.LANES and not last.engine.shared.covers(last)
    buf = np.full(MB, rank + 1, np.int64)
    dist.all_reduce(buf, group=last)  # the ring, over the network
    assert (buf == 3).all()
    dist.destroy_process_group()


@pytest.mark.timeout(60)
def test_groups_without_a_lane_use_the_network():
    run_ranks(groups_beyond_the_lanes, 2, timeout=50)


def concurrent(rank, world):
    """Many async large all_reduces on two groups at once, waited in reverse: each group's
    calls run in turn on its worker thread, and every result is exact."""
    dist = init()
    everyone = dist.group.WORLD
    sub = dist.new_group(list(range(world)))
    rng = np.random.default_rng(0)
    sizes = [int(n) for n in rng.integers(MB // 8, 3 * MB, size=8)] + [5 * MB + 1]
    bufs, works = [], []
    for i, n in enumerate(sizes):
        buf = (np.arange(n, dtype=np.int64) % 1000) * (rank + 1) + i
        bufs.append(buf)
        works.append(dist.all_reduce(buf, group=everyone if i % 2 else sub, async_op=True))
    for work in reversed(works):
        work.wait()
    total = world * (world + 1) // 2
    for i, (n, buf) in enumerate(zip(sizes, bufs)):
        want = (np.arange(n, dtype=np.int64) % 1000) * total + i * world
        assert np.array_equal(buf, want), f"all_reduce #{i} of {n} elements is wrong"
    dist.destroy_process_group()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", [2, 4])
def test_async_calls_on_two_groups_in_flight_at_once(world):
    run_ranks(concurrent, world, timeout=50)


def leaves_nothing(rank, world):
    before = set(os.listdir("/proc/self/fd"))
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    dist = init()
    buf = np.ones(2 * MB, np.float32)
    dist.all_reduce(buf)
    assert (buf == world).all()
    big = np.full(MB, rank, np.float32)  # through the bulk areas (rings.py), both ways
    if rank == 0:
        dist.send(big, dst=1)
        dist.recv(big, src=1)
    else:
        dist.recv(big, src=0)
        dist.send(big, dst=0)
    assert (big == 0).all()
    dist.destroy_process_group()
    after = set(os.listdir("/proc/self/fd"))
    shm_after = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    return sorted(after - before), sorted(shm_after - shm_before)


@pytest.mark.timeout(60)
def test_destroy_closes_the_lanes_and_bulk_areas_and_names_nothing_in_dev_shm():
    for fds, names in run_ranks(leaves_nothing, 2, timeout=50):
        assert fds == [] and names == []


def peer_dies(rank, world):
    import signal
    dist = init()
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    buf = np.ones(4 * MB, np.float32)
    dist.all_reduce(buf)


@pytest.mark.timeout(60)
def test_a_peer_killed_before_its_part_fails_the_shared_all_reduce():
    results = run_ranks(peer_dies, 2, timeout=50, expect_failure=True)
    status, message = results[0][:2]
    assert status == "error" and "DistPeerError" in message and "rank 1" in message


def small_calls_use_mailboxes(rank, world):
    dist = init()
    pg = dist.group.WORLD
    t = np.full(1000, rank + 1.0, np.float32)
    dist.all_reduce(t)
    dist.broadcast(t, src=0)
    dist.barrier()
    assert (t == world * (world + 1) / 2).all()
    counted = pg.engine.shared.mailbox_count[pg.id]
    dist.destroy_process_group()
    return counted


@pytest.mark.timeout(60)
def test_small_calls_go_through_mailboxes_unless_dtrain_shm_0():
    assert run_ranks(small_calls_use_mailboxes, 2, timeout=50) == [3, 3]
    assert run_ranks(small_calls_use_mailboxes, 2, timeout=50,
                     env={"DTRAIN_SHM": "0"}) == [0, 0]


def in_call_order(rank, world):
    """An async large call, then a small blocking one: the small one (in this thread) starts
    only once the large one (on the group's worker thread) is done, as the group's calls run
    in order."""
    dist = init()
    big = np.full(2 * MB, rank + 1, np.int64)
    work = dist.all_reduce(big, async_op=True)
    small = np.full(3, rank + 1, np.int64)
    dist.all_reduce(small)
    done_first = work._done.is_set()
    work.wait()
    total = world * (world + 1) // 2
    assert (big == total).all() and (small == total).all()
    dist.destroy_process_group()
    return done_first


@pytest.mark.timeout(60)
def test_a_small_call_waits_for_the_groups_earlier_calls():
    assert run_ranks(in_call_order, 3, timeout=50) == [True] * 3


def mismatched(rank, world, case):
    from dtrain.distributed import DistMismatchError
    dist = init()
    start = time.monotonic()
    try:
        if case == "small vs large" and rank == 1:
            dist.all_reduce(np.ones(MB, np.float32))  # slots
        elif case == "all_reduce vs broadcast" and rank == 1:
            dist.broadcast(np.ones(4, np.float32), src=0)
        else:
            dist.all_reduce(np.ones(4, np.float32))  # a mailbox
    except DistMismatchError as e:
        return str(e), time.monotonic() - start
    finally:
        dist.destroy_process_group()
    return "no error", 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["small vs large", "all_reduce vs broadcast"])
def test_mismatched_calls_raise_on_every_rank(case):
    for rank, (message, took) in enumerate(run_ranks(mismatched, 2, case, timeout=50)):
        assert "does not match" in message and "op #1" in message, f"rank {rank}: {message}"
        assert took < 5, f"rank {rank} took {took:.1f} s to notice"


def late_peer(rank, world):
    dist = init()
    if rank == 1:
        time.sleep(1.5)
    cpu, wall = time.process_time(), time.monotonic()
    t = np.ones(4, np.float32)
    dist.all_reduce(t)
    used = time.process_time() - cpu, time.monotonic() - wall
    assert (t == world).all()
    dist.destroy_process_group()
    return used


@pytest.mark.timeout(60)
def test_waiting_for_a_late_peer_sleeps_instead_of_spinning():
    cpu, wall = run_ranks(late_peer, 2, timeout=50)[0]
    assert wall > 1.0 and cpu < 0.3 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s of waiting"


def late_and_timed_out(rank, world):
    from dtrain.distributed import DistTimeoutError
    dist = init()
    if rank == 1:
        time.sleep(4)
        dist.destroy_process_group()
        return None
    start = time.monotonic()
    try:
        dist.all_reduce(np.ones(4, np.float32))
    except DistTimeoutError as e:
        return str(e), time.monotonic() - start
    finally:
        if rank == 0:
            dist.destroy_process_group()


@pytest.mark.timeout(60)
def test_a_mailbox_wait_has_a_deadline_naming_the_missing_rank():
    message, took = run_ranks(late_and_timed_out, 2, timeout=50,
                              env={"DTRAIN_TIMEOUT": "1.5"})[0]
    assert "timed out" in message and "rank 1" in message and "op #1" in message
    assert 1.0 < took < 3.5
