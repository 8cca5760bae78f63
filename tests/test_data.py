"""dtrain.utils.data: datasets, samplers, DataLoader and collation.

Deterministic behaviour (sequential batches, drop_last, len, collation, errors) is tested with
`lib`, parametrized over dtrain and torch, or by computing the same thing in both and comparing:
a test that passes on torch encodes torch's behaviour. Shuffles are not compared with torch
(the random streams differ); they are tested for reproducibility and for covering each sample
exactly once.
"""
import collections
import warnings

import numpy as np
import pytest

import dtrain
import dtrain.utils.data
from dtrain.utils.data import (BatchSampler, DataLoader, RandomSampler, SequentialSampler,
                               Subset, TensorDataset, default_collate, random_split)
from dtrain.utils.data import dataloader as dataloader_module
from dtrain.utils.data.dataset import _tensor_batch

Point = collections.namedtuple("Point", "x y")


def plain(x):
    """A batch of either library as comparable Python data: tensors become (dtype, shape,
    values); containers keep their type's name."""
    if type(x).__name__ == "Tensor":
        return ("tensor", str(x.dtype).rsplit(".", 1)[-1], tuple(x.shape), x.tolist())
    if isinstance(x, collections.abc.Mapping):
        return (type(x).__name__, {k: plain(v) for k, v in x.items()})
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [plain(v) for v in x])
    return x


def rows(lib, n, dtype=np.float32):
    """A TensorDataset of n samples: (x, y) with x[i] = [2i, 2i+1] and y[i] = i."""
    x = np.arange(2 * n).reshape(n, 2).astype(dtype)
    return lib.utils.data.TensorDataset(lib.tensor(x), lib.tensor(np.arange(n)))


def epoch(loader):
    """All sample labels of one pass over a loader of rows(...), in order."""
    return [int(i) for _, y in loader for i in y.tolist()]


# --- sequential loading, as torch ----------------------------------------------------------------

@pytest.mark.parametrize("n,batch_size,drop_last", [(10, 3, False), (10, 3, True), (9, 3, True),
                                                    (4, 8, False), (4, 8, True), (5, 1, False)])
def test_sequential_batches_and_len(lib, n, batch_size, drop_last):
    loader = lib.utils.data.DataLoader(rows(lib, n), batch_size=batch_size, drop_last=drop_last)
    full, rest = divmod(n, batch_size)
    sizes = [batch_size] * full + ([rest] if rest and not drop_last else [])
    batches = list(loader)
    assert len(loader) == len(batches) == len(sizes)
    start = 0
    for (x, y), size in zip(batches, sizes):
        assert y.tolist() == list(range(start, start + size))
        assert x.tolist() == np.arange(2 * start, 2 * (start + size)).reshape(size, 2).tolist()
        assert str(x.dtype).endswith("float32") and str(y.dtype).endswith("int64")
        start += size


def test_batches_equal_torch_for_plain_python_datasets(torch):
    samples = [{"id": i, "w": i / 4, "name": f"s{i}", "pair": (i, [i, -i])} for i in range(7)]
    for kw in [dict(batch_size=3), dict(batch_size=3, drop_last=True), dict(batch_size=None)]:
        ours = list(DataLoader(samples, **kw))
        theirs = list(torch.utils.data.DataLoader(samples, **kw))
        assert plain(ours) == plain(theirs), kw


def test_batch_sampler_and_sampler_options(lib):
    D = lib.utils.data
    ds = rows(lib, 10)
    batches = [[3, 1], [0, 9, 5], [2]]
    assert [y.tolist() for _, y in D.DataLoader(ds, batch_sampler=batches)] == batches
    loader = D.DataLoader(ds, batch_size=4, sampler=[9, 8, 7, 6, 5])
    assert [y.tolist() for _, y in loader] == [[9, 8, 7, 6], [5]] and len(loader) == 2
    unbatched = list(D.DataLoader(ds, batch_size=None))
    assert len(unbatched) == 10 and unbatched[4][1].shape == () and int(unbatched[4][1]) == 4


