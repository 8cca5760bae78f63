"""dtrain.optim against torch.optim, and against the update rules written out in numpy.

Every optimizer runs 50 steps for every combination of its options, over six parameters in
two groups (the second with half the lr): 2-d, 1-d and 0-d ones, one with requires_grad=False,
one that never gets a gradient and one that gets a gradient every other step. The gradient is
that of a fixed quadratic (concave when maximizing, so every run stays bounded) plus a seeded
noise sequence, computed in numpy from each library's own parameters, so both libraries see
the same arithmetic. Positions are compared after every step.

The numpy rules need no torch, so they prove the updates where torch is absent. Behaviour
tests take `lib`, parametrized over dtrain and torch: the same test passing on torch proves it
encodes torch's behaviour.
"""
import itertools
import pickle
import re

import numpy as np
import pytest

import dtrain
from dtrain import optim
from helpers import npy

STEPS = 50
SHAPES = [(3, 4), (5,), (), (2,), (3,), (2, 2)]
FROZEN, NO_GRAD, EVERY_OTHER = 3, 4, 5
SECOND_GROUP = (2, NO_GRAD, EVERY_OTHER)
NOISE = [[np.random.default_rng([t, i]).standard_normal(s) for i, s in enumerate(SHAPES)]
         for t in range(STEPS)]
ATOL = {"SGD": 1e-6, "Adagrad": 1e-5, "RMSprop": 1e-5, "Adam": 1e-5, "AdamW": 1e-5}


def grid(**options):
    return [dict(zip(options, values)) for values in itertools.product(*options.values())]


SGD_CASES = [c for c in grid(lr=[0.1], momentum=[0, 0.9], dampening=[0, 0.3],
                             nesterov=[False, True], weight_decay=[0, 0.1],
                             maximize=[False, True])
             if not c["nesterov"] or (c["momentum"] and not c["dampening"])]
ADAGRAD_CASES = grid(lr=[0.1], lr_decay=[0, 0.05], weight_decay=[0, 0.1],
                     initial_accumulator_value=[0, 0.5], eps=[1e-10, 1e-2],
                     maximize=[False, True])
RMSPROP_CASES = grid(lr=[0.01], alpha=[0.99, 0.5], eps=[1e-8], weight_decay=[0, 0.1],
                     momentum=[0, 0.9], centered=[False, True], maximize=[False, True])
# alpha = 0.5 and beta1 = 0.3 take the other branch of torch's lerp (weight >= 0.5)
ADAM_CASES = grid(lr=[0.01], betas=[(0.9, 0.999), (0.3, 0.6)], eps=[1e-8],
                  weight_decay=[0, 0.1], amsgrad=[False, True], maximize=[False, True])
CASES = ([("SGD", c) for c in SGD_CASES] + [("Adagrad", c) for c in ADAGRAD_CASES]
         + [("RMSprop", c) for c in RMSPROP_CASES] + [("Adam", c) for c in ADAM_CASES]
         + [("AdamW", c) for c in ADAM_CASES])


def case(name, **fixed):
    """The first case of ``name`` with the given options: one rich case per optimizer."""
    return next((n, c) for n, c in CASES if n == name and fixed.items() <= c.items())


RICH_CASES = [case("SGD", momentum=0.9, weight_decay=0.1, nesterov=True),
              case("Adagrad", lr_decay=0.05, initial_accumulator_value=0.5),
              case("RMSprop", momentum=0.9, centered=True, weight_decay=0.1),
              case("Adam", amsgrad=True, weight_decay=0.1),
              case("AdamW", amsgrad=True, weight_decay=0.1)]
CASE_IDS = [name + "-" + ",".join(f"{k}={v}" for k, v in c.items() if k != "lr")
            for name, c in CASES]


# --- the shared problem ------------------------------------------------------------------------

def make_params(lib, dtype=np.float32):
    rng = np.random.default_rng(0)
    params = [lib.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
              for s in SHAPES]
    params[FROZEN].requires_grad_(False)
    return params


