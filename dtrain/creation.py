"""Tensor factories (tensor, zeros, arange, rand, ...) and the random generator."""
import numbers

import numpy as np

from . import _dtypes
from ._dtypes import check_device, to_dtype
from .tensor import Size, Tensor

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Seed dtrain's random number generator (rand, randn, randint, dropout, init, shuffles).

    >>> dtrain.manual_seed(0)
    """
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


seed = manual_seed


def default_generator():
    """The numpy Generator behind dtrain's random functions."""
    return _generator


def _finish(arr, dtype, device, requires_grad):
    check_device(device)
    if dtype is not None:
        arr = arr.astype(to_dtype(dtype).np, copy=False)
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad = True
    return t


def _infer(data):
    """numpy array from Python data, with torch's dtype inference (floats -> default float)."""
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, np.generic):
        return np.asarray(data)
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
        data = [_infer(x) if isinstance(x, Tensor) else x for x in data]
    try:
        arr = np.array(data)
    except ValueError as e:
        raise ValueError(f"expected a rectangular nested sequence (all rows of one length): "
                         f"{e}") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"Could not infer dtype of {type(data).__name__}: dtrain tensors hold "
                        "numbers and booleans only")
    if arr.dtype.kind == "f":
        return arr.astype(_dtypes.get_default_dtype().np, copy=False)
    if arr.dtype.kind in "iu" and arr.dtype != np.int64:
        return arr.astype(np.int64)
    if arr.dtype.kind == "c":
        raise TypeError("complex tensors are not supported by dtrain")
    return arr


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """A new tensor holding a copy of ``data``. The dtype is inferred as torch does: Python
    floats give float32, ints int64, bools bool; a numpy array keeps its dtype.

    >>> dtrain.tensor([[1, 2, 3], [4, 5, 6]], dtype=dtrain.int32)
    tensor([[1, 2, 3],
            [4, 5, 6]], dtype=dtrain.int32)
    """
    arr = _infer(data)
    _dtypes.from_np(arr.dtype)
    return _finish(np.array(arr, copy=True), dtype, device, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares memory with ``data`` (a Tensor or numpy array) when no
    conversion is needed. >>> y = dtrain.as_tensor(x, dtype=dtrain.half)"""
    check_device(device)
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    arr = _infer(data)
    _dtypes.from_np(arr.dtype)
    return _finish(arr, dtype, None, False)


asarray = as_tensor


def from_numpy(ndarray):
    """A tensor sharing memory with ``ndarray``. >>> t = dtrain.from_numpy(np.zeros(3))"""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    _dtypes.from_np(ndarray.dtype)
    return Tensor._make(ndarray)


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        size = tuple(size[0])
    out = []
    for s in size:
        if not isinstance(s, numbers.Integral) and not (isinstance(s, Tensor) and
                                                        s._data.dtype.kind in "iu"):
            raise TypeError(f"size must be a tuple of ints, but got an element of type "
                            f"{type(s).__name__}")
        s = int(s)
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: "
                               f"{list(int(x) for x in size)}")
        out.append(s)
    return tuple(out)


def _np_dtype(dtype, default=None):
    if dtype is None:
        return (default or _dtypes.get_default_dtype()).np
    return to_dtype(dtype).np


def _filled(fill):
    def make(*size, dtype=None, device=None, requires_grad=False, out=None, **_):
        arr = fill(_size(size), _np_dtype(dtype))
        return _finish(arr, None, device, requires_grad)
    return make


zeros = _filled(np.zeros)
ones = _filled(np.ones)
empty = _filled(np.empty)
zeros.__doc__ = "Tensor of zeros. >>> dtrain.zeros(2, 3)"
ones.__doc__ = "Tensor of ones. >>> dtrain.ones(2, 3, dtype=dtrain.int64)"
empty.__doc__ = "Uninitialised tensor. >>> dtrain.empty(4)"


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """Tensor filled with ``fill_value``; its dtype follows the value (bool, int64 or float).
    >>> dtrain.full((2, 3), 7)"""
    if dtype is None:
        cat = _dtypes.scalar_category(fill_value)
        dtype = (_dtypes.bool_, _dtypes.int64, _dtypes.get_default_dtype())[cat]
    return _finish(np.full(_size((size,) if isinstance(size, int) else size), fill_value,
                           dtype=_np_dtype(dtype)), None, device, requires_grad)


def _like(make):
    def like(input, dtype=None, *, device=None, requires_grad=False, **_):
        return make(input._data.shape, dtype=dtype or input.dtype, device=device,
                    requires_grad=requires_grad)
    return like


zeros_like, ones_like, empty_like = _like(zeros), _like(ones), _like(empty)
zeros_like.__doc__ = "Zeros with ``input``'s shape and dtype. >>> dtrain.zeros_like(x)"
ones_like.__doc__ = "Ones with ``input``'s shape and dtype. >>> dtrain.ones_like(x)"
empty_like.__doc__ = ("Uninitialised, with ``input``'s shape and dtype. "
                      ">>> dtrain.empty_like(x)")


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    """``fill_value`` with ``input``'s shape and dtype. >>> dtrain.full_like(x, 0.5)"""
    return full(input._data.shape, fill_value, dtype=dtype or input.dtype, device=device,
                requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``. Integers give int64,
    any float argument gives the default float dtype. >>> dtrain.arange(5)"""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and larger bound inconsistent with step sign")
    args = [float(x) if isinstance(x, Tensor) and x.is_floating_point() else
            (x.item() if isinstance(x, Tensor) else x) for x in (start, end, step)]
    if dtype is None:
        isint = all(isinstance(x, (int, np.integer)) for x in args)
        dtype = _dtypes.int64 if isint else _dtypes.get_default_dtype()
    np_dtype = to_dtype(dtype).np
    # NOTE: compute in float64 and cast, so float32 ends are not overshot by rounding
    arr = np.arange(*args, dtype=np.float64 if np_dtype.kind == "f" else None)
    return _finish(arr.astype(np_dtype), None, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive.
    >>> dtrain.linspace(0, 1, steps=5)"""
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    arr = np.linspace(start, end, steps).astype(_np_dtype(dtype))
    return _finish(arr, None, device, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """Identity matrix, ``n`` x ``m``. >>> dtrain.eye(3)"""
    return _finish(np.eye(n, m, dtype=_np_dtype(dtype)), None, device, requires_grad)


def _check_float(dtype, name):
    d = to_dtype(dtype) if dtype is not None else _dtypes.get_default_dtype()
    if not d.is_floating_point:
        raise RuntimeError(f"\"{name}\" not implemented for '{d.name}'")
    return d.np


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """Uniform samples in [0, 1). >>> dtrain.rand(2, 3)"""
    np_dtype = _check_float(dtype, "check_uniform_bounds")
    arr = (generator or _generator).random(_size(size)).astype(np_dtype)
    return _finish(arr, None, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """Standard normal samples. >>> dtrain.randn(2, 3)"""
    np_dtype = _check_float(dtype, "normal_kernel_cpu")
    arr = (generator or _generator).standard_normal(_size(size)).astype(np_dtype)
    return _finish(arr, None, device, requires_grad)


def randint(low, high=None, size=None, *, dtype=None, device=None, requires_grad=False,
            generator=None):
    """Integers in [low, high). >>> dtrain.randint(0, 10, (3,))"""
    if size is None:
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} "
                           f">= to={high}")
    arr = (generator or _generator).integers(low, high, _size((size,) if isinstance(size, int)
                                                              else size))
    return _finish(arr.astype(_np_dtype(dtype, _dtypes.int64)), None, device, requires_grad)


def randperm(n, *, dtype=None, device=None, generator=None):
    """A random permutation of 0..n-1. >>> dtrain.randperm(5)"""
    arr = (generator or _generator).permutation(n)
    return _finish(arr.astype(_np_dtype(dtype, _dtypes.int64)), None, device, False)


def rand_like(input, dtype=None, **kw):
    """``rand`` with ``input``'s shape and dtype. >>> dtrain.rand_like(x)"""
    return rand(input._data.shape, dtype=dtype or input.dtype, **kw)


def randn_like(input, dtype=None, **kw):
    """``randn`` with ``input``'s shape and dtype. >>> noise = dtrain.randn_like(x)"""
    return randn(input._data.shape, dtype=dtype or input.dtype, **kw)


def randint_like(input, low, high=None, dtype=None, **kw):
    """Integers in [low, high), or [0, low), with ``input``'s shape and dtype.
    >>> dtrain.randint_like(labels, 10)"""
    if high is None:
        low, high = 0, low
    return randint(low, high, input._data.shape, dtype=dtype or input.dtype, **kw)


def normal(mean, std, size, *, dtype=None, generator=None, requires_grad=False):
    """Normal samples of shape ``size``: torch's ``normal(mean, std, size)`` form, the only
    one here (``size`` is required). >>> dtrain.normal(0.0, 0.02, (3, 4))"""
    arr = (generator or _generator).normal(mean, std, _size(size)).astype(_np_dtype(dtype))
    return _finish(arr, None, None, requires_grad)
