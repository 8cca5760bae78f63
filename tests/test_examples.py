"""The examples run end to end and reach the accuracy their docs promise."""
import runpy
from pathlib import Path

import dtrain

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def test_train_single_cnn_reaches_97_percent_and_checkpoints(tmp_path, capsys):
    example = _load("train_single.py")
    ckpt = tmp_path / "digits.ckpt"
    accuracy = example["main"](["--checkpoint", str(ckpt)])
    assert accuracy >= 0.97
    out = capsys.readouterr().out
    assert "epoch 20" in out and "samples/s" in out
    state = dtrain.load(ckpt)
    model = example["make_model"]("cnn")
    model.load_state_dict(state["model"])
    images, labels = dtrain.datasets.load_digits("test")
    assert example["evaluate"](model, images, labels) == accuracy


def test_train_single_mlp_learns(capsys):
    accuracy = _load("train_single.py")["main"](["--model", "mlp", "--epochs", "5"])
    assert accuracy > 0.85
