"""Tensors without autograd: creation, dtypes, devices, conversion, copies and views, indexing.

Every behaviour test takes `lib`, parametrized over dtrain and torch (torch skipped when it is
not installed): the same test passing on torch proves it encodes torch's behaviour. Values are
compared with numpy.
"""
import numpy as np
import pytest

import dtrain
from helpers import dname, npy


def same(x, expected, dtype=None):
    """x's values (and dtype name, if given) equal numpy's expected."""
    expected = np.asarray(expected)
    assert tuple(x.shape) == expected.shape
    np.testing.assert_array_equal(npy(x), expected)
    if dtype is not None:
        assert dname(x.dtype) == dtype


# --- creation ----------------------------------------------------------------------------------

def test_tensor_from_nested_lists(lib):
    same(lib.tensor([[1, 2, 3], [4, 5, 6]]), [[1, 2, 3], [4, 5, 6]], "int64")
    same(lib.tensor([[1., 2.], [3., 4.]]), np.array([[1, 2], [3, 4]], np.float32), "float32")
    same(lib.tensor([True, False]), [True, False], "bool")
    same(lib.tensor(3.5), np.float32(3.5), "float32")
    assert lib.tensor(7).shape == ()
    same(lib.tensor([[1, 2, 3], [4, 5, 6]], dtype=lib.int32), [[1, 2, 3], [4, 5, 6]], "int32")
    same(lib.tensor([1, 2], dtype=lib.float64), [1., 2.], "float64")
    x = lib.tensor([1., 2.], requires_grad=True)
    assert x.requires_grad and x.is_leaf and x.grad is None


def test_tensor_copies_its_data(lib):
    a = np.zeros(3)
    x = lib.tensor(a)
    a[0] = 5
    same(x, [0., 0., 0.], "float64")
    y = lib.tensor([1., 2.])
    z = lib.tensor(y.tolist())
    z[0] = 9
    same(y, np.array([1., 2.], np.float32))


def test_as_tensor_shares_when_it_can(lib):
    a = np.zeros(3, dtype=np.float32)
    x = lib.as_tensor(a)
    a[1] = 4
    same(x, np.array([0, 4, 0], np.float32), "float32")  # no copy: same memory
    y = lib.as_tensor(a, dtype=lib.float64)  # conversion: a copy
    a[2] = 7
    same(y, [0., 4., 0.], "float64")
    same(lib.as_tensor([1, 2]), [1, 2], "int64")
    t = lib.tensor([1., 2.])
    assert lib.as_tensor(t) is t
    h = lib.as_tensor(t, dtype=lib.half)
    assert dname(h.dtype) == "float16"
    same(lib.as_tensor(t, device="cpu"), np.array([1, 2], np.float32))


def test_from_numpy_shares_memory_both_ways(lib):
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    x = lib.from_numpy(a)
    assert dname(x.dtype) == "float64" and tuple(x.shape) == (2, 3)
    a[0, 0] = 100
    assert x[0, 0].item() == 100
    x[1, 2] = -1
    assert a[1, 2] == -1
    assert np.shares_memory(x.numpy(), a)
    assert dname(lib.from_numpy(np.zeros(2, dtype=np.int32)).dtype) == "int32"
    assert dname(lib.from_numpy(np.zeros(2, dtype=np.bool_)).dtype) == "bool"


def test_zeros_ones_full_empty(lib):
    same(lib.zeros(2, 3), np.zeros((2, 3), np.float32), "float32")
    same(lib.zeros((2, 3)), np.zeros((2, 3), np.float32))
    same(lib.zeros([2, 3]), np.zeros((2, 3), np.float32))
    same(lib.zeros(()), np.float32(0))
    same(lib.ones(3, dtype=lib.int64), np.ones(3, np.int64), "int64")
    same(lib.ones(2, 2, dtype=lib.bool), np.ones((2, 2), bool), "bool")
    same(lib.full((2, 2), 7), np.full((2, 2), 7), "int64")
    same(lib.full((2,), 1.5), np.full(2, 1.5, np.float32), "float32")
    same(lib.full((2,), False), np.zeros(2, bool), "bool")
    same(lib.full((2,), 3, dtype=lib.float64), [3., 3.], "float64")
    e = lib.empty(4, 5)
    assert tuple(e.shape) == (4, 5) and dname(e.dtype) == "float32"
    assert dname(lib.empty(2, dtype=lib.int32).dtype) == "int32"
    assert lib.zeros(2, requires_grad=True).requires_grad
    assert lib.zeros(0, 3).numel() == 0


