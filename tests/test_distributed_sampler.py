"""DistributedSampler: torch's semantics (exact without shuffling; with shuffling, the same
properties, since dtrain's random numbers are numpy's), and rank/world from a process group."""
import pytest

import dtrain
from dtrain.utils.data import DataLoader, DistributedSampler, TensorDataset
from multiproc import run_ranks

pytestmark = pytest.mark.timeout(60)

SIZES = list(range(0, 14)) + [17, 31, 100]
REPLICAS = [1, 2, 3, 4, 5, 8]


def shares(n, replicas, **kw):
    """Every rank's list of indices, built in this process."""
    samplers = [DistributedSampler(range(n), num_replicas=replicas, rank=r, **kw)
                for r in range(replicas)]
    return samplers, [list(s) for s in samplers]


def interleave(lists):
    """The global order the ranks read from: rank r took positions r, r + R, r + 2R, ..."""
    return [lst[i] for i in range(len(lists[0])) for lst in lists]


@pytest.mark.parametrize("drop_last", [False, True])
def test_known_splits(drop_last):
    _, got = shares(10, 4, shuffle=False, drop_last=drop_last)
    if drop_last:
        assert got == [[0, 4], [1, 5], [2, 6], [3, 7]]
    else:  # padded with the first indices again
        assert got == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]
    _, got = shares(1, 3, shuffle=False)
    assert got == [[0], [0], [0]]


@pytest.mark.torch
@pytest.mark.parametrize("drop_last", [False, True])
def test_without_shuffle_matches_torch(torch, drop_last):
    from torch.utils.data import DistributedSampler as TorchSampler
    for n in SIZES:
        for replicas in REPLICAS:
            samplers, got = shares(n, replicas, shuffle=False, drop_last=drop_last)
            for r in range(replicas):
                ref = TorchSampler(range(n), num_replicas=replicas, rank=r, shuffle=False,
                                   drop_last=drop_last)
                where = f"n={n} replicas={replicas} rank={r} drop_last={drop_last}"
                assert got[r] == list(ref), where
                assert len(samplers[r]) == len(ref), where
                assert (samplers[r].num_samples, samplers[r].total_size) == \
                    (ref.num_samples, ref.total_size), where


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffle_splits_one_permutation(drop_last):
    for n in SIZES[1:]:
        for replicas in REPLICAS:
            samplers, got = shares(n, replicas, drop_last=drop_last, seed=3)
            where = f"n={n} replicas={replicas} drop_last={drop_last}"
            for s, lst in zip(samplers, got):
                assert len(lst) == len(s) == s.num_samples, where
            order = interleave(got)
            assert len(order) == samplers[0].total_size, where
            if drop_last:  # a prefix of a permutation: no index twice
                assert len(set(order)) == len(order) and set(order) <= set(range(n)), where
            else:  # a permutation of the dataset, padded with its own beginning
                assert sorted(order[:n]) == list(range(n)), where
                padding = order[n:]
                assert padding == (order[:n] * (len(padding) // n + 1))[:len(padding)], where


def test_shuffle_depends_on_epoch_and_seed_only():
    def order(epoch, seed=0, rank=0):
        s = DistributedSampler(range(50), num_replicas=2, rank=rank, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(0) == order(0)  # the same on every rank's process for an epoch
    assert order(0) != order(1)
    assert order(1) == order(1)
    assert order(0, seed=1) != order(0)
    assert sorted(order(0) + order(0, rank=1)) == list(range(50))
    s = DistributedSampler(range(50), num_replicas=2, rank=0)
    assert list(s) == list(s)  # iterating again without set_epoch: the same order


def test_invalid_rank_and_missing_group():
    for rank in (-1, 2):
        with pytest.raises(ValueError, match="Invalid rank"):
            DistributedSampler(range(4), num_replicas=2, rank=rank)
    with pytest.raises(RuntimeError, match="process group"):
        DistributedSampler(range(4))  # no process group in this process


def test_with_a_dataloader():
    ds = TensorDataset(dtrain.arange(10))
    sampler = DistributedSampler(ds, num_replicas=3, rank=1, shuffle=False)
    batches = [b[0].tolist() for b in DataLoader(ds, batch_size=2, sampler=sampler)]
    assert batches == [[1, 4], [7, 0]]


def _from_group(rank, world):
    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    sampler = DistributedSampler(range(11))
    out = {"rank": sampler.rank, "replicas": sampler.num_replicas}
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        out[epoch] = list(sampler)
    dist.destroy_process_group()
    return out


def test_rank_and_replicas_from_the_process_group():
    runs = run_ranks(_from_group, 3, timeout=40)
    assert [(r["rank"], r["replicas"]) for r in runs] == [(0, 3), (1, 3), (2, 3)]
    for epoch in (0, 1):
        order = interleave([r[epoch] for r in runs])  # the ranks agree on one permutation
        assert sorted(order[:11]) == list(range(11)) and order[11:] == order[:1]
        local = []  # and it is the one this process computes for that epoch
        for r in range(3):
            sampler = DistributedSampler(range(11), num_replicas=3, rank=r)
            sampler.set_epoch(epoch)
            local.append(list(sampler))
        assert [run[epoch] for run in runs] == local
    assert runs[0][0] != runs[0][1]
