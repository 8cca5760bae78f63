"""Data loading shaped like ``torch.utils.data``: datasets, samplers and the DataLoader.

>>> from dtrain.utils.data import DataLoader, TensorDataset
>>> ds = TensorDataset(dtrain.randn(100, 3), dtrain.randint(0, 2, (100,)))
>>> for x, y in DataLoader(ds, batch_size=32, shuffle=True):
...     pass

Randomness (shuffling, random_split) comes from dtrain's global generator, so
``dtrain.manual_seed`` makes it reproducible; a ``generator=`` argument takes a
``numpy.random.Generator``. DistributedSampler gives each rank its share of a dataset.
"""
from .dataloader import DataLoader, default_collate, default_convert, get_worker_info
from .distributed import DistributedSampler
from .dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset,
                      TensorDataset, random_split)
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                      SubsetRandomSampler)

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset",
           "DistributedSampler",
           "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "Subset",
           "SubsetRandomSampler", "TensorDataset", "default_collate", "default_convert",
           "get_worker_info", "random_split"]
