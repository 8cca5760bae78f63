"""2-D pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d (NCHW or CHW).

Max pooling copies the windows into one (kernel positions, N, C, OH, OW) array, so the max and
its first position are reductions over the leading axis; the gradient is scattered back to
those positions with ``np.add.at``. Average pooling of either kind is separable: each output is
a row window times a column window, so out = A_h @ x @ A_w^T per image, with A a (output,
input) matrix holding 1/divisor inside each window. Forward and backward are two matmuls each,
whatever the stride, padding, ceil_mode or adaptive window sizes.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..autograd.function import Function
from ..tensor import _TYPE_NAMES, Tensor


def _pool_pair(op, name, value):
    """torch's expansion of a pooling argument (int, or a 1/2-sequence) to (H, W)."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    value = tuple(value)
    if len(value) not in (1, 2):
        what = {"kernel_size": "kernel_size must either be a single int",
                "stride": "stride must either be omitted, a single int",
                "padding": "padding must either be a single int",
                "dilation": "dilation must be either a single int"}[name]
        raise RuntimeError(f"{op}: {what}, or a tuple of two ints")
    return (int(value[0]), int(value[-1]))


def _output_size(size, kernel, pad, stride, dilation, ceil_mode):
    """torch's pooling_output_shape, with its checks."""
    if stride == 0:
        raise RuntimeError("stride should not be zero")
    if pad < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {pad}")
    if pad > int(((kernel - 1) * dilation + 1) / 2):  # NOTE: C++ division truncates toward 0
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                           f"pad={pad}, kernel_size={kernel} and dilation={dilation}")
    out = (size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) \
        // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # the last window would start in the right padding
    return out