@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler(lib, drop_last):
    D = lib.utils.data
    sampler = D.BatchSampler(D.SequentialSampler(range(10)), batch_size=3, drop_last=drop_last)
    expected = [[0, 1, 2], [3, 4, 5], [6, 7, 8]] + ([] if drop_last else [[9]])
    assert list(sampler) == expected and len(sampler) == len(expected)


def test_iterable_dataset_batches_and_len(lib):
    D = lib.utils.data

    class Count(D.IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7

    for drop_last, expected in [(False, [[0, 1, 2], [3, 4, 5], [6]]),
                                (True, [[0, 1, 2], [3, 4, 5]])]:
        loader = D.DataLoader(Count(), batch_size=3, drop_last=drop_last)
        assert [b.tolist() for b in loader] == expected and len(loader) == len(expected)
    assert list(D.DataLoader(Count(), batch_size=None)) == list(range(7))
    assert list(Count() + Count()) == list(range(7)) * 2


def test_concat_dataset(lib):
    D = lib.utils.data
    ds = D.ConcatDataset([range(3), range(10, 14)])
    assert len(ds) == 7 and ds.cumulative_sizes == [3, 7]
    assert [ds[i] for i in range(-7, 7)] == [0, 1, 2, 10, 11, 12, 13] * 2
    with pytest.raises(ValueError):
        ds[-8]
    both = D.TensorDataset(lib.arange(3)) + D.TensorDataset(lib.arange(5, 7))
    assert [int(s[0]) for s in both] == [0, 1, 2, 5, 6]


def test_subset_and_tensor_dataset_indexing(lib):
    D = lib.utils.data
    sub = D.Subset(rows(lib, 6), [5, 0, 3])
    assert len(sub) == 3 and int(sub[0][1]) == 5 and sub[[2, 0]][1].tolist() == [3, 5]
    assert [int(y) for _, y in sub.__getitems__([1, 2])] == [0, 3]


# --- collation, as torch -------------------------------------------------------------------------

COLLATE_CASES = {
    "ints": lambda T: [0, 1, 2],
    "floats": lambda T: [0.5, 1.5],
    "bools": lambda T: [True, False],
    "int then float": lambda T: [1, 2.5],
    "float then int": lambda T: [2.5, 1],
    "numpy float32 scalars": lambda T: [np.float32(1), np.float32(2)],
    "numpy int32 scalars": lambda T: [np.int32(1), np.int32(3)],
    "numpy float64 scalars": lambda T: [np.float64(1.5)],
    "numpy bool scalars": lambda T: [np.bool_(True), np.bool_(False)],
    "numpy arrays": lambda T: [np.arange(3, dtype=np.int32), np.ones(3, dtype=np.int32)],
    "numpy 0-d arrays": lambda T: [np.array(1.0), np.array(2.0)],
    "tensors": lambda T: [T(np.zeros((2, 2), np.float32)), T(np.ones((2, 2), np.float32))],
    "0-d tensors": lambda T: [T(np.array(3)), T(np.array(4))],
    "strings": lambda T: ["a", "bc"],
    "bytes": lambda T: [b"a", b"b"],
    "dicts": lambda T: [{"x": 1, "y": T(np.ones(2))}, {"x": 2, "y": T(np.zeros(2))}],
    "ordered dicts": lambda T: [collections.OrderedDict(b=1, a=2.0)] * 2,
    "namedtuples": lambda T: [Point(1, 2.0), Point(3, 4.0)],
    "tuples": lambda T: [(T(np.ones(3)), 0), (T(np.zeros(3)), 1)],
    "lists": lambda T: [[1, 2], [3, 4]],
    "nested": lambda T: [{"a": (1, [2.0, T(np.arange(2))]), "b": "s", "c": Point([1], {"k": 2})},
                         {"a": (3, [4.0, T(np.arange(2))]), "b": "t", "c": Point([5], {"k": 6})}],
}


@pytest.mark.parametrize("case", COLLATE_CASES)
def test_default_collate_matches_torch(torch, case):
    make = COLLATE_CASES[case]
    ours = default_collate(make(dtrain.tensor))
    theirs = torch.utils.data.default_collate(make(torch.tensor))
    assert plain(ours) == plain(theirs)


def test_default_collate_dtypes():
    assert plain(default_collate([1, 2.5])) == ("tensor", "float32", (2,), [1.0, 2.5])
    assert plain(default_collate([2.5, 1])) == ("tensor", "float64", (2,), [2.5, 1.0])
    assert plain(default_collate([(1, "a"), (2, "b")])) == (
        "list", [("tensor", "int64", (2,), [1, 2]), ("list", ["a", "b"])])


COLLATE_ERRORS = {
    "objects": lambda T: [object(), object()],
    "None": lambda T: [None, None],
    "string arrays": lambda T: [np.array(["a"]), np.array(["b"])],
    "ragged lists": lambda T: [[1, 2], [1]],
    "ragged tensors": lambda T: [T(np.zeros(2)), T(np.zeros(3))],
    "empty batch": lambda T: [],
}


@pytest.mark.parametrize("case", COLLATE_ERRORS)
def test_default_collate_errors(lib, case):
    with pytest.raises((TypeError, RuntimeError, IndexError)) as info:
        lib.utils.data.default_collate(COLLATE_ERRORS[case](lib.tensor))
    expected = {"objects": TypeError, "None": TypeError, "string arrays": TypeError,
                "ragged lists": RuntimeError, "ragged tensors": RuntimeError,
                "empty batch": IndexError}[case]
    assert info.type is expected


def test_default_convert_matches_torch(torch):
    for sample in [(np.array([0, 1]), 2), {"a": np.float32(3), "b": "s"}, Point(np.ones(2), 1),
                   [np.array(["str"])], 5]:
        ours = dtrain.utils.data.default_convert(sample)
        assert plain(ours) == plain(torch.utils.data.default_convert(sample))


# --- errors, as torch ----------------------------------------------------------------------------

def _iterable(D):
    class Stream(D.IterableDataset):
        def __iter__(self):
            return iter(range(3))
    return Stream()


LOADER_ERRORS = {
    "sampler and shuffle": lambda D, ds: D.DataLoader(ds, sampler=[0, 1], shuffle=True),
    "batch_sampler and batch_size": lambda D, ds: D.DataLoader(ds, batch_sampler=[[0]],
                                                               batch_size=2),
    "batch_sampler and shuffle": lambda D, ds: D.DataLoader(ds, batch_sampler=[[0]], shuffle=True),
    "batch_sampler and sampler": lambda D, ds: D.DataLoader(ds, batch_sampler=[[0]], sampler=[0]),
    "batch_sampler and drop_last": lambda D, ds: D.DataLoader(ds, batch_sampler=[[0]],
                                                              drop_last=True),
    "no batch_size and drop_last": lambda D, ds: D.DataLoader(ds, batch_size=None, drop_last=True),
    "negative num_workers": lambda D, ds: D.DataLoader(ds, num_workers=-1),
    "negative timeout": lambda D, ds: D.DataLoader(ds, timeout=-1),
    "prefetch_factor without workers": lambda D, ds: D.DataLoader(ds, prefetch_factor=2),
    "persistent_workers without workers": lambda D, ds: D.DataLoader(ds, persistent_workers=True),
    "zero batch_size": lambda D, ds: D.DataLoader(ds, batch_size=0),
    "iterable and shuffle": lambda D, ds: D.DataLoader(_iterable(D), shuffle=True),
    "iterable and sampler": lambda D, ds: D.DataLoader(_iterable(D), sampler=[0]),
    "iterable and batch_sampler": lambda D, ds: D.DataLoader(_iterable(D), batch_sampler=[[0]]),
    "set batch_size after init": lambda D, ds: setattr(D.DataLoader(ds), "batch_size", 2),
    "bool batch_size": lambda D, ds: D.BatchSampler(range(3), batch_size=True, drop_last=False),
    "non-bool drop_last": lambda D, ds: D.BatchSampler(range(3), batch_size=2, drop_last=1),
    "zero num_samples": lambda D, ds: D.RandomSampler(ds, num_samples=0),
    "empty dataset to shuffle": lambda D, ds: D.RandomSampler(range(0)),
    "lengths do not sum to len": lambda D, ds: D.random_split(ds, [2, 2]),
    "negative fraction": lambda D, ds: D.random_split(ds, [1.5, -0.5]),
}


@pytest.mark.parametrize("case", LOADER_ERRORS)
def test_option_errors_are_value_errors(lib, case):
    with pytest.raises(ValueError):
        LOADER_ERRORS[case](lib.utils.data, rows(lib, 5))


def test_other_errors(lib):
    D = lib.utils.data
    with pytest.raises(TypeError):
        D.RandomSampler(range(3), replacement=1)
    with pytest.raises(AssertionError):
        D.TensorDataset(lib.zeros(3), lib.zeros(4))
    with pytest.raises(NotImplementedError):
        D.Dataset()[0]
    with pytest.raises(TypeError):
        len(D.Sampler())

    class Shifted(D.Subset):
        def __getitem__(self, i):
            return super().__getitem__(i) + 1
    with pytest.raises(NotImplementedError):
        Shifted(range(3), [0])


def test_pin_memory_warns_on_cpu(lib):
    with pytest.warns(UserWarning, match="pin_memory"):
        iter(lib.utils.data.DataLoader(range(3), pin_memory=True))


def test_generator_must_be_a_numpy_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        DataLoader(range(3), shuffle=True, generator=0)


# --- randomness ----------------------------------------------------------------------------------

def test_shuffle_is_reproducible_under_manual_seed():
    loader = DataLoader(rows(dtrain, 50), batch_size=8, shuffle=True)
    dtrain.manual_seed(0)
    first = [epoch(loader), epoch(loader)]
    dtrain.manual_seed(0)
    again = [epoch(loader), epoch(loader)]
    assert first == again
    assert first[0] != first[1] and first[0] != list(range(50))


def test_shuffle_with_numpy_generator_is_reproducible():
    def two_epochs(seed):
        loader = DataLoader(rows(dtrain, 30), batch_size=4, shuffle=True,
                            generator=np.random.default_rng(seed))
        return [epoch(loader), epoch(loader)]
    assert two_epochs(1) == two_epochs(1) != two_epochs(2)


@pytest.mark.parametrize("n,batch_size", [(103, 10), (64, 8), (5, 7)])
def test_shuffle_visits_every_sample_once_per_epoch(n, batch_size):
    loader = DataLoader(rows(dtrain, n), batch_size=batch_size, shuffle=True)
    for _ in range(3):
        assert sorted(epoch(loader)) == list(range(n))
    dropped = epoch(DataLoader(rows(dtrain, n), batch_size=batch_size, shuffle=True,
                               drop_last=True))
    assert len(dropped) == len(set(dropped)) == n // batch_size * batch_size


def test_random_sampler_draws_one_global_seed_per_epoch():
    draws = []
    for n in (10, 1000):
        dtrain.manual_seed(3)
        list(RandomSampler(range(n)))
        draws.append(dtrain.rand(2).tolist())
    assert draws[0] == draws[1]


def test_random_sampler_options():
    rng = np.random.default_rng(0)
    with_replacement = list(RandomSampler(range(4), replacement=True, num_samples=50,
                                          generator=rng))
    assert len(with_replacement) == 50 and set(with_replacement) <= {0, 1, 2, 3}
    longer = list(RandomSampler(range(4), num_samples=10, generator=rng))
    assert sorted(longer[:4]) == sorted(longer[4:8]) == [0, 1, 2, 3] and len(longer) == 10
    assert len(RandomSampler(range(4), num_samples=10)) == 10
    assert sorted(dtrain.utils.data.SubsetRandomSampler([7, 3, 5])) == [3, 5, 7]


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.3, 0.4], [0.5, 0.5], [1.0], [0.34, 0.66],
                                     [0.1] * 10])
