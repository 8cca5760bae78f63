"""The functional forms of the layers, as ``torch.nn.functional``. Every function here is
differentiable; the implementations live in dtrain.ops.

>>> import dtrain.nn.functional as F
>>> loss = F.cross_entropy(model(x), y)
"""
from ..ops.activation import dropout, gelu, leaky_relu
from ..ops.conv import conv2d
from ..ops.index import embedding
from ..ops.linalg import linear
from ..ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                        l1_loss, mse_loss, nll_loss)
from ..ops.norm import batch_norm, layer_norm
from ..ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from ..ops.pointwise import sigmoid, tanh
from ..ops.reduce import log_softmax as _log_softmax
from ..ops.reduce import softmax as _softmax
from ..ops.pointwise import relu as _relu


def relu(input, inplace=False):
    """max(0, x); ``inplace=True`` overwrites ``input``. >>> F.relu(x)"""
    return input.relu_() if inplace else _relu(input)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along ``dim``. >>> probs = F.softmax(logits, dim=1)"""
    return _softmax(input, _implicit_dim("softmax", input, dim), dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log(softmax(x)) along ``dim``, computed stably. >>> F.log_softmax(logits, dim=1)"""
    return _log_softmax(input, _implicit_dim("log_softmax", input, dim), dtype)


def _implicit_dim(name, input, dim):
    if dim is not None:
        return dim
    # torch's legacy choice when dim is left out (it also warns)
    import warnings
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  "to include dim=X as an argument.", UserWarning, stacklevel=4)
    return 0 if input.dim() in (0, 1, 3) else 1


def flatten(input, start_dim=0, end_dim=-1):
    return input.flatten(start_dim, end_dim)


__all__ = ["adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d", "batch_norm",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "conv2d", "cross_entropy",
           "dropout", "embedding", "gelu", "l1_loss", "layer_norm", "leaky_relu", "linear",
           "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "relu", "sigmoid", "softmax",
           "tanh"]
