"""Losses: nll_loss and cross_entropy (with ignore_index, weights, label smoothing, soft
targets), mse_loss, l1_loss, binary_cross_entropy and its logits form."""
import warnings

import numpy as np

from ..autograd.function import Function
from ..tensor import Size, Tensor
from .pointwise import abs as _abs
from .reduce import log_softmax, mean, sum as _sum

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


class NllLossBackward0(Function):
    def forward(self, x, target, weight, ignore_index, reduction):
        c = x.shape[1] if x.ndim > 1 else x.shape[0]
        flat = x.reshape(1, c) if x.ndim == 1 else np.moveaxis(x, 1, -1).reshape(-1, c)
        t = target.reshape(-1)
        valid = t != ignore_index
        safe = np.where(valid, t, 0)
        bad = (safe < 0) | (safe >= c)
        if bad.any():
            raise IndexError(f"Target {int(t[bad][0])} is out of bounds.")
        w = valid.astype(x.dtype) if weight is None else weight[safe] * valid
        rows = np.arange(len(t))
        losses = -flat[rows, safe] * w
        self.shape, self.moved, self.c = x.shape, (x.ndim > 1 and x.ndim != 2), c
        self.reduction, self.rows, self.safe, self.w = reduction, rows, safe, w
        if reduction == "none":
            return losses.reshape(target.shape)
        if reduction == "sum":
            return np.asarray(losses.sum(), dtype=x.dtype)
        self.total = w.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(losses.sum() / self.total, dtype=x.dtype)

    def backward(self, g):
        scale = g.reshape(-1) if self.reduction == "none" else g / self.total \
            if self.reduction == "mean" else g
        flat = np.zeros((len(self.rows), self.c), dtype=g.dtype)
        flat[self.rows, self.safe] = -self.w * scale
        if len(self.shape) == 1:
            return flat.reshape(self.shape), None, None
        moved = (self.shape[0],) + self.shape[2:] + (self.c,)
        return np.moveaxis(flat.reshape(moved), -1, 1), None, None


NllLoss2DBackward0 = type("NllLoss2DBackward0", (NllLossBackward0,), {})


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of class indices ``target`` under log-probabilities ``input``
    (N, C) or (N, C, d1, ...). >>> F.nll_loss(F.log_softmax(x, 1), y)"""
    _check_reduction(reduction)
    x, t = input._data, target._data
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got "
                           f"{target.dtype.name.capitalize()}")
    if x.ndim > 1 and x.shape[0] != (t.shape[0] if t.ndim else 1):
        raise ValueError(f"Expected input batch_size ({x.shape[0]}) to match target batch_size "
                         f"({t.shape[0] if t.ndim else 0}).")
    if x.ndim > 2 and t.shape != (x.shape[0],) + x.shape[2:]:
        raise RuntimeError(f"expected target of shape {list((x.shape[0],) + x.shape[2:])} for "
                           f"input of shape {list(x.shape)}, got {list(t.shape)}")
    cls = NllLoss2DBackward0 if x.ndim == 4 else NllLossBackward0
    w = None if weight is None else weight._data
    return cls.apply(input, t, w, ignore_index, reduction)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """log_softmax over dim 1 followed by nll_loss; ``target`` holds class indices or, with the
    input's shape, class probabilities. >>> F.cross_entropy(logits, labels)"""
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    logp = log_softmax(input, 1 if input._data.ndim > 1 else 0)
    c = input._data.shape[1] if input._data.ndim > 1 else input._data.shape[0]
    wshape = (1, c) + (1,) * (input._data.ndim - 2) if input._data.ndim > 1 else (c,)
    if target._data.dtype.kind == "f":  # class probabilities
        if target._data.shape != input._data.shape:
            raise RuntimeError(f"Expected target size {Size(input._data.shape)}, got "
                               f"{Size(target._data.shape)}")
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / c
        prod = logp * target if weight is None else logp * target * weight.reshape(wshape)
        losses = -prod.sum(1 if input._data.ndim > 1 else 0)
        if reduction == "none":
            return losses
        if reduction == "sum":
            return losses.sum()
        n = input._data.shape[0] if input._data.ndim > 1 else 1
        return losses.sum() / n
    loss = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing <= 0:
        return loss
    valid = Tensor._make(target._data != ignore_index)
    lw = logp if weight is None else logp * weight.reshape(wshape)
    smooth = -lw.sum(1 if input._data.ndim > 1 else 0) * valid
    if reduction == "sum":
        smooth = smooth.sum()
    elif reduction == "mean":
        if weight is None:
            smooth = smooth.sum() / float(valid._data.sum())
        else:
            safe = np.where(valid._data, target._data, 0)
            smooth = smooth.sum() / float((weight._data[safe] * valid._data).sum())
    return loss * (1 - label_smoothing) + smooth * (label_smoothing / c)


