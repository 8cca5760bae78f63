"""The code of the seed blog post "Basic of Pytorch" (shared/seed/000_a925350ab61c94e8.txt),
sections 3 (Network), 4 (Optimizer) and 7 (state_dict vs parameters), run with `torch`
replaced by the library under test.

Conventions as in tests/test_seed.py: snippets are kept verbatim as strings and exec'd after
replacing the word "torch" with the library's name; every test runs with dtrain and with torch
(skipped when torch is not installed). Where a snippet is broken in torch too
(`torch.nn.Functional`, `F.Conv2d`, placeholders such as `in_channels`/`params`/`self` left
undefined, a `*` in a call, a stray colon), the test asserts that the library fails the same
way (same exception type), and a second test runs what the snippet evidently meant. Tests
taking the `torch` fixture build the same architecture in both libraries and compare shapes,
parameter counts, state_dict keys and (with torch's weights copied over) outputs and gradients.

Section 4's numpy optimizers (SGD, Momentum, AdaGrad, RMSprop, Adam) are the post's code,
verbatim; they are compared with lib.optim step by step. Where the formulas are the same (SGD;
Momentum vs SGD(momentum); AdaGrad / RMSprop with eps=1e-7) the trajectories must agree to
float64 rounding; where they differ (the optimizers' default eps; Adam's "efficient" form, whose
1e-7 is added to the un-debiased sqrt(v)) the difference is derived in the comments and checked
exactly on a fixed ("teacher-forced") gradient sequence, and bounded on a real problem.
"""
import inspect
import textwrap

import numpy as np
import pytest

import dtrain
from helpers import npy, run


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def copy_weights(src, dst, lib):
    """Load src's (torch) state_dict into dst (lib), converting through numpy."""
    dst.load_state_dict({k: lib.tensor(npy(v)) for k, v in src.state_dict().items()})


# === 3.1 Import: nn vs nn.functional ==============================================================

SNIPPET_3_1_A = """\
import torch.nn as nn

loss = nn.CrossEntropyLoss()
input = torch.randn(3, 5, requires_grad=True)
target = torch.empty(3, dtype=torch.long).random_(5)
output = loss(input, target)
output.backward()

import torch.nn.functional as F

input = torch.randn(3, 5, requires_grad=True)
target = torch.randint(5, (3,), dtype=torch.int64)
loss = F.cross_entropy(input, target)
loss.backward()
"""


def _ce_reference(x, t):
    """numpy cross entropy (mean over the batch) and its gradient: (softmax - onehot) / N."""
    z = x - x.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    n = len(t)
    grad = np.exp(logp)
    grad[np.arange(n), t] -= 1
    return -logp[np.arange(n), t].mean(), grad / n


def test_3_1_cross_entropy_snippet(lib):
    # both halves run: nn.CrossEntropyLoss (a class, instantiated) and F.cross_entropy (a
    # function); the targets are int64 class indices in [0, 5)
    lib.manual_seed(0)
    ns = run(SNIPPET_3_1_A, lib)
    # the first half alone, to see its objects (the second half rebinds the names)
    ns1 = run(SNIPPET_3_1_A.split("import torch.nn.functional")[0], lib)
    for inp, tgt, out in [(ns1["input"], ns1["target"], ns1["output"]),
                          (ns["input"], ns["target"], ns["loss"])]:
        assert str(tgt.dtype).endswith("int64") and tuple(tgt.shape) == (3,)
        t = tgt.numpy()
        assert ((0 <= t) & (t < 5)).all()
        assert tuple(out.shape) == () and inp.grad is not None
        ref, gref = _ce_reference(npy(inp).astype(np.float64), t)
        np.testing.assert_allclose(out.item(), ref, rtol=1e-5)
        np.testing.assert_allclose(npy(inp.grad), gref, rtol=1e-5, atol=1e-7)
    assert isinstance(ns1["loss"], lib.nn.Module) and callable(ns["F"].cross_entropy)


def test_3_1_random_fills_with_integers_below_bound(lib):
    # `torch.empty(3, dtype=torch.long).random_(5)`: in place, uniform over 0..4
    lib.manual_seed(1)
    t = lib.empty(1000, dtype=lib.long)
    assert t.random_(5) is t
    assert sorted(set(t.tolist())) == [0, 1, 2, 3, 4]
    assert str(t.dtype).endswith("int64")


def test_3_1_nn_and_functional_are_the_same_computation(lib):
    # "성능 차이는 존재하지 않는다": the module and the function give the same loss and gradient
    lib.manual_seed(0)
    x = lib.randn(4, 6, requires_grad=True)
    t = lib.randint(6, (4,), dtype=lib.int64)
    a = lib.nn.CrossEntropyLoss()(x, t)
    (ga,) = lib.autograd.grad(a, x)
    b = lib.nn.functional.cross_entropy(x, t)
    (gb,) = lib.autograd.grad(b, x)
    assert a.item() == b.item()
    np.testing.assert_array_equal(npy(ga), npy(gb))


SNIPPET_3_1_B = """\
# class
torch.nn.Conv2d(in_channels,out_channels,kernel_size,stride=1,padding=0,dilation=1,groups=1,bias=True)
"""  # noqa: E501 - verbatim


def test_3_1_conv2d_signature_placeholders_are_undefined(lib):
    # in_channels etc. are placeholders: NameError as printed
    with pytest.raises(NameError, match="in_channels"):
        run(SNIPPET_3_1_B, lib)


