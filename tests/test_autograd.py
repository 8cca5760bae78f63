"""Autograd behaviour: requires_grad, leaves, backward, retain_graph, grad modes, autograd.grad,
hooks, in-place ops and the version counter, deep graphs and determinism.

Every test takes `lib`, parametrized over dtrain and torch (torch skipped when it is not
installed): the same test passing on torch proves it encodes torch's behaviour.
"""
import warnings

import numpy as np
import pytest

from helpers import gname, nonleaf_grad, npy

SCALAR_ONLY = "grad can be implicitly created only for scalar outputs"
SECOND_BACKWARD = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time or if you need to access saved tensors after "
    "calling backward.")
MODIFIED_INPLACE = (r"^one of the variables needed for gradient computation has been modified "
                    r"by an inplace operation: .*is at version 1; expected version 0 instead")
LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."


# --- requires_grad and leaves ------------------------------------------------------------------

def test_requires_grad_propagation(lib):
    x = lib.ones(2, 2, requires_grad=True)
    c = lib.ones(2, 2)
    assert x.requires_grad and not c.requires_grad
    assert not lib.tensor([1.]).requires_grad  # default False
    for y in (x + 2, x * c, c - x, (x / 2).sum(), x.exp(), x[0], x.t(), x.view(4), x @ c,
              lib.cat([x, c]), lib.stack([c, x]), lib.where(c > 0, c, x), x.double()):
        assert y.requires_grad and not y.is_leaf and y.grad_fn is not None
    z = c * 2 + c.exp()
    assert not z.requires_grad and z.grad_fn is None and z.is_leaf
    assert not (x > 0).requires_grad  # comparisons give bool tensors outside the graph
    assert not x.argmax().requires_grad
    assert not x.detach().requires_grad


def test_is_leaf(lib):
    x = lib.ones(3, requires_grad=True)
    assert x.is_leaf and x.grad_fn is None
    y = x * 2
    assert not y.is_leaf
    assert lib.ones(3).is_leaf
    assert (lib.ones(3) * 2).is_leaf  # no grad required: a leaf
    assert y.detach().is_leaf
    assert lib.tensor([1., 2.], requires_grad=True).is_leaf


def test_requires_grad_(lib):
    x = lib.ones(3)
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    x.requires_grad = True
    assert x.requires_grad
    y = x * 2
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf "
                                           "variables"):
        y.requires_grad = False
    with pytest.raises(RuntimeError, match="can require gradients"):
        lib.tensor([1, 2]).requires_grad_()


# --- backward ----------------------------------------------------------------------------------

def test_backward_on_scalar(lib):
    a = np.array([[1., 2.], [3., 4.]], dtype=np.float32)
    x = lib.tensor(a, requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()
    out.backward()
    np.testing.assert_allclose(npy(x.grad), 6 * (a + 2) / 4, rtol=1e-6)
    assert x.grad.shape == x.shape and x.grad.dtype == x.dtype
    assert not x.grad.requires_grad


def test_backward_values_through_common_ops(lib):
    a = np.array([[0.5, -1.], [2., 0.25]])
    w = lib.tensor(a, requires_grad=True)
    v = lib.tensor([1.5, -0.5], dtype=lib.float64, requires_grad=True)
    loss = ((w @ v).tanh().sum() + (w.exp() * w).sum() + (w / (v + 3)).sum()
            + w.relu().pow(2).sum())
    loss.backward()
    wv = a @ np.array([1.5, -.5])
    dtanh = 1 - np.tanh(wv) ** 2
    gw = (np.outer(dtanh, [1.5, -.5]) + np.exp(a) * (1 + a) + 1 / (np.array([1.5, -.5]) + 3)
          + 2 * np.maximum(a, 0))
    gv = a.T @ dtanh - (a / (np.array([1.5, -.5]) + 3) ** 2).sum(0)
    np.testing.assert_allclose(npy(w.grad), gw, rtol=1e-12)
    np.testing.assert_allclose(npy(v.grad), gv, rtol=1e-12)


def test_backward_broadcast_reduces_to_input_shape(lib):
    x = lib.ones(3, requires_grad=True)
    b = lib.ones(2, 1, requires_grad=True)
    (x * b * lib.ones(4, 2, 3)).sum().backward()
    assert x.grad.tolist() == [8., 8., 8.]
    assert b.grad.tolist() == [[12.], [12.]]


def test_non_scalar_backward_without_gradient_raises(lib):
    x = lib.ones(2, 2, requires_grad=True)
    z = (x + 2) * (x + 2)
    with pytest.raises(RuntimeError) as info:
        z.backward()
    assert str(info.value) == SCALAR_ONLY
    assert x.grad is None


def test_backward_with_gradient(lib):
    x = lib.tensor([1., 2., 3.], requires_grad=True)
    y = x * x
    y.backward(gradient=lib.tensor([1., 0.1, 0.01]))
    np.testing.assert_allclose(npy(x.grad), [2., 0.4, 0.06], rtol=1e-6)
    x2 = lib.tensor([[1., 2.]], requires_grad=True)
    (x2 * 3).backward(lib.ones(1, 2))
    assert x2.grad.tolist() == [[3., 3.]]
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(lib.ones(2))


def test_backward_without_grad_raises(lib):
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and "
                                           "does not have a grad_fn"):
        lib.ones(2).sum().backward()


