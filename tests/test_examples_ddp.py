"""The main job and the manual all-reduce example, end to end under dtrain-run."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dtrain_run(*args, timeout=120):
    """Run ``python -m launcher ARGS`` from the repository root; returns (exit code, output)."""
    proc = subprocess.run([sys.executable, "-m", "launcher", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.timeout(180)
def test_main_job_reaches_the_accuracy_bar_and_resumes(tmp_path):
    ckpt = tmp_path / "ddp.ckpt"
    code, out = dtrain_run("--nprocs", 2, "examples/train_ddp.py", "--epochs", 8,
                           "--checkpoint", ckpt)
    assert code == 0, out
    epochs = re.findall(r"\[rank0\]:epoch +(\d+) +loss ([\d.]+) +test accuracy ([\d.]+)% +"
                        r"([\d,]+) samples/s +waiting on communication (\d+)%", out)
    assert [int(e[0]) for e in epochs] == list(range(1, 9)), out
    assert float(epochs[-1][2]) >= 97.0, out
    assert not re.search(r"\[rank[1-9]\]:epoch", out)  # only rank 0 reports
    assert ckpt.exists()
    code, out = dtrain_run("--nprocs", 2, "examples/train_ddp.py", "--epochs", 9,
                           "--checkpoint", ckpt, "--resume")
    assert code == 0, out
    assert "resumed from" in out and "after epoch 8" in out, out
    assert re.findall(r"\[rank0\]:epoch +(\d+)", out) == ["9"], out


@pytest.mark.timeout(120)
def test_manual_allreduce_keeps_replicas_in_step():
    code, out = dtrain_run("--nprocs", 2, "examples/train_manual_allreduce.py", "--epochs", 3)
    assert code == 0, out
    accuracies = dict(re.findall(r"Rank (\d): test accuracy ([\d.]+)%", out))
    assert set(accuracies) == {"0", "1"}, out
    assert accuracies["0"] == accuracies["1"]  # both replicas took the same steps
    assert float(accuracies["0"]) > 70.0


@pytest.mark.timeout(60)
def test_main_job_plots_its_curves_on_rank_0(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    code, out = dtrain_run("--nprocs", 2, "examples/train_ddp.py", "--epochs", 2, "--model",
                           "mlp", "--batch-size", 32, "--checkpoint", tmp_path / "ddp.ckpt",
                           "--plot", png, timeout=50)
    assert code == 0, out
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert re.findall(r"\[rank(\d+)\]:plotted", out) == ["0"], out
