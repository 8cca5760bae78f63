"""Samplers: the order in which a DataLoader visits a dataset's indices, one by one
(SequentialSampler, RandomSampler, SubsetRandomSampler) or in batches (BatchSampler)."""
import itertools

import numpy as np

from ... import creation


def _rng(generator):
    """The numpy Generator to draw from: ``generator`` itself, or else dtrain's global
    generator as it is *now* (``dtrain.manual_seed`` replaces it, so it must not be cached)."""
    if generator is None:
        return creation.default_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator must be a numpy.random.Generator (dtrain's random numbers come "
                    f"from numpy; make one with numpy.random.default_rng(seed)), but got "
                    f"{type(generator).__name__}.")


class Sampler:
    """Base class of samplers: ``__iter__`` yields dataset indices (or lists of them, for a
    batch sampler); ``__len__`` is optional but needed for ``len(DataLoader)``.

    >>> class Reversed(Sampler):
    ...     def __init__(self, data_source):
    ...         self.data_source = data_source
    ...     def __iter__(self):
    ...         return iter(range(len(self.data_source) - 1, -1, -1))
    ...     def __len__(self):
    ...         return len(self.data_source)
    >>> list(Reversed(range(3)))
    [2, 1, 0]
    """

    # NOTE: no default __len__, as in torch: list(sampler) must fall back to __iter__ when a
    # subclass has no length, and a __len__ that raises would stop it.
    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """Indices 0, 1, ..., len(data_source) - 1, in order.

    >>> list(SequentialSampler(range(4)))
    [0, 1, 2, 3]
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """Indices in random order: a fresh permutation each epoch, or with ``replacement=True``,
    ``num_samples`` independent draws.

    ``generator`` is a ``numpy.random.Generator`` (dtrain's stand-in for ``torch.Generator``).
    Without one, each epoch draws one seed from dtrain's global generator, as torch does, so
    ``dtrain.manual_seed`` makes the order reproducible. The orders differ from torch's.

    >>> sorted(RandomSampler(range(5)))
    [0, 1, 2, 3, 4]
    >>> len(RandomSampler(range(5), replacement=True, num_samples=8))
    8
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got "
                            f"replacement={replacement}")
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")
        if generator is not None:
            _rng(generator)

    @property
    def num_samples(self):
        # the dataset may grow or shrink between epochs
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        if self.generator is None:
            # one draw from the global generator per epoch, whatever the dataset size, so the
            # random numbers a training loop draws afterwards do not depend on it
            rng = np.random.default_rng(int(_rng(None).integers(2 ** 63)))
        else:
            rng = self.generator
        if self.replacement:
            yield from rng.integers(0, n, size=self.num_samples).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from rng.permutation(n).tolist()
        yield from rng.permutation(n).tolist()[:self.num_samples % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order each epoch.

    >>> sorted(SubsetRandomSampler([7, 3, 5]))
    [3, 5, 7]
    """

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator
        if generator is not None:
            _rng(generator)

    def __iter__(self):
        for i in _rng(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``; the last, shorter one is
    dropped when ``drop_last``.

    >>> list(BatchSampler(SequentialSampler(range(10)), batch_size=3, drop_last=False))
    [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    >>> list(BatchSampler(SequentialSampler(range(10)), batch_size=3, drop_last=True))
    [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        indices = iter(self.sampler)
        if self.drop_last:
            # zip over batch_size references to one iterator stops at the first short batch
            for batch in zip(*[indices] * self.batch_size):
                yield list(batch)
            return
        batch = list(itertools.islice(indices, self.batch_size))
        while batch:
            yield batch
            batch = list(itertools.islice(indices, self.batch_size))

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
