"""DDP training step time and overlap at world 2: dtrain against torch DDP over gloo, same run.

    python -m benchmarks.ddp [--steps 40] [--batch 64] [--bucket-cap-mb 25] [--json out.json]

An MLP 1024-1280-1536-1280-10 (5.26M float32 parameters, 21 MB of gradients), SGD with
momentum, cross-entropy; each rank trains on its own batch. In the same two processes, one
after the other:

- off:  the step without DDP (each rank trains alone; both run at once, as with DDP);
- on:   the step with the model wrapped in DistributedDataParallel;
- comm: one all_reduce of a buffer the size of all the gradients, alone;
- last: one all_reduce of the size of the library's last bucket (as each library built its
  buckets, read after the warm-up steps). It starts only when backward ends, so it cannot
  overlap backward.

Each figure is the slower rank's median. hidden = (off + comm - on) / comm, clipped to [0, 1]:
the share of the communication that the step did not pay for. Target (d) of issue 7 is
on <= 1.3 x (off + last). dtrain's DDP also counts the time backward blocked on communication
(comm_wait_seconds), shown per step.
"""
import argparse
import json
import os
import statistics

from benchmarks._procs import describe, fmt_time, machine, run_ranks, time_calls, torch_or_none

DIMS = (1024, 1280, 1536, 1280, 10)


def make_mlp(lib, dims):
    layers = []
    for a, b in zip(dims, dims[1:]):
        layers += [lib.nn.Linear(a, b), lib.nn.ReLU()]
    return lib.nn.Sequential(*layers[:-1])


def bucket_elements(ddp):
    """Elements per bucket, in launch order. NOTE: neither library has a public API for this;
    torch's list is its buckets as rebuilt after the first backward."""
    if hasattr(ddp, "reducer"):
        return [b.buffer().numel() for b in ddp.reducer._get_zeros_like_grad_buckets()]
    return [b.size for b in ddp._buckets]


def ddp_worker(rank, world, lib_name, dims, batch, steps, cap_mb):
    """This rank's per-step times off and on, and all_reduce times of all gradients and of
    the last bucket."""
    import numpy as np
    if lib_name == "torch":
        import torch as lib
        lib.set_num_threads(1)
        from torch.nn.parallel import DistributedDataParallel
    else:
        import dtrain as lib
        from dtrain.nn.parallel import DistributedDataParallel
    dist = lib.distributed
    dist.init_process_group("gloo")
    rng = np.random.default_rng(rank)
    x = lib.tensor(rng.standard_normal((batch, dims[0])).astype(np.float32))
    y = lib.tensor(rng.integers(0, dims[-1], batch))

    def trainer(model):
        opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad()
            lib.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return step

    lib.manual_seed(0)
    model = make_mlp(lib, dims)
    sizes = [p.numel() for p in model.parameters()]
    off = time_calls(trainer(model), steps, warmup=3)
    ddp = DistributedDataParallel(model, bucket_cap_mb=cap_mb)
    step = trainer(ddp)
    for _ in range(3):
        step()
    waited = getattr(ddp, "comm_wait_seconds", None)
    on = time_calls(step, steps, warmup=0)
    if waited is not None:
        waited = (ddp.comm_wait_seconds - waited) / steps
    buckets = bucket_elements(ddp)
    grads = lib.zeros(sum(sizes))
    comm = time_calls(lambda: dist.all_reduce(grads), steps, warmup=3)
    last = lib.zeros(buckets[-1])
    last_comm = time_calls(lambda: dist.all_reduce(last), steps, warmup=3)
    dist.destroy_process_group()
    return {"off": off, "on": on, "comm": comm, "last": last_comm, "wait": waited,
            "params": sum(sizes), "buckets": buckets}


def summarize(per_rank):
    """The slower rank's median of each measure, and the derived figures."""
    r = {k: max(statistics.median(p[k]) for p in per_rank)
         for k in ("off", "on", "comm", "last")}
    r["wait"] = max(p["wait"] for p in per_rank) if per_rank[0]["wait"] is not None else None
    r["hidden"] = min(1.0, max(0.0, (r["off"] + r["comm"] - r["on"]) / r["comm"]))
    r["on_over_off"] = r["on"] / r["off"]
    r["target_d_ratio"] = r["on"] / (r["off"] + r["last"])
    return r


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64, help="samples per rank and step")
    parser.add_argument("--bucket-cap-mb", type=float, default=25)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    meta = machine()
    print(describe(meta))
    torch = torch_or_none()
    work = (DIMS, args.batch, args.steps, args.bucket_cap_mb)
    ours = run_ranks(ddp_worker, 2, "dtrain", *work)
    ref = run_ranks(ddp_worker, 2, "torch", *work) if torch else None
    p = ours[0]
    print(f"\nMLP {'-'.join(map(str, DIMS))}: {p['params'] / 1e6:.2f}M parameters, batch "
          f"{args.batch} per rank, world 2, bucket_cap_mb {args.bucket_cap_mb:g}")
    print(f"buckets (bytes, launch order): dtrain {[b * 4 for b in p['buckets']]}"
          + (f", torch {[b * 4 for b in ref[0]['buckets']]}" if ref else ""))
    mine = summarize(ours)
    theirs = summarize(ref) if ref else None
    labels = [("off", "step without DDP"), ("on", "step with DDP"),
              ("comm", "all_reduce of all gradients"), ("last", "all_reduce of the last bucket"),
              ("wait", "backward blocked on comm / step")]
    print(f"{'':34} {'dtrain':>10} {'torch':>10} {'ratio':>6}")
    for key, label in labels:
        a, b = mine[key], theirs[key] if theirs else None
        print(f"{label:34} {fmt_time(a):>10} {fmt_time(b):>10} "
              + (f"{a / b:6.2f}" if a and b else f"{'-':>6}"))
    for key, label in [("on_over_off", "on / off"), ("hidden", "hidden share of comm"),
                       ("target_d_ratio", "on / (off + last), target <= 1.3")]:
        print(f"{label:34} {mine[key]:10.2f} "
              + (f"{theirs[key]:10.2f}" if theirs else f"{'-':>10}"))
    meta["load_avg_after"] = os.getloadavg()
    print(f"\nload average after: {meta['load_avg_after'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "ddp", "meta": meta, "args": vars(args),
                       "params": p["params"], "dtrain_buckets": p["buckets"],
                       "torch_buckets": ref[0]["buckets"] if ref else None,
                       "dtrain": mine, "torch": theirs}, f, indent=1)


if __name__ == "__main__":
    main()
