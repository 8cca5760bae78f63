"""Comparisons, logical and rounding ops: no gradient flows through them."""
import numpy as np

from ..tensor import Tensor
from .arith import _broadcast_error, _check_operand

def _compare(ufunc):
    def compare(input, other):
        other = _check_operand(other)
        y = other._data if isinstance(other, Tensor) else other
        try:
            return Tensor._make(np.asarray(ufunc(input._data, y)))
        except ValueError:
            raise _broadcast_error(input, other) from None
    compare.__name__ = ufunc.__name__
    return compare


eq, ne, lt, le, gt, ge = (_compare(f) for f in (np.equal, np.not_equal, np.less, np.less_equal,
                                                np.greater, np.greater_equal))
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne


def _logical(ufunc):
    def logical(input, other=None):
        args = (input._data,) if other is None else (
            input._data, other._data if isinstance(other, Tensor) else other)
        return Tensor._make(np.asarray(ufunc(*args)))
    logical.__name__ = ufunc.__name__
    return logical


logical_and, logical_or, logical_xor, logical_not = (
    _logical(f) for f in (np.logical_and, np.logical_or, np.logical_xor, np.logical_not))
bitwise_and, bitwise_or, bitwise_xor, bitwise_not = (
    _logical(f) for f in (np.bitwise_and, np.bitwise_or, np.bitwise_xor, np.invert))


def _nograd(fn):
    def op(input):
        return Tensor._make(np.asarray(fn(input._data)))
    op.__name__ = fn.__name__
    return op


sign = _nograd(np.sign)
floor = _nograd(np.floor)
ceil = _nograd(np.ceil)
round = _nograd(np.round)
trunc = _nograd(np.trunc)
isnan = _nograd(np.isnan)
isinf = _nograd(np.isinf)
isfinite = _nograd(np.isfinite)


def equal(input, other):
    """True if both tensors have the same shape and elements."""
    return input._data.shape == other._data.shape and bool(np.array_equal(input._data,
                                                                            other._data))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(np.allclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return Tensor._make(np.isclose(input._data, other._data, rtol=rtol, atol=atol,
                                   equal_nan=equal_nan))