def make_optimizer(lib, name, options, params, **extra):
    options = dict(options)
    lr = options.pop("lr")
    groups = [{"params": [p for i, p in enumerate(params) if i not in SECOND_GROUP]},
              {"params": [params[i] for i in SECOND_GROUP], "lr": lr / 2}]
    if lib is not dtrain:
        extra["foreach"] = False
    return getattr(lib.optim, name)(groups, lr=lr, **options, **extra)


def has_grad(i, t):
    return i not in (FROZEN, NO_GRAD) and not (i == EVERY_OTHER and t % 2)


def gradient(p, t, i, sign):
    """d/dp of sign * 0.25 * p**2 + noise . p, in p's dtype."""
    return np.asarray(sign * 0.5 * p + NOISE[t][i], dtype=p.dtype)


def set_grads(lib, params, t, sign):
    for i, p in enumerate(params):
        p.grad = lib.tensor(gradient(npy(p), t, i, sign)) if has_grad(i, t) else None


def sign_of(options):
    return -1.0 if options.get("maximize") else 1.0


def trajectory(lib, name, options, steps=STEPS, dtype=np.float32, edit=None):
    """The parameters after each step; ``edit(opt, t)`` may change the groups before step t."""
    params = make_params(lib, dtype)
    opt = make_optimizer(lib, name, options, params)
    out = []
    for t in range(steps):
        if edit is not None:
            edit(opt, t)
        set_grads(lib, params, t, sign_of(options))
        opt.step()
        out.append([npy(p) for p in params])
    return out


def assert_trajectories_close(ours, theirs, atol, rtol=1e-6):
    for t, (a, b) in enumerate(zip(ours, theirs)):
        for i, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol,
                                       err_msg=f"param {i} after step {t + 1}")


# --- the rules in numpy, written out ----------------------------------------------------------

def reference_update(name, o, p, g, s, t, lr):
    """One step of parameter p with gradient g, state dict s and step count t."""
    if o.get("maximize"):
        g = -g
    wd = o["weight_decay"]
    if name == "SGD":
        g = g + wd * p
        if o["momentum"]:
            s["b"] = g if t == 1 else o["momentum"] * s["b"] + (1 - o["dampening"]) * g
            g = g + o["momentum"] * s["b"] if o["nesterov"] else s["b"]
        return p - lr * g
    if name == "Adagrad":
        g = g + wd * p
        s["sum"] = s.get("sum", o["initial_accumulator_value"]) + g * g
        return p - lr / (1 + (t - 1) * o["lr_decay"]) * g / (np.sqrt(s["sum"]) + o["eps"])
    if name == "RMSprop":
        g = g + wd * p
        a = o["alpha"]
        s["v"] = a * s.get("v", 0) + (1 - a) * g * g
        if o["centered"]:
            s["m"] = a * s.get("m", 0) + (1 - a) * g
            avg = np.sqrt(s["v"] - s["m"] ** 2) + o["eps"]
        else:
            avg = np.sqrt(s["v"]) + o["eps"]
        if o["momentum"]:
            s["b"] = o["momentum"] * s.get("b", 0) + g / avg
            return p - lr * s["b"]
        return p - lr * g / avg
    b1, b2 = o["betas"]
    if name == "AdamW":
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
    s["v"] = v = b2 * s.get("v", 0) + (1 - b2) * g * g
    if o["amsgrad"]:
        s["vmax"] = v = np.maximum(s.get("vmax", 0), v)
    return p - lr * (s["m"] / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + o["eps"])


def reference_trajectory(name, options, steps=STEPS):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype(np.float64) for s in SHAPES]
    states, counts, out = [{} for _ in SHAPES], [0] * len(SHAPES), []
    for t in range(steps):
        for i, p in enumerate(params):
            if has_grad(i, t):
                counts[i] += 1
                lr = options["lr"] / 2 if i in SECOND_GROUP else options["lr"]
                g = gradient(p, t, i, sign_of(options))
                params[i] = np.asarray(reference_update(name, options, p, g, states[i],
                                                        counts[i], lr))
        out.append([p.copy() for p in params])
    return out


# --- trajectories --------------------------------------------------------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_trajectory_matches_torch(torch, name, options):
    assert_trajectories_close(trajectory(dtrain, name, options),
                              trajectory(torch, name, options), ATOL[name])


