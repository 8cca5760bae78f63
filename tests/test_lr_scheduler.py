"""dtrain.optim.lr_scheduler: lr sequences against torch's, step by step, and against the
closed forms (which need no torch).

Each run builds SGD (or Adam) with two parameter groups, makes a scheduler, and records after
every ``optimizer.step(); scheduler.step()`` the lrs, ``get_last_lr()``, ``last_epoch`` and the
momentum (or betas). Both libraries compute in Python floats with the same formulas, so the
sequences must be equal, not merely close.
"""
import math
import warnings

import pytest

import dtrain
from dtrain import optim
from dtrain.optim import lr_scheduler

STEPS = 30


def make_optimizer(lib, kind="SGD"):
    groups = [{"params": [lib.tensor([1.0], requires_grad=True)]},
              {"params": [lib.tensor([2.0], requires_grad=True)], "lr": 0.05}]
    if kind == "Adam":
        return lib.optim.Adam(groups, lr=0.1)
    return lib.optim.SGD(groups, lr=0.1, momentum=0.9)


def snapshot(opt, sched):
    groups = opt.param_groups
    return ([g["lr"] for g in groups], list(sched.get_last_lr()), sched.last_epoch,
            [g.get("momentum", g.get("betas")) for g in groups])


def run(lib, schedulers, steps=STEPS, kind="SGD", edit=None):
    """The snapshots after each step; ``schedulers`` is a list of (name, kwargs) all attached
    to one optimizer (more than one chains them)."""
    opt = make_optimizer(lib, kind)
    scheds = [getattr(lib.optim.lr_scheduler, name)(opt, **kw) for name, kw in schedulers]
    out = [snapshot(opt, scheds[-1])]
    for t in range(steps):
        opt.step()
        for s in scheds:
            s.step()
        if edit is not None:
            edit(opt, t)
        out.append(snapshot(opt, scheds[-1]))
    return out


SCHEDULES = {
    "StepLR": ("StepLR", {"step_size": 7, "gamma": 0.5}),
    "MultiStepLR": ("MultiStepLR", {"milestones": [3, 8, 8, 20], "gamma": 0.3}),
    "ExponentialLR": ("ExponentialLR", {"gamma": 0.9}),
    "CosineAnnealingLR": ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),
    "LambdaLR": ("LambdaLR", {"lr_lambda": lambda epoch: 1 / (1 + epoch)}),
    "LambdaLR-per-group": ("LambdaLR", {"lr_lambda": [lambda e: 0.9 ** e, lambda e: e % 4]}),
    "LinearLR": ("LinearLR", {"start_factor": 0.25, "end_factor": 0.9, "total_iters": 12}),
    "LinearLR-decay": ("LinearLR", {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 20}),
    "OneCycleLR": ("OneCycleLR", {"max_lr": [0.5, 0.2], "total_steps": STEPS}),
    "OneCycleLR-linear-3phase": ("OneCycleLR", {"max_lr": 0.5, "total_steps": STEPS + 5,
                                                "anneal_strategy": "linear",
                                                "three_phase": True}),
    "OneCycleLR-epochs": ("OneCycleLR", {"max_lr": 0.5, "epochs": 3, "steps_per_epoch": 10,
                                         "cycle_momentum": False, "pct_start": 0.5}),
}


@pytest.mark.torch
@pytest.mark.parametrize("key", SCHEDULES)
def test_sequence_matches_torch(torch, key):
    assert run(dtrain, [SCHEDULES[key]]) == run(torch, [SCHEDULES[key]])


@pytest.mark.torch
def test_one_cycle_cycles_adam_beta1_like_torch(torch):
    schedule = [SCHEDULES["OneCycleLR"]]
    assert run(dtrain, schedule, kind="Adam") == run(torch, schedule, kind="Adam")


@pytest.mark.torch
@pytest.mark.parametrize("keys", [("StepLR", "ExponentialLR"), ("LinearLR", "CosineAnnealingLR"),
                                  ("MultiStepLR", "LambdaLR")])
def test_chained_schedulers_match_torch(torch, keys):
    schedule = [SCHEDULES[k] for k in keys]
    assert run(dtrain, schedule) == run(torch, schedule)


def halve_lr_at_step_5(opt, t):
    if t == 5:
        for group in opt.param_groups:
            group["lr"] /= 2


@pytest.mark.torch
@pytest.mark.parametrize("key", ["StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR"])
def test_user_lr_edits_chain_like_torch(torch, key):
    schedule = [SCHEDULES[key]]
    assert (run(dtrain, schedule, edit=halve_lr_at_step_5)
            == run(torch, schedule, edit=halve_lr_at_step_5))