def test_3_1_conv2d_signature(lib):
    # the documented signature, names and defaults, in this order
    params = list(inspect.signature(lib.nn.Conv2d).parameters.values())[:8]
    assert [(p.name, p.default) for p in params] == [
        ("in_channels", inspect._empty), ("out_channels", inspect._empty),
        ("kernel_size", inspect._empty), ("stride", 1), ("padding", 0), ("dilation", 1),
        ("groups", 1), ("bias", True)]
    # the line runs once the placeholders have values; the defaults are the documented ones
    ns = run(SNIPPET_3_1_B.replace("torch.nn.Conv2d", "conv = torch.nn.Conv2d"), lib,
             in_channels=4, out_channels=6, kernel_size=3)
    conv = ns["conv"]
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((1, 1), (0, 0), (1, 1), 1)
    assert tuple(conv.weight.shape) == (6, 4, 3, 3) and tuple(conv.bias.shape) == (6,)
    assert tuple(conv(lib.randn(2, 4, 9, 9)).shape) == (2, 6, 7, 7)
    # "weight 값을 직접 설정해주지 않아도 된다": the weights exist and are initialized
    assert float(conv.weight.detach().abs().sum()) > 0 and conv.weight.requires_grad
    nb = lib.nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, bias=False)
    assert nb.bias is None and tuple(nb.weight.shape) == (6, 2, 3, 3)
    assert tuple(nb(lib.randn(1, 4, 9, 9)).shape) == (1, 6, 4, 4)


@pytest.mark.torch
def test_3_1_conv2d_arguments_match_torch(torch):
    # the non-default arguments compute what torch computes (torch's weights copied over)
    torch.manual_seed(0)
    for kw in [{}, {"stride": 2, "padding": 1}, {"dilation": 2, "groups": 2, "bias": False}]:
        tc = torch.nn.Conv2d(4, 6, 3, **kw)
        dc = dtrain.nn.Conv2d(4, 6, 3, **kw)
        copy_weights(tc, dc, dtrain)
        x = np.random.default_rng(0).standard_normal((2, 4, 9, 9)).astype(np.float32)
        tx, dx = torch.tensor(x, requires_grad=True), dtrain.tensor(x, requires_grad=True)
        to, do = tc(tx), dc(dx)
        np.testing.assert_allclose(npy(do), npy(to), rtol=1e-4, atol=1e-5)
        (to ** 2).sum().backward()
        (do ** 2).sum().backward()
        np.testing.assert_allclose(npy(dx.grad), npy(tx.grad), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(npy(dc.weight.grad), npy(tc.weight.grad), rtol=1e-4,
                                   atol=1e-4)


SNIPPET_3_1_C = """\
import torch.nn.Functional as F
from torch.autograd import Variable
filter_ = torch.ones(1,1,3,3)
filter_ = Variable(filter_)
out = F.Conv2d(input_,filter_)
"""


def test_3_1_functional_snippet_fails_as_in_torch(lib):
    # as printed: the module is torch.nn.functional (lower case): ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match="Functional"):
        run(SNIPPET_3_1_C, lib)
    # with the import fixed, `from torch.autograd import Variable` works in torch (Variable is
    # the deprecated wrapper), and the function is conv2d, not Conv2d: AttributeError
    fixed = SNIPPET_3_1_C.replace("nn.Functional", "nn.functional")
    with pytest.raises(AttributeError, match="Conv2d"):
        run(fixed, lib)
    # with conv2d, input_ was never defined: NameError
    with pytest.raises(NameError, match="input_"):
        run(fixed.replace("F.Conv2d", "F.conv2d"), lib)


def test_3_1_functional_conv2d_takes_input_and_weight(lib):
    # what the snippet means: F.conv2d(input, weight) with a hand-made 3x3 box filter
    fixed = SNIPPET_3_1_C.replace("nn.Functional", "nn.functional").replace("F.Conv2d",
                                                                            "F.conv2d")
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    ns = run(fixed, lib, input_=lib.tensor(x))
    out, filter_ = ns["out"], ns["filter_"]
    assert isinstance(filter_, lib.Tensor) and not filter_.requires_grad
    assert filter_.tolist() == [[[[1.] * 3] * 3]]
    box = np.array([[x[0, 0, i:i + 3, j:j + 3].sum() for j in range(3)] for i in range(3)])
    assert tuple(out.shape) == (1, 1, 3, 3)
    np.testing.assert_allclose(npy(out)[0, 0], box)


def test_3_1_variable_wraps_a_tensor(lib):
    # torch.autograd.Variable(t) returns a Tensor sharing t's data; requires_grad is honoured
    Variable = lib.autograd.Variable
    t = lib.ones(2)
    v = Variable(t)
    assert isinstance(v, lib.Tensor) and isinstance(v, Variable) and not v.requires_grad
    t[0] = 5
    assert v.tolist() == [5., 1.]
    w = Variable(lib.ones(2), requires_grad=True)
    assert w.requires_grad and w.is_leaf
    (w * 3).sum().backward()
    assert w.grad.tolist() == [3., 3.]
    with pytest.raises(TypeError):
        Variable([1., 2.])


# === 3.2 Layer 정의하기 =============================================================================

SNIPPET_NET = """\
import torch
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):

    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
"""
NET_FIXED = SNIPPET_NET + "        return x\n"
NET_KEYS = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight",
            "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
NET_SHAPES = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,), (84, 120), (84,),
              (10, 84), (10,)]
NET_COUNT = 156 + 2416 + 48120 + 10164 + 850  # 61706

SNIPPET_MYNN = """\
class MyNeuralNetwork(nn.Module):
    def __init__(self):
        super(MyNeuralNetwork, self).__init__()
        self.layer1 = nn.Sequential(
            nn.Conv2d(in_channels=3, out_channels=64, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2)
        )
        self.layer2 = nn.Sequential(
            nn.Conv2d(in_channels=64, out_channels=30, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2)
        )

    def forward(self, x):
        x = self.layer1(x)
        x = self.layer2(x)
        return x
"""
MYNN_KEYS = ["layer1.0.weight", "layer1.0.bias", "layer2.0.weight", "layer2.0.bias"]
MYNN_COUNT = (64 * 3 * 25 + 64) + (30 * 64 * 25 + 30)  # 52894

