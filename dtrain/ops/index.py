"""Indexing: ``x[index]`` and ``x[index] = value`` with ints, slices, None, Ellipsis, integer
arrays and boolean masks (numpy's rules, which are torch's)."""
import numpy as np

from ..autograd import grad_mode
from ..autograd.function import Function
from ..tensor import Tensor, _dim
from .shape import SliceBackward0
from .views import as_view


def _convert(index):
    """numpy index and whether it is advanced (copying) indexing."""
    items = index if type(index) is tuple else (index,)
    out, advanced = [], False
    for i in items:
        if isinstance(i, Tensor):
            i = i._data
        elif isinstance(i, (list, range)):
            i = np.asarray(i)
            if i.dtype.kind == "f" or (i.size == 0 and i.dtype.kind != "b"):
                i = i.astype(np.int64)
        if isinstance(i, np.ndarray):
            if i.dtype.kind not in "iub":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            if i.ndim == 0 and i.dtype.kind in "iu":
                i = int(i)
            else:
                advanced = True
        elif isinstance(i, slice) and i.step is not None and i.step <= 0:
            raise ValueError("step must be greater than zero")
        elif not (i is None or i is Ellipsis or isinstance(i, (int, slice, np.integer))):
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(i).__name__})")
        out.append(i)
    if advanced and any(isinstance(i, (int, np.integer)) for i in out):
        return _ints_first(out), True
    return (tuple(out) if type(index) is tuple or len(out) != 1 else out[0]), advanced


class _Steps(tuple):
    """Indices applied one after another."""


def _ints_first(items):
    """torch applies integer indices before advanced ones (numpy mixes them, which moves dims):
    split the index into an integer step and the rest."""
    first, rest = [], []
    for i in items:
        if i is Ellipsis:
            first.append(Ellipsis)
            rest.append(Ellipsis)
        elif i is None:
            rest.append(None)
        elif isinstance(i, (int, np.integer)):
            first.append(i)
        else:
            n = i.ndim if isinstance(i, np.ndarray) and i.dtype == np.bool_ else 1
            first += [slice(None)] * n
            rest.append(i)
    return _Steps((tuple(first), tuple(rest)))


def _target(arr, index):
    """(array, index) such that ``array[index]`` is ``arr[index]`` for a plain or stepped index,
    with ``array`` a view of ``arr`` (so assignments reach ``arr``)."""
    if type(index) is _Steps:
        for step in index[:-1]:
            arr = arr[step]
        index = index[-1]
    return arr, index


def _torch_error(e):
    msg = str(e).replace("axis", "dimension")
    if msg.startswith("too many indices"):
        return IndexError(msg.replace("array", "tensor"))
    return IndexError(msg)


SelectBackward0 = type("SelectBackward0", (SliceBackward0,), {})
UnsqueezeBackward0 = type("UnsqueezeBackward0", (SliceBackward0,), {})
AliasBackward0 = type("AliasBackward0", (SliceBackward0,), {})


class IndexBackward0(Function):
    """Advanced indexing: a copy; repeated indices accumulate their gradients."""

    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        arr, idx = _target(x, index)
        return arr[idx]

    def backward(self, g):
        grad = np.zeros(self.in_shape, dtype=g.dtype)
        np.add.at(*_target(grad, self.index), g)
        return grad


def _basic_node(index):
    """torch's node name for basic indexing: that of the last index item that does something."""
    items = index if type(index) is tuple else (index,)
    if type(index) is slice:
        return SliceBackward0  # torch keeps even a full single slice (x[:])
    for i in reversed(items):
        if i is None:
            return UnsqueezeBackward0
        if isinstance(i, (int, np.integer)):
            return SelectBackward0
        if isinstance(i, slice) and i != slice(None):
            return SliceBackward0
    return AliasBackward0


def _all_advanced(index):
    """True if the index has only arrays, full slices and Ellipsis: torch then records
    IndexPutBackward0; with ints or partial slices it indexes a view first (CopySlices)."""
    if type(index) is _Steps:
        return False
    items = index if type(index) is tuple else (index,)
    return all(isinstance(i, np.ndarray) or i is Ellipsis or i == slice(None) for i in items)


