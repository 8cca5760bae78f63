"""One table of op cases, shared by tests/test_ops_torch.py (dtrain against torch) and
tests/test_gradcheck.py (dtrain against finite differences, no torch needed).

A case is ``OpCase(id, shapes, fn, **flags)``. ``fn(lib, *xs)`` gets the library module
(``dtrain`` or ``torch``; their APIs match) and one floating-point tensor per entry of
``shapes``, and returns a tensor or a tuple of tensors. Anything else an op needs (integer
index tensors, boolean masks, python scalars) is built inside ``fn`` through ``lib``, so one
function runs on both libraries.

Flags choose the random input values (see ``make_arrays``):
  positive  values in [0.5, 2): log, sqrt, rsqrt, a tensor exponent's base
  nonzero   |values| in [0.5, 2), either sign: denominators, reciprocal
  distinct  every value of every input at least 0.08 from every other: max/min/amax/maximum
            (no ties, so the gradient is unique and finite differences do not cross a kink)
Without a flag values are standard normal; kinks of relu/abs/clamp at fixed points are hit
with probability ~0 (and the seed is fixed per case, from its id).

Every case also has a ``dtypes`` list for the dtype-promotion test: tuples of one dtype name
per input; by default ``PROMOTIONS[len(shapes)]``.
"""
import zlib
from dataclasses import dataclass, field

import numpy as np

PROMOTIONS = {
    1: [("float64",), ("float16",), ("int64",), ("int32",)],
    2: [("float32", "float64"), ("float16", "float32"), ("int64", "float32"),
        ("int32", "int64")],
    3: [("float16", "float32", "float64"), ("int64", "float32", "int32")],
}


@dataclass
class OpCase:
    id: str
    shapes: list
    fn: object = field(repr=False)
    positive: bool = False
    nonzero: bool = False
    distinct: bool = False
    dtypes: list = None

    def __post_init__(self):
        self.shapes = [tuple(s) for s in self.shapes]
        if self.dtypes is None:
            self.dtypes = PROMOTIONS[len(self.shapes)]

    def __str__(self):
        return self.id


