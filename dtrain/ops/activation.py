"""Activations and dropout that nn needs beyond the pointwise math: leaky_relu, gelu, dropout."""
import math

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor

_SQRT_HALF = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_erf64 = np.vectorize(math.erf, otypes=[np.float64])


def erf(x):
    """Elementwise erf of a float array. float64 uses the C library's erf; float32/16 use
    Numerical Recipes' erfc approximation (relative error < 1.2e-7, below float32's eps)."""
    if x.dtype == np.float64:
        return _erf64(x)
    z = np.abs(x).astype(np.float64)
    t = 1 / (1 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
        0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (
            1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    r = 1 - t * np.exp(poly)
    return np.copysign(r, x).astype(x.dtype)


class LeakyReluBackward0(Function):
    def forward(self, x, slope):
        self.slope = slope
        self.save_for_backward(x)
        return np.where(x > 0, x, x * np.asarray(slope, dtype=x.dtype))

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * np.where(x > 0, 1, self.slope).astype(g.dtype)


# torch's name for the in-place form (its node saves the result; ours keeps the old input)
LeakyReluBackward1 = type("LeakyReluBackward1", (LeakyReluBackward0,), {})


class GeluBackward0(Function):
    def forward(self, x, approximate):
        self.approximate = approximate
        self.save_for_backward(x)
        if approximate == "tanh":
            inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
            return 0.5 * x * (1 + np.tanh(inner))
        return 0.5 * x * (1 + erf(x * x.dtype.type(_SQRT_HALF)))

    def backward(self, g):
        (x,) = self.saved_tensors
        if self.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            th = np.tanh(k * (x + 0.044715 * x ** 3))
            d = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 3 * 0.044715 * x * x)
            return g * d
        cdf = 0.5 * (1 + erf(x * x.dtype.type(_SQRT_HALF)))
        pdf = np.exp(-0.5 * x * x) * x.dtype.type(_INV_SQRT_2PI)
        return g * (cdf + x * pdf)


class _Dropout(Function):
    def forward(self, x, mask, scale):
        self.scale = scale
        self.save_for_backward(mask)
        return x * mask * x.dtype.type(scale)

    def backward(self, g):
        (mask,) = self.saved_tensors
        return g * mask * g.dtype.type(self.scale), None


DropoutBackward = type("MulBackward0", (_Dropout,), {})  # torch 2.13 records dropout as a mul


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """max(0, x) + negative_slope * min(0, x). >>> F.leaky_relu(x, 0.2)"""
    if inplace:
        return input._assign(LeakyReluBackward1.apply(input, negative_slope))
    return LeakyReluBackward0.apply(input, negative_slope)


def gelu(input, approximate="none"):
    """x * Phi(x), or its tanh approximation with ``approximate="tanh"``.
    >>> F.gelu(x, approximate="tanh")"""
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return GeluBackward0.apply(input, approximate)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p), in training
    only. >>> F.dropout(x, 0.2, training=model.training)"""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    from ..creation import default_generator
    if p == 1:
        mask = np.zeros(input._data.shape, dtype=np.bool_)
        scale = 0.0
    else:
        mask = default_generator().random(input._data.shape) >= p
        scale = 1 / (1 - p)
    out = DropoutBackward.apply(input, Tensor._make(mask), scale)
    return input._assign(out) if inplace else out
