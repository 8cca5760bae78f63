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
eq.__doc__ = "Elementwise ``input == other``, a bool tensor. >>> dtrain.eq(x, 0); x == y"
ne.__doc__ = "Elementwise ``input != other``, a bool tensor. >>> dtrain.ne(x, 0); x != y"
lt.__doc__ = "Elementwise ``input < other``, a bool tensor. >>> dtrain.lt(x, 0); x < y"
le.__doc__ = "Elementwise ``input <= other``, a bool tensor. >>> dtrain.le(x, 0); x <= y"
gt.__doc__ = "Elementwise ``input > other``, a bool tensor. >>> dtrain.gt(x, 0); x > y"
ge.__doc__ = "Elementwise ``input >= other``, a bool tensor. >>> dtrain.ge(x, 0); x >= y"


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
logical_and.__doc__ = "Elementwise logical and, a bool tensor. >>> dtrain.logical_and(x > 0, y > 0)"
logical_or.__doc__ = "Elementwise logical or, a bool tensor. >>> dtrain.logical_or(x > 0, y > 0)"
logical_xor.__doc__ = "Elementwise logical xor, a bool tensor. >>> (x > 0).logical_xor(y > 0)"
logical_not.__doc__ = "Elementwise logical not, a bool tensor. >>> dtrain.logical_not(mask)"
bitwise_and.__doc__ = "Elementwise ``&`` of integer or bool tensors. >>> mask & (x > 0)"
bitwise_or.__doc__ = "Elementwise ``|`` of integer or bool tensors. >>> mask | (x > 0)"
bitwise_xor.__doc__ = "Elementwise ``^`` of integer or bool tensors. >>> mask ^ (x > 0)"
bitwise_not.__doc__ = "Elementwise ``~`` (not, for bools) of integer or bool tensors. >>> ~mask"


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
sign.__doc__ = "-1, 0 or 1 by the sign of each element. >>> dtrain.sign(x)"
floor.__doc__ = "Round each element down. >>> dtrain.floor(dtrain.tensor([-1.5, 1.5]))"
ceil.__doc__ = "Round each element up. >>> dtrain.ceil(dtrain.tensor([-1.5, 1.5]))"
round.__doc__ = "Round to the nearest integer, halves to even. >>> dtrain.round(x * 100) / 100"
trunc.__doc__ = "Round each element toward zero. >>> dtrain.trunc(dtrain.tensor([-1.5, 1.5]))"
isnan.__doc__ = "Where the elements are NaN, a bool tensor. >>> dtrain.isnan(x).any()"
isinf.__doc__ = "Where the elements are +-inf, a bool tensor. >>> dtrain.isinf(x)"
isfinite.__doc__ = "Where the elements are neither inf nor NaN. >>> dtrain.isfinite(loss)"


def equal(input, other):
    """True if both tensors have the same shape and elements. >>> dtrain.equal(x, x.clone())"""
    return input._data.shape == other._data.shape and bool(np.array_equal(input._data,
                                                                            other._data))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True if ``|input - other| <= atol + rtol * |other|`` everywhere (a Python bool).
    >>> dtrain.allclose(x, x + 1e-9)"""
    return bool(np.allclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise ``|input - other| <= atol + rtol * |other|``, a bool tensor.
    >>> dtrain.isclose(x, y, atol=1e-6)"""
    return Tensor._make(np.isclose(input._data, other._data, rtol=rtol, atol=atol,
                                   equal_nan=equal_nan))