def test_random_split_partitions_like_torch(lib, lengths):
    D = lib.utils.data
    n = 10 if lengths != [0.34, 0.66] else 7
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parts = D.random_split(range(n), lengths)
    assert all(isinstance(p, D.Subset) for p in parts)
    if lengths == [0.34, 0.66]:
        assert [len(p) for p in parts] == [3, 4]  # floors 2 and 4, the remainder goes first
    elif isinstance(lengths[0], int):
        assert [len(p) for p in parts] == lengths
    indices = [i for p in parts for i in p]
    assert sorted(indices) == list(range(n))
    assert not caught


def test_random_split_warns_on_an_empty_split(lib):
    with pytest.warns(UserWarning, match="index 1 is 0"):
        lib.utils.data.random_split(range(1), [0.5, 0.5])


def test_random_split_is_reproducible():
    dtrain.manual_seed(7)
    first = [list(p) for p in random_split(range(20), [0.5, 0.5])]
    dtrain.manual_seed(7)
    assert [list(p) for p in random_split(range(20), [0.5, 0.5])] == first
    with_rng = [list(p) for p in random_split(range(20), [5, 15],
                                              generator=np.random.default_rng(1))]
    assert with_rng == [list(p) for p in random_split(range(20), [5, 15],
                                                      generator=np.random.default_rng(1))]


