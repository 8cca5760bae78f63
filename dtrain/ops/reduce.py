"""Reductions over dims: sum, mean, prod, max/min, var/std, arg*, softmax and friends."""
import numpy as np

from .. import _dtypes, return_types
from ..autograd.function import Function
from ..tensor import Tensor, _dim


def _axes(dim, ndim):
    """numpy axis tuple for a dim argument (int, sequence, or None meaning all dims)."""
    if dim is None:
        return None
    if isinstance(dim, (int, np.integer)):
        return (_dim(int(dim), ndim),) if ndim else ()
    axes = tuple(_dim(int(d), ndim) for d in dim)
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"dim {axes[0]} appears multiple times in the list of dims")
    return axes if ndim else ()


def _expand(g, shape, axes, keepdim):
    """Bring a reduced gradient back to ``shape`` as a broadcast view (no copy)."""
    if axes is None:
        axes = tuple(range(len(shape)))
    if not keepdim and axes:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


class _Reduce(Function):
    def setup(self, x, dim, keepdim):
        self.shape, self.keepdim = x.shape, keepdim
        self.axes = _axes(dim, x.ndim)
        return self.axes


class SumBackward0(_Reduce):
    def forward(self, x, dim=None, keepdim=False, dtype=None):
        axes = self.setup(x, dim, keepdim)
        if dtype is None and x.dtype.kind in "biu":
            dtype = np.int64
        return np.asarray(np.sum(x, axis=axes, keepdims=keepdim, dtype=dtype))

    def backward(self, g):
        return _expand(g, self.shape, self.axes, self.keepdim)


SumBackward1 = type("SumBackward1", (SumBackward0,), {})


def _float_only(x, op):
    if x.dtype.kind != "f":
        raise RuntimeError(f"{op}(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {_dtypes.from_np(x.dtype)}")


class MeanBackward0(_Reduce):
    def forward(self, x, dim=None, keepdim=False, dtype=None):
        if dtype is None:
            _float_only(x, "mean")
        axes = self.setup(x, dim, keepdim)
        total = np.sum(x, axis=axes, keepdims=keepdim, dtype=dtype)
        self.count = x.size // total.size if total.size else 0
        with np.errstate(invalid="ignore", divide="ignore"):  # the mean of nothing is nan
            return np.asarray(np.true_divide(total, self.count, dtype=total.dtype))

    def backward(self, g):
        return _expand(g / self.count, self.shape, self.axes, self.keepdim)


MeanBackward1 = type("MeanBackward1", (MeanBackward0,), {})


class ProdBackward0(_Reduce):
    def forward(self, x, dim=None, keepdim=False):
        axes = self.setup(x, dim, keepdim)
        out = np.prod(x, axis=axes, keepdims=keepdim,
                      dtype=np.int64 if x.dtype.kind in "biu" else None)
        self.save_for_backward(x)
        return np.asarray(out)

    def backward(self, g):
        (x,) = self.saved_tensors
        axis = self.axes[0] if self.axes else None
        flat = x.reshape(-1) if axis is None else x
        ax = 0 if axis is None else axis
        # product of all other elements, without dividing (zeros stay right)
        ones = np.ones_like(np.take(flat, [0], axis=ax))
        left = np.cumprod(np.concatenate([ones, np.take(flat, range(flat.shape[ax] - 1),
                                                        axis=ax)], axis=ax), axis=ax)
        rev = np.flip(flat, axis=ax)
        right = np.flip(np.cumprod(np.concatenate([ones, np.take(rev, range(rev.shape[ax] - 1),
                                                                  axis=ax)], axis=ax), axis=ax),
                        axis=ax)
        others = (left * right).reshape(x.shape)
        return _expand(g, self.shape, self.axes, self.keepdim) * others


ProdBackward1 = type("ProdBackward1", (ProdBackward0,), {})


