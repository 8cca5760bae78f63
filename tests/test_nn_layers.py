"""dtrain.nn layers, losses and their functional forms against torch.nn: the same parameter
values in both (dtrain's state_dict copied into torch through numpy), comparing the output, the
grad_fn name, the gradients of sum(out * upstream) with respect to the input and to every
parameter, and the buffers afterwards. Then float64 finite-difference checks (HIPS autograd's
check_vjp, as tests/test_gradcheck.py) of the functional forms, which need no torch.

A case is written once for both libraries: ``make(nn)`` builds the module from ``dtrain.nn`` or
``torch.nn``, ``call(lib, *tensors)`` calls the functional form of ``dtrain`` or ``torch``."""
import warnings
import zlib

import numpy as np
import pytest

import dtrain
import dtrain.nn as nn
import dtrain.nn.functional as F

FWD = dict(atol=1e-6, rtol=1e-3)
FWD_SUM = dict(atol=1e-5, rtol=1e-3)  # reductions over many elements
GRAD = dict(atol=1e-4, rtol=1e-3)


def _rng(key):
    return np.random.default_rng(zlib.crc32(str(key).encode()))


def _randn(key, *shape):
    return _rng(key).standard_normal(shape).astype(np.float32)


def _distinct(key, *shape):
    """Values at least 0.05 apart: no ties inside a max-pool window."""
    n = int(np.prod(shape))
    rng = _rng(key)
    return ((rng.permutation(n) - n / 2) * 0.05 + rng.uniform(0, 0.01, n)).reshape(shape) \
        .astype(np.float32)


def _node(t):
    return None if t.grad_fn is None else type(t.grad_fn).__name__


def _dtype(t):
    return str(t.dtype).split(".")[-1]


def _lib_args(lib, kw):
    """Keyword arguments with numpy arrays turned into ``lib`` tensors."""
    return {k: lib.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}


def _close(d, t, what, **tol):
    assert tuple(d.shape) == tuple(t.shape), f"{what}: shape {tuple(d.shape)} vs {tuple(t.shape)}"
    assert _dtype(d) == _dtype(t), f"{what}: dtype {d.dtype} vs {t.dtype}"
    np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), err_msg=what, **tol)


def _grad(t):
    return np.zeros(tuple(t.shape), np.float32) if t.grad is None else t.grad.numpy()


def sync(torch, dm, tm):
    """Copy the dtrain module's parameters and buffers into the torch module (same keys)."""
    state = dm.state_dict()
    assert list(state) == list(tm.state_dict()), "state_dict keys"
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in state.items()})


def compare(torch, d_fn, t_fn, arrays, wrt=None, key=0, fwd=FWD, grad=GRAD, node=True,
            modules=None):
    """Call ``d_fn`` on dtrain tensors and ``t_fn`` on torch tensors of the same ``arrays``;
    compare output, node name and the gradients of sum(out * upstream) with respect to the
    arrays listed in ``wrt`` (default: every float one) and, with ``modules=(dm, tm)``, every
    parameter; then the modules' buffers."""
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    d_in = [dtrain.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    t_in = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    d_out, t_out = d_fn(*d_in), t_fn(*t_in)
    _close(d_out, t_out, "output", **fwd)
    if node:
        assert _node(d_out) == _node(t_out), "grad_fn name"
    assert d_out.requires_grad == t_out.requires_grad
    if t_out.requires_grad:
        up = _rng(("up", key)).standard_normal(tuple(t_out.shape)).astype(np.float32)
        (t_out * torch.tensor(up)).sum().backward()
        (d_out * dtrain.tensor(up)).sum().backward()
        for i in wrt:
            np.testing.assert_allclose(_grad(d_in[i]), _grad(t_in[i]),
                                       err_msg=f"gradient of input {i}", **grad)
    if modules is not None:
        dm, tm = modules
        t_params = dict(tm.named_parameters())
        assert [n for n, _ in dm.named_parameters()] == list(t_params)
        for name, p in dm.named_parameters():
            assert (p.grad is None) == (t_params[name].grad is None), f"{name}.grad"
            if p.grad is not None:
                _close(p.grad, t_params[name].grad, f"gradient of {name}", **grad)
        t_buffers = dict(tm.named_buffers())
        assert [n for n, _ in dm.named_buffers()] == list(t_buffers)
        for name, b in dm.named_buffers():
            _close(b, t_buffers[name], f"buffer {name}", **FWD)
    return d_out, t_out


def check_module(torch, make, *arrays, train=True, init=None, **kw):
    """Build ``make(dtrain.nn)`` and ``make(torch.nn)`` with dtrain's values in both, then
    ``compare`` them on ``arrays``."""
    dm, tm = make(nn), make(torch.nn)
    if init is not None:
        init(dm)
    sync(torch, dm, tm)
    dm.train(train)
    tm.train(train)
    return compare(torch, dm, tm, arrays, modules=(dm, tm), **kw)


def _randomize(key):
    """An ``init`` that gives every float parameter random values (BatchNorm's are 1 and 0)."""
    def init(module):
        with dtrain.no_grad():
            for name, p in module.named_parameters():
                p.copy_(dtrain.tensor(_randn((key, name), *p.shape) * 0.5 + 1))
    return init


# --- Linear, Conv2d, pooling, Flatten, Identity --------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7), (2, 2, 3, 7)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(torch, shape, bias):
    check_module(torch, lambda nn: nn.Linear(7, 4, bias=bias), _randn(shape, *shape), key=shape)


def test_linear_node_of_1d_input(torch):
    check_module(torch, lambda nn: nn.Linear(7, 4), _randn("1d", 7))


def test_linear_node_of_noncontiguous_3d_input(torch):
    dm, tm = nn.Linear(7, 4), torch.nn.Linear(7, 4)
    sync(torch, dm, tm)
    compare(torch, lambda x: dm(x.transpose(1, 2)), lambda x: tm(x.transpose(1, 2)),
            [_randn("nc", 2, 7, 3)], modules=(dm, tm))


CONVS = [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=3, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=1),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding="same", dilation=2, groups=2,
         bias=False),
    dict(in_channels=4, out_channels=8, kernel_size=2, padding="same", groups=4),
    dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding="valid",
         dilation=(1, 2), bias=False),
    dict(in_channels=4, out_channels=6, kernel_size=(1, 3), padding=(0, 2), groups=2),
]


