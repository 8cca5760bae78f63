"""Views and in-place changes through them.

A view shares its base's memory and version counter. When a view is changed in place inside
autograd, the base's graph is rewritten (torch's CopySlices): the base gets a node that puts
the new values into the view's region, and the view's gradient path goes through that node.
The region is found from numpy's strides, so any strided view works without replaying ops.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..autograd.function import Function


def as_view(out, src):
    """Mark ``out`` as a view of ``src``: same storage, same version counter, torch's ``_base``."""
    out._version_counter = src._version_counter
    out._base = src._base if src._base is not None else src
    out._view_version = src._version_counter[0]
    return out


def region_of(base, view):
    """A function taking any C-contiguous array shaped like ``base`` to the part that ``view``
    (a numpy view into ``base``) covers."""
    if not base.flags.c_contiguous:
        raise RuntimeError("dtrain cannot change in place a view of a non-contiguous tensor "
                           "that requires grad; call .contiguous() on the base first")
    item = base.itemsize
    offset = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
    shape, steps = view.shape, tuple(s // item for s in view.strides)

    def region(arr):
        arr = np.ascontiguousarray(arr)
        return as_strided(arr.reshape(-1)[offset:], shape, tuple(s * arr.itemsize for s in steps))
    return region


class CopySlices(Function):
    """base with the view's region replaced by ``values``."""

    def forward(self, base, values, region):
        self.region = region
        out = base.copy()
        region(out)[...] = values
        return out

    def backward(self, g):
        need_base, need_values = self.needs_input_grad
        gb = None
        if need_base:
            gb = np.array(g, order="C")
            self.region(gb)[...] = 0
        return gb, (self.region(g).copy() if need_values else None)


class AsStridedBackward0(Function):
    """The view's region of the base, as a graph node (a view's gradient path after a rebase)."""

    def forward(self, base, region, shape):
        self.region, self.shape = region, shape
        return region(base)

    def backward(self, g):
        grad = np.zeros(self.shape, dtype=g.dtype)
        self.region(grad)[...] = g
        return grad


def assign_to_view(view, result):
    """``view.op_()`` inside autograd: write ``result`` through the view and rewrite the graph."""
    view._check_inplace()
    base = view._base
    if base.grad_fn is None and base._requires_grad:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation.")
    fn = result.grad_fn
    if fn is not None and fn._saved:
        # the node may hold the view's old values, which the write below overwrites
        fn._saved = tuple(a.copy() if a is view._data else a for a in fn._saved)
        fn._saved_meta = [m for m in fn._saved_meta if m[0] is not view._version_counter]
    region = region_of(base._data, view._data)
    base._assign(CopySlices.apply(base, result, region=region))
    refresh(view)
    return view


def refresh(view):
    """Point a view's gradient path at its base's current node (after the base changed)."""
    base = view._base
    node = AsStridedBackward0.apply(base, region=region_of(base._data, view._data),
                                    shape=base._data.shape).grad_fn
    view.grad_fn = node
    view._requires_grad = node is not None or view._requires_grad
    view._view_version = view._version_counter[0]
    return node