def getitem(x, index):
    idx, advanced = _convert(index)
    cls = IndexBackward0 if advanced else _basic_node(idx)
    try:
        out = cls.apply(x, index=idx)
    except IndexError as e:
        raise _torch_error(e) from None
    return out if advanced else as_view(out, x)


class CopySlices(Function):
    """``x[index] = value`` recorded in the graph."""

    def forward(self, x, value, index):
        self.index = index
        out = x.copy()
        arr, idx = _target(out, index)
        arr[idx] = value
        return out

    def backward(self, g):
        need_x, need_v = self.needs_input_grad
        gx = gv = None
        if need_x:
            gx = g.copy()
            arr, idx = _target(gx, self.index)
            arr[idx] = 0
        if need_v:
            arr, idx = _target(g, self.index)
            gv = arr[idx]
        return gx, gv


IndexPutBackward0 = type("IndexPutBackward0", (CopySlices,), {})


def setitem(x, index, value):
    idx, advanced = _convert(index)
    if not isinstance(value, (Tensor, int, float, bool, np.number, np.bool_)):
        value = Tensor._make(np.asarray(value, dtype=x._data.dtype))
    recording = grad_mode._state.enabled and (
        x._requires_grad or (isinstance(value, Tensor) and value._requires_grad))
    if advanced and isinstance(value, Tensor) and value._data.dtype != x._data.dtype:
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got "
                           f"{x.dtype} for the destination and {value.dtype} for the source.")
    try:
        if recording:
            cls = IndexPutBackward0 if advanced and _all_advanced(idx) else CopySlices
            x._assign(cls.apply(x, value, index=idx))
        else:
            x._check_inplace()
            arr, i = _target(x._data, idx)
            arr[i] = value._data if isinstance(value, Tensor) else value
            x._bump()
    except IndexError as e:
        raise _torch_error(e) from None
    except ValueError as e:
        raise RuntimeError(f"shape mismatch: value tensor of shape "
                           f"{list(np.shape(value._data if isinstance(value, Tensor) else value))}"
                           f" cannot be broadcast to indexing result ({e})") from None


class GatherBackward0(Function):
    def forward(self, x, index, dim):
        self.in_shape = x.shape
        idx = list(np.indices(index.shape, sparse=True))
        idx[dim] = index
        self.index = tuple(idx)
        return x[self.index]

    def backward(self, g):
        grad = np.zeros(self.in_shape, dtype=g.dtype)
        np.add.at(grad, self.index, g)
        return grad, None


def gather(input, dim, index):
    """``out[i][j] = input[i][index[i][j]]`` for dim=1 (and likewise for other dims).

    >>> dtrain.gather(x, 1, dtrain.tensor([[0], [2]]))
    """
    d = _dim(dim, input._data.ndim)
    idx = index._data
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"gather(): Expected dtype int64 for index, got {index.dtype}")
    if idx.ndim != input._data.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for k, (n, m) in enumerate(zip(idx.shape, input._data.shape)):
        if k != d and n > m:
            raise RuntimeError(f"Size does not match at dimension {k} expected index "
                               f"{list(idx.shape)} to be smaller than self "
                               f"{list(input._data.shape)} apart from dimension {d}")
    try:
        return GatherBackward0.apply(input, index, dim=d)
    except IndexError as e:
        raise RuntimeError(f"index out of range in gather: {e}") from None


class EmbeddingBackward0(Function):
    def forward(self, weight, indices, padding_idx):
        self.shape, self.padding_idx, self.indices = weight.shape, padding_idx, indices
        return weight[indices]

    def backward(self, g):
        grad = np.zeros(self.shape, dtype=g.dtype)
        np.add.at(grad, self.indices, g)
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        return grad, None, None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by the integer ``input``. >>> F.embedding(ids, table)"""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("dtrain's embedding supports padding_idx only (no max_norm, "
                                  "scale_grad_by_freq or sparse gradients)")
    idx = input._data
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {input.type()} instead (while "
                           "checking arguments for embedding)")
    n = weight._data.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError("index out of range in self")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n
    return EmbeddingBackward0.apply(weight, idx, padding_idx)
