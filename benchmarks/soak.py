"""Soak: many all_reduces at world 4, checked exactly, with memory growth under 10% (issue 8).

    python -m benchmarks.soak [--world 4] [--small 10000] [--large 200]
                              [--large-elements 4194304] [--timeout 900] [--json out.json]

Every rank makes ``--small`` all_reduces (SUM, float32) of 1 to 1024 elements, the size of
each drawn from a generator seeded alike on every rank, with a fresh tensor each call, and,
spread evenly among them, ``--large`` all_reduces of ``--large-elements`` float32 (16 MB by
default) into one reused tensor. Inputs are small integers, so every sum is exact in float32
and every element of every result is compared with the expected one.

Memory is sampled once the first 5% of calls of each kind have run (the warm-up: buffers,
shared-memory lanes and caches are in place by then) and at the end: VmRSS from
/proc/self/status (with its anonymous and shared-memory parts, and the peak VmHWM), plus
Python's view, the number of objects the garbage collector tracks and the sizes of the
engine's bookkeeping dicts (dtrain/distributed/transport.py), so a leak in, say, its
``runs._finished`` or ``runs._mail`` shows. The run passes when no call fails or gives a wrong
sum and every rank's RSS grew by under ``--max-growth`` percent (10) from warm-up to end;
else it prints FAIL and exits with status 1. Everything runs under one hard timeout that kills
every process (benchmarks/_procs.py).
"""
import argparse
import collections
import gc
import json
import os
import sys
import time

from benchmarks._procs import describe, fmt_bytes, fmt_time, machine, run_ranks

SEED = 20261127
_STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM")
# the engine's containers that grow with traffic if something is never removed
_ENGINE_FIELDS = ("runs._finished", "runs._mail", "runs._probes", "runs._running", "pending",
                  "_commands", "_submitted", "_receives._mail", "_receives._waiting",
                  "shared._users", "_broken", "_tracked")


def memory_kb():
    """This process's memory from /proc/self/status, in kB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in _STATUS_FIELDS:
                out[key] = int(value.split()[0])
    return out


def python_view(engine):
    """What Python holds: tracked objects (by type) and the engine's container sizes."""
    gc.collect()
    objects = gc.get_objects()
    types = collections.Counter(type(o).__name__ for o in objects)
    sizes = {}
    for name in _ENGINE_FIELDS:
        obj = engine
        for part in name.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            sizes[name] = len(obj)
    del objects
    return {"objects": sum(types.values()), "types": dict(types), "engine": sizes}


