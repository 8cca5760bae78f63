"""Memory per rank at world 2: a 64 MB all_reduce, and DDP's overhead; dtrain beside torch (gloo).

    python -m benchmarks.memory [--elements 16777216] [--calls 5] [--steps 20] [--batch 64]
                                [--dims 1024 1280 1536 1280 10] [--libs dtrain torch]
                                [--json out.json]

Target (f) of issue 7. Every figure comes from /proc/self/status of the rank itself (VmRSS,
its RssAnon and RssShmem parts, and the peak VmHWM), read in fresh processes
(benchmarks/_procs.py). Before each measured phase the peak is reset by writing "5" to
/proc/self/clear_refs (Linux >= 4.0; whether it worked is printed), so VmHWM is the peak of
that phase, not of imports and start-up. Also shown: proportional set size (Pss, from
smaps_rollup; RSS counts a page of shared memory in full in every process that maps it) and
VmRSS after gc + glibc's malloc_trim(0) ("trimmed": without the free memory the allocator
keeps). The baseline is taken after gc + malloc_trim too.

(1) all_reduce: after init_process_group and warm-up all_reduces of one element, take the
    baseline VmRSS, allocate a float32 tensor of ``--elements`` (filled, so it is resident) and
    all_reduce it ``--calls`` times. Peak increase = VmHWM - baseline, as a multiple of the
    tensor's bytes (the tensor itself is 1x). Target: <= 3x. dtrain runs twice: on its
    same-host shared-memory path (the default here) and with DTRAIN_SHM=0 (sockets only, as
    between hosts).
(2) DDP: the MLP of benchmarks/ddp.py (5.26M float32 parameters), SGD with momentum, trained
    ``--steps`` steps from the same baseline, in three separate pairs of processes: without
    DDP, with DDP, and with DDP(gradient_as_bucket_view=True). DDP's overhead = RSS increase
    with DDP - RSS increase without, per rank, as a multiple of the parameter bytes, at the end
    of the steps (and the same for the peaks). Target: <= 1x. DDP's own flat bucket buffers
    are also counted directly (dtrain: the ``ddp._buckets[i].buffer`` it made, none for float
    gradients reduced in place; torch: its reducer's buckets, read as benchmarks/ddp.py does).

Each figure is the worse of the two ranks.
"""
import argparse
import gc
import json
import os
import sys
import time

from benchmarks._procs import describe, fmt_bytes, machine, run_ranks, torch_or_none
from benchmarks.ddp import DIMS, bucket_elements, make_mlp
from benchmarks.soak import memory_kb

ELEMENTS = 16 * 1024 * 1024  # 64 MB of float32
ALL_REDUCE_TARGET = 3.0      # x the tensor's bytes
DDP_TARGET = 1.0             # x the parameter bytes
_WARM = 20                   # small all_reduces before the baseline
_RESET_SLACK_KB = 512        # VmHWM - VmRSS right after a working reset stays below this


def reset_peak():
    """Reset VmHWM to the current RSS; whether that worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    m = memory_kb()
    return m["VmHWM"] - m["VmRSS"] <= _RESET_SLACK_KB


def pss_kb():
    """Proportional set size and its anonymous and shared-memory parts, in kB (None if the
    kernel has no smaps_rollup)."""
    out = {}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Pss", "Pss_Anon", "Pss_Shmem"):
                    out[key] = int(value.split()[0])
    except OSError:
        return None
    return out


def _start(lib_name, shm=True):
    """Import the library (one thread; DTRAIN_SHM=0 unless ``shm``), init the default group
    and warm it up with small all_reduces; the library."""
    if lib_name == "torch":
        import torch as lib
        lib.set_num_threads(1)
    else:
        if not shm:
            os.environ["DTRAIN_SHM"] = "0"
        import dtrain as lib
    lib.distributed.init_process_group("gloo")
    warm = lib.zeros(1)
    for _ in range(_WARM):
        lib.distributed.all_reduce(warm)
    return lib


def malloc_trim():
    """Give the C allocator's free memory back to the system (glibc); whether it could."""
    import ctypes
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def _snapshot():
    """/proc/self/status's figures plus Pss, Pss_Anon and Pss_Shmem, in kB."""
    return dict(memory_kb(), **(pss_kb() or {}))