# --- the TensorDataset fast path ------------------------------------------------------------------

def per_sample(batch):
    """default_collate behind another function, which turns the fast path off."""
    return default_collate(batch)


def datasets_for_fast_path():
    x = dtrain.tensor(np.random.default_rng(0).standard_normal((40, 3, 2)))
    ds = TensorDataset(x, dtrain.arange(40, dtype=dtrain.int32), dtrain.arange(40) % 3 == 0,
                       dtrain.arange(40.))
    dtrain.manual_seed(0)
    train, _ = random_split(ds, [0.75, 0.25])
    return {"tensor dataset": ds, "random_split part": train,
            "subset of subset": Subset(train, list(range(29, -1, -2))),
            "tensor indices": Subset(ds, dtrain.tensor([39, 0, -1, 5] * 5))}


@pytest.mark.parametrize("name", datasets_for_fast_path())
@pytest.mark.parametrize("shuffle", [False, True])
def test_fast_path_equals_per_sample_path(name, shuffle):
    ds = datasets_for_fast_path()[name]
    assert _tensor_batch(ds, [0, 1]) is not None
    batches = []
    for collate in (None, per_sample):
        dtrain.manual_seed(1)
        batches.append(plain(list(DataLoader(ds, batch_size=6, shuffle=shuffle,
                                             collate_fn=collate))))
    assert batches[0] == batches[1]


