"""Elementwise ops: arithmetic, math functions, clamp/where, comparisons; with torch's promotion."""
import numpy as np

from .. import _dtypes
from ..autograd.function import Function
from ..tensor import Size, Tensor


def _named(name, base):
    """A Function subclass called ``name``: torch gives some variants another op's node name."""
    return type(name, (base,), {})


# --- operands and promotion ----------------------------------------------------------------

def promote(*operands):
    """torch's result dtype (numpy dtype) for Tensors and Python numbers."""
    dims, zeros, scat = [], [], -1
    for x in operands:
        if isinstance(x, Tensor):
            (dims if x._data.ndim else zeros).append(x._data.dtype)
        elif x is not None:
            scat = max(scat, _dtypes.scalar_category(x))
    if len(dims) == 1 and not zeros and scat < 0:
        return dims[0]
    return _dtypes.result_type(tuple(dims), tuple(zeros), scat)


def _check_operand(x):
    if isinstance(x, (Tensor, int, float, bool, np.number, np.bool_)):
        return x
    if isinstance(x, np.ndarray):
        return Tensor._make(x)
    raise TypeError(f"expected a Tensor or a Python number as operand, got {type(x).__name__}")


def _cast(r, dtype):
    return r if r.dtype == dtype else r.astype(dtype)


def _broadcast_error(a, b):
    sa = a._data.shape if isinstance(a, Tensor) else ()
    sb = b._data.shape if isinstance(b, Tensor) else ()
    for i in range(1, min(len(sa), len(sb)) + 1):
        x, y = sa[-i], sb[-i]
        if x != y and x != 1 and y != 1:
            return RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b "
                                f"({y}) at non-singleton dimension {max(len(sa), len(sb)) - i}")
    return RuntimeError(f"shapes {Size(sa)} and {Size(sb)} cannot be broadcast together")


def binary(cls, a, b, **kw):
    """Apply a two-operand Function with torch's dtype promotion and broadcasting errors."""
    a, b = _check_operand(a), _check_operand(b)
    try:
        return cls.apply(a, b, dtype=promote(a, b), **kw)
    except ValueError as e:
        if "broadcast" in str(e):
            raise _broadcast_error(a, b) from None
        raise


def _float_dtype(x):
    d = x._data.dtype
    return d if d.kind == "f" else _dtypes.get_default_dtype().np


# --- arithmetic ----------------------------------------------------------------------------

class AddBackward0(Function):
    def forward(self, a, b, dtype, alpha=1):
        self.alpha = alpha
        return _cast(a + b if alpha == 1 else a + alpha * b, dtype)

    def backward(self, g):
        return g, (g if self.alpha == 1 else g * self.alpha)


class SubBackward0(Function):
    def forward(self, a, b, dtype, alpha=1):
        self.alpha = alpha
        return _cast(a - b if alpha == 1 else a - alpha * b, dtype)

    def backward(self, g):
        return g, -g if self.alpha == 1 else g * -self.alpha


class RsubBackward1(Function):
    def forward(self, a, b, dtype):
        return _cast(b - a, dtype)

    def backward(self, g):
        return -g, None


class MulBackward0(Function):
    def forward(self, a, b, dtype):
        self.save_for_backward(a, b)
        return _cast(a * b, dtype)

    def backward(self, g):
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


class DivBackward0(Function):
    def forward(self, a, b, dtype):
        if dtype.kind != "f":
            dtype = _dtypes.get_default_dtype().np
        with np.errstate(divide="ignore", invalid="ignore"):
            out = _cast(np.true_divide(a, b), dtype)
        self.save_for_backward(b, out)
        return out

    def backward(self, g):
        b, out = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        with np.errstate(divide="ignore", invalid="ignore"):
            ga = g / b if need_a else None
            gb = -g * out / b if need_b else None
        return ga, gb


class _ReciprocalTimes(Function):
    """scalar / tensor: torch records it as reciprocal times the scalar (a MulBackward0)."""

    def forward(self, a, s, dtype):
        if dtype.kind != "f":
            dtype = _dtypes.get_default_dtype().np
        with np.errstate(divide="ignore", invalid="ignore"):
            out = _cast(np.true_divide(s, a), dtype)
        self.save_for_backward(a, out)
        return out

    def backward(self, g):
        a, out = self.saved_tensors
        with np.errstate(divide="ignore", invalid="ignore"):
            return -g * out / a, None


RDivBackward = _named("MulBackward0", _ReciprocalTimes)


class PowBackward0(Function):
    """tensor ** number"""

    def forward(self, a, e, dtype):
        self.save_for_backward(a)
        self.e = e
        with np.errstate(divide="ignore", invalid="ignore"):
            return _cast(np.power(a, e), dtype)

    def backward(self, g):
        (a,) = self.saved_tensors
        e = self.e
        if e == 0:
            return np.zeros_like(g), None
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * (e * np.power(a, e - 1)), None


