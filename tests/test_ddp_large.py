"""DDP with buckets of several megabytes, in real processes: float gradients are all-reduced
where they are (collectives.all_reduce over a list, through shared-memory chunks of 2 MB that
cut parameters in two, or joined for the network path with DTRAIN_SHM=0), and with
gradient_as_bucket_view through the bucket's buffer. Every way ends with each rank holding
exactly the mean of the ranks' own gradients."""
import numpy as np
import pytest

from multiproc import run_ranks

# parameter sizes (floats) that straddle the 2 MB chunks: 2.8 MB, 3.6 MB, and small ones
DIMS = (700, 1000, 900, 5)


def local_and_reduced(rank, world, as_view):
    """This rank's own gradients (no DDP), the ones DDP left, and whether DDP reduced the last
    bucket in place."""
    import dtrain
    import dtrain.distributed as dist
    from dtrain.nn.parallel import DistributedDataParallel
    dist.init_process_group("gloo")
    dtrain.manual_seed(0)
    layers = [dtrain.nn.Linear(a, b) for a, b in zip(DIMS, DIMS[1:])]
    model = dtrain.nn.Sequential(layers[0], dtrain.nn.Tanh(), layers[1], dtrain.nn.Tanh(),
                                 layers[2])
    rng = np.random.default_rng(rank)
    x = dtrain.tensor(rng.standard_normal((4, DIMS[0])).astype(np.float32))
    y = dtrain.tensor(rng.integers(0, DIMS[-1], 4))

    def grads(m):
        for p in model.parameters():
            p.grad = None
        dtrain.nn.functional.cross_entropy(m(x), y).backward()
        return [p.grad.numpy().copy() for p in model.parameters()]

    own = grads(model)
    ddp = DistributedDataParallel(model, gradient_as_bucket_view=as_view)
    grads(ddp)  # the first pass makes views of the buffer, with as_view
    reduced = grads(ddp)
    in_place = ddp._buckets[-1].in_place
    dist.destroy_process_group()
    return own, reduced, in_place


@pytest.mark.timeout(90)
@pytest.mark.parametrize("shm", ["1", "0"])
@pytest.mark.parametrize("as_view", [False, True])
def test_large_buckets_hold_the_exact_mean(shm, as_view):
    results = run_ranks(local_and_reduced, 2, as_view, timeout=80, env={"DTRAIN_SHM": shm})
    (own0, reduced0, in_place), (own1, reduced1, _) = results
    assert in_place is (not as_view)
    assert sum(g.nbytes for g in own0) > 3 * (2 << 20)  # several chunks
    for g0, g1, r0, r1 in zip(own0, own1, reduced0, reduced1):
        assert not np.array_equal(g0, g1)  # the ranks' gradients differ
        np.testing.assert_array_equal(r0, (g0 + g1) / np.float32(2))
        np.testing.assert_array_equal(r0, r1)


def test_chunks_cut_the_concatenation_of_the_parts():
    from dtrain.distributed.slots import _chunked
    parts = [np.arange(5), np.arange(5, 5), np.arange(5, 12), np.arange(12, 13)]
    chunks = _chunked(parts, 4)
    assert [c[-1] for c in chunks] == [4, 4, 4, 1]
    for i, chunk in enumerate(chunks):
        cut = np.zeros(chunk[-1], int)
        for piece, at in chunk[:-1]:
            cut[at:at + piece.size] = piece
        np.testing.assert_array_equal(cut, np.arange(13)[4 * i:4 * i + 4])
    assert _chunked([np.arange(0)], 4) == []