def test_fast_path_indexes_once_instead_of_stacking(monkeypatch):
    def no_stack(*args, **kw):
        raise AssertionError("the fast path should not stack samples")
    monkeypatch.setattr(dataloader_module, "stack", no_stack)
    assert epoch(DataLoader(rows(dtrain, 9), batch_size=4)) == list(range(9))


def test_fast_path_gradients_equal_per_sample_path():
    grads = []
    for collate in (None, per_sample):
        x = dtrain.arange(12.).reshape(6, 2).requires_grad_()
        for (xb,) in DataLoader(TensorDataset(x), batch_size=4, sampler=[5, 0, 5, 2, 1],
                                collate_fn=collate):
            (xb * xb).sum().backward()
        grads.append(x.grad.tolist())
    assert grads[0] == grads[1]


def test_overridden_getitem_is_respected():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            return tuple(2 * t[i] for t in self.tensors)
    ds = Doubled(dtrain.arange(4))
    assert _tensor_batch(ds, [0]) is None
    assert [b[0].tolist() for b in DataLoader(ds, batch_size=2)] == [[0, 2], [4, 6]]


def test_num_workers_loads_in_process_with_the_same_batches():
    ds = rows(dtrain, 11)
    plain_batches = plain(list(DataLoader(ds, batch_size=3)))
    assert plain(list(DataLoader(ds, batch_size=3, num_workers=2))) == plain_batches
    assert dtrain.utils.data.get_worker_info() is None
    assert len(DataLoader(ds, batch_size=3, num_workers=2, persistent_workers=True)) == 4


def test_sequential_sampler(lib):
    assert list(lib.utils.data.SequentialSampler(range(4))) == [0, 1, 2, 3]
    assert list(SequentialSampler("abc")) == [0, 1, 2]
    assert list(BatchSampler([4, 2, 0], 2, False)) == [[4, 2], [0]]
