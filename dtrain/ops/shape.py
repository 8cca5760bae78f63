"""Shape ops. View ops return numpy views, so results share storage and a version counter."""
import numpy as np

from ..autograd.function import Function
from ..tensor import Size, _dim
from .arith import promote
from .views import as_view


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def infer_shape(shape, numel):
    """Resolve one -1 in ``shape`` against ``numel``, with torch's errors."""
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = 1
    for s in shape:
        if s != -1:
            if s < 0:
                raise RuntimeError(f"invalid shape dimension {s}")
            known *= s
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


class ViewBackward0(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        try:
            return np.reshape(x, shape, copy=False)
        except ValueError:
            raise RuntimeError("view size is not compatible with input tensor's size and stride "
                               "(at least one dimension spans across two contiguous subspaces). "
                               "Use .reshape(...) instead.") from None

    def backward(self, g):
        return g.reshape(self.in_shape)


ReshapeAliasBackward0 = type("ReshapeAliasBackward0", (ViewBackward0,), {})


class UnsafeViewBackward0(ViewBackward0):
    """reshape that had to copy"""

    def forward(self, x, shape):
        self.in_shape = x.shape
        return np.reshape(x, shape)


def view(input, *shape):
    """Same data, new shape, sharing storage. Fails when the strides do not allow it; use
    ``reshape`` then. >>> x.view(-1, 4)"""
    if len(shape) == 1 and not isinstance(shape[0], (int, tuple, list, Size)):
        return input.to(shape[0])  # view(dtype)
    shape = infer_shape(_shape_arg(shape), input._data.size)
    return as_view(ViewBackward0.apply(input, shape=shape), input)


def reshape(input, *shape):
    """``view`` when possible, else a copy. >>> x.reshape(2, -1)"""
    shape = infer_shape(_shape_arg(shape), input._data.size)
    if input._data.flags.c_contiguous:
        return as_view(ViewBackward0.apply(input, shape=shape), input)
    try:
        return as_view(ReshapeAliasBackward0.apply(input, shape=shape), input)
    except RuntimeError:
        return UnsafeViewBackward0.apply(input, shape=shape)


def view_as(input, other):
    """``view`` with ``other``'s shape. >>> x.view_as(y)"""
    return view(input, other._data.shape)


def reshape_as(input, other):
    """``reshape`` to ``other``'s shape. >>> x.reshape_as(y)"""
    return reshape(input, other._data.shape)


class PermuteBackward0(Function):
    def forward(self, x, dims):
        self.dims = dims
        return np.transpose(x, dims)

    def backward(self, g):
        return np.transpose(g, np.argsort(self.dims))


TransposeBackward0 = type("TransposeBackward0", (PermuteBackward0,), {})
TBackward0 = type("TBackward0", (PermuteBackward0,), {})


def permute(input, *dims):
    """Reorder dims (a view). >>> x.permute(2, 0, 1)"""
    dims = _shape_arg(dims)
    n = input._data.ndim
    if len(dims) != n:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {n} is not equal to len(dims) = {len(dims)}")
    dims = tuple(_dim(d, n) for d in dims)
    if len(set(dims)) != n:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return as_view(PermuteBackward0.apply(input, dims=dims), input)


def transpose(input, dim0, dim1):
    """Swap two dims (a view). >>> x.transpose(0, 1)"""
    n = input._data.ndim
    dims = list(range(n))
    a, b = _dim(dim0, n), _dim(dim1, n)
    if n:
        dims[a], dims[b] = dims[b], dims[a]
    return as_view(TransposeBackward0.apply(input, dims=tuple(dims)), input)


swapaxes = swapdims = transpose


def t(input):
    """Transpose a tensor of at most 2 dims (a view). >>> w.t()"""
    n = input._data.ndim
    if n > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {n}D")
    return as_view(TBackward0.apply(input, dims=tuple(range(n))[::-1]), input)


class SqueezeBackward0(ViewBackward0):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)


SqueezeBackward1 = type("SqueezeBackward1", (SqueezeBackward0,), {})
UnsqueezeBackward0 = type("UnsqueezeBackward0", (SqueezeBackward0,), {})
SqueezeBackward2 = type("SqueezeBackward2", (SqueezeBackward0,), {})


