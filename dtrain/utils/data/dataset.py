"""Datasets: map-style (Dataset, TensorDataset, Subset, ConcatDataset), iterable-style
(IterableDataset, ChainDataset), and random_split."""
import bisect
import itertools
import math
import warnings

import numpy as np

from ...tensor import Tensor
from .sampler import _rng


class Dataset:
    """Base class of map-style datasets: ``dataset[i]`` is sample ``i``. Subclasses define
    ``__getitem__`` and usually ``__len__`` (which samplers need); they may also define
    ``__getitems__(indices)``, returning a list of samples, to fetch a batch faster.

    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return i * i
    >>> list(DataLoader(Squares(), batch_size=2))
    [tensor([0, 1]), tensor([4, 9])]
    """

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class of datasets that are a stream of samples: subclasses define ``__iter__``.

    >>> class Count(IterableDataset):
    ...     def __iter__(self):
    ...         return iter(range(3))
    >>> list(DataLoader(Count(), batch_size=2))
    [tensor([0, 1]), tensor([2])]
    """

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are rows: ``dataset[i]`` is ``tuple(t[i] for t in tensors)``.

    A DataLoader with the default collate_fn batches it by indexing each tensor once with the
    whole batch of indices (see ``_tensor_batch``), not by stacking rows.

    >>> ds = TensorDataset(dtrain.arange(6).reshape(3, 2), dtrain.tensor([0, 1, 0]))
    >>> ds[1]
    (tensor([2, 3]), tensor(1))
    """

    def __init__(self, *tensors):
        if any(tensors[0].size(0) != t.size(0) for t in tensors):
            raise AssertionError(f"Size mismatch between tensors: their first dimensions are "
                                 f"{[t.size(0) for t in tensors]} but must all be equal.")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].size(0)


class ConcatDataset(Dataset):
    """The samples of several map-style datasets, one after another.

    >>> ds = ConcatDataset([range(3), range(10, 12)])
    >>> len(ds), ds[3]
    (5, 10)
    """

    @staticmethod
    def cumsum(sequence):
        return list(itertools.accumulate(len(d) for d in sequence))

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        if any(isinstance(d, IterableDataset) for d in self.datasets):
            raise AssertionError("ConcatDataset does not support IterableDataset; use "
                                 "ChainDataset to chain iterable datasets.")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - start]


class ChainDataset(IterableDataset):
    """The samples of several iterable datasets, one stream after another.

    >>> list(ChainDataset([Count(), Count()]))  # Count as in IterableDataset's example
    [0, 1, 2, 0, 1, 2]
    """

    def __init__(self, datasets):
        self.datasets = datasets

    def _parts(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            yield d

    def __iter__(self):
        for d in self._parts():
            yield from d

    def __len__(self):
        return sum(len(d) for d in self._parts())


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    >>> Subset(range(10, 20), [4, 0])[0]
    14
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices
        if (type(self).__getitem__ is not Subset.__getitem__
                and type(self).__getitems__ is Subset.__getitems__):
            raise NotImplementedError(
                f"{type(self).__name__} overrides __getitem__ but not __getitems__. When "
                f"subclassing Subset and overriding __getitem__, you must also override "
                f"__getitems__ to ensure DataLoader works correctly with your custom logic. A "
                f"simple implementation:\n\ndef __getitems__(self, indices):\n"
                f"    return [self.__getitem__(idx) for idx in indices]")

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random Subsets of the given lengths, or of the
    given fractions of ``len(dataset)`` (floors, with the remainder handed out one by one from
    the first split on, as torch does).

    ``generator`` is a ``numpy.random.Generator``; without one, dtrain's global generator is
    used, so ``dtrain.manual_seed`` makes the split reproducible (the split differs from
    torch's for the same seed).

    >>> train, val = random_split(range(10), [0.8, 0.2], generator=np.random.default_rng(0))
    >>> len(train), len(val)
    (8, 2)
    """
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(math.floor(len(dataset) * frac))
        for i in range(len(dataset) - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
        for i, length in enumerate(lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an "
                              f"empty dataset.", stacklevel=2)
    if sum(lengths) != len(dataset):
        raise ValueError(f"Sum of input lengths does not equal the length of the input "
                         f"dataset! (the lengths {list(lengths)} sum to {sum(lengths)}, the "
                         f"dataset has {len(dataset)} samples)")
    indices = _rng(generator).permutation(sum(lengths)).tolist()
    return [Subset(dataset, indices[end - length:end])
            for end, length in zip(itertools.accumulate(lengths), lengths)]


def _is_plain(dataset, cls):
    """``dataset`` is a ``cls`` whose subclass, if any, keeps cls's way of fetching samples."""
    kind = type(dataset)
    return (isinstance(dataset, cls) and kind.__getitem__ is cls.__getitem__
            and getattr(kind, "__getitems__", None) is getattr(cls, "__getitems__", None))


def _tensor_batch(dataset, indices):
    """``default_collate([dataset[i] for i in indices])`` for a TensorDataset, possibly behind
    Subsets, computed with one numpy fancy index per tensor instead of ``len(indices)`` row
    views and a stack; None for any other dataset or index kind (the caller then takes the
    per-sample path, which also raises the right error for bad indices)."""
    if len(indices) == 0:  # default_collate([]) raises; leave that to the per-sample path
        return None
    while _is_plain(dataset, Subset):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    if not _is_plain(dataset, TensorDataset):
        return None
    if not all(isinstance(t, Tensor) for t in dataset.tensors):
        return None
    index = np.asarray(indices)
    if index.ndim != 1 or index.dtype.kind not in "iu":
        return None
    # a list, as default_collate returns for a batch of tuples
    return [t[index] for t in dataset.tensors]