class PowBackward1(Function):
    """tensor ** tensor"""

    def forward(self, a, b, dtype):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = _cast(np.power(a, b), dtype)
        self.save_for_backward(a, b, out)
        return out

    def backward(self, g):
        a, b, out = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        with np.errstate(divide="ignore", invalid="ignore"):
            ga = g * b * np.power(a, b - 1) if need_a else None
            gb = g * out * np.where(a == 0, 0, np.log(np.abs(a))) if need_b else None
        return ga, gb


class PowBackward2(Function):
    """number ** tensor (operands arrive swapped: the tensor first)"""

    def forward(self, b, base, dtype):
        if dtype.kind != "f" and isinstance(base, (float, np.floating)):
            dtype = _dtypes.get_default_dtype().np
        out = _cast(np.power(base, b), dtype)
        self.save_for_backward(out)
        self.base = base
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g * out * np.log(self.base) if self.base > 0 else g * 0, None


def add(input, other, *, alpha=1):
    """``input + alpha * other`` with broadcasting. >>> dtrain.add(x, 1)"""
    if not isinstance(input, Tensor):
        input, other = other, input  # a number plus a tensor: addition commutes
    return binary(AddBackward0, input, other, alpha=alpha)


def sub(input, other, *, alpha=1):
    """``input - alpha * other``. >>> dtrain.sub(x, y)"""
    if not isinstance(input, Tensor):
        return rsub(other, input)
    if input._data.dtype == np.bool_ and isinstance(other, Tensor) and other._data.dtype == np.bool_:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                           "supported. Use the `^` or `logical_xor()` operator instead.")
    return binary(SubBackward0, input, other, alpha=alpha)


def rsub(input, other):
    """``other - input`` (torch's reflected subtraction)."""
    return binary(RsubBackward1, input, other)


def mul(input, other):
    """Elementwise product. >>> dtrain.mul(x, 2)"""
    if not isinstance(input, Tensor):
        input, other = other, input
    return binary(MulBackward0, input, other)


def div(input, other, *, rounding_mode=None):
    """True division (integers give floats), or ``rounding_mode`` "trunc"/"floor"."""
    if rounding_mode is not None:
        return _rounded_div(input, other, rounding_mode)
    if not isinstance(input, Tensor):
        return binary(RDivBackward, other, input)
    return binary(DivBackward0, input, other)


true_divide = divide = div


def _rounded_div(a, b, mode):
    if mode not in ("trunc", "floor"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                         f"found '{mode}'")
    a, b = _check_operand(a), _check_operand(b)
    dtype = promote(a, b)
    x = a._data if isinstance(a, Tensor) else a
    y = b._data if isinstance(b, Tensor) else b
    if dtype.kind in "iub" and np.any(np.asarray(y) == 0):
        raise RuntimeError("ZeroDivisionError")
    with np.errstate(divide="ignore", invalid="ignore"):
        if dtype.kind == "f":
            q = np.true_divide(x, y)
            r = np.trunc(q) if mode == "trunc" else np.floor(q)
        else:
            r = np.floor_divide(x, y) if mode == "floor" else np.trunc(np.true_divide(x, y))
    return Tensor._make(_cast(np.asarray(r), dtype))


def floor_divide(input, other):
    return _rounded_div(input, other, "floor")


def remainder(input, other):
    a, b = _check_operand(input), _check_operand(other)
    dtype = promote(a, b)
    x = a._data if isinstance(a, Tensor) else a
    y = b._data if isinstance(b, Tensor) else b
    with np.errstate(divide="ignore", invalid="ignore"):
        return Tensor._make(_cast(np.asarray(np.remainder(x, y)), dtype))


def pow(input, exponent):
    """``input ** exponent``; either may be a number. >>> dtrain.pow(x, 2)"""
    if not isinstance(input, Tensor):
        return binary(PowBackward2, exponent, input)
    if isinstance(exponent, Tensor):
        return binary(PowBackward1, input, exponent)
    if input._data.dtype.kind in "iu" and isinstance(exponent, int) and exponent < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return binary(PowBackward0, input, exponent)


def square(input):
    return pow(input, 2)


# --- unary math ----------------------------------------------------------------------------

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
    """Limit values to [min, max]; the gradient passes where the input is inside the range."""
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
    return binary(MaximumBackward0, input, other if isinstance(other, Tensor)
                  else Tensor._make(np.asarray(other, dtype=promote(input, other))))


def minimum(input, other):
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
    where it holds (like ``nonzero(as_tuple=True)``)."""
    if input is None and other is None:
        return tuple(Tensor._make(i) for i in np.nonzero(condition._data))
    if condition._data.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {condition.dtype}")
    a, b = _check_operand(input), _check_operand(other)
    dtype = promote(a, b)
    return WhereBackward0.apply(a, b, condition, dtype=dtype)


class MaskedFillBackward0(Function):
    def forward(self, x, mask, value):
        self.save_for_backward(mask)
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    def backward(self, g):
        (mask,) = self.saved_tensors
        return np.where(mask, np.zeros((), dtype=g.dtype), g), None


def masked_fill(input, mask, value):
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
    """A copy that stays in the graph (its gradient flows back to ``input``)."""
    return CloneBackward0.apply(input)


# --- no gradient ---------------------------------------------------------------------------

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