@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_trajectory_matches_numpy_rule(name, options):
    # float64 parameters, so the comparison can be much tighter than float32 allows
    ours = trajectory(dtrain, name, options, dtype=np.float64)
    assert_trajectories_close(ours, reference_trajectory(name, options), atol=1e-10, rtol=1e-9)
    first = ours[0]
    np.testing.assert_array_equal(first[FROZEN], make_params(dtrain, np.float64)[FROZEN]._data)


def test_the_problem_moves_every_trained_parameter():
    before, after = make_params(dtrain), trajectory(dtrain, "SGD", SGD_CASES[0])[-1]
    for i, (b, a) in enumerate(zip(before, after)):
        assert np.array_equal(b._data, a) == (i in (FROZEN, NO_GRAD)), i


def test_float32_trajectory_stays_close_to_the_float64_rule():
    for name, options in [("SGD", SGD_CASES[-1]), ("Adam", ADAM_CASES[-1])]:
        assert_trajectories_close(trajectory(dtrain, name, options),
                                  reference_trajectory(name, options), atol=1e-5, rtol=1e-5)


def edit_lrs(opt, t):
    if t == 10:
        opt.param_groups[0]["lr"] = 0.05
        opt.param_groups[1]["lr"] = 0.0
    if t == 20:
        opt.param_groups[1]["lr"] = 0.02


@pytest.mark.torch
@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_lr_edits_match_torch(torch, name):
    options = next(c for n, c in CASES if n == name and c["weight_decay"])
    assert_trajectories_close(trajectory(dtrain, name, options, 30, edit=edit_lrs),
                              trajectory(torch, name, options, 30, edit=edit_lrs), ATOL[name])


def test_lr_edit_takes_effect_at_the_next_step():
    p = dtrain.tensor([1.0, 2.0], requires_grad=True)
    q = dtrain.tensor([3.0], requires_grad=True)
    opt = optim.SGD([{"params": [p]}, {"params": [q]}], lr=0.1)
    opt.param_groups[0]["lr"] = 0.5
    opt.param_groups[1]["lr"] = 0.0
    p.grad, q.grad = dtrain.tensor([1.0, -2.0]), dtrain.tensor([4.0])
    opt.step()
    np.testing.assert_allclose(p._data, [0.5, 3.0])
    np.testing.assert_array_equal(q._data, [3.0])


