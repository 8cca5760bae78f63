"""send/recv speed between two processes: dtrain against torch.distributed with gloo, same run.

    python -m benchmarks.p2p [--sizes 1 1024 ...] [--repeat 200] [--json out.json]
    python -m benchmarks.p2p --curve [...]


The same two measures as benchmarks.transport, through the libraries' send/recv (one code for
both: dtrain's API is torch's), dtrain's processes first, then torch's:

- one-way time: rank 0 sends, rank 1 receives and sends back, round trip / 2 (at 1 element:
  the latency, compared with the raw pyzmq latency of benchmarks.transport for target (c));
- bandwidth: rank 0 starts k isends of the same tensor and waits for them, rank 1 receives
  them in turn and sends a 1-element acknowledgement; bytes x k / time.
A ratio below 1.0 means dtrain is faster.

With --curve, it measures instead what encryption costs: dtrain over loopback with the job
token (PLAIN authentication, no encryption) against dtrain over this machine's non-loopback
address, as between hosts (CURVE: every byte encrypted), in the same run.
"""
import argparse
import json
import os
import secrets

from benchmarks._procs import describe, fmt_bytes, fmt_time, machine, run_ranks, torch_or_none
from benchmarks.transport import SIZES, one_way_and_stream


def p2p_worker(rank, world, lib_name, sizes, repeat):
    """Per size, on rank 0: the median one-way time and streamed time per message."""
    if lib_name == "torch":
        import torch as lib
        lib.set_num_threads(1)
    else:
        import dtrain as lib
    dist = lib.distributed
    dist.init_process_group("gloo")
    peer = 1 - rank
    # NOTE: gloo's first small messages after init are slow (0.7 ms one-way seen here, against
    # 45 us later): warm up once, untimed, before the first size
    one = lib.zeros(1)
    for _ in range(300):
        if rank == 0:
            dist.send(one, peer)
            dist.recv(one, peer)
        else:
            dist.recv(one, peer)
            dist.send(one, peer)
    results = {}
    for n in sizes:
        t = lib.full((n,), float(rank))
        ack = lib.zeros(1)

        def burst(k):
            for work in [dist.isend(t, peer) for _ in range(k)]:
                work.wait()
        results[n] = one_way_and_stream(rank, lambda: dist.send(t, peer),
                                        lambda: dist.recv(t, peer), lambda: dist.send(ack, peer),
                                        lambda: dist.recv(ack, peer), 4 * n, repeat, burst)
    dist.destroy_process_group()
    return results


def outside_address():
    """This machine's address on its network (what another host would reach), or None."""
    from dtrain.distributed import DistError
    from dtrain.distributed.rendezvous import local_host
    try:
        address = local_host("192.0.2.1")  # TEST-NET-1: the interface that routes there
    except DistError:
        return None
    return None if address.startswith("127.") else address


def curve_cost(args, meta):
    """dtrain with the token on loopback (PLAIN) against across an address (CURVE)."""
    address = outside_address()
    if address is None:
        raise SystemExit("--curve needs a non-loopback address on this machine")
    token = secrets.token_hex(16)
    plain = run_ranks(p2p_worker, 2, "dtrain", args.sizes, args.repeat,
                      env={"DTRAIN_JOB_TOKEN": token})[0]
    curve = run_ranks(p2p_worker, 2, "dtrain", args.sizes, args.repeat,
                      env={"DTRAIN_JOB_TOKEN": token, "MASTER_ADDR": address})[0]
    print(f"\nsend/recv float32, 2 processes, dtrain: loopback with the token (PLAIN) vs "
          f"{address} (CURVE encryption)")
    print(f"{'elements':>9} {'bytes':>7} {'plain':>10} {'curve':>10} {'ratio':>6}   "
          f"{'plain GB/s':>10} {'curve GB/s':>10} {'ratio':>6}")
    rows = []
    for n in args.sizes:
        nbytes = 4 * n
        a, b = plain[n], curve[n]
        row = {"elements": n, "bytes": nbytes, "plain_one_way_s": a["one_way_s"],
               "curve_one_way_s": b["one_way_s"],
               "plain_stream_Bps": nbytes / a["stream_per_msg_s"],
               "curve_stream_Bps": nbytes / b["stream_per_msg_s"]}
        rows.append(row)
        print(f"{n:9d} {fmt_bytes(nbytes):>7} {fmt_time(a['one_way_s']):>10} "
              f"{fmt_time(b['one_way_s']):>10} {b['one_way_s'] / a['one_way_s']:6.2f}   "
              f"{row['plain_stream_Bps'] / 1e9:10.3f} {row['curve_stream_Bps'] / 1e9:10.3f} "
              f"{b['stream_per_msg_s'] / a['stream_per_msg_s']:6.2f}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES,
                        help="message sizes in float32 elements")
    parser.add_argument("--repeat", type=int, default=200, help="round trips for messages up "
                        "to 1 MB (fewer for larger ones)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--curve", action="store_true", help="measure what encryption costs")
    args = parser.parse_args(argv)
    meta = machine()
    print(describe(meta))
    if args.curve:
        rows = curve_cost(args, meta)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"benchmark": "p2p-curve", "meta": meta, "rows": rows}, f, indent=1)
        return
    torch = torch_or_none()
    ours = run_ranks(p2p_worker, 2, "dtrain", args.sizes, args.repeat)[0]
    ref = run_ranks(p2p_worker, 2, "torch", args.sizes, args.repeat)[0] if torch else None
    rows = []
    print("\nsend/recv float32, 2 processes: one-way time = ping-pong / 2; bandwidth = "
          "streamed bytes / time")
    print(f"{'elements':>9} {'bytes':>7} {'dtrain':>10} {'gloo':>10} {'ratio':>6}   "
          f"{'dtrain GB/s':>11} {'gloo GB/s':>9} {'ratio':>6}")
    for n in args.sizes:
        nbytes = 4 * n
        mine, theirs = ours[n], ref[n] if ref else None
        row = {"elements": n, "bytes": nbytes,
               "dtrain_one_way_s": mine["one_way_s"],
               "dtrain_stream_Bps": nbytes / mine["stream_per_msg_s"],
               "gloo_one_way_s": theirs["one_way_s"] if theirs else None,
               "gloo_stream_Bps": nbytes / theirs["stream_per_msg_s"] if theirs else None}
        row["one_way_ratio"] = (row["dtrain_one_way_s"] / row["gloo_one_way_s"]
                                if theirs else None)
        # time ratio, as elsewhere: below 1.0, dtrain is faster
        row["stream_time_ratio"] = (mine["stream_per_msg_s"] / theirs["stream_per_msg_s"]
                                    if theirs else None)
        rows.append(row)
        print(f"{n:9d} {fmt_bytes(nbytes):>7} {fmt_time(row['dtrain_one_way_s']):>10} "
              f"{fmt_time(row['gloo_one_way_s']):>10} "
              + (f"{row['one_way_ratio']:6.2f}" if theirs else f"{'-':>6}")
              + f"   {row['dtrain_stream_Bps'] / 1e9:11.3f} "
              + (f"{row['gloo_stream_Bps'] / 1e9:9.3f} {row['stream_time_ratio']:6.2f}"
                 if theirs else f"{'-':>9} {'-':>6}"))
    meta["load_avg_after"] = os.getloadavg()
    print(f"\nload average after: {meta['load_avg_after'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "p2p", "meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
