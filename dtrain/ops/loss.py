"""Losses: nll_loss and cross_entropy (with ignore_index, weights, label smoothing, soft
targets), mse_loss, l1_loss, binary_cross_entropy and its logits form."""
import warnings

import numpy as np

from ..autograd.function import Function
from ..tensor import _TYPE_NAMES, Size, Tensor
from .pointwise import abs as _abs
from .pointwise import where
from .reduce import log_softmax, mean, sum as _sum

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _legacy_reduction(size_average, reduce):
    """The reduction that torch's deprecated ``size_average``/``reduce`` arguments mean."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "none" if not reduce else "mean" if size_average else "sum"
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.", UserWarning, stacklevel=4)
    return reduction


def _reduction(size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _check_reduction(reduction)
    return reduction


def _scalar_name(dtype):
    """torch's name of a dtype in messages: Float, Double, Long, ..."""
    return _TYPE_NAMES[dtype.name][:-len("Tensor")]


class DivBackward1(Function):
    """``tensor / number`` as torch's native losses record it (Python's ``/`` is DivBackward0)."""

    def forward(self, x, other):
        self.other = other
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 is nan, silently
            return np.asarray(x / x.dtype.type(other))

    def backward(self, g):
        with np.errstate(invalid="ignore", divide="ignore"):
            return g / g.dtype.type(self.other), None


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
        w = valid.astype(x.dtype) if weight is None else (weight[safe] * valid).astype(x.dtype)
        rows = np.arange(len(t))
        losses = -flat[rows, safe] * w
        self.shape, self.c, self.n, self.reduction = x.shape, c, len(t), reduction
        # backward writes to the counted targets only, so an ignored row gets 0, never nan
        self.rows, self.safe, self.w = rows[valid], safe[valid], w[valid]
        if reduction == "none":
            return losses.reshape(target.shape)
        if reduction == "sum":
            return np.asarray(losses.sum(), dtype=x.dtype)
        self.total = w.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(losses.sum() / self.total, dtype=x.dtype)

    def backward(self, g):
        if self.reduction == "none":
            scale = g.reshape(-1)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = g / self.total if self.reduction == "mean" else g
        flat = np.zeros((self.n, self.c), dtype=g.dtype)
        flat[self.rows, self.safe] = -self.w * (scale[self.rows] if scale.ndim else scale)
        if len(self.shape) == 1:
            return flat.reshape(self.shape), None, None
        moved = (self.shape[0],) + self.shape[2:] + (self.c,)
        return np.moveaxis(flat.reshape(moved), -1, 1), None, None


NllLoss2DBackward0 = type("NllLoss2DBackward0", (NllLossBackward0,), {})