def squeeze(input, dim=None):
    """Drop dims of size 1 (all of them, or only ``dim``); a view.
    >>> dtrain.zeros(2, 1, 3).squeeze(1).shape"""
    shape = input._data.shape
    if dim is None:
        new, cls = tuple(s for s in shape if s != 1), SqueezeBackward0
    else:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        dims = {_dim(d, len(shape)) for d in dims}
        new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
        cls = SqueezeBackward1 if isinstance(dim, int) else SqueezeBackward2
    return as_view(cls.apply(input, shape=new), input)


def unsqueeze(input, dim):
    """Insert a dim of size 1 at ``dim`` (a view). >>> dtrain.zeros(2, 3).unsqueeze(0).shape"""
    shape = input._data.shape
    d = _dim(dim, len(shape) + 1)
    return as_view(UnsqueezeBackward0.apply(input, shape=shape[:d] + (1,) + shape[d:]), input)


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one (a view when possible).
    >>> dtrain.zeros(8, 3, 4, 4).flatten(1).shape"""
    shape = input._data.shape
    if not shape:
        return reshape(input, 1)
    s, e = _dim(start_dim, len(shape)), _dim(end_dim, len(shape))
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return input
    return reshape(input, shape[:s] + (-1,) + shape[e + 1:])


class ExpandBackward0(Function):
    def forward(self, x, shape):
        return np.broadcast_to(x, shape)

    def backward(self, g):
        return g  # the engine sums back to the input's shape


def expand(input, *sizes):
    """Broadcast size-1 dims to a larger size without copying (-1 keeps a dim).
    >>> dtrain.ones(3, 1).expand(-1, 4).shape"""
    sizes = _shape_arg(sizes)
    shape = input._data.shape
    if len(sizes) < len(shape):
        raise RuntimeError(f"expand({input.type()}{{{list(shape)}}}, size={list(sizes)}): the "
                           f"number of sizes provided ({len(sizes)}) must be greater or equal to "
                           f"the number of dimensions in the tensor ({len(shape)})")
    lead = len(sizes) - len(shape)
    new = []
    for i, s in enumerate(sizes):
        cur = shape[i - lead] if i >= lead else None
        if s == -1:
            if cur is None:
                raise RuntimeError("The expanded size of the tensor (-1) isn't allowed in a "
                                   "leading, non-existing dimension " + str(i))
            s = cur
        elif cur is not None and cur != 1 and cur != s:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing "
                               f"size ({cur}) at non-singleton dimension {i}.  Target sizes: "
                               f"{list(sizes)}.  Tensor sizes: {list(shape)}")
        new.append(s)
    return as_view(ExpandBackward0.apply(input, shape=tuple(new)), input)


def expand_as(input, other):
    """``expand`` to ``other``'s shape. >>> bias.expand_as(x)"""
    return expand(input, other._data.shape)


class SliceBackward0(Function):
    """Basic (view-making) indexing; the gradient is scattered back."""

    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        return x[index]

    def backward(self, g):
        grad = np.zeros(self.in_shape, dtype=g.dtype)
        grad[self.index] = g
        return grad


SplitBackward0 = type("SplitBackward0", (SliceBackward0,), {})
SplitWithSizesBackward0 = type("SplitWithSizesBackward0", (SliceBackward0,), {})


def narrow(input, dim, start, length):
    """``length`` elements of ``dim`` from ``start`` (a view). >>> x.narrow(1, 0, 2)"""
    n = input._data.ndim
    d = _dim(dim, n)
    size = input._data.shape[d]
    if start < 0:
        start += size
    if not 0 <= start <= size or length < 0 or start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size "
                           f"({size}).")
    index = (slice(None),) * d + (slice(start, start + length),)
    return as_view(SliceBackward0.apply(input, index=index), input)


