"""Data parallelism: DistributedDataParallel (DDP).

>>> from dtrain.nn.parallel import DistributedDataParallel as DDP
"""
from .distributed import DistributedDataParallel

DDP = DistributedDataParallel

__all__ = ["DistributedDataParallel", "DDP"]
