"""Progress bars and loss/accuracy plots for the training examples (both optional extras).

The examples import this from their own directory (Python puts a script's directory first on
sys.path; so does dtrain-run).
"""
import sys


def progress(batches, desc, show=True):
    """A tqdm bar over ``batches`` when ``show``, tqdm is installed and stderr is a terminal;
    else ``batches`` itself (the per-epoch lines are the progress then)."""
    if not (show and sys.stderr.isatty()):
        return batches
    try:
        from tqdm import tqdm
    except ImportError:  # an optional extra: pip install "dtrain[progress]"
        return batches
    return tqdm(batches, desc=desc, unit="batch", leave=False)


def check_plotting():
    """Fail before training, not after it, when --plot is asked for without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit('--plot needs matplotlib: pip install "dtrain[plot]"') from None


def plot_curves(history, path):
    """Training loss and test accuracy per epoch, side by side, in an image file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend: no display needed
    epochs = range(1, len(history["loss"]) + 1)
    loss, accuracy = fig.subplots(1, 2)
    loss.plot(epochs, history["loss"], marker="o")
    loss.set(xlabel="epoch", ylabel="training loss", title="Loss")
    accuracy.plot(epochs, [100 * a for a in history["accuracy"]], marker="o", color="C1")
    accuracy.set(xlabel="epoch", ylabel="test accuracy (%)", title="Accuracy")
    for axes in (loss, accuracy):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    fig.savefig(path, dpi=120)
