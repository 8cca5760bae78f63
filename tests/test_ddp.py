"""DistributedDataParallel in real processes on 127.0.0.1.

The invariant (DESIGN.md section 5): N ranks with per-rank batch B train the same model as one
process with the global batch N*B, step after step, with bit-identical replicas. Then the
features (no_sync, unused parameters, BatchNorm buffers, buckets, sub-groups, state_dict), the
errors, torch's DDP over gloo as a reference, and PyTorch's DDP tutorial as an example.

Starting processes costs ~1 s per run, so each run_ranks does many checks: the children only
compute and return numbers (each scenario caught separately, so one failure hides no other),
and the parent compares. Helpers at module level travel by reference (the children import
this file from tests/, which is on their PYTHONPATH).
"""
import contextlib
import hashlib
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

import dtrain
from multiproc import free_port, run_ranks

ROOT = Path(__file__).resolve().parent.parent
# a hang inside dtrain becomes a DistTimeoutError naming the op, well before run_ranks' timeout
ENV = {"DTRAIN_TIMEOUT": "20"}
STEPS = 5
GLOBAL_BATCH = 8
# NOTE: float32 needs an atol too: a parameter that passes near zero keeps the absolute rounding
# of its neighbours (~1e-9 here), which is a large relative error
TOL = {"float64": dict(rtol=1e-10, atol=0), "float32": dict(rtol=1e-5, atol=1e-7)}


# --- shared by the parent and the children; `lib` is dtrain or torch ----------------------------

def make_model(lib, kind):
    nn = lib.nn
    if kind == "mlp":
        return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(),
                             nn.Linear(16, 3))
    if kind == "cnn":
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(24, 3))
    if kind == "bn":  # BatchNorm first, so the parent can predict the running statistics
        return nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    raise ValueError(kind)


def make_optimizer(lib, name, params):
    if name == "sgd":
        return lib.optim.SGD(params, lr=0.1, momentum=0.9)
    return lib.optim.Adam(params, lr=0.01)


def batches(kind, dtype, steps=STEPS, size=GLOBAL_BATCH, seed=1):
    """``steps`` global batches (inputs, class targets), the same in every process."""
    rng = np.random.default_rng(seed)
    shape = (1, 8, 8) if kind == "cnn" else (6,)
    xs = rng.standard_normal((steps, size) + shape).astype(dtype)
    return xs, rng.integers(0, 3, (steps, size))