@pytest.mark.parametrize("args, kwargs, expected", [
    ((5,), {}, np.arange(5)),
    ((2, 7), {}, np.arange(2, 7)),
    ((0, 10, 3), {}, np.arange(0, 10, 3)),
    ((5, 0, -2), {}, np.arange(5, 0, -2)),
    ((5.,), {}, np.arange(5, dtype=np.float32)),
    ((0, 1, 0.25), {}, np.arange(0, 1, 0.25, dtype=np.float32)),
    ((-1.5, 1.5, 0.5), {}, np.arange(-1.5, 1.5, 0.5, dtype=np.float32)),
    ((4,), {"dtype": "float64"}, np.arange(4, dtype=np.float64)),
])
def test_arange(lib, args, kwargs, expected):
    if "dtype" in kwargs:
        kwargs = {"dtype": getattr(lib, kwargs["dtype"])}
    same(lib.arange(*args, **kwargs), expected, expected.dtype.name)


def test_arange_float_step_length(lib):
    assert lib.arange(0, 1, 0.1).numel() == 10
    np.testing.assert_allclose(npy(lib.arange(0, 1, 0.1)), np.arange(10) / 10, rtol=1e-6)


def test_linspace_and_eye(lib):
    np.testing.assert_allclose(npy(lib.linspace(0, 1, 5)), np.linspace(0, 1, 5), rtol=1e-6)
    assert dname(lib.linspace(0, 1, 5).dtype) == "float32"
    np.testing.assert_allclose(npy(lib.linspace(-2, 3, 7)), np.linspace(-2, 3, 7), rtol=1e-6)
    assert lib.linspace(0, 1, 1).tolist() == [0.0]
    same(lib.linspace(0, 1, 3, dtype=lib.float64), [0., .5, 1.], "float64")
    same(lib.eye(3), np.eye(3, dtype=np.float32), "float32")
    same(lib.eye(2, 3), np.eye(2, 3, dtype=np.float32))
    same(lib.eye(2, dtype=lib.int64), np.eye(2, dtype=np.int64), "int64")


def test_random_creation(lib):
    lib.manual_seed(1)
    r = lib.rand(1000)
    assert dname(r.dtype) == "float32" and tuple(r.shape) == (1000,)
    a = npy(r)
    assert a.min() >= 0 and a.max() < 1 and 0.4 < a.mean() < 0.6
    n = npy(lib.randn(4000))
    assert abs(n.mean()) < 0.1 and 0.9 < n.std() < 1.1
    assert tuple(lib.randn(2, 3).shape) == (2, 3) and tuple(lib.rand((2, 3)).shape) == (2, 3)
    assert dname(lib.randn(2, dtype=lib.float64).dtype) == "float64"
    i = lib.randint(3, 7, (500,))
    assert dname(i.dtype) == "int64"
    assert set(npy(i).tolist()) == {3, 4, 5, 6}
    j = lib.randint(4, (2, 5))
    assert tuple(j.shape) == (2, 5) and npy(j).min() >= 0 and npy(j).max() < 4
    assert dname(lib.randint(0, 2, (3,), dtype=lib.int32).dtype) == "int32"


def test_manual_seed_reproducibility(lib):
    lib.manual_seed(123)
    first = [npy(lib.rand(3)), npy(lib.randn(2, 2)), npy(lib.randint(0, 100, (5,)))]
    lib.manual_seed(123)
    second = [npy(lib.rand(3)), npy(lib.randn(2, 2)), npy(lib.randint(0, 100, (5,)))]
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    lib.manual_seed(124)
    assert not np.array_equal(npy(lib.rand(3)), first[0])
    lib.manual_seed(123)
    lib.rand(3)
    assert not np.array_equal(npy(lib.rand(3)), first[0])  # the stream moves on