def _pool_geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Parse and check the arguments: ((kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow))."""
    kernel = _pool_pair(op, "kernel_size", kernel_size)
    if stride is None or (isinstance(stride, (tuple, list)) and not stride):
        stride = kernel
    stride = _pool_pair(op, "stride", stride)
    padding = _pool_pair(op, "padding", padding)
    dilation = _pool_pair(op, "dilation", dilation)
    out = tuple(_output_size(x.shape[i - 2], kernel[i], padding[i], stride[i], dilation[i],
                             ceil_mode) for i in (0, 1))
    if min(kernel) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kernel[0]} "
                           f"kW: {kernel[1]}")
    if min(stride) <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {stride[0]} "
                           f"dW: {stride[1]}")
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: "
                           f"{dilation[0]} dilationW: {dilation[1]}")
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise RuntimeError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch "
                           f"size for input, but got:{list(x.shape)}")
    if kernel[1] // 2 < padding[1] or kernel[0] // 2 < padding[0]:
        raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but got "
                           f"padW = {padding[1]}, padH = {padding[0]}, kW = {kernel[1]}, "
                           f"kH = {kernel[0]}")
    if min(out) < 1:
        c, h, w = x.shape[-3:]
        raise RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: "
                           f"({c}x{out[0]}x{out[1]}). Output size is too small")
    return kernel, stride, padding, dilation, out


def _dtype_check(op, x, allowed):
    if x.dtype.name not in allowed:
        name = _TYPE_NAMES[x.dtype.name][:-len("Tensor")]
        raise NotImplementedError(f'"{op}" not implemented for \'{name}\'')


_FLOATS = ("float16", "float32", "float64")


def _as_batch(x):
    return x[None] if x.ndim == 3 else x


# --- max pooling ---------------------------------------------------------------------------

def _max_first(windows, table):
    """Max over the leading (window position) axis of ``windows`` and, for each output, the
    flat input index ``table[k, oh, ow]`` of the first position holding it (torch's choice on
    ties; on NaN torch reports the last NaN)."""
    k = windows.shape[0]
    out = windows.max(axis=0)
    later = np.arange(k, 0, -1, dtype=np.min_scalar_type(k)).reshape((k,) + (1,) * out.ndim)
    first = k - ((windows == out) * later).max(axis=0)
    if out.dtype.kind == "f":
        nan = np.isnan(out)
        if nan.any():
            last_nan = (np.isnan(windows) * later[::-1]).max(axis=0) - 1
            first = np.where(nan, last_nan, first)
    oh, ow = out.shape[-2:]
    return out, table.reshape(k, oh, ow)[first, np.arange(oh)[:, None], np.arange(ow)]


class MaxPool2DWithIndicesBackward0(Function):
    def forward(self, x, kernel, stride, padding, dilation, out_hw):
        xb = _as_batch(x)
        n, c, h, w = xb.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = (kernel, stride, padding, dilation,
                                                            out_hw)
        # pad with the lowest value; ceil_mode windows may run past the right padding too
        hp = max(h + 2 * ph, (oh - 1) * sh + dh * (kh - 1) + 1)
        wp = max(w + 2 * pw, (ow - 1) * sw + dw * (kw - 1) + 1)
        xp = xb
        if (hp, wp) != (h, w):
            low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
            xp = np.full((n, c, hp, wp), low, dtype=x.dtype)
            xp[:, :, ph:ph + h, pw:pw + w] = xb
        bn, bc, bh, bw = xp.strides
        windows = as_strided(xp, (kh, kw, n, c, oh, ow),
                             (bh * dh, bw * dw, bn, bc, bh * sh, bw * sw), writeable=False)
        rows = np.arange(oh) * sh - ph + (np.arange(kh) * dh)[:, None]  # (kh, oh)
        cols = np.arange(ow) * sw - pw + (np.arange(kw) * dw)[:, None]
        # a window whose max is the padding value itself: torch reports its first real element
        rows = np.where(rows < 0, rows % dh, rows)
        cols = np.where(cols < 0, cols % dw, cols)
        table = rows[:, None, :, None] * w + cols[None, :, None, :]
        out, idx = _max_first(windows.reshape(kh * kw, n, c, oh, ow), table)
        return self._finish(x, out, idx)

    def _finish(self, x, out, idx):
        if x.ndim == 3:
            out, idx = out[0], idx[0]
        self.indices = idx
        self.in_shape = x.shape
        self.save_for_backward(x, idx)
        return out

    def backward(self, g):
        _, idx = self.saved_tensors
        h, w = self.in_shape[-2:]
        planes = int(np.prod(idx.shape[:-2]))  # (n, c) or (c,) planes of h * w
        offsets = (np.arange(planes) * (h * w)).reshape(idx.shape[:-2] + (1, 1))
        grad = np.zeros(planes * h * w, dtype=g.dtype)
        np.add.at(grad, (idx + offsets).ravel(), np.broadcast_to(g, idx.shape).ravel())
        return grad.reshape(self.in_shape)


def _adaptive_windows(size, out):
    """torch's adaptive windows: [floor(i*size/out), ceil((i+1)*size/out))."""
    i = np.arange(out)
    return (i * size) // out, -(-((i + 1) * size) // out)


class AdaptiveMaxPool2DBackward0(MaxPool2DWithIndicesBackward0):
    def forward(self, x, out_hw):
        xb = _as_batch(x)
        n, c, h, w = xb.shape
        oh, ow = out_hw
        (r0, r1), (c0, c1) = _adaptive_windows(h, oh), _adaptive_windows(w, ow)
        kh, kw = (r1 - r0).max(initial=1), (c1 - c0).max(initial=1)
        # every window padded to the largest by repeating its last element (max unchanged)
        rows = np.minimum(r0 + np.arange(kh)[:, None], r1 - 1)  # (kh, oh)
        cols = np.minimum(c0 + np.arange(kw)[:, None], c1 - 1)
        windows = xb[:, :, rows[:, None, :, None], cols[None, :, None, :]]
        windows = np.moveaxis(windows.reshape(n, c, kh * kw, oh, ow), 2, 0)
        table = rows[:, None, :, None] * w + cols[None, :, None, :]
        out, idx = _max_first(np.ascontiguousarray(windows), table)
        return self._finish(x, out, idx)


