"""conv2d and the 2-D pooling ops (dtrain/ops/conv.py, dtrain/ops/pool.py): the same call in
dtrain and torch, comparing the output, the gradients of sum(out * upstream), the grad_fn name
and the errors; then a float64 finite-difference check of every op that needs no torch."""
import zlib

import numpy as np
import pytest

import dtrain
from dtrain.ops import conv as conv_ops
from dtrain.ops.conv import conv2d
from dtrain.ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d

OPS = {"conv2d": conv2d, "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d,
       "adaptive_avg_pool2d": adaptive_avg_pool2d, "adaptive_max_pool2d": adaptive_max_pool2d}


def _rng(key):
    return np.random.default_rng(zlib.crc32(str(key).encode()))


def _distinct(rng, shape):
    """Values at least 0.05 apart: no ties in a max window, no kinks crossed by a small step."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.05 + rng.uniform(0, 0.01, n)).reshape(shape)


def _node(t):
    if t.grad_fn is None:
        return None
    return t.grad_fn.name() if isinstance(t, dtrain.Tensor) else type(t.grad_fn).__name__


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def compare(torch, name, arrays, **kw):
    """Run op ``name`` on the same float32 arrays in torch and dtrain; compare the output,
    the returned indices, the node name and the gradients of sum(out * upstream)."""
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    d_in = [dtrain.tensor(a, requires_grad=True) for a in arrays]
    t_res = getattr(torch.nn.functional, name)(*t_in, **kw)
    d_res = OPS[name](*d_in, **kw)
    t_out, d_out = _first(t_res), _first(d_res)
    assert tuple(d_out.shape) == tuple(t_out.shape)
    assert d_out.dtype == dtrain.float32
    np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), atol=1e-4,
                               rtol=1e-3)
    if isinstance(t_res, tuple):
        np.testing.assert_array_equal(d_res[1].numpy(), t_res[1].numpy())
        assert d_res[1].dtype == dtrain.int64
    assert _node(d_out) == _node(t_out)
    up = _rng(kw).standard_normal(tuple(t_out.shape)).astype(np.float32)
    (t_out * torch.tensor(up)).sum().backward()
    (d_out * dtrain.tensor(up)).sum().backward()
    for i, (t, d) in enumerate(zip(t_in, d_in)):
        assert d.grad.dtype == dtrain.float32
        np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), atol=1e-4, rtol=1e-3,
                                   err_msg=f"gradient of input {i}")


# --- conv2d against torch ------------------------------------------------------------------

# (input shape, weight shape, bias, kwargs)
CONV = [
    ((2, 3, 8, 8), (4, 3, 3, 3), True, {}),
    ((2, 3, 8, 8), (4, 3, 3, 3), False, {"padding": 1}),
    ((2, 3, 7, 10), (5, 3, 3, 3), True, {"padding": (2, 0)}),
    ((2, 3, 9, 9), (4, 3, 3, 3), True, {"stride": 2}),
    ((2, 3, 9, 11), (4, 3, 3, 2), True, {"stride": (2, 3), "padding": 1}),
    ((1, 2, 10, 9), (3, 2, 3, 3), True, {"dilation": 2}),
    ((1, 2, 10, 9), (3, 2, 3, 2), True, {"dilation": (2, 3), "padding": (1, 2), "stride": 2}),
    ((2, 4, 8, 8), (6, 2, 3, 3), True, {"groups": 2, "padding": 1}),
    ((2, 4, 8, 8), (4, 1, 3, 3), True, {"groups": 4, "padding": 1}),  # depthwise
    ((2, 6, 7, 7), (9, 2, 2, 2), False, {"groups": 3, "stride": 2}),
    ((2, 3, 8, 8), (4, 3, 1, 1), True, {}),
    ((2, 3, 8, 8), (4, 3, 1, 1), True, {"padding": 2, "stride": 3}),  # border outputs see pad
    ((2, 3, 6, 6), (4, 3, 6, 6), True, {}),  # kernel as large as the input: one output
    ((1, 3, 6, 6), (2, 3, 5, 5), True, {"stride": 4, "padding": 1}),  # rows never reached
    ((1, 2, 1, 1), (3, 2, 1, 1), True, {"stride": 2, "padding": 1}),  # outputs see only pad
    ((2, 3, 8, 9), (4, 3, 3, 3), True, {"padding": "same"}),
    ((2, 3, 8, 9), (4, 3, 2, 4), True, {"padding": "same"}),  # even kernel: asymmetric pad
    ((2, 3, 8, 9), (4, 3, 2, 3), True, {"padding": "same", "dilation": (3, 2)}),
    ((2, 4, 8, 9), (4, 2, 3, 3), True, {"padding": "same", "groups": 2}),
    ((2, 3, 8, 9), (4, 3, 3, 2), True, {"padding": "valid"}),
    ((3, 8, 8), (4, 3, 3, 3), True, {"padding": 1}),  # unbatched
    ((3, 8, 7), (4, 3, 2, 2), False, {"padding": "same"}),
    ((1, 1, 28, 28), (16, 1, 3, 3), True, {"padding": 1}),
    ((5, 16, 14, 14), (32, 16, 3, 3), True, {"padding": 1}),
]


def _conv_arrays(x_shape, w_shape, bias):
    rng = _rng((x_shape, w_shape))
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)]
    if bias:
        arrays.append(rng.standard_normal(w_shape[0]))
    return [a.astype(np.float32) for a in arrays]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("x_shape,w_shape,bias,kw", CONV, ids=lambda v: str(v))
def test_conv2d(torch, x_shape, w_shape, bias, kw):
    compare(torch, "conv2d", _conv_arrays(x_shape, w_shape, bias), **kw)


@pytest.mark.parametrize("block_bytes", [1, 3000, 50000])
def test_conv2d_batch_blocks(torch, monkeypatch, block_bytes):
    """The batch is processed in blocks (one sample, uneven, several samples per block)."""
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", block_bytes)
    compare(torch, "conv2d", _conv_arrays((7, 4, 9, 8), (6, 2, 3, 3), True),
            padding=(1, 2), stride=(1, 2), groups=2)
    compare(torch, "conv2d", _conv_arrays((5, 3, 8, 8), (4, 3, 3, 3), True), padding="same")


@pytest.mark.parametrize("needs", [(False, True, True), (True, False, False),
                                   (False, False, True)])
def test_conv2d_partial_grads(torch, needs):
    """Only some inputs need a gradient (the first layer's input never does)."""
    arrays = _conv_arrays((2, 3, 8, 8), (4, 3, 3, 3), True)
    t_in = [torch.tensor(a, requires_grad=n) for a, n in zip(arrays, needs)]
    d_in = [dtrain.tensor(a, requires_grad=n) for a, n in zip(arrays, needs)]
    torch.nn.functional.conv2d(*t_in, padding=1).sum().backward()
    conv2d(*d_in, padding=1).sum().backward()  # also: a broadcast (zero-stride) gradient
    for t, d in zip(t_in, d_in):
        assert (d.grad is None) == (t.grad is None)
        if t.grad is not None:
            np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("padding", [0, 1])
def test_conv2d_strided_views(torch, padding):
    """Non-contiguous input and weight (transposed views) read through their strides."""
    x, w, b = _conv_arrays((2, 3, 9, 7), (4, 3, 3, 2), True)
    t_x, t_w = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    d_x, d_w = dtrain.tensor(x, requires_grad=True), dtrain.tensor(w, requires_grad=True)
    t_out = torch.nn.functional.conv2d(t_x.transpose(2, 3)[:, :, ::2], t_w.transpose(2, 3),
                                       torch.tensor(b), padding=padding)
    d_out = conv2d(d_x.transpose(2, 3)[:, :, ::2], d_w.transpose(2, 3), dtrain.tensor(b),
                   padding=padding)
    np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), atol=1e-4,
                               rtol=1e-3)
    (t_out ** 2).sum().backward()
    (d_out ** 2).sum().backward()
    np.testing.assert_allclose(d_x.grad.numpy(), t_x.grad.numpy(), atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(d_w.grad.numpy(), t_w.grad.numpy(), atol=1e-4, rtol=1e-3)


def test_conv2d_no_grad_and_dtype():
    x = dtrain.randn(2, 3, 8, 8, requires_grad=True)
    w = dtrain.randn(4, 3, 3, 3, requires_grad=True)
    with dtrain.no_grad():
        out = conv2d(x, w)
    assert out.grad_fn is None and not out.requires_grad
    out = conv2d(x.double(), w.double(), padding=1)
    assert out.dtype == dtrain.float64 and out.is_contiguous()


def test_conv2d_empty_batch(torch):
    x = dtrain.randn(0, 3, 8, 8, requires_grad=True)
    w = dtrain.randn(4, 3, 3, 3, requires_grad=True)
    out = conv2d(x, w, padding=1)
    assert tuple(out.shape) == (0, 4, 8, 8)
    out.sum().backward()
    assert tuple(x.grad.shape) == (0, 3, 8, 8) and float(w.grad.abs().sum()) == 0


def test_conv2d_inplace_input_detected():
    x = dtrain.randn(1, 2, 5, 5)
    w = dtrain.randn(3, 2, 3, 3, requires_grad=True)
    out = conv2d(x, w)
    x.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_conv2d_integer(torch):
    x = np.arange(2 * 3 * 5 * 5).reshape(2, 3, 5, 5) % 7
    w = np.arange(4 * 3 * 2 * 2).reshape(4, 3, 2, 2) % 5 - 2
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor([1] * 4))
    got = conv2d(dtrain.tensor(x), dtrain.tensor(w), dtrain.tensor([1] * 4))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert got.dtype == dtrain.int64


