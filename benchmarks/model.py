"""Cost models of dtrain's all_reduce algorithms: fitted to benchmark JSON, then extrapolated.

    python -m benchmarks.model allreduce.json [transport.json p2p.json] --net allreduce_noshm.json
                               [--latency-us 25] [--ranks-per-host 8] [--json model.json]

Positional files: JSON of benchmarks.allreduce (run with shared memory on, the default),
benchmarks.transport and benchmarks.p2p. ``--net``: JSON of benchmarks.allreduce run with
DTRAIN_SHM=0, where dtrain uses its network algorithms (direct, ring) even on one host. Give
repeated runs together: each point's time is the median over the files.

Each model is a sum of terms, parameter x f(n, m), with n ranks and m bytes per rank (see
docs/performance.md for where each term comes from in the code). The parameters are fitted by
non-negative least squares on relative error (each row divided by the measured time), since
the times span four decades. A run with more ranks than cores is first divided by ranks/cores,
the share of a core each rank had. gamma, numpy's in-place add, is measured when this runs (or
given with --gamma-ns) and held fixed.

The prediction puts each rank on its own host: the fitted per-message latency plus a stated
network latency (--latency-us), the per-peer CPU cost as fitted, and per byte the slower of the
link and the host (the fitted loopback beta: copies and kernel work, which a NIC does not
remove).
"""
import argparse
import collections
import itertools
import json
import math
import statistics
import time

import numpy as np

from benchmarks._procs import fmt_bytes, fmt_time
from benchmarks.allreduce import bus_bandwidth
from dtrain.distributed.collectives import SMALL
from dtrain.distributed.shm import MAILBOX_BYTES, chunk_bytes


def chunks(n, m):
    """Chunks of slots.large_all_reduce at n ranks (m: bytes, or an array of them; n: an int
    or an array like m)."""
    size = np.vectorize(chunk_bytes)(n)
    return np.maximum(1, np.ceil(np.asarray(m) / size))


# model name -> [(parameter, f(n, m))]; time = sum of parameter x f(n, m)
MODELS = {
    # fastpath._all_reduce: publish to the own mailbox, poll n-1 peers, combine n parts
    "mailbox": [("alpha", lambda n, m: 1), ("alpha_peer", lambda n, m: n - 1),
                ("beta_mem", lambda n, m: n * m)],
    # slots.large_all_reduce: per chunk one wait on the n-1 peers' counters (two from three
    # ranks: "put", then "reduced"); each rank reads 3m (copy-in, both slots) at two ranks,
    # else (3n-2)/n m (copy-in but its portion, its portion of n slots, copy-out but its own)
    "shared": [("alpha", lambda n, m: chunks(n, m)),
               ("alpha_peer", lambda n, m: chunks(n, m) * (n - 1) * np.where(n > 2, 2, 1)),
               ("beta_mem", lambda n, m: np.where(n > 2, (3 * n - 2) / n, 3) * m)],
    # collectives._direct_all_reduce: n-1 sends and receives of m bytes, combine n parts
    "direct": [("alpha", lambda n, m: 1), ("alpha_peer", lambda n, m: n - 1),
               ("beta", lambda n, m: (n - 1) * m), ("gamma", lambda n, m: n * m)],
    # collectives._ring_all_reduce: 2(n-1) steps of m/n bytes, n-1 of them reduce a chunk
    "ring": [("alpha", lambda n, m: 2 * (n - 1)), ("beta", lambda n, m: 2 * (n - 1) / n * m),
             ("gamma", lambda n, m: (n - 1) / n * m)],
    # one message between two processes (benchmarks.transport, benchmarks.p2p one-way)
    "one-way": [("alpha", lambda n, m: 1), ("beta", lambda n, m: m)],
}
FIXED = ("gamma",)  # measured apart (measure_gamma), not fitted


def predict(model, params, n, m):
    """Modelled seconds of ``model`` at n ranks and m bytes per rank."""
    return sum(params[name] * f(n, m) for name, f in MODELS[model])