SNIPPET_NETWORK = """\
class Network(nn.Module):
    def __init__(self, n_blocks):
        super(Network, self).__init__()
        self.n_blocks = n_blocks
        block_A_list = []
        block_B_list = []
        for _ in range(n_blocks):
            block_A_list.append(Block_A())
            block_B_list.append(Block_B())
        self.block_A_list = nn.ModuleList(block_A_list)
        self.block_B_list = nn.ModuleList(block_B_list)

    def forward(self, x, k):
        for i in range(self.n_blocks):
            out = self.block_A_list[i](x)
            out = self.block_B_list[i](out, k)
        return out
"""
# The post never defines Block_A / Block_B; minimal blocks with the call signatures it uses:
# Block_A()(x) and Block_B()(out, k).
BLOCKS = """\
import torch.nn as nn
import torch.nn.functional as F

class Block_A(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return F.relu(self.fc(x))

class Block_B(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, k):
        return self.fc(x) * k
"""


def build(lib, source, name, *args):
    lib.manual_seed(0)
    ns = run(source, lib, nn=lib.nn, F=lib.nn.functional)
    return ns[name](*args), ns


def test_3_2_net_as_printed_returns_none(lib):
    # forward() has no `return x`, so calling the model gives None in torch, and the usual
    # loss.backward() cannot follow
    net, _ = build(lib, SNIPPET_NET, "Net")
    assert net(lib.randn(1, 1, 32, 32)) is None


def test_3_2_net(lib):
    # LeNet: a 1x32x32 input gives 16x5x5 features before fc1, and 10 outputs
    net, _ = build(lib, NET_FIXED, "Net")
    assert list(net.state_dict().keys()) == NET_KEYS
    assert [tuple(p.shape) for p in net.parameters()] == NET_SHAPES
    assert n_params(net) == NET_COUNT == 61706
    x = lib.randn(4, 1, 32, 32)
    out = net(x)
    assert tuple(out.shape) == (4, 10)
    loss = lib.nn.functional.cross_entropy(out, lib.tensor([0, 3, 9, 1]))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and tuple(p.grad.shape) == tuple(p.shape), name
        assert float(p.grad.abs().sum()) > 0, name
    with pytest.raises(RuntimeError):  # 28x28 gives 16x4x4 = 256 features, not 400
        net(lib.randn(1, 1, 28, 28))


def test_3_2_my_neural_network(lib):
    # two Sequential blocks conv5 -> ReLU(inplace) -> maxpool2: 32 -> 28 -> 14 -> 10 -> 5
    model, _ = build(lib, SNIPPET_MYNN, "MyNeuralNetwork")
    assert list(model.state_dict().keys()) == MYNN_KEYS
    assert n_params(model) == MYNN_COUNT == 52894
    assert len(model.layer1) == 3 and isinstance(model.layer1[1], lib.nn.ReLU)
    x = lib.randn(2, 3, 32, 32, requires_grad=True)
    out = model(x)
    assert tuple(out.shape) == (2, 30, 5, 5)
    assert (npy(out) >= 0).all()
    # nn.Sequential runs its layers in order by itself: same as chaining them by hand
    h = x
    for layer in list(model.layer1) + list(model.layer2):
        h = layer(h)
    np.testing.assert_array_equal(npy(h), npy(out))
    out.sum().backward()  # backward through the in-place ReLUs
    assert tuple(x.grad.shape) == (2, 3, 32, 32)
    assert all(p.grad is not None for p in model.parameters())


def test_3_2_network_module_list(lib):
    net, ns = build(lib, BLOCKS + SNIPPET_NETWORK, "Network", 3)
    assert net.n_blocks == 3 and len(net.block_A_list) == 3 and len(net.block_B_list) == 3
    assert isinstance(net.block_A_list, lib.nn.ModuleList)
    assert all(isinstance(b, ns["Block_A"]) for b in net.block_A_list)
    keys = [f"block_{ab}_list.{i}.fc.{w}" for ab in "AB" for i in range(3)
            for w in ("weight", "bias")]
    assert list(net.state_dict().keys()) == keys
    assert n_params(net) == 6 * (16 + 4)
    # the blocks are separate modules: six distinct Linear layers
    assert len({id(p) for p in net.parameters()}) == 12
    x, k = lib.randn(5, 4), 0.5
    out = net(x, k)
    assert tuple(out.shape) == (5, 4)
    # as written, every iteration starts again from x, so only the last (A, B) pair shapes
    # the output ("block들 간 input과 output이 연결되지 않아도 되도록")
    last = net.block_B_list[2](net.block_A_list[2](x), k)
    np.testing.assert_allclose(npy(out), npy(last), rtol=1e-6)
    out.sum().backward()
    for i in range(3):
        has = [p.grad is not None for p in list(net.block_A_list[i].parameters())
               + list(net.block_B_list[i].parameters())]
        assert has == [i == 2] * 4
    # "forward() method가 없다": a ModuleList cannot be called
    with pytest.raises(NotImplementedError, match="forward"):
        net.block_A_list(x)


