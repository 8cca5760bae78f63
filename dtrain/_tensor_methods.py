"""Attach the ops to Tensor as methods, operators and in-place (trailing underscore) variants."""
import numpy as np

from . import _dtypes
from .autograd import grad_mode
from .autograd.function import Function
from .ops import arith as A
from .ops import compare as C
from .ops import pointwise as P
from .ops import index as I
from .ops import linalg as L
from .ops import reduce as R
from .ops import shape as S
from .tensor import Tensor

# methods whose first argument is the tensor
_METHODS = {
    A: "add sub mul div true_divide divide pow square floor_divide remainder",
    P: "neg negative abs absolute exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu clamp "
       "clip maximum minimum masked_fill clone",
    C: "eq ne lt le gt ge greater less greater_equal less_equal not_equal logical_and "
       "logical_or logical_xor logical_not sign floor ceil round trunc isnan isinf isfinite "
       "equal allclose isclose",
    R: "sum mean prod max min amax amin argmax argmin var std softmax log_softmax logsumexp "
       "all any sort argsort",
    S: "view reshape view_as reshape_as permute transpose swapaxes swapdims t squeeze unsqueeze "
       "flatten expand expand_as narrow split chunk unbind contiguous repeat flip",
    L: "matmul mm bmm mv dot outer",
}
for _module, _names in _METHODS.items():
    for _name in _names.split():
        setattr(Tensor, _name, getattr(_module, _name))


def _rsub(self, other):
    return A.rsub(self, other)


def _rdiv(self, other):
    return A.div(other, self)


def _rpow(self, other):
    return A.pow(other, self)


def _rmatmul(self, other):
    return L.matmul(other, self)


Tensor.__add__ = Tensor.__radd__ = A.add
Tensor.__sub__ = A.sub
Tensor.__rsub__ = _rsub
Tensor.__mul__ = Tensor.__rmul__ = A.mul
Tensor.__truediv__ = A.div
Tensor.__rtruediv__ = _rdiv
Tensor.__floordiv__ = A.floor_divide
Tensor.__rfloordiv__ = lambda self, other: A.floor_divide(other, self)
Tensor.__mod__ = A.remainder
Tensor.__pow__ = A.pow
Tensor.__rpow__ = _rpow
Tensor.__matmul__ = L.matmul
Tensor.__rmatmul__ = _rmatmul
Tensor.__neg__ = P.neg
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = P.abs
Tensor.__eq__, Tensor.__ne__ = C.eq, C.ne
Tensor.__lt__, Tensor.__le__, Tensor.__gt__, Tensor.__ge__ = C.lt, C.le, C.gt, C.ge
Tensor.__and__ = Tensor.__rand__ = C.bitwise_and
Tensor.__or__ = Tensor.__ror__ = C.bitwise_or
Tensor.__xor__ = Tensor.__rxor__ = C.bitwise_xor
Tensor.__invert__ = C.bitwise_not
Tensor.gather = I.gather
Tensor.__getitem__ = I.getitem
Tensor.__setitem__ = I.setitem
Tensor.T = property(lambda self: S.permute(self, tuple(range(self._data.ndim))[::-1]))
Tensor.mT = property(lambda self: S.transpose(self, -2, -1))
Tensor.__hash__ = lambda self: id(self)  # defining __eq__ would otherwise remove hashing


# --- in place ------------------------------------------------------------------------------

def _recording(self, *others):
    return grad_mode._state.enabled and (
        self._requires_grad or any(isinstance(o, Tensor) and o._requires_grad for o in others))


def _inplace(op):
    """``x.op_(...)``: compute ``op`` and write it into x. Outside autograd the numpy ufunc
    writes straight into x's memory, with no temporary."""
    def method(self, *args, **kwargs):
        if _recording(self, *args, *kwargs.values()):
            return self._assign(op(self, *args, **kwargs))
        self._check_inplace()
        result = op(self.detach(), *args, **kwargs)._data
        if _dtypes._category(result.dtype) > _dtypes._category(self._data.dtype):
            raise RuntimeError(f"result type {_dtypes.from_np(result.dtype)} can't be cast to "
                               f"the desired output type {self.dtype}")
        np.copyto(self._data, result, casting="unsafe")
        return self._bump()
    method.__name__ = op.__name__ + "_"
    return method


def _ufunc_inplace(ufunc, op):
    """Fast in-place arithmetic for the optimizer's hot path (add_, mul_, ...)."""
    slow = _inplace(op)

    def method(self, other, **kwargs):
        if _recording(self, other) or kwargs.keys() - {"alpha"}:
            return slow(self, other, **kwargs)
        self._check_inplace()
        y = other._data if isinstance(other, Tensor) else other
        alpha = kwargs.get("alpha", 1)
        if alpha != 1:
            y = y * alpha
        try:
            ufunc(self._data, y, out=self._data, casting="same_kind")
        except TypeError:  # numpy refuses e.g. float into int
            raise RuntimeError(f"result type {_dtypes.from_np(np.result_type(self._data, y))} "
                               f"can't be cast to the desired output type {self.dtype}") from None
        except ValueError:
            raise RuntimeError(f"output with shape {list(self._data.shape)} doesn't match the "
                               f"broadcast shape of the operands") from None
        return self._bump()
    method.__name__ = op.__name__ + "_"
    return method