def _reduce(losses, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        return mean(losses)
    return _sum(losses) if reduction == "sum" else losses


def _warn_size(input, target):
    if input._data.shape != target._data.shape:
        warnings.warn(f"Using a target size ({Size(target._data.shape)}) that is different to "
                      f"the input size ({Size(input._data.shape)}). This will likely lead to "
                      "incorrect results due to broadcasting. Please ensure they have the same "
                      "size.", UserWarning, stacklevel=3)


class MseLossBackward0(Function):
    def forward(self, x, y, reduction):
        diff = x - y
        self.save_for_backward(diff)
        self.reduction = reduction
        sq = diff * diff
        if reduction == "none":
            return sq
        return np.asarray(sq.mean() if reduction == "mean" else sq.sum(), dtype=diff.dtype)

    def backward(self, g):
        (diff,) = self.saved_tensors
        scale = 2 / diff.size if self.reduction == "mean" else 2
        grad = g * diff * diff.dtype.type(scale)
        return grad, -grad


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean squared error. >>> F.mse_loss(pred, y)"""
    _check_reduction(reduction)
    _warn_size(input, target)
    from .arith import _broadcast_error
    try:
        np.broadcast_shapes(input._data.shape, target._data.shape)
    except ValueError:
        raise _broadcast_error(input, target) from None
    return MseLossBackward0.apply(input, target, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean absolute error. >>> F.l1_loss(pred, y)"""
    _warn_size(input, target)
    return _reduce(_abs(input - target), reduction)


class BinaryCrossEntropyBackward0(Function):
    def forward(self, p, y, w, reduction):
        if ((p < 0) | (p > 1)).any():
            raise RuntimeError("all elements of input should be between 0 and 1")
        # NOTE: torch clamps the logs at -100 so p = 0 or 1 gives a finite loss
        with np.errstate(divide="ignore"):
            losses = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
        if w is not None:
            losses = losses * w
        self.save_for_backward(p, y)
        self.w, self.reduction = w, reduction
        return _np_reduce(losses, reduction)

    def backward(self, g):
        p, y = self.saved_tensors
        eps = p.dtype.type(1e-12)
        grad = g * (p - y) / np.maximum((1 - p) * p, eps)
        if self.w is not None:
            grad = grad * self.w
        if self.reduction == "mean":
            grad = grad / p.size
        return grad, None


class BinaryCrossEntropyWithLogitsBackward0(Function):
    def forward(self, x, y, w, pos_weight, reduction):
        # log(sigmoid(x)) and log(1 - sigmoid(x)) computed stably
        log_sig = -np.logaddexp(0, -x)
        log_one_minus = -np.logaddexp(0, x)
        if pos_weight is None:
            losses = -(y * log_sig + (1 - y) * log_one_minus)
        else:
            losses = -(pos_weight * y * log_sig + (1 - y) * log_one_minus)
        if w is not None:
            losses = losses * w
        self.save_for_backward(x, y)
        self.w, self.pos_weight, self.reduction = w, pos_weight, reduction
        return _np_reduce(losses, reduction)

    def backward(self, g):
        x, y = self.saved_tensors
        sig = 1 / (1 + np.exp(-x))
        if self.pos_weight is None:
            grad = sig - y
        else:
            grad = (self.pos_weight * y + 1 - y) * sig - self.pos_weight * y
        grad = g * grad
        if self.w is not None:
            grad = grad * self.w
        if self.reduction == "mean":
            grad = grad / x.size
        return grad, None


def _np_reduce(losses, reduction):
    if reduction == "none":
        return losses
    return np.asarray(losses.mean() if reduction == "mean" else losses.sum(), dtype=losses.dtype)


def _target_check(input, target):
    if input._data.shape != target._data.shape:
        raise ValueError(f"Using a target size ({Size(target._data.shape)}) that is different to "
                         f"the input size ({Size(input._data.shape)}) is deprecated. Please "
                         "ensure they have the same size.")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """BCE between probabilities ``input`` and targets in [0, 1]."""
    _check_reduction(reduction)
    _target_check(input, target)
    w = None if weight is None else weight._data
    return BinaryCrossEntropyBackward0.apply(input, target, w, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """sigmoid + BCE in one numerically stable step. >>> F.binary_cross_entropy_with_logits(z, y)"""
    _check_reduction(reduction)
    _target_check(input, target)
    w = None if weight is None else weight._data
    pw = None if pos_weight is None else pos_weight._data
    return BinaryCrossEntropyWithLogitsBackward0.apply(input, target, w, pw, reduction)