def make_arrays(case, dtypes):
    """Input arrays for ``case``, one per shape, of the given numpy dtype names. The same
    case always gets the same values (seeded by its id); integer dtypes get small positive
    integers (distinct ones under ``distinct``)."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    sizes = [int(np.prod(s)) for s in case.shapes]
    if case.distinct:  # a shuffled grid, spacing 0.1, plus jitter below 0.02
        n = sum(sizes)
        flat = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0, 0.02, n)
    elif case.positive:
        flat = rng.uniform(0.5, 2.0, sum(sizes))
    elif case.nonzero:
        flat = rng.uniform(0.5, 2.0, sum(sizes)) * rng.choice([-1, 1], sum(sizes))
    else:
        flat = rng.standard_normal(sum(sizes))
    out, start = [], 0
    for shape, size, dt in zip(case.shapes, sizes, dtypes):
        a = flat[start:start + size].reshape(shape)
        if np.dtype(dt).kind in "iu":
            a = (np.argsort(np.argsort(flat))[start:start + size].reshape(shape) + 1
                 if case.distinct else rng.integers(1, 5, shape))
        out.append(np.asarray(a).astype(dt))
        start += size
    return out


CASES = []


def C(id, shapes, fn, **flags):
    CASES.append(OpCase(id, shapes, fn, **flags))


def binary_cases(name, op, **flags):
    """The usual shape matrix for a broadcasting two-operand op ``op(x, y)``."""
    C(f"{name}", [(3, 4), (3, 4)], lambda L, x, y: op(x, y), **flags)
    C(f"{name}_bcast", [(3, 1), (1, 4)], lambda L, x, y: op(x, y), **flags)
    C(f"{name}_bcast_3d", [(2, 3, 4), (4,)], lambda L, x, y: op(x, y), **flags)
    C(f"{name}_bcast_left", [(3, 1), (2, 3, 4)], lambda L, x, y: op(x, y), **flags)
    C(f"{name}_0d", [(), ()], lambda L, x, y: op(x, y), **flags)
    C(f"{name}_0d_right", [(3, 4), ()], lambda L, x, y: op(x, y), **flags)
    C(f"{name}_0d_left", [(), (3, 4)], lambda L, x, y: op(x, y), **flags)
    C(f"{name}_transposed", [(4, 3), (3, 4)], lambda L, x, y: op(x.t(), y), **flags)
    C(f"{name}_stepped", [(6, 4), (3, 2)], lambda L, x, y: op(x[::2, 1::2], y), **flags)
    C(f"{name}_same_input", [(3, 4)], lambda L, x: op(x, x), **flags)


def unary_cases(name, op, **flags):
    """The usual shapes for a one-operand op ``op(x)``."""
    C(f"{name}", [(3, 4)], lambda L, x: op(x), **flags)
    C(f"{name}_3d", [(2, 3, 4)], lambda L, x: op(x), **flags)
    C(f"{name}_0d", [()], lambda L, x: op(x), **flags)
    C(f"{name}_transposed", [(4, 3)], lambda L, x: op(x.t()), **flags)
    C(f"{name}_stepped", [(3, 8)], lambda L, x: op(x[:, 1::3]), **flags)


# --- arithmetic ----------------------------------------------------------------------------

binary_cases("add", lambda x, y: x + y)
C("add_fn", [(3, 4), (4,)], lambda L, x, y: L.add(x, y))
C("add_method", [(3, 4), (3, 4)], lambda L, x, y: x.add(y))
C("add_alpha", [(3, 4), (3, 4)], lambda L, x, y: L.add(x, y, alpha=2))
C("add_alpha_bcast", [(3, 4), (4,)], lambda L, x, y: x.add(y, alpha=-0.5))
C("add_scalar_right", [(3, 4)], lambda L, x: x + 2.5)
C("add_scalar_left", [(3, 4)], lambda L, x: 2.5 + x)
C("add_int_scalar", [(3, 4)], lambda L, x: x + 2)
C("add_scalar_0d", [()], lambda L, x: 1.5 + x)

binary_cases("sub", lambda x, y: x - y)
C("sub_fn", [(3, 4), (4,)], lambda L, x, y: L.sub(x, y))
C("sub_alpha", [(3, 4), (3, 4)], lambda L, x, y: L.sub(x, y, alpha=2))
C("sub_alpha_bcast", [(3, 1), (4,)], lambda L, x, y: x.sub(y, alpha=0.5))
C("sub_scalar_right", [(3, 4)], lambda L, x: x - 2.5)
C("rsub_scalar", [(3, 4)], lambda L, x: 2.5 - x)
C("rsub_int_scalar", [(3, 4)], lambda L, x: 2 - x)
C("rsub_0d", [()], lambda L, x: 2 - x)
C("rsub_transposed", [(4, 3)], lambda L, x: 1.5 - x.t())

binary_cases("mul", lambda x, y: x * y)
C("mul_fn", [(3, 4), (4,)], lambda L, x, y: L.mul(x, y))
C("mul_scalar_right", [(3, 4)], lambda L, x: x * 2.5)
C("mul_scalar_left", [(3, 4)], lambda L, x: 2.5 * x)
C("mul_int_scalar", [(3, 4)], lambda L, x: 3 * x)
C("mul_scalar_0d", [()], lambda L, x: x * -1.5)

binary_cases("div", lambda x, y: x / y, nonzero=True)
C("div_fn", [(3, 4), (4,)], lambda L, x, y: L.div(x, y), nonzero=True)
C("div_method", [(3, 4), (3, 4)], lambda L, x, y: x.div(y), nonzero=True)
C("div_scalar_right", [(3, 4)], lambda L, x: x / 2.5)
C("div_int_scalar", [(3, 4)], lambda L, x: x / 2)
C("rdiv_scalar", [(3, 4)], lambda L, x: 2.5 / x, nonzero=True)
C("rdiv_int_scalar", [(3, 4)], lambda L, x: 2 / x, nonzero=True)
C("rdiv_0d", [()], lambda L, x: 2 / x, nonzero=True)
C("rdiv_transposed", [(4, 3)], lambda L, x: 1.5 / x.t(), nonzero=True)

# tensor ** number
C("pow_scalar_2", [(3, 4)], lambda L, x: x ** 2)
C("pow_scalar_3", [(3, 4)], lambda L, x: x ** 3)
C("pow_scalar_0", [(3, 4)], lambda L, x: x ** 0)
C("pow_scalar_half", [(3, 4)], lambda L, x: x ** 0.5, positive=True)
C("pow_scalar_neg", [(3, 4)], lambda L, x: x ** -1.5, positive=True)
C("pow_scalar_fn", [(2, 3, 4)], lambda L, x: L.pow(x, 2.5), positive=True)
C("pow_scalar_method", [(3, 4)], lambda L, x: x.pow(3))
C("pow_scalar_0d", [()], lambda L, x: x ** 2)
C("pow_scalar_transposed", [(4, 3)], lambda L, x: x.t() ** 3)
C("pow_scalar_stepped", [(6, 4)], lambda L, x: x[1::2] ** 1.5, positive=True)
# tensor ** tensor (positive base)
binary_cases("pow_tensor", lambda x, y: x ** y, positive=True)
C("pow_tensor_fn", [(3, 4), (4,)], lambda L, x, y: L.pow(x, y), positive=True)
C("pow_tensor_method", [(3, 4), (3, 4)], lambda L, x, y: x.pow(y), positive=True)
# number ** tensor
C("rpow_int", [(3, 4)], lambda L, x: 2 ** x)
C("rpow_float", [(3, 4)], lambda L, x: 0.5 ** x)
C("rpow_fn", [(3, 4)], lambda L, x: L.pow(2.0, x))
C("rpow_0d", [()], lambda L, x: 3.0 ** x)
C("rpow_transposed", [(4, 3)], lambda L, x: 2.0 ** x.t())

unary_cases("neg", lambda x: -x)
C("neg_fn", [(3, 4)], lambda L, x: L.neg(x))
C("neg_method", [(3, 4)], lambda L, x: x.neg())
C("neg_of_rsub", [(3, 4)], lambda L, x: -(2.0 - x))

unary_cases("abs", lambda x: x.abs())
C("abs_builtin", [(3, 4)], lambda L, x: abs(x))
C("abs_fn", [(3, 4)], lambda L, x: L.abs(x))
C("abs_scalar", [(3, 4)], lambda L, x: abs(1.5 - x))
C("abs_at_zero", [(3, 4)], lambda L, x: (x - x[:1]).abs())  # row 0 is exactly 0: grad 0

# --- matrix products -----------------------------------------------------------------------

C("matmul_1d_1d", [(4,), (4,)], lambda L, x, y: x @ y)
C("matmul_2d_1d", [(3, 4), (4,)], lambda L, x, y: x @ y)
C("matmul_1d_2d", [(4,), (4, 3)], lambda L, x, y: x @ y)
C("matmul_2d_2d", [(3, 4), (4, 5)], lambda L, x, y: x @ y)
C("matmul_3d_3d", [(2, 3, 4), (2, 4, 5)], lambda L, x, y: x @ y)
C("matmul_3d_2d", [(2, 3, 4), (4, 5)], lambda L, x, y: x @ y)
C("matmul_2d_3d", [(3, 4), (2, 4, 5)], lambda L, x, y: x @ y)
C("matmul_3d_1d", [(2, 3, 4), (4,)], lambda L, x, y: x @ y)
C("matmul_1d_3d", [(4,), (2, 4, 3)], lambda L, x, y: x @ y)
C("matmul_4d_3d_bcast", [(2, 1, 3, 4), (3, 4, 5)], lambda L, x, y: x @ y)
C("matmul_3d_4d_bcast", [(3, 3, 4), (2, 1, 4, 5)], lambda L, x, y: x @ y)
C("matmul_fn", [(3, 4), (4, 5)], lambda L, x, y: L.matmul(x, y))
C("matmul_method", [(2, 3, 4), (4,)], lambda L, x, y: x.matmul(y))
C("matmul_transposed", [(4, 3), (5, 4)], lambda L, x, y: x.t() @ y.t())
C("matmul_3d_transposed", [(2, 4, 3), (2, 4, 5)], lambda L, x, y: x.transpose(1, 2) @ y)
C("matmul_1d_stepped", [(8,), (4,)], lambda L, x, y: x[::2] @ y)
C("matmul_same_input", [(3, 3)], lambda L, x: x @ x)
C("mm", [(3, 4), (4, 5)], lambda L, x, y: L.mm(x, y))
C("mm_method_transposed", [(4, 3), (4, 5)], lambda L, x, y: x.t().mm(y))
C("bmm", [(2, 3, 4), (2, 4, 5)], lambda L, x, y: L.bmm(x, y))
C("bmm_transposed", [(2, 3, 4), (2, 5, 4)], lambda L, x, y: x.bmm(y.transpose(1, 2)))
C("mv", [(3, 4), (4,)], lambda L, x, y: L.mv(x, y))
C("mv_transposed", [(4, 3), (4,)], lambda L, x, y: x.t().mv(y))
C("dot", [(4,), (4,)], lambda L, x, y: L.dot(x, y))
C("dot_stepped", [(8,), (4,)], lambda L, x, y: x[1::2].dot(y))

# --- pointwise math ------------------------------------------------------------------------

unary_cases("exp", lambda x: x.exp())
C("exp_fn", [(3, 4)], lambda L, x: L.exp(x))
unary_cases("log", lambda x: x.log(), positive=True)
C("log_fn", [(3, 4)], lambda L, x: L.log(x), positive=True)
unary_cases("sqrt", lambda x: x.sqrt(), positive=True)
C("sqrt_fn", [(3, 4)], lambda L, x: L.sqrt(x), positive=True)
unary_cases("rsqrt", lambda x: x.rsqrt(), positive=True)
C("rsqrt_fn", [(3, 4)], lambda L, x: L.rsqrt(x), positive=True)
unary_cases("reciprocal", lambda x: x.reciprocal(), nonzero=True)
C("reciprocal_fn", [(3, 4)], lambda L, x: L.reciprocal(x), nonzero=True)
unary_cases("square", lambda x: x.square())
C("square_fn", [(3, 4)], lambda L, x: L.square(x))
unary_cases("sin", lambda x: x.sin())
C("sin_fn", [(3, 4)], lambda L, x: L.sin(x))
unary_cases("cos", lambda x: x.cos())
C("cos_fn", [(3, 4)], lambda L, x: L.cos(x))
unary_cases("tanh", lambda x: x.tanh())
C("tanh_fn", [(3, 4)], lambda L, x: L.tanh(x))
unary_cases("sigmoid", lambda x: x.sigmoid())
C("sigmoid_fn", [(3, 4)], lambda L, x: L.sigmoid(x))
unary_cases("relu", lambda x: x.relu())
C("relu_fn", [(3, 4)], lambda L, x: L.relu(x))

unary_cases("clamp_min", lambda x: x.clamp(min=-0.3))
unary_cases("clamp_max", lambda x: x.clamp(max=0.3))
unary_cases("clamp_both", lambda x: x.clamp(-0.3, 0.3))
C("clamp_fn", [(3, 4)], lambda L, x: L.clamp(x, min=-0.3, max=0.3))
C("clamp_fn_max", [(3, 4)], lambda L, x: L.clamp(x, max=0.3))
C("clip", [(3, 4)], lambda L, x: x.clip(-0.3, 0.3))

binary_cases("maximum", lambda x, y: x.maximum(y), distinct=True)
C("maximum_fn", [(3, 4), (4,)], lambda L, x, y: L.maximum(x, y), distinct=True)
C("max_other", [(3, 4), (3, 4)], lambda L, x, y: x.max(y), distinct=True)
binary_cases("minimum", lambda x, y: x.minimum(y), distinct=True)
C("minimum_fn", [(3, 4), (4,)], lambda L, x, y: L.minimum(x, y), distinct=True)
C("min_other", [(3, 4), (3, 4)], lambda L, x, y: x.min(y), distinct=True)

C("where", [(3, 4), (3, 4)], lambda L, x, y: L.where(x > 0, x, y))
C("where_bcast", [(3, 4), (4,)], lambda L, x, y: L.where(x > 0, x, y))
C("where_bcast_cond", [(3, 4), (4,)], lambda L, x, y: L.where(y > 0, x, y))
C("where_bcast_both", [(3, 1), (4,)], lambda L, x, y: L.where(x * y > 0, x, y))
C("where_0d", [(), ()], lambda L, x, y: L.where(x > y, x, y))
C("where_0d_bcast", [(3, 4), ()], lambda L, x, y: L.where(x > 0, x, y))
C("where_scalar_other", [(3, 4)], lambda L, x: L.where(x > 0, x, 0.0))
C("where_scalar_input", [(3, 4)], lambda L, x: L.where(x > 0, 1.5, x))
C("where_transposed", [(4, 3), (3, 4)], lambda L, x, y: L.where(x.t() > 0, x.t(), y))
C("where_same_input", [(3, 4)], lambda L, x: L.where(x > 0, x, x * x))

# --- reductions ----------------------------------------------------------------------------

for name in ("sum", "mean"):
    op = (lambda n: lambda x, *a, **k: getattr(x, n)(*a, **k))(name)
    C(f"{name}", [(3, 4)], lambda L, x, op=op: op(x))
    C(f"{name}_dim", [(3, 4)], lambda L, x, op=op: op(x, 0))
    C(f"{name}_dim_neg_keepdim", [(2, 3, 4)], lambda L, x, op=op: op(x, -1, keepdim=True))
    C(f"{name}_dims", [(2, 3, 4)], lambda L, x, op=op: op(x, (0, 2)))
    C(f"{name}_dims_neg_keepdim", [(2, 3, 4)], lambda L, x, op=op: op(x, (-1, -3), True))
    C(f"{name}_0d", [()], lambda L, x, op=op: op(x))
    C(f"{name}_0d_dim", [()], lambda L, x, op=op: op(x, 0))
    C(f"{name}_transposed", [(4, 3)], lambda L, x, op=op: op(x.t(), 1))
    C(f"{name}_fn", [(3, 4)], lambda L, x, name=name: getattr(L, name)(x, dim=1))

C("prod", [(3, 4)], lambda L, x: x.prod())
C("prod_dim", [(3, 4)], lambda L, x: x.prod(1))
C("prod_dim_neg_keepdim", [(2, 3, 4)], lambda L, x: x.prod(-2, keepdim=True))
C("prod_0d", [()], lambda L, x: x.prod())
C("prod_0d_dim", [()], lambda L, x: x.prod(0))
C("prod_transposed", [(4, 3)], lambda L, x: x.t().prod(0))
C("prod_fn", [(3, 4)], lambda L, x: L.prod(x, 0))
C("prod_with_zero", [(3, 4)], lambda L, x: (x - x[0, 0]).prod())  # one factor exactly 0
C("prod_dim_with_zero", [(3, 4)], lambda L, x: (x - x[0, 0]).prod(1))

for name in ("max", "min"):
    op = (lambda n: lambda x, *a, **k: getattr(x, n)(*a, **k))(name)
    C(f"{name}", [(3, 4)], lambda L, x, op=op: op(x), distinct=True)
    C(f"{name}_0d", [()], lambda L, x, op=op: op(x), distinct=True)
    C(f"{name}_transposed", [(4, 3)], lambda L, x, op=op: op(x.t()), distinct=True)
    C(f"{name}_dim", [(3, 4)], lambda L, x, op=op: op(x, 1).values, distinct=True)
    C(f"{name}_dim_neg_keepdim", [(2, 3, 4)], lambda L, x, op=op: op(x, -2, True).values,
      distinct=True)
    C(f"{name}_dim_0d", [()], lambda L, x, op=op: op(x, 0).values, distinct=True)
    C(f"{name}_dim_transposed", [(4, 3)], lambda L, x, op=op: op(x.t(), 0).values,
      distinct=True)
    C(f"{name}_dim_fn", [(3, 4)], lambda L, x, name=name: getattr(L, name)(x, 0)[0],
      distinct=True)
    a = "a" + name  # amax / amin
    opa = (lambda n: lambda x, *a, **k: getattr(x, n)(*a, **k))(a)
    C(f"{a}", [(3, 4)], lambda L, x, op=opa: op(x), distinct=True)
    C(f"{a}_dim", [(3, 4)], lambda L, x, op=opa: op(x, 1), distinct=True)
    C(f"{a}_dims_keepdim", [(2, 3, 4)], lambda L, x, op=opa: op(x, (0, -1), True),
      distinct=True)
    C(f"{a}_0d", [()], lambda L, x, op=opa: op(x), distinct=True)
    C(f"{a}_transposed", [(4, 3)], lambda L, x, op=opa: op(x.t(), -1), distinct=True)
    C(f"{a}_fn", [(3, 4)], lambda L, x, a=a: getattr(L, a)(x, 0), distinct=True)

for name in ("var", "std"):
    op = (lambda n: lambda x, *a, **k: getattr(x, n)(*a, **k))(name)
    C(f"{name}", [(3, 4)], lambda L, x, op=op: op(x))
    C(f"{name}_dim", [(3, 4)], lambda L, x, op=op: op(x, 1))
    C(f"{name}_dim_neg_keepdim", [(2, 3, 4)], lambda L, x, op=op: op(x, -2, keepdim=True))
    C(f"{name}_dims", [(2, 3, 4)], lambda L, x, op=op: op(x, (0, 2)))
    C(f"{name}_unbiased_false", [(3, 4)], lambda L, x, op=op: op(x, unbiased=False))
    C(f"{name}_dim_unbiased_false", [(3, 4)], lambda L, x, op=op: op(x, 0, unbiased=False))
    C(f"{name}_correction0", [(3, 4)], lambda L, x, op=op: op(x, dim=1, correction=0))
    C(f"{name}_correction0_keepdim", [(2, 3, 4)],
      lambda L, x, op=op: op(x, dim=(1, 2), correction=0, keepdim=True))
    C(f"{name}_0d_correction0", [()], lambda L, x, op=op: op(x, correction=0))
    C(f"{name}_transposed", [(4, 3)], lambda L, x, op=op: op(x.t(), 1))
    C(f"{name}_fn", [(3, 4)], lambda L, x, name=name: getattr(L, name)(x, 0))

for name in ("softmax", "log_softmax"):
    op = (lambda n: lambda x, *a, **k: getattr(x, n)(*a, **k))(name)
    C(f"{name}_last", [(3, 4)], lambda L, x, op=op: op(x, -1))
    C(f"{name}_dim0", [(3, 4)], lambda L, x, op=op: op(x, 0))
    C(f"{name}_3d_mid", [(2, 3, 4)], lambda L, x, op=op: op(x, 1))
    C(f"{name}_3d_neg", [(2, 3, 4)], lambda L, x, op=op: op(x, -3))
    C(f"{name}_1d", [(5,)], lambda L, x, op=op: op(x, 0))
    C(f"{name}_0d", [()], lambda L, x, op=op: op(x, 0))
    C(f"{name}_transposed", [(4, 3)], lambda L, x, op=op: op(x.t(), -1))
    C(f"{name}_fn", [(3, 4)], lambda L, x, name=name: getattr(L, name)(x, dim=1))
    C(f"{name}_large", [(3, 4)], lambda L, x, op=op: op(x * 100, -1))  # needs the max shift

C("logsumexp", [(3, 4)], lambda L, x: x.logsumexp(1))
C("logsumexp_dim0", [(3, 4)], lambda L, x: x.logsumexp(0))
C("logsumexp_neg_keepdim", [(2, 3, 4)], lambda L, x: x.logsumexp(-1, keepdim=True))
C("logsumexp_dims", [(2, 3, 4)], lambda L, x: x.logsumexp((0, -1)))
C("logsumexp_0d", [()], lambda L, x: x.logsumexp(0))
C("logsumexp_transposed", [(4, 3)], lambda L, x: x.t().logsumexp(-1))
C("logsumexp_fn", [(3, 4)], lambda L, x: L.logsumexp(x, dim=0, keepdim=True))
C("logsumexp_large", [(3, 4)], lambda L, x: (x * 100).logsumexp(1))

# --- shape ops -----------------------------------------------------------------------------

C("view", [(3, 4)], lambda L, x: x.view(4, 3))
C("view_infer", [(2, 3, 4)], lambda L, x: x.view(2, -1, 3))
C("view_flat", [(3, 4)], lambda L, x: x.view(-1))
C("view_tuple", [(3, 4)], lambda L, x: x.view((6, 2)))
C("view_0d", [()], lambda L, x: x.view(1, 1))
C("view_to_0d", [(1,)], lambda L, x: x.view(()))
C("view_stepped", [(6, 4)], lambda L, x: x[::2].view(3, 2, 2))  # non-contiguous but viewable
C("reshape", [(3, 4)], lambda L, x: x.reshape(2, 6))
C("reshape_infer", [(2, 3, 4)], lambda L, x: x.reshape(-1, 4))
C("reshape_0d", [()], lambda L, x: x.reshape(1))
C("reshape_fn", [(3, 4)], lambda L, x: L.reshape(x, (4, 3)))
C("reshape_transposed_copy", [(3, 4)], lambda L, x: x.t().reshape(-1))
C("reshape_transposed_alias", [(3, 4)], lambda L, x: x.t().reshape(4, 3))
C("transpose", [(3, 4)], lambda L, x: x.transpose(0, 1))
C("transpose_3d", [(2, 3, 4)], lambda L, x: x.transpose(0, 2))
C("transpose_neg", [(2, 3, 4)], lambda L, x: x.transpose(-1, -2))
C("transpose_fn", [(2, 3, 4)], lambda L, x: L.transpose(x, 1, 0))
C("transpose_0d", [()], lambda L, x: x.transpose(0, -1))
C("transpose_twice", [(2, 3, 4)], lambda L, x: x.transpose(0, 1).transpose(1, 2))
C("permute", [(2, 3, 4)], lambda L, x: x.permute(2, 0, 1))
C("permute_tuple_neg", [(2, 3, 4)], lambda L, x: x.permute((-1, -3, -2)))
C("permute_fn", [(2, 3, 4)], lambda L, x: L.permute(x, (1, 2, 0)))
C("permute_0d", [()], lambda L, x: x.permute(()))
C("permute_transposed", [(2, 3, 4)], lambda L, x: x.transpose(0, 1).permute(2, 1, 0))
C("t", [(3, 4)], lambda L, x: x.t())
C("t_1d", [(4,)], lambda L, x: x.t())
C("t_0d", [()], lambda L, x: x.t())
C("t_fn", [(3, 4)], lambda L, x: L.t(x))
C("squeeze", [(3, 1, 4, 1)], lambda L, x: x.squeeze())
C("squeeze_dim", [(3, 1, 4, 1)], lambda L, x: x.squeeze(1))
C("squeeze_dim_neg", [(3, 1, 4, 1)], lambda L, x: x.squeeze(-1))
C("squeeze_dim_noop", [(3, 1, 4, 1)], lambda L, x: x.squeeze(0))
C("squeeze_dims", [(3, 1, 4, 1)], lambda L, x: x.squeeze((1, 3)))
C("squeeze_0d", [()], lambda L, x: x.squeeze())
C("squeeze_fn", [(1, 3)], lambda L, x: L.squeeze(x, 0))
C("squeeze_transposed", [(4, 1, 3)], lambda L, x: x.transpose(0, 2).squeeze(1))
C("unsqueeze", [(3, 4)], lambda L, x: x.unsqueeze(0))
C("unsqueeze_mid", [(3, 4)], lambda L, x: x.unsqueeze(1))
C("unsqueeze_neg", [(3, 4)], lambda L, x: x.unsqueeze(-1))
C("unsqueeze_0d", [()], lambda L, x: x.unsqueeze(0))
C("unsqueeze_fn", [(3, 4)], lambda L, x: L.unsqueeze(x, -2))
C("unsqueeze_transposed", [(4, 3)], lambda L, x: x.t().unsqueeze(1))
C("flatten", [(2, 3, 4)], lambda L, x: x.flatten())
C("flatten_start", [(2, 3, 4)], lambda L, x: x.flatten(1))
C("flatten_range", [(2, 3, 4)], lambda L, x: x.flatten(0, 1))
C("flatten_noop", [(3, 4)], lambda L, x: x.flatten(1))
C("flatten_0d", [()], lambda L, x: x.flatten())
C("flatten_fn", [(2, 3, 4)], lambda L, x: L.flatten(x, start_dim=-2))
C("flatten_transposed", [(2, 3, 4)], lambda L, x: x.transpose(1, 2).flatten(1))
C("expand", [(3, 1)], lambda L, x: x.expand(3, 4))
C("expand_new_dims", [(4,)], lambda L, x: x.expand(2, 3, 4))
C("expand_keep", [(1, 4)], lambda L, x: x.expand(3, -1))
C("expand_tuple", [(3, 1)], lambda L, x: x.expand((2, 3, 5)))
C("expand_0d", [()], lambda L, x: x.expand(2, 3))
C("expand_transposed", [(1, 3)], lambda L, x: x.t().expand(3, 4))
C("expand_then_mul", [(3, 1), (3, 4)], lambda L, x, y: x.expand(3, 4) * y)
C("narrow", [(3, 4)], lambda L, x: x.narrow(1, 1, 2))
C("narrow_dim0", [(3, 4)], lambda L, x: x.narrow(0, 0, 1))
C("narrow_neg", [(2, 3, 4)], lambda L, x: x.narrow(-1, -3, 2))
C("narrow_fn", [(3, 4)], lambda L, x: L.narrow(x, 0, 1, 2))
C("narrow_transposed", [(4, 3)], lambda L, x: x.t().narrow(1, 2, 2))
C("chunk", [(4, 3)], lambda L, x: x.chunk(2))
C("chunk_uneven", [(3, 5)], lambda L, x: x.chunk(3, 1))
C("chunk_neg", [(2, 3, 4)], lambda L, x: x.chunk(2, -1))
C("chunk_fn", [(4, 3)], lambda L, x: L.chunk(x, 4, 0))
C("chunk_transposed", [(4, 3)], lambda L, x: x.t().chunk(2, 1))
C("chunk_one_piece", [(4, 3)], lambda L, x: x.chunk(3)[1] * 2)
C("split_int", [(5, 3)], lambda L, x: x.split(2))
C("split_int_dim", [(3, 5)], lambda L, x: x.split(2, 1))
C("split_list", [(3, 5)], lambda L, x: x.split([1, 3, 1], -1))
C("split_fn", [(5, 3)], lambda L, x: L.split(x, [2, 3]))
C("split_transposed", [(3, 5)], lambda L, x: x.t().split([4, 1], 0))
C("cat", [(2, 4), (3, 4)], lambda L, x, y: L.cat([x, y]))
C("cat_dim1", [(3, 2), (3, 4)], lambda L, x, y: L.cat([x, y], 1))
C("cat_three_neg", [(2, 3, 1), (2, 3, 2), (2, 3, 1)], lambda L, x, y, z: L.cat((x, y, z), -1))
C("cat_same_input", [(2, 3)], lambda L, x: L.cat([x, x * 2, x], 0))
C("cat_transposed", [(4, 3), (3, 2)], lambda L, x, y: L.cat([x.t(), y], dim=1))
C("cat_1d", [(3,), (4,)], lambda L, x, y: L.cat([x, y]))
C("stack", [(3, 4), (3, 4)], lambda L, x, y: L.stack([x, y]))
C("stack_dim1", [(3, 4), (3, 4)], lambda L, x, y: L.stack([x, y], 1))
C("stack_neg", [(3, 4), (3, 4), (3, 4)], lambda L, x, y, z: L.stack((x, y, z), -1))
C("stack_0d", [(), ()], lambda L, x, y: L.stack([x, y]))
C("stack_same_input", [(3,)], lambda L, x: L.stack([x, x]))
C("stack_transposed", [(4, 3), (3, 4)], lambda L, x, y: L.stack([x.t(), y], dim=2))

C("index_int", [(3, 4)], lambda L, x: x[1])
C("index_int_neg", [(3, 4)], lambda L, x: x[-1])
C("index_two_ints", [(3, 4)], lambda L, x: x[1, 2])
C("index_slice", [(5, 4)], lambda L, x: x[1:3])
C("index_slice_step", [(5, 4)], lambda L, x: x[::2])
C("index_slice_full", [(3, 4)], lambda L, x: x[:])
C("index_slice_col", [(3, 4)], lambda L, x: x[:, 1])
C("index_slice_mixed", [(3, 5)], lambda L, x: x[1:, ::2])
C("index_none", [(3, 4)], lambda L, x: x[None])
C("index_none_mid", [(3, 4)], lambda L, x: x[:, None, 1:])
C("index_ellipsis", [(2, 3, 4)], lambda L, x: x[..., 1])
C("index_ellipsis_front", [(2, 3, 4)], lambda L, x: x[1, ...])
C("index_ellipsis_only", [(3, 4)], lambda L, x: x[...])
C("index_0d_empty", [()], lambda L, x: x[()])
C("index_0d_none", [()], lambda L, x: x[None])
C("index_0d_ellipsis", [()], lambda L, x: x[...])
C("index_tensor_repeated", [(3, 4)], lambda L, x: x[L.tensor([0, 2, 0])])
C("index_tensor_neg", [(3, 4)], lambda L, x: x[L.tensor([-1, 0, -1, -1])])
C("index_tensor_2d", [(3, 4)], lambda L, x: x[L.tensor([[0, 1], [2, 2]])])
C("index_tensor_col", [(3, 4)], lambda L, x: x[:, L.tensor([3, 0, 3])])
C("index_tensor_pair", [(3, 4)], lambda L, x: x[L.tensor([0, 1, 0]), L.tensor([2, 2, 2])])
C("index_tensor_with_slice", [(3, 4)], lambda L, x: x[1:, L.tensor([0, 0])])
C("index_tensor_ellipsis", [(2, 3, 4)], lambda L, x: x[..., L.tensor([1, 1, 3])])
C("index_tensor_transposed", [(4, 3)], lambda L, x: x.t()[L.tensor([2, 0, 2])])
C("index_mask", [(3, 4)], lambda L, x: x[x > 0])
C("index_mask_rows", [(3, 4)], lambda L, x: x[L.tensor([True, False, True])])
C("index_mask_transposed", [(4, 3)], lambda L, x: x.t()[x.t() > 0.2])
C("index_mask_0d", [()], lambda L, x: x[x > -10])
C("index_then_mul", [(3, 4)], lambda L, x: x[L.tensor([1, 1])] * x[1:3])

C("clone", [(3, 4)], lambda L, x: x.clone())
C("clone_fn", [(3, 4)], lambda L, x: L.clone(x))
C("clone_0d", [()], lambda L, x: x.clone())
C("clone_transposed", [(4, 3)], lambda L, x: x.t().clone())
C("contiguous", [(3, 4)], lambda L, x: x.contiguous())
C("contiguous_transposed", [(4, 3)], lambda L, x: x.t().contiguous())
C("contiguous_stepped", [(6, 4)], lambda L, x: x[::2].contiguous())
C("contiguous_0d", [()], lambda L, x: (x * 2).contiguous())


# --- in-place ops on non-leaf tensors (they must backprop like the out-of-place ones) ---------

def _brief_chain(L, x):
    y = x * 1
    y.mul_(2)
    y.add_(x)
    y[0] = 0
    return y


def _arith_chain(L, x, w):
    y = x * 1
    y.sub_(x, alpha=0.5)
    y.add_(w, alpha=2)  # broadcast operand
    y.mul_(w)
    y.div_(2.0)
    return y


def _operators(L, x):
    y = x * 1
    y += x
    y *= x
    y -= 1
    y /= 2
    return y


def _unary_chain(L, x):
    y = x * 1
    y.sin_()
    y.mul_(3)
    y.clamp_(min=-1.5)
    y.sigmoid_()
    return y


def _setitem_tensor(L, x, w):
    y = x * 1
    y[1] = w  # the value requires grad too
    return y


def _setitem_mixed(L, x, w):
    y = x * 1
    y[L.tensor([0, 2]), 1:] = w[:3]
    return y


def _index_put(L, x):
    y = x * 1
    y[L.tensor([0, 2])] = 0.5
    return y


def _mask_put(L, x):
    y = x * 1
    y[y > 0] = 0
    return y


def _zero_d(L, x):
    y = x * 1
    y.mul_(3)
    y.add_(x)
    y.exp_()
    return y


def _on_view(L, x):
    y = x * 1
    y[:, 1].mul_(2)  # in place on a view of a non-leaf: torch rebases the graph
    return y


C("inplace_brief_chain", [(3, 4)], _brief_chain)
C("inplace_arith", [(3, 4), (4,)], _arith_chain)
C("inplace_operators", [(3, 4)], _operators)
C("inplace_unary", [(3, 4)], _unary_chain)
C("inplace_setitem_tensor", [(3, 4), (4,)], _setitem_tensor)
C("inplace_setitem_mixed", [(3, 4), (4,)], _setitem_mixed)
C("inplace_index_put", [(3, 4)], _index_put)
C("inplace_mask_put", [(3, 4)], _mask_put)
C("inplace_0d", [()], _zero_d)
C("inplace_on_view", [(3, 4)], _on_view)

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), sorted(i for i in _ids if _ids.count(i) > 1)
