"""Neural-network building blocks, as ``torch.nn``: Module, Parameter, layers, losses,
``dtrain.nn.functional`` and ``dtrain.nn.init``.

>>> import dtrain.nn as nn
>>> model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
"""
from . import functional, init
from .modules import *  # noqa: F401,F403
from .parameter import Buffer, Parameter
