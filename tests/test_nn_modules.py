"""dtrain.nn.Module and the containers against torch.nn: the same architecture built in both
libraries must register, name, order, print, save and load its members as torch does, raise the
same errors, and initialise its parameters from the same distributions as torch's defaults.

Models are written once: ``build(lib)`` takes ``dtrain`` or ``torch``."""
import copy
import math
from collections import OrderedDict

import numpy as np
import pytest

import dtrain
import dtrain.nn as nn


def _np(t):
    return t.detach().numpy()


def _same_error(fn, torch):
    """Run ``fn(lib)`` with both libraries: the exception type and text must agree."""
    caught = []
    for lib in (dtrain, torch):
        with pytest.raises(Exception) as e:
            fn(lib)
        caught.append((type(e.value).__name__, str(e.value).replace("torch", "dtrain")))
    assert caught[0] == caught[1]
    return caught[0]


def build(lib):
    """A model touching every kind of member: nested Sequential (plain and OrderedDict),
    ModuleList, ModuleDict, persistent and non-persistent buffers, a direct Parameter."""
    nn_ = lib.nn

    class Block(nn_.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv = nn_.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.bn = nn_.BatchNorm2d(c_out)
            self.act = nn_.ReLU(inplace=True)

        def forward(self, x):
            return self.act(self.bn(self.conv(x)))

    class Net(nn_.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn_.Parameter(lib.ones(1))
            self.layer1 = nn_.Sequential(Block(3, 4), nn_.MaxPool2d(2))
            self.layer2 = nn_.Sequential(OrderedDict([
                ("flat", nn_.Flatten()), ("drop", nn_.Dropout(0.25)),
                ("fc", nn_.Linear(4 * 4 * 4, 10))]))
            self.register_buffer("steps", lib.zeros((), dtype=lib.int64))
            self.register_buffer("cache", lib.ones(2), persistent=False)
            self.norms = nn_.ModuleList([nn_.LayerNorm(10), nn_.LayerNorm(10)])
            self.heads = nn_.ModuleDict({"cls": nn_.Linear(10, 3), "emb": nn_.Embedding(5, 10)})
            self.add_module("nothing", None)

        def forward(self, x):
            x = self.layer2(self.layer1(x)) * self.scale
            for norm in self.norms:
                x = norm(x)
            return self.heads["cls"](x)

    return Net()


def _names(pairs):
    return [name for name, _ in pairs]


# --- registration and traversal ------------------------------------------------------------------
def test_traversal_names_and_order(torch):
    d, t = build(dtrain), build(torch)
    assert _names(d.named_parameters()) == _names(t.named_parameters())
    assert _names(d.named_buffers()) == _names(t.named_buffers())
    assert _names(d.named_children()) == _names(t.named_children())
    assert _names(d.named_modules()) == _names(t.named_modules())
    assert [type(m).__name__ for m in d.modules()] == [type(m).__name__ for m in t.modules()]
    assert [type(m).__name__ for m in d.children()] == [type(m).__name__ for m in t.children()]
    assert [tuple(p.shape) for p in d.parameters()] == [tuple(p.shape) for p in t.parameters()]
    assert [tuple(b.shape) for b in d.buffers()] == [tuple(b.shape) for b in t.buffers()]
    for kw in ({"prefix": "model"}, {"recurse": False}, {"remove_duplicate": False}):
        assert _names(d.named_parameters(**kw)) == _names(t.named_parameters(**kw)), kw
        assert _names(d.named_buffers(**kw)) == _names(t.named_buffers(**kw)), kw
    assert _names(d.named_modules(prefix="m")) == _names(t.named_modules(prefix="m"))
    assert len(list(d.parameters(recurse=False))) == len(list(t.parameters(recurse=False))) == 1
    assert all(isinstance(p, nn.Parameter) for p in d.parameters())
    assert d.get_submodule("layer1.0.bn") is d.layer1[0].bn
    assert d.get_parameter("layer2.fc.bias") is d.layer2.fc.bias
    assert d.get_buffer("layer1.0.bn.running_var") is d.layer1[0].bn.running_var
    assert d.nothing is None and "nothing" in d._modules


def test_state_dict_keys_and_values(torch):
    d, t = build(dtrain), build(torch)
    sd, st = d.state_dict(), t.state_dict()
    assert list(sd) == list(st)
    assert "layer1.0.bn.num_batches_tracked" in sd and "cache" not in sd
    assert "layer2.fc.weight" in sd and "norms.1.bias" in sd and "heads.emb.weight" in sd
    for k in sd:
        assert tuple(sd[k].shape) == tuple(st[k].shape), k
        assert str(sd[k].dtype).split(".")[1] == str(st[k].dtype).split(".")[1], k
        assert not sd[k].requires_grad and type(sd[k]) is dtrain.Tensor, k
    # detached, but sharing memory with the parameters (as torch's)
    sd["layer2.fc.bias"][0] = 123.0
    assert d.layer2.fc.bias[0].item() == 123.0
    assert dict(sd._metadata) == dict(st._metadata)  # each module's _version, as torch's
    kept = d.state_dict(keep_vars=True)
    assert kept["scale"] is d.scale and kept["steps"] is d.steps
    assert list(d.state_dict(prefix="net.")) == list(t.state_dict(prefix="net."))


def test_registration(torch):
    for lib in (dtrain, torch):
        m = lib.nn.Module()
        m.w = lib.nn.Parameter(lib.randn(2))
        m.sub = lib.nn.Linear(2, 2)
        m.plain = lib.randn(2)  # a plain tensor attribute is not registered
        m.register_buffer("buf", lib.zeros(2))
        m.register_buffer("tmp", lib.zeros(2), persistent=False)
        m.register_parameter("none_param", None)
        m.register_buffer("none_buf", None)
        assert list(m._parameters) == ["w", "none_param"]
        assert list(m._buffers) == ["buf", "tmp", "none_buf"]
        assert list(m._modules) == ["sub"]
        assert list(m.state_dict()) == ["w", "buf", "sub.weight", "sub.bias"]
        assert m.none_param is None and m.none_buf is None
        # reassigning: a Parameter replaces a buffer of that name, a buffer takes a tensor
        m.buf = lib.ones(2)
        assert m.buf.sum().item() == 2.0 and "buf" in m._buffers
        m.buf = lib.nn.Parameter(lib.ones(3))
        assert "buf" in m._parameters and "buf" not in m._buffers
        m.sub = None
        assert m._modules["sub"] is None
        del m.w
        assert "w" not in m._parameters
        del m.tmp
        assert "tmp" not in m._buffers and "tmp" not in m._non_persistent_buffers_set
        with pytest.raises(AttributeError):
            m.w
        assert "plain" in m.__dict__ and "plain" in dir(m) and "buf" in dir(m)


def test_buffer_marker(torch):
    states = []
    for lib in (dtrain, torch):
        m = lib.nn.Module()
        m.a = lib.nn.Buffer(lib.ones(2))
        m.b = lib.nn.Buffer(lib.zeros(3), persistent=False)
        m.b = lib.ones(3)  # still a non-persistent buffer
        assert isinstance(m.a, lib.nn.Buffer) and not isinstance(lib.ones(2), lib.nn.Buffer)
        states.append((list(m._buffers), list(m.state_dict()), m.b.sum().item()))
    assert states[0] == states[1]


REGISTRATION_ERRORS = [
    lambda lib: lib.nn.Linear(2, 2).__setattr__("weight", lib.randn(2, 2)),
    lambda lib: lib.nn.Sequential(lib.nn.ReLU()).__setattr__("0", lib.randn(2)),
    lambda lib: lib.nn.BatchNorm1d(2).__setattr__("running_mean", 3),
    lambda lib: lib.nn.Module().add_module("a.b", lib.nn.ReLU()),
    lambda lib: lib.nn.Module().add_module("", lib.nn.ReLU()),
    lambda lib: lib.nn.Module().add_module(3, lib.nn.ReLU()),
    lambda lib: lib.nn.Module().add_module("x", lib.randn(2)),
    lambda lib: lib.nn.Module().add_module("x", 3),
    lambda lib: lib.nn.Module().add_module("training", lib.nn.ReLU()),
    lambda lib: lib.nn.Module().register_parameter("a.b", None),
    lambda lib: lib.nn.Module().register_parameter("", None),
    lambda lib: lib.nn.Module().register_parameter(1, None),
    lambda lib: lib.nn.Module().register_parameter("training", None),
    lambda lib: lib.nn.Module().register_parameter("w", lib.randn(2)),
    lambda lib: lib.nn.Module().register_buffer("a.b", None),
    lambda lib: lib.nn.Module().register_buffer("", None),
    lambda lib: lib.nn.Module().register_buffer("training", None),
    lambda lib: lib.nn.Module().register_buffer("b", [1, 2]),
    lambda lib: lib.nn.Linear(2, 2).register_buffer("weight", lib.zeros(2)),
    lambda lib: lib.nn.Module().no_such_attribute,
    lambda lib: lib.nn.Module()(lib.randn(2)),
    lambda lib: lib.nn.Module(3),
    lambda lib: lib.nn.Module(x=3),
    lambda lib: lib.nn.Module().train("yes"),
    lambda lib: lib.nn.Linear(2, 2).to(lib.int64),
    lambda lib: lib.nn.Linear(2, 2).get_submodule("fc"),
    lambda lib: lib.nn.Linear(2, 2).get_submodule("weight"),
    lambda lib: lib.nn.Linear(2, 2).get_parameter("fc.weight"),
    lambda lib: lib.nn.Linear(2, 2).get_parameter("in_features"),
    lambda lib: lib.nn.Linear(2, 2).get_parameter("scale"),
    lambda lib: lib.nn.BatchNorm1d(2).get_buffer("weight"),
    lambda lib: lib.nn.BatchNorm1d(2).get_buffer("mean"),
    lambda lib: lib.nn.Conv2d(3, 4, 3, groups=2),
    lambda lib: lib.nn.Conv2d(4, 3, 3, groups=2),
    lambda lib: lib.nn.Conv2d(4, 4, 3, groups=0),
    lambda lib: lib.nn.Conv2d(4, 4, 3, stride=2, padding="same"),
    lambda lib: lib.nn.Embedding(4, 3, padding_idx=4),
    lambda lib: lib.nn.Embedding(4, 3, padding_idx=-5),
    lambda lib: lib.nn.Embedding(4, 3, _weight=lib.ones(3, 3)),
    lambda lib: lib.nn.Embedding.from_pretrained(lib.ones(3)),
    lambda lib: lib.nn.Dropout(1.5),
]


@pytest.mark.parametrize("i", range(len(REGISTRATION_ERRORS)))
def test_registration_errors(torch, i):
    _same_error(REGISTRATION_ERRORS[i], torch)


def test_assign_before_init(torch):
    for cls in ("Parameter", "Module"):
        def fn(lib, cls=cls):
            class Early(lib.nn.Module):
                def __init__(self):
                    self.x = getattr(lib.nn, cls)() if cls == "Module" else \
                        lib.nn.Parameter(lib.ones(1))
                    super().__init__()
            Early()
        _same_error(fn, torch)


def test_shared_parameters_and_modules(torch):
    for lib in (dtrain, torch):
        a = lib.nn.Linear(3, 3)
        model = lib.nn.Sequential(a, lib.nn.ReLU(), a, lib.nn.Linear(3, 3))
        model[3].weight = a.weight  # tied weight
        assert len(list(model.parameters())) == 3  # a.weight, a.bias, 3.bias
        yield_names = _names(model.named_parameters())
        all_names = _names(model.named_parameters(remove_duplicate=False))
        modules = _names(model.named_modules())
        children = _names(model.named_children())
        state = list(model.state_dict())
        if lib is dtrain:
            expect = (yield_names, all_names, modules, children, state)
    assert (yield_names, all_names, modules, children, state) == expect
    assert expect[0] == ["0.weight", "0.bias", "3.bias"]
    assert expect[4] == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"]


# --- load_state_dict -----------------------------------------------------------------------------
def test_load_state_dict_round_trip_and_from_torch(torch):
    dtrain.manual_seed(0)
    torch.manual_seed(0)
    src, dst, t = build(dtrain), build(dtrain), build(torch)
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == repr(t.load_state_dict(t.state_dict())) == \
        "<All keys matched successfully>"
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        np.testing.assert_array_equal(_np(a), _np(b), err_msg=k)
    params = list(dst.parameters())
    dst.load_state_dict({k: dtrain.tensor(v.numpy()) for k, v in t.state_dict().items()})
    assert list(dst.parameters()) == params  # copied into the same Parameters
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(_np(dst.state_dict()[k]), v.numpy(), err_msg=k)
    assert dst.layer1[0].bn.num_batches_tracked.dtype == dtrain.int64


def _edit(state):
    """A state dict with one key missing from each of two modules and two strangers."""
    state = OrderedDict(state)
    del state["layer2.fc.bias"]
    del state["scale"]
    state["layer2.fc.extra"] = state["layer2.fc.weight"]
    state["bogus"] = state["norms.0.weight"]
    state["layer1.0.conv.weight.x"] = state["norms.0.weight"]
    return state


def test_load_state_dict_strict_errors_and_keys(torch):
    def strict(lib):
        m = build(lib)
        m.load_state_dict(_edit(m.state_dict()))
    kind, text = _same_error(strict, torch)
    assert kind == "RuntimeError" and text.startswith("Error(s) in loading state_dict for Net:")
    results = []
    for lib in (dtrain, torch):
        m = build(lib)
        results.append(m.load_state_dict(_edit(m.state_dict()), strict=False))
    assert results[0].missing_keys == results[1].missing_keys == ["scale", "layer2.fc.bias"]
    assert results[0].unexpected_keys == results[1].unexpected_keys
    assert repr(results[0]) == repr(results[1])
    assert results[0] == (results[0].missing_keys, results[0].unexpected_keys)


def test_load_state_dict_size_mismatch(torch):
    def load(lib, strict=True):
        m = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Linear(4, 2))
        state = m.state_dict()
        state["0.weight"] = lib.zeros(4, 5)
        state["1.bias"] = lib.zeros(3)
        m.load_state_dict(state, strict=strict)
    kind, text = _same_error(load, torch)
    assert "size mismatch for 0.weight" in text
    _same_error(lambda lib: load(lib, strict=False), torch)  # raised even when not strict
    _same_error(lambda lib: lib.nn.Linear(2, 2).load_state_dict([1, 2]), torch)


def test_load_state_dict_batchnorm_without_num_batches_tracked(torch):
    """An old checkpoint (a plain dict, no version metadata) may lack num_batches_tracked."""
    for lib in (dtrain, torch):
        bn = lib.nn.BatchNorm1d(3)
        state = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
        assert bn.load_state_dict(state).missing_keys == []
        versioned = bn.state_dict()  # this one says it comes from a current module
        del versioned["num_batches_tracked"]
        assert bn.load_state_dict(versioned, strict=False).missing_keys == \
            ["num_batches_tracked"]


def test_load_state_dict_assign():
    m = nn.Linear(2, 3)
    w = dtrain.randn(3, 2)
    m.load_state_dict({"weight": w, "bias": dtrain.zeros(3)}, assign=True)
    assert isinstance(m.weight, nn.Parameter) and m.weight.requires_grad
    np.testing.assert_array_equal(_np(m.weight), _np(w))


# --- modes, gradients, dtype ---------------------------------------------------------------------
def test_train_eval_propagate():
    m = build(dtrain)
    assert all(x.training for x in m.modules())
    assert m.eval() is m and not any(x.training for x in m.modules())
    assert m.train() is m and all(x.training for x in m.modules())
    m.layer2.train(False)
    assert not m.layer2.drop.training and m.layer1[0].bn.training

    class Frozen(nn.Module):  # an overridden train() is called, as torch does
        def train(self, mode=True):
            return super().train(False)
    m.layer2.add_module("frozen", Frozen())
    m.train()
    assert not m.layer2.frozen.training


def test_dropout_and_batchnorm_follow_mode():
    dtrain.manual_seed(0)
    drop, bn = nn.Dropout(0.5), nn.BatchNorm1d(3)
    x = dtrain.randn(64, 3) + 5
    assert (drop(x).numpy() == 0).any()
    bn(x)
    assert bn.num_batches_tracked.item() == 1 and bn.running_mean.numpy().min() > 0.3
    drop.eval()
    bn.eval()
    assert drop(x) is x
    before = bn.running_mean.numpy().copy()
    out = bn(x)
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)
    assert bn.num_batches_tracked.item() == 1
    expect = (x.numpy() - before) / np.sqrt(bn.running_var.numpy() + bn.eps)
    np.testing.assert_allclose(out.detach().numpy(), expect, rtol=1e-5, atol=1e-6)


