"""dtrain.distributed groups in real processes: new_group called everywhere in the same order,
group-local ranks, collectives and point-to-point inside subgroups with roots and peers given as
global ranks (as in torch), overlapping and many groups, and non-members refused."""
import numpy as np
import pytest

from multiproc import run_ranks


def same(got, want, what):
    got = np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: {got.dtype}{list(got.shape)} vs expected {want.dtype}{list(want.shape)}"
    assert np.array_equal(got, want), f"{what}: got\n{got}\nexpected\n{want}"


def subgroup_battery(rank, world):
    import dtrain
    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    members = [r for r in range(world) if r != 0][::-1] if world > 2 else [world - 1]
    g = dist.new_group(members)  # e.g. [3, 2, 1]: torch sorts them; so does dtrain
    ranks = sorted(members)
    whole = dist.new_group()  # every rank: a second group over the world
    assert dist.get_process_group_ranks(whole) == list(range(world))
    if rank not in ranks:
        assert g is dist.GroupMember.NON_GROUP_MEMBER
        assert dist.get_rank(g) == -1 and dist.get_world_size(g) == -1
        try:
            dist.all_reduce(np.zeros(1), group=g)
        except ValueError as e:
            refused = str(e)
        else:
            raise AssertionError("a non-member used a group without an error")
        assert "not a member" in refused, refused
        for call in [lambda: dist.broadcast(np.zeros(1), src=ranks[0], group=g),
                     lambda: dist.barrier(group=g),
                     lambda: dist.send(np.zeros(1), dst=ranks[0], group=g),
                     lambda: dist.all_gather_object([None], 1, group=g)]:
            with_error = False
            try:
                call()
            except ValueError as e:
                with_error = "not a member" in str(e)
            assert with_error, "a non-member's call was not refused with a clear error"
        y = np.ones(1, np.float64)
        dist.all_reduce(y, group=whole)
        assert y[0] == world
        dist.barrier()
        dist.destroy_process_group()
        return refused

    n, me = len(ranks), ranks.index(rank)
    assert dist.get_rank(g) == me and dist.get_world_size(g) == n
    assert dist.get_process_group_ranks(g) == ranks
    for i, r in enumerate(ranks):
        assert dist.get_group_rank(g, r) == i and dist.get_global_rank(g, i) == r
    for bad in [lambda: dist.get_group_rank(g, 0 if 0 not in ranks else world),
                lambda: dist.get_global_rank(g, n)]:
        try:
            bad()
        except (ValueError, RuntimeError):
            pass
        else:
            raise AssertionError("a rank outside the group was accepted")

    x = np.full(3, rank + 1.0, np.float32)
    dist.all_reduce(x, group=g)
    same(x, np.full(3, sum(r + 1.0 for r in ranks), np.float32), "subgroup all_reduce")
    for root in ranks:  # roots are global ranks
        x = np.full(2, rank, np.int64)
        dist.broadcast(x, src=root, group=g)
        same(x, np.full(2, root, np.int64), f"subgroup broadcast from global {root}")
        x = np.full(2, rank, np.int64)
        dist.reduce(x, dst=root, op=dist.ReduceOp.MAX, group=g)
        if rank == root:
            same(x, np.full(2, max(ranks), np.int64), f"subgroup reduce to {root}")
        lst = [np.zeros(1, np.int32) for _ in ranks] if rank == root else None
        dist.gather(np.array([rank], np.int32), lst, dst=root, group=g)
        if rank == root:
            assert [int(a[0]) for a in lst] == ranks
        out = np.zeros(1, np.int32)
        dist.scatter(out, [np.array([10 * r], np.int32) for r in ranks] if rank == root
                     else None, src=root, group=g)
        assert out[0] == 10 * rank
        objs = [("from", rank)] if rank == root else [None]
        dist.broadcast_object_list(objs, src=root, group=g)
        assert objs == [("from", root)]
    lst = [dtrain.zeros(2) for _ in ranks]
    dist.all_gather(lst, dtrain.full((2,), float(rank)), group=g)
    assert [t.tolist() for t in lst] == [[float(r)] * 2 for r in ranks]
    out = np.zeros(2, np.int64)
    dist.reduce_scatter(out, [np.full(2, rank * 10 + i, np.int64) for i in range(n)], group=g)
    same(out, np.full(2, sum(r * 10 + me for r in ranks), np.int64), "subgroup reduce_scatter")
    out = np.zeros(n, np.int64)
    dist.all_to_all_single(out, np.arange(n, dtype=np.int64) + 100 * rank, group=g)
    same(out, np.array([100 * r + me for r in ranks], np.int64), "subgroup all_to_all_single")
    got = [None] * n
    dist.all_gather_object(got, lambda: rank, group=g)
    assert [f() for f in got] == ranks
    got = [None]
    dist.scatter_object_list(got, list(range(n)) if me == 0 else None, src=ranks[0], group=g)
    assert got == [me]
    dist.barrier(group=g)
    dist.monitored_barrier(group=g, timeout=20)
    if n > 1:  # point-to-point inside the group, peers named by global rank
        peer = ranks[(me + 1) % n]
        prev = ranks[(me - 1) % n]
        buf = np.zeros(1, np.int64)
        w = dist.irecv(buf, src=prev, group=g)
        dist.send(np.array([rank]), dst=peer, group=g)
        w.wait()
        assert buf[0] == prev and w.source_rank() == prev
    # the world still works, and a world-wide group is separate from the default one
    y = np.ones(1, np.float64)
    dist.all_reduce(y, group=whole)
    assert y[0] == world
    dist.barrier()
    dist.destroy_process_group()
    return None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", [2, 3, 4])