# --- pooling against torch -----------------------------------------------------------------

POOL = [
    ("max_pool2d", (2, 3, 8, 8), {"kernel_size": 2}),
    ("max_pool2d", (2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("max_pool2d", (2, 3, 9, 7), {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1)}),
    ("max_pool2d", (2, 3, 9, 9), {"kernel_size": 3, "stride": 1}),  # overlapping windows
    ("max_pool2d", (2, 3, 10, 9), {"kernel_size": 3, "dilation": 2, "padding": 1}),
    ("max_pool2d", (2, 3, 5, 5), {"kernel_size": 2, "ceil_mode": True}),
    ("max_pool2d", (2, 3, 10, 7), {"kernel_size": 3, "stride": 2, "padding": 1,
                                   "ceil_mode": True, "dilation": (1, 2)}),
    ("max_pool2d", (2, 3, 8, 8), {"kernel_size": 2, "stride": [], "return_indices": True}),
    ("max_pool2d", (2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1,
                                  "ceil_mode": True, "return_indices": True}),
    ("max_pool2d", (3, 9, 7), {"kernel_size": 2, "return_indices": True}),  # unbatched
    ("avg_pool2d", (2, 3, 8, 8), {"kernel_size": 2}),
    ("avg_pool2d", (2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avg_pool2d", (2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1,
                                  "count_include_pad": False}),
    ("avg_pool2d", (2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1,
                                  "ceil_mode": True}),
    ("avg_pool2d", (2, 3, 10, 7), {"kernel_size": (3, 2), "stride": (2, 3), "padding": 1,
                                   "ceil_mode": True, "count_include_pad": False}),
    ("avg_pool2d", (2, 3, 9, 7), {"kernel_size": 3, "padding": 1, "divisor_override": 5}),
    ("avg_pool2d", (2, 3, 9, 9), {"kernel_size": 3, "stride": 1}),
    ("avg_pool2d", (3, 9, 7), {"kernel_size": 2, "ceil_mode": True}),  # unbatched
    ("adaptive_avg_pool2d", (2, 3, 8, 8), {"output_size": 4}),  # divides evenly
    ("adaptive_avg_pool2d", (2, 3, 9, 7), {"output_size": (4, 3)}),
    ("adaptive_avg_pool2d", (2, 3, 5, 7), {"output_size": (8, 9)}),  # larger than the input
    ("adaptive_avg_pool2d", (2, 3, 9, 7), {"output_size": (None, 2)}),
    ("adaptive_avg_pool2d", (2, 3, 9, 7), {"output_size": 1}),  # torch: a mean
    ("adaptive_avg_pool2d", (2, 3, 9, 7), {"output_size": (1, 3)}),
    ("adaptive_avg_pool2d", (3, 9, 7), {"output_size": (2, 5)}),  # unbatched
    ("adaptive_max_pool2d", (2, 3, 8, 8), {"output_size": 4}),
    ("adaptive_max_pool2d", (2, 3, 9, 7), {"output_size": (4, 3), "return_indices": True}),
    ("adaptive_max_pool2d", (2, 3, 5, 7), {"output_size": (8, 9), "return_indices": True}),
    ("adaptive_max_pool2d", (3, 9, 7), {"output_size": 1}),
]


@pytest.mark.parametrize("name,shape,kw", POOL, ids=lambda v: str(v))
def test_pool(torch, name, shape, kw):
    x = _distinct(_rng((name, shape, kw)), shape).astype(np.float32)
    compare(torch, name, [x], **kw)


def test_max_pool_ties_and_padding_values(torch):
    """Ties go to the first max in the window; a window of -inf reports its first real
    element; a NaN wins (torch reports the last NaN of the window)."""
    F = torch.nn.functional
    cases = [
        (np.ones((1, 2, 6, 6)), dict(kernel_size=3, stride=2, padding=1)),
        (np.full((1, 1, 5, 5), -np.inf), dict(kernel_size=3, stride=1, padding=1)),
        (np.full((1, 1, 7, 7), -np.inf), dict(kernel_size=3, dilation=2, padding=1)),
        (np.full((1, 1, 7, 7), -np.inf), dict(kernel_size=(3, 4), dilation=(3, 2), padding=1,
                                              ceil_mode=True, stride=2)),
        (np.array([[[[np.nan, 1.0, 2.0], [np.nan, 2.0, np.nan]]]]), dict(kernel_size=2,
                                                                           stride=1)),
    ]
    for x, kw in cases:
        x = x.astype(np.float32)
        t_out, t_idx = F.max_pool2d(torch.tensor(x), return_indices=True, **kw)
        d_out, d_idx = max_pool2d(dtrain.tensor(x), return_indices=True, **kw)
        np.testing.assert_array_equal(d_out.numpy(), t_out.numpy())
        np.testing.assert_array_equal(d_idx.numpy(), t_idx.numpy())
    x = np.ones((1, 1, 4, 4), np.float32)  # the whole gradient of a tie goes to one element
    t = torch.tensor(x, requires_grad=True)
    F.max_pool2d(t, 2).sum().backward()
    d = dtrain.tensor(x, requires_grad=True)
    max_pool2d(d, 2).sum().backward()
    np.testing.assert_array_equal(d.grad.numpy(), t.grad.numpy())


def test_pool_integer(torch):
    F = torch.nn.functional
    x = (np.arange(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) * 37 % 101 - 50).astype(np.int64)
    for name, kw in [("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
                     ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1)),
                     ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                         count_include_pad=False)),
                     ("avg_pool2d", dict(kernel_size=2, divisor_override=3))]:
        want = getattr(F, name)(torch.tensor(x), **kw)
        got = OPS[name](dtrain.tensor(x), **kw)
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=f"{name} {kw}")
        assert got.dtype == dtrain.int64
    want = F.max_pool2d(torch.tensor(x.astype(np.int8)), 2)
    np.testing.assert_array_equal(max_pool2d(dtrain.tensor(x.astype(np.int8)), 2).numpy(),
                                  want.numpy())