def test_zero_grad_and_requires_grad(torch):
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    m(dtrain.randn(4, 3)).sum().backward()
    grads = [p.grad for p in m.parameters()]
    m.zero_grad(set_to_none=False)
    for p, g in zip(m.parameters(), grads):
        assert p.grad is g and not p.grad.numpy().any() and not p.grad.requires_grad
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    assert m.requires_grad_(False) is m
    assert not any(p.requires_grad for p in m.parameters())
    assert m(dtrain.randn(4, 3)).grad_fn is None
    m.requires_grad_()
    assert all(p.requires_grad for p in m.parameters())
    t = torch.nn.Linear(3, 2)
    assert t.zero_grad.__defaults__ == m.zero_grad.__defaults__ == (True,)


@pytest.mark.parametrize("method, dtype", [("double", "float64"), ("half", "float16"),
                                           ("float", "float32"), ("to", "float64")])
def test_dtype_conversion_keeps_parameters(method, dtype):
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    if method == "float":
        m.double()
    m(dtrain.randn(4, 3, dtype=m[0].weight.dtype)).sum().backward()
    params = list(m.parameters())
    grads = [p.grad for p in params]
    out = getattr(m, method)(*([getattr(dtrain, dtype)] if method == "to" else []))
    assert out is m
    assert list(m.parameters()) == params, "the same Parameter objects"
    for p, g in zip(params, grads):
        assert isinstance(p, nn.Parameter) and p.requires_grad and p.is_leaf
        assert p.dtype == getattr(dtrain, dtype)
        assert p.grad is g and p.grad.dtype == p.dtype, "the gradient is cast in place too"
    assert m[1].running_mean.dtype == getattr(dtrain, dtype)
    assert m[1].num_batches_tracked.dtype == dtrain.int64, "integer buffers are kept"
    m.to(dtype=dtrain.float32)
    assert m[0].weight.dtype == dtrain.float32
    assert m.to("cpu") is m and m.cpu() is m