@pytest.mark.torch
@pytest.mark.parametrize("source,name,args,shape", [
    (NET_FIXED, "Net", (), (3, 1, 32, 32)),
    (SNIPPET_MYNN, "MyNeuralNetwork", (), (2, 3, 32, 32)),
    (BLOCKS + SNIPPET_NETWORK, "Network", (3,), (5, 4)),
])
def test_3_2_models_match_torch(torch, source, name, args, shape):
    # the same architecture in both libraries: same parameter names, shapes and count; with
    # torch's weights loaded, the same outputs and gradients
    tm, _ = build(torch, source, name, *args)
    dm, _ = build(dtrain, source, name, *args)
    tsd, dsd = tm.state_dict(), dm.state_dict()
    assert list(dsd.keys()) == list(tsd.keys())
    assert [tuple(v.shape) for v in dsd.values()] == [tuple(v.shape) for v in tsd.values()]
    assert n_params(dm) == n_params(tm)
    assert [n for n, _ in dm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    copy_weights(tm, dm, dtrain)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    extra = (0.5,) if name == "Network" else ()
    to, do = tm(torch.tensor(x), *extra), dm(dtrain.tensor(x), *extra)
    assert tuple(do.shape) == tuple(to.shape)
    np.testing.assert_allclose(npy(do), npy(to), rtol=1e-4, atol=1e-5)
    (to ** 2).mean().backward()
    (do ** 2).mean().backward()
    for (n, tp), (_, dp) in zip(tm.named_parameters(), dm.named_parameters()):
        assert (dp.grad is None) == (tp.grad is None), n
        if tp.grad is not None:
            np.testing.assert_allclose(npy(dp.grad), npy(tp.grad), rtol=1e-4, atol=1e-5,
                                       err_msg=n)


# === 4.2 Optimizer 방법: the post's numpy implementations ===========================================
# Verbatim (dedented from the post's list indentation; the tabs before "# schedule learning
# rate" are the post's and harmless, being on a comment line).

SNIPPET_SGD = """\
# 구현
class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr
        
    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]
"""

SNIPPET_MOMENTUM = """\
# 구현
class Momentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {}
            for key, val in params.items():
                self.v[key] = np.zeros_like(val)

        for key in params.keys():
            self.v[key] = self.momentum*self.v[key] - self.lr*grads[key]
            params[key] += self.v[key]
"""

SNIPPET_ADAGRAD = """\
# 구현
class AdaGrad:
    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {}
            for key, val in params.items():
                self.h[key] = np.zeros_like(val)
        for key in params.keys():
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key])+1e-7)
"""

SNIPPET_RMSPROP = """\
# 구현
class RMSprop:
    def __init__(self, lr=0.01, decay_rate = 0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {}
            for key, val in params.items():
                self.h[key] = np.zeros_like(val)

        for key in params.keys():
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)
"""

SNIPPET_ADAM = """\
class Adam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = {}, {}
            for key, val in params.items():
                self.m[key] = np.zeros_like(val)
                self.v[key] = np.zeros_like(val)

        self.iter += 1
				# schedule learning rate 
        lr_t  = self.lr * np.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter)

        for key in params.keys():
            #self.m[key] = self.beta1*self.m[key] + (1-self.beta1)*grads[key]
            #self.v[key] = self.beta2*self.v[key] + (1-self.beta2)*(grads[key]**2)
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key]**2 - self.v[key])

            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)

            #unbias_m += (1 - self.beta1) * (grads[key] - self.m[key]) # correct bias
            #unbisa_b += (1 - self.beta2) * (grads[key]*grads[key] - self.v[key]) # correct bias
            #params[key] += self.lr * unbias_m / (np.sqrt(unbisa_b) + 1e-7)
"""  # noqa: W191,E101,W291 - the tabs and trailing spaces are the post's

# the post's classes, by name; they only need numpy (the post's `np`)
POST = {"np": np}
for _src in (SNIPPET_SGD, SNIPPET_MOMENTUM, SNIPPET_ADAGRAD, SNIPPET_RMSPROP, SNIPPET_ADAM):
    exec(compile(_src, "<seed>", "exec"), POST)


# --- the "same problem": least squares, float64, gradients O(1) ---------------------------------

_RNG = np.random.default_rng(42)
X = _RNG.standard_normal((32, 3))
Y = X @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.1 * _RNG.standard_normal(32)
W0, B0 = np.array([0.2, 0.1, -0.3]), np.array([0.0])


def numpy_grads(params):
    """Gradients of mean((X w + b - y)^2), for the post's optimizers (independent of lib)."""
    r = X @ params["w"] + params["b"] - Y
    return {"w": 2 / len(Y) * X.T @ r, "b": np.array([2 / len(Y) * r.sum()])}


def lib_problem(lib):
    w = lib.nn.Parameter(lib.tensor(W0.copy()))
    b = lib.nn.Parameter(lib.tensor(B0.copy()))
    x, y = lib.tensor(X), lib.tensor(Y)

    def closure():
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        return loss
    return w, b, closure


def race(lib, post_opt, make_opt, steps=25, each_step=None):
    """Run the post's optimizer and lib's on the same problem from the same start. Returns the
    final (post, lib) parameters and the losses' first/last values (lib side)."""
    params = {"w": W0.copy(), "b": B0.copy()}
    w, b, closure = lib_problem(lib)
    opt = make_opt([w, b])
    losses = []
    for t in range(1, steps + 1):
        post_opt.update(params, numpy_grads(params))
        opt.zero_grad()
        losses.append(closure().item())
        opt.step()
        if each_step:
            each_step(t, params, {"w": w, "b": b}, opt)
    lib_params = {"w": npy(w), "b": npy(b)}
    assert losses[-1] < 0.5 * losses[0]  # the problem is being solved, not sitting still
    return params, lib_params


def assert_same(post, got, **tol):
    for k in post:
        np.testing.assert_allclose(got[k], post[k], err_msg=k, **tol)


# float64 rounding only: the gradients are computed two ways (numpy formula vs autograd) and
# the updates in a different order, a few ulps per step over 25 steps
ROUNDING = {"rtol": 1e-11, "atol": 1e-13}


def test_4_2_sgd_equals_lib_sgd(lib):
    # theta -= lr * grad is torch.optim.SGD with momentum=0: the same formula
    post, got = race(lib, POST["SGD"](lr=0.1), lambda p: lib.optim.SGD(p, lr=0.1))
    assert_same(post, got, **ROUNDING)


def test_4_2_momentum_equals_lib_sgd_with_momentum(lib):
    # post:  v_t = mu v_{t-1} - lr g_t,          theta_t = theta_{t-1} + v_t   (v_0 = 0)
    # torch: b_1 = g_1, b_t = mu b_{t-1} + g_t,  theta_t = theta_{t-1} - lr b_t
    # (dampening=0, nesterov=False). By induction v_t = -lr b_t: v_1 = -lr g_1 = -lr b_1, and
    # v_t = mu (-lr b_{t-1}) - lr g_t = -lr (mu b_{t-1} + g_t) = -lr b_t. So the trajectories
    # are the same for a constant lr (see test_4_3_* for what a changed lr does).
    lr, mu = 0.02, 0.9
    post_opt = POST["Momentum"](lr=lr, momentum=mu)

    def check(t, params, lib_params, opt):
        for k, p in lib_params.items():
            np.testing.assert_allclose(post_opt.v[k], -lr * npy(opt.state[p]["momentum_buffer"]),
                                       **ROUNDING)

    post, got = race(lib, post_opt, lambda p: lib.optim.SGD(p, lr=lr, momentum=mu),
                     each_step=check)
    assert_same(post, got, **ROUNDING)


def test_4_2_adagrad_equals_lib_adagrad_with_eps_1e_7(lib):
    # post:  h += g^2;   theta -= lr g / (sqrt(h) + 1e-7)
    # torch: sum += g^2; theta -= clr g / (sqrt(sum) + eps), clr = lr / (1 + (t-1) lr_decay)
    # With lr_decay=0, initial_accumulator_value=0 (defaults) and eps=1e-7 this is the same
    # formula. (The post's LaTeX puts beta inside the sqrt, sqrt(G_t + beta); its code, like
    # torch, adds it outside. The code is what is compared here.)
    post, got = race(lib, POST["AdaGrad"](lr=0.1),
                     lambda p: lib.optim.Adagrad(p, lr=0.1, eps=1e-7))
    assert_same(post, got, **ROUNDING)


def test_4_2_rmsprop_equals_lib_rmsprop_with_eps_1e_7(lib):
    # post:  h = d h + (1-d) g^2;  theta -= lr g / (sqrt(h) + 1e-7)
    # torch: v = a v + (1-a) g^2;  theta -= lr g / (sqrt(v) + eps)   (momentum=0, centered=False)
    # Same formula with alpha = decay_rate and eps = 1e-7 (torch's default eps is 1e-8). As for
    # AdaGrad the LaTeX's sqrt(G_t + beta) differs from the code, which matches torch.
    post, got = race(lib, POST["RMSprop"](lr=0.01, decay_rate=0.99),
                     lambda p: lib.optim.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-7))
    assert_same(post, got, **ROUNDING)


