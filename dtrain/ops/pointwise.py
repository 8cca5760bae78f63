"""Pointwise math (exp, log, tanh, relu, ...), clamp, maximum/minimum, where, masked_fill,
casts and clone."""
import numpy as np

from .. import _dtypes
from ..autograd.function import Function
from ..tensor import Tensor
from .arith import _broadcast_error, _cast, _check_operand, binary, promote

class _Unary(Function):
    """``out = f(x)``; subclasses give ``f`` and ``grad(g, x, out)``."""

    saves = "x"  # which of x / out the gradient needs

    def forward(self, x):
        if x.dtype.kind != "f":
            x = x.astype(_dtypes.get_default_dtype().np)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = self.f(x)
        self.save_for_backward(x if self.saves == "x" else out)
        return out

    def backward(self, g):
        (v,) = self.saved_tensors
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self.grad(g, v)


class ExpBackward0(_Unary):
    saves = "out"
    f = staticmethod(np.exp)

    def grad(self, g, out):
        return g * out


class LogBackward0(_Unary):
    f = staticmethod(np.log)

    def grad(self, g, x):
        return g / x


class SqrtBackward0(_Unary):
    saves = "out"
    f = staticmethod(np.sqrt)

    def grad(self, g, out):
        return g / (2 * out)


class RsqrtBackward0(_Unary):
    saves = "out"

    @staticmethod
    def f(x):
        return 1 / np.sqrt(x)

    def grad(self, g, out):
        return g * -0.5 * out * out * out


class ReciprocalBackward0(_Unary):
    saves = "out"

    @staticmethod
    def f(x):
        return 1 / x

    def grad(self, g, out):
        return -g * out * out


class SinBackward0(_Unary):
    f = staticmethod(np.sin)

    def grad(self, g, x):
        return g * np.cos(x)


class CosBackward0(_Unary):
    f = staticmethod(np.cos)

    def grad(self, g, x):
        return -g * np.sin(x)


class TanhBackward0(_Unary):
    saves = "out"
    f = staticmethod(np.tanh)

    def grad(self, g, out):
        return g * (1 - out * out)


class SigmoidBackward0(_Unary):
    saves = "out"

    @staticmethod
    def f(x):
        # NOTE: exp(-x) overflows for very negative x; the result (0) is still right
        return 1 / (1 + np.exp(-x))

    def grad(self, g, out):
        return g * out * (1 - out)


class NegBackward0(Function):
    def forward(self, x):
        if x.dtype == np.bool_:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        return -x

    def backward(self, g):
        return -g