def test_apply_order(torch):
    visited = []
    for lib in (dtrain, torch):
        seen = []
        build(lib).apply(lambda mod: seen.append(type(mod).__name__))
        visited.append(seen)
    assert visited[0] == visited[1]
    assert visited[0][-1] == "Net"


def test_apply_for_initialisation():
    m = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))

    def init(mod):
        if isinstance(mod, nn.Linear):
            nn.init.constant_(mod.weight, 0.5)
            nn.init.zeros_(mod.bias)
    assert m.apply(init) is m
    assert all((_np(layer.weight) == 0.5).all() for layer in (m[0], m[2]))


# --- containers ----------------------------------------------------------------------------------
def _kinds(seq):
    return [(name, type(m).__name__) for name, m in seq.named_children()]


def _seq_ops(lib):
    nn_ = lib.nn
    s = nn_.Sequential(nn_.Linear(2, 3), nn_.ReLU(), nn_.Linear(3, 4), nn_.Tanh())
    log = [len(s), type(s[0]).__name__, type(s[-1]).__name__, type(s[1:3]).__name__,
           _kinds(s[1:3]), _kinds(s[::2]), [type(m).__name__ for m in s]]
    s.append(nn_.Sigmoid())
    s[1] = nn_.GELU()
    log += [_kinds(s)]
    del s[0]
    log += [_kinds(s)]
    del s[1:3]
    log += [_kinds(s)]
    s.insert(1, nn_.Identity())
    s.extend([nn_.ReLU()])
    log += [_kinds(s), type(s.pop(0)).__name__, _kinds(s)]
    log += [_kinds(s + nn_.Sequential(nn_.Tanh()))]
    named = nn_.Sequential(OrderedDict([("a", nn_.ReLU()), ("b", nn_.Tanh())]))
    log += [_kinds(named), _kinds(named[1:]), type(named[1]).__name__]
    return log