@pytest.mark.torch
@pytest.mark.parametrize("key", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                 "LinearLR"])
def test_deprecated_epoch_argument_uses_the_closed_form_like_torch(torch, key):
    results = []
    for lib in (dtrain, torch):
        opt = make_optimizer(lib)
        name, kwargs = SCHEDULES[key]
        sched = getattr(lib.optim.lr_scheduler, name)(opt, **kwargs)
        lrs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in (3, 9, 4, 25, 12):
                opt.step()
                sched.step(epoch)
                lrs.append(sched.get_last_lr())
        results.append(lrs)
    assert results[0] == results[1]


# --- ReduceLROnPlateau -------------------------------------------------------------------------

METRICS = [1.0, 0.9, 0.95, 0.95, 0.96, 0.97, 0.5, 0.6, 0.6, 0.6, 0.6, 0.49995, 0.7, 0.7, 0.3,
           0.3, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
PLATEAU = [
    {"patience": 2},
    {"mode": "max", "patience": 1, "threshold": 0.05, "threshold_mode": "abs"},
    {"patience": 0, "cooldown": 2, "factor": 0.5, "min_lr": [0.01, 0.02]},
    {"patience": 1, "factor": 0.5, "min_lr": 0.02, "eps": 0.01},
    {"patience": 3, "threshold": 0.1},
]


def plateau_run(lib, kwargs, metrics=METRICS):
    opt = make_optimizer(lib)
    sched = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    out = []
    for metric in metrics:
        opt.step()
        sched.step(metric)
        out.append(([g["lr"] for g in opt.param_groups], sched.get_last_lr(), sched.last_epoch,
                    sched.best, sched.num_bad_epochs, sched.cooldown_counter))
    return out


@pytest.mark.torch
@pytest.mark.parametrize("kwargs", PLATEAU, ids=[str(k) for k in PLATEAU])
def test_reduce_on_plateau_matches_torch(torch, kwargs):
    assert plateau_run(dtrain, kwargs) == plateau_run(torch, kwargs)


def test_reduce_on_plateau_by_hand():
    lrs = [lr[0][0] for lr in plateau_run(dtrain, {"patience": 2})]
    # best 0.9 at epoch 2; epochs 3-5 are bad, and the third of them (> patience) reduces
    assert lrs[:4] == [0.1] * 4
    assert lrs[4:9] == pytest.approx([0.01] * 5)
    # 0.5 at epoch 7 is the new best; 0.6 three times reduces at epoch 10; then 0.49995 is not
    # better than 0.5 by the relative threshold 1e-4, so 0.6, 0.49995, 0.7 reduce at epoch 13
    assert lrs[9:12] == pytest.approx([0.001] * 3)
    assert lrs[12] == pytest.approx(1e-4)


def test_reduce_on_plateau_errors_and_state(lib):
    opt = make_optimizer(lib)
    with pytest.raises(ValueError, match=r"Factor should be < 1.0."):
        lib.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown!"):
        lib.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 3"):
        lib.optim.lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0, 0, 0])
    sched = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    for metric in (1.0, 2.0):
        sched.step(lib.tensor(metric))
    state = sched.state_dict()
    assert "optimizer" not in state and state["best"] == 1.0 and state["last_epoch"] == 2
    fresh = lib.optim.lr_scheduler.ReduceLROnPlateau(make_optimizer(lib))
    fresh.load_state_dict(state)
    assert fresh.best == 1.0 and fresh.patience == 0


# --- closed forms, without torch ---------------------------------------------------------------

def lrs_of(key, steps=STEPS):
    return [snap[0][0] for snap in run(dtrain, [SCHEDULES[key]], steps)]


def test_step_and_multistep_closed_forms():
    assert lrs_of("StepLR") == pytest.approx([0.1 * 0.5 ** (e // 7) for e in range(STEPS + 1)])
    expected = [0.1 * 0.3 ** sum(m <= e for m in (3, 8, 8, 20)) for e in range(STEPS + 1)]
    assert lrs_of("MultiStepLR") == pytest.approx(expected)


def test_exponential_and_lambda_closed_forms():
    assert lrs_of("ExponentialLR") == pytest.approx([0.1 * 0.9 ** e for e in range(STEPS + 1)])
    assert lrs_of("LambdaLR") == pytest.approx([0.1 / (1 + e) for e in range(STEPS + 1)])


def test_cosine_annealing_follows_the_cosine_and_comes_back_up():
    expected = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2
                for e in range(STEPS + 1)]
    assert lrs_of("CosineAnnealingLR") == pytest.approx(expected, abs=1e-12)


def test_linear_warmup_closed_form():
    expected = [0.1 * (0.25 + 0.65 * min(e, 12) / 12) for e in range(STEPS + 1)]
    assert lrs_of("LinearLR") == pytest.approx(expected)


def test_one_cycle_shape():
    snaps = run(dtrain, [SCHEDULES["OneCycleLR"]])
    lrs, momenta = [s[0][0] for s in snaps], [s[3][0] for s in snaps]
    peak = lrs.index(max(lrs))
    assert lrs[0] == pytest.approx(0.5 / 25) and max(lrs) == pytest.approx(0.5)
    assert peak == round(0.3 * STEPS) - 1
    # the last step of the cycle is total_steps - 1 (as in torch, one more step overshoots)
    assert lrs[STEPS - 1] == pytest.approx(0.5 / 25 / 1e4)
    assert momenta[0] == 0.95 and momenta[peak] == pytest.approx(0.85)
    assert momenta[STEPS - 1] == pytest.approx(0.95)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:STEPS - 1], lrs[peak + 1:STEPS]))