_ROUNDING = {"floor", "ceil", "round", "trunc", "sign"}
for _name in ("exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu abs neg clamp clip "
              "masked_fill floor ceil round trunc sign").split():
    setattr(Tensor, _name + "_", _inplace(getattr(C if _name in _ROUNDING else P, _name)))
Tensor.add_ = _ufunc_inplace(np.add, A.add)
Tensor.sub_ = _ufunc_inplace(np.subtract, A.sub)
Tensor.pow_ = _inplace(A.pow)
Tensor.mul_ = _ufunc_inplace(np.multiply, A.mul)
Tensor.div_ = _ufunc_inplace(np.true_divide, A.div)
_INPLACE_ARGS = {"clamp": "min=0.0", "clip": "-1.0, 1.0", "masked_fill": "mask, 0.0",
                 "add": "y, alpha=-0.1", "sub": "y", "pow": "2", "mul": "0.9", "div": "2"}
for _name in ("exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu abs neg clamp clip "
              "masked_fill floor ceil round trunc sign add sub pow mul div").split():
    getattr(Tensor, _name + "_").__doc__ = (
        f"In-place ``{_name}``: write the result into this tensor and return it.\n"
        f">>> x.{_name}_({_INPLACE_ARGS.get(_name, '')})")
Tensor.__iadd__ = Tensor.add_
Tensor.__isub__ = Tensor.sub_
Tensor.__imul__ = Tensor.mul_
Tensor.__itruediv__ = Tensor.div_


def _reshape_inplace(op, node_name, example=""):
    """``x.t_()``, ``x.unsqueeze_(d)``, ...: x itself becomes the new view of its storage."""
    renamed = {}

    def method(self, *args):
        if grad_mode._state.enabled and self._requires_grad and self.grad_fn is None:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        result = op(self, *args)
        self._data = result._data
        fn = result.grad_fn
        if fn is not None:
            cls = type(fn)
            if cls not in renamed:
                renamed[cls] = type(node_name, (cls,), {})
            fn.__class__ = renamed[cls]
            self.grad_fn = fn
        return self
    method.__name__ = op.__name__ + "_"
    method.__doc__ = (f"In-place ``{op.__name__}``: this tensor becomes the new view of its "
                      f"storage. >>> x.{op.__name__}_({example})")
    return method


Tensor.t_ = _reshape_inplace(S.t, "TBackward1")
Tensor.transpose_ = _reshape_inplace(S.transpose, "TransposeBackward1", "0, 1")
Tensor.unsqueeze_ = _reshape_inplace(S.unsqueeze, "UnsqueezeBackward1", "0")
Tensor.squeeze_ = _reshape_inplace(S.squeeze, "SqueezeBackward2")


class ZeroBackward0(Function):
    def forward(self, x):
        return np.zeros_like(x)

    def backward(self, g):
        return np.zeros_like(g)


class FillBackward2(Function):
    def forward(self, x, value):
        return np.full_like(x, value)

    def backward(self, g):
        return np.zeros_like(g), None


class CopyBackwards(Function):
    def forward(self, x, src):
        return np.broadcast_to(src, x.shape).astype(x.dtype)

    def backward(self, g):
        return np.zeros_like(g), g


def zero_(self):
    """Fill with zeros, in place. >>> w.grad.zero_()"""
    if _recording(self):
        return self._assign(ZeroBackward0.apply(self))
    self._check_inplace()
    self._data[...] = 0
    return self._bump()


def fill_(self, value):
    """Fill with ``value``, in place. >>> dtrain.empty(3).fill_(7)"""
    if isinstance(value, Tensor):
        value = value.item()
    if _recording(self):
        return self._assign(FillBackward2.apply(self, value))
    self._check_inplace()
    self._data[...] = value
    return self._bump()


def copy_(self, src, non_blocking=False):
    """Copy ``src`` (broadcast to self's shape) into self, in place. >>> x.copy_(y)"""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' must be Tensor, not {type(src).__name__}")
    try:
        np.broadcast_shapes(src._data.shape, self._data.shape)
    except ValueError:
        raise RuntimeError(f"The size of tensor a ({self._data.shape}) must match the size of "
                           f"tensor b ({src._data.shape})") from None
    if _recording(self, src):
        return self._assign(CopyBackwards.apply(self, src))
    self._check_inplace()
    np.copyto(self._data, np.broadcast_to(src._data, self._data.shape), casting="unsafe")
    return self._bump()


