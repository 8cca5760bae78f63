"""Checkpoint and restart, nothing lost: the main job with a worker SIGKILLed mid-training,
under `dtrain-run --max-restarts 2`, ends bit for bit where a run never interrupted ends.

Both runs are examples/train_ddp.py at world 2 in float64, with one seed. The victim kills
itself through the example's testing aid, DTRAIN_EXAMPLE_KILL_AT="RANK:STEP" (first attempt
only). The restarted workers resume from the last per-epoch checkpoint, or start afresh when
the kill came before the first one. The other half of "nothing lost", a checkpoint save killed
mid-write leaving the previous checkpoint loadable, is
tests/test_serialization.py::test_save_killed_mid_write_leaves_the_previous_checkpoint.
"""
import math
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

import dtrain

ROOT = Path(__file__).resolve().parent.parent
EPOCHS, BATCH, WORLD = 3, 32, 2
JOB = ["--epochs", EPOCHS, "--batch-size", BATCH, "--dtype", "float64", "--seed", 3]
STEPS_PER_EPOCH = math.ceil(math.ceil(len(dtrain.datasets.Digits(train=True)) / WORLD) / BATCH)

pytestmark = pytest.mark.timeout(60)


def train(checkpoint, kill_at=None, timeout=45):
    """Run the main job under dtrain-run; returns its output. Fails the test when it times
    out, exits non-zero or leaves a worker running."""
    mark = uuid.uuid4().hex  # every worker inherits it: how leftovers are found
    env = dict(os.environ, DTRAIN_TEST_RUN=mark, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("DTRAIN_EXAMPLE_KILL_AT", None)
    if kill_at is not None:
        env["DTRAIN_EXAMPLE_KILL_AT"] = "{}:{}".format(*kill_at)
    command = [sys.executable, "-m", "launcher", "--nprocs", WORLD, "--max-restarts", 2,
               "examples/train_ddp.py", *JOB, "--checkpoint", checkpoint]
    proc = subprocess.Popen(list(map(str, command)), cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the workers die with their launcher
        out, _ = proc.communicate()
        pytest.fail(f"the job did not finish within {timeout} s\n{out}")
    assert proc.returncode == 0, out
    assert not processes_marked(mark), f"workers left running\n{out}"
    return out


def processes_marked(mark):
    """Pids of the processes whose environment holds DTRAIN_TEST_RUN=mark."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"DTRAIN_TEST_RUN={mark}".encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return found


def assert_identical(a, b, where="checkpoint"):
    """Exact equality of two loaded checkpoints: same structure, dtypes and bits."""
    if isinstance(a, dtrain.Tensor):
        assert isinstance(b, dtrain.Tensor) and a.dtype == b.dtype, where
        assert np.array_equal(a.numpy(), b.numpy()), f"{where} differs"
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final checkpoint of a run that nobody killed."""
    path = tmp_path_factory.mktemp("uninterrupted") / "ckpt.dtrain"
    out = train(path)
    assert "restarting" not in out and "resumed" not in out, out
    return dtrain.load(path)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not os.path.isdir("/proc"),
                    reason="needs SIGKILL and /proc")
@pytest.mark.parametrize("victim, epoch, step_in_epoch", [
    (1, 1, 7),   # in the second epoch: resumes from the first epoch's checkpoint
    (0, 2, 15),  # rank 0, the one that saves, in the last epoch
    (1, 0, 3),   # before the first checkpoint: the restart starts afresh
], ids=["rank1-epoch2", "rank0-epoch3", "rank1-before-any-checkpoint"])
def test_a_killed_worker_restarts_and_ends_bit_identical(uninterrupted, tmp_path, victim,
                                                         epoch, step_in_epoch):
    assert step_in_epoch < STEPS_PER_EPOCH
    path = tmp_path / "ckpt.dtrain"
    # another run's checkpoint at the path: a fresh start removes it, so no restart resumes it
    dtrain.save({"epoch": 99}, path)
    out = train(path, kill_at=(victim, epoch * STEPS_PER_EPOCH + step_in_epoch))
    assert re.search(rf"root cause: rank {victim} .*signal SIGKILL", out), out
    assert "restarting all workers (restart 1 of 2" in out, out
    assert "restart 2 of 2" not in out, out  # the kill happens on the first attempt only
    if epoch:
        assert f"resumed from {path} after epoch {epoch}" in out, out
    else:
        assert "resumed" not in out, out
    # each epoch reported once: the interrupted one is trained again from its start
    epochs_shown = [int(e) for e in re.findall(r"\[rank0\]:epoch +(\d+)", out)]
    assert epochs_shown == list(range(1, EPOCHS + 1)), out
    final = dtrain.load(path)
    assert final["epoch"] == EPOCHS
    assert final["model"]["fc2.weight"].dtype == dtrain.float64
    # model, optimizer, schedule and the loss and accuracy curves: all equal, bit for bit
    assert_identical(final, uninterrupted)