@pytest.mark.parametrize("name,kw", [("max_pool2d", {"kernel_size": 3, "stride": 2}),
                                     ("avg_pool2d", {"kernel_size": 3, "stride": 2}),
                                     ("adaptive_avg_pool2d", {"output_size": (3, 2)}),
                                     ("adaptive_max_pool2d", {"output_size": (3, 2)})])
def test_pool_strided_view_and_sum(torch, name, kw):
    """A transposed-view input, and the broadcast gradient of .sum()."""
    x = _distinct(_rng(name), (2, 3, 9, 8)).astype(np.float32)
    t_x, d_x = torch.tensor(x, requires_grad=True), dtrain.tensor(x, requires_grad=True)
    t_out = getattr(torch.nn.functional, name)(t_x.transpose(2, 3), **kw)
    d_out = OPS[name](d_x.transpose(2, 3), **kw)
    np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), atol=1e-5)
    t_out.sum().backward()
    d_out.sum().backward()
    np.testing.assert_allclose(d_x.grad.numpy(), t_x.grad.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_adaptive_empty_output(torch, name):
    """An output size of 0 gives an empty output, as torch; the gradient is zero (where torch's
    backward refuses an empty gradient)."""
    for size in [(0, 3), (3, 0), 0]:
        want = getattr(torch.nn.functional, name)(torch.zeros(2, 3, 9, 7), size)
        x = dtrain.randn(2, 3, 9, 7, requires_grad=True)
        out = OPS[name](x, size)
        assert tuple(out.shape) == tuple(want.shape)
        out.sum().backward()
        assert not x.grad.numpy().any()


def test_pool_float64_and_empty_batch():
    x = dtrain.randn(0, 3, 8, 8, requires_grad=True)
    for fn in (lambda t: max_pool2d(t, 2), lambda t: avg_pool2d(t, 2),
               lambda t: adaptive_avg_pool2d(t, 3), lambda t: adaptive_max_pool2d(t, 3)):
        out = fn(x)
        assert out.shape[0] == 0
        out.sum().backward()
        assert fn(x.detach().double()).dtype == dtrain.float64


# --- errors: torch's types and messages ----------------------------------------------------

def _conv_call(x_shape, w_shape, b_shape=None, x_dtype="float32", w_dtype="float32",
               b_dtype="float32", **kw):
    def call(lib):
        x = lib.zeros(x_shape, dtype=getattr(lib, x_dtype))
        w = lib.zeros(w_shape, dtype=getattr(lib, w_dtype))
        b = None if b_shape is None else lib.zeros(b_shape, dtype=getattr(lib, b_dtype))
        fn = lib.nn.functional.conv2d if lib.__name__ == "torch" else conv2d
        return fn(x, w, b, **kw)
    return call


def _pool_call(name, shape, dtype="float32", **kw):
    def call(lib):
        x = lib.zeros(shape, dtype=getattr(lib, dtype))
        return (getattr(lib.nn.functional, name) if lib.__name__ == "torch" else OPS[name])(
            x, **kw)
    return call


ERRORS = [
    _conv_call((1, 4, 32, 32), (6, 3, 5, 5)),
    _conv_call((4, 32, 32), (6, 3, 5, 5)),
    _conv_call((1, 4, 8, 8), (5, 2, 3, 3), groups=2),
    _conv_call((1, 3, 8, 8), (4, 1, 3, 3), groups=2),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), groups=0),
    _conv_call((1, 3, 8, 8), (0, 3, 3, 3)),
    _conv_call((1, 3, 2, 2), (4, 3, 3, 3)),
    _conv_call((1, 3, 2, 2), (4, 3, 5, 5), padding=1),
    _conv_call((1, 3, 4, 4), (4, 3, 3, 3), dilation=2),
    _conv_call((3, 8), (4, 3, 3, 3)),
    _conv_call((1, 1, 3, 8, 8), (4, 3, 3, 3)),
    _conv_call((1, 3, 8, 8), (4, 3, 3)),
    _conv_call((1, 3, 8, 8), (4, 3)),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), stride=2, padding="same"),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), padding="full"),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), padding=(1, -1)),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), stride=0),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), dilation=0),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), stride=(1, 1, 1)),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), padding=(1, 1, 1)),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), (3,)),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), (4, 1)),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), x_dtype="float64"),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), w_dtype="float64"),
    _conv_call((1, 3, 8, 8), (4, 3, 3, 3), (4,), b_dtype="float64"),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=3, padding=2),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=3, padding=3, dilation=2),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=3, padding=2, dilation=2),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=(3, 3, 3)),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=2, stride=(1, 1, 1)),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=2, padding=(1, 0, 0)),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=2, dilation=(1, 1, 1)),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=0),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=-1),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=2, stride=-1),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=2, dilation=0),
    _pool_call("max_pool2d", (1, 3, 8, 8), kernel_size=2, padding=-1),
    _pool_call("max_pool2d", (1, 3, 2, 2), kernel_size=3),
    _pool_call("max_pool2d", (8, 8), kernel_size=2),
    _pool_call("max_pool2d", (1, 0, 8, 8), kernel_size=2),
    _pool_call("max_pool2d", (1, 3, 8, 8), "bool", kernel_size=2),
    _pool_call("avg_pool2d", (1, 3, 8, 8), kernel_size=3, padding=2),
    _pool_call("avg_pool2d", (1, 3, 2, 2), kernel_size=3),
    _pool_call("avg_pool2d", (1, 3, 8, 8), kernel_size=2, divisor_override=0),
    _pool_call("avg_pool2d", (8, 8), kernel_size=2),
    _pool_call("avg_pool2d", (1, 1, 1, 8, 8), kernel_size=2),
    _pool_call("avg_pool2d", (1, 3, 8, 8), kernel_size=(3, 3, 3)),
    _pool_call("avg_pool2d", (1, 3, 8, 8), "int32", kernel_size=2),
    _pool_call("adaptive_avg_pool2d", (8, 8), output_size=2),
    _pool_call("adaptive_avg_pool2d", (1, 3, 8, 8), output_size=(2, 2, 2)),
    _pool_call("adaptive_avg_pool2d", (1, 3, 8, 8), output_size=-1),
    _pool_call("adaptive_avg_pool2d", (1, 3, 0, 8), output_size=2),
    _pool_call("adaptive_avg_pool2d", (1, 3, 8, 8), "int64", output_size=2),
    _pool_call("adaptive_max_pool2d", (8, 8), output_size=2),
    _pool_call("adaptive_max_pool2d", (1, 3, 8, 8), output_size=(2, 2, 2)),
    _pool_call("adaptive_max_pool2d", (1, 3, 0, 8), output_size=2),
    _pool_call("adaptive_max_pool2d", (1, 3, 8, 8), output_size=-1),
    _pool_call("adaptive_max_pool2d", (1, 3, 8, 8), "int64", output_size=2),
]


