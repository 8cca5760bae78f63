"""Tensor-engine speed: forward + backward of op chains, dtrain against torch, one thread each.

    python -m benchmarks.engine [--repeat 30] [--json results.json]

Prints the median time per iteration of each case for dtrain and for torch measured in the
same run, and their ratio (dtrain / torch; below 1.0 means dtrain is faster). Training steps
use nn modules, cross-entropy and SGD with momentum; the MLP step is also timed as hand-written
numpy, the floor for a numpy-based engine.
"""
import os

# one thread each, set before numpy or torch load their thread pools
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import dtrain  # noqa: E402


def elementwise_chain(lib, x):
    """Ten elementwise ops on one array, then a sum."""
    y = x * 1.5 + 0.5
    y = y.exp().tanh() * x
    y = y.sigmoid() - x / 3.0
    y = (y * y).relu().sqrt()
    return y.sum()


def matmul_chain(lib, x, w1, w2, w3):
    """Three linear layers with relu, then a mean."""
    h = (x @ w1).relu()
    h = (h @ w2).relu()
    return (h @ w3).mean()


def mlp_step(lib, x, w1, w2, w3, target):
    """The MLP's loss written with raw ops: log_softmax + NLL."""
    h = (x @ w1).relu()
    h = (h @ w2).relu()
    logp = (h @ w3).log_softmax(1)
    return -logp[lib.arange(x.shape[0]), target].mean()


def _graph_case(fn, shapes, labels=False):
    """Forward + backward of ``fn`` on fresh float32 inputs that require grad."""
    def setup(lib):
        rng = np.random.default_rng(0)
        xs = [lib.tensor((rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32),
                         requires_grad=True) for s in shapes]
        extra = [lib.tensor(np.arange(shapes[0][0]) % 10)] if labels else []

        def step():
            for x in xs:
                x.grad = None
            fn(lib, *xs, *extra).backward()
        return step
    return setup


def _mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def _cnn(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def _training_case(make_model, input_shape):
    """One SGD-with-momentum training step: zero_grad, forward, cross-entropy, backward, step."""
    def setup(lib):
        lib.manual_seed(0)
        model = make_model(lib)
        opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        rng = np.random.default_rng(0)
        x = lib.tensor(rng.standard_normal(input_shape).astype(np.float32))
        y = lib.tensor(rng.integers(0, 10, input_shape[0]))

        def step():
            opt.zero_grad()
            lib.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return step
    return setup


def numpy_mlp_step():
    """The same MLP step written by hand in numpy: the floor for a numpy-based engine."""
    rng = np.random.default_rng(0)
    sizes = [784, 512, 256, 10]
    ws = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
          for a, b in zip(sizes, sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    vel = [np.zeros_like(p) for p in ws + bs]
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128)

    def step():
        acts = [x]
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = acts[-1] @ w + b
            acts.append(np.maximum(h, 0) if i < 2 else h)
        z = acts[-1] - acts[-1].max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        p[np.arange(128), y] -= 1
        g = p / 128
        grads = []
        for i in (2, 1, 0):
            grads.append((acts[i].T @ g, g.sum(0)))
            if i:
                g = (g @ ws[i].T) * (acts[i] > 0)
        gw = [gwb[0] for gwb in grads[::-1]]
        gb = [gwb[1] for gwb in grads[::-1]]
        for p_, g_, v in zip(ws + bs, gw + gb, vel):
            v *= 0.9
            v += g_
            p_ -= 0.01 * v
    return step


CASES = {
    "elementwise 256x256": _graph_case(elementwise_chain, [(256, 256)]),
    "elementwise 1024x1024": _graph_case(elementwise_chain, [(1024, 1024)]),
    "matmul 128x512x512x512x10": _graph_case(matmul_chain, [(128, 512), (512, 512), (512, 512),
                                                            (512, 10)]),
    "mlp raw ops, b128": _graph_case(mlp_step, [(128, 784), (784, 512), (512, 256), (256, 10)],
                                     labels=True),
    "train MLP 784-512-256-10, b128": _training_case(_mlp, (128, 784)),
    "train CNN c16-p-c32-p-fc, b64 28x28": _training_case(_cnn, (64, 1, 28, 28)),
}
NUMPY_REFERENCE = {"train MLP 784-512-256-10, b128": numpy_mlp_step}


def _median(step, repeat, warmup=3):
    times = []
    for i in range(repeat + warmup):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
        print("torch is not installed: showing dtrain alone")
    rows = []
    print(f"{'case':36} {'dtrain ms':>10} {'torch ms':>10} {'ratio':>7} {'numpy ms':>9}")
    for name, setup in CASES.items():
        ours = _median(setup(dtrain), args.repeat)
        ref = _median(setup(torch), args.repeat) if torch else None
        ratio = ours / ref if ref else None
        hand = _median(NUMPY_REFERENCE[name](), args.repeat) if name in NUMPY_REFERENCE else None
        rows.append({"case": name, "dtrain_s": ours, "torch_s": ref, "ratio": ratio,
                     "numpy_s": hand})
        print(f"{name:36} {ours * 1e3:10.3f} "
              + (f"{ref * 1e3:10.3f} {ratio:7.2f}" if ref else f"{'-':>10} {'-':>7}")
              + (f" {hand * 1e3:9.3f}" if hand else ""))
    if args.json:
        meta = {"benchmark": "engine", "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                           f"{platform.python_implementation()} {platform.python_version()}",
                "numpy": np.__version__, "torch": torch.__version__ if torch else None}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
