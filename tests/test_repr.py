"""repr() of tensors and friends must match torch's exactly, with "torch." spelled "dtrain."."""
import json
import os

import numpy as np
import pytest

import dtrain

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "torch_reference.json")
with open(FIXTURE) as f:
    REPR = json.load(f)["repr"]

# Expressions that cannot work for reasons outside the formatter: {expression: reason}.
# They run as strict xfails, so this list has to be updated once dtrain supports them.
UNSUPPORTED = {}


def _expected(value):
    return value.replace("torch.", "dtrain.")


def _case(expr):
    marks = [pytest.mark.xfail(reason=UNSUPPORTED[expr], strict=True)] if expr in UNSUPPORTED else []
    return pytest.param(expr, marks=marks, id=expr)


@pytest.fixture(autouse=True)
def _default_printoptions():
    yield
    dtrain.set_printoptions(profile="default")


@pytest.mark.parametrize("expr", [_case(e) for e in REPR])
def test_repr_matches_torch_fixture(expr):
    expected = REPR[expr]
    if isinstance(expected, list):  # torch itself raised: [exception type, message]
        pytest.fail(f"fixture entry raised in torch: {expected}")
    value = eval(expr, {"t": dtrain, "np": np})
    assert repr(value) == _expected(expected)


# --- random tensors compared against torch directly -----------------------------------------

def _torch_repr(x):
    torch = pytest.importorskip("torch")
    return _expected(repr(torch.from_numpy(x._data.copy())))


SCALES = [-12, -8, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 8, 9, 12]


@pytest.mark.parametrize("k,dtype", [(k, d) for d in ["float32", "float64", "float16"]
                                     for k in SCALES if d != "float16" or abs(k) <= 4])
def test_random_scaled(k, dtype):
    pytest.importorskip("torch")
    dtrain.manual_seed(k + 100)
    for shape in [(3, 4), (7,), (2, 3, 2), ()]:
        x = (dtrain.randn(*shape, dtype=dtrain.float64) * 10.0 ** k).to(getattr(dtrain, dtype))
        assert repr(x) == _torch_repr(x)


@pytest.mark.parametrize("shape", [(1001,), (40, 40), (3, 400), (11, 12, 13), (2, 2, 2, 200),
                                   (1200, 1), (25,), (5, 30)])
@pytest.mark.parametrize("scale", [1.0, 1e3, 1e-6])
def test_random_large_and_wrapping(shape, scale):
    pytest.importorskip("torch")
    dtrain.manual_seed(len(shape))
    x = dtrain.randn(*shape) * scale
    assert repr(x) == _torch_repr(x)


def test_random_integers_and_bools():
    pytest.importorskip("torch")
    dtrain.manual_seed(3)
    for dt in ["int64", "int32", "int16", "int8", "uint8"]:
        for shape in [(5,), (4, 6), (30, 40), (3, 3, 3)]:
            hi = 100 if dt in ("int8", "uint8") else 100000
            lo = 0 if dt == "uint8" else -hi
            x = dtrain.randint(lo, hi, shape, dtype=getattr(dtrain, dt))
            assert repr(x) == _torch_repr(x)
    x = dtrain.randn(6, 5) > 0
    assert repr(x) == _torch_repr(x)


def test_nonfinite_and_mixed():
    pytest.importorskip("torch")
    dtrain.manual_seed(4)
    for scale in [1.0, 1e-7, 1e9]:
        x = dtrain.randn(4, 5) * scale
        arr = x._data.copy()
        arr[0, 0], arr[1, 2], arr[3, 4] = np.nan, np.inf, -np.inf
        y = dtrain.from_numpy(arr)
        assert repr(y) == _torch_repr(y)
    for vals in [[0.0, -0.0], [np.nan, np.inf], [1.0, np.nan, -3.0], [0.0, 1e-5], [2.5, 0.0]]:
        x = dtrain.tensor(vals)
        assert repr(x) == _torch_repr(x)


@pytest.mark.parametrize("opts", [
    dict(precision=2), dict(precision=8), dict(precision=0), dict(threshold=5),
    dict(threshold=5, edgeitems=1), dict(threshold=5, edgeitems=0), dict(linewidth=40),
    dict(linewidth=10), dict(sci_mode=True), dict(sci_mode=False), dict(profile="short"),
    dict(profile="full"), dict(precision=3, sci_mode=True, linewidth=50),
])
def test_set_printoptions(opts):
    torch = pytest.importorskip("torch")
    dtrain.manual_seed(5)
    xs = [dtrain.randn(3, 4) * 100, dtrain.randn(12) * 1e-3, dtrain.arange(2000.0),
          dtrain.arange(30).reshape(2, 3, 5), dtrain.randn(2, 3, 250), dtrain.tensor(1.25),
          dtrain.zeros(0, 3), dtrain.ones(4, 5, dtype=dtrain.float64)]
    torch.set_printoptions(**opts)
    try:
        dtrain.set_printoptions(**opts)
        for x in xs:
            assert repr(x) == _torch_repr(x)
    finally:
        torch.set_printoptions(profile="default")


def test_suffix_wrapping():
    torch = pytest.importorskip("torch")
    x = dtrain.randn(3, 7, dtype=dtrain.float64, requires_grad=True)
    tx = torch.from_numpy(x._data.copy()).requires_grad_()
    assert repr(x) == _expected(repr(tx))
    assert repr(x * 2) == _expected(repr(tx * 2))


def test_default_dtype_float64():
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    dtrain.set_default_dtype(dtrain.float64)
    torch.set_default_dtype(torch.float64)
    try:
        for x in [dtrain.ones(2, 3, dtype=dtrain.float64), dtrain.ones(3, dtype=dtrain.float32),
                  dtrain.zeros(0, 2, dtype=dtrain.float64), dtrain.zeros(0, dtype=dtrain.float32),
                  dtrain.zeros(0, dtype=dtrain.int64), dtrain.tensor([True])]:
            assert repr(x) == _torch_repr(x)
    finally:
        dtrain.set_default_dtype(dtrain.float32)
        torch.set_default_dtype(old)