def test_grads_accumulate_across_backward_calls(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [5., 7.]
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3., 3.]
    x.grad.zero_()
    assert x.grad.tolist() == [0., 0.]


def test_retain_graph(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError) as info:
        y.backward()
    assert str(info.value) == SECOND_BACKWARD

    x = lib.tensor([1., 2.], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = npy(x.grad)
    y.backward(retain_graph=True)
    np.testing.assert_allclose(npy(x.grad), 2 * first, rtol=1e-6)  # grads accumulate
    y.backward()
    np.testing.assert_allclose(npy(x.grad), 3 * first, rtol=1e-6)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()


def test_graph_without_saved_tensors_can_backward_twice(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    y = (x + 1).sum()  # add and sum save no tensors
    y.backward()
    y.backward()
    assert x.grad.tolist() == [2., 2.]


def test_nonleaf_grad_is_none_unless_retained(lib):
    x = lib.ones(2, 2, requires_grad=True)
    y = x + 2
    z = y * y
    w = z.sum()
    z.retain_grad()
    assert z.retains_grad and not y.retains_grad
    w.backward()
    assert nonleaf_grad(y) is None
    assert z.grad.tolist() == [[1., 1.], [1., 1.]]
    assert x.grad.tolist() == [[6., 6.], [6., 6.]]
    assert nonleaf_grad(w) is None
    x.retain_grad()  # a no-op on leaves
    assert x.retains_grad is False


def test_reading_nonleaf_grad_warns(lib):
    """torch warns (UserWarning) when .grad of a non-leaf that does not retain it is read."""
    x = lib.ones(2, requires_grad=True)
    y = x * 2
    y.sum().backward()
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert y.grad is None
    z = x * 3
    z.retain_grad()
    z.sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert z.grad.tolist() == [1., 1.]


# --- grad modes --------------------------------------------------------------------------------

def test_no_grad_context(lib):
    x = lib.ones(2, requires_grad=True)
    assert lib.is_grad_enabled()
    with lib.no_grad():
        assert not lib.is_grad_enabled()
        y = x * 2
        with lib.enable_grad():
            assert lib.is_grad_enabled()
            z = x * 2
        assert not lib.is_grad_enabled()
    assert lib.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and gname(z) == "MulBackward0"


def test_grad_mode_restored_after_exception(lib):
    with pytest.raises(ZeroDivisionError):
        with lib.no_grad():
            1 / 0
    assert lib.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators(lib):
    x = lib.ones(2, requires_grad=True)

    @lib.no_grad()
    def off(t):
        assert not lib.is_grad_enabled()
        return t * 2

    @lib.enable_grad()
    def on(t):
        assert lib.is_grad_enabled()
        return t * 2

    assert not off(x).requires_grad
    assert lib.is_grad_enabled()
    with lib.no_grad():
        assert on(x).requires_grad
        assert not lib.is_grad_enabled()
    assert off.__name__ == "off"  # functools.wraps

    @lib.no_grad
    def bare(t):  # torch also accepts the class itself as a decorator
        return t * 2

    assert not bare(x).requires_grad
    assert lib.is_grad_enabled()


def test_set_grad_enabled(lib):
    x = lib.ones(2, requires_grad=True)
    with lib.set_grad_enabled(False):
        assert not lib.is_grad_enabled()
        assert not (x * 2).requires_grad
    assert lib.is_grad_enabled()
    with lib.set_grad_enabled(True):
        assert (x * 2).requires_grad
    with lib.no_grad():
        with lib.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not lib.is_grad_enabled()

    @lib.set_grad_enabled(False)
    def f(t):
        return t * 2

    assert lib.is_grad_enabled()  # decorating does not change the mode
    assert not f(x).requires_grad
    assert lib.is_grad_enabled()

    lib.set_grad_enabled(False)  # a plain call switches the mode
    try:
        assert not lib.is_grad_enabled()
        assert not (x * 2).requires_grad
    finally:
        lib.set_grad_enabled(True)
    assert lib.is_grad_enabled()


def test_inplace_on_leaf_allowed_under_no_grad(lib):
    w = lib.tensor([1., 2.], requires_grad=True)
    (w * w).sum().backward()
    with lib.no_grad():
        w.sub_(0.5 * w.grad)
    assert w.tolist() == [0., 0.] and w.is_leaf and w.requires_grad
    with lib.no_grad():
        w[0] = 3.
    assert w.tolist() == [3., 0.]


# --- autograd.grad -----------------------------------------------------------------------------

def test_autograd_grad(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    y = lib.tensor([3., 4.], requires_grad=True)
    out = (x * x * y).sum()
    gx, gy = lib.autograd.grad(out, (x, y))
    assert gx.tolist() == [6., 16.] and gy.tolist() == [1., 4.]
    assert x.grad is None and y.grad is None  # .grad untouched
    (g,) = lib.autograd.grad((x * 3).sum(), x)
    assert g.tolist() == [3., 3.]
    (g,) = lib.autograd.grad([x * 2], [x], grad_outputs=[lib.tensor([1., 10.])])
    assert g.tolist() == [2., 20.]
    assert isinstance(lib.autograd.grad((x * 3).sum(), [x]), tuple)


def test_autograd_grad_allow_unused(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    unused = lib.tensor([5.], requires_grad=True)
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        lib.autograd.grad((x * x).sum(), [x, unused])
    gx, gu = lib.autograd.grad((x * x).sum(), [x, unused], allow_unused=True)
    assert gx.tolist() == [2., 4.] and gu is None
    gx, gu = lib.autograd.grad((x * x).sum(), [x, unused], allow_unused=True,
                               materialize_grads=True)
    assert gu.tolist() == [0.]
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors does not require "
                                           "grad"):
        lib.autograd.grad((x * x).sum(), lib.ones(2))


def test_autograd_grad_retain_graph(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    y = (x * x).sum()
    (g1,) = lib.autograd.grad(y, x, retain_graph=True)
    (g2,) = lib.autograd.grad(y, x)
    assert g1.tolist() == g2.tolist() == [2., 4.]
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        lib.autograd.grad(y, x)


def test_autograd_grad_of_intermediate(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    h = x * 3
    out = (h * h).sum()
    gh, gx = lib.autograd.grad(out, [h, x])
    assert gh.tolist() == [6., 12.] and gx.tolist() == [18., 36.]


# --- hooks -------------------------------------------------------------------------------------

def test_register_hook_on_leaf(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    seen = []
    h = x.register_hook(lambda g: seen.append(g.tolist()))
    h2 = x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    assert seen == [[2., 4.]]
    assert x.grad.tolist() == [20., 40.]  # the modified gradient is accumulated
    h2.remove()
    x.grad = None
    (x * x).sum().backward()
    assert x.grad.tolist() == [2., 4.]
    h.remove()
    (x * 1).sum().backward()
    assert len(seen) == 2


def test_register_hook_on_nonleaf(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    y = x * 3
    seen = []
    y.register_hook(lambda g: seen.append(g.tolist()))
    handle = y.register_hook(lambda g: g + 1)
    z = (y * y).sum()
    z.backward(retain_graph=True)
    assert seen == [[6., 12.]]
    assert x.grad.tolist() == [21., 39.]  # (dz/dy + 1) * 3 flows on to x
    assert nonleaf_grad(y) is None
    handle.remove()
    x.grad = None
    z.backward()
    assert x.grad.tolist() == [18., 36.]


def test_hooks_run_in_registration_order(lib):
    x = lib.tensor([1.], requires_grad=True)
    x.register_hook(lambda g: g * 2)
    x.register_hook(lambda g: g + 1)
    (x * 1).sum().backward()
    assert x.grad.tolist() == [3.]  # (1 * 2) + 1


def test_register_hook_needs_requires_grad(lib):
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't "
                                           "require gradient"):
        lib.ones(2).register_hook(lambda g: g)


def test_post_accumulate_grad_hook(lib):
    w = lib.tensor([1., 2.], requires_grad=True)
    seen = []

    def hook(p):
        assert p is w
        seen.append(p.grad.tolist())

    handle = w.register_post_accumulate_grad_hook(hook)
    y = (w * w).sum()
    y.backward(retain_graph=True)
    assert seen == [[2., 4.]]  # .grad is already written when the hook runs
    y.backward()
    assert seen == [[2., 4.], [4., 8.]]  # and it sees the accumulated value
    handle.remove()
    (w * 1).sum().backward()
    assert len(seen) == 2


def test_post_accumulate_grad_hook_order(lib):
    """Parameters used in forward order 1, 2, 3 get their hooks called as their gradients
    are ready: 3, 2, 1 (what DDP relies on to overlap communication)."""
    ps = [lib.tensor([float(i + 1)], requires_grad=True) for i in range(3)]
    order = []
    for i, p in enumerate(ps):
        p.register_post_accumulate_grad_hook(lambda p, i=i: order.append((i, p.grad.tolist())))
    h = lib.ones(1)
    for p in ps:
        h = (h * p).tanh()
    h.sum().backward()
    assert [i for i, _ in order] == [2, 1, 0]
    assert all(g is not None for _, g in order)


def test_post_accumulate_grad_hook_on_nonleaf_raises(lib):
    x = lib.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="post accumulate grad hooks cannot be registered on "
                                           "non-leaf tensors"):
        (x * 2).register_post_accumulate_grad_hook(lambda p: None)


def test_post_accumulate_grad_hook_not_called_by_autograd_grad(lib):
    w = lib.tensor([1., 2.], requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(lambda p: calls.append(1))
    lib.autograd.grad((w * w).sum(), w)
    assert calls == [] and w.grad is None


# --- in-place ops and the version counter --------------------------------------------------------

def test_version_counter(lib):
    x = lib.zeros(3)
    assert x._version == 0
    x.add_(1)
    x.mul_(2)
    assert x._version == 2
    x[0] = 5
    assert x._version == 3
    v = x.view(3)
    d = x.detach()
    v.add_(1)
    assert x._version == v._version == d._version == 4  # views share the counter
    d.zero_()
    assert x._version == 5
    assert x.tolist() == [0., 0., 0.]


def test_inplace_ops_values_and_grad(lib):
    a = np.array([-1., 0.5, 2.])
    x = lib.tensor(a, requires_grad=True)
    y = x * 2
    assert y.add_(1) is y
    y.mul_(3).relu_()
    assert gname(y) == "ReluBackward0"
    y.sum().backward()
    np.testing.assert_allclose(npy(y), np.maximum((a * 2 + 1) * 3, 0))
    np.testing.assert_allclose(npy(x.grad), np.where((a * 2 + 1) * 3 > 0, 6., 0.))


def test_inplace_on_saved_tensor_then_backward_raises(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    y = x * 1
    z = y * y  # saves y
    y.add_(1)
    with pytest.raises(RuntimeError, match=MODIFIED_INPLACE):
        z.sum().backward()

    x = lib.tensor([1., 2.], requires_grad=True)
    e = x.exp()  # saves its output
    e.mul_(2)
    with pytest.raises(RuntimeError, match=MODIFIED_INPLACE):
        e.sum().backward()

    x = lib.tensor([1., 2.], requires_grad=True)
    s = x.sigmoid()
    w = s * 2
    s[0] = 0  # index assignment bumps the version too
    with pytest.raises(RuntimeError, match=MODIFIED_INPLACE):
        w.sum().backward()


def test_inplace_on_unsaved_tensor_is_fine(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    y = x * 2
    z = y + 1  # add saves nothing
    y.add_(100)
    z.sum().backward()
    assert x.grad.tolist() == [2., 2.]
    assert z.tolist() == [3., 5.]

    x = lib.tensor([1., 2.], requires_grad=True)
    y = x * 3
    y.mul_(x)  # y = 3x * x
    y.sum().backward()
    assert x.grad.tolist() == [6., 12.]


def test_inplace_on_leaf_requiring_grad_raises(lib):
    x = lib.tensor([1., 2.], requires_grad=True)
    for op in (lambda: x.add_(1), lambda: x.mul_(2), lambda: x.zero_(), lambda: x.exp_(),
               lambda: x.fill_(0), lambda: x.copy_(lib.ones(2))):
        with pytest.raises(RuntimeError) as info:
            op()
        assert str(info.value) == LEAF_INPLACE
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used in "
                                           "an in-place operation"):
        x[0] = 5
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used in "
                                           "an in-place operation"):
        x += 1
    assert x.tolist() == [1., 2.] and x._version == 0


def test_inplace_on_view_of_nonleaf(lib):
    """torch records in-place ops on a view into the base's graph (CopySlices)."""
    x = lib.tensor([1., 2., 3., 4.], requires_grad=True)
    y = x * 1
    y[1:3].mul_(10)
    assert y.tolist() == [1., 20., 30., 4.]
    y.sum().backward()
    assert x.grad.tolist() == [1., 10., 10., 1.]


def test_setitem_grad(lib):
    x = lib.tensor([1., 2., 3.], requires_grad=True)
    v = lib.tensor([7.], requires_grad=True)
    y = x * 2
    y[1:2] = v * 3
    assert gname(y) == "CopySlices"
    (y * lib.tensor([1., 2., 3.])).sum().backward()
    assert x.grad.tolist() == [2., 0., 6.] and v.grad.tolist() == [6.]


# --- deep graphs and determinism ---------------------------------------------------------------

def test_deep_graph_no_recursion_error(lib):
    x = lib.tensor([1.], requires_grad=True)
    y = x
    for i in range(5000):
        y = y * 1.0001 if i % 2 else y + 0.5
    y.sum().backward()
    np.testing.assert_allclose(npy(x.grad), [1.0001 ** 2500], rtol=1e-4)


def test_deep_graph_autograd_grad_and_hooks(lib):
    x = lib.tensor([2.], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 0
    y.register_hook(lambda g: g * 2)
    (g,) = lib.autograd.grad(y.sum(), x)
    assert g.tolist() == [2.]


def _train_step(lib):
    lib.manual_seed(0)
    w1 = lib.randn(8, 16, requires_grad=True)
    w2 = lib.randn(16, 4, requires_grad=True)
    x = lib.randn(32, 8)
    h = (x @ w1).tanh()
    out = (h @ w2).softmax(1)
    loss = (out * out.log()).sum() + h.pow(2).mean() + (w1 * w1).sum() * 1e-3
    loss.backward()
    return [npy(w1.grad), npy(w2.grad), npy(loss)]


def test_determinism(lib):
    first, second = _train_step(lib), _train_step(lib)
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()  # bit-identical