def test_sequential(torch):
    assert _seq_ops(dtrain) == _seq_ops(torch)
    _same_error(lambda lib: lib.nn.Sequential(lib.nn.ReLU())[1], torch)
    _same_error(lambda lib: lib.nn.Sequential(lib.nn.ReLU())[-2], torch)
    x = dtrain.randn(5, 2)
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    np.testing.assert_array_equal(_np(s(x)), _np(s[1](s[0](x))))


def _list_ops(lib):
    nn_ = lib.nn
    ml = nn_.ModuleList([nn_.Linear(2, 2), nn_.ReLU()])
    log = [len(ml), type(ml[-1]).__name__, type(ml[:1]).__name__, _kinds(ml[:1])]
    ml.append(nn_.Tanh())
    ml.extend([nn_.Sigmoid(), nn_.GELU()])
    ml += [nn_.Identity()]
    ml.insert(1, nn_.Softmax(1))
    log += [_kinds(ml)]
    ml[0] = nn_.Linear(2, 5)
    del ml[2]
    log += [_kinds(ml), [type(m).__name__ for m in ml]]
    del ml[1:3]
    log += [_kinds(ml), type(ml.pop(1)).__name__, _kinds(ml), _names(ml.named_parameters())]
    md = nn_.ModuleDict({"b": nn_.ReLU(), "a": nn_.Linear(2, 2)})
    md["c"] = nn_.Tanh()
    md.update([("d", nn_.Sigmoid())])
    md.update({"a": nn_.Identity()})
    log += [list(md), list(md.keys()), [type(v).__name__ for v in md.values()],
            [(k, type(v).__name__) for k, v in md.items()], "c" in md, len(md)]
    log += [type(md.pop("c")).__name__, list(md)]
    del md["b"]
    log += [list(md), _names(md.named_modules())]
    md.clear()
    log += [len(md)]
    return log