@pytest.mark.parametrize("kw", CONVS, ids=str)
def test_conv2d(torch, kw):
    shape = (2, kw["in_channels"], 7, 8)
    check_module(torch, lambda nn: nn.Conv2d(**kw), _randn(kw, *shape), key=kw, fwd=FWD_SUM)


POOLS = [
    lambda nn: nn.MaxPool2d(2),
    lambda nn: nn.MaxPool2d(3, stride=2, padding=1),
    lambda nn: nn.MaxPool2d((2, 3), stride=(1, 2), dilation=(2, 1), ceil_mode=True),
    lambda nn: nn.AvgPool2d(2),
    lambda nn: nn.AvgPool2d(3, stride=2, padding=1),
    lambda nn: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
    lambda nn: nn.AdaptiveAvgPool2d(1),
    lambda nn: nn.AdaptiveAvgPool2d((3, 2)),
    lambda nn: nn.AdaptiveAvgPool2d((None, 3)),
    lambda nn: nn.AdaptiveMaxPool2d((3, 2)),
    lambda nn: nn.AdaptiveMaxPool2d(1),
]


@pytest.mark.parametrize("i", range(len(POOLS)))
def test_pool(torch, i):
    check_module(torch, POOLS[i], _distinct(i, 2, 3, 7, 8), key=i)


@pytest.mark.parametrize("args", [(), (0,), (1, 2), (2, -1), (0, -2)], ids=str)
def test_flatten(torch, args):
    check_module(torch, lambda nn: nn.Flatten(*args), _randn(args, 2, 3, 4, 5))


def test_unflatten(torch):
    check_module(torch, lambda nn: nn.Unflatten(1, (3, 4)), _randn("u", 2, 12, 5))
    check_module(torch, lambda nn: nn.Unflatten(-1, (2, -1)), _randn("u", 2, 12))


def test_identity(torch):
    x = dtrain.randn(3, 4)
    assert nn.Identity(54, unused="x")(x) is x
    check_module(torch, lambda nn: nn.Identity(54, unused="x"), _randn("id", 3, 4))


# --- activations ---------------------------------------------------------------------------------
ACTIVATIONS = [
    lambda nn: nn.ReLU(),
    lambda nn: nn.LeakyReLU(),
    lambda nn: nn.LeakyReLU(0.2),
    lambda nn: nn.Sigmoid(),
    lambda nn: nn.Tanh(),
    lambda nn: nn.GELU(),
    lambda nn: nn.GELU(approximate="tanh"),
    lambda nn: nn.Softmax(dim=1),
    lambda nn: nn.Softmax(dim=0),
    lambda nn: nn.LogSoftmax(dim=-1),
    lambda nn: nn.LogSoftmax(dim=1),
]


@pytest.mark.parametrize("i", range(len(ACTIVATIONS)))
def test_activation(torch, i):
    check_module(torch, ACTIVATIONS[i], _randn(i, 4, 5, 3) * 3, key=i)


def test_gelu_large_inputs(torch):
    x = np.array([-40, -10, -5, -1e-3, 0, 1e-3, 5, 10, 40], np.float32)
    for approximate in ("none", "tanh"):
        check_module(torch, lambda nn: nn.GELU(approximate), x)


def test_softmax_implicit_dim(torch):
    for shape in [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)]:
        for cls, name in (("Softmax", "softmax"), ("LogSoftmax", "log_softmax")):
            for lib in (dtrain, torch):
                with pytest.warns(UserWarning, match=f"Implicit dimension choice for {name} "):
                    getattr(lib.nn, cls)()(lib.randn(*shape))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check_module(torch, lambda nn: getattr(nn, cls)(), _randn(shape, *shape))


@pytest.mark.parametrize("make", [lambda nn: nn.ReLU(inplace=True),
                                  lambda nn: nn.LeakyReLU(0.1, inplace=True)],
                         ids=["relu", "leaky_relu"])
def test_activation_inplace_on_non_leaf(torch, make):
    arr = _randn("inplace", 4, 5)
    up = _randn("inplace-up", 4, 5)
    results = []
    for lib in (dtrain, torch):
        x = lib.tensor(arr, requires_grad=True)
        h = x * 2
        out = make(lib.nn)(h)
        assert out is h, "inplace returns its input"
        assert h._version == 1
        (out * lib.tensor(up)).sum().backward()
        results.append((out, _node(out), x.grad))
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
            make(lib.nn)(x)
    (d_out, d_node, d_grad), (t_out, t_node, t_grad) = results
    _close(d_out, t_out, "output", **FWD)
    assert d_node == t_node
    _close(d_grad, t_grad, "gradient", **GRAD)


