"""Function: one differentiable primitive, and (once applied) its node in the backward graph.

Every op has the same shape: ``forward`` computes numpy arrays from numpy arrays and saves what
backward needs; ``backward`` maps the output's gradient to one gradient per input (None where
no gradient is needed). Broadcasting and dtype are undone in one place, the engine.
"""
import itertools
import weakref

import numpy as np

from .grad_mode import _state

_sequence = itertools.count()
_Tensor = None  # dtrain.tensor.Tensor, set when that module loads (it imports this one)

_FREED = ("Trying to backward through the graph a second time (or directly access saved tensors "
          "after they have already been freed). Saved intermediate values of the graph are freed "
          "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
          "backward through the graph a second time or if you need to access saved tensors after "
          "calling backward.")


class Function:
    """Base of every differentiable op. The subclass name is the node name torch shows
    (``AddBackward0``), because the applied instance is the tensor's ``grad_fn``."""

    _saved = ()
    _saved_meta = None   # one (version counter, version, description) per saved input/output
    _pre_hooks = None    # hooks of the output tensor: register_hook, retain_grad
    _freed = False
    _edges = ()
    _input_meta = ()
    needs_input_grad = ()

    def forward(self, *arrays, **kwargs):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def save_for_backward(self, *arrays):
        if self.needs_input_grad:  # only nodes that join the graph keep anything
            self._saved = arrays

    @property
    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(_FREED)
        if self._saved_meta:
            for counter, version, shape, dtype, creator in self._saved_meta:
                if counter[0] != version:
                    raise RuntimeError(
                        "one of the variables needed for gradient computation has been modified "
                        f"by an inplace operation: {_describe(shape, dtype, creator)} is at "
                        f"version {counter[0]}; "
                        f"expected version {version} instead. Hint: the tensor was changed in "
                        "place after it was used; use an out-of-place op or .clone() it first.")
        return self._saved

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on the arrays of ``args`` (Tensors or plain numbers) and return a Tensor
        that records this node when grad mode is on and some input requires grad."""
        fn = cls()
        arrays = [a._data if isinstance(a, _Tensor) else a for a in args]
        fn.prepare(args)
        return fn.attach(args, fn.forward(*arrays, **kwargs))

    def prepare(self, args):
        """Before forward: set ``needs_input_grad`` if this op will join the graph."""
        if _state.enabled:
            needs = [isinstance(a, _Tensor) and a._requires_grad for a in args]
            if True in needs:
                self.needs_input_grad = tuple(needs)

    def attach(self, args, out):
        """After forward: wrap ``out`` in a Tensor and link this node into the graph."""
        result = _Tensor._make(out)
        needs = self.needs_input_grad
        if not needs:
            return result
        edges, meta = [], []
        for a, n in zip(args, needs):
            if n:
                edges.append(a._grad_node())
                meta.append((a._data.shape, a._data.dtype))
            else:
                edges.append(None)
                meta.append(None)
        self._edges, self._input_meta = edges, meta
        self._seq = next(_sequence)
        result._requires_grad = True
        result.grad_fn = self
        if self._saved:
            self._record_versions(args, result)
        return result

    def _record_versions(self, args, result):
        meta = []
        for arr in self._saved:
            owner = result if arr is result._data else next(
                (a for a in args if isinstance(a, _Tensor) and a._data is arr), None)
            if owner is not None:
                meta.append((owner._version_counter, owner._version_counter[0],
                             arr.shape, arr.dtype, type(owner.grad_fn)))
        self._saved_meta = meta

    def _release(self):
        if self._saved:
            self._saved = ()
            self._saved_meta = None
            self._freed = True

    # --- torch's introspection API ---------------------------------------------------------
    def name(self):
        return type(self).__name__

    @property
    def next_functions(self):
        return tuple((e, 0) for e in self._edges)

    def register_hook(self, fn):
        raise NotImplementedError("dtrain supports hooks on tensors (Tensor.register_hook), "
                                  "not on grad_fn nodes")

    def __repr__(self):
        return f"<{type(self).__name__} object at {id(self):#x}>"


def _describe(shape, dtype, creator):
    from ..tensor import _TYPE_NAMES
    where = f", which is output 0 of {creator.__name__}," if creator is not type(None) else ""
    return f"[dtrain.{_TYPE_NAMES[str(dtype)]} {list(shape)}]{where}"


class AccumulateGrad:
    """Graph node of a leaf tensor: adds the incoming gradient into ``leaf.grad``."""

    _edges = ()
    _seq = -1

    def __init__(self, tensor):
        self._variable = weakref.ref(tensor)

    @property
    def variable(self):
        return self._variable()

    @property
    def _pre_hooks(self):
        t = self._variable()
        return t._hooks if t is not None else None

    def accumulate(self, grad):
        t = self._variable()
        if t is None:
            return
        if t.grad is None:
            # NOTE: always copy: the same array may flow to several leaves or be a view
            t.grad = _Tensor._make(np.array(grad, dtype=t._data.dtype, copy=True))
        else:
            np.add(t.grad._data, grad, out=t.grad._data, casting="unsafe")
        if t._post_hooks:
            for hook in t._post_hooks:
                hook(t)

    def name(self):
        return "torch::autograd::AccumulateGrad"

    next_functions = ()

    def __repr__(self):
        return f"<AccumulateGrad object at {id(self):#x}>"