def test_module_list_and_dict(torch):
    assert _list_ops(dtrain) == _list_ops(torch)
    _same_error(lambda lib: lib.nn.ModuleList([lib.nn.ReLU()])[3], torch)
    _same_error(lambda lib: lib.nn.ModuleDict({"a": lib.nn.ReLU()})["b"], torch)
    _same_error(lambda lib: lib.nn.ModuleDict(3), torch)
    _same_error(lambda lib: lib.nn.ModuleList(3), torch)
    _same_error(lambda lib: lib.nn.ModuleList().append(3), torch)


# --- repr ----------------------------------------------------------------------------------------
REPRS = [
    build,
    lambda lib: lib.nn.Sequential(
        lib.nn.Conv2d(1, 8, 3),
        lib.nn.Conv2d(8, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=2, groups=4,
                      bias=False),
        lib.nn.Conv2d(8, 4, 3, padding="same"), lib.nn.Conv2d(4, 4, 1, padding="valid"),
        lib.nn.MaxPool2d(2), lib.nn.MaxPool2d((3, 2), stride=1, padding=1, ceil_mode=True),
        lib.nn.AvgPool2d(3, stride=2, padding=1), lib.nn.AdaptiveAvgPool2d((1, 1)),
        lib.nn.AdaptiveAvgPool2d(3), lib.nn.AdaptiveMaxPool2d((2, 1)), lib.nn.Flatten(),
        lib.nn.Flatten(0, 2),
        lib.nn.Unflatten(1, (2, 2)), lib.nn.Identity()),
    lambda lib: lib.nn.Sequential(
        lib.nn.ReLU(), lib.nn.ReLU(inplace=True), lib.nn.LeakyReLU(), lib.nn.LeakyReLU(0.2, True),
        lib.nn.Sigmoid(), lib.nn.Tanh(), lib.nn.GELU(), lib.nn.GELU("tanh"), lib.nn.Softmax(1),
        lib.nn.Softmax(), lib.nn.LogSoftmax(dim=-1), lib.nn.Dropout(), lib.nn.Dropout(0.1, True)),
    lambda lib: lib.nn.ModuleDict({
        "bn": lib.nn.BatchNorm1d(3), "bn2": lib.nn.BatchNorm2d(4, momentum=None, affine=False),
        "bn3": lib.nn.BatchNorm2d(4, eps=1e-3, track_running_stats=False),
        "ln": lib.nn.LayerNorm(5), "ln2": lib.nn.LayerNorm([2, 3], elementwise_affine=False),
        "ln3": lib.nn.LayerNorm(4, eps=1e-6, bias=False), "emb": lib.nn.Embedding(10, 3),
        "emb2": lib.nn.Embedding(10, 3, padding_idx=0), "lin": lib.nn.Linear(3, 4, bias=False),
        "losses": lib.nn.ModuleList([
            lib.nn.CrossEntropyLoss(), lib.nn.CrossEntropyLoss(label_smoothing=0.1),
            lib.nn.NLLLoss(), lib.nn.MSELoss(reduction="sum"), lib.nn.L1Loss(), lib.nn.BCELoss(),
            lib.nn.BCEWithLogitsLoss(pos_weight=lib.ones(3))])}),
    lambda lib: lib.nn.ModuleList([lib.nn.Linear(2, 2) for _ in range(3)] + [lib.nn.ReLU()] +
                                  [lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.ReLU())] * 2),
    lambda lib: lib.nn.Sequential(),
    lambda lib: lib.nn.ModuleList(),
]