# --- dropout -------------------------------------------------------------------------------------
def test_dropout_p0_and_p1(torch):
    arr = _randn("drop", 6, 7)
    compare(torch, nn.Dropout(0.0), torch.nn.Dropout(0.0), [arr], node=False)
    for lib in (dtrain, torch):
        x = lib.tensor(arr, requires_grad=True)
        assert lib.nn.Dropout(0.0)(x) is x  # torch returns the input itself
    compare(torch, nn.Dropout(1.0), torch.nn.Dropout(1.0), [arr])
    compare(torch, lambda x: F.dropout(x, 1.0), lambda x: torch.nn.functional.dropout(x, 1.0),
            [arr])


def test_dropout_keep_rate_and_scaling():
    dtrain.manual_seed(0)
    n, p = 200_000, 0.3
    x = dtrain.ones(n, requires_grad=True)
    out = nn.Dropout(p)(x)
    assert _node(out) == "MulBackward0"
    kept = out.detach().numpy() != 0
    # keep rate within 5 standard deviations of 1 - p
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out.detach().numpy()[kept], 1 / (1 - p), rtol=1e-6)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), out.detach().numpy())  # same mask
    again = nn.Dropout(p)(x).detach().numpy() != 0
    assert (again != kept).any(), "a fresh mask each call"


def test_dropout_inplace_and_eval(torch):
    dtrain.manual_seed(1)
    x = dtrain.ones(1000) * 1
    out = nn.Dropout(0.5, inplace=True)(x)
    assert out is x and (x.numpy() == 0).any()
    for lib in (dtrain, torch):
        x = lib.randn(4, 5, requires_grad=True)
        m = lib.nn.Dropout(0.5).eval()
        assert m(x) is x, "eval mode is the identity"
        assert lib.nn.functional.dropout(x, 0.5, training=False) is x
    for p in (-0.1, 1.1):
        for lib in (dtrain, torch):
            with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
                lib.nn.Dropout(p)


# --- normalisation -------------------------------------------------------------------------------
BN_SHAPES = [("BatchNorm1d", (8, 3)), ("BatchNorm1d", (4, 3, 5)), ("BatchNorm2d", (4, 3, 5, 6))]
BN_OPTIONS = [{}, {"momentum": None}, {"affine": False}, {"track_running_stats": False},
              {"momentum": 0.3, "eps": 1e-3}, {"bias": False}]