# --- behaviour -----------------------------------------------------------------------------------

def test_one_cycle_refuses_to_run_past_its_total_steps(lib):
    opt = make_optimizer(lib)
    sched = lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=3)
    for _ in range(3):
        opt.step()
        sched.step()
    opt.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total "
                                         "steps is 3"):
        sched.step()


def test_one_cycle_argument_errors(lib):
    opt = make_optimizer(lib)
    one_cycle = lib.optim.lr_scheduler.OneCycleLR
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        one_cycle(opt, max_lr=0.5)
    with pytest.raises(ValueError, match="Expected positive integer total_steps, but got 0"):
        one_cycle(opt, max_lr=0.5, total_steps=0)
    with pytest.raises(ValueError, match="Expected float between 0 and 1 pct_start, but got 2"):
        one_cycle(opt, max_lr=0.5, total_steps=5, pct_start=2)
    with pytest.raises(ValueError, match="max_lr must have the same length as "
                                         "optimizer.param_groups"):
        one_cycle(opt, max_lr=[0.5], total_steps=5)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        one_cycle(lib.optim.Adagrad([lib.tensor([1.0], requires_grad=True)]), max_lr=0.5,
                  total_steps=5)


def test_scheduler_state_dict_round_trip(lib):
    for name, kwargs in (SCHEDULES["CosineAnnealingLR"], SCHEDULES["OneCycleLR"],
                         SCHEDULES["LinearLR"], SCHEDULES["LambdaLR"]):
        opt = make_optimizer(lib)
        sched = getattr(lib.optim.lr_scheduler, name)(opt, **kwargs)
        for _ in range(10):
            opt.step()
            sched.step()
        opt2 = make_optimizer(lib)
        sched2 = getattr(lib.optim.lr_scheduler, name)(opt2, **kwargs)
        opt2.load_state_dict(opt.state_dict())
        sched2.load_state_dict(sched.state_dict())
        assert "optimizer" not in sched.state_dict()
        for _ in range(15):
            for o, s in ((opt, sched), (opt2, sched2)):
                o.step()
                s.step()
            assert sched2.get_last_lr() == sched.get_last_lr()
            assert sched2.last_epoch == sched.last_epoch


def test_scheduler_sets_initial_lr_and_resume_needs_it(lib):
    opt = make_optimizer(lib)
    with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in "
                                       r"param_groups\[0\] when resuming"):
        lib.optim.lr_scheduler.StepLR(opt, step_size=2, last_epoch=4)
    sched = lib.optim.lr_scheduler.StepLR(opt, step_size=2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.05]
    assert sched.base_lrs == [0.1, 0.05] and sched.last_epoch == 0
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        lib.optim.lr_scheduler.StepLR([], step_size=2)


def test_warnings(lib):
    opt = make_optimizer(lib)
    sched = lib.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    with pytest.warns(UserWarning, match=r"Detected call of `lr_scheduler.step\(\)` before "
                                         r"`optimizer.step\(\)`"):
        sched.step()
    with pytest.warns(UserWarning, match=r"please use `get_last_lr\(\)`"):
        sched.get_lr()
    opt = make_optimizer(lib)
    sched = lib.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [0.05, 0.025]


def test_lambda_state_dict_skips_plain_functions(lib):
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    opt = make_optimizer(lib)
    sched = lib.optim.lr_scheduler.LambdaLR(opt, [lambda e: 1.0, Decay(0.5)])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [None, {"rate": 0.5}]
    other = lib.optim.lr_scheduler.LambdaLR(make_optimizer(lib), [lambda e: 1.0, Decay(0.9)])
    other.load_state_dict(state)
    assert other.lr_lambdas[1].rate == 0.5


def test_module_exports():
    assert optim.lr_scheduler is lr_scheduler
    for name in ("LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR",
                 "CosineAnnealingLR", "LinearLR", "OneCycleLR", "ReduceLROnPlateau"):
        assert hasattr(lr_scheduler, name)