def test_like_functions(lib):
    x = lib.tensor([[1, 2, 3], [4, 5, 6]], dtype=lib.int32)
    same(lib.zeros_like(x), np.zeros((2, 3), np.int32), "int32")
    same(lib.ones_like(x), np.ones((2, 3), np.int32), "int32")
    same(lib.full_like(x, 7), np.full((2, 3), 7, np.int32), "int32")
    same(lib.ones_like(x, dtype=lib.float64), np.ones((2, 3)), "float64")
    e = lib.empty_like(x)
    assert tuple(e.shape) == (2, 3) and dname(e.dtype) == "int32"
    f = lib.tensor([[1., 2.], [3., 4.]], dtype=lib.float64)
    r, n = lib.rand_like(f), lib.randn_like(f)
    assert tuple(r.shape) == tuple(n.shape) == (2, 2)
    assert dname(r.dtype) == dname(n.dtype) == "float64"
    ri = lib.randint_like(x, 5)
    assert dname(ri.dtype) == "int32" and npy(ri).max() < 5
    g = lib.zeros_like(lib.ones(2, requires_grad=True))
    assert not g.requires_grad


# --- dtypes ------------------------------------------------------------------------------------

def test_dtype_aliases(lib):
    assert lib.half == lib.float16
    assert lib.float == lib.float32
    assert lib.double == lib.float64
    assert lib.long == lib.int64
    assert lib.int == lib.int32
    assert lib.short == lib.int16
    assert dname(lib.bool) == "bool"
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                 "bool"):
        assert dname(getattr(lib, name)) == name
        assert getattr(lib, name).is_floating_point == name.startswith("float")
    assert dname(lib.get_default_dtype()) == "float32"


@pytest.mark.parametrize("data, expected", [
    (1, "int64"), (1., "float32"), (True, "bool"), ([1, 2.], "float32"), ([True, 2], "int64"),
    ([], "float32"), (np.zeros(2), "float64"), (np.zeros(2, np.float16), "float16"),
    (np.zeros(2, np.int32), "int32"), (np.zeros(2, np.uint8), "uint8"),
    (np.float64(1.5), "float64"),
    ([[1, 2], [3, 4]], "int64"),
])
def test_dtype_inference(lib, data, expected):
    assert dname(lib.tensor(data).dtype) == expected


def test_conversion_methods(lib):
    x = lib.tensor([1.7, -1.7, 0.])
    for meth, name in [("half", "float16"), ("float", "float32"), ("double", "float64"),
                       ("int", "int32"), ("long", "int64"), ("bool", "bool")]:
        assert dname(getattr(x, meth)().dtype) == name
    same(x.int(), np.array([1, -1, 0], np.int32))  # truncation toward zero
    same(x.bool(), [True, True, False])
    same(x.double(), np.array([1.7, -1.7, 0.], np.float32).astype(np.float64))
    assert x.float() is x  # no change -> the same tensor
    i = lib.tensor([1, 2])
    same(i.float(), np.array([1., 2.], np.float32), "float32")


def test_to(lib):
    x = lib.tensor([1., 2.])
    assert x.to(lib.float32) is x
    assert x.to("cpu") is x
    assert x.to(lib.device("cpu")) is x
    same(x.to(lib.float64), [1., 2.], "float64")
    same(x.to(dtype=lib.int64), [1, 2], "int64")
    same(x.to("cpu", lib.float16), np.array([1, 2], np.float16), "float16")
    same(x.to(lib.device("cpu"), dtype=lib.float64), [1., 2.], "float64")
    same(x.to(lib.tensor([1], dtype=lib.int32)), np.array([1, 2], np.int32), "int32")
    c = x.to(lib.float32, copy=True)
    assert c is not x
    c[0] = 5
    assert x[0].item() == 1.0


# --- device ------------------------------------------------------------------------------------