class AbsBackward0(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return np.abs(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * np.sign(x)


class ReluBackward0(Function):
    def forward(self, x):
        out = np.maximum(x, 0, dtype=x.dtype)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        # NOTE: gradient 0 at 0, as torch: the mask is out > 0, not x >= 0
        return g * (out > 0)


class ClampBackward1(Function):
    def forward(self, x, lo, hi, dtype):
        self.save_for_backward(x)
        self.lo, self.hi = lo, hi
        out = x
        if lo is not None:
            out = np.maximum(out, lo)
        if hi is not None:
            out = np.minimum(out, hi)
        return _cast(out, dtype)

    def backward(self, g):
        (x,) = self.saved_tensors
        mask = np.ones(x.shape, dtype=bool)
        if self.lo is not None:
            mask &= x >= self.lo
        if self.hi is not None:
            mask &= x <= self.hi
        return g * mask, None, None


def clamp(input, min=None, max=None):
    """Limit values to [min, max]; the gradient passes where the input is inside the range.
    >>> dtrain.clamp(x, min=-1.0, max=1.0); x.clamp(min=0)"""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    return ClampBackward1.apply(input, min, max, dtype=promote(input, min, max))


clip = clamp


class MaximumBackward0(Function):
    pick = staticmethod(np.maximum)

    def forward(self, a, b, dtype):
        self.save_for_backward(a, b)
        return _cast(self.pick(a, b), dtype)

    def backward(self, g):
        a, b = self.saved_tensors
        # ties split the gradient evenly, as torch does
        first = (a > b) if self.pick is np.maximum else (a < b)
        share = first + 0.5 * (a == b)
        return g * share, g * (1 - share)


class MinimumBackward0(MaximumBackward0):
    pick = staticmethod(np.minimum)


def maximum(input, other):
    """Elementwise larger of ``input`` and ``other``; ties split the gradient.
    >>> dtrain.maximum(x, y)"""
    return binary(MaximumBackward0, input, other if isinstance(other, Tensor)
                  else Tensor._make(np.asarray(other, dtype=promote(input, other))))


def minimum(input, other):
    """Elementwise smaller of ``input`` and ``other``; ties split the gradient.
    >>> dtrain.minimum(x, y)"""
    return binary(MinimumBackward0, input, other if isinstance(other, Tensor)
                  else Tensor._make(np.asarray(other, dtype=promote(input, other))))


class WhereBackward0(Function):
    def forward(self, a, b, cond, dtype):
        self.save_for_backward(cond)
        return _cast(np.where(cond, a, b), dtype)

    def backward(self, g):
        (cond,) = self.saved_tensors
        zero = np.zeros((), dtype=g.dtype)
        need_a, need_b, _ = self.needs_input_grad
        return (np.where(cond, g, zero) if need_a else None,
                np.where(cond, zero, g) if need_b else None, None)


def where(condition, input=None, other=None):
    """``input`` where ``condition`` holds, else ``other``; or, with one argument, the indices
    where it holds (like ``nonzero(as_tuple=True)``). >>> dtrain.where(x > 0, x, 0.0)"""
    if input is None and other is None:
        return tuple(Tensor._make(i) for i in np.nonzero(condition._data))
    if condition._data.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {condition.dtype}")
    a, b = _check_operand(input), _check_operand(other)
    dtype = promote(a, b)
    try:
        return WhereBackward0.apply(a, b, condition, dtype=dtype)
    except ValueError:
        try:
            np.broadcast_shapes(np.shape(input), np.shape(other))
        except ValueError:
            raise _broadcast_error(a, b) from None
        raise _broadcast_error(condition, a if np.ndim(input) else b) from None


class MaskedFillBackward0(Function):
    def forward(self, x, mask, value):
        self.save_for_backward(mask)
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    def backward(self, g):
        (mask,) = self.saved_tensors
        return np.where(mask, np.zeros((), dtype=g.dtype), g), None


def masked_fill(input, mask, value):
    """``value`` where the bool ``mask`` is True, else ``input``; no gradient flows to the
    filled places. >>> scores.masked_fill(~mask, float("-inf"))"""
    if isinstance(value, Tensor):
        value = value.item()
    return MaskedFillBackward0.apply(input, mask, value)


class ToCopyBackward0(Function):
    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, g):
        return g


class CloneBackward0(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


def clone(input, *, memory_format=None):
    """A copy that stays in the graph (its gradient flows back to ``input``). >>> y = x.clone()"""
    return CloneBackward0.apply(input)


def _unary_op(cls):
    def op(input):
        return cls.apply(input)
    op.__name__ = cls.__name__.replace("Backward0", "").lower()
    return op


exp, log, sqrt, rsqrt, reciprocal, sin, cos, tanh, sigmoid, neg, abs, relu = (
    _unary_op(c) for c in (ExpBackward0, LogBackward0, SqrtBackward0, RsqrtBackward0,
                           ReciprocalBackward0, SinBackward0, CosBackward0, TanhBackward0,
                           SigmoidBackward0, NegBackward0, AbsBackward0, ReluBackward0))
negative = neg
absolute = abs
exp.__doc__ = "Elementwise e ** x. >>> dtrain.exp(x); x.exp()"
log.__doc__ = "Elementwise natural logarithm. >>> dtrain.log(x); x.log()"
sqrt.__doc__ = "Elementwise square root. >>> dtrain.sqrt(x); x.sqrt()"
rsqrt.__doc__ = "Elementwise 1 / sqrt(x). >>> dtrain.rsqrt(var + 1e-5)"
reciprocal.__doc__ = "Elementwise 1 / x. >>> dtrain.reciprocal(x); x.reciprocal()"
sin.__doc__ = "Elementwise sine. >>> dtrain.sin(x); x.sin()"
cos.__doc__ = "Elementwise cosine. >>> dtrain.cos(x); x.cos()"
tanh.__doc__ = "Elementwise hyperbolic tangent. >>> dtrain.tanh(x); x.tanh()"
sigmoid.__doc__ = "Elementwise 1 / (1 + exp(-x)). >>> dtrain.sigmoid(logits)"
neg.__doc__ = "Elementwise -x. >>> dtrain.neg(x); -x"
abs.__doc__ = "Elementwise absolute value; the gradient at 0 is 0. >>> dtrain.abs(x); abs(x)"
relu.__doc__ = "Elementwise max(0, x); the gradient at 0 is 0. >>> dtrain.relu(x); x.relu()"