@pytest.mark.parametrize("cls, shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("kw", BN_OPTIONS, ids=str)
def test_batchnorm_steps(torch, cls, shape, kw):
    """Several training steps (running stats and num_batches_tracked as torch's), then eval."""
    dm, tm = getattr(nn, cls)(3, **kw), getattr(torch.nn, cls)(3, **kw)
    _randomize(cls)(dm)
    sync(torch, dm, tm)
    for step in range(3):
        x = _randn((cls, kw, step), *shape) * (step + 1) + step
        compare(torch, dm, tm, [x], modules=(dm, tm), key=step, fwd=FWD_SUM)
    dm.eval()
    tm.eval()
    x = _randn((cls, kw, "eval"), *shape) * 2 - 1
    compare(torch, dm, tm, [x], modules=(dm, tm), key="eval", fwd=FWD_SUM)
    if kw.get("track_running_stats", True):
        assert int(dm.num_batches_tracked) == 3


@pytest.mark.parametrize("cls, shape", BN_SHAPES, ids=str)
def test_batchnorm_eval_with_running_stats(torch, cls, shape):
    def init(m):
        _randomize(cls)(m)
        m.running_mean.copy_(dtrain.tensor(_randn("rm", 3)))
        m.running_var.copy_(dtrain.tensor(np.abs(_randn("rv", 3)) + 0.5))
    check_module(torch, lambda nn: getattr(nn, cls)(3), _randn(cls, *shape), train=False,
                 init=init)


def test_batchnorm_errors(torch):
    for lib in (dtrain, torch):
        with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
            lib.nn.BatchNorm1d(3)(lib.randn(2, 3, 4, 5))
        with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
            lib.nn.BatchNorm2d(3)(lib.randn(2, 3, 4))
        with pytest.raises(ValueError, match="Expected more than 1 value per channel when "
                                             "training"):
            lib.nn.BatchNorm1d(3)(lib.randn(1, 3))
        lib.nn.BatchNorm1d(3).eval()(lib.randn(1, 3))  # fine in eval


LAYER_NORMS = [
    (lambda nn: nn.LayerNorm(6), (4, 6)),
    (lambda nn: nn.LayerNorm(6), (2, 3, 6)),
    (lambda nn: nn.LayerNorm((3, 6)), (2, 3, 6)),
    (lambda nn: nn.LayerNorm([3, 6], elementwise_affine=False), (2, 3, 6)),
    (lambda nn: nn.LayerNorm(6, bias=False), (4, 6)),
    (lambda nn: nn.LayerNorm(6, eps=1e-2), (4, 6)),
]


@pytest.mark.parametrize("i", range(len(LAYER_NORMS)))
def test_layer_norm(torch, i):
    make, shape = LAYER_NORMS[i]
    check_module(torch, make, _randn(i, *shape) * 3 + 1, init=_randomize(i), key=i)


# --- embedding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0, 4, -1])
def test_embedding(torch, padding_idx):
    idx = np.array([[1, 2, 4, 0], [4, 3, 2, 9], [9, 9, 1, 0]])
    d_out, _ = check_module(torch, lambda nn: nn.Embedding(10, 3, padding_idx=padding_idx),
                            idx, key=padding_idx)
    if padding_idx is not None:
        m = nn.Embedding(10, 3, padding_idx=padding_idx)
        row = padding_idx % 10
        assert not m.weight[row].detach().numpy().any(), "padding row starts at zero"
        m(dtrain.tensor(idx)).sum().backward()
        assert not m.weight.grad[row].numpy().any(), "padding row gets no gradient"
        assert m.weight.grad.numpy().any()


def test_embedding_from_pretrained(torch):
    w = _randn("pretrained", 5, 3)
    idx = np.array([0, 4, 2, 2])
    for freeze in (True, False):
        for padding_idx in (None, 2):
            kw = dict(freeze=freeze, padding_idx=padding_idx)
            dm = nn.Embedding.from_pretrained(dtrain.tensor(w), **kw)
            tm = torch.nn.Embedding.from_pretrained(torch.tensor(w), **kw)
            assert dm.weight.requires_grad == tm.weight.requires_grad == (not freeze)
            assert repr(dm) == repr(tm)
            compare(torch, dm, tm, [idx], modules=(dm, tm))
            np.testing.assert_array_equal(dm.weight.detach().numpy(), w)


# --- losses --------------------------------------------------------------------------------------
def _targets(key, n_classes, *shape, ignore=None):
    t = _rng(key).integers(0, n_classes, shape)
    if ignore is not None:
        t.reshape(-1)[::3] = ignore
    return t


def _probs(key, *shape, dim=1):
    e = np.exp(_randn(key, *shape))
    return (e / e.sum(axis=dim if len(shape) > 1 else 0, keepdims=True)).astype(np.float32)


W5 = np.array([0.5, 2.0, 1.0, 0.25, 3.0], np.float32)

CE_CASES = [  # (name, kwargs, input shape, target: "idx" / "prob", ignore value in target)
    ("idx", {}, (6, 5), "idx", None),
    ("idx-none", {"reduction": "none"}, (6, 5), "idx", None),
    ("idx-sum", {"reduction": "sum"}, (6, 5), "idx", None),
    ("weight", {"weight": W5}, (6, 5), "idx", None),
    ("weight-none", {"weight": W5, "reduction": "none"}, (6, 5), "idx", None),
    ("ignore-default", {}, (6, 5), "idx", -100),
    ("ignore", {"ignore_index": 2, "weight": W5}, (6, 5), "idx", 2),
    ("ignore-sum", {"ignore_index": -1, "reduction": "sum"}, (6, 5), "idx", -1),
    ("smooth", {"label_smoothing": 0.1}, (6, 5), "idx", None),
    ("smooth-all", {"label_smoothing": 0.2, "weight": W5, "ignore_index": 1}, (6, 5), "idx", 1),
    ("smooth-all-none", {"label_smoothing": 0.2, "weight": W5, "ignore_index": 1,
                         "reduction": "none"}, (6, 5), "idx", 1),
    ("smooth-all-sum", {"label_smoothing": 0.2, "weight": W5, "ignore_index": 1,
                        "reduction": "sum"}, (6, 5), "idx", 1),
    ("prob", {}, (6, 5), "prob", None),
    ("prob-none", {"reduction": "none"}, (6, 5), "prob", None),
    ("prob-sum", {"reduction": "sum"}, (6, 5), "prob", None),
    ("prob-weight-smooth", {"weight": W5, "label_smoothing": 0.3}, (6, 5), "prob", None),
    ("nchw", {}, (2, 5, 3, 4), "idx", None),
    ("nchw-all", {"weight": W5, "ignore_index": 3, "label_smoothing": 0.1}, (2, 5, 3, 4), "idx",
     3),
    ("nchw-none", {"reduction": "none"}, (2, 5, 3, 4), "idx", None),
    ("nchw-prob", {}, (2, 5, 3, 4), "prob", None),
    ("nchw-prob-weight", {"weight": W5, "label_smoothing": 0.1}, (2, 5, 3, 4), "prob", None),
    ("ncl", {"weight": W5}, (2, 5, 7), "idx", None),
    ("ncl-none", {"reduction": "none"}, (2, 5, 7), "idx", None),
    ("1d", {}, (5,), "idx", None),
    ("1d-smooth-weight", {"label_smoothing": 0.2, "weight": W5}, (5,), "idx", None),
    ("1d-prob", {}, (5,), "prob", None),
    ("1d-none", {"reduction": "none"}, (5,), "idx", None),
]


def _loss_forms(name, kw):
    """The module form and the functional form of loss ``name`` with keyword args ``kw``."""
    module = {"cross_entropy": "CrossEntropyLoss", "nll_loss": "NLLLoss", "mse_loss": "MSELoss",
              "l1_loss": "L1Loss", "binary_cross_entropy": "BCELoss",
              "binary_cross_entropy_with_logits": "BCEWithLogitsLoss"}[name]
    return {
        "module": lambda lib: getattr(lib.nn, module)(**_lib_args(lib, kw)),
        "functional": lambda lib: (lambda *a: getattr(lib.nn.functional, name)(
            *a, **_lib_args(lib, kw))),
    }


def compare_loss(torch, name, kw, arrays, form, **options):
    make = _loss_forms(name, kw)[form]
    return compare(torch, make(dtrain), make(torch), arrays, **options)


@pytest.mark.parametrize("form", ["module", "functional"])
@pytest.mark.parametrize("case", CE_CASES, ids=lambda c: c[0])
def test_cross_entropy(torch, case, form):
    name, kw, shape, kind, ignore = case
    x = _randn(name, *shape) * 2
    tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    if kind == "idx":
        target = _targets(name, 5, *tshape, ignore=ignore)
    else:
        target = _probs(name + "t", *shape)
    compare_loss(torch, "cross_entropy", kw, [x, target], form, wrt=[0], key=name)


NLL_CASES = [
    ("mean", {}, (6, 5), None),
    ("none", {"reduction": "none"}, (6, 5), None),
    ("sum", {"reduction": "sum"}, (6, 5), None),
    ("weight", {"weight": W5}, (6, 5), None),
    ("weight-ignore", {"weight": W5, "ignore_index": 0}, (6, 5), 0),
    ("ignore-none", {"ignore_index": -100, "reduction": "none"}, (6, 5), -100),
    ("ncl", {}, (2, 5, 7), None),
    ("ncl-none", {"reduction": "none"}, (2, 5, 7), None),
    ("nchw", {"weight": W5}, (2, 5, 3, 4), None),
    ("nchw-none", {"reduction": "none", "ignore_index": 4}, (2, 5, 3, 4), 4),
    ("ncdhw", {}, (2, 5, 3, 2, 2), None),
    ("1d", {}, (5,), None),
]


@pytest.mark.parametrize("form", ["module", "functional"])
@pytest.mark.parametrize("case", NLL_CASES, ids=lambda c: c[0])
def test_nll_loss(torch, case, form):
    name, kw, shape, ignore = case
    x = _randn(name, *shape)
    target = _targets(name, 5, *(shape[:1] + shape[2:] if len(shape) > 1 else ()),
                      ignore=ignore)
    compare_loss(torch, "nll_loss", kw, [x, target], form, key=name)


DEGENERATE = [  # nan or empty results: the value and the gradient must still be torch's
    lambda lib, F, x: F.nll_loss(x, lib.tensor([-100, -100, -100])),
    lambda lib, F, x: F.cross_entropy(x, lib.tensor([-100, -100, -100])),
    lambda lib, F, x: F.cross_entropy(x, lib.tensor([-100, -100, -100]), label_smoothing=0.1),
    lambda lib, F, x: F.cross_entropy(x, lib.tensor([1, 2, -100]), weight=lib.tensor(
        [1.0, 0.0, 1.0, 1.0])),
    lambda lib, F, x: F.cross_entropy(x[:0], lib.tensor([], dtype=lib.int64)),
    lambda lib, F, x: F.cross_entropy(x[:0], lib.zeros(0, 4)),
    lambda lib, F, x: F.mse_loss(x[:0], x[:0].detach()),
    lambda lib, F, x: F.l1_loss(x[:0], x[:0].detach(), reduction="sum"),
    lambda lib, F, x: F.binary_cross_entropy(x[:0].sigmoid(), x[:0].detach()),
    lambda lib, F, x: F.binary_cross_entropy_with_logits(x[:0], x[:0].detach()),
]


@pytest.mark.parametrize("i", range(len(DEGENERATE)))
def test_degenerate_losses(torch, i):
    arr = _randn("degenerate", 3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy noise either
        compare(torch, lambda x: DEGENERATE[i](dtrain, F, x),
                lambda x: DEGENERATE[i](torch, torch.nn.functional, x), [arr], node=False)


@pytest.mark.parametrize("form", ["module", "functional"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_regression_losses(torch, name, reduction, form):
    x, y = _randn(name, 4, 5), _randn(name + "y", 4, 5)
    compare_loss(torch, name, {"reduction": reduction}, [x, y], form, key=name)
    # broadcasting target: torch warns and broadcasts
    y = _randn(name + "b", 5)
    with pytest.warns(UserWarning, match="Using a target size"):
        compare_loss(torch, name, {"reduction": reduction}, [x, y], form, key=name)


def _bce_arrays(key):
    p = 1 / (1 + np.exp(-_randn(key, 4, 5) * 2))
    p.reshape(-1)[:4] = [0.0, 1.0, 0.0, 1.0]
    y = _rng(key).uniform(0, 1, (4, 5)).astype(np.float32)
    y.reshape(-1)[:6] = [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    return p.astype(np.float32), y


@pytest.mark.parametrize("form", ["module", "functional"])
@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                {"weight": _randn("bw", 4, 5) ** 2},
                                {"weight": _randn("bw", 5) ** 2, "reduction": "sum"}],
                         ids=["mean", "sum", "none", "weight", "weight-row-sum"])
def test_bce(torch, kw, form):
    p, y = _bce_arrays("bce")
    compare_loss(torch, "binary_cross_entropy", kw, [p, y], form, wrt=[0])
    # and the gradient w.r.t. the target, away from p = 0 and 1
    p, y = p[1:], y[1:]
    kw = {k: v[1:] if isinstance(v, np.ndarray) and v.ndim == 2 else v for k, v in kw.items()}
    compare_loss(torch, "binary_cross_entropy", kw, [p, y], form, wrt=[0, 1])


@pytest.mark.parametrize("form", ["module", "functional"])
@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                {"weight": _randn("lw", 4, 5) ** 2},
                                {"pos_weight": np.array([0.5, 1, 2, 3, 4], np.float32)},
                                {"weight": _randn("lw", 5) ** 2, "reduction": "sum",
                                 "pos_weight": np.array([0.5, 1, 2, 3, 4], np.float32)}],
                         ids=["mean", "sum", "none", "weight", "pos_weight", "both-sum"])
def test_bce_with_logits(torch, kw, form):
    x = _randn("logits", 4, 5) * 3
    x.reshape(-1)[:6] = [100.0, -100.0, 1e4, -1e4, 88.0, -88.0]  # large logits stay finite
    y = _rng("y").uniform(0, 1, (4, 5)).astype(np.float32)
    y.reshape(-1)[:4] = [0.0, 1.0, 1.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings from numpy
        compare_loss(torch, "binary_cross_entropy_with_logits", kw, [x, y], form, wrt=[0, 1])


ERRORS = [  # the same wrong call in both libraries must raise the same error
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.tensor([0, 1, 2]), reduction="avg"),
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.tensor([0, 1])),
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.tensor([0, 1, 7])),
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.tensor([0, 1, 2]), label_smoothing=1.5),
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.zeros(3, 4, dtype=lib.int64)),
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.rand(3, 4), ignore_index=1),
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.rand(3)),
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.tensor([0, 1, 2]), weight=lib.ones(3)),
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.rand(3, 4), weight=lib.ones(3)),
    lambda lib, F: F.cross_entropy(lib.randn(3, 4), lib.tensor([0, 1, 2], dtype=lib.int32)),
    lambda lib, F: F.nll_loss(lib.randn(3, 4), lib.tensor([0, 1, 2]), reduction="avg"),
    lambda lib, F: F.nll_loss(lib.randn(3, 4), lib.tensor([0, 1])),
    lambda lib, F: F.nll_loss(lib.randn(3, 4), lib.tensor([0, 1, -1])),
    lambda lib, F: F.nll_loss(lib.randn(3, 4, 2), lib.tensor([0, 1, 2])),
    lambda lib, F: F.nll_loss(lib.randn(3, 4, 2, 2), lib.tensor([0, 1, 2])),
    lambda lib, F: F.nll_loss(lib.randn(3, 4, 2, 2), lib.zeros(3, 2, 3, dtype=lib.int64)),
    lambda lib, F: F.nll_loss(lib.randn(3, 4, 2, 2, 2), lib.zeros(3, 2, 3, dtype=lib.int64)),
    lambda lib, F: F.nll_loss(lib.randn(3, 4), lib.rand(3)),
    lambda lib, F: F.nll_loss(lib.randn(4), lib.tensor([1, 2])),
    lambda lib, F: F.mse_loss(lib.randn(3, 4), lib.randn(3, 4), reduction="avg"),
    lambda lib, F: F.l1_loss(lib.randn(3, 4), lib.randn(3, 4), reduction="avg"),
    lambda lib, F: F.binary_cross_entropy(lib.rand(3), lib.rand(3), reduction="avg"),
    lambda lib, F: F.binary_cross_entropy(lib.rand(3, 1), lib.rand(3)),
    lambda lib, F: F.binary_cross_entropy(lib.tensor([0.5, 1.5]), lib.tensor([0., 1.])),
    lambda lib, F: F.binary_cross_entropy_with_logits(lib.rand(3), lib.rand(3, 1)),
    lambda lib, F: F.binary_cross_entropy_with_logits(lib.rand(3), lib.rand(3), reduction="x"),
    lambda lib, F: F.layer_norm(lib.rand(3, 4), (5,)),
    lambda lib, F: F.layer_norm(lib.rand(3, 4), (4,), lib.ones(3)),
    lambda lib, F: F.layer_norm(lib.rand(3, 4), (4,), None, lib.ones(3)),
    lambda lib, F: F.batch_norm(lib.rand(3, 4), None, None),
    lambda lib, F: F.batch_norm(lib.rand(3, 4), lib.zeros(4), None),
    lambda lib, F: F.batch_norm(lib.rand(3, 4), lib.zeros(3), lib.ones(3)),
    lambda lib, F: F.batch_norm(lib.rand(3, 4), lib.zeros(4), lib.ones(3), training=True),
    lambda lib, F: F.batch_norm(lib.rand(3, 4), lib.zeros(4), lib.ones(4), lib.ones(3)),
    lambda lib, F: F.gelu(lib.rand(3), approximate="x"),
    lambda lib, F: F.dropout(lib.rand(3), 2),
    lambda lib, F: F.leaky_relu(lib.rand(3, requires_grad=True), inplace=True),
]