def test_cpu_device(lib):
    x = lib.zeros(2, device="cpu")
    assert x.device == lib.device("cpu")
    assert x.device.type == "cpu" and str(x.device) == "cpu"
    assert repr(lib.device("cpu")) == "device(type='cpu')"
    assert lib.tensor([1], device=lib.device("cpu")).device.type == "cpu"
    assert x.cpu() is x
    assert not x.is_cuda
    assert lib.ones(2, device="cpu").tolist() == [1., 1.]


def _cuda_error(lib):
    """torch (CPU build) raises AssertionError "Torch not compiled with CUDA enabled"; dtrain
    is CPU-only by design and raises RuntimeError saying so."""
    if lib is dtrain:
        return RuntimeError
    if lib.cuda.is_available():
        pytest.skip("this torch has CUDA")
    return AssertionError


@pytest.mark.parametrize("make", [
    lambda t: t.zeros(2, device="cuda"),
    lambda t: t.tensor([1, 2], device="cuda"),
    lambda t: t.tensor([1, 2], device=t.device("cuda")),
    lambda t: t.ones(2).to("cuda"),
    lambda t: t.ones(2).to(t.device("cuda"), dtype=t.float64),
    lambda t: t.ones(2).cuda(),
    lambda t: t.arange(3, device="cuda:0"),
    lambda t: t.randn(2, device="cuda"),
])
def test_cuda_raises(lib, make):
    with pytest.raises(_cuda_error(lib)) as info:
        make(lib)
    if lib is dtrain:
        assert "cpu" in str(info.value).lower()
    assert not lib.cuda.is_available() or lib is not dtrain


# --- metadata and conversion to Python / numpy ------------------------------------------------

def test_metadata(lib):
    x = lib.zeros(2, 3, 4)
    assert x.shape == (2, 3, 4) and x.size() == (2, 3, 4)
    assert isinstance(x.shape, tuple) and list(x.shape) == [2, 3, 4]
    assert x.size(0) == 2 and x.size(-1) == 4 and x.shape[1] == 3
    assert x.dim() == 3 and x.ndim == 3 and x.numel() == 24 and len(x) == 2
    assert x.stride() == (12, 4, 1)
    assert x.shape.numel() == 24
    s = lib.tensor(2.5)
    assert s.dim() == 0 and s.numel() == 1 and s.shape == ()
    with pytest.raises(IndexError):
        x.size(3)


def test_item_tolist_numpy(lib):
    assert lib.tensor(2.5).item() == 2.5 and isinstance(lib.tensor(2.5).item(), float)
    assert lib.tensor(3).item() == 3 and isinstance(lib.tensor(3).item(), int)
    assert lib.tensor(True).item() is True
    assert lib.tensor([[4]]).item() == 4
    assert lib.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert lib.tensor([1.5, 2.]).tolist() == [1.5, 2.0]
    assert lib.tensor(5).tolist() == 5
    x = lib.tensor([1., 2., 3.])
    a = x.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    a[0] = 10  # numpy() shares memory
    assert x[0].item() == 10
    d = x.double()
    assert d.numpy().dtype == np.float64
    assert float(lib.tensor([2.5])) == 2.5 and int(lib.tensor(3.9)) == 3
    with pytest.raises(RuntimeError):
        lib.ones(2, requires_grad=True).numpy()
    with pytest.raises(RuntimeError):
        lib.ones(2).item()


# --- copies and views --------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")
def test_new_tensor_copies(lib):
    x = lib.tensor([1., 2.], dtype=lib.float64)
    src = lib.tensor([3., 4.])
    y = x.new_tensor(src)
    assert dname(y.dtype) == "float64"  # the dtype of x, not of the data
    y[0] = 0
    same(src, np.array([3, 4], np.float32))
    z = x.new_tensor([5, 6])
    same(z, [5., 6.], "float64")
    assert not x.new_tensor(lib.ones(2, requires_grad=True)).requires_grad
    assert dname(x.new_tensor([1], dtype=lib.int32).dtype) == "int32"


