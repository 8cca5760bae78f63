"""Arithmetic: + - * / ** with torch's type promotion, broadcasting errors and scalar operands."""
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
    if len(operands) == 2:
        a, b = operands
        if type(a) is Tensor:
            if type(b) is Tensor and a._data.dtype is b._data.dtype:
                return a._data.dtype
            if type(b) is float and a._data.dtype.kind == "f":
                return a._data.dtype
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
    if type(x) is Tensor:
        return x
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


def _wrap_int(value, dtype):
    """A Python int outside an integer dtype's range wraps around, as in torch (numpy raises)."""
    info = np.iinfo(dtype)
    if info.min <= value <= info.max:
        return value
    return np.array(value & ((1 << (8 * dtype.itemsize)) - 1), dtype=np.uint64).astype(dtype)


def binary(cls, a, b, **kw):
    """Apply a two-operand Function with torch's dtype promotion and broadcasting errors."""
    a, b = _check_operand(a), _check_operand(b)
    dtype = promote(a, b)
    if dtype.kind in "iub":
        if type(b) is int:
            b = _wrap_int(b, dtype)
        if isinstance(kw.get("alpha"), float):
            raise RuntimeError("For integral input tensors, argument alpha must not be a floating "
                               "point number.")
    try:
        return cls.apply(a, b, dtype=dtype, **kw)
    except ValueError as e:
        if "broadcast" in str(e):
            raise _broadcast_error(a, b) from None
        raise


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
    """``other - input`` (torch's reflected subtraction). >>> dtrain.rsub(x, 1)"""
    return binary(RsubBackward1, input, other)


def mul(input, other):
    """Elementwise product. >>> dtrain.mul(x, 2)"""
    if not isinstance(input, Tensor):
        input, other = other, input
    return binary(MulBackward0, input, other)


def div(input, other, *, rounding_mode=None):
    """True division (integers give floats), or ``rounding_mode`` "trunc"/"floor".
    >>> dtrain.div(dtrain.tensor([7, -7]), 2, rounding_mode="floor")"""
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
    """``input // other``, rounding down (``div(..., rounding_mode="floor")``).
    >>> dtrain.floor_divide(dtrain.tensor([7, -7]), 2)"""
    return _rounded_div(input, other, "floor")


def remainder(input, other):
    """Python's ``%``: the result has the sign of ``other``. No gradient is recorded.
    >>> dtrain.remainder(dtrain.tensor([-3, 3]), 2)"""
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
    """``input ** 2``. >>> dtrain.square(x)"""
    return pow(input, 2)