def split(input, split_size_or_sections, dim=0):
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or pieces of the
    given sizes. Each piece is a view. >>> a, b = x.split([2, 3], dim=1)"""
    d = _dim(dim, input._data.ndim)
    size = input._data.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0 and size:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got "
                               f"dimension size of {size}")
        sizes = [min(step, size - i) for i in range(0, size, step)] if size else [0]
        cls = SplitBackward0
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} "
                               f"(input tensor's size at dimension {d}), but got "
                               f"split_sizes={sizes}")
        cls = SplitWithSizesBackward0
    out, start = [], 0
    for n in sizes:
        index = (slice(None),) * d + (slice(start, start + n),)
        out.append(as_view(cls.apply(input, index=index), input))
        start += n
    return tuple(out)


def chunk(input, chunks, dim=0):
    """Up to ``chunks`` nearly equal views along ``dim``. >>> a, b = x.chunk(2)"""
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    size = input._data.shape[_dim(dim, input._data.ndim)]
    step = -(-size // chunks) if size else 1
    return split(input, step, dim)


def unbind(input, dim=0):
    """The slices along ``dim``, with that dim removed. >>> rows = dtrain.unbind(x)"""
    d = _dim(dim, input._data.ndim)
    return tuple(input[(slice(None),) * d + (i,)] for i in range(input._data.shape[d]))


class CatBackward0(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    def backward(self, g):
        return tuple(np.split(g, self.bounds, axis=self.axis))


class StackBackward0(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        return np.stack(arrays, axis=axis)

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))


def _same_dtype(tensors):
    dtype = promote(*tensors)
    return [x if x._data.dtype == dtype else x.to(dtype) for x in tensors]


def cat(tensors, dim=0):
    """Join tensors along an existing dim. >>> dtrain.cat([x, y], dim=1)"""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("dtrain.cat(): expected a non-empty list of Tensors")
    parts = [x for x in tensors if not (x._data.ndim == 1 and x._data.size == 0)] or tensors[:1]
    ref = parts[0]._data
    d = _dim(dim, ref.ndim)
    for i, x in enumerate(parts):
        s = x._data.shape
        if len(s) != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and "
                               f"{len(s)}")
        for k in range(ref.ndim):
            if k != d and s[k] != ref.shape[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. "
                                   f"Expected size {ref.shape[k]} but got size {s[k]} for tensor "
                                   f"number {i} in the list.")
    return CatBackward0.apply(*_same_dtype(parts), axis=d)


concat = concatenate = cat


def stack(tensors, dim=0):
    """Join same-shaped tensors along a new dim. >>> dtrain.stack([x, y])"""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    ref = tensors[0]._data.shape
    for i, x in enumerate(tensors):
        if x._data.shape != ref:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(ref)} "
                               f"at entry 0 and {list(x._data.shape)} at entry {i}")
    return StackBackward0.apply(*_same_dtype(tensors), axis=_dim(dim, len(ref) + 1))


def contiguous(input, memory_format=None):
    """``self`` if already contiguous in memory, else a contiguous copy (in the graph).
    >>> x.t().contiguous()"""
    if input._data.flags.c_contiguous:
        return input
    from .pointwise import clone
    return clone(input)


class RepeatBackward0(Function):
    def forward(self, x, reps):
        self.in_shape = x.shape
        return np.tile(x, reps)

    def backward(self, g):
        lead = g.ndim - len(self.in_shape)
        shape = self.in_shape
        split = []
        for i, n in enumerate(g.shape):
            s = shape[i - lead] if i >= lead else 1
            split += [n // s, s]
        return g.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(shape)


def repeat(input, *sizes):
    """Tile the data ``sizes[i]`` times along dim i (a copy; extra leading sizes add dims).
    >>> dtrain.tensor([1, 2]).repeat(2, 2).shape"""
    sizes = _shape_arg(sizes)
    if len(sizes) < input._data.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    return RepeatBackward0.apply(input, reps=sizes)


class FlipBackward0(Function):
    def forward(self, x, axes):
        self.axes = axes
        return np.flip(x, axes).copy()  # torch's flip copies; a numpy view would alias x

    def backward(self, g):
        return np.flip(g, self.axes)


def flip(input, dims):
    """Reverse the order of elements along ``dims``. >>> dtrain.flip(x, [0, 1])"""
    dims = (dims,) if isinstance(dims, int) else dims
    return FlipBackward0.apply(input, axes=tuple(_dim(d, input._data.ndim) for d in dims))