def test_subgroup_collectives_with_global_roots_and_non_members(world):
    results = run_ranks(subgroup_battery, world, timeout=50)
    assert results[0] and "not a member" in results[0]


def many_groups(rank, world):
    import itertools

    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    subsets = [list(c) for k in range(1, world + 1)
               for c in itertools.combinations(range(world), k)]
    subsets = (subsets * 3)[:20]  # 20 groups, several over the same ranks
    groups = [dist.new_group(s) for s in subsets]
    mine = [(i, s, g) for i, (s, g) in enumerate(zip(subsets, groups)) if rank in s]
    # start an async all_reduce in every group at once, then wait in reverse order
    bufs = [np.full(4, rank + i, np.float64) for i, _, _ in mine]
    works = [dist.all_reduce(b, group=g, async_op=True) for b, (_, _, g) in zip(bufs, mine)]
    for w in reversed(works):
        w.wait()
    for b, (i, s, _) in zip(bufs, mine):
        same(b, np.full(4, sum(r + i for r in s), np.float64), f"group {i} {s}")
    mine = [(s, g) for _, s, g in mine]
    # overlapping groups used in interleaved order with the world, all blocking
    for step in range(3):
        for s, g in mine:
            x = np.array([rank * (step + 1)], np.int64)
            dist.all_reduce(x, group=g)
            assert x[0] == sum(s) * (step + 1)
            x = np.array([rank], np.int64)
            dist.broadcast(x, src=s[-1], group=g)
            assert x[0] == s[-1]
        z = np.ones(1)
        dist.all_reduce(z)
        assert z[0] == world
    # a destroyed group is refused; the others keep working
    if mine:
        dist.destroy_process_group(mine[0][1])
        try:
            dist.all_reduce(np.zeros(1), group=mine[0][1])
        except ValueError:
            pass
        else:
            raise AssertionError("a destroyed group was still usable")
    dist.barrier()
    dist.destroy_process_group()
    return len(mine)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", [3, 4])
def test_many_overlapping_groups(world):
    run_ranks(many_groups, world, timeout=50)
