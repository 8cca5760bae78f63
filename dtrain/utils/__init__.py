"""Utilities shaped like ``torch.utils``; for now the data loading package.

>>> from dtrain.utils.data import DataLoader, TensorDataset
"""
from . import data