@pytest.mark.parametrize("i", range(len(ERRORS)))
def test_errors(torch, i):
    def err(lib):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(Exception) as e:
                ERRORS[i](lib, lib.nn.functional)
        return type(e.value).__name__, str(e.value).replace("torch", "dtrain")
    assert err(dtrain) == err(torch)


def test_legacy_reduction_arguments(torch):
    x, t = _randn("legacy", 4, 3), np.array([0, 2, 1, 1])
    for kw in ({"size_average": False}, {"reduce": False}, {"size_average": True}):
        for form in ("module", "functional"):
            with pytest.warns(UserWarning, match="size_average and reduce args will be "
                                                 "deprecated"):
                compare_loss(torch, "cross_entropy", kw, [x, t], form)


# --- functional forms: grad_fn names and values --------------------------------------------------
FUNCTIONAL = [  # (id, call(lib, F, *tensors), arrays)
    ("linear", lambda lib, F, x, w, b: F.linear(x, w, b), [(5, 7), (4, 7), (4,)]),
    ("linear-nobias", lambda lib, F, x, w: F.linear(x, w), [(5, 7), (4, 7)]),
    ("linear-3d", lambda lib, F, x, w, b: F.linear(x, w, b), [(2, 5, 7), (4, 7), (4,)]),
    ("relu", lambda lib, F, x: F.relu(x), [(4, 5)]),
    ("leaky_relu", lambda lib, F, x: F.leaky_relu(x, 0.3), [(4, 5)]),
    ("gelu", lambda lib, F, x: F.gelu(x), [(4, 5)]),
    ("gelu-tanh", lambda lib, F, x: F.gelu(x, approximate="tanh"), [(4, 5)]),
    ("sigmoid", lambda lib, F, x: F.sigmoid(x), [(4, 5)]),
    ("tanh", lambda lib, F, x: F.tanh(x), [(4, 5)]),
    ("softmax", lambda lib, F, x: F.softmax(x, dim=-1), [(4, 5)]),
    ("log_softmax", lambda lib, F, x: F.log_softmax(x, 0), [(4, 5)]),
    ("softmax-dtype", lambda lib, F, x: F.softmax(x, 1, dtype=lib.float64), [(4, 5)]),
    ("batch_norm-train", lambda lib, F, x, w, b: F.batch_norm(
        x, lib.zeros(3), lib.ones(3), w, b, training=True), [(4, 3, 2), (3,), (3,)]),
    ("batch_norm-nostats", lambda lib, F, x: F.batch_norm(x, None, None, training=True),
     [(4, 3)]),
    ("batch_norm-eval", lambda lib, F, x, w, b: F.batch_norm(
        x, lib.tensor([0.5, -1.0, 2.0]), lib.tensor([1.5, 0.5, 2.0]), w, b), [(4, 3), (3,), (3,)]),
    ("layer_norm", lambda lib, F, x, w, b: F.layer_norm(x, (5,), w, b, eps=1e-3),
     [(4, 5), (5,), (5,)]),
    ("layer_norm-2d", lambda lib, F, x: F.layer_norm(x, [3, 5]), [(2, 3, 5)]),
    ("embedding", lambda lib, F, w: F.embedding(lib.tensor([[1, 2], [2, 0]]), w, padding_idx=0),
     [(4, 3)]),
    ("dropout-eval", lambda lib, F, x: F.dropout(x, 0.5, training=False), [(4, 5)]),
    ("flatten", lambda lib, F, x: lib.flatten(x, 1), [(2, 3, 4)]),
]