def fit(model, points, fixed=None):
    """Non-negative least-squares parameters of ``model`` from points [(n, m, seconds)],
    minimising the relative error; parameters in ``fixed`` are held at their given values."""
    terms = dict(MODELS[model])
    fixed = {k: v for k, v in (fixed or {}).items() if k in terms}
    free = [name for name in terms if name not in fixed]
    n, m, t = (np.array(c, dtype=float) for c in zip(*points))

    def column(name):
        return np.broadcast_to(np.asarray(terms[name](n, m), dtype=float), t.shape)

    a = np.column_stack([column(name) for name in free]) / t[:, None]
    b = (t - sum(v * column(k) for k, v in fixed.items())) / t
    # costs are not negative: the best least-squares solution, over every subset of the free
    # parameters (the others at 0), whose parameters are all >= 0 (non-negative least squares)
    best = (math.inf, {})
    for k in range(1, len(free) + 1):
        for keep in itertools.combinations(range(len(free)), k):
            x = np.linalg.lstsq(a[:, keep], b, rcond=None)[0]
            residual = float(np.sum((a[:, keep] @ x - b) ** 2))
            if (x >= 0).all() and residual < best[0] * (1 - 1e-9):
                best = (residual, {free[i]: float(v) for i, v in zip(keep, x)})
    return {**dict.fromkeys(free, 0.0), **best[1], **fixed}