# --- state ---------------------------------------------------------------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("name, options", RICH_CASES)
def test_state_dict_layout_matches_torch(torch, name, options):
    dicts = []
    for lib in (dtrain, torch):
        params = make_params(lib)
        opt = make_optimizer(lib, name, options, params, foreach=False)
        for t in range(3):
            set_grads(lib, params, t, sign_of(options))
            opt.step()
        dicts.append(opt.state_dict())
    ours, theirs = dicts
    assert ours["param_groups"] == theirs["param_groups"]
    assert list(ours["state"]) == list(theirs["state"])
    for index, state in theirs["state"].items():
        assert list(ours["state"][index]) == list(state)
        for key, value in state.items():
            mine = ours["state"][index][key]
            assert isinstance(mine, dtrain.Tensor)
            assert (mine.dtype.name, tuple(mine.shape)) == (str(value.dtype)[6:], value.shape)
            np.testing.assert_allclose(mine._data, value.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, options", RICH_CASES)
def test_state_dict_round_trip_continues_the_same_trajectory(name, options):
    params = make_params(dtrain)
    opt = make_optimizer(dtrain, name, options, params)
    for t in range(10):
        set_grads(dtrain, params, t, sign_of(options))
        opt.step()
    saved = pickle.loads(pickle.dumps(opt.state_dict()))
    clones = [dtrain.tensor(npy(p), requires_grad=p.requires_grad) for p in params]
    other = make_optimizer(dtrain, name, dict(options, lr=123.0), clones)
    other.load_state_dict(saved)
    assert other.param_groups[1]["lr"] == options["lr"] / 2
    assert other.param_groups[0]["params"][0] is clones[0]
    for t in range(10, 30):
        for lib_params, o in ((params, opt), (clones, other)):
            set_grads(dtrain, lib_params, t, sign_of(options))
            o.step()
        for a, b in zip(params, clones):
            np.testing.assert_array_equal(a._data, b._data)


def test_load_state_dict_copies_the_state():
    p = dtrain.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam([p])
    p.grad = dtrain.tensor([1.0, 1.0])
    opt.step()
    q = dtrain.tensor([1.0, 2.0], requires_grad=True)
    other = optim.Adam([q])
    other.load_state_dict(opt.state_dict())
    assert other.state[q]["exp_avg"] is not opt.state[p]["exp_avg"]
    np.testing.assert_array_equal(other.state[q]["exp_avg"]._data, opt.state[p]["exp_avg"]._data)
    assert other.state[q]["step"].dtype == dtrain.float32


def test_state_step_is_a_0d_float32_tensor():
    p = dtrain.tensor([1.0, 2.0], requires_grad=True)
    for opt in (optim.Adam([p]), optim.Adagrad([p]), optim.RMSprop([p])):
        for _ in range(3):
            p.grad = dtrain.tensor([1.0, 1.0])
            opt.step()
        step = opt.state[p]["step"]
        assert isinstance(step, dtrain.Tensor) and step.shape == () and step.item() == 3.0
        assert step.dtype == dtrain.float32


def test_adagrad_creates_state_at_construction(lib):
    p = lib.tensor([1.0, 2.0], requires_grad=True)
    opt = lib.optim.Adagrad([p], initial_accumulator_value=0.5)
    assert list(opt.state_dict()["state"]) == [0]
    assert npy(opt.state[p]["sum"]).tolist() == [0.5, 0.5]
    q = lib.tensor([3.0], requires_grad=True)
    opt.add_param_group({"params": [q], "initial_accumulator_value": 9.0})
    q.grad = lib.tensor([0.0])
    opt.step()
    assert npy(opt.state[q]["sum"]).tolist() == [0.5]  # torch takes the default's value here


def test_sgd_without_momentum_keeps_no_state(lib):
    p = lib.tensor([1.0], requires_grad=True)
    opt = lib.optim.SGD([p], lr=0.1)
    p.grad = lib.tensor([1.0])
    opt.step()
    assert opt.state_dict()["state"] == {}


def test_load_state_dict_errors(lib):
    p, q = (lib.tensor([1.0], requires_grad=True) for _ in range(2))
    saved = lib.optim.SGD([p, q]).state_dict()
    with pytest.raises(ValueError, match="loaded state dict has a different number of "
                                         "parameter groups"):
        lib.optim.SGD([{"params": [p]}, {"params": [q]}]).load_state_dict(saved)
    with pytest.raises(ValueError, match="loaded state dict contains a parameter group that "
                                         "doesn't match the size of optimizer's group"):
        lib.optim.SGD([p]).load_state_dict(saved)


# --- the step itself ----------------------------------------------------------------------------

def test_step_takes_a_closure_and_returns_its_loss(lib):
    p = lib.tensor([1.0, -2.0], requires_grad=True)
    opt = lib.optim.SGD([p], lr=0.1)
    seen = []

    def closure():
        seen.append(lib.is_grad_enabled())
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with lib.no_grad():
        loss = opt.step(closure)
    assert seen == [True] and loss.item() == 5.0
    np.testing.assert_allclose(npy(p), [0.8, -1.6])


def test_step_updates_in_place_and_bumps_the_version(lib):
    p = lib.tensor([1.0, 2.0], requires_grad=True)
    storage, version = p.data_ptr(), p._version
    opt = lib.optim.Adam([p])
    p.grad = lib.tensor([1.0, 1.0])
    opt.step()
    assert p.data_ptr() == storage and p._version > version


def test_parameters_without_grad_are_skipped(lib):
    p = lib.tensor([1.0], requires_grad=True)
    frozen = lib.tensor([2.0])
    opt = lib.optim.Adam([p, frozen], weight_decay=0.1)
    opt.step()
    assert npy(p).tolist() == [1.0] and npy(frozen).tolist() == [2.0] and len(opt.state) == 0


def test_zero_grad(lib):
    p = lib.tensor([1.0, 2.0], requires_grad=True)
    opt = lib.optim.SGD([p])
    p.grad = lib.tensor([3.0, 4.0])
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and npy(grad).tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None


def test_repr_matches_torch(torch):
    for name in ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW"):
        ours = getattr(optim, name)([dtrain.tensor([1.0], requires_grad=True)], lr=0.5)
        theirs = getattr(torch.optim, name)([torch.tensor([1.0], requires_grad=True)], lr=0.5)
        assert repr(ours) == repr(theirs)


# --- errors --------------------------------------------------------------------------------------

INVALID = [
    ("SGD", {"lr": -1}, "Invalid learning rate: -1"),
    ("SGD", {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    ("SGD", {"weight_decay": -1e-3}, "Invalid weight_decay value: -0.001"),
    ("SGD", {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
     "Nesterov momentum requires a momentum and zero dampening"),
    ("Adagrad", {"lr": -0.1}, "Invalid learning rate: -0.1"),
    ("Adagrad", {"lr_decay": -1}, "Invalid lr_decay value: -1"),
    ("Adagrad", {"weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("Adagrad", {"initial_accumulator_value": -1}, "Invalid initial_accumulator_value value: -1"),
    ("Adagrad", {"eps": -1}, "Invalid epsilon value: -1"),
    ("RMSprop", {"lr": -1}, "Invalid learning rate: -1"),
    ("RMSprop", {"eps": -1}, "Invalid epsilon value: -1"),
    ("RMSprop", {"momentum": -1}, "Invalid momentum value: -1"),
    ("RMSprop", {"weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("RMSprop", {"alpha": -1}, "Invalid alpha value: -1"),
    ("Adam", {"lr": -1}, "Invalid learning rate: -1"),
    ("Adam", {"eps": -1}, "Invalid epsilon value: -1"),
    ("Adam", {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
    ("Adam", {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    ("Adam", {"weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("Adam", {"betas": (0, 0.9)}, "betas must be either both floats or both Tensors"),
    ("AdamW", {"lr": -1}, "Invalid learning rate: -1"),
    ("AdamW", {"betas": (0.9, 1.5)}, "Invalid beta parameter at index 1: 1.5"),
]


@pytest.mark.parametrize("name, kwargs, message", INVALID,
                         ids=[f"{n}-{m}" for n, _, m in INVALID])
def test_invalid_hyperparameters(lib, name, kwargs, message):
    p = lib.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        getattr(lib.optim, name)([p], **kwargs)


def test_invalid_params(lib):
    p = lib.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        lib.optim.SGD([])
    with pytest.raises(TypeError, match="params argument given to the optimizer should be an "
                                        r"iterable of Tensors or dicts, but got \w+.FloatTensor"):
        lib.optim.SGD(p)
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors, but one of the "
                                        "params is list"):
        lib.optim.SGD([[1.0]])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        lib.optim.SGD([p * 2])
    with pytest.raises(TypeError, match="optimizer parameters need to be organized in ordered "
                                        "collections"):
        lib.optim.SGD([{"params": {p}}])
    opt = lib.optim.SGD([p])
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter "
                                         "group"):
        opt.add_param_group({"params": [p]})
    with pytest.raises(TypeError, match="param_group must be a dict, but got <class 'list'>"):
        opt.add_param_group([p])
    with pytest.warns(UserWarning, match="optimizer contains a parameter group with duplicate"):
        lib.optim.SGD([p, p])


def test_param_groups_take_defaults_and_names(lib):
    p, q = lib.tensor([1.0], requires_grad=True), lib.tensor([2.0], requires_grad=True)
    opt = lib.optim.SGD([{"params": p}, {"params": [q], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["momentum"] for g in opt.param_groups] == [0, 0.9]
    assert opt.param_groups[0]["params"][0] is p
    named = lib.optim.Adam([("w", p), ("b", q)])
    assert named.param_groups[0]["param_names"] == ["w", "b"]
    assert named.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]


@pytest.mark.parametrize("kwargs", [{"fused": True}, {"differentiable": True},
                                    {"capturable": True}])
def test_unsupported_implementations_say_so(kwargs):
    with pytest.raises(NotImplementedError, match="is not supported"):
        optim.Adam([dtrain.tensor([1.0], requires_grad=True)], **kwargs)