@pytest.mark.parametrize("i", range(len(REPRS)))
def test_repr(torch, i):
    assert repr(REPRS[i](dtrain)) == repr(REPRS[i](torch)).replace("torch.", "dtrain.")


def test_parameter(torch):
    data = [[1.0, -2.5], [0.25, 3.0]]
    d, t = nn.Parameter(dtrain.tensor(data)), torch.nn.Parameter(torch.tensor(data))
    assert repr(d) == repr(t).replace("torch.", "dtrain.")
    assert d.requires_grad and d.is_leaf and isinstance(d, dtrain.Tensor)
    assert not nn.Parameter(dtrain.ones(2), requires_grad=False).requires_grad
    assert tuple(nn.Parameter().shape) == tuple(torch.nn.Parameter().shape) == (0,)
    base = dtrain.zeros(3)
    p = nn.Parameter(base)
    p.data[0] = 1.0
    assert base[0].item() == 1.0, "shares memory with the tensor it is built from"
    for op in (lambda x: x * 2, lambda x: x.detach(), lambda x: x.data, lambda x: x.clone()):
        assert type(op(d)).__name__ == type(op(t)).__name__ == "Tensor"


def test_class_hierarchy(torch):
    """isinstance checks in user code (e.g. in an ``apply`` initialiser) must agree."""
    names = [n for n in nn.modules.__all__ if n != "Module"]
    for a in names:
        assert issubclass(getattr(nn, a), nn.Module)
        for b in names:
            assert issubclass(getattr(nn, a), getattr(nn, b)) == \
                issubclass(getattr(torch.nn, a), getattr(torch.nn, b)), (a, b)


