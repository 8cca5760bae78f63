"""Neural-network building blocks, as ``torch.nn``: Module, Parameter, layers, losses,
``dtrain.nn.functional`` and ``dtrain.nn.init``.

>>> import dtrain.nn as nn
>>> model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
"""
from . import functional, init
from .modules import *  # noqa: F401,F403
from .parameter import Buffer, Parameter


def __getattr__(name):
    # dtrain.nn.parallel needs dtrain.distributed (ZeroMQ): load it on first use only
    if name == "parallel":
        import importlib
        return importlib.import_module(".parallel", __name__)
    raise AttributeError(f"module 'dtrain.nn' has no attribute '{name}'")
