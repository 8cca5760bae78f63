"""Matrix products: matmul (with torch's 1-D and batched rules), mm, bmm, mv, dot, outer."""
import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor


def _shape_str(shape):
    return "x".join(str(s) for s in shape)


class MmBackward0(Function):
    """matmul of arrays with at least one dim each; batch dims broadcast (the engine sums the
    gradient back over them)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return np.matmul(a, b)

    def backward(self, g):
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        ga = gb = None
        if a.ndim == 1 and b.ndim == 1:
            return (g * b if need_a else None), (g * a if need_b else None)
        if b.ndim == 1:
            if need_a:
                ga = np.multiply.outer(g, b)
            if need_b:
                gb = np.matmul(np.swapaxes(a, -1, -2), g[..., None])[..., 0]
            return ga, gb
        if a.ndim == 1:
            if need_a:
                ga = np.matmul(b, g[..., None])[..., 0]
            if need_b:
                gb = a[:, None] * g[..., None, :]
            return ga, gb
        if need_a:
            ga = np.matmul(g, np.swapaxes(b, -1, -2))
        if need_b:
            gb = np.matmul(np.swapaxes(a, -1, -2), g)
        return ga, gb


DotBackward0 = type("DotBackward0", (MmBackward0,), {})
MvBackward0 = type("MvBackward0", (MmBackward0,), {})
BmmBackward0 = type("BmmBackward0", (MmBackward0,), {})
UnsafeViewBackward0 = type("UnsafeViewBackward0", (MmBackward0,), {})  # batched matmul
SqueezeBackward4 = type("SqueezeBackward4", (MmBackward0,), {})  # vector @ matrix
CloneBackward0 = type("CloneBackward0", (MmBackward0,), {})  # matrix @ batch


def _check(a, b, name):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{name}(): argument must be a Tensor, got "
                        f"{type(b if isinstance(a, Tensor) else a).__name__}")
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype} != "
                           f"{b.dtype}")


def matmul(input, other):
    """Matrix product with numpy/torch rules: 1-D operands are vectors, extra leading dims
    are batch dims that broadcast. >>> x @ w"""
    _check(input, other, "matmul")
    sa, sb = input._data.shape, other._data.shape
    if not sa or not sb:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{len(sa)}D and {len(sb)}D")
    if sa[-1] != sb[-2 if len(sb) > 1 else -1]:
        if len(sa) == 1 and len(sb) == 1:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{sa[0]}] and src "
                               f"[{sb[0]}] to have the same number of elements, but got "
                               f"{sa[0]} and {sb[0]} elements respectively")
        a2 = sa if len(sa) > 1 else (1,) + sa
        b2 = sb if len(sb) > 1 else sb + (1,)
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied "
                           f"({_shape_str(a2[-2:] if len(sa) < 3 else (np.prod(sa[:-1]), sa[-1]))}"
                           f" and {_shape_str(b2[-2:])})")
    na, nb = len(sa), len(sb)
    if na == 1 and nb == 1:
        cls = DotBackward0
    elif na == 2 and nb == 1:
        cls = MvBackward0
    elif na == 1 and nb == 2:
        cls = SqueezeBackward4
    elif na == 2 and nb == 2:
        cls = MmBackward0
    elif na == 2:
        cls = CloneBackward0
    else:
        cls = UnsafeViewBackward0
    try:
        return cls.apply(input, other)
    except ValueError as e:
        raise RuntimeError(f"matmul: batch dimensions of {list(sa)} and {list(sb)} do not "
                           f"broadcast ({e})") from None


def _exact(name, cls, ndim_a, ndim_b, example):
    def op(input, other):
        _check(input, other, name)
        if input._data.ndim != ndim_a or other._data.ndim != ndim_b:
            raise RuntimeError(f"{name}: expected {ndim_a}-D and {ndim_b}-D tensors, got "
                               f"{input._data.ndim}-D and {other._data.ndim}-D")
        if name == "bmm" and input._data.shape[0] != other._data.shape[0]:
            raise RuntimeError(f"batch1 and batch2 must have same number of batches, got "
                               f"{input._data.shape[0]} and {other._data.shape[0]}")
        if input._data.shape[-1] != other._data.shape[-2 if ndim_b > 1 else -1]:
            return matmul(input, other)  # raises matmul's size error
        return cls.apply(input, other)
    op.__name__ = name
    op.__doc__ = (f"torch.{name}: matmul restricted to {ndim_a}-D @ {ndim_b}-D operands. "
                  f">>> dtrain.{name}({example})")
    return op


mm = _exact("mm", MmBackward0, 2, 2, "dtrain.ones(2, 3), dtrain.ones(3, 4)")
bmm = _exact("bmm", BmmBackward0, 3, 3, "dtrain.ones(5, 2, 3), dtrain.ones(5, 3, 4)")
mv = _exact("mv", MvBackward0, 2, 1, "dtrain.ones(2, 3), dtrain.ones(3)")
dot = _exact("dot", DotBackward0, 1, 1, "dtrain.ones(3), dtrain.ones(3)")


def outer(input, vec2):
    """Outer product of two vectors. >>> dtrain.outer(dtrain.ones(2), dtrain.ones(3)).shape"""
    return input.unsqueeze(1) * vec2.unsqueeze(0)


ger = outer


class AddmmBackward0(Function):
    """x @ w.T + b for a 2-D x: one BLAS call and an in-place add."""

    def forward(self, x, w, b):
        self.save_for_backward(x, w)
        out = x @ w.T
        if b is not None:
            out += b
        return out

    def backward(self, g):
        x, w = self.saved_tensors
        need_x, need_w, need_b = self.needs_input_grad
        return (g @ w if need_x else None, g.T @ x if need_w else None,
                g.sum(axis=0) if need_b else None)


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` over the last dim. >>> F.linear(x, w, b)"""
    _check(input, weight, "linear")
    x = input._data
    if x.shape[-1:] != weight._data.shape[-1:]:
        lead = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({lead}x{x.shape[-1]} "
                           f"and {weight._data.shape[1]}x{weight._data.shape[0]})")
    if x.ndim == 2:
        return AddmmBackward0.apply(input, weight, bias) if bias is not None else \
            matmul(input, weight.t())
    if bias is None or not x.flags.c_contiguous:
        out = matmul(input, weight.t())
        return out if bias is None else out + bias
    # torch folds a contiguous input to 2-D for one addmm, then views the result back
    out = AddmmBackward0.apply(input.reshape(-1, x.shape[-1]), weight, bias)
    return out.view(*x.shape[:-1], weight._data.shape[0])