def _baseline():
    """gc and malloc_trim (so that the allocator's free memory from start-up is not counted
    and not reused), reset the peak, and the memory now: (status, reset worked, VmHWM
    before)."""
    gc.collect()
    malloc_trim()
    before = memory_kb()
    ok = reset_peak()
    return _snapshot(), ok, before["VmHWM"]


def _trimmed():
    """The memory after gc and malloc_trim: what live objects and mappings hold, without what
    the allocator keeps free for reuse (None without glibc)."""
    gc.collect()
    return memory_kb() if malloc_trim() else None


def _stop(lib):
    lib.distributed.barrier()  # nobody leaves while a peer may still read its shared memory
    lib.distributed.destroy_process_group()


def all_reduce_worker(rank, world, lib_name, shm, elements, calls):
    """Memory before, after allocating the tensor, and after ``calls`` all_reduces of it."""
    lib = _start(lib_name, shm)
    dist = lib.distributed
    base, reset_ok, hwm_before = _baseline()
    t = lib.full((elements,), float(rank + 1))
    allocated = memory_kb()
    dist.all_reduce(t)
    expected = world * (world + 1) / 2
    if float(t[0]) != expected or float(t[-1]) != expected:
        raise AssertionError(f"{lib_name} all_reduce of {elements} gave {float(t[0])}, "
                             f"expected {expected}")
    for _ in range(calls - 1):
        dist.all_reduce(t)
    end = _snapshot()
    trimmed = _trimmed()
    nbytes = t.numel() * t.element_size()
    _stop(lib)
    return {"rank": rank, "base": base, "allocated": allocated, "end": end, "trimmed": trimmed,
            "reset_ok": reset_ok, "hwm_before_reset_kb": hwm_before, "nbytes": nbytes}


def ddp_worker(rank, world, lib_name, variant, dims, batch, steps):
    """Memory before building the model and after ``steps`` training steps, without DDP
    ("off"), with it ("ddp") or with gradient_as_bucket_view=True ("view")."""
    import numpy as np
    lib = _start(lib_name)
    if lib_name == "torch":
        from torch.nn.parallel import DistributedDataParallel
    else:
        from dtrain.nn.parallel import DistributedDataParallel
    rng = np.random.default_rng(rank)
    x = lib.tensor(rng.standard_normal((batch, dims[0])).astype(np.float32))
    y = lib.tensor(rng.integers(0, dims[-1], batch))
    base, reset_ok, hwm_before = _baseline()
    lib.manual_seed(0)
    model = make_mlp(lib, dims)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if variant != "off":
        model = DistributedDataParallel(model, gradient_as_bucket_view=variant == "view")
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    built = memory_kb()
    for _ in range(steps):
        opt.zero_grad()
        lib.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    gc.collect()
    end = _snapshot()
    trimmed = _trimmed()
    # after the measurement: torch's way of reading its buckets allocates zeros like them
    bucket_bytes = _bucket_buffer_bytes(model) if variant != "off" else 0
    _stop(lib)
    return {"rank": rank, "base": base, "built": built, "end": end, "trimmed": trimmed,
            "reset_ok": reset_ok, "hwm_before_reset_kb": hwm_before,
            "param_bytes": param_bytes, "bucket_bytes": bucket_bytes}


def _bucket_buffer_bytes(ddp):
    """The bytes of the flat bucket buffers DDP holds."""
    if hasattr(ddp, "reducer"):
        return sum(bucket_elements(ddp)) * 4
    return sum(b.buffer.nbytes for b in ddp._buckets if "buffer" in vars(b))


def increases(r):
    """One rank's increases over its baseline, in bytes: peak (VmHWM - baseline VmRSS), VmRSS
    at the end and its RssAnon and RssShmem parts, Pss at the end, and VmRSS after
    malloc_trim (None where unknown)."""
    base, end, trimmed = r["base"], r["end"], r["trimmed"]

    def diff(after, key):
        return (after[key] - base[key]) * 1024 if after and key in after and key in base \
            else None
    return {"rank": r["rank"], "peak": (end["VmHWM"] - base["VmRSS"]) * 1024,
            "end": diff(end, "VmRSS"), "anon": diff(end, "RssAnon"),
            "shmem": diff(end, "RssShmem"), "pss": diff(end, "Pss"),
            "trimmed": diff(trimmed, "VmRSS"), "baseline_rss": base["VmRSS"] * 1024,
            "reset_ok": r["reset_ok"]}