# --- hooks and deepcopy --------------------------------------------------------------------------
def test_forward_hooks(torch):
    log = []
    for lib in (dtrain, torch):
        calls = []
        m = lib.nn.Linear(2, 2)
        x = lib.ones(1, 2)
        h1 = m.register_forward_pre_hook(lambda mod, args: calls.append(("pre", len(args))))
        h2 = m.register_forward_pre_hook(lambda mod, args: args[0] * 0)  # non-tuple: wrapped
        h3 = m.register_forward_hook(lambda mod, args, out: calls.append(
            ("post", mod is m, bool((args[0] == 0).all()), tuple(out.shape))))
        h4 = m.register_forward_hook(lambda mod, args, out: out + 100)
        out = m(x)
        calls.append(bool(((out - m.bias) == 100).all()))
        for h in (h2, h4):
            h.remove()
        out = m(x)
        calls.append(bool(((out - m.bias) == 100).any()))
        h1.remove()
        h3.remove()
        m(x)
        first = m.register_forward_hook(lambda mod, args, out: calls.append("second"))
        m.register_forward_hook(lambda mod, args, out: calls.append("first"), prepend=True)
        m(x)
        first.remove()
        m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {**kwargs, "input": x * 2})
                                    if kwargs else None, with_kwargs=True)
        calls.append(bool((m(input=x) == m(x * 2)).all()))
        m.register_forward_hook(lambda mod, args, kwargs, out: calls.append(sorted(kwargs)),
                                with_kwargs=True)
        m(input=x)
        log.append(calls)
    assert log[0] == log[1]


def test_deepcopy(torch):
    results = []
    for lib in (dtrain, torch):
        m = lib.nn.Sequential(lib.nn.Linear(3, 3), lib.nn.BatchNorm1d(3), lib.nn.Linear(3, 3))
        m[2].weight = m[0].weight
        m(lib.randn(4, 3)).sum().backward()
        c = copy.deepcopy(m)
        assert c[0].weight is not m[0].weight and isinstance(c[0].weight, lib.nn.Parameter)
        assert c[2].weight is c[0].weight, "tied weights stay tied"
        np.testing.assert_array_equal(_np(c[0].weight), _np(m[0].weight))
        np.testing.assert_array_equal(_np(c[1].running_mean), _np(m[1].running_mean))
        with lib.no_grad():
            c[0].weight.add_(1)
            c[1].running_mean.add_(1)
        assert not np.array_equal(_np(c[0].weight), _np(m[0].weight))
        assert not np.array_equal(_np(c[1].running_mean), _np(m[1].running_mean))
        results.append((c[0].weight.grad is None, c[0].weight.requires_grad, repr(c)))
    assert results[0] == (results[1][0], results[1][1], results[1][2].replace("torch.",
                                                                              "dtrain."))


# --- default initialisation ----------------------------------------------------------------------
KS_ALPHA_001 = 1.95  # Kolmogorov-Smirnov critical value * sqrt(n) at the 0.1% level


def _ks_uniform(values, bound):
    x = np.sort(values.ravel().astype(np.float64))
    n = len(x)
    cdf = (x + bound) / (2 * bound)
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    return d * math.sqrt(n)


def _ks_normal(values, std):
    x = np.sort(values.ravel().astype(np.float64))
    n = len(x)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / (std * math.sqrt(2))))
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    return d * math.sqrt(n)


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(512, 512), 512),
    (lambda: nn.Linear(20, 3000), 20),
    (lambda: nn.Conv2d(64, 64, 3), 576),
    (lambda: nn.Conv2d(16, 256, (3, 5), groups=4), 60),
], ids=["linear", "linear-wide", "conv", "conv-groups"])
def test_default_init_uniform(make, fan_in):
    dtrain.manual_seed(0)
    m = make()
    bound = 1 / math.sqrt(fan_in)
    for name in ("weight", "bias"):
        values = _np(getattr(m, name))
        assert np.abs(values).max() <= np.float32(bound), name
        if values.size >= 2000:
            assert _ks_uniform(values, bound) < KS_ALPHA_001, name
    assert m.weight.dtype == dtrain.float32 and m.weight.requires_grad


def test_default_init_others(torch):
    dtrain.manual_seed(0)
    emb = nn.Embedding(1000, 64)
    assert _ks_normal(_np(emb.weight), 1.0) < KS_ALPHA_001
    emb = nn.Embedding(10, 4, padding_idx=3)
    assert not _np(emb.weight)[3].any()
    for d, t in ((nn.BatchNorm1d(5), torch.nn.BatchNorm1d(5)),
                 (nn.BatchNorm2d(5, affine=False), torch.nn.BatchNorm2d(5, affine=False)),
                 (nn.LayerNorm((2, 5)), torch.nn.LayerNorm((2, 5)))):
        for (k, a), (_, b) in zip(d.state_dict().items(), t.state_dict().items()):
            np.testing.assert_array_equal(_np(a), b.numpy(), err_msg=k)
    small = nn.Linear(4, 3)
    assert np.abs(_np(small.weight)).max() <= 0.5 and np.abs(_np(small.bias)).max() <= 0.5
    dtrain.manual_seed(1)
    a = nn.Linear(4, 3).weight
    dtrain.manual_seed(1)
    assert np.array_equal(_np(nn.Linear(4, 3).weight), _np(a)), "seeded by manual_seed"


