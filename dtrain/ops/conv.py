"""2-D convolution (torch.nn.functional.conv2d) as im2col matrix products.

The batch is processed in cache-sized blocks. For each block a strided view lays every
receptive field of the padded input out as a column (im2col: one copy), and one matmul per
group with the reshaped weight gives the outputs of the whole block. The weight gradient is the
upstream gradient times the same columns, rebuilt block by block in backward rather than kept
from forward. The input gradient is a transposed convolution: the upstream gradient, spread out
by the stride into a zero buffer, correlated with the flipped weight, again one matmul per
block. Nothing loops over pixels or kernel positions.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..autograd.function import Function
from ..tensor import _TYPE_NAMES

_C_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half",
            "int64": "long int", "int32": "int", "int16": "short int", "int8": "signed char",
            "uint8": "unsigned char", "bool": "bool"}


def _scalar_name(dtype):
    """torch's name of a dtype in messages: Float, Double, Long, ..."""
    return _TYPE_NAMES[dtype.name][:-len("Tensor")]


def _conv_pair(name, value):
    """torch's expansion of a conv argument (int or 1/2-sequence) to one value per dim."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * 2
    if len(value) != 2:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of 2 values "
                           f"to match the convolution dimensions, but got {name}={list(value)}")
    return value


def _padding(padding, kernel, stride, dilation):
    """(top, bottom, left, right). 'same' pads d*(k-1) in total, the odd one at the end."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if stride != (1, 1):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        pads = ()
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads += (total // 2, total - total // 2)
        return pads
    ph, pw = _conv_pair("padding", padding)
    if ph < 0 or pw < 0:
        raise RuntimeError("negative padding is not supported")
    return (ph, ph, pw, pw)


def _pad(x, top, bottom, left, right):
    """Zero-pad the last two dims of ``x`` (a copy only when some pad is nonzero)."""
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + top + bottom, w + left + right), dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def _blocks(n, sample_bytes):
    """Slices of the batch whose im2col columns take about ``_BLOCK_BYTES``.

    NOTE: a loop over batch blocks, not pixels: each block's columns are written, multiplied
    and dropped while still in cache, ~1.3x faster (conv forward + backward, 16 -> 32
    channels, 28x28) than one whole-batch im2col streaming tens of MB through memory."""
    step = max(1, _BLOCK_BYTES // max(sample_bytes, 1))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


_BLOCK_BYTES = 1 << 21


def _im2col(xp, kernel, stride, dilation, groups):
    """Columns of the padded input ``xp`` (N, C, H, W): shape (groups, C/groups * kh * kw,
    N * OH * OW), rows ordered (channel, kernel row, kernel col) like a reshaped weight, so
    that one matrix product per group covers the whole batch block."""
    n, c, h, w = xp.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    bn, bc, bh, bw = xp.strides
    cg = c // groups
    view = as_strided(xp, (groups, cg, kh, kw, n, oh, ow),
                      (bc * cg, bc, bh * dh, bw * dw, bn, bh * sh, bw * sw), writeable=False)
    return view.reshape(groups, cg * kh * kw, n * oh * ow)


def _forward(x, w, b, out_hw, stride, padding, dilation, groups):
    """x (*) w (+ b), computed block by block: (N, O, OH, OW)."""
    o, cg, kh, kw = w.shape
    og, size = o // groups, out_hw[0] * out_hw[1]
    out = np.empty((x.shape[0], groups, og, size), dtype=x.dtype)
    wm = w.reshape(groups, og, -1)
    bias = 0 if b is None else b.reshape(groups, og, 1)
    for blk in _blocks(x.shape[0], x.itemsize * cg * groups * kh * kw * size):
        cols = _im2col(_pad(x[blk], *padding), (kh, kw), stride, dilation, groups)
        res = np.matmul(wm, cols).reshape(groups, og, -1, size)
        np.add(res.transpose(2, 0, 1, 3), bias, out=out[blk])
    return out.reshape(x.shape[0], o, *out_hw)


def _weight_grad(x, g, w_shape, stride, padding, dilation, groups):
    """Sum over the batch of g (O, OH*OW) @ columns.T, block by block."""
    o, cg, kh, kw = w_shape
    n = x.shape[0]
    gw = np.zeros((groups, o // groups, cg * kh * kw), dtype=g.dtype)
    g = g.reshape(n, groups, o // groups, g.shape[2] * g.shape[3])
    for blk in _blocks(n, x.itemsize * cg * groups * kh * kw * g.shape[-1]):
        cols = _im2col(_pad(x[blk], *padding), (kh, kw), stride, dilation, groups)
        gb = g[blk].transpose(1, 2, 0, 3).reshape(groups, o // groups, -1)
        # NOTE: columns @ g.T, not g @ columns.T: the same product, but OpenBLAS's AVX-512
        # kernels (OPENBLAS_CORETYPE=SKYLAKEX) run the transposed-B form at half speed
        gw += np.matmul(cols, gb.swapaxes(-1, -2)).swapaxes(-1, -2)
    return gw.reshape(w_shape)


def _spread(count, size, stride, dilation, kernel, pad_before):
    """Where the transposed convolution puts the upstream gradient along one spatial dim:
    output row ``r`` goes to ``d*(k-1) - pad_before + r*s`` of a buffer of length
    ``size + d*(k-1)``. Returns the buffer length, the range [lo, hi) of rows that land inside
    it (the others only met padding) and where row ``lo`` lands."""
    extent = dilation * (kernel - 1)
    length, first = size + extent, extent - pad_before
    lo = -(first // stride) if first < 0 else 0
    hi = min(count, (length - 1 - first) // stride + 1)
    return length, lo, hi, first + lo * stride


def _input_grad(g, w, in_hw, stride, padding, dilation, groups):
    """Gradient of the input: the transposed convolution of ``g`` with ``w``, i.e. ``g`` spread
    out by the stride into a zero buffer and correlated (stride 1) with the flipped weight.

    The correlation reads the buffer as flat rows: shifting by kernel offset (i, j) is a
    contiguous slice starting at i*d*width + j*d, so the columns copy in long runs; each output
    row then carries d*(kw-1) wrapped-around values at its end, which are cut off."""
    n, o, oh, ow = g.shape
    h, w_in = in_hw
    _, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    og = o // groups
    hb, h0, h1, r0 = _spread(oh, h, sh, dh, kh, padding[0])
    wb, w0, w1, c0 = _spread(ow, w_in, sw, dw, kw, padding[2])
    flipped = w.reshape(groups, og, cg, kh, kw).swapaxes(1, 2)[..., ::-1, ::-1]
    flipped = flipped.reshape(groups, cg, og * kh * kw)
    gx = np.empty((n, groups * cg, h, w_in), dtype=g.dtype)
    if h1 <= h0 or w1 <= w0:  # every output only saw padding
        gx.fill(0)
        return gx
    item = g.itemsize
    for blk in _blocks(n, item * o * kh * kw * h * wb):
        m = blk.stop - blk.start
        flat = np.zeros((m, o, hb * wb + dw * (kw - 1)), dtype=g.dtype)
        flat[:, :, :hb * wb].reshape(m, o, hb, wb)[
            :, :, r0:r0 + (h1 - h0 - 1) * sh + 1:sh, c0:c0 + (w1 - w0 - 1) * sw + 1:sw] = \
            g[blk, :, h0:h1, w0:w1]
        bn, bc, _ = flat.strides
        cols = as_strided(flat, (groups, og, kh, kw, m, h * wb),
                          (bc * og, bc, dh * wb * item, dw * item, bn, item), writeable=False)
        cols = cols.reshape(groups, og * kh * kw, m * h * wb)
        res = np.matmul(flipped, cols).reshape(groups * cg, m, h, wb)
        gx[blk] = res[..., :w_in].transpose(1, 0, 2, 3)
    return gx


class ConvolutionBackward0(Function):
    def forward(self, x, w, b, stride, padding, dilation, groups):
        self.args = (stride, padding, dilation, groups)
        out_hw = tuple((x.shape[2 + i] + padding[2 * i] + padding[2 * i + 1]
                        - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
                       for i in (0, 1))
        self.save_for_backward(x, w)
        return _forward(x, w, b, out_hw, stride, padding, dilation, groups)

    def backward(self, g):
        x, w = self.saved_tensors
        stride, padding, dilation, groups = self.args
        needs = self.needs_input_grad
        g = np.ascontiguousarray(g, dtype=w.dtype)
        gx = gw = gb = None
        if needs[0]:
            gx = _input_grad(g, w, x.shape[2:], stride, padding, dilation, groups)
        if needs[1]:
            gw = _weight_grad(x, g, w.shape, stride, padding, dilation, groups)
        if needs[2]:
            gb = g.sum(axis=(0, 2, 3))
        return gx, gw, gb


def _check_conv(x, w, b, stride, dilation, groups):
    if w.ndim < 3:
        raise RuntimeError("weight should have at least three dimensions")
    if w.ndim != 4:
        raise RuntimeError(f"expected stride to be a single integer value or a list of "
                           f"{w.ndim - 2} values to match the convolution dimensions, but got "
                           f"stride={list(stride)}")
    if min(stride) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got {list(dilation)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    o = w.shape[0]
    if o < groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least {groups} at "
                           f"dimension 0, but got weight of size {list(w.shape)} instead")
    if o % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size [{list(w.shape)}] instead")
    if x.shape[1] != w.shape[1] * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(w.shape)}, expected "
                           f"input{list(x.shape)} to have {w.shape[1] * groups} channels, but got "
                           f"{x.shape[1]} channels instead")
    if b is not None and (b.ndim != 1 or b.shape[0] != o):
        raise RuntimeError(f"Given weight of size {list(w.shape)}, expected bias to be "
                           f"1-dimensional with {o} elements, but got bias of size "
                           f"{list(b.shape)} instead")
    if x.dtype != w.dtype:
        raise RuntimeError(f"expected scalar type {_scalar_name(x.dtype)} but found "
                           f"{_scalar_name(w.dtype)}")
    if b is not None and b.dtype != x.dtype:
        raise RuntimeError(f"Input type ({_C_NAMES[x.dtype.name]}) and bias type "
                           f"({_C_NAMES[b.dtype.name]}) should be the same")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation over NCHW input, as ``torch.nn.functional.conv2d``.

    ``padding`` is an int, a pair, ``'valid'`` (none) or ``'same'`` (output as large as the
    input; stride 1 only). A 3-D input (C, H, W) is treated as a batch of one.

    >>> x = dtrain.randn(8, 3, 32, 32)
    >>> w = dtrain.randn(16, 3, 3, 3, requires_grad=True)
    >>> conv2d(x, w, padding=1).shape
    dtrain.Size([8, 16, 32, 32])
    """
    if input.ndim not in (3, 4):
        raise RuntimeError("Expected 3D (unbatched) or 4D (batched) input to conv2d, but got "
                           f"input of size: {list(input.shape)}")
    if input.ndim == 3:
        return conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation,
                      groups).squeeze(0)
    stride, dilation = _conv_pair("stride", stride), _conv_pair("dilation", dilation)
    x, w = input._data, weight._data
    b = bias._data if bias is not None else None
    pads = _padding(padding, w.shape[2:4], stride, dilation)
    _check_conv(x, w, b, stride, dilation, int(groups))
    padded = (x.shape[2] + pads[0] + pads[1], x.shape[3] + pads[2] + pads[3])
    extent = tuple(d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation))
    if padded[0] < extent[0] or padded[1] < extent[1]:
        raise RuntimeError(f"Calculated padded input size per channel: ({padded[0]} x "
                           f"{padded[1]}). Kernel size: ({extent[0]} x {extent[1]}). Kernel size "
                           "can't be greater than actual input size")
    return ConvolutionBackward0.apply(input, weight, bias, stride=stride, padding=pads,
                                      dilation=dilation, groups=int(groups))
