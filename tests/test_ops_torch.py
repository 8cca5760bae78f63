"""dtrain against torch on every case of tests/op_cases.py: forward values, gradients of
``out.sum()``, output shape, dtype and grad_fn name; then dtype promotion with mixed dtypes."""
import numpy as np
import pytest

import dtrain
from op_cases import CASES, make_arrays


def _outputs(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _dtype(t):
    return str(t.dtype).split(".")[-1]


def _node(t):
    if t.grad_fn is None:
        return None
    return t.grad_fn.name() if isinstance(t, dtrain.Tensor) else type(t.grad_fn).__name__


def _check_outputs(t_out, d_out, **tol):
    assert len(d_out) == len(t_out), "number of outputs"
    for t, d in zip(t_out, d_out):
        assert tuple(d.shape) == tuple(t.shape), "shape"
        assert _dtype(d) == _dtype(t), "dtype"
        np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), **tol)


def helper_test_op(case, torch):
    """Same float32 inputs to ``case.fn`` in torch and dtrain; compare everything."""
    arrays = make_arrays(case, ["float32"] * len(case.shapes))  # seeded by case.id
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    d_in = [dtrain.tensor(a, requires_grad=True) for a in arrays]
    t_out, d_out = _outputs(case.fn(torch, *t_in)), _outputs(case.fn(dtrain, *d_in))
    _check_outputs(t_out, d_out, atol=1e-6, rtol=1e-3)
    assert [_node(d) for d in d_out] == [_node(t) for t in t_out], "grad_fn name"
    sum(o.sum() for o in t_out).backward()
    sum(o.sum() for o in d_out).backward()
    for i, (t, d) in enumerate(zip(t_in, d_in)):
        want = np.zeros(t.shape, np.float32) if t.grad is None else t.grad.numpy()
        got = np.zeros(d.shape, np.float32) if d.grad is None else d.grad.numpy()
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3,
                                   err_msg=f"gradient of input {i}")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_op(case, torch):
    helper_test_op(case, torch)


def _forward(lib, case, arrays):
    try:
        return _outputs(case.fn(lib, *[lib.tensor(a) for a in arrays])), None
    except Exception as e:  # noqa: BLE001  (which inputs torch refuses is part of the check)
        return None, e


PROMOTION = [(c, d) for c in CASES for d in c.dtypes]


@pytest.mark.parametrize("case,dtypes", PROMOTION,
                         ids=[f"{c.id}-{'-'.join(d)}" for c, d in PROMOTION])
def test_promotion(case, dtypes, torch):
    """Mixed input dtypes, forward only: dtrain must give torch's result dtype (and values),
    or raise where torch raises."""
    arrays = make_arrays(case, dtypes)
    t_out, t_err = _forward(torch, case, arrays)
    d_out, d_err = _forward(dtrain, case, arrays)
    if t_err is not None:
        assert d_err is not None, f"torch raises {t_err!r}; dtrain returns {d_out}"
        return
    if d_err is not None:
        raise d_err
    loose = any(_dtype(t) == "float16" for t in t_out)
    _check_outputs(t_out, d_out, atol=1e-2 if loose else 1e-6, rtol=1e-2 if loose else 1e-3)
