"""Normalisation: batch_norm and layer_norm, each one fused Function (as torch's native ops)."""
import numpy as np

from ..autograd import grad_mode
from ..autograd.function import Function
from ..tensor import Size


def _normalize_backward(g, xhat, invstd, axes, n):
    """Gradient through xhat = (x - mean) * invstd with batch statistics over ``axes``."""
    sum_g = g.sum(axis=axes, keepdims=True)
    sum_gx = (g * xhat).sum(axis=axes, keepdims=True)
    return (invstd / n) * (n * g - sum_g - xhat * sum_gx)


class NativeBatchNormBackward0(Function):
    def forward(self, x, weight, bias, mean, invstd, axes, training):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        self.axes, self.training, self.shape = axes, training, shape
        xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
        self.save_for_backward(xhat, invstd.reshape(shape), weight)
        out = xhat if weight is None else xhat * weight.reshape(shape)
        return out if bias is None else out + bias.reshape(shape)

    def backward(self, g):
        xhat, invstd, weight = self.saved_tensors
        need_x, need_w, need_b = self.needs_input_grad[:3]
        gx = gw = gb = None
        if need_x:
            gxhat = g if weight is None else g * weight.reshape(self.shape)
            if self.training:
                n = xhat.size // xhat.shape[1]
                gx = _normalize_backward(gxhat, xhat, invstd, self.axes, n)
            else:
                gx = gxhat * invstd
        if need_w:
            gw = (g * xhat).sum(axis=self.axes)
        if need_b:
            gb = g.sum(axis=self.axes)
        return gx, gw, gb


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-05):
    """Normalise each channel (dim 1) by batch statistics in training, else by the running
    ones; in training the running buffers are updated in place. >>> F.batch_norm(x, rm, rv)"""
    x = input._data
    if x.ndim < 2:
        raise ValueError(f"expected 2D or more input (got {x.ndim}D input)")
    axes = (0,) + tuple(range(2, x.ndim))
    c = x.shape[1]
    if not training and (running_mean is None or running_var is None):
        raise RuntimeError(f"{'running_mean' if running_mean is None else 'running_var'} must "
                           "be defined in evaluation mode")
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None and t._data.size != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t._data.size}")
    if training:
        n = x.size // c
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {Size(x.shape)}")
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        if running_mean is not None:
            with grad_mode.no_grad():
                running_mean._data *= 1 - momentum
                running_mean._data += momentum * mean
                running_mean._bump()
        if running_var is not None:
            with grad_mode.no_grad():
                running_var._data *= 1 - momentum
                running_var._data += (momentum * n / (n - 1)) * var
                running_var._bump()
    else:
        mean, var = running_mean._data, running_var._data
    invstd = 1 / np.sqrt(var + eps)
    return NativeBatchNormBackward0.apply(input, weight, bias, mean=mean.astype(x.dtype),
                                          invstd=invstd.astype(x.dtype), axes=axes,
                                          training=training)


class NativeLayerNormBackward0(Function):
    def forward(self, x, weight, bias, ndim, eps):
        axes = tuple(range(x.ndim - ndim, x.ndim))
        self.axes, self.lead = axes, tuple(range(x.ndim - ndim))
        mean = x.mean(axis=axes, keepdims=True)
        invstd = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
        xhat = (x - mean) * invstd
        self.save_for_backward(xhat, invstd, weight)
        out = xhat if weight is None else xhat * weight
        return out if bias is None else out + bias

    def backward(self, g):
        xhat, invstd, weight = self.saved_tensors
        need_x, need_w, need_b = self.needs_input_grad
        gx = gw = gb = None
        if need_x:
            gxhat = g if weight is None else g * weight
            n = int(np.prod([xhat.shape[a] for a in self.axes]))
            gx = _normalize_backward(gxhat, xhat, invstd, self.axes, n)
        if need_w:
            gw = (g * xhat).sum(axis=self.lead)
        if need_b:
            gb = g.sum(axis=self.lead)
        return gx, gw, gb


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05):
    """Normalise over the last ``len(normalized_shape)`` dims. >>> F.layer_norm(x, (64,))"""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x = input._data
    if x.shape[x.ndim - len(shape):] != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size"
                           f"{list(x.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t._data.shape != shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but "
                               f"got {name} of shape {list(t._data.shape)} and "
                               f"normalized_shape = {list(shape)}")
    return NativeLayerNormBackward0.apply(input, weight, bias, ndim=len(shape), eps=eps)
