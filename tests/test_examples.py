"""The examples run end to end and reach the accuracy their docs promise; their optional
progress bars and plots, and benchmarks/plot.py's chart, work with the extras and fail (or
fall back) clearly without them."""
import io
import json
import re
import runpy
import sys
from pathlib import Path

import pytest

import dtrain

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    """Run an example as Python runs a script: its directory first on sys.path."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return runpy.run_path(str(EXAMPLES / name), run_name="example")
    finally:
        sys.path.remove(str(EXAMPLES))


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


# --- progress and plots: optional extras (tqdm, matplotlib), never required ----------------

def hide(monkeypatch, package):
    """Make ``import package`` (and its submodules) fail, as if it were not installed."""
    for name in [m for m in sys.modules if m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, as a console would."""

    def isatty(self):
        return True


def test_progress_is_plain_lines_off_a_terminal_or_without_tqdm(monkeypatch):
    for name in ("train_single.py", "train_ddp.py"):
        progress = _load(name)["progress"]
        show = {"show": True}
        batches = [1, 2, 3]
        assert progress(batches, "epoch 1", **show) is batches  # pytest's stderr: no terminal
        monkeypatch.setattr(sys, "stderr", Terminal())
        hide(monkeypatch, "tqdm")
        assert progress(batches, "epoch 1", **show) is batches
        monkeypatch.undo()
    # train_ddp shows a bar on rank 0 only
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert _load("train_ddp.py")["progress"](batches, "epoch 1", show=False) is batches


def test_train_single_shows_a_bar_on_a_terminal(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _load("train_single.py")["main"](["--model", "mlp", "--epochs", "2"])
    bar = terminal.getvalue()
    assert "epoch 1" in bar and "epoch 2" in bar and "batch" in bar
    assert "epoch  2  loss" in capsys.readouterr().out  # the epoch lines stay


@pytest.mark.parametrize("name", ["train_single.py", "train_ddp.py"])
def test_plot_without_matplotlib_says_how_to_install_it_before_training(name, tmp_path,
                                                                         monkeypatch, capsys):
    hide(monkeypatch, "matplotlib")
    with pytest.raises(SystemExit, match=re.escape('pip install "dtrain[plot]"')):
        _load(name)["main"](["--plot", str(tmp_path / "curves.png")])
    assert "epoch" not in capsys.readouterr().out


def test_train_single_plots_loss_and_accuracy(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    _load("train_single.py")["main"](["--model", "mlp", "--epochs", "2", "--plot", str(png)])
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"plotted {png}" in capsys.readouterr().out


# --- benchmarks/plot.py: the dtrain-versus-gloo chart -------------------------------------

ALLREDUCE = {"benchmark": "allreduce", "meta": {"date": "2026-11-27"}, "rows": [
    {"world": 4, "elements": 1024, "bytes": 4096, "dtrain_s": 3e-4, "gloo_s": 6e-4,
     "ratio": 0.5},
    {"world": 2, "elements": 1024, "bytes": 4096, "dtrain_s": 2e-4, "gloo_s": 8e-4,
     "ratio": 0.25},
    {"world": 2, "elements": 1, "bytes": 4, "dtrain_s": 1e-4, "gloo_s": 5e-5, "ratio": 2.0},
    {"world": 4, "elements": 1, "bytes": 4, "dtrain_s": 2e-4, "gloo_s": None, "ratio": None},
]}
P2P = {"benchmark": "p2p", "meta": {}, "rows": [
    {"elements": 1024, "bytes": 4096, "dtrain_one_way_s": 1e-4, "gloo_one_way_s": 2e-3,
     "one_way_ratio": 0.05, "dtrain_stream_Bps": 1e8, "gloo_stream_Bps": 1e7},
    {"elements": 1, "bytes": 4, "dtrain_one_way_s": 1.5e-4, "gloo_one_way_s": 5e-5,
     "one_way_ratio": 3.0, "dtrain_stream_Bps": 1e6, "gloo_stream_Bps": 1e6},
]}


def test_benchmark_chart_lines_from_the_allreduce_json():
    from benchmarks.plot import chart
    lines = chart(ALLREDUCE)
    assert lines["times"] == {  # one line per (library, world), by message size
        ("dtrain", 2): ([4, 4096], [1e-4, 2e-4]), ("gloo", 2): ([4, 4096], [5e-5, 8e-4]),
        ("dtrain", 4): ([4, 4096], [2e-4, 3e-4]), ("gloo", 4): ([4096], [6e-4])}
    assert lines["ratios"] == {2: ([4, 4096], [2.0, 0.25]), 4: ([4096], [0.5])}
    assert "all_reduce" in lines["title"] and "2026-11-27" in lines["subtitle"]


def test_benchmark_chart_lines_from_the_p2p_json():
    from benchmarks.plot import chart
    lines = chart(P2P)
    assert lines["times"] == {("dtrain", 2): ([4, 4096], [1.5e-4, 1e-4]),
                              ("gloo", 2): ([4, 4096], [5e-5, 2e-3])}
    assert lines["ratios"] == {2: ([4, 4096], [3.0, 0.05])}
    assert "send/recv" in lines["title"]


def test_benchmark_plot_refuses_other_json(tmp_path):
    from benchmarks.plot import chart, main
    with pytest.raises(ValueError, match="'benchmark' is 'engine'"):
        chart({"benchmark": "engine", "rows": []})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read"):
        main([str(bad)])


def test_benchmark_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    from benchmarks.plot import main
    results = tmp_path / "allreduce.json"
    results.write_text(json.dumps(ALLREDUCE))
    hide(monkeypatch, "matplotlib")
    with pytest.raises(SystemExit, match=re.escape('pip install "dtrain[plot]"')):
        main([str(results)])


@pytest.mark.parametrize("results", [ALLREDUCE, P2P], ids=["allreduce", "p2p"])
def test_benchmark_plot_draws_a_png(results, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from benchmarks.plot import main
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    main([str(path)])  # the image goes beside the JSON by default
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")
    main([str(path), "-o", str(tmp_path / "chart.png")])
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert "wrote" in capsys.readouterr().out