def _check_class_weight(weight, c, prefix=""):
    if weight is not None and (weight._data.ndim != 1 or weight._data.size != c):
        raise RuntimeError(f"{prefix}weight tensor should be defined either for all {c} classes "
                           f"or no classes but got weight tensor of shape: "
                           f"{list(weight._data.shape)}")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of class indices ``target`` under log-probabilities ``input``
    (C), (N, C) or (N, C, d1, ...). >>> F.nll_loss(F.log_softmax(x, 1), y)"""
    reduction = _reduction(size_average, reduce, reduction)
    x, t = input._data, target._data
    if t.dtype not in (np.int64, np.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got "
                           f"{_scalar_name(t.dtype)}")
    if x.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {x.ndim})")
    if x.ndim > 1 and x.shape[0] != (t.shape[0] if t.ndim else 1):
        raise ValueError(f"Expected input batch_size ({x.shape[0]}) to match target batch_size "
                         f"({t.shape[0] if t.ndim else 0}).")
    c = x.shape[1] if x.ndim > 1 else x.shape[0]
    _check_class_weight(weight, c)
    if x.ndim <= 2 and t.ndim > 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if x.ndim == 1 and t.ndim == 1 and t.shape[0] != 1:
        raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: "
                         f"{t.shape[0]}")
    if x.ndim == 4 and t.ndim != 3:
        raise RuntimeError(f"only batches of spatial targets supported (3D tensors) but got "
                           f"targets of dimension: {t.ndim}")
    if x.ndim == 4 and t.shape != (x.shape[0],) + x.shape[2:]:
        raise RuntimeError(f"size mismatch (got input: {list(x.shape)} , target: "
                           f"{list(t.shape)}")
    if x.ndim > 2 and t.shape[1:] != x.shape[2:]:
        raise RuntimeError(f"Expected target size {[x.shape[0], *x.shape[2:]]}, got "
                           f"{list(t.shape)}")
    # torch runs every input of 3 or more dims through its 2-D kernel; for reduction="none"
    # it views the result back (except for 4-D input), so the graph shows a view
    cls = NllLoss2DBackward0 if x.ndim > 2 else NllLossBackward0
    w = None if weight is None else weight._data
    out = cls.apply(input, t, w, ignore_index, reduction)
    if reduction == "none" and x.ndim > 2 and x.ndim != 4:
        out = out.view(*out.shape)
    return out


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """log_softmax over the class dim (dim 1, or 0 for unbatched input) followed by nll_loss.
    ``target`` holds class indices or, when it has the input's shape, class probabilities.

    >>> F.cross_entropy(logits, labels, label_smoothing=0.1)
    """
    reduction = _reduction(size_average, reduce, reduction)
    x, t = input._data, target._data
    class_dim = 0 if x.ndim == 1 else 1
    c = x.shape[class_dim]
    wshape = (1,) * class_dim + (c,) + (1,) * (x.ndim - class_dim - 1)
    if label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if x.shape == t.shape:  # class probabilities, as torch decides: by shape
        if t.dtype.kind != "f":
            raise RuntimeError(f"Expected floating point type for target with class "
                               f"probabilities, got {_scalar_name(t.dtype)}")
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        _check_class_weight(weight, c, "cross_entropy: ")
        logp = log_softmax(input, class_dim)
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / c
        prod = logp * target if weight is None else logp * target * weight.reshape(wshape)
        if reduction == "none":
            return -prod.sum(class_dim)
        if reduction == "sum":
            return -prod.sum()
        return DivBackward1.apply(-prod.sum(), x.size // c if c else 0)
    if label_smoothing <= 0:
        return nll_loss(log_softmax(input, class_dim), target, weight, ignore_index=ignore_index,
                        reduction=reduction)
    logp = log_softmax(input, class_dim)
    loss = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    valid = Tensor._make(t != ignore_index)
    lw = logp if weight is None else logp * weight.reshape(wshape)
    # masked by where, not by a product: an ignored row's gradient is 0 even if the mean is nan
    smooth = where(valid, -lw.sum(class_dim), 0.0)
    if reduction == "sum":
        smooth = smooth.sum()
    elif reduction == "mean":
        # normalised by the weights of the counted targets, as nll_loss's mean
        safe = np.where(t != ignore_index, t, 0)
        total = (t != ignore_index).sum() if weight is None else \
            (weight._data[safe] * (t != ignore_index)).sum()
        smooth = smooth.sum() / float(total)
    return loss * (1 - label_smoothing) + smooth * (label_smoothing / c)


def _reduce(losses, reduction):
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
        return _np_reduce(diff * diff, reduction)

    def backward(self, g):
        (diff,) = self.saved_tensors
        scale = 2 / diff.size if self.reduction == "mean" and diff.size else 2
        grad = g * diff * diff.dtype.type(scale)
        return grad, -grad


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean squared error; a target of another shape is broadcast (with torch's warning).

    >>> F.mse_loss(pred, y)
    """
    _warn_size(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    from .arith import _broadcast_error
    try:
        np.broadcast_shapes(input._data.shape, target._data.shape)
    except ValueError:
        raise _broadcast_error(input, target) from None
    return MseLossBackward0.apply(input, target, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean absolute error. >>> F.l1_loss(pred, y)"""
    _warn_size(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    return _reduce(_abs(input - target), reduction)


def _np_reduce(losses, reduction):
    if reduction == "none":
        return losses
    with np.errstate(invalid="ignore"):  # the mean of nothing is nan, silently, as in torch
        total = losses.sum() / losses.size if reduction == "mean" else losses.sum()
    return np.asarray(total, dtype=losses.dtype)


def _log_sigmoid(x):
    return -np.logaddexp(0, -x)


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class _Bce(Function):
    """Shared by both BCE forms: weighting, reduction and the backward scale."""

    def finish(self, losses, w, reduction):
        if w is not None:
            losses = losses * w
        self.w, self.reduction = w, reduction
        return _np_reduce(losses, reduction)

    def scale(self, grad, g, size):
        grad = grad * g
        if self.w is not None:
            grad = grad * self.w
        return grad / size if self.reduction == "mean" else grad


class BinaryCrossEntropyBackward0(_Bce):
    def forward(self, p, y, w, reduction):
        if ((p < 0) | (p > 1)).any():
            raise RuntimeError("all elements of input should be between 0 and 1")
        # NOTE: torch clamps the logs at -100 so p = 0 or 1 gives a finite loss
        with np.errstate(divide="ignore"):
            log_p, log_q = np.maximum(np.log(p), -100), np.maximum(np.log1p(-p), -100)
        self.save_for_backward(p, y)
        return self.finish(-(y * log_p + (1 - y) * log_q), w, reduction)

    def backward(self, g):
        p, y = self.saved_tensors
        need_p, need_y = self.needs_input_grad[:2]
        gp = gy = None
        if need_p:
            gp = self.scale((p - y) / np.maximum((1 - p) * p, p.dtype.type(1e-12)), g, p.size)
        if need_y:  # -logit(p), unclamped as in torch
            with np.errstate(divide="ignore"):
                gy = self.scale(np.log1p(-p) - np.log(p), g, p.size)
        return gp, gy


class BinaryCrossEntropyWithLogitsBackward0(_Bce):
    def forward(self, x, y, w, pos_weight, reduction):
        # log(sigmoid(x)) and log(1 - sigmoid(x)) = log(sigmoid(-x)), computed stably
        log_sig, log_one_minus = _log_sigmoid(x), _log_sigmoid(-x)
        pos = y if pos_weight is None else pos_weight * y
        self.save_for_backward(x, y)
        self.pos_weight = pos_weight
        return self.finish(-(pos * log_sig + (1 - y) * log_one_minus), w, reduction)

    def backward(self, g):
        x, y = self.saved_tensors
        need_x, need_y = self.needs_input_grad[:2]
        pw = self.pos_weight
        gx = gy = None
        if need_x:
            sig = _sigmoid(x)
            gx = self.scale(sig - y if pw is None else (pw * y + 1 - y) * sig - pw * y, g,
                            x.size)
        if need_y:
            gy = self.scale(-x if pw is None else _log_sigmoid(-x) - pw * _log_sigmoid(x), g,
                            x.size)
        return gx, gy


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """BCE between probabilities ``input`` and targets in [0, 1]; ``weight`` broadcasts
    against them. >>> F.binary_cross_entropy(dtrain.sigmoid(z), y)"""
    reduction = _reduction(size_average, reduce, reduction)
    if input._data.shape != target._data.shape:
        raise ValueError(f"Using a target size ({Size(target._data.shape)}) that is different to "
                         f"the input size ({Size(input._data.shape)}) is deprecated. Please "
                         "ensure they have the same size.")
    w = None if weight is None else weight._data
    return BinaryCrossEntropyBackward0.apply(input, target, w, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """sigmoid + BCE in one numerically stable step; ``pos_weight`` (one per class) weighs the
    positive term. >>> F.binary_cross_entropy_with_logits(z, y, pos_weight=w)"""
    reduction = _reduction(size_average, reduce, reduction)
    if input._data.shape != target._data.shape:
        raise ValueError(f"Target size ({Size(target._data.shape)}) must be the same as input "
                         f"size ({Size(input._data.shape)})")
    w = None if weight is None else weight._data
    pw = None if pos_weight is None else pos_weight._data
    return BinaryCrossEntropyWithLogitsBackward0.apply(input, target, w, pw, reduction)