def _adam_gap(post_opt, key, eps):
    """|post update - torch update| at the post optimizer's current step, from its state.

    post:  theta -= lr_t m / (sqrt(v) + 1e-7),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
    torch: theta -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
                  = lr_t m / (sqrt(v) + eps c_t),   c_t = sqrt(1 - b2^t)
    with the same m, v (torch's exp_avg, exp_avg_sq: the un-debiased averages; the post's
    `m += (1-b1)(g - m)` is the same recurrence as torch's lerp). So the post is torch with eps
    replaced by 1e-7 / c_t: the post adds its eps to the un-debiased sqrt(v), torch to the
    debiased one. They never coincide exactly (c_t < 1 changes every step); the per-step gap is
    lr_t m (1/(sqrt(v) + eps c_t) - 1/(sqrt(v) + 1e-7)).
    """
    t, b1, b2 = post_opt.iter, post_opt.beta1, post_opt.beta2
    lr_t = post_opt.lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    s, c = np.sqrt(post_opt.v[key]), np.sqrt(1 - b2 ** t)
    return lr_t * post_opt.m[key] * (1 / (s + eps * c) - 1 / (s + 1e-7))


def test_4_2_adam_is_lib_adam_up_to_where_eps_goes(lib):
    # On the least-squares problem (|g| ~ 1e-2..1, so sqrt(v) >> 1e-7) the gap of _adam_gap is
    # ~ lr_t (|m| / sqrt(v)) 1e-7 / sqrt(v) per step, and it feeds back only weakly through the
    # gradient over 25 steps (lr = 0.1, the problem's curvature ~ 2): the parameter gap is
    # bounded here by 2x the sum of the per-step gaps (measured: <= 1.001x).
    # The m, v states are the same recurrences as torch's exp_avg / exp_avg_sq; here they see
    # gradients at points ~1e-6 apart, hence the loose tolerance (exact when teacher-forced).
    post_opt = POST["Adam"](lr=0.1)
    gaps = {"w": 0.0, "b": 0.0}

    def check(t, params, lib_params, opt):
        for k, p in lib_params.items():
            gaps[k] = gaps[k] + np.abs(_adam_gap(post_opt, k, 1e-7))
            st = opt.state[p]
            for name, mine in (("exp_avg", post_opt.m[k]), ("exp_avg_sq", post_opt.v[k])):
                np.testing.assert_allclose(npy(st[name]), mine, rtol=1e-5, atol=1e-5)

    post, got = race(lib, post_opt, lambda p: lib.optim.Adam(p, lr=0.1, eps=1e-7),
                     each_step=check)
    for k in post:
        diff = np.abs(got[k] - post[k])
        assert (diff <= 2 * gaps[k] + 1e-14).all(), (k, diff, gaps[k])
        assert (gaps[k] < 1e-5).all()  # a few 1e-6 in all, on parameters of size ~1