def test_detach_shares_storage(lib):
    x = lib.tensor([1., 2., 3.], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    d[0] = 10
    assert x[0].item() == 10  # the original changes too
    y = x * 2
    yd = y.detach()
    yd.zero_()
    assert y.tolist() == [0., 0., 0.]


def test_clone_copies(lib):
    x = lib.tensor([1., 2., 3.], requires_grad=True)
    c = x.clone()
    assert c.requires_grad and type(c.grad_fn).__name__ == "CloneBackward0"
    cd = x.clone().detach()
    assert not cd.requires_grad and cd.grad_fn is None
    cd[0] = 100
    assert x[0].item() == 1
    c.sum().backward()
    assert x.grad.tolist() == [1., 1., 1.]
    p = lib.arange(6.).reshape(2, 3).t()
    q = p.clone()
    q[0, 0] = -1
    assert p[0, 0].item() == 0
    same(q, np.array([[-1, 3], [1, 4], [2, 5]], np.float32))


def test_contiguous(lib):
    x = lib.arange(6.).reshape(2, 3)
    assert x.is_contiguous()
    assert x.contiguous() is x
    y = x.t()
    assert not y.is_contiguous()
    z = y.contiguous()
    assert z.is_contiguous() and z.stride() == (2, 1)
    same(z, np.arange(6., dtype=np.float32).reshape(2, 3).T)
    z[0, 0] = 5
    assert x[0, 0].item() == 0  # contiguous() of a non-contiguous tensor copies
    assert x[:, 1:].is_contiguous() is False
    assert x[1:].is_contiguous()


def test_view_shares_memory(lib):
    x = lib.arange(12.).reshape(3, 4)
    v = x.view(2, 6)
    same(v, np.arange(12., dtype=np.float32).reshape(2, 6))
    v[0, 0] = -1
    assert x[0, 0].item() == -1
    assert tuple(x.view(-1).shape) == (12,) and tuple(x.view(4, -1).shape) == (4, 3)
    assert tuple(x.view(2, 2, 3).shape) == (2, 2, 3)
    assert tuple(x.view_as(lib.zeros(6, 2)).shape) == (6, 2)


def test_view_of_non_contiguous_raises(lib):
    x = lib.arange(12.).reshape(3, 4).t()
    with pytest.raises(RuntimeError) as info:
        x.view(12)
    assert str(info.value) == (
        "view size is not compatible with input tensor's size and stride (at least one "
        "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
    assert tuple(x.view(4, 3).shape) == (4, 3)  # a no-op view is fine
    with pytest.raises(RuntimeError, match=r"shape '\[5\]' is invalid for input of size 12"):
        x.reshape(5)


def test_reshape(lib):
    x = lib.arange(6.).reshape(2, 3)
    r = x.reshape(3, 2)
    r[0, 0] = 9
    assert x[0, 0].item() == 9  # contiguous input: a view
    y = x.t()
    r2 = y.reshape(6)
    same(r2, np.array([9, 3, 1, 4, 2, 5], np.float32))
    r2[0] = 0
    assert y[0, 0].item() == 9  # non-contiguous input: a copy
    assert tuple(x.reshape(-1).shape) == (6,)
    assert tuple(x.reshape(1, 2, 3).shape) == (1, 2, 3)
    assert tuple(x.reshape((3, -1)).shape) == (3, 2)


def test_transpose_permute_t(lib):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x = lib.tensor(a)
    same(x.transpose(0, 2), a.transpose(2, 1, 0))
    same(x.transpose(-1, -2), a.swapaxes(-1, -2))
    same(x.permute(2, 0, 1), a.transpose(2, 0, 1))
    same(x.permute((1, 2, 0)), a.transpose(1, 2, 0))
    same(lib.permute(x, (2, 1, 0)), a.transpose(2, 1, 0))
    m = lib.tensor(a[0])
    same(m.t(), a[0].T)
    same(m.T, a[0].T)
    same(lib.tensor([1, 2]).t(), [1, 2])  # 1-D t() is a no-op
    p = x.permute(2, 0, 1)
    p[0, 0, 0] = 99
    assert x[0, 0, 0].item() == 99  # views share memory
    tt = x.transpose(0, 1)
    assert tt.stride() == (4, 12, 1)


def test_squeeze_unsqueeze(lib):
    x = lib.zeros(1, 2, 1, 3)
    assert tuple(x.squeeze().shape) == (2, 3)
    assert tuple(x.squeeze(0).shape) == (2, 1, 3)
    assert tuple(x.squeeze(2).shape) == (1, 2, 3)
    assert tuple(x.squeeze(-2).shape) == (1, 2, 3)
    assert tuple(x.squeeze(1).shape) == (1, 2, 1, 3)  # size != 1: unchanged
    assert tuple(lib.squeeze(x, 0).shape) == (2, 1, 3)
    y = lib.zeros(2, 3)
    assert tuple(y.unsqueeze(0).shape) == (1, 2, 3)
    assert tuple(y.unsqueeze(1).shape) == (2, 1, 3)
    assert tuple(y.unsqueeze(2).shape) == (2, 3, 1)
    assert tuple(y.unsqueeze(-1).shape) == (2, 3, 1)
    assert tuple(y.unsqueeze(-3).shape) == (1, 2, 3)
    assert tuple(lib.unsqueeze(y, 1).shape) == (2, 1, 3)
    u = y.unsqueeze(0)
    u[0, 1, 2] = 4
    assert y[1, 2].item() == 4
    assert tuple(lib.tensor(5.).unsqueeze(0).shape) == (1,)
    assert tuple(lib.zeros(1).squeeze().shape) == ()


def test_flatten(lib):
    a = np.arange(24).reshape(2, 3, 4)
    x = lib.tensor(a)
    same(x.flatten(), a.reshape(-1))
    same(x.flatten(1), a.reshape(2, 12))
    same(x.flatten(0, 1), a.reshape(6, 4))
    same(lib.flatten(x, -2), a.reshape(2, 12))
    assert tuple(lib.tensor(3).flatten().shape) == (1,)


def test_expand(lib):
    c = lib.tensor([1., 2., 3.])
    e = c.expand(2, 3)
    same(e, np.tile([1., 2., 3.], (2, 1)).astype(np.float32))
    assert e.stride() == (0, 1)
    assert tuple(c.expand(4, -1).shape) == (4, 3)
    assert tuple(c.expand_as(lib.zeros(2, 3)).shape) == (2, 3)
    col = lib.tensor([[1], [2]])
    same(col.expand(2, 3), [[1, 1, 1], [2, 2, 2]])
    assert tuple(col.expand(4, 2, -1).shape) == (4, 2, 1)
    c[0] = 7
    assert e[1, 0].item() == 7  # expand is a view


def test_narrow(lib):
    a = np.arange(12).reshape(3, 4)
    x = lib.tensor(a)
    same(x.narrow(1, 1, 2), a[:, 1:3])
    same(x.narrow(0, 2, 1), a[2:3])
    same(lib.narrow(x, -1, 0, 3), a[:, :3])
    n = x.narrow(1, 1, 2)
    n[0, 0] = -5
    assert x[0, 1].item() == -5


def test_chunk(lib):
    x = lib.arange(10)
    assert [p.tolist() for p in x.chunk(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [p.tolist() for p in lib.chunk(x, 5)] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert [p.tolist() for p in lib.arange(5).chunk(3)] == [[0, 1], [2, 3], [4]]
    assert len(lib.arange(3).chunk(5)) == 3
    m = lib.zeros(4, 6)
    parts = lib.chunk(m, 2, dim=1)
    assert [tuple(p.shape) for p in parts] == [(4, 3), (4, 3)]
    assert isinstance(parts, tuple)
    parts[1][0, 0] = 1
    assert m[0, 3].item() == 1  # chunks are views


def test_split(lib):
    x = lib.arange(10)
    assert [p.tolist() for p in x.split(4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [p.tolist() for p in lib.split(x, [2, 3, 5])] == [[0, 1], [2, 3, 4],
                                                             [5, 6, 7, 8, 9]]
    m = lib.zeros(2, 5)
    assert [tuple(p.shape) for p in m.split([1, 4], dim=1)] == [(2, 1), (2, 4)]
    assert [tuple(p.shape) for p in lib.split(m, 2, -1)] == [(2, 2), (2, 2), (2, 1)]


def test_cat_stack(lib):
    a = np.arange(6).reshape(2, 3)
    b = np.arange(6, 12).reshape(2, 3)
    x, y = lib.tensor(a), lib.tensor(b)
    same(lib.cat([x, y]), np.concatenate([a, b]))
    same(lib.cat((x, y), 1), np.concatenate([a, b], 1))
    same(lib.cat([x, y], dim=-1), np.concatenate([a, b], -1))
    same(lib.cat([x, lib.zeros(0, 3, dtype=lib.int64)]), a)
    same(lib.stack([x, y]), np.stack([a, b]))
    same(lib.stack([x, y], 1), np.stack([a, b], 1))
    same(lib.stack((x, y), dim=2), np.stack([a, b], 2))
    same(lib.stack([x, y], -1), np.stack([a, b], -1))
    c = lib.cat([x, y])
    c[0, 0] = 100
    assert x[0, 0].item() == 0  # cat copies


# --- indexing ----------------------------------------------------------------------------------
A = np.arange(24).reshape(2, 3, 4)

# (description, index builder taking the library and returning the index[, numpy equivalent
# (outer, inner): x[index] is A[outer][inner], where numpy's A[index] differs from torch's])
INDICES = [
    ("int", lambda t: 1),
    ("neg int", lambda t: -1),
    ("int,int", lambda t: (0, 2)),
    ("int,int,int", lambda t: (1, -1, 3)),
    ("slice", lambda t: slice(1, None)),
    ("slice step", lambda t: (slice(None), slice(None, None, 2))),
    ("slices", lambda t: (slice(0, 1), slice(1, 3), slice(None, None, 3))),
    ("clamped slice", lambda t: slice(-10, 10)),
    ("empty slice", lambda t: (slice(None), slice(2, 1))),
    ("None", lambda t: None),
    ("None mid", lambda t: (slice(None), None, 1)),
    ("Ellipsis", lambda t: Ellipsis),
    ("Ellipsis int", lambda t: (Ellipsis, 1)),
    ("int Ellipsis None", lambda t: (0, Ellipsis, None)),
    ("empty tuple", lambda t: ()),
    ("int list", lambda t: [1, 0]),
    ("int list repeat", lambda t: (slice(None), [2, 0, 2])),
    ("int tensor", lambda t: t.tensor([1, 1, 0])),
    ("2-d int tensor", lambda t: (0, t.tensor([[0, 1], [2, 1]]))),
    ("neg int tensor", lambda t: (slice(None), t.tensor([-1, 0]))),
    ("int 0-d tensor", lambda t: t.tensor(1)),
    ("two int arrays", lambda t: ([0, 1], [1, 2])),
    ("arrays around slice", lambda t: ([0, 1], slice(None), [1, 2])),
    # torch applies an int index first (a select), unlike numpy, which counts it as an
    # advanced index and, separated from [0, 3] by a slice, moves the broadcast dim first
    ("int and array", lambda t: (1, slice(1, 3), [0, 3]), (1, (slice(1, 3), [0, 3]))),
    ("array and int", lambda t: ([0, 1], 0, slice(None)),
     ((slice(None), 0), ([0, 1], slice(None)))),
    ("bool mask full", lambda t: t.tensor(A % 3 == 0)),
    ("bool mask dim0", lambda t: t.tensor([False, True])),
    ("bool mask dim1", lambda t: (slice(None), t.tensor([True, False, True]))),
    ("bool list", lambda t: [True, False]),
    ("bool mask 2-d", lambda t: t.tensor((A % 2 == 0)[:, :, 0])),
]


def np_index(index, lib):
    """The same index with library tensors turned into numpy arrays."""
    def conv(i):
        if i is not None and not isinstance(i, (int, slice, list, type(Ellipsis))):
            return npy(i)
        return i
    return tuple(conv(i) for i in index) if type(index) is tuple else conv(index)


def _index_params():
    return [pytest.param(e[1], e[2] if len(e) > 2 else None, id=e[0]) for e in INDICES]


@pytest.mark.parametrize("make, np_equiv", _index_params())
def test_getitem_matches_numpy(lib, make, np_equiv):
    x = lib.tensor(A)
    index = make(lib)
    if np_equiv:
        outer, inner = np_equiv
        expected = A[outer][inner]
    else:
        expected = A[np_index(index, lib)]
    same(x[index], expected, "int64")


@pytest.mark.parametrize("make, np_equiv", _index_params())
def test_setitem_matches_numpy(lib, make, np_equiv):
    index = make(lib)

    def np_set(value):
        out = A.copy()
        if np_equiv:
            outer, inner = np_equiv
            out[outer][inner] = value  # out[outer] is a basic index: a view of out
        else:
            out[np_index(index, lib)] = value
        return out

    x = lib.tensor(A)
    x[index] = -7
    same(x, np_set(-7))
    # a tensor value of the indexed shape
    target = x[index]
    value = np.arange(target.numel()).reshape(tuple(target.shape)) + 100
    x = lib.tensor(A)
    x[index] = lib.tensor(value)
    same(x, np_set(value))


def test_basic_index_is_a_view_advanced_is_a_copy(lib):
    x = lib.tensor(A)
    v = x[0, :, 1:3]
    v[0, 0] = -1
    assert x[0, 0, 1].item() == -1
    x[None][0, 1, 1, 1] = -2
    assert x[1, 1, 1].item() == -2
    x[..., 0][1, 2] = -3
    assert x[1, 2, 0].item() == -3
    c = x[[0, 1]]
    c[0, 0, 0] = 500
    assert x[0, 0, 0].item() == 0
    m = x[x > 20]
    m[0] = 0
    assert x[1, 2, 1].item() == 21


def test_setitem_broadcast_and_dtype(lib):
    x = lib.zeros(2, 3)
    x[:, 1] = lib.tensor([5., 6.])
    x[0] = lib.tensor([1., 2., 3.])
    x[1, 2] = 9
    assert x.tolist() == [[1., 2., 3.], [0., 6., 9.]]
    x[x > 2] = 0.5
    assert x.tolist() == [[1., 2., .5], [0., .5, .5]]
    i = lib.zeros(3, dtype=lib.int64)
    i[1] = 2.7  # stored with the tensor's dtype
    assert i.tolist() == [0, 2, 0] and dname(i.dtype) == "int64"
    x[...] = 1
    assert x.tolist() == [[1.] * 3] * 2
    x[:] = lib.tensor([7., 8., 9.])
    assert x.tolist() == [[7., 8., 9.]] * 2


@pytest.mark.parametrize("index, exc", [
    pytest.param(lambda t: 5, IndexError, id="int out of range"),
    pytest.param(lambda t: -3, IndexError, id="neg int out of range"),
    pytest.param(lambda t: (0, 3), IndexError, id="second int out of range"),
    pytest.param(lambda t: (0, 0, 0, 0), IndexError, id="too many"),
    pytest.param(lambda t: t.tensor([0, 2]), IndexError, id="int tensor out of range"),
    pytest.param(lambda t: 1.5, IndexError, id="float"),
    pytest.param(lambda t: t.tensor([1.]), IndexError, id="float tensor"),
    pytest.param(lambda t: t.tensor([True, False, True]), IndexError, id="mask wrong size"),
    # torch: ValueError("step must be greater than zero"); numpy would reverse
    pytest.param(lambda t: slice(None, None, -1), ValueError, id="negative step"),
])
def test_bad_indices(lib, index, exc):
    x = lib.tensor(A)
    with pytest.raises(exc):
        x[index(lib)]


def test_negative_step_setitem_raises(lib):
    x = lib.zeros(4)
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1] = lib.arange(4.)


def test_flip_copies_as_torchs_does(lib):
    x = lib.arange(4.0)
    y = x.flip(0)
    x.add_(1)
    assert y.tolist() == [3.0, 2.0, 1.0, 0.0]