def measure_gamma(sizes=(2**20, 2**22, 2**24, 2**26), repeat=5):
    """Seconds per byte of numpy's in-place float32 add (out = out + part), the reduction of
    every algorithm here: the slope of a least-squares line through the median times."""
    times = []
    for nbytes in sizes:
        a, b = np.ones(nbytes // 4, np.float32), np.ones(nbytes // 4, np.float32)
        np.add(a, b, out=a)
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            np.add(a, b, out=a)
            samples.append(time.perf_counter() - t0)
        times.append(float(np.median(samples)))
    return float(np.polyfit(np.array(sizes, float), np.array(times), 1)[0])


def algorithm_of(row, network):
    """Which dtrain all_reduce algorithm produced an allreduce row (all ranks on one host)."""
    n, m = row["world"], row["bytes"]
    if network:
        return "direct" if m <= SMALL or row["elements"] < n else "ring"
    return "mailbox" if m <= MAILBOX_BYTES else "shared"


def points_from(files, net_files, max_bytes, cores=None):
    """{source: (model, [(n, m, seconds, share)])} from the benchmark JSONs, for messages up
    to ``max_bytes``. A point measured in several files (repeated runs) counts once, with the
    median of its times. ``share``: how many ranks share each core, n / cores when there are
    more ranks than cores (``cores``: else the JSON's nproc; 0: no correction)."""
    times, shares = collections.defaultdict(list), {}
    for path, network in [(p, False) for p in files] + [(p, True) for p in net_files]:
        with open(path) as f:
            data = json.load(f)
        kind, ncpu = data.get("benchmark"), cores if cores is not None else data["meta"]["nproc"]
        for row in data["rows"]:
            n, m = row.get("world", 2), row["bytes"]
            if m > max_bytes or n < 2:
                continue
            if kind == "allreduce":
                key, t = (algorithm_of(row, network),) * 2, row["dtrain_s"]
            elif kind == "transport" and row["transport"] == "tcp":
                key, t = ("one-way", "raw pyzmq tcp"), row["one_way_s"]
            elif kind == "p2p":
                key, t = ("one-way", "dtrain send/recv"), row["dtrain_one_way_s"]
            else:
                continue
            times[key + (n, m)].append(t)
            shares[key + (n, m)] = max(1.0, n / ncpu) if ncpu else 1.0
    points = {}
    for (model, source, n, m), ts in sorted(times.items()):
        points.setdefault(source, (model, []))[1].append(
            (n, m, statistics.median(ts), shares[model, source, n, m]))
    return points


def fit_all(points, gamma):
    """{source: (model, params, [(n, m, measured, modelled)])}: each fitted to the times
    divided by their ``share`` (the time one rank would take with a core of its own), and
    modelled back with it."""
    fits = {}
    order = list(MODELS)
    for source, (model, rows) in sorted(points.items(), key=lambda s: order.index(s[1][0])):
        params = fit(model, [(n, m, t / share) for n, m, t, share in rows], {"gamma": gamma})
        fits[source] = (model, params, [(n, m, t, share * predict(model, params, n, m))
                                        for n, m, t, share in rows])
    return fits


def network_params(params, link_gbps, latency_s):
    """A fitted network model's parameters with each rank on its own host, linked at
    ``link_gbps``: alpha plus the network's one-way latency, beta the slower of the link and
    the host's measured per-byte cost."""
    out = dict(params)
    out["alpha"] = params["alpha"] + latency_s
    out["beta"] = max(8 / (link_gbps * 1e9), params["beta"])
    return out


def crossover(direct, ring, n):
    """Bytes per rank above which the ring is faster than the direct exchange, at n ranks
    (both are linear in m); 0 if the ring always wins, None if it never does."""
    t0 = predict("ring", ring, n, 0) - predict("direct", direct, n, 0)
    slope = (predict("direct", direct, n, 1) - predict("direct", direct, n, 0)) \
        - (predict("ring", ring, n, 1) - predict("ring", ring, n, 0))
    if t0 <= 0:
        return 0.0
    return t0 / slope if slope > 0 else None


def hierarchical(local, net_direct, net_ring, n, m, per_host):
    """Host-local all_reduce (mailbox/shared), the best network all_reduce between one rank per
    host, then a local broadcast (one round and one copy: the local model at n=1)."""
    hosts = n // per_host
    net = min(predict("direct", net_direct, hosts, m), predict("ring", net_ring, hosts, m))
    model = "mailbox" if m <= MAILBOX_BYTES else "shared"
    return predict(model, local[model], per_host, m) + net + predict(model, local[model], 1, m)


def predictions(fits, ranks, links, sizes, latency_s, per_host):
    rows = []
    for link in links:
        direct = network_params(fits["direct"][1], link, latency_s)
        ring = network_params(fits["ring"][1], link, latency_s)
        for n in ranks:
            cross = crossover(direct, ring, n)
            for m in sizes:
                td, tr = predict("direct", direct, n, m), predict("ring", ring, n, m)
                dtrain = "direct" if m <= SMALL or m // 4 < n else "ring"
                best = min(td, tr)
                row = {"link_gbps": link, "ranks": n, "bytes": m, "direct_s": td, "ring_s": tr,
                       "dtrain_picks": dtrain, "best_s": best,
                       "best_busbw_Bps": bus_bandwidth(n, m, best), "crossover_bytes": cross,
                       "beta_direct": direct["beta"], "beta_ring": ring["beta"]}
                if {"mailbox", "shared"} <= fits.keys() and n // per_host >= 2:
                    local = {k: fits[k][1] for k in ("mailbox", "shared")}
                    row["hier_s"] = hierarchical(local, direct, ring, n, m, per_host)
                rows.append(row)
    return rows


def _fmt_param(name, value):
    if name.startswith("alpha"):
        return f"{name} = {value * 1e6:.1f} us"
    return f"{name} = {value * 1e9:.4f} ns/B ({1 / value / 1e9:.2f} GB/s)" if value > 0 \
        else f"{name} = {value * 1e9:.4f} ns/B"


def report(fits, gamma, rows, latency_s, per_host, gamma_given=False):
    print(f"gamma (numpy float32 in-place add, {'given' if gamma_given else 'measured now'}) = "
          f"{gamma * 1e9:.4f} ns/B ({1 / gamma / 1e9:.2f} GB/s)")
    for source, (model, params, points) in fits.items():
        named = source + (f" ({model})" if model != source else "")
        print(f"\n{named}: " + "; ".join(_fmt_param(k, v) for k, v in params.items()
                                        if k not in FIXED))
        print(f"  {'ranks':>5} {'bytes':>7} {'measured':>10} {'model':>10} {'error':>7}")
        for n, m, t, p in points:
            print(f"  {n:5d} {fmt_bytes(m):>7} {fmt_time(t):>10} {fmt_time(p):>10} "
                  f"{(p - t) / t:+7.1%}")
    if not rows:
        return
    print(f"\nPredicted all_reduce, one rank per host; per message {latency_s * 1e6:g} us of "
          f"network latency on top of the fitted alpha; per byte the slower of link and host")
    for link in sorted({r["link_gbps"] for r in rows}):
        sub = [r for r in rows if r["link_gbps"] == link]
        print(f"\n{link:g} Gb/s ({8 / link:g} ns/B); beta: " + ", ".join(
            f"{k} {sub[0]['beta_' + k] * 1e9:.3f} ns/B ("
            + ("link" if sub[0]["beta_" + k] <= 8 / (link * 1e9) else "host") + ")"
            for k in ("direct", "ring")))
        print(f"{'ranks':>5} {'bytes':>7} {'direct':>10} {'ring':>10} {'dtrain picks':>12} "
              f"{'best bus GB/s':>13} {'crossover':>9} {f'hier {per_host}/host':>12}")
        for r in sub:
            cross = r["crossover_bytes"]
            print(f"{r['ranks']:5d} {fmt_bytes(r['bytes']):>7} {fmt_time(r['direct_s']):>10} "
                  f"{fmt_time(r['ring_s']):>10} {r['dtrain_picks']:>12} "
                  f"{r['best_busbw_Bps'] / 1e9:13.3f} "
                  f"{'never' if cross is None else f'{cross / 1024:.0f} KB':>9} "
                  f"{fmt_time(r.get('hier_s')):>12}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="JSON of benchmarks.allreduce (shared memory "
                        "on), benchmarks.transport, benchmarks.p2p")
    parser.add_argument("--net", nargs="+", default=[], help="JSON of benchmarks.allreduce run "
                        "with DTRAIN_SHM=0 (direct and ring)")
    parser.add_argument("--gamma-ns", type=float, help="ns per byte of the reduction "
                        "(default: measured now with numpy)")
    parser.add_argument("--latency-us", type=float, default=25.0, help="one-way network "
                        "latency added to each message's fitted alpha (default 25)")
    parser.add_argument("--ranks-per-host", type=int, default=8,
                        help="for the hierarchical estimate (default 8)")
    parser.add_argument("--cores", type=int, help="cores the runs had (default: the JSON's "
                        "nproc); 0: no correction for more ranks than cores")
    parser.add_argument("--max-bytes", type=int, default=16 * 2**20, help="fit messages up to "
                        "this size (default 16 MB; above glibc's mmap threshold every received "
                        "message pays page faults, which no line fits)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 16, 64, 256, 1024])
    parser.add_argument("--links", type=float, nargs="+", default=[10, 100], help="Gb/s")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 4096, 2**20, 64 * 2**20],
                        help="bytes per rank")
    parser.add_argument("--json", help="also write parameters, fit errors and predictions here")
    args = parser.parse_args(argv)
    gamma = args.gamma_ns * 1e-9 if args.gamma_ns is not None else measure_gamma()
    fits = fit_all(points_from(args.files, args.net, args.max_bytes, args.cores), gamma)
    rows = predictions(fits, args.ranks, args.links, args.sizes, args.latency_us * 1e-6,
                       args.ranks_per_host) if {"direct", "ring"} <= fits.keys() else []
    report(fits, gamma, rows, args.latency_us * 1e-6, args.ranks_per_host,
           args.gamma_ns is not None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "model", "gamma_s_per_byte": gamma,
                       "latency_s": args.latency_us * 1e-6, "ranks_per_host": args.ranks_per_host,
                       "fits": {s: {"model": mod, "params": p, "points": [
                           {"ranks": n, "bytes": m, "measured_s": t, "model_s": q}
                           for n, m, t, q in pts]} for s, (mod, p, pts) in fits.items()},
                       "predictions": rows}, f, indent=1)


if __name__ == "__main__":
    main()