@pytest.mark.parametrize("case", FUNCTIONAL, ids=lambda c: c[0])
def test_functional(torch, case):
    name, call, shapes = case
    arrays = [_randn((name, i), *s) for i, s in enumerate(shapes)]
    compare(torch, lambda *a: call(dtrain, F, *a), lambda *a: call(torch, torch.nn.functional, *a),
            arrays, key=name)


def test_functional_names():
    for name in ["adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits", "conv2d", "cross_entropy", "dropout",
                 "embedding", "gelu", "l1_loss", "layer_norm", "leaky_relu", "linear",
                 "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "relu", "sigmoid",
                 "softmax", "tanh"]:
        assert callable(getattr(F, name)), name


# --- finite differences in float64, no torch -----------------------------------------------------
EPS = 1e-6
TOL = 1e-6


def check_vjp(fn, *arrays, key=0):
    """<vjp(v), d> against the central difference of <fn(x), v> along d (float64)."""
    rng = _rng(("vjp", key))
    arrays = [np.asarray(a, np.float64) for a in arrays]
    xs = [dtrain.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*xs)
    assert out.dtype == dtrain.float64, "float64 in, float64 out"
    v = rng.standard_normal(tuple(out.shape))
    out.backward(dtrain.tensor(v))
    assert all(x.grad is not None for x in xs), "every input gets a gradient"
    ds = [rng.standard_normal(a.shape) for a in arrays]
    exact = sum(float(np.sum(x.grad.numpy() * d)) for x, d in zip(xs, ds))

    def inner(step):  # <fn(x + step * d), v>
        with dtrain.no_grad():
            o = fn(*[dtrain.tensor(a + step * d) for a, d in zip(arrays, ds)])
        return float(np.sum(o.numpy() * v))

    numeric = (inner(EPS) - inner(-EPS)) / (2 * EPS)
    err = abs(exact - numeric)
    assert err < TOL or err / abs(exact + numeric) < TOL, f"vjp {exact!r} vs fd {numeric!r}"