def fixed_params(module, seed=7):
    """Deterministic starting values, so that dtrain and torch start from the same model."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.4, 0.4, tuple(p.shape)) for p in module.parameters()]


def load_params(lib, module, arrays):
    with lib.no_grad():
        for p, a in zip(module.parameters(), arrays):
            p.copy_(lib.from_numpy(np.asarray(a, dtype=p.detach().numpy().dtype)))


def snapshot(tensors):
    return [np.array(t.detach().numpy(), copy=True) for t in tensors]


def grads(module):
    return {n: None if p.grad is None else np.array(p.grad.numpy(), copy=True)
            for n, p in module.named_parameters()}


def digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def train_step(lib, model, opt, x, y):
    opt.zero_grad()
    lib.nn.functional.cross_entropy(model(lib.from_numpy(x)), lib.from_numpy(y)).backward()
    opt.step()


def reference_run(kind, opt_name, dtype, start, xs, ys):
    """One process, the whole global batch each step: the parameters after every step."""
    model = make_model(dtrain, kind).to(getattr(dtrain, dtype))
    load_params(dtrain, model, start)
    opt = make_optimizer(dtrain, opt_name, model.parameters())
    out = []
    for x, y in zip(xs, ys):
        train_step(dtrain, model, opt, x, y)
        out.append(snapshot(model.parameters()))
    return out


def scenarios(fns):
    """Run each scenario; a failure is returned (not raised) so that the others still run."""
    out = {}
    for name, fn in fns:
        try:
            out[name] = ("ok", fn())
        except Exception as e:  # noqa: BLE001 - reported to the parent with its traceback
            out[name] = ("error", f"{type(e).__name__}: {e}", traceback.format_exc())
    return out


def result(runs, name, rank=None):
    """The value scenario ``name`` returned on every rank (or one rank); fails on an error."""
    got = []
    for r, res in enumerate(runs):
        status = res[name]
        if status[0] != "ok":
            pytest.fail(f"scenario {name!r} raised on rank {r}: {status[1]}\n{status[2]}")
        got.append(status[1])
    return got if rank is None else got[rank]


def assert_close_lists(actual, expected, what, **tol):
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(a, e, err_msg=f"{what}, tensor {i}", **tol)


# --- 1. N ranks == one process on the global batch; replicas bit-identical ---------------------

CASES = [(kind, opt, dtype) for kind in ("mlp", "cnn") for opt in ("sgd", "adam")
         for dtype in ("float64", "float32")]


def _equivalence_child(rank, world, cases):
    import dtrain.distributed as dist
    from dtrain.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("gloo")
    b = GLOBAL_BATCH // world

    def case(kind, opt_name, dtype):
        dtrain.manual_seed(100 + rank)  # a different model on every rank: DDP copies rank 0's
        module = make_model(dtrain, kind).to(getattr(dtrain, dtype))
        before = snapshot(module.parameters())
        model = DDP(module)
        after = snapshot(module.parameters())
        opt = make_optimizer(dtrain, opt_name, model.parameters())
        xs, ys = batches(kind, dtype)
        params, digests = [], []
        for x, y in zip(xs, ys):
            train_step(dtrain, model, opt, x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b])
            params.append(snapshot(module.parameters()))
            digests.append(digest(params[-1]))
        return dict(before=before, after=after, params=params if rank == 0 else None,
                    digests=digests)

    out = scenarios([(c, lambda c=c: case(*c)) for c in cases])
    dist.destroy_process_group()
    return out


@pytest.fixture(scope="module", params=[1, 2, 4], ids=lambda w: f"world{w}")
def equivalence_runs(request):
    return request.param, run_ranks(_equivalence_child, request.param, CASES, timeout=90, env=ENV)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_ddp_matches_one_process_on_the_global_batch(equivalence_runs, case):
    world, runs = equivalence_runs
    got = result(runs, case)
    kind, opt_name, dtype = case
    for r in range(world):  # construction broadcast rank 0's parameters
        assert_close_lists(got[r]["after"], got[0]["before"], f"rank {r} after wrapping",
                           rtol=0, atol=0)
    if world > 1:  # the ranks did start from different models
        assert digest(got[1]["before"]) != digest(got[0]["before"])
    xs, ys = batches(kind, dtype)
    expected = reference_run(kind, opt_name, dtype, got[0]["before"], xs, ys)
    for step in range(STEPS):
        assert_close_lists(got[0]["params"][step], expected[step],
                           f"world {world}, step {step + 1}", **TOL[dtype])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_replicas_are_bit_identical_after_every_step(equivalence_runs, case):
    world, runs = equivalence_runs
    got = result(runs, case)
    for step in range(STEPS):
        seen = {got[r]["digests"][step] for r in range(world)}
        assert len(seen) == 1, f"step {step + 1}: the replicas differ ({len(seen)} versions)"


# --- 2. features, 3 ranks: no_sync, buckets, bucket views, BatchNorm, state_dict -----------------

MICRO = 3  # micro-batches per optimizer step in the no_sync scenario
MICRO_BATCH = 2


def _features_child(rank, world):
    import dtrain.distributed as dist
    from dtrain.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("gloo")
    f64 = dtrain.float64

    def no_sync(set_to_none=True, **ddp_kwargs):
        module = make_model(dtrain, "mlp").to(f64)
        load_params(dtrain, module, fixed_params(module))
        model = DDP(module, **ddp_kwargs)
        opt = make_optimizer(dtrain, "sgd", model.parameters())
        xs, ys = batches("mlp", "float64", steps=2, size=world * MICRO * MICRO_BATCH)
        local_first, synced, params = None, [], []
        for x, y in zip(xs, ys):
            opt.zero_grad(set_to_none=set_to_none)
            for j in range(MICRO):
                lo = (rank * MICRO + j) * MICRO_BATCH
                ctx = model.no_sync() if j < MICRO - 1 else contextlib.nullcontext()
                with ctx:
                    out = model(dtrain.from_numpy(x[lo:lo + MICRO_BATCH]))
                    loss = dtrain.nn.functional.cross_entropy(
                        out, dtrain.from_numpy(y[lo:lo + MICRO_BATCH])) / MICRO
                    loss.backward()
                if local_first is None:
                    local_first = grads(module)
            synced.append(grads(module))
            opt.step()
            params.append(snapshot(module.parameters()))
        return dict(local_first=local_first, synced=synced, params=params)

    def train(**ddp_kwargs):
        set_to_none = ddp_kwargs.pop("set_to_none", True)
        module = make_model(dtrain, "mlp").to(f64)
        load_params(dtrain, module, fixed_params(module))
        model = DDP(module, **ddp_kwargs)
        opt = make_optimizer(dtrain, "sgd", model.parameters())
        xs, ys = batches("mlp", "float64", size=world * 2)
        out = []
        for x, y in zip(xs, ys):
            opt.zero_grad(set_to_none=set_to_none)
            dtrain.nn.functional.cross_entropy(
                model(dtrain.from_numpy(x[2 * rank:2 * rank + 2])),
                dtrain.from_numpy(y[2 * rank:2 * rank + 2])).backward()
            out.append(grads(module))
            opt.step()
        # NOTE: _buckets is private; read only to prove that the small cap made many buckets
        return dict(grads=out, params=snapshot(module.parameters()),
                    buckets=len(model._buckets))

    def batchnorm():
        dtrain.manual_seed(100 + rank)
        module = make_model(dtrain, "bn").to(f64)
        bn = module[0]
        with dtrain.no_grad():  # different running statistics on every rank before wrapping
            bn.running_mean.fill_(rank + 1.0)
            bn.running_var.fill_(rank + 2.0)
        model = DDP(module)
        opt = make_optimizer(dtrain, "sgd", model.parameters())
        xs, ys = batches("bn", "float64", size=world * 4)
        stats = [snapshot([bn.running_mean, bn.running_var])]
        counts, digests = [int(bn.num_batches_tracked.item())], []
        for x, y in zip(xs, ys):
            train_step(dtrain, model, opt, x[4 * rank:4 * rank + 4], y[4 * rank:4 * rank + 4])
            stats.append(snapshot([bn.running_mean, bn.running_var]))
            counts.append(int(bn.num_batches_tracked.item()))
            digests.append(digest(snapshot(module.parameters())))
        return dict(stats=stats, counts=counts, digests=digests)

    def state_dict():
        module = make_model(dtrain, "bn").to(f64)
        model = DDP(module)
        keys, bare = list(model.state_dict()), list(module.state_dict())
        names = [n for n, _ in model.named_parameters()]
        new = {k: v.detach().clone() + 1 for k, v in module.state_dict().items()}
        model.load_state_dict(new)
        loaded = all(np.array_equal(module.state_dict()[k].numpy(), new[k].numpy()) for k in new)
        return dict(keys=keys, bare=bare, names=names, same_module=model.module is module,
                    loaded=loaded)

    out = scenarios([
        ("no_sync", no_sync),
        # gradients that are views of the buckets, zeroed in place: no_sync accumulates in them
        ("no_sync_bucket_view", lambda: no_sync(False, gradient_as_bucket_view=True)),
        ("default", train),
        ("small_buckets", lambda: train(bucket_cap_mb=1e-4)),
        ("bucket_view", lambda: train(gradient_as_bucket_view=True)),
        ("bucket_view_zeroed", lambda: train(gradient_as_bucket_view=True, set_to_none=False)),
        ("batchnorm", batchnorm),
        ("state_dict", state_dict),
    ])
    dist.destroy_process_group()
    return out


@pytest.fixture(scope="module")
def feature_runs():
    return run_ranks(_features_child, 3, timeout=90, env=ENV)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scenario", ["no_sync", "no_sync_bucket_view"])
def test_no_sync_accumulation_equals_one_large_batch(feature_runs, scenario):
    got = result(feature_runs, scenario)
    world = len(got)
    # inside no_sync nothing was communicated: the first micro-batch's gradients are local
    assert digest(got[0]["local_first"].values()) != digest(got[1]["local_first"].values())
    module = make_model(dtrain, "mlp").double()
    load_params(dtrain, module, fixed_params(module))
    opt = make_optimizer(dtrain, "sgd", module.parameters())
    xs, ys = batches("mlp", "float64", steps=2, size=world * MICRO * MICRO_BATCH)
    for step, (x, y) in enumerate(zip(xs, ys)):
        opt.zero_grad()
        dtrain.nn.functional.cross_entropy(module(dtrain.from_numpy(x)),
                                           dtrain.from_numpy(y)).backward()
        for r in range(world):
            for name, g in grads(module).items():
                np.testing.assert_allclose(got[r]["synced"][step][name], g, rtol=1e-12,
                                           atol=1e-15, err_msg=f"rank {r} step {step} {name}")
        opt.step()
        assert_close_lists(got[0]["params"][step], snapshot(module.parameters()),
                           f"step {step}", rtol=1e-12, atol=1e-15)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", ["small_buckets", "bucket_view", "bucket_view_zeroed"])
def test_bucketing_options_give_the_same_result(feature_runs, variant):
    default, got = result(feature_runs, "default", 0), result(feature_runs, variant)
    if variant == "small_buckets":
        assert got[0]["buckets"] == 6 and default["buckets"] == 1  # one per parameter
    for r, run in enumerate(got):
        for step, (g, d) in enumerate(zip(run["grads"], default["grads"])):
            for name in d:
                np.testing.assert_allclose(g[name], d[name], rtol=1e-13, atol=1e-16,
                                           err_msg=f"{variant}: rank {r} step {step} {name}")
        assert_close_lists(run["params"], default["params"], f"{variant}: rank {r}",
                           rtol=1e-13, atol=1e-16)


@pytest.mark.timeout(120)
def test_batchnorm_buffers_come_from_rank_0_at_each_forward(feature_runs):
    got = result(feature_runs, "batchnorm")
    world = len(got)
    xs, _ = batches("bn", "float64", size=world * 4)
    for r in range(world):
        # construction copied rank 0's buffers (rank r had set running_mean to r + 1)
        assert_close_lists(got[r]["stats"][0], [np.ones(6), np.full(6, 2.0)], f"rank {r}",
                           rtol=0, atol=0)
        assert got[r]["counts"] == list(range(STEPS + 1))
        for step in range(STEPS):
            # each forward starts from rank 0's statistics, then adds the rank's own batch
            x = xs[step][4 * r:4 * r + 4]
            mean0, var0 = got[0]["stats"][step]
            expected = [0.9 * mean0 + 0.1 * x.mean(0), 0.9 * var0 + 0.1 * x.var(0, ddof=1)]
            assert_close_lists(got[r]["stats"][step + 1], expected, f"rank {r} step {step}",
                               rtol=1e-12, atol=1e-15)
    for step in range(STEPS):
        assert len({got[r]["digests"][step] for r in range(world)}) == 1


@pytest.mark.timeout(120)
def test_state_dict_and_module_pass_through(feature_runs):
    got = result(feature_runs, "state_dict", 0)
    assert got["same_module"]
    # dtrain's documented difference from torch: no "module." prefix in state_dict
    assert got["keys"] == got["bare"] == [
        "0.weight", "0.bias", "0.running_mean", "0.running_var", "0.num_batches_tracked",
        "1.weight", "1.bias", "3.weight", "3.bias"]
    assert got["names"] == ["module.0.weight", "module.0.bias", "module.1.weight",
                            "module.1.bias", "module.3.weight", "module.3.bias"]  # as torch
    assert got["loaded"]


# --- 3. errors and unused parameters, 3 ranks ---------------------------------------------------

def three_heads(lib):
    """Three Linear layers: ``a`` always used, ``b`` where asked, ``c`` never."""
    class ThreeHeads(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = (lib.nn.Linear(3, 2).double() for _ in range(3))

        def forward(self, x, use_b=True):
            y = self.a(x)
            return y + self.b(x) if use_b else y

    return ThreeHeads()


def unused_scenario(lib, DDP, rank, **kw):
    """Two steps where ``b`` is used on rank 0 only and ``c`` nowhere; the gradients seen."""
    lib.manual_seed(0)
    module = three_heads(lib)
    model = DDP(module, find_unused_parameters=True, **kw)
    out = []
    for _ in range(2):
        model.zero_grad()
        x = lib.ones(4, 3, dtype=lib.float64) * (rank + 1)
        model(x, use_b=(rank == 0)).sum().backward()
        out.append(grads(module))
    return out


def _errors_child(rank, world):
    import dtrain.distributed as dist
    from dtrain.nn.parallel import DistributedDataParallel as DDP
    nn = dtrain.nn
    dist.init_process_group("gloo")

    def construct(module):
        try:
            DDP(module)
        except Exception as e:  # noqa: BLE001
            return f"{type(e).__name__}: {e}"
        return None

    def shapes():
        return construct(nn.Sequential(nn.Linear(4, 3 if rank == 2 else 2)))

    def names():
        return construct(nn.ModuleDict({"head" if rank == 1 else "fc": nn.Linear(4, 2)}))

    def unused_error():
        model = DDP(three_heads(dtrain))
        try:
            model(dtrain.ones(2, 3, dtype=dtrain.float64)).sum().backward()
        except Exception as e:  # noqa: BLE001
            return f"{type(e).__name__}: {e}"
        return None

    out = scenarios([("shapes", shapes), ("names", names), ("unused_error", unused_error),
                     ("unused_found", lambda: unused_scenario(dtrain, DDP, rank))])
    dist.destroy_process_group()
    return out


@pytest.fixture(scope="module")
def error_runs():
    start = time.monotonic()
    runs = run_ranks(_errors_child, 3, timeout=60, env=ENV)
    return runs, time.monotonic() - start


@pytest.mark.timeout(90)
@pytest.mark.parametrize("scenario, words", [
    ("shapes", ["rank 2", "0.weight", "[3, 4]", "[2, 4]", "0.bias", "[3]", "[2]"]),
    ("names", ["rank 1", "fc.weight", "head.weight"]),
])
def test_mismatched_models_fail_at_construction_on_every_rank(error_runs, scenario, words):
    runs, seconds = error_runs
    assert seconds < 15, f"took {seconds:.1f} s: a rank waited for a timeout"
    for r, message in enumerate(result(runs, scenario)):
        assert message is not None, f"rank {r} built DDP over a different model"
        for word in words:
            assert word in message, f"rank {r}: {word!r} not in {message!r}"


@pytest.mark.timeout(90)
def test_unused_parameter_error_names_it(error_runs):
    for r, message in enumerate(result(error_runs[0], "unused_error")):
        assert message is not None, f"rank {r}: no error for the unused parameters"
        assert "c.weight" in message and "c.bias" in message and "find_unused_parameters" \
            in message, message
        assert "a.weight" not in message and "b.weight" not in message, message


@pytest.mark.timeout(90)
def test_find_unused_parameters_averages_what_some_rank_used(error_runs):
    got = result(error_runs[0], "unused_found")
    world = len(got)
    # rank r feeds ones * (r + 1) through a 3 -> 2 Linear into .sum(): weight grad 4 * (r + 1)
    a = sum(4.0 * (r + 1) for r in range(world)) / world
    b = 4.0 / world  # rank 0 alone used b; the others count as zeros, as in torch
    for r in range(world):
        for step in range(2):
            g = got[r][step]
            np.testing.assert_allclose(g["a.weight"], np.full((2, 3), a), rtol=1e-15)
            np.testing.assert_allclose(g["a.bias"], np.full(2, 4.0), rtol=1e-15)
            np.testing.assert_allclose(g["b.weight"], np.full((2, 3), b), rtol=1e-15)
            np.testing.assert_allclose(g["b.bias"], np.full(2, 4.0 / world), rtol=1e-15)
            assert g["c.weight"] is None and g["c.bias"] is None  # unused everywhere: as torch


# --- 4. a sub-group: ranks 1 and 3 of 4 train, 0 and 2 idle -------------------------------------

def _subgroup_child(rank, world, members):
    import dtrain.distributed as dist
    from dtrain.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("gloo")
    group = dist.new_group(members)
    out = None
    if rank in members:
        dtrain.manual_seed(100 + rank)
        module = make_model(dtrain, "mlp").double()
        before = snapshot(module.parameters())
        model = DDP(module, process_group=group)
        opt = make_optimizer(dtrain, "adam", model.parameters())
        i, b = members.index(rank), GLOBAL_BATCH // len(members)
        xs, ys = batches("mlp", "float64")
        for x, y in zip(xs, ys):
            train_step(dtrain, model, opt, x[i * b:(i + 1) * b], y[i * b:(i + 1) * b])
        out = dict(before=before, params=snapshot(module.parameters()))
    dist.barrier()
    dist.destroy_process_group()
    return out


@pytest.mark.timeout(90)
def test_process_group_subgroup():
    members = [1, 3]
    runs = run_ranks(_subgroup_child, 4, members, timeout=60, env=ENV)
    assert runs[0] is None and runs[2] is None
    xs, ys = batches("mlp", "float64")
    # the group's first rank (global rank 1) is the source of the starting parameters
    expected = reference_run("mlp", "adam", "float64", runs[1]["before"], xs, ys)[-1]
    for r in members:
        assert_close_lists(runs[r]["params"], expected, f"rank {r}", **TOL["float64"])
    assert digest(runs[1]["params"]) == digest(runs[3]["params"])


# --- 5. torch's DDP over gloo as the reference, 2 ranks -----------------------------------------

TORCH_CASES = [("mlp", "sgd", "float64"), ("cnn", "adam", "float64"), ("cnn", "sgd", "float32"),
               ("mlp", "adam", "float32")]
TORCH_TOL = {"float64": dict(rtol=1e-9, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}


def _both_child(rank, world, torch_port):
    """The same scenarios with dtrain's DDP and with torch's, in the same processes."""
    import torch
    import torch.distributed as tdist
    import dtrain.distributed as dist
    from dtrain.nn.parallel import DistributedDataParallel as DDP
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{torch_port}", rank=rank,
                             world_size=world)
    libs = {"dtrain": (dtrain, DDP), "torch": (torch, torch.nn.parallel.DistributedDataParallel)}
    b = GLOBAL_BATCH // world

    def train(lib, ddp, kind, opt_name, dtype):
        module = make_model(lib, kind).to(getattr(lib, dtype))
        load_params(lib, module, fixed_params(module))
        model = ddp(module)
        opt = make_optimizer(lib, opt_name, model.parameters())
        xs, ys = batches(kind, dtype)
        for x, y in zip(xs, ys):
            train_step(lib, model, opt, x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b])
        return snapshot(module.parameters())

    def no_sync_at_forward(lib, ddp):
        module = lib.nn.Linear(2, 1, bias=False).double()
        load_params(lib, module, [np.ones((1, 2))])
        model = ddp(module)
        x = lib.ones(1, 2, dtype=lib.float64) * (rank + 1)
        out = {}
        with model.no_sync():
            y = model(x)
        y.sum().backward()  # torch decides at forward: not reduced
        out["forward_inside"] = grads(module)["weight"]
        module.weight.grad = None
        y = model(x)
        with model.no_sync():
            y.sum().backward()  # forward outside no_sync: torch reduces
        out["backward_inside"] = grads(module)["weight"]
        module.weight.grad = None
        model(x).sum().backward()  # leave both libraries' reducers in a clean state
        return out

    def batchnorm(lib, ddp, broadcast_buffers):
        module = make_model(lib, "bn").double()
        load_params(lib, module, fixed_params(module))
        bn = module[0]
        with lib.no_grad():
            bn.running_mean.fill_(rank + 1.0)
        model = ddp(module, broadcast_buffers=broadcast_buffers)
        stats = [snapshot([bn.running_mean, bn.running_var])]
        opt = make_optimizer(lib, "sgd", model.parameters())
        xs, ys = batches("bn", "float64", steps=3)
        for x, y in zip(xs, ys):
            train_step(lib, model, opt, x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b])
            stats.append(snapshot([bn.running_mean, bn.running_var]))
        return dict(stats=stats, params=snapshot(module.parameters()))

    fns = []
    for name, (lib, ddp) in libs.items():
        fns += [((name, "train") + c, lambda lib=lib, ddp=ddp, c=c: train(lib, ddp, *c))
                for c in TORCH_CASES]
        fns += [((name, "unused"), lambda lib=lib, ddp=ddp: unused_scenario(lib, ddp, rank)),
                ((name, "no_sync"), lambda lib=lib, ddp=ddp: no_sync_at_forward(lib, ddp)),
                ((name, "bn"), lambda lib=lib, ddp=ddp: batchnorm(lib, ddp, True)),
                ((name, "bn_no_broadcast"), lambda lib=lib, ddp=ddp: batchnorm(lib, ddp, False))]
    out = scenarios(fns)
    tdist.destroy_process_group()
    dist.destroy_process_group()
    return out


@pytest.fixture(scope="module")
def both_runs():
    pytest.importorskip("torch")
    return run_ranks(_both_child, 2, free_port(), timeout=90, env=ENV)


def compare_with_torch(runs, key, **tol):
    mine, theirs = result(runs, ("dtrain",) + key), result(runs, ("torch",) + key)
    for r, (m, t) in enumerate(zip(mine, theirs)):
        _compare_nested(m, t, f"rank {r} {key}", tol)


def _compare_nested(m, t, where, tol):
    if isinstance(t, dict):
        assert list(m) == list(t), where
        for k in t:
            _compare_nested(m[k], t[k], f"{where}[{k!r}]", tol)
    elif isinstance(t, list):
        assert len(m) == len(t), where
        for i, (a, b) in enumerate(zip(m, t)):
            _compare_nested(a, b, f"{where}[{i}]", tol)
    elif t is None or m is None:
        assert m is None and t is None, f"{where}: dtrain {m!r}, torch {t!r}"
    else:
        np.testing.assert_allclose(m, t, err_msg=where, **tol)


@pytest.mark.torch
@pytest.mark.timeout(150)
@pytest.mark.parametrize("case", TORCH_CASES, ids=["-".join(c) for c in TORCH_CASES])
def test_training_matches_torch_ddp(both_runs, case):
    compare_with_torch(both_runs, ("train",) + case, **TORCH_TOL[case[2]])


@pytest.mark.torch
@pytest.mark.timeout(150)
def test_find_unused_parameters_matches_torch(both_runs):
    compare_with_torch(both_runs, ("unused",), rtol=1e-15, atol=0)


@pytest.mark.torch
@pytest.mark.timeout(150)
def test_batchnorm_matches_torch(both_runs):
    compare_with_torch(both_runs, ("bn",), rtol=1e-10, atol=1e-13)


@pytest.mark.torch
@pytest.mark.timeout(150)
def test_broadcast_buffers_false_matches_torch(both_runs):
    # torch's constructor copies rank 0's buffers only when broadcast_buffers=True
    compare_with_torch(both_runs, ("bn_no_broadcast",), rtol=1e-10, atol=1e-13)


@pytest.mark.torch
@pytest.mark.timeout(150)
def test_no_sync_is_decided_at_forward_as_in_torch(both_runs):
    # torch's docs: "The forward pass should be included inside the context manager, or else
    # gradients will still be synchronized"; a forward inside no_sync is not reduced at all
    compare_with_torch(both_runs, ("no_sync",), rtol=0, atol=0)


# --- 6. PyTorch's DDP tutorial, with torch mapped to dtrain -------------------------------------

@pytest.mark.timeout(90)
def test_ddp_tutorial_demos_run(tmp_path):
    env = dict(os.environ, MASTER_PORT=str(free_port()), TMPDIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               **ENV)
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "ddp_tutorial.py")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for demo in ("basic DDP example", "DDP checkpoint example"):
        for rank in (0, 1):  # not line by line: the two ranks' prints can interleave
            assert proc.stdout.count(f"Running {demo} on rank {rank}.") == 1, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == [], "the checkpoint was not removed"


def _grads_ready_in_different_orders(rank, world):
    """Each rank runs the two layers in another order, so their gradients become ready in
    another order; DDP must still reduce bucket k with bucket k on every rank."""
    import numpy as np
    import dtrain
    import dtrain.distributed as dist
    from dtrain.nn.parallel import DistributedDataParallel as DDP

    class TwoLayers(dtrain.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = dtrain.nn.Linear(4, 4, bias=False)
            self.b = dtrain.nn.Linear(4, 4, bias=False)

        def forward(self, x):
            return self.b(self.a(x)) if rank == 0 else self.a(self.b(x))

    dist.init_process_group("gloo")
    dtrain.manual_seed(0)
    model = DDP(TwoLayers().double(), bucket_cap_mb=1e-6)  # one bucket per parameter
    x = dtrain.tensor(np.arange(8.0).reshape(2, 4) / 10 + rank)
    (model(x) ** 2).sum().backward()
    averaged = {n: p.grad.numpy().copy() for n, p in model.module.named_parameters()}
    # the same pass without DDP: this rank's own gradients
    local = TwoLayers().double()
    local.load_state_dict(model.state_dict())
    (local(x) ** 2).sum().backward()
    mine = {n: p.grad.numpy().copy() for n, p in local.named_parameters()}
    dist.destroy_process_group()
    return averaged, mine


@pytest.mark.timeout(60)
def test_buckets_are_reduced_in_order_when_gradients_arrive_in_different_orders():
    (avg0, mine0), (avg1, mine1) = run_ranks(_grads_ready_in_different_orders, 2)
    for name in mine0:
        expected = (mine0[name] + mine1[name]) / 2
        np.testing.assert_allclose(avg0[name], expected, rtol=1e-12, err_msg=name)
        np.testing.assert_array_equal(avg0[name], avg1[name])