def _with_indices(cls, input, return_indices, **kw):
    fn = cls()
    fn.prepare((input,))
    out = fn.attach((input,), fn.forward(input._data, **kw))
    if return_indices:
        return out, Tensor._make(fn.indices.astype(np.int64))
    return out


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over each window, as ``torch.nn.functional.max_pool2d``; padding counts as -inf.

    With ``return_indices``, also the flat index (h * W + w) of each max in its input plane.

    >>> x = dtrain.randn(8, 16, 28, 28, requires_grad=True)
    >>> max_pool2d(x, 2).shape
    dtrain.Size([8, 16, 14, 14])
    """
    x = input._data
    if x.ndim not in (3, 4):
        raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
    geometry = _pool_geometry("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    _dtype_check("max_pool2d", x, _FLOATS + ("int8", "int16", "int32", "int64", "uint8"))
    kernel, stride, padding, dilation, out = geometry
    return _with_indices(MaxPool2DWithIndicesBackward0, input, return_indices, kernel=kernel,
                         stride=stride, padding=padding, dilation=dilation, out_hw=out)


def _adaptive_size(x, output_size, what):
    if isinstance(output_size, (int, np.integer)):
        output_size = (output_size, output_size)
    if len(output_size) != 2:
        raise RuntimeError(what)
    return tuple(x.shape[i - 2] if s is None else int(s) for i, s in enumerate(output_size))


def _adaptive_check(op, x, colon=""):
    if x.ndim not in (3, 4):
        raise RuntimeError(f"{op}(): Expected 3D or 4D tensor, but got{colon} {list(x.shape)}")
    for d in range(x.ndim - 3, x.ndim):
        if x.shape[d] == 0:
            raise RuntimeError(f"{op}(): Expected input to have non-zero size for non-batch "
                               f"dimensions, but input has sizes {list(x.shape)} with dimension "
                               f"{d} being empty")


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over torch's adaptive windows (row i covers floor(i*H/OH) to ceil((i+1)*H/OH)).

    >>> adaptive_max_pool2d(dtrain.randn(2, 3, 10, 7), (3, 2)).shape
    dtrain.Size([2, 3, 3, 2])
    """
    x = input._data
    _adaptive_check("adaptive_max_pool2d", x, ":")
    out = _adaptive_size(x, output_size,
                         "adaptive_max_pool2d(): internal error: output_size.size() must be 2")
    if min(out) < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(out)}: "
                           f"{list(x.shape[:-2]) + list(out)}")
    _dtype_check("adaptive_max_pool2d", x, _FLOATS)
    return _with_indices(AdaptiveMaxPool2DBackward0, input, return_indices, out_hw=out)


# --- average pooling -----------------------------------------------------------------------

def _inside(size, lo, hi):
    """(outputs, size) 0/1 matrix: output o covers the input positions [lo[o], hi[o])."""
    pos = np.arange(size)
    return (pos >= lo[:, None]) & (pos < hi[:, None])


def _separable(x, rows, cols):
    """rows @ x @ cols.T over the last two dims of x (N, C, H, W)."""
    n, c, h, w = x.shape
    y = np.ascontiguousarray(x).reshape(n * c * h, w) @ cols.T
    return np.matmul(rows, y.reshape(n, c, h, cols.shape[0]))