class AmaxBackward0(_Reduce):
    """max/min over dims, gradient shared evenly among ties (torch's amax/amin and max())."""

    pick = staticmethod(np.max)

    def forward(self, x, dim=None, keepdim=False):
        axes = self.setup(x, dim, keepdim)
        if x.size == 0:
            raise RuntimeError("max(): Expected reduction dim to be specified for input.numel() "
                               "== 0. Specify the reduction dim with the 'dim' argument.")
        out = np.asarray(self.pick(x, axis=axes, keepdims=keepdim))
        self.save_for_backward(x, out)
        return out

    def backward(self, g):
        x, out = self.saved_tensors
        hit = x == _expand(out, self.shape, self.axes, self.keepdim)
        count = hit.sum(axis=self.axes, keepdims=True)
        return hit * _expand(g, self.shape, self.axes, self.keepdim) / count


class AminBackward0(AmaxBackward0):
    pick = staticmethod(np.min)


MaxBackward1 = type("MaxBackward1", (AmaxBackward0,), {})
MinBackward1 = type("MinBackward1", (AminBackward0,), {})


class MaxBackward0(Function):
    """max/min along one dim: the gradient goes to the index returned."""

    arg = staticmethod(np.argmax)

    def forward(self, x, dim, keepdim):
        self.shape, self.keepdim = x.shape, keepdim
        self.axis = _dim(dim, x.ndim) if x.ndim else None
        if x.ndim == 0:
            self.indices = np.zeros((), dtype=np.int64)
            return x.copy()
        if x.shape[self.axis] == 0:
            raise IndexError(f"max(): Expected reduction dim {dim} to have non-zero size.")
        idx = np.expand_dims(self.arg(x, axis=self.axis), self.axis)
        out = np.take_along_axis(x, idx, axis=self.axis)
        self.save_for_backward(idx)
        if not keepdim:
            out, idx = out.squeeze(self.axis), idx.squeeze(self.axis)
        self.indices = idx.astype(np.int64)
        return out

    def backward(self, g):
        if self.axis is None:
            return g
        (idx,) = self.saved_tensors
        grad = np.zeros(self.shape, dtype=g.dtype)
        if not self.keepdim:
            g = np.expand_dims(g, self.axis)
        np.put_along_axis(grad, idx, g, axis=self.axis)
        return grad


class MinBackward0(MaxBackward0):
    arg = staticmethod(np.argmin)


def _max_min(full, along, input, dim, keepdim, other):
    if isinstance(dim, Tensor):
        other, dim = dim, None
    if other is not None:
        from .pointwise import maximum, minimum
        return (maximum if full is MaxBackward1 else minimum)(input, other)
    if dim is None:
        return full.apply(input)
    fn = along()
    fn.prepare((input,))
    out = fn.attach((input,), fn.forward(input._data, dim, keepdim))
    pair = return_types.max if full is MaxBackward1 else return_types.min
    return pair(out, Tensor._make(fn.indices))


def max(input, dim=None, keepdim=False, *, other=None):
    """Largest element; with ``dim``, a (values, indices) pair; with a tensor, ``maximum``.
    >>> values, indices = dtrain.tensor([[1., 5.], [7., 2.]]).max(dim=1)"""
    return _max_min(MaxBackward1, MaxBackward0, input, dim, keepdim, other)


def min(input, dim=None, keepdim=False, *, other=None):
    """Smallest element; with ``dim``, a (values, indices) pair; with a tensor, ``minimum``.
    >>> values, indices = dtrain.tensor([[1., 5.], [7., 2.]]).min(dim=1)"""
    return _max_min(MinBackward1, MinBackward0, input, dim, keepdim, other)


def amax(input, dim=(), keepdim=False):
    """Largest values over ``dim`` (all dims by default); ties share the gradient.
    >>> x.amax(dim=(0, 1))"""
    return AmaxBackward0.apply(input, dim=None if dim == () else dim, keepdim=keepdim)


def amin(input, dim=(), keepdim=False):
    """Smallest values over ``dim`` (all dims by default); ties share the gradient.
    >>> x.amin(dim=1)"""
    return AminBackward0.apply(input, dim=None if dim == () else dim, keepdim=keepdim)


