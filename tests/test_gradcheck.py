"""Finite-difference check of dtrain's gradients for every case of tests/op_cases.py, in
float64 and without torch (HIPS autograd's check_vjp): for a random upstream vector v and a
random input direction d, the analytic vector-Jacobian product <vjp(v), d> must equal the
central difference of <f(x), v> along d."""
import numpy as np
import pytest

import dtrain
from op_cases import CASES, make_arrays

EPS = 1e-6
TOL = 1e-6  # absolute, or relative to |exact + numeric|: autograd's scalar_close


def _outputs(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_vjp(case):
    arrays = make_arrays(case, ["float64"] * len(case.shapes))
    rng = np.random.default_rng(0)
    xs = [dtrain.tensor(a, requires_grad=True) for a in arrays]
    outs = _outputs(case.fn(dtrain, *xs))
    assert all(o.dtype == dtrain.float64 for o in outs), "float64 in, float64 out"
    vs = [rng.standard_normal(tuple(o.shape)) for o in outs]
    dtrain.autograd.backward(list(outs), [dtrain.tensor(v) for v in vs])
    ds = [rng.standard_normal(a.shape) for a in arrays]
    exact = sum(float(np.sum(x.grad.numpy() * d)) for x, d in zip(xs, ds) if x.grad is not None)

    def inner(step):  # <f(x + step * d), v>
        shifted = [dtrain.tensor(np.asarray(a + step * d)) for a, d in zip(arrays, ds)]
        with dtrain.no_grad():
            outs = _outputs(case.fn(dtrain, *shifted))
        return sum(float(np.sum(o.numpy() * v)) for o, v in zip(outs, vs))

    numeric = (inner(EPS) - inner(-EPS)) / (2 * EPS)
    err = abs(exact - numeric)
    assert err < TOL or err / abs(exact + numeric) < TOL, f"vjp {exact!r} vs fd {numeric!r}"