def summarize_all_reduce(per_rank):
    """The worse rank's increases (by peak), with the peak as x the tensor's bytes."""
    nbytes = per_rank[0]["nbytes"]
    ranks = [dict(increases(r), allocated=(r["allocated"]["VmRSS"] - r["base"]["VmRSS"]) * 1024)
             for r in per_rank]
    worst = max(ranks, key=lambda x: x["peak"])
    return dict(worst, nbytes=nbytes, peak_x_tensor=worst["peak"] / nbytes,
                transient=worst["peak"] - worst["end"],
                reset_ok=all(r["reset_ok"] for r in ranks), ranks=ranks)


_DIFF_KEYS = ("end", "peak", "anon", "shmem", "pss", "trimmed")


def summarize_ddp(variants):
    """variants: name -> per-rank results. DDP's overhead is, rank by rank, the increase with
    DDP minus the increase without; the worse rank's (by VmRSS at the end), as x the
    parameter bytes."""
    param_bytes = variants["off"][0]["param_bytes"]
    runs = {name: [dict(increases(r), bucket_bytes=r["bucket_bytes"]) for r in per_rank]
            for name, per_rank in variants.items()}
    out = {"param_bytes": param_bytes, "runs": runs,
           "reset_ok": all(r["reset_ok"] for rs in runs.values() for r in rs)}
    for name in variants:
        if name == "off":
            continue
        diffs = [{k: None if on[k] is None or off[k] is None else on[k] - off[k]
                  for k in _DIFF_KEYS} for on, off in zip(runs[name], runs["off"])]
        worst = max(diffs, key=lambda d: d["end"])
        bucket_bytes = runs[name][0]["bucket_bytes"]
        out[name] = dict(worst, bucket_bytes=bucket_bytes,
                         x_params=worst["end"] / param_bytes,
                         peak_x_params=max(d["peak"] for d in diffs) / param_bytes,
                         pss_x_params=None if worst["pss"] is None
                         else worst["pss"] / param_bytes,
                         trimmed_x_params=None if worst["trimmed"] is None
                         else worst["trimmed"] / param_bytes,
                         buckets_x_params=bucket_bytes / param_bytes)
    return out


def _mb(n):
    return "-" if n is None else f"{n / 2**20:.1f}"


def _x(n):
    return "-" if n is None else f"{n:.2f}x"


def _verdict(ratio, target):
    return f"{ratio:.2f}x {'<=' if ratio <= target else '>'} {target:g}x " \
           f"{'ok' if ratio <= target else 'MISSED'}"


_COLS = ("at end", "peak", "anon", "shmem", "Pss", "trimmed")


def report_all_reduce(rows, args):
    print(f"\n(1) all_reduce SUM float32 of {args.elements} elements "
          f"({fmt_bytes(args.elements * 4)}), world 2, {args.calls} calls: MB over the "
          f"baseline, worse rank")
    print(f"{'':24} {'tensor':>7} " + " ".join(f"{c:>7}" for c in _COLS)
          + f"  peak / tensor (target <= {ALL_REDUCE_TARGET:g}x)")
    for label, r in rows:
        target = _verdict(r["peak_x_tensor"], ALL_REDUCE_TARGET) if label.startswith("dtrain") \
            else f"{r['peak_x_tensor']:.2f}x"
        print(f"{label:24} {_mb(r['allocated']):>7} "
              + " ".join(f"{_mb(r[k]):>7}" for k in _DIFF_KEYS) + f"  {target}")


