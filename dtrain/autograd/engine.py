"""The backward engine: one iterative pass over the graph in reverse topological order."""
import heapq
import time

import numpy as np

from .. import timeline
from . import function as _function
from .function import AccumulateGrad

_ACCUMULATE_FIRST = float("-inf")  # leaves are written as soon as their gradient is complete


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: undo numpy broadcasting (the only place this happens)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _fit(grad, meta):
    shape, dtype = meta
    if type(grad) is not np.ndarray:
        grad = np.asarray(grad)
    if grad.shape != shape:
        grad = unbroadcast(grad, shape)
    if grad.dtype != dtype:
        grad = grad.astype(dtype)
    return grad


def _run_hooks(hooks, grad):
    make = _function._Tensor._make
    for hook in hooks:
        result = hook(make(grad))
        if result is not None:
            grad = result._data
    return grad


_callbacks = []  # one list per backward pass in progress (innermost last)


def queue_callback(fn):
    """Run ``fn()`` once the current backward pass has finished (torch's
    ``Variable._execution_engine.queue_callback``); DDP waits for its buckets there."""
    if not _callbacks:
        raise RuntimeError("queue_callback can only be called during the backward pass")
    _callbacks[-1].append(fn)


def execute(roots, root_grads, keep_graph, capture=None):
    """Propagate ``root_grads`` from the ``roots`` nodes to every leaf they depend on, then
    run the callbacks queued during the pass.

    With ``capture`` (a dict node -> None), the gradients reaching those nodes are stored in it
    and no leaf ``.grad`` is written: that is ``autograd.grad``.
    """
    rec = timeline.recorder
    if rec is not None:
        start = time.time_ns()
    _callbacks.append([])
    try:
        _propagate(roots, root_grads, keep_graph, capture)
    finally:
        callbacks = _callbacks.pop()
    for fn in callbacks:
        fn()
    if rec is not None:
        rec.add("backward" if capture is None else "autograd.grad", timeline.COMPUTE, start)


def _propagate(roots, root_grads, keep_graph, capture):
    deps = {}
    seen = set(roots)
    stack = list(roots)
    while stack:
        node = stack.pop()
        for nxt in node._edges:
            if nxt is not None:
                deps[nxt] = deps.get(nxt, 0) + 1
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)

    buffers = {}
    for node, grad in zip(roots, root_grads):
        buffers[node] = grad if node not in buffers else buffers[node] + grad
    order = 0
    heap = []
    for node in dict.fromkeys(roots):
        if node not in deps:
            heap.append((_ACCUMULATE_FIRST if type(node) is AccumulateGrad else -node._seq,
                         order, node))
            order += 1
    heapq.heapify(heap)

    while heap:
        node = heapq.heappop(heap)[2]
        grad = buffers.pop(node, None)
        if grad is not None:
            hooks = node._pre_hooks
            if hooks:
                grad = _run_hooks(hooks, grad)
            if capture is not None and node in capture:
                capture[node] = grad
        if type(node) is AccumulateGrad:
            if capture is None and grad is not None:
                node.accumulate(grad)
            continue
        if grad is None:
            grads = (None,) * len(node._edges)
        else:
            grads = node.backward(grad)
            if type(grads) is not tuple:
                grads = (grads,)
            if not keep_graph:
                node._release()
        for nxt, g, meta in zip(node._edges, grads, node._input_meta):
            if nxt is None:
                continue
            if g is not None:
                g = _fit(g, meta)
                prev = buffers.get(nxt)
                buffers[nxt] = g if prev is None else prev + g
            left = deps[nxt] - 1
            deps[nxt] = left
            if left == 0:
                heapq.heappush(heap, (_ACCUMULATE_FIRST if type(nxt) is AccumulateGrad
                                      else -nxt._seq, order, nxt))
                order += 1