@pytest.mark.parametrize("call", ERRORS, ids=range(len(ERRORS)))
def test_errors_match_torch(torch, call):
    with pytest.raises(Exception) as want:
        call(torch)
    with pytest.raises(Exception) as got:
        call(dtrain)
    assert type(got.value).__name__ == type(want.value).__name__
    assert str(got.value).split("\n")[0] == str(want.value).split("\n")[0]


# --- finite differences in float64, no torch -----------------------------------------------

EPS = 1e-6
TOL = 1e-6


def check_vjp(fn, arrays, key):
    """HIPS autograd's check_vjp (as tests/test_gradcheck.py): <vjp(v), d> against the
    central difference of <fn(x), v> along a random direction d."""
    rng = _rng(key)
    xs = [dtrain.tensor(a, requires_grad=True) for a in arrays]
    out = _first(fn(*xs))
    assert out.dtype == dtrain.float64
    v = rng.standard_normal(tuple(out.shape))
    out.backward(dtrain.tensor(v))
    ds = [rng.standard_normal(a.shape) for a in arrays]
    exact = sum(float(np.sum(x.grad.numpy() * d)) for x, d in zip(xs, ds))

    def inner(step):
        with dtrain.no_grad():
            shifted = _first(fn(*[dtrain.tensor(a + step * d) for a, d in zip(arrays, ds)]))
        return float(np.sum(shifted.numpy() * v))

    numeric = (inner(EPS) - inner(-EPS)) / (2 * EPS)
    err = abs(exact - numeric)
    assert err < TOL or err / abs(exact + numeric) < TOL, f"vjp {exact!r} vs fd {numeric!r}"


@pytest.mark.parametrize("x_shape,w_shape,bias,kw", CONV, ids=lambda v: str(v))
def test_conv2d_gradcheck(x_shape, w_shape, bias, kw):
    arrays = [a.astype(np.float64) for a in _conv_arrays(x_shape, w_shape, bias)]
    check_vjp(lambda *t: conv2d(*t, **kw), arrays, (x_shape, w_shape, kw))


@pytest.mark.parametrize("name,shape,kw", POOL, ids=lambda v: str(v))
def test_pool_gradcheck(name, shape, kw):
    x = _distinct(_rng((name, shape, kw)), shape)  # distinct: a small step never flips a max
    check_vjp(lambda t: OPS[name](t, **kw), [x], (name, shape))
