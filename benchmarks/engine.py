"""Tensor-engine speed: forward + backward of op chains, dtrain against torch, one thread each.

    python -m benchmarks.engine [--repeat 30] [--json results.json]

Prints the median time per iteration of each case for dtrain and for torch measured in the
same run, and their ratio (dtrain / torch; below 1.0 means dtrain is faster).
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
    """An MLP 784-512-256-10 training step written with raw ops: log_softmax + NLL loss."""
    h = (x @ w1).relu()
    h = (h @ w2).relu()
    logp = (h @ w3).log_softmax(1)
    return -logp[lib.arange(x.shape[0]), target].mean()


CASES = {
    "elementwise 256x256": (elementwise_chain, [(256, 256)]),
    "elementwise 1024x1024": (elementwise_chain, [(1024, 1024)]),
    "matmul 128x512x512x512x10": (matmul_chain, [(128, 512), (512, 512), (512, 512), (512, 10)]),
    "mlp 784-512-256-10 b128": (mlp_step, [(128, 784), (784, 512), (512, 256), (256, 10)]),
}


def _inputs(lib, shapes, seed):
    rng = np.random.default_rng(seed)
    arrays = [(rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32) for s in shapes]
    return [lib.tensor(a, requires_grad=True) for a in arrays]


def _time(lib, fn, shapes, repeat):
    xs = _inputs(lib, shapes, 0)
    extra = [lib.tensor(np.arange(shapes[0][0]) % 10)] if fn is mlp_step else []
    times = []
    for i in range(repeat + 3):
        for x in xs:
            x.grad = None
        t0 = time.perf_counter()
        fn(lib, *xs, *extra).backward()
        if i >= 3:  # warm-up
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
    print(f"{'case':30} {'dtrain ms':>10} {'torch ms':>10} {'ratio':>7}")
    for name, (fn, shapes) in CASES.items():
        ours = _time(dtrain, fn, shapes, args.repeat)
        ref = _time(torch, fn, shapes, args.repeat) if torch else None
        ratio = ours / ref if ref else None
        rows.append({"case": name, "dtrain_s": ours, "torch_s": ref, "ratio": ratio})
        print(f"{name:30} {ours * 1e3:10.3f} " + (f"{ref * 1e3:10.3f} {ratio:7.2f}" if ref
                                                   else f"{'-':>10} {'-':>7}"))
    if args.json:
        meta = {"benchmark": "engine", "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                           f"{platform.python_implementation()} {platform.python_version()}",
                "numpy": np.__version__, "torch": torch.__version__ if torch else None}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