def _r64(key, *shape):
    return _rng(key).standard_normal(shape)


def _away_from_zero(key, *shape):
    x = _r64(key, *shape)
    return np.where(np.abs(x) < 0.1, 0.5, x)


def _dropout_fixed_mask(x):
    dtrain.manual_seed(3)  # the same mask on every call
    return F.dropout(x, 0.4)


_T6 = _targets("t6", 5, 6, ignore=2)
_T_NCHW = _targets("tn", 5, 2, 3, 4)
_W5 = dtrain.tensor(W5.astype(np.float64))
_RM, _RV = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.5, 2.0])

VJP_CASES = [  # (id, fn(*tensors), arrays)
    ("batch_norm-train-2d", lambda x, w, b: F.batch_norm(
        x, dtrain.zeros(3, dtype=dtrain.float64), dtrain.ones(3, dtype=dtrain.float64), w, b,
        training=True), [_r64(1, 6, 3), _r64(2, 3), _r64(3, 3)]),
    ("batch_norm-train-3d", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
     [_r64(1, 4, 3, 5), _r64(2, 3), _r64(3, 3)]),
    ("batch_norm-train-4d-noaffine", lambda x: F.batch_norm(x, None, None, training=True,
                                                            eps=1e-3), [_r64(1, 3, 2, 4, 5)]),
    ("batch_norm-eval", lambda x, w, b: F.batch_norm(
        x, dtrain.tensor(_RM), dtrain.tensor(_RV), w, b), [_r64(1, 4, 3, 2), _r64(2, 3),
                                                           _r64(3, 3)]),
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (5,), w, b), [_r64(1, 4, 5), _r64(2, 5),
                                                                _r64(3, 5)]),
    ("layer_norm-2d", lambda x, w, b: F.layer_norm(x, (3, 5), w, b),
     [_r64(1, 2, 3, 5), _r64(2, 3, 5), _r64(3, 3, 5)]),
    ("layer_norm-noaffine", lambda x: F.layer_norm(x, [5]), [_r64(1, 2, 3, 5)]),
    ("gelu", lambda x: F.gelu(x), [_r64(1, 4, 5) * 3]),
    ("gelu-tanh", lambda x: F.gelu(x, approximate="tanh"), [_r64(1, 4, 5) * 3]),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), [_away_from_zero(1, 4, 5)]),
    ("dropout", _dropout_fixed_mask, [_r64(1, 4, 5)]),
    ("linear", lambda x, w, b: F.linear(x, w, b), [_r64(1, 5, 7), _r64(2, 4, 7), _r64(3, 4)]),
    ("linear-3d", lambda x, w, b: F.linear(x, w, b), [_r64(1, 2, 5, 7), _r64(2, 4, 7),
                                                      _r64(3, 4)]),
    ("linear-nobias", lambda x, w: F.linear(x, w), [_r64(1, 2, 5, 7), _r64(2, 4, 7)]),
    ("embedding", lambda w: F.embedding(dtrain.tensor([[1, 2, 2], [0, 3, 1]]), w),
     [_r64(1, 4, 3)]),
    ("cross_entropy", lambda x: F.cross_entropy(x, dtrain.tensor(_T6)), [_r64(1, 6, 5)]),
    ("cross_entropy-all", lambda x: F.cross_entropy(
        x, dtrain.tensor(_T6), weight=_W5, ignore_index=2, label_smoothing=0.2), [_r64(1, 6, 5)]),
    ("cross_entropy-nchw", lambda x: F.cross_entropy(
        x, dtrain.tensor(_T_NCHW), weight=_W5, label_smoothing=0.1, reduction="sum"),
     [_r64(1, 2, 5, 3, 4)]),
    ("cross_entropy-prob", lambda x, p: F.cross_entropy(x, p.softmax(1), weight=_W5,
                                                        label_smoothing=0.1),
     [_r64(1, 2, 5, 3, 4), _r64(2, 2, 5, 3, 4)]),
    ("nll_loss", lambda x: F.nll_loss(x, dtrain.tensor(_T6), weight=_W5, ignore_index=2),
     [_r64(1, 6, 5)]),
    ("nll_loss-nchw", lambda x: F.nll_loss(x, dtrain.tensor(_T_NCHW), reduction="none"),
     [_r64(1, 2, 5, 3, 4)]),
    ("mse_loss", lambda x, y: F.mse_loss(x, y), [_r64(1, 4, 5), _r64(2, 4, 5)]),
    ("mse_loss-sum", lambda x, y: F.mse_loss(x, y, reduction="sum"), [_r64(1, 4, 5),
                                                                       _r64(2, 4, 5)]),
    ("l1_loss", lambda x: F.l1_loss(x, dtrain.zeros(4, 5, dtype=dtrain.float64)),
     [_away_from_zero(1, 4, 5)]),
    ("bce", lambda z, y: F.binary_cross_entropy(z.sigmoid(), y.sigmoid(),
                                                weight=dtrain.tensor(_r64(3, 5) ** 2)),
     [_r64(1, 4, 5), _r64(2, 4, 5)]),
    ("bce-sum", lambda z, y: F.binary_cross_entropy(z.sigmoid(), y.sigmoid(), reduction="sum"),
     [_r64(1, 4, 5), _r64(2, 4, 5)]),
    ("bce_with_logits", lambda x, y: F.binary_cross_entropy_with_logits(
        x * 3, y.sigmoid(), weight=dtrain.tensor(_r64(3, 4, 5) ** 2),
        pos_weight=dtrain.tensor(np.abs(_r64(4, 5)))), [_r64(1, 4, 5), _r64(2, 4, 5)]),
    ("bce_with_logits-none", lambda x, y: F.binary_cross_entropy_with_logits(
        x * 3, y.sigmoid(), reduction="none"), [_r64(1, 4, 5), _r64(2, 4, 5)]),
]


@pytest.mark.parametrize("case", VJP_CASES, ids=lambda c: c[0])
def test_vjp(case):
    name, fn, arrays = case
    check_vjp(fn, *arrays, key=name)