# --- teacher forcing: the same gradient sequence fed to both, so the states (h, m, v) are the
# same and the parameter gap is exactly the sum of the per-step formula differences. Small
# gradients (~1e-4) make eps matter; a fixed sign per element makes the per-step gaps add up
# instead of cancelling, so the check is sharp.

G_SIGN = np.array([1., -1., 1., -1., 1.])


def grad_sequence(steps=30, scale=1e-4):
    rng = np.random.default_rng(7)
    return [G_SIGN * scale * (0.5 + rng.random(5)) for _ in range(steps)]


def teacher_forced(lib, post_opt, make_opt, expected_gap):
    """Feed grad_sequence() to both; expected_gap(g) gives (post step - lib step) from the post
    optimizer's state after its update. Returns the post's and lib's final parameters, the lib
    parameters predicted from the post's steps and the gaps, and lib's optimizer state."""
    start = np.random.default_rng(3).standard_normal(5)
    params = {"p": start.copy()}
    p = lib.nn.Parameter(lib.tensor(start.copy()))
    opt = make_opt([p])
    predicted = start.copy()
    for g in grad_sequence():
        before = params["p"].copy()
        post_opt.update(params, {"p": g.copy()})
        predicted += (params["p"] - before) - expected_gap(g)
        p.grad = lib.tensor(g.copy())
        opt.step()
    return params["p"], npy(p), predicted, opt.state[p]


def test_4_2_adagrad_default_eps_differs_as_derived(lib):
    # torch's default eps is 1e-10, the post's 1e-7. Same h, so per step
    #   post step - torch step = -lr g (1/(s + 1e-7) - 1/(s + 1e-10)),  s = sqrt(h)
    # whose size is lr |g| 1e-7 (1 - 1e-3) / ((s + 1e-7)(s + 1e-10)) <= lr 1e-7 / s (|g| <= s).
    lr = 0.01
    post_opt = POST["AdaGrad"](lr=lr)
    total = np.zeros(5)  # sum of |per-step gap|

    def gap(g):
        nonlocal total
        s = np.sqrt(post_opt.h["p"])
        d = -lr * g * (1 / (s + 1e-7) - 1 / (s + 1e-10))
        total = total + np.abs(d)
        return d

    post, got, predicted, state = teacher_forced(lib, post_opt,
                                                 lambda p: lib.optim.Adagrad(p, lr=lr), gap)
    np.testing.assert_allclose(npy(state["sum"]), post_opt.h["p"], rtol=1e-12)
    np.testing.assert_allclose(got, predicted, rtol=1e-12, atol=1e-15)
    bound = sum(lr * 1e-7 / np.sqrt(np.cumsum([g ** 2 for g in grad_sequence()], 0)))
    diff = np.abs(got - post)
    # the gaps all have the sign of g (fixed per element), so nothing cancels: the total gap
    # is the sum of the per-step sizes, a few 1e-5 here, and within the coarse bound
    np.testing.assert_allclose(diff, total, rtol=1e-6)
    assert (diff <= bound).all() and (diff > 1e-5).all(), (diff, bound)


def test_4_2_rmsprop_default_eps_differs_as_derived(lib):
    # torch's default eps is 1e-8, the post's 1e-7; same h (square_avg), so per step
    #   post step - torch step = -lr g (1/(s + 1e-7) - 1/(s + 1e-8)),  s = sqrt(h)
    lr = 0.01
    post_opt = POST["RMSprop"](lr=lr)

    def gap(g):
        s = np.sqrt(post_opt.h["p"])
        return -lr * g * (1 / (s + 1e-7) - 1 / (s + 1e-8))

    post, got, predicted, state = teacher_forced(lib, post_opt,
                                                 lambda p: lib.optim.RMSprop(p, lr=lr), gap)
    np.testing.assert_allclose(npy(state["square_avg"]), post_opt.h["p"], rtol=1e-12)
    np.testing.assert_allclose(got, predicted, rtol=1e-12, atol=1e-15)
    assert (np.abs(got - post) > 1e-6).all()  # a real difference at |g| ~ 1e-4


@pytest.mark.parametrize("eps", [1e-7, 1e-8])
def test_4_2_adam_efficient_form_differs_as_derived(lib, eps):
    # see _adam_gap: exact per-step gap between the post's Adam and torch's Adam(eps=eps),
    # for torch's default eps=1e-8 and for eps=1e-7 (which still differs: 1e-7 vs 1e-7 * c_t)
    lr = 0.01
    post_opt = POST["Adam"](lr=lr)
    post, got, predicted, state = teacher_forced(
        lib, post_opt, lambda p: lib.optim.Adam(p, lr=lr, eps=eps),
        lambda g: _adam_gap(post_opt, "p", eps))
    np.testing.assert_allclose(npy(state["exp_avg"]), post_opt.m["p"], rtol=1e-12)
    np.testing.assert_allclose(npy(state["exp_avg_sq"]), post_opt.v["p"], rtol=1e-12)
    np.testing.assert_allclose(got, predicted, rtol=1e-12, atol=1e-15)
    assert (np.abs(got - post) > 1e-6).all()  # a real difference at |g| ~ 1e-4


# --- the torch signature lines -----------------------------------------------------------------

SNIPPET_RMSPROP_TORCH = """\
torch.optim.RMSprop(params, lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0, momentum=0, centered=False)
"""  # noqa: E501 - verbatim
SNIPPET_ADAM_TORCH = """\
torch.optim.Adam(params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, amsgrad=False, *, maximize=False)
"""  # noqa: E501 - verbatim