class AvgPool2DBackward0(Function):
    """out = rows @ x @ cols.T per image; for floats the window matrices already hold
    1/divisor, for integers they are 0/1 and ``int_divisor`` divides the sums."""

    def forward(self, x, rows, cols, int_divisor=None):
        self.in_shape = x.shape
        self.rows, self.cols = rows, cols
        out = _separable(_as_batch(x), rows, cols)
        if int_divisor is not None:  # NOTE: torch divides integer sums in C++: truncation
            out = (np.abs(out) // int_divisor * np.sign(out)).astype(x.dtype)
        return out[0] if x.ndim == 3 else out

    def backward(self, g):
        g = _as_batch(np.asarray(g))
        return _separable(g, self.rows.T, self.cols.T).reshape(self.in_shape)


AdaptiveAvgPool2DBackward0 = type("AdaptiveAvgPool2DBackward0", (AvgPool2DBackward0,), {})


def _avg_windows(size, kernel, stride, pad, out, count_include_pad):
    """Per output position: the real input range [lo, hi) and torch's divisor (the window
    clipped to the padded input, or only its real part)."""
    starts = np.arange(out) * stride - pad
    ends = np.minimum(starts + kernel, size + pad)
    lo, hi = np.maximum(starts, 0), np.minimum(ends, size)
    divisor = ends - starts if count_include_pad else hi - lo
    return lo, hi, np.maximum(divisor, 1)  # a window of padding only sums to 0


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over each window, as ``torch.nn.functional.avg_pool2d``. The divisor is the
    window clipped to the padded input (``count_include_pad``), or its real elements only, or
    ``divisor_override``.

    >>> avg_pool2d(dtrain.randn(8, 16, 28, 28), 2).shape
    dtrain.Size([8, 16, 14, 14])
    """
    x = input._data
    if x.ndim < 3:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-x.ndim}, "
                         f"{x.ndim - 1}], but got -3)")
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    kernel, stride, padding, _, out = _pool_geometry("avg_pool2d", x, kernel_size, stride,
                                                     padding, 1, ceil_mode)
    _dtype_check("avg_pool2d", x, _FLOATS + ("int64",))
    (lh, hh, dh), (lw, hw, dw) = (
        _avg_windows(x.shape[i - 2], kernel[i], stride[i], padding[i], out[i], count_include_pad)
        for i in (0, 1))
    if divisor_override is not None:
        dh, dw = np.full(out[0], divisor_override), np.ones(out[1], dtype=np.int64)
    rows, cols = _inside(x.shape[-2], lh, hh), _inside(x.shape[-1], lw, hw)
    if x.dtype.kind != "f":
        return AvgPool2DBackward0.apply(input, rows=rows.astype(x.dtype),
                                        cols=cols.astype(x.dtype),
                                        int_divisor=dh[:, None] * dw[None, :])
    return AvgPool2DBackward0.apply(input, rows=(rows / dh[:, None]).astype(x.dtype),
                                    cols=(cols / dw[:, None]).astype(x.dtype))


def adaptive_avg_pool2d(input, output_size):
    """Mean over torch's adaptive windows (row i covers floor(i*H/OH) to ceil((i+1)*H/OH)).
    An output of (1, 1) is ``input.mean((-1, -2), keepdim=True)``, as in torch.

    >>> adaptive_avg_pool2d(dtrain.randn(2, 3, 10, 7), (3, 2)).shape
    dtrain.Size([2, 3, 3, 2])
    """
    x = input._data
    out = _adaptive_size(x, output_size, "adaptive_avg_pool2d: output_size must be 2")
    if out == (1, 1):
        return input.mean((-1, -2), keepdim=True)
    _adaptive_check("adaptive_avg_pool2d", x)
    if min(out) < 0:
        raise RuntimeError("adaptive_avg_pool2d: elements of output_size must be greater than "
                           f"or equal to 0 but received {{{out[0]}, {out[1]}}}")
    _dtype_check("adaptive_avg_pool2d", x, _FLOATS)
    mats = []
    for size, o in zip(x.shape[-2:], out):
        lo, hi = _adaptive_windows(size, o)
        mats.append((_inside(size, lo, hi) / (hi - lo)[:, None]).astype(x.dtype))
    return AdaptiveAvgPool2DBackward0.apply(input, rows=mats[0], cols=mats[1])