@pytest.mark.parametrize("name, args", [
    ("linear", ()), ("conv2d", ()), ("sigmoid", ()), ("tanh", ()), ("relu", ()),
    ("leaky_relu", ()), ("leaky_relu", (0.2,)), ("leaky_relu", (1,)), ("selu", ()),
    ("conv_transpose2d", ()),
])
def test_calculate_gain(torch, name, args):
    assert nn.init.calculate_gain(name, *args) == torch.nn.init.calculate_gain(name, *args)


def test_init_errors(torch):
    _same_error(lambda lib: lib.nn.init.calculate_gain("softplus"), torch)
    _same_error(lambda lib: lib.nn.init.calculate_gain("leaky_relu", "x"), torch)
    _same_error(lambda lib: lib.nn.init.kaiming_uniform_(lib.empty(3)), torch)
    _same_error(lambda lib: lib.nn.init.xavier_normal_(lib.empty(3)), torch)
    _same_error(lambda lib: lib.nn.init.kaiming_normal_(lib.empty(3, 3), mode="fan_x"), torch)
    _same_error(lambda lib: lib.nn.init.eye_(lib.empty(3, 3, 3)), torch)
    for lib in (dtrain, torch):
        with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
            assert lib.nn.init.kaiming_uniform_(lib.empty(0, 3)).shape == (0, 3)


INITS = [  # (call, kind, scale for the tensor shape (out, in, kh, kw) = (256, 64, 3, 3))
    (lambda t: nn.init.kaiming_uniform_(t), "uniform", math.sqrt(2) * math.sqrt(3 / 576)),
    (lambda t: nn.init.kaiming_uniform_(t, a=math.sqrt(5)), "uniform", 1 / math.sqrt(576)),
    (lambda t: nn.init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"), "uniform",
     math.sqrt(2) * math.sqrt(3 / 2304)),
    (lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"), "normal", math.sqrt(2 / 576)),
    (lambda t: nn.init.kaiming_normal_(t, a=0.1, mode="fan_out"), "normal",
     math.sqrt(2 / 1.01) / math.sqrt(2304)),
    (lambda t: nn.init.xavier_uniform_(t), "uniform", math.sqrt(6 / (576 + 2304))),
    (lambda t: nn.init.xavier_uniform_(t, gain=nn.init.calculate_gain("tanh")), "uniform",
     5 / 3 * math.sqrt(6 / (576 + 2304))),
    (lambda t: nn.init.xavier_normal_(t), "normal", math.sqrt(2 / (576 + 2304))),
    (lambda t: nn.init.xavier_normal_(t, gain=2.0), "normal", 2 * math.sqrt(2 / (576 + 2304))),
    (lambda t: nn.init.uniform_(t, -0.3, 0.3), "uniform", 0.3),
    (lambda t: nn.init.normal_(t, 0.0, 0.02), "normal", 0.02),
]


@pytest.mark.parametrize("i", range(len(INITS)))
def test_init_distributions(i):
    call, kind, scale = INITS[i]
    dtrain.manual_seed(i)
    t = dtrain.empty(256, 64, 3, 3)
    with dtrain.no_grad():
        out = call(t)
    assert out is t
    values = _np(t)[:64]  # 36864 draws are plenty for the test
    if kind == "uniform":
        assert np.abs(values).max() <= np.float32(scale)
        assert np.abs(values).max() > 0.999 * scale, "the whole range is used"
        assert _ks_uniform(values, scale) < KS_ALPHA_001
    else:
        assert abs(values.std() / scale - 1) < 0.02 and abs(values.mean()) < 0.02 * scale
        assert _ks_normal(values, scale) < KS_ALPHA_001


def test_init_in_place_on_parameters():
    m = nn.Linear(3, 4)
    w = m.weight
    version = w._version
    for fn in (nn.init.ones_, nn.init.zeros_, lambda t: nn.init.constant_(t, 0.3),
               nn.init.xavier_uniform_, nn.init.kaiming_normal_, nn.init.eye_,
               lambda t: nn.init.trunc_normal_(t, std=0.5, a=-0.2, b=0.4)):
        assert fn(w) is w and m.weight is w and w.requires_grad and w.grad_fn is None
    assert w._version > version
    values = _np(w)
    assert values.min() >= -0.2 and values.max() <= 0.4
    np.testing.assert_array_equal(_np(nn.init.eye_(dtrain.empty(2, 3))), np.eye(2, 3))
