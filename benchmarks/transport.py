"""The floor: raw pyzmq between two processes, on the sockets dtrain's transport uses.

    python -m benchmarks.transport [--sizes 1 1024 ...] [--repeat 200] [--json out.json]

Each of the two processes binds a ROUTER and connects a DEALER (its rank as identity) to the
other's ROUTER, as dtrain's engine does, and every message is dtrain's two frames: a 48-byte
header and the payload (sent with copy=False from 64 KB, received with copy=False). No thread
hand-off, no polling, no header decoding: whatever dtrain adds is above these numbers.

- one-way time: ping-pong of one message each way, round trip / 2 (at 1 element: latency);
- bandwidth: rank 0 streams k messages back to back, rank 1 acknowledges the last one;
  bytes x k / time. Timed over tcp loopback and over ipc://, the median of the repeats.
"""
import argparse
import json
import os
import statistics
import tempfile

from benchmarks._procs import (describe, fmt_bytes, fmt_time, free_port, machine, repeats_for,
                               run_ranks, time_calls)

SIZES = [1, 1024, 16 * 1024, 256 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024]  # float32 elements
ZERO_COPY_MIN = 64 * 1024  # as dtrain's transport
HEADER = b"h" * 48         # a 1-d tensor's header in dtrain's wire format
STREAM_BYTES = 64 * 2**20  # bytes streamed per bandwidth sample (at least one message)


def one_way_and_stream(rank, send, recv, send_ack, recv_ack, nbytes, repeat, burst=None):
    """Rank 0's median one-way time (ping-pong / 2) and streamed time per message, for the
    message that ``send()`` / ``recv()`` move; ``burst(k)`` sends k of them (default: k sends).
    Rank 1 runs the same calls, mirrored."""
    reps = repeats_for(nbytes, repeat)
    k = max(1, STREAM_BYTES // nbytes) if nbytes > 4096 else 1000
    burst = burst or (lambda k: [send() for _ in range(k)])

    def ping_pong():
        if rank == 0:
            send()
            recv()
        else:
            recv()
            send()

    def stream():
        if rank == 0:
            burst(k)
            recv_ack()
        else:
            for _ in range(k):
                recv()
            send_ack()

    trips = time_calls(ping_pong, reps, warmup=10)
    streams = time_calls(stream, max(5, reps // 5), warmup=1)
    return {"one_way_s": statistics.median(trips) / 2,
            "stream_per_msg_s": statistics.median(streams) / k, "stream_k": k}


def transport_worker(rank, world, addresses, sizes, repeat):
    """Per transport and size: one-way time and streamed time per message (rank 0's)."""
    import numpy as np
    import zmq
    ctx = zmq.Context()
    results = {}
    ack = np.zeros(1, np.float32)
    for name, (mine, theirs) in addresses.items():
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.RCVHWM, 0)
        router.bind(mine if rank == 0 else theirs)
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.IDENTITY, b"%d" % rank)
        dealer.setsockopt(zmq.SNDHWM, 0)
        dealer.connect(theirs if rank == 0 else mine)

        def send(payload):
            buf = memoryview(payload).cast("B")
            dealer.send_multipart([HEADER, buf], copy=payload.nbytes < ZERO_COPY_MIN)

        def recv():
            return router.recv_multipart(copy=False)

        results[name] = {}
        for n in sizes:
            payload = np.zeros(n, np.float32)
            results[name][n] = one_way_and_stream(rank, lambda: send(payload), recv,
                                                  lambda: send(ack), recv, payload.nbytes,
                                                  repeat)
        router.close(linger=0)
        dealer.close(linger=0)
    ctx.term()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES,
                        help="message sizes in float32 elements")
    parser.add_argument("--repeat", type=int, default=200, help="round trips for messages up "
                        "to 1 MB (fewer for larger ones)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    meta = machine()
    print(describe(meta))
    with tempfile.TemporaryDirectory(prefix="dtrain-ipc-") as tmp:
        addresses = {
            "tcp": (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"),
            "ipc": (f"ipc://{tmp}/rank0", f"ipc://{tmp}/rank1"),
        }
        results = run_ranks(transport_worker, 2, addresses, args.sizes, args.repeat)[0]
    rows = []
    print("\nraw pyzmq DEALER->ROUTER, 2 processes: one-way time = ping-pong / 2; "
          "bandwidth = streamed bytes / time")
    print(f"{'transport':9} {'elements':>9} {'bytes':>7} {'one-way':>10} {'GB/s':>7} "
          f"{'streamed/msg':>12} {'GB/s':>7}")
    for name, by_size in results.items():
        for n in args.sizes:
            r = by_size[n]
            nbytes = 4 * n
            rows.append({"transport": name, "elements": n, "bytes": nbytes, **r,
                         "one_way_Bps": nbytes / r["one_way_s"],
                         "stream_Bps": nbytes / r["stream_per_msg_s"]})
            print(f"{name:9} {n:9d} {fmt_bytes(nbytes):>7} {fmt_time(r['one_way_s']):>10} "
                  f"{nbytes / r['one_way_s'] / 1e9:7.3f} {fmt_time(r['stream_per_msg_s']):>12} "
                  f"{nbytes / r['stream_per_msg_s'] / 1e9:7.3f}")
    meta["load_avg_after"] = os.getloadavg()
    print(f"\nload average after: {meta['load_avg_after'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "transport", "meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