def uniform_(self, a=0.0, b=1.0, generator=None):
    """Fill with uniform samples from [a, b), in place. >>> dtrain.empty(3).uniform_(-1, 1)"""
    from .creation import default_generator
    self._check_inplace()
    self._data[...] = (generator or default_generator()).uniform(a, b, self._data.shape)
    return self._bump()


def random_(self, from_=0, to=None, *, generator=None):
    """Fill with integers from [from_, to), or [0, from_) given one bound, in place.
    Without bounds, [0, 2**mantissa] for floats or the dtype's range for integers.
    >>> dtrain.empty(5, dtype=dtrain.int64).random_(0, 10)"""
    from .creation import default_generator
    if to is None and from_ != 0:
        from_, to = 0, from_
    if to is None:
        d = self._data.dtype
        to = (1 << (np.finfo(d).nmant + 1)) + 1 if d.kind == "f" else \
            2 if d == np.bool_ else int(np.iinfo(d).max) + 1
    if from_ >= to:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={from_} "
                           f">= to={to}")
    self._check_inplace()
    self._data[...] = (generator or default_generator()).integers(from_, to, self._data.shape)
    return self._bump()


def normal_(self, mean=0.0, std=1.0, generator=None):
    """Fill with normal samples, in place. >>> dtrain.empty(3).normal_(0.0, 0.02)"""
    from .creation import default_generator
    self._check_inplace()
    self._data[...] = (generator or default_generator()).normal(mean, std, self._data.shape)
    return self._bump()


def new_tensor(self, data, dtype=None, requires_grad=False):
    """A new tensor (a copy of ``data``) with this tensor's dtype unless given.
    >>> x.new_tensor([1, 2])"""
    from .creation import tensor
    return tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)


def _new(make, name):
    def new(self, *size, dtype=None, requires_grad=False, **kw):
        return make(*size, dtype=dtype or self.dtype, requires_grad=requires_grad, **kw)
    new.__name__ = "new_" + name
    new.__doc__ = (f"``dtrain.{name}(*size)`` with this tensor's dtype unless given. "
                   f">>> x.new_{name}(2, 3)")
    return new


def _bind_creation():
    from . import creation
    Tensor.new_zeros = _new(creation.zeros, "zeros")
    Tensor.new_ones = _new(creation.ones, "ones")
    Tensor.new_empty = _new(creation.empty, "empty")
    Tensor.new_full = lambda self, size, fill_value, dtype=None, **kw: creation.full(
        size, fill_value, dtype=dtype or self.dtype, **kw)
    Tensor.new_full.__doc__ = ("``dtrain.full(size, fill_value)`` with this tensor's dtype "
                               "unless given. >>> x.new_full((2, 3), 0.5)")


for _f in (zero_, fill_, copy_, uniform_, normal_, random_, new_tensor):
    setattr(Tensor, _f.__name__, _f)
_bind_creation()


# --- dtype and device -------------------------------------------------------------------------

def to(self, *args, **kwargs):
    """Return a tensor with the given dtype (and device, which must be "cpu"); returns
    ``self`` when nothing changes, unless ``copy=True``.

    >>> x.to(dtrain.float64); x.to("cpu"); x.to(other_tensor)
    """
    dtype, copy = kwargs.pop("dtype", None), kwargs.pop("copy", False)
    _dtypes.check_device(kwargs.pop("device", None))
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, (_dtypes.dtype, np.dtype, type)):
            dtype = a
        elif a is not None:
            _dtypes.check_device(a)
    if dtype is None or _dtypes.to_dtype(dtype).np == self._data.dtype:
        return self.clone() if copy else self
    return P.ToCopyBackward0.apply(self, dtype=_dtypes.to_dtype(dtype).np)


def _cast(dtype, name):
    def cast(self):
        return self.to(dtype)
    cast.__doc__ = f"``self.to({dtype})``. >>> x.{name}()"
    return cast


def _cpu(self):
    """``self``: dtrain tensors always live on the CPU. >>> x.cpu()"""
    return self


def _cuda(self, *args, **kwargs):
    """Raises RuntimeError: dtrain runs on the CPU only. >>> x.cuda()  # RuntimeError"""
    _dtypes.check_device("cuda")


Tensor.to = to
Tensor.cpu = _cpu
Tensor.cuda = _cuda
for _name, _dtype in (("half", _dtypes.float16), ("float", _dtypes.float32),
                      ("double", _dtypes.float64), ("int", _dtypes.int32), ("long", _dtypes.int64),
                      ("short", _dtypes.int16), ("char", _dtypes.int8), ("byte", _dtypes.uint8),
                      ("bool", _dtypes.bool_)):
    setattr(Tensor, _name, _cast(_dtype, _name))
