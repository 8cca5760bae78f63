"""dtrain: a small, readable PyTorch-like tensor library with autograd over numpy, built for
data-parallel training across processes.

>>> import dtrain
>>> x = dtrain.ones(2, 2, requires_grad=True)
>>> y = x + 2
>>> y.grad_fn
<AddBackward0 object at 0x...>
"""
from . import _dtypes
from ._dtypes import (device, float16, float32, float64, get_default_dtype, int8, int16, int32,
                      int64, set_default_dtype, uint8)
from ._dtypes import bool_ as bool
from ._dtypes import dtype
from .tensor import Size, Tensor
from . import _tensor_methods  # noqa: F401  (attaches ops to Tensor)
from . import autograd
from ._repr import set_printoptions
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (arange, as_tensor, asarray, empty, empty_like, eye, from_numpy, full,
                       full_like, linspace, manual_seed, normal, ones, ones_like, rand,
                       rand_like, randint, randint_like, randn, randn_like, randperm, seed,
                       tensor, zeros, zeros_like)
from .ops.arith import (add, div, divide, floor_divide, mul, pow, remainder, rsub, square, sub,
                        true_divide)
from .ops.compare import (allclose, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, ceil, eq,
                          equal, floor, ge, greater, greater_equal, gt, isclose, isfinite, isinf,
                          isnan, le, less, less_equal, logical_and, logical_not, logical_or,
                          logical_xor, lt, ne, not_equal, round, sign, trunc)
from .ops.pointwise import (abs, absolute, clamp, clip, clone, cos, exp, log, masked_fill,
                            maximum, minimum, neg, negative, reciprocal, relu, rsqrt, sigmoid,
                            sin, sqrt, tanh, where)
from .ops.index import gather
from .ops.linalg import bmm, dot, ger, matmul, mm, mv, outer
from .ops.reduce import (all, amax, amin, any, argmax, argmin, argsort, log_softmax, logsumexp,
                         max, mean, min, prod, softmax, sort, std, sum, var)
from . import return_types
from .ops.shape import (cat, chunk, concat, concatenate, expand_as, flatten, flip, narrow,
                        permute, repeat, reshape, split, squeeze, stack, swapaxes, swapdims, t,
                        transpose, unbind, unsqueeze)

from .serialization import load, save
from . import datasets, nn, optim, utils  # noqa: E402  (they import the names above)

__version__ = "0.1.0"

half = float16
float = float32
double = float64
short = int16
long = int64
int = int32

FloatTensor = DoubleTensor = LongTensor = Tensor  # names only; construct with dtrain.tensor


def __getattr__(name):
    # the communication packages load ZeroMQ and threads: import them on first use only
    if name in ("distributed", "multiprocessing"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'dtrain' has no attribute '{name}'")


def is_tensor(obj):
    """True if ``obj`` is a dtrain Tensor.

    >>> dtrain.is_tensor(dtrain.ones(2)), dtrain.is_tensor([1.0, 2.0])
    (True, False)
    """
    return isinstance(obj, Tensor)


def numel(input):
    """The number of elements of ``input``.

    >>> dtrain.numel(dtrain.zeros(2, 3))
    6
    """
    return input.numel()


def detach(input):
    """A tensor sharing ``input``'s storage but outside the autograd graph (``input.detach()``).

    >>> dtrain.detach(dtrain.ones(2, requires_grad=True)).requires_grad
    False
    """
    return input.detach()


def is_floating_point(input):
    """True if ``input``'s dtype is a floating-point type.

    >>> dtrain.is_floating_point(dtrain.ones(2)), dtrain.is_floating_point(dtrain.tensor([1, 2]))
    (True, False)
    """
    return input.is_floating_point()


def result_type(tensor1, tensor2):
    """The dtype torch's promotion rules give for an op between the two operands (tensors or
    Python numbers).

    >>> dtrain.result_type(dtrain.tensor([1, 2]), 1.0)
    dtrain.float32
    """
    from .ops.arith import promote
    return _dtypes.from_np(promote(tensor1, tensor2))


def promote_types(type1, type2):
    """The smallest dtype both dtypes promote to, by torch's rules: across categories (bool,
    integer, floating) the higher category's dtype wins, where numpy would widen further.

    >>> dtrain.promote_types(dtrain.int32, dtrain.float16)
    dtrain.float16
    """
    return _dtypes.from_np(_dtypes._promote_pair(_dtypes.to_dtype(type1).np,
                                                  _dtypes.to_dtype(type2).np))


class cuda:
    """dtrain runs on the CPU only: CUDA is never available.

    >>> dtrain.cuda.is_available(), dtrain.cuda.device_count()
    (False, 0)
    """

    @staticmethod
    def is_available():
        return False

    @staticmethod
    def device_count():
        return 0