def report_ddp(results, args):
    labels = {"off": "without DDP", "ddp": "DDP", "view": "DDP, grads as bucket views"}
    for lib_name, d in results.items():
        print(f"\n(2) DDP, {lib_name}: MLP {'-'.join(map(str, args.dims))} "
              f"({d['param_bytes'] // 4 / 1e6:.2f}M parameters, "
              f"{_mb(d['param_bytes'])} MB), SGD momentum, batch {args.batch}, "
              f"{args.steps} steps, world 2: MB over the baseline, worse rank")
        print(f"{'':36} " + " ".join(f"{c:>7}" for c in _COLS) + f" {'buckets':>7}")
        for name, rs in d["runs"].items():
            r = max(rs, key=lambda x: x["end"])
            print(f"{labels[name]:36} " + " ".join(f"{_mb(r[k]):>7}" for k in _DIFF_KEYS)
                  + f" {_mb(r['bucket_bytes'] or None):>7}")
        for name in ("ddp", "view"):
            o = d[name]
            print(f"{'added by ' + labels[name]:36} "
                  + " ".join(f"{_mb(o[k]):>7}" for k in _DIFF_KEYS)
                  + f" {_mb(o['bucket_bytes']):>7}")
        for name in ("ddp", "view"):
            o = d[name]
            print(f"  {labels[name]}: added / parameter bytes at end "
                  f"{_verdict(o['x_params'], DDP_TARGET)} (target); peak {_x(o['peak_x_params'])}"
                  f", Pss {_x(o['pss_x_params'])}, after malloc_trim "
                  f"{_x(o['trimmed_x_params'])}; bucket buffers {_x(o['buckets_x_params'])}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=ELEMENTS,
                        help="float32 elements of the all_reduce (default 16M = 64 MB)")
    parser.add_argument("--calls", type=int, default=5, help="all_reduces of the tensor")
    parser.add_argument("--steps", type=int, default=20, help="training steps per DDP run")
    parser.add_argument("--batch", type=int, default=64, help="samples per rank and step")
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS),
                        help="the MLP's layer widths (default benchmarks/ddp.py's)")
    parser.add_argument("--libs", nargs="+", choices=("dtrain", "torch"),
                        default=["dtrain", "torch"], help="torch is skipped if not installed")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before a run's processes are killed")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.elements < 2 or args.calls < 1 or args.steps < 1 or len(args.dims) < 2:
        parser.error("--elements must be at least 2, --calls and --steps at least 1, and "
                     "--dims needs two widths or more")
    command = "python -m benchmarks.memory" + "".join(f" {a}" for a in argv)
    meta = machine()
    print(f"{command}\n{describe(meta)}")
    libs = list(args.libs)
    if "torch" in libs and torch_or_none() is None:
        libs.remove("torch")

    def run(fn, *work):
        t0 = time.monotonic()
        out = run_ranks(fn, 2, *work, timeout=args.timeout)
        print(f"  {fn.__name__}{work[:2]}: {time.monotonic() - t0:.1f} s", file=sys.stderr)
        return out

    rows = []
    for lib_name, shm, label in (("dtrain", True, "dtrain (shared memory)"),
                                 ("dtrain", False, "dtrain (DTRAIN_SHM=0)"),
                                 ("torch", True, "torch (gloo)")):
        if lib_name in libs:
            rows.append((label, summarize_all_reduce(
                run(all_reduce_worker, lib_name, shm, args.elements, args.calls))))
    ddp = {}
    for lib_name in libs:
        ddp[lib_name] = summarize_ddp({v: run(ddp_worker, lib_name, v, args.dims, args.batch,
                                              args.steps) for v in ("off", "ddp", "view")})
    reset_ok = all(r["reset_ok"] for _, r in rows) and all(d["reset_ok"] for d in ddp.values())
    print("peak reset through /proc/self/clear_refs: "
          + ("works (VmHWM is each phase's own peak)" if reset_ok else
             "DID NOT WORK on some rank (VmHWM may include start-up; peaks are upper bounds)"))
    report_all_reduce(rows, args)
    report_ddp(ddp, args)
    meta["load_avg_after"] = os.getloadavg()
    print(f"\nload average after: {meta['load_avg_after'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "memory", "command": command, "meta": meta,
                       "args": vars(args), "reset_ok": reset_ok,
                       "targets": {"all_reduce_peak_x_tensor": ALL_REDUCE_TARGET,
                                   "ddp_added_x_params": DDP_TARGET},
                       "all_reduce": [dict(r, label=label) for label, r in rows],
                       "ddp": ddp}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