def test_4_2_rmsprop_signature_line(lib):
    # `params` is a placeholder: NameError as printed; given parameters, it constructs the
    # optimizer with exactly those (= torch's default) hyper-parameters
    with pytest.raises(NameError, match="params"):
        run(SNIPPET_RMSPROP_TORCH, lib)
    model = lib.nn.Linear(3, 2)
    ns = run("opt = " + SNIPPET_RMSPROP_TORCH, lib, params=model.parameters())
    opt = ns["opt"]
    assert isinstance(opt, lib.optim.RMSprop) and isinstance(opt, lib.optim.Optimizer)
    g = opt.param_groups[0]
    assert {k: g[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")} \
        == {"lr": 0.01, "alpha": 0.99, "eps": 1e-08, "weight_decay": 0, "momentum": 0,
            "centered": False}
    assert [id(p) for p in g["params"]] == [id(p) for p in model.parameters()]
    defaults = {n: p.default for n, p in inspect.signature(lib.optim.RMSprop).parameters.items()}
    assert all(defaults[k] == g[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum",
                                             "centered"))


def test_4_2_rmsprop_momentum_formula(lib):
    # the post's note: b_t = mu b_{t-1} + g_t / (sqrt(G_t) + eps); theta_t = theta_{t-1} - lr b_t
    # (the note writes sqrt(G_t + beta); torch's eps is outside the sqrt)
    lr, a, mu, eps = 0.01, 0.9, 0.5, 1e-8
    p = lib.nn.Parameter(lib.tensor(np.array([1.0, -2.0])))
    opt = lib.optim.RMSprop([p], lr=lr, alpha=a, eps=eps, momentum=mu)
    theta, G, b = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for g in grad_sequence(5, 1.0)[:5]:
        g = g[:2]
        G = a * G + (1 - a) * g * g
        b = mu * b + g / (np.sqrt(G) + eps)
        theta = theta - lr * b
        p.grad = lib.tensor(g.copy())
        opt.step()
    np.testing.assert_allclose(npy(p), theta, rtol=1e-12)


def test_4_2_adam_signature_line_is_a_syntax_error(lib):
    # a bare `*` is a signature marker, not call syntax: SyntaxError in any library
    with pytest.raises(SyntaxError):
        run(SNIPPET_ADAM_TORCH, lib, params=[])


def test_4_2_adam_signature_line(lib):
    # without the `*, ` the call constructs Adam with those (= torch's default) hyper-parameters;
    # maximize is keyword-only in the signature, as the `*` says
    model = lib.nn.Linear(3, 2)
    ns = run("opt = " + SNIPPET_ADAM_TORCH.replace("*, ", ""), lib, params=model.parameters())
    opt = ns["opt"]
    assert isinstance(opt, lib.optim.Adam)
    g = opt.param_groups[0]
    assert {k: g[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")} \
        == {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0,
            "amsgrad": False, "maximize": False}
    sig = inspect.signature(lib.optim.Adam).parameters
    assert sig["maximize"].kind is inspect.Parameter.KEYWORD_ONLY
    assert [n for n in sig][:6] == ["params", "lr", "betas", "eps", "weight_decay", "amsgrad"]
    with pytest.raises(TypeError):  # maximize cannot be passed positionally
        lib.optim.Adam(lib.nn.Linear(1, 1).parameters(), 0.001, (0.9, 0.999), 1e-8, 0, False,
                       False)
    # the weight_decay note: g_t = g_t + lambda theta_{t-1}. With g = 0 the first Adam step is
    # lr * m_hat / (sqrt(v_hat) + eps) with m_hat = lambda theta, v_hat = (lambda theta)^2
    p = lib.nn.Parameter(lib.tensor(np.array([2.0, -3.0])))
    opt = lib.optim.Adam([p], lr=0.1, weight_decay=0.5)
    p.grad = lib.zeros(2, dtype=lib.float64)
    opt.step()
    np.testing.assert_allclose(npy(p), [2.0 - 0.1, -3.0 + 0.1], rtol=1e-7)


# === 4.3 Optimizer learning rate 조절 ==============================================================

SNIPPET_4_3 = """\
for param_group in self.optimizer.param_groups:
	param_group['lr'] = new_lr_D
"""  # noqa: W191 - the tab is the post's

TRAINER = """\
class Trainer:
    def __init__(self, optimizer):
        self.optimizer = optimizer

    def set_lr(self, new_lr_D):
{body}"""


def make_trainer(lib, optimizer):
    src = TRAINER.format(body=textwrap.indent(SNIPPET_4_3, " " * 8))
    return run(src, lib)["Trainer"](optimizer)


def test_4_3_snippet_needs_self(lib):
    # as printed it is a method body: at top level `self` is undefined
    with pytest.raises(NameError, match="self"):
        run(SNIPPET_4_3, lib, new_lr_D=0.1)


def test_4_3_setting_lr_changes_the_next_step(lib):
    # inside a method, the loop sets the lr of every group, and the next step uses it
    w = lib.nn.Parameter(lib.tensor(np.array([1.0, 2.0])))
    b = lib.nn.Parameter(lib.tensor(np.array([0.5])))
    opt = lib.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.3}], lr=0.1)
    trainer = make_trainer(lib, opt)
    g_w, g_b = np.array([1.0, -4.0]), np.array([2.0])

    def step():
        before = npy(w), npy(b)
        w.grad, b.grad = lib.tensor(g_w.copy()), lib.tensor(g_b.copy())
        opt.step()
        return npy(w) - before[0], npy(b) - before[1]

    dw, db = step()
    np.testing.assert_allclose(dw, -0.1 * g_w, rtol=1e-12)
    np.testing.assert_allclose(db, -0.3 * g_b, rtol=1e-12)
    trainer.set_lr(0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01]
    dw, db = step()
    np.testing.assert_allclose(dw, -0.01 * g_w, rtol=1e-12)
    np.testing.assert_allclose(db, -0.01 * g_b, rtol=1e-12)