def _arg(fn, input, dim, keepdim):
    x = input._data
    if dim is None:
        out = np.asarray(fn(x.reshape(-1)))
        return Tensor._make(out.reshape((1,) * x.ndim) if keepdim else out)
    axis = _dim(dim, x.ndim)
    return Tensor._make(np.asarray(fn(x, axis=axis, keepdims=keepdim)) if x.ndim
                        else np.zeros((), dtype=np.int64))


def argmax(input, dim=None, keepdim=False):
    """Index of the largest element (of the flattened input unless ``dim`` is given).
    >>> logits.argmax(dim=1)"""
    return _arg(np.argmax, input, dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    """Index of the smallest element (of the flattened input unless ``dim`` is given).
    >>> dtrain.argmin(dtrain.tensor([3, 1, 2]))"""
    return _arg(np.argmin, input, dim, keepdim)


class VarBackward0(_Reduce):
    def forward(self, x, dim=None, correction=1, keepdim=False):
        _float_only(x, "var")
        axes = self.setup(x, dim, keepdim)
        self.n = int(np.prod([x.shape[a] for a in (axes if axes is not None
                                                   else range(x.ndim))]))
        self.correction = correction
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(np.var(x, axis=axes, ddof=correction, keepdims=keepdim))
        self.save_for_backward(x, out)
        return out

    def backward(self, g):
        x, out = self.saved_tensors
        centered = x - np.mean(x, axis=self.axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 2.0 / (self.n - self.correction)
            return _expand(g, self.shape, self.axes, self.keepdim) * centered * scale


class StdBackward0(VarBackward0):
    def forward(self, x, dim=None, correction=1, keepdim=False):
        var = super().forward(x, dim, correction, keepdim)
        out = np.sqrt(var)
        self.save_for_backward(x, out)
        return out

    def backward(self, g):
        x, out = self.saved_tensors
        centered = x - np.mean(x, axis=self.axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            # NOTE: where the std is 0 the gradient is 0 (torch masks it), not 0/0
            d = _expand(np.where(out == 0, 0, g / out), self.shape, self.axes, self.keepdim)
            return d * centered / (self.n - self.correction)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance (Bessel-corrected unless ``unbiased=False`` or ``correction=0``).
    >>> x.var(dim=0, correction=0)"""
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return VarBackward0.apply(input, dim=dim, correction=_correction(unbiased, correction),
                              keepdim=keepdim)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation (Bessel-corrected unless ``unbiased=False`` or ``correction=0``).
    >>> x.std(dim=0, keepdim=True)"""
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return StdBackward0.apply(input, dim=dim, correction=_correction(unbiased, correction),
                              keepdim=keepdim)


def sum(input, dim=None, keepdim=False, *, dtype=None):
    """Sum of all elements, or over ``dim`` (an int or a tuple). Integers sum to int64.
    >>> x.sum(); x.sum(dim=1, keepdim=True)"""
    np_dtype = _dtypes.to_dtype(dtype).np if dtype is not None else None
    cls = SumBackward0 if dim is None else SumBackward1
    return cls.apply(input, dim=dim, keepdim=keepdim, dtype=np_dtype)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """Mean of all elements, or over ``dim``. The input must be floating point.
    >>> dtrain.mean(x, dim=(0, 2))"""
    np_dtype = _dtypes.to_dtype(dtype).np if dtype is not None else None
    cls = MeanBackward0 if dim is None else MeanBackward1
    return cls.apply(input, dim=dim, keepdim=keepdim, dtype=np_dtype)


def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product of all elements, or along one ``dim``. >>> x.prod(dim=1)"""
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:
        return ProdBackward0.apply(input)
    return ProdBackward1.apply(input, dim=int(dim), keepdim=keepdim)


# --- softmax family ------------------------------------------------------------------------

def _stable_shift(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return x - np.where(np.isfinite(m), m, 0)


class SoftmaxBackward0(Function):
    def forward(self, x, dim):
        _float_only(x, "softmax")
        self.axis = _dim(dim, x.ndim)
        e = np.exp(_stable_shift(x, self.axis))
        out = e / e.sum(axis=self.axis, keepdims=True)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (y,) = self.saved_tensors
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmaxBackward0(Function):
    def forward(self, x, dim):
        _float_only(x, "log_softmax")
        self.axis = _dim(dim, x.ndim)
        shifted = _stable_shift(x, self.axis)
        out = shifted - np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (y,) = self.saved_tensors
        return g - np.exp(y) * g.sum(axis=self.axis, keepdims=True)


class LogsumexpBackward0(_Reduce):
    def forward(self, x, dim, keepdim=False):
        if x.dtype.kind != "f":
            x = x.astype(_dtypes.get_default_dtype().np)
        axes = self.setup(x, dim, keepdim)
        m = np.max(x, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.exp(x - m).sum(axis=axes, keepdims=True)) + m
        self.save_for_backward(x, out)
        return out if keepdim else np.squeeze(out, axis=axes)

    def backward(self, g):
        x, out = self.saved_tensors
        return _expand(g, self.shape, self.axes, self.keepdim) * np.exp(x - out)


def _softmax_dtype(input, dtype):
    return input.to(dtype) if dtype is not None else input


def softmax(input, dim, dtype=None):
    """exp(x) / sum(exp(x)) along ``dim``, computed stably. >>> dtrain.softmax(logits, dim=1)"""
    return SoftmaxBackward0.apply(_softmax_dtype(input, dtype), dim=dim)


def log_softmax(input, dim, dtype=None):
    """log(softmax(x)) along ``dim``, computed stably. >>> logits.log_softmax(dim=1)"""
    return LogSoftmaxBackward0.apply(_softmax_dtype(input, dtype), dim=dim)


def logsumexp(input, dim, keepdim=False):
    """log(sum(exp(x))) over ``dim``, computed stably. >>> dtrain.logsumexp(x, dim=1)"""
    return LogsumexpBackward0.apply(input, dim=dim, keepdim=keepdim)


class SortBackward0(Function):
    def forward(self, x, dim, descending, stable):
        self.axis = _dim(dim, x.ndim) if x.ndim else None
        if self.axis is None:
            self.indices = np.zeros((), dtype=np.int64)
            return x.copy()
        key = x
        if descending:  # NOTE: negate in a signed type; -x wraps around for uint8 and bool
            key = -(x.astype(np.int64) if x.dtype.kind in "ub" else x)
        idx = np.argsort(key, axis=self.axis,
                         kind="stable" if stable or descending else None)
        self.indices = idx.astype(np.int64)
        self.save_for_backward(idx)
        return np.take_along_axis(x, idx, axis=self.axis)

    def backward(self, g):
        if self.axis is None:
            return g
        (idx,) = self.saved_tensors
        grad = np.empty_like(g)
        np.put_along_axis(grad, idx, g, axis=self.axis)
        return grad


def sort(input, dim=-1, descending=False, stable=False):
    """Sorted values along ``dim`` and the indices they came from.
    >>> values, indices = dtrain.sort(dtrain.tensor([3., 1., 2.]), descending=True)"""
    fn = SortBackward0()
    fn.prepare((input,))
    out = fn.attach((input,), fn.forward(input._data, dim, descending, stable))
    return return_types.sort(out, Tensor._make(fn.indices))


def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort ``input`` along ``dim``. >>> dtrain.argsort(x, dim=1)"""
    return sort(input, dim, descending, stable).indices


def all(input, dim=None, keepdim=False):
    """True (a bool tensor) if every element, or every one along ``dim``, is nonzero.
    >>> (x > 0).all()"""
    return Tensor._make(np.asarray(np.all(input._data, axis=_axes(dim, input._data.ndim),
                                          keepdims=keepdim)))


def any(input, dim=None, keepdim=False):
    """True (a bool tensor) if some element, or some one along ``dim``, is nonzero.
    >>> dtrain.isnan(x).any()"""
    return Tensor._make(np.asarray(np.any(input._data, axis=_axes(dim, input._data.ndim),
                                          keepdims=keepdim)))
