"""Automatic differentiation: ``backward``, ``grad``, grad-mode switches, and ``Function``.

>>> x = dtrain.ones(2, 2, requires_grad=True)
>>> (gx,) = dtrain.autograd.grad((x * x).sum(), x)
"""
import numpy as np

from . import engine
from .function import AccumulateGrad, Function
from .grad_mode import (enable_grad, inference_mode, is_grad_enabled, no_grad,
                        set_grad_enabled)

__all__ = ["backward", "grad", "Function", "Variable", "no_grad", "enable_grad",
           "set_grad_enabled", "inference_mode", "is_grad_enabled"]


class _VariableMeta(type):
    def __instancecheck__(cls, other):
        from ..tensor import Tensor
        return isinstance(other, Tensor)


class Variable(metaclass=_VariableMeta):
    """Deprecated in torch, kept for old code: ``Variable(t)`` returns a Tensor sharing ``t``'s
    storage, with ``requires_grad`` set as asked; every Tensor is an instance of Variable.

    >>> x = dtrain.autograd.Variable(dtrain.ones(2), requires_grad=True)
    """

    def __new__(cls, data, requires_grad=False, volatile=False):
        from ..tensor import Tensor
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        out = data.detach()
        out.requires_grad = requires_grad
        return out


def _as_tuple(x):
    if x is None:
        return ()
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _roots(outputs, grad_outputs):
    """Graph roots and their starting gradients, with torch's checks and messages."""
    from ..tensor import Tensor
    grad_outputs = _as_tuple(grad_outputs) or (None,) * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"got {len(grad_outputs)} tensors in grad_outputs but "
                           f"{len(outputs)} outputs")
    nodes, grads = [], []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not isinstance(out, Tensor):
            raise TypeError(f"expected a Tensor as output {i}, got {type(out).__name__}")
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               "a grad_fn")
        if g is None:
            if out._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = np.ones_like(out._data)
        else:
            g = g._data if isinstance(g, Tensor) else np.asarray(g, dtype=out._data.dtype)
            if g.shape != out._data.shape:
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[{i}] has a shape of {_size(g.shape)} and "
                    f"output[{i}] has a shape of {_size(out._data.shape)}.")
        nodes.append(out._grad_node())
        grads.append(g)
    return nodes, grads


def _size(shape):
    return f"dtrain.Size({list(shape)})"


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate the gradients of ``tensors`` into the ``.grad`` of the leaves they depend on.

    >>> dtrain.autograd.backward([loss])
    """
    if create_graph:
        raise NotImplementedError("dtrain does not support create_graph=True (higher-order "
                                  "gradients); compute first-order gradients only")
    if inputs is not None:
        raise NotImplementedError("backward(inputs=...) is not supported; use autograd.grad")
    tensors = _as_tuple(tensors)
    nodes, grads = _roots(tensors, grad_tensors)
    engine.execute(nodes, grads, keep_graph=bool(retain_graph))


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """Return the gradients of ``outputs`` with respect to ``inputs`` without touching ``.grad``.

    >>> x = dtrain.tensor([1., 2.], requires_grad=True)
    >>> dtrain.autograd.grad((x ** 2).sum(), x)
    (tensor([2., 4.]),)
    """
    from ..tensor import Tensor
    if create_graph:
        raise NotImplementedError("dtrain does not support create_graph=True (higher-order "
                                  "gradients); compute first-order gradients only")
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    nodes, grads = _roots(outputs, grad_outputs)
    capture = {t._grad_node(): None for t in inputs}
    engine.execute(nodes, grads, keep_graph=bool(retain_graph), capture=capture)
    result = []
    for t in inputs:
        g = capture[t._grad_node()]
        if g is None:
            if materialize_grads:
                g = np.zeros_like(t._data)
            elif not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
        result.append(None if g is None else Tensor._make(np.array(g, copy=True)))
    return tuple(result)