def test_4_3_changed_lr_with_momentum_vs_post_momentum(lib):
    # The Momentum correspondence v_t = -lr b_t needs a constant lr: torch keeps lr out of
    # its buffer b, the post's v carries the old lr. After lr0 -> lr1 at step t:
    #   torch: theta -= lr1 (mu b_{t-1} + g_t)
    #   post:  theta += mu v_{t-1} - lr1 g_t = -mu lr0 b_{t-1} - lr1 g_t
    # so the post's step minus torch's is mu (lr1 - lr0) b_{t-1}.
    lr0, lr1, mu = 0.1, 0.02, 0.9
    start = np.array([1.0, -1.0, 0.5])
    p = lib.nn.Parameter(lib.tensor(start.copy()))
    opt = lib.optim.SGD([p], lr=lr0, momentum=mu)
    trainer = make_trainer(lib, opt)
    post_opt, params = POST["Momentum"](lr=lr0, momentum=mu), {"p": start.copy()}
    grads = grad_sequence(3, 1.0)
    for g in grads[:2]:
        post_opt.update(params, {"p": g[:3].copy()})
        p.grad = lib.tensor(g[:3].copy())
        opt.step()
    np.testing.assert_allclose(npy(p), params["p"], rtol=1e-12)
    b_prev = npy(opt.state[p]["momentum_buffer"])
    trainer.set_lr(lr1)
    post_opt.lr = lr1
    before = npy(p)
    g = grads[2][:3]
    post_opt.update(params, {"p": g.copy()})
    p.grad = lib.tensor(g.copy())
    opt.step()
    np.testing.assert_allclose(npy(p) - before, -lr1 * (mu * b_prev + g), rtol=1e-12)
    np.testing.assert_allclose(params["p"] - npy(p), mu * (lr1 - lr0) * b_prev, rtol=1e-9)


# === 7. state_dict vs parameters ==================================================================

SNIPPET_7_1 = """\
model.parameters():
"""
SNIPPET_7_2 = """\
model.state_dict().keys()
"""
SNIPPET_7_3 = """\
for name, param in model.named_parameters():
    if param.requires_grad:
        print(name)
"""


def test_7_1_parameters_line_has_a_stray_colon(lib):
    with pytest.raises(SyntaxError):
        run(SNIPPET_7_1, lib, model=lib.nn.Linear(2, 2))


def test_7_1_parameters_is_an_iterator_over_the_weights(lib):
    # "Returns an iterator over module parameters": the weights only, no names
    model, _ = build(lib, NET_FIXED, "Net")
    ns = run("params = " + SNIPPET_7_1.strip().rstrip(":") + "\n", lib, model=model)
    it = ns["params"]
    assert iter(it) is it and inspect.isgenerator(it)
    params = list(it)
    assert len(params) == 10 and all(isinstance(p, lib.nn.Parameter) for p in params)
    assert params[0] is model.conv1.weight and params[-1] is model.fc3.bias
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert all(a is b for (_, a), b in zip(model.named_parameters(), params))
    # the usual use: hand them all to an optimizer
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == 10


def test_7_2_state_dict_keys(lib):
    model, _ = build(lib, SNIPPET_MYNN, "MyNeuralNetwork")
    ns = run("keys = " + SNIPPET_7_2, lib, model=model)
    assert list(ns["keys"]) == MYNN_KEYS
    sd = model.state_dict()
    assert type(sd).__name__ == "OrderedDict"
    # the values are the weights' data, detached but sharing memory: writing into one changes
    # the model ("원하는 layer 이름을 찾아 weight를 바꿔주고 싶을 때")
    w = sd["layer1.0.weight"]
    assert not w.requires_grad and w.grad_fn is None
    w.fill_(0.25)
    assert np.all(npy(model.layer1[0].weight) == 0.25)
    # and load_state_dict puts a modified copy back
    new = {k: v.clone() for k, v in sd.items()}
    new["layer2.0.bias"] = lib.arange(30.)
    model.load_state_dict(new)
    assert model.layer2[0].bias.tolist() == list(map(float, range(30)))
    assert isinstance(model.layer2[0].bias, lib.nn.Parameter)


def test_7_2_state_dict_holds_the_whole_state(lib):
    # "a whole state of the module": buffers too (BatchNorm's running statistics), which
    # parameters() / named_parameters() do not list
    model = lib.nn.Sequential(lib.nn.Conv2d(1, 2, 3), lib.nn.BatchNorm2d(2))
    assert list(model.state_dict().keys()) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight",
                                                        "1.bias"]
    assert len(list(model.parameters())) == 4


def test_7_3_named_parameters(lib, capsys):
    # prints the names of the trainable parameters; frozen ones are skipped
    model, _ = build(lib, NET_FIXED, "Net")
    run(SNIPPET_7_3, lib, model=model)
    assert capsys.readouterr().out.split() == NET_KEYS
    for p in model.conv1.parameters():
        p.requires_grad = False
    run(SNIPPET_7_3, lib, model=model)
    assert capsys.readouterr().out.split() == NET_KEYS[2:]
    # same names as state_dict() (no buffers here), and the values are the parameters
    named = dict(model.named_parameters())
    assert list(named) == list(model.state_dict().keys())
    assert named["fc2.weight"] is model.fc2.weight
    # replacing a weight found by name, in place
    with lib.no_grad():
        named["fc3.bias"].copy_(lib.ones(10))
    assert model.fc3.bias.tolist() == [1.0] * 10


def test_7_3_named_parameters_nested(lib, capsys):
    net, _ = build(lib, BLOCKS + SNIPPET_NETWORK, "Network", 2)
    run(SNIPPET_7_3, lib, model=net)
    assert capsys.readouterr().out.split() == [
        f"block_{ab}_list.{i}.fc.{w}" for ab in "AB" for i in range(2) for w in ("weight", "bias")]