def schedule(small, large):
    """The call order: 'l' (large) spread evenly among the 's' (small) calls."""
    order, every = [], max(1, small // large) if large else 0
    left = large
    for i in range(small):
        order.append("s")
        if left and (i + 1) % every == 0:
            order.append("l")
            left -= 1
    return order + ["l"] * left


def soak_worker(rank, world, small, large, large_elements):
    import numpy as np

    import dtrain
    import dtrain.distributed as dist
    from dtrain.distributed import state

    dist.init_process_group("gloo")
    engine = state._world.engine
    total = world * (world + 1) // 2  # sum over ranks of (rank + 1)
    rng = np.random.default_rng(SEED)  # same sizes on every rank
    sizes = rng.integers(1, 1025, size=small)
    ramp = np.arange(1024, dtype=np.float32)  # integers: every sum is exact in float32
    count = large_elements if large else 0
    base = (np.arange(count, dtype=np.int32) % 1024).astype(np.float32)
    big = np.empty(count, dtype=np.float32)
    big_t = dtrain.from_numpy(big)
    warm_small, warm_large = max(1, small // 20), max(1, large // 20) if large else 0
    start = memory_kb()
    samples = []  # (small calls, large calls, VmRSS kB, VmHWM kB): the curve over the run
    every = max(1, (small + large) // 20)
    warm = None
    done_s = done_l = 0
    t_small = t_large = 0.0
    t0 = time.perf_counter()
    for step, kind in enumerate(schedule(small, large)):
        if kind == "s":
            n, k = int(sizes[done_s]), done_s
            arr = ramp[:n] + np.float32((rank + 1) * (k % 7 + 1))
            t = dtrain.from_numpy(arr)
            c0 = time.perf_counter()
            dist.all_reduce(t)
            t_small += time.perf_counter() - c0
            want = world * ramp[:n] + np.float32(total * (k % 7 + 1))
            if not np.array_equal(arr, want):
                bad = int(np.flatnonzero(arr != want)[0])
                raise AssertionError(f"small all_reduce #{k} of {n} elements on rank {rank}: "
                                     f"element {bad} is {arr[bad]}, expected {want[bad]}")
            done_s += 1
        else:
            k = done_l
            np.multiply(base, np.float32(rank + 1), out=big)
            big += np.float32(k % 5)
            c0 = time.perf_counter()
            dist.all_reduce(big_t)
            t_large += time.perf_counter() - c0
            big -= np.float32(world * (k % 5))
            big -= base * np.float32(total)
            if big.any():
                bad = int(np.flatnonzero(big)[0])
                raise AssertionError(f"large all_reduce #{k} of {large_elements} elements on "
                                     f"rank {rank}: element {bad} is off by {big[bad]}")
            done_l += 1
        if warm is None and done_s >= warm_small and done_l >= warm_large:
            s0 = time.perf_counter()
            warm = {"small": done_s, "large": done_l, "mem": memory_kb(),
                    "python": python_view(engine)}
            t0 += time.perf_counter() - s0  # the snapshot is not part of the calls' time
        if (step + 1) % every == 0:
            mem = memory_kb()
            samples.append((done_s, done_l, mem["VmRSS"], mem.get("VmHWM")))
    elapsed = time.perf_counter() - t0
    end_mem = memory_kb()
    end_py = python_view(engine)
    dist.barrier()  # nobody leaves while a peer still reads its shared memory
    dist.destroy_process_group()
    return {"rank": rank, "small": done_s, "large": done_l, "start_mem": start,
            "warm": warm, "end_mem": end_mem, "end_python": end_py, "samples": samples,
            "elapsed_s": elapsed,
            "small_s": t_small, "large_s": t_large}


def summarize(results, args):
    """Per-rank rows and the verdict."""
    rows = []
    for r in results:
        w, e = r["warm"]["mem"], r["end_mem"]
        wp, ep = r["warm"]["python"], r["end_python"]
        types = collections.Counter(ep["types"])
        types.subtract(wp["types"])
        samples = r["samples"]  # a leak keeps growing; a cache filling up levels off
        mid = samples[len(samples) // 2][2] if samples else w["VmRSS"]
        rows.append({
            "rank": r["rank"], "small_calls": r["small"], "large_calls": r["large"],
            "rss_start_kb": r["start_mem"]["VmRSS"], "rss_warm_kb": w["VmRSS"],
            "rss_end_kb": e["VmRSS"], "rss_peak_kb": e.get("VmHWM"),
            "anon_warm_kb": w.get("RssAnon"), "anon_end_kb": e.get("RssAnon"),
            "shmem_warm_kb": w.get("RssShmem"), "shmem_end_kb": e.get("RssShmem"),
            "rss_growth_pct": 100.0 * (e["VmRSS"] - w["VmRSS"]) / w["VmRSS"],
            "rss_growth_second_half_pct": 100.0 * (e["VmRSS"] - mid) / mid,
            "objects_warm": wp["objects"], "objects_end": ep["objects"],
            "object_growth": ep["objects"] - wp["objects"],
            "top_type_growth": dict(t for t in types.most_common(5) if t[1] > 0),
            "engine_warm": wp["engine"], "engine_end": ep["engine"],
            "rss_samples": r["samples"], "time_s": r["elapsed_s"],
            "small_mean_s": r["small_s"] / max(r["small"], 1),
            "large_mean_s": r["large_s"] / max(r["large"], 1),
        })
    worst = max(row["rss_growth_pct"] for row in rows)
    complete = all(row["small_calls"] == args.small and row["large_calls"] == args.large
                   for row in rows)
    return rows, worst, complete and worst < args.max_growth


def report(rows, worst, passed, args, wall):
    mb = 1024.0
    print(f"\nsoak: world {args.world}, {args.small} small all_reduces (1-1024 float32) and "
          f"{args.large} of {fmt_bytes(args.large_elements * 4)} per rank, every result "
          f"checked exactly")
    cols = [("rank", 4), ("RSS start", 9), ("RSS warm", 9), ("RSS end", 9), ("growth", 7),
            ("2nd half", 8), ("anon warm->end", 15), ("shm warm->end", 14), ("peak", 7),
            ("objects warm->end", 17), ("small mean", 10), ("large mean", 10), ("time", 7)]
    print(" ".join(f"{name:>{width}}" for name, width in cols) + "   (MB unless marked)")
    for r in rows:
        cells = [str(r["rank"]), f"{r['rss_start_kb'] / mb:.1f}", f"{r['rss_warm_kb'] / mb:.1f}",
                 f"{r['rss_end_kb'] / mb:.1f}", f"{r['rss_growth_pct']:+.2f}%",
                 f"{r['rss_growth_second_half_pct']:+.2f}%",
                 f"{r['anon_warm_kb'] / mb:.1f}->{r['anon_end_kb'] / mb:.1f}",
                 f"{r['shmem_warm_kb'] / mb:.1f}->{r['shmem_end_kb'] / mb:.1f}",
                 f"{r['rss_peak_kb'] / mb:.1f}", f"{r['objects_warm']}->{r['objects_end']}",
                 fmt_time(r["small_mean_s"]), fmt_time(r["large_mean_s"]),
                 f"{r['time_s']:.2f} s"]
        print(" ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, cols)))
    calls = args.small + args.large
    slowest = max(r["time_s"] for r in rows)
    print(f"\ntime: {slowest:.2f} s for {calls} calls per rank (slowest rank) = "
          f"{calls / slowest:.0f} calls/s; whole run with process start-up {wall:.1f} s")
    for r in rows:
        growth = {k: v for k, v in r["top_type_growth"].items()}
        changed = {k: f"{r['engine_warm'].get(k)}->{v}" for k, v in r["engine_end"].items()
                   if v != r["engine_warm"].get(k)}
        print(f"rank {r['rank']}: objects {r['object_growth']:+d} (top types {growth or '-'}); "
              f"engine containers changed: {changed or 'none'}")
    print(f"\nworst RSS growth warm-up -> end: {worst:+.2f}% (limit {args.max_growth:g}%); "
          f"over the second half of the calls: "
          f"{max(r['rss_growth_second_half_pct'] for r in rows):+.2f}%")
    print("PASS" if passed else "FAIL")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=4)
    parser.add_argument("--small", type=int, default=10000, help="small all_reduces per rank")
    parser.add_argument("--large", type=int, default=200, help="large all_reduces per rank")
    parser.add_argument("--large-elements", type=int, default=4 * 1024 * 1024,
                        help="float32 elements of a large all_reduce (default 16 MB)")
    parser.add_argument("--max-growth", type=float, default=10.0,
                        help="largest RSS growth from warm-up to end that passes, in %%")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds before every process is killed and the run fails")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.small < 1 or args.large < 0 or args.large_elements < 1:
        parser.error("--small must be at least 1, --large and --large-elements not negative")
    meta = machine()
    print(describe(meta))
    t0 = time.monotonic()
    try:
        results = run_ranks(soak_worker, args.world, args.small, args.large,
                            args.large_elements, timeout=args.timeout)
        error = None
    except RuntimeError as e:
        results, error = None, str(e)
    wall = time.monotonic() - t0
    meta["load_avg_after"] = os.getloadavg()
    out = {"benchmark": "soak", "meta": meta, "args": vars(args), "wall_s": wall}
    if error is not None:
        print(error, file=sys.stderr)
        print(f"\nload average after: {meta['load_avg_after'][0]:.2f}\nFAIL")
        out.update(passed=False, error=error, rows=[])
        passed = False
    else:
        rows, worst, passed = summarize(results, args)
        report(rows, worst, passed, args, wall)
        print(f"load average after: {meta['load_avg_after'][0]:.2f}")
        slowest = max(r["time_s"] for r in rows)
        out.update(passed=passed, error=None, rows=rows, rss_growth_max_pct=worst,
                   time_s=slowest, calls_per_s=(args.small + args.large) / slowest)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
