"""all_reduce (SUM, float32) speed: dtrain against torch.distributed with gloo, same run.

    python -m benchmarks.allreduce [--world 2 4] [--sizes 1 1024 ...] [--repeat 100] [--json out.json]

At each world size, dtrain's processes run every size, then torch's do (separate process
groups, same code: dtrain's API is torch's). Each rank times every call after a warm-up; a
call's time is the slowest rank's, and the figure is the median over calls. Large messages get
fewer repeats. Bus bandwidth is 2(n-1)/n x bytes / time, the traffic each rank's link carries
in a ring all-reduce. A ratio below 1.0 means dtrain is faster.
"""
import argparse
import json
import os

from benchmarks._procs import (describe, fmt_bytes, fmt_time, machine, repeats_for, run_ranks,
                               slowest_rank_median, time_calls, torch_or_none)

SIZES = [1, 1024, 256 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024]  # 1024 floats: the 4 KB point


def all_reduce_worker(rank, world, lib_name, sizes, repeat):
    """Every size's per-call times on this rank, for dtrain or torch (gloo)."""
    if lib_name == "torch":
        import torch as lib
        lib.set_num_threads(1)
    else:
        import dtrain as lib
    dist = lib.distributed
    dist.init_process_group("gloo")
    warm = lib.zeros(1)
    for _ in range(300):  # NOTE: gloo's first small messages after init are slow: untimed
        dist.all_reduce(warm)
    times = {}
    for n in sizes:
        t = lib.full((n,), float(rank + 1))
        dist.all_reduce(t)
        expected = world * (world + 1) / 2
        if float(t[0]) != expected or float(t[-1]) != expected:
            raise AssertionError(f"{lib_name} all_reduce of {n} gave {float(t[0])}, "
                                 f"expected {expected}")
        t.zero_()  # sums of zeros stay finite however many calls we time
        big = n * 4 > 2**20
        times[n] = time_calls(lambda: dist.all_reduce(t), repeats_for(n * 4, repeat),
                              warmup=2 if big else 5)
    dist.destroy_process_group()
    return times


def bus_bandwidth(world, nbytes, seconds):
    return 2 * (world - 1) / world * nbytes / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES,
                        help="message sizes in float32 elements")
    parser.add_argument("--repeat", type=int, default=100, help="timed calls for messages up "
                        "to 1 MB (fewer for larger ones)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    meta = machine()
    print(describe(meta))
    torch = torch_or_none()
    rows = []
    for world in args.world:
        ours = run_ranks(all_reduce_worker, world, "dtrain", args.sizes, args.repeat)
        ref = run_ranks(all_reduce_worker, world, "torch", args.sizes, args.repeat) \
            if torch else None
        print(f"\nall_reduce SUM float32, world {world}")
        print(f"{'elements':>9} {'bytes':>7} {'dtrain':>10} {'gloo':>10} {'ratio':>6} "
              f"{'dtrain GB/s':>11} {'gloo GB/s':>9}  (bus bandwidth)")
        for n in args.sizes:
            nbytes = n * 4
            mine = slowest_rank_median([r[n] for r in ours])
            theirs = slowest_rank_median([r[n] for r in ref]) if ref else None
            ratio = mine / theirs if theirs else None
            bw = bus_bandwidth(world, nbytes, mine)
            bw_ref = bus_bandwidth(world, nbytes, theirs) if theirs else None
            rows.append({"world": world, "elements": n, "bytes": nbytes, "dtrain_s": mine,
                         "gloo_s": theirs, "ratio": ratio, "dtrain_busbw_Bps": bw,
                         "gloo_busbw_Bps": bw_ref, "repeats": len(ours[0][n])})
            print(f"{n:9d} {fmt_bytes(nbytes):>7} {fmt_time(mine):>10} {fmt_time(theirs):>10} "
                  + (f"{ratio:6.2f}" if ratio else f"{'-':>6}")
                  + f" {bw / 1e9:11.3f} " + (f"{bw_ref / 1e9:9.3f}" if bw_ref else f"{'-':>9}"))
    meta["load_avg_after"] = os.getloadavg()
    print(f"\nload average after: {meta['load_avg_after'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "allreduce", "meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
