"""Same-host point-to-point through shared-memory rings (rings.py, p2p.py): messages up to
rings.MAX_PAYLOAD go through a per-pair ring, written by the sender's thread and read by the
receiver's, larger ones through the sender's bulk area beside it, and those that find either
busy by socket. That the rings are really used, that the ways together keep the order sent,
match tags and groups, serve any-source receives, polling and many threads, time out and fail
cleanly, and that a large message outlives its sender; and, in one process, the ring itself:
round trip, wrap-around, a full ring, the bulk area, malformed records."""
import threading
import time

import numpy as np
import pytest

from multiproc import run_ranks, run_script

KB, MB = 1 << 10, 1 << 20
pytestmark = pytest.mark.usefixtures("shared_memory_on")


def init(**kwargs):
    import dtrain.distributed as dist
    dist.init_process_group("gloo", **kwargs)
    return dist


def count_socket_traffic(engine):
    """Count the point-to-point messages this rank sends through its engine thread, and those
    the engine thread delivers to it (the socket way): two lists, of sizes and of senders."""
    sent, delivered = [], []
    send_now, deliver = engine._send_now, engine._receives.deliver

    def counted_send(dst, header, array, work):
        sent.append(array.nbytes)
        send_now(dst, header, array, work)

    def counted_deliver(sender, header, payload):
        delivered.append(sender)
        deliver(sender, header, payload)

    engine._send_now, engine._receives.deliver = counted_send, counted_deliver
    return sent, delivered


def init_counted():
    """init, with socket traffic counted (count_socket_traffic) on every rank before any rank
    sends: (dist, its engine, sent, delivered)."""
    dist = init()
    engine = dist.group.WORLD.engine
    sent, delivered = count_socket_traffic(engine)
    dist.barrier()
    return dist, engine, sent, delivered


def message(i, count, dtype=np.int32, salt=0):
    """Message ``i``: ``count`` elements that encode ``i`` (and ``salt``) in every element."""
    return ((np.arange(count) % 97) * 1000 + i + salt * 100_000).astype(dtype)


# --- 1. order across the two ways ----------------------------------------------------------------

def mixed_schedule():
    """(count, dtype) of each message: small ones (ring), large ones (socket), and both sides
    of rings.MAX_PAYLOAD."""
    from dtrain.distributed import rings
    edge = rings.MAX_PAYLOAD // 4
    schedule = []
    for i in range(40):
        if i % 4 == 1:
            schedule.append((100_000 + i, np.int32))  # ~400 KB: socket, zero-copy
        elif i % 4 == 3:
            schedule.append((edge + (i // 4) % 2, np.int32))  # 64 KB: ring; 64 KB + 4: socket
        else:
            schedule.append((1 + 37 * i, np.int64))
    return schedule


def mixed_sizes_in_order(rank, world):
    from dtrain.distributed import rings
    dist, engine, sent, delivered = init_counted()
    schedule = mixed_schedule()
    large = sum(count * np.dtype(dtype).itemsize > rings.MAX_PAYLOAD for count, dtype in schedule)
    if rank == 0:
        works = [dist.isend(message(i, count, dtype), dst=1, tag=3)
                 for i, (count, dtype) in enumerate(schedule)]
        for work in works:
            work.wait()
        used = engine.sends.rings[1]._position, engine.sends.rings[1]._bulk is not None
    else:
        for i, (count, dtype) in enumerate(schedule):
            buf = np.zeros(count, dtype)
            assert dist.recv(buf, src=0, tag=3) == 0
            assert np.array_equal(buf, message(i, count, dtype)), \
                f"message #{i} ({buf.nbytes} bytes) holds message #{buf[0] % 1000}"
        used = engine._receives._rings[0]._position
    dist.destroy_process_group()
    return large, len(sent), len(delivered), used


@pytest.mark.timeout(60)
def test_ring_and_socket_messages_with_one_tag_arrive_in_the_order_sent():
    (large, sent, _, (written, bulk)), (_, _, delivered, read) = run_ranks(
        mixed_sizes_in_order, 2, timeout=50)
    assert large == 15
    # the large ones went through the bulk area, or by socket when they found it unread; the
    # small ones by ring (or by socket when they found it full)
    assert bulk and sent == delivered < 40, (sent, delivered)
    assert written > 0 and read == written


def burst(rank, world, count=2000):
    dist, engine, sent, delivered = init_counted()
    if rank == 0:
        works = [dist.isend(message(i, KB // 4), dst=1) for i in range(count)]
        for work in works:
            work.wait()
        dist.barrier()  # only now does rank 1 start receiving
        result = len(sent), engine.sends.rings[1]._position
    else:
        dist.barrier()
        got = []
        for i in range(count):
            buf = np.zeros(KB // 4, np.int32)
            dist.recv(buf, src=0)
            got.append(buf)
        bad = [i for i, buf in enumerate(got) if not np.array_equal(buf, message(i, KB // 4))]
        assert not bad, f"{len(bad)} messages out of order or damaged, first #{bad[0]}: " \
                        f"{got[bad[0]][:4]}"
        result = len(delivered), engine._receives._rings[0]._position
    dist.destroy_process_group()
    return result


@pytest.mark.timeout(60)
def test_a_burst_that_fills_the_ring_overflows_to_the_socket_in_order():
    from dtrain.distributed.shm import RING_BYTES
    (sent, written), (delivered, read) = run_ranks(burst, 2, timeout=50)
    # 2 MB into a 256 KB ring nobody reads yet: both ways carried part of it
    assert written >= RING_BYTES // 2 and 0 < sent < 2000, (sent, written)
    assert delivered == sent and read == written


# --- 2. the ring is what carries small messages ---------------------------------------------------

def small_sends(rank, world):
    dist, engine, sent, delivered = init_counted()
    dtypes = [np.float32, np.int64, np.uint8, np.bool_, np.float16, np.float64]
    shapes = [(), (0,), (1,), (3, 5), (KB,)]
    cases = [(d, s) for d in dtypes for s in shapes]  # 30 messages, ~30 KB: the ring holds all
    if rank == 0:
        for i, (dtype, shape) in enumerate(cases):
            dist.send(message(i, int(np.prod(shape)), dtype).reshape(shape), dst=1, tag=i % 3)
        rings = {r: ring._position for r, ring in engine.sends.rings.items()}
        result = rings, len(sent)
    else:
        for i, (dtype, shape) in enumerate(cases):
            buf = np.ones(shape, dtype)
            dist.recv(buf, src=0, tag=i % 3)
            want = message(i, int(np.prod(shape)), dtype).reshape(shape)
            assert np.array_equal(buf, want), f"message #{i}: {dtype.__name__}{list(shape)}"
        rings = {r: ring._position for r, ring in engine._receives._rings.items()}
        result = rings, len(delivered)
    dist.destroy_process_group()
    return result


@pytest.mark.timeout(60)
def test_small_messages_go_through_the_ring_not_the_engine_thread():
    (rings0, sent), (rings1, delivered) = run_ranks(small_sends, 2, timeout=50)
    assert list(rings0) == [1] and list(rings1) == [0]
    assert rings0[1] > 30 * 64 and rings1[0] == rings0[1]  # every record written was read
    assert sent == 0 and delivered == 0, "small messages went through the engine thread"


@pytest.mark.timeout(60)
def test_with_dtrain_shm_0_there_are_no_rings_and_the_socket_carries_all_in_order():
    (rings0, sent), (rings1, delivered) = run_ranks(small_sends, 2, timeout=50,
                                                    env={"DTRAIN_SHM": "0"})
    assert rings0 == {} and rings1 == {}
    assert sent == 30 and delivered == 30


# --- 3. any source; polling -----------------------------------------------------------------------

def any_source(rank, world, per_peer=25):
    dist, engine, _, delivered = init_counted()
    if rank == 0:
        seen = {1: [], 2: []}
        for _ in range(2 * per_peer):
            buf = np.zeros(64, np.int32)
            src = dist.recv(buf)  # any source
            seen[src].append(buf)
        for src, bufs in seen.items():
            assert len(bufs) == per_peer, {s: len(b) for s, b in seen.items()}
            for i, buf in enumerate(bufs):
                assert np.array_equal(buf, message(i, 64, salt=src)), \
                    f"message #{i} said to come from rank {src} holds {buf[:3]}"
        works = [dist.irecv(np.zeros(3, np.float64), tag=7) for _ in range(2)]
        for work in works:
            work.wait()
        sources = sorted(work.source_rank() for work in works)
        assert sources == [1, 2], sources
        assert sorted(engine._receives._rings) == [1, 2]
    else:
        for i in range(per_peer):
            dist.send(message(i, 64, salt=rank), dst=0)
        dist.send(np.zeros(3, np.float64), dst=0, tag=7)
    dist.destroy_process_group()
    return len(delivered)


@pytest.mark.timeout(60)
def test_any_source_receives_read_every_peers_ring_and_name_the_sender():
    delivered = run_ranks(any_source, 3, timeout=50)
    assert delivered[0] == 0, "the messages went through the engine thread"


def polled(rank, world):
    dist, engine, _, delivered = init_counted()

    def poll(works):  # no wait(): polling alone completes them
        end = time.monotonic() + 20
        while not all(work.is_completed() for work in works):
            assert time.monotonic() < end, [work.is_completed() for work in works]

    if rank == 1:
        small, anyone, large = np.zeros(5, np.int64), np.zeros(2, np.int16), np.zeros(MB, np.int8)
        works = [dist.irecv(small, src=0), dist.irecv(anyone, tag=4)]
        dist.barrier()  # posted before rank 0 sends
        poll(works)  # by ring: only is_completed() itself reads it
        assert np.array_equal(small, message(0, 5, np.int64))
        assert np.array_equal(anyone, message(1, 2, np.int16))
        works.append(dist.irecv(large, src=0, tag=5))
        dist.barrier()
        poll(works[2:])  # by socket: the engine thread completes it
        assert np.array_equal(large, message(2, MB, np.int8))
        assert [work.source_rank() for work in works] == [0, 0, 0]
        assert [work.is_success() for work in works] == [True] * 3
    else:
        dist.barrier()
        dist.send(message(0, 5, np.int64), dst=1)
        dist.send(message(1, 2, np.int16), dst=1, tag=4)
        dist.barrier()
        from dtrain.distributed import rings
        rings.MAX_BULK = 0  # by socket, not through the bulk area
        dist.send(message(2, MB, np.int8), dst=1, tag=5)
    dist.destroy_process_group()
    return len(delivered)


@pytest.mark.timeout(60)
def test_irecv_posted_first_completes_by_polling_is_completed():
    assert run_ranks(polled, 2, timeout=50)[1] == 1  # only the large one came by socket


# --- 4. tags and groups ---------------------------------------------------------------------------

def tags_and_groups(rank, world):
    dist = init()
    pair = dist.new_group([0, 1])
    if rank == 0:
        for i in range(20):  # tags 1 and 2 interleaved
            dist.send(message(i, 8, salt=1), dst=1, tag=1)
            dist.send(message(i, 8 + i % 2, salt=2), dst=1, tag=2)
        dist.send(np.full(4, 11, np.int32), dst=1, group=pair, tag=5)
        dist.send(np.full(4, 22, np.int32), dst=1, tag=5)  # default group, same tag
    else:
        for i in range(20):  # tag 2 first, although tag 1's came first each time
            buf = np.zeros(8 + i % 2, np.int32)
            dist.recv(buf, src=0, tag=2)
            assert np.array_equal(buf, message(i, 8 + i % 2, salt=2)), (i, buf)
        for i in range(20):
            buf = np.zeros(8, np.int32)
            dist.recv(buf, tag=1)  # any source
            assert np.array_equal(buf, message(i, 8, salt=1)), (i, buf)
        default, grouped = np.zeros(4, np.int32), np.zeros(4, np.int32)
        assert dist.recv(default, src=0, tag=5) == 0
        assert dist.recv(grouped, src=0, group=pair, tag=5) == 0
        assert (default == 22).all() and (grouped == 11).all(), (default, grouped)
    dist.destroy_process_group()


@pytest.mark.timeout(60)
def test_ring_messages_are_matched_by_tag_and_group_not_by_arrival():
    run_ranks(tags_and_groups, 2, timeout=50)


# --- 5. timeouts ----------------------------------------------------------------------------------

def never_sent(rank, world):
    from dtrain.distributed import DistTimeoutError
    dist = init()
    short = dist.new_group([0, 1], timeout=1.5)  # the default group's timeout stays long
    results = []
    if rank == 1:
        cpu, start = time.process_time(), time.monotonic()
        works = [dist.irecv(np.zeros(4, np.float32), src=src, group=short, tag=6)
                 for src in (0, None)]
        for work in works:
            try:
                work.wait()
                results.append(("no error", 0))
            except DistTimeoutError as e:
                results.append((str(e), time.monotonic() - start))
        results.append((time.process_time() - cpu, time.monotonic() - start))
        dist.send(np.ones(1, np.int8), dst=0)  # done: rank 0 may leave
    else:
        dist.recv(np.zeros(1, np.int8), src=1)  # stays, silent, until then
    dist.destroy_process_group()
    return results


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shm", ["1", "0"])
def test_a_receive_from_a_silent_peer_times_out_on_time_and_sleeping(shm):
    *results, (cpu, wall) = run_ranks(never_sent, 2, timeout=50, env={"DTRAIN_SHM": shm})[1]
    for (text, took), who in zip(results, ["rank 0", "any rank"]):
        assert "timed out" in text and who in text and "tag 6" in text, text
        assert 1.45 < took < 2.5, f"{who}: timed out after {took:.2f} s, not about 1.5 s"
    assert cpu < 0.5 * wall, f"{cpu:.2f} s of CPU while waiting {wall:.2f} s"


# --- 7. many threads ------------------------------------------------------------------------------

def threaded(rank, world, per_thread=300):
    dist = init()
    errors = []

    def sizes(i):
        return 300_000 if i % 50 == 7 else 1 + (i * 131) % 4000  # a few large ones: socket

    def sender(tag):
        try:
            for i in range(per_thread):
                dist.send(message(i, sizes(i), salt=tag), dst=1, tag=tag)
        except BaseException as e:
            errors.append(f"send tag {tag}: {e!r}")

    def receiver(tag):
        try:
            for i in range(per_thread):
                buf = np.zeros(sizes(i), np.int32)
                assert dist.recv(buf, src=0, tag=tag) == 0
                assert np.array_equal(buf, message(i, sizes(i), salt=tag)), \
                    f"tag {tag}: message #{i} holds {buf[:3]}"
        except BaseException as e:
            errors.append(f"recv tag {tag}: {e!r}")

    threads = [threading.Thread(target=sender if rank == 0 else receiver, args=(tag,))
               for tag in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert not any(t.is_alive() for t in threads), "a thread hangs"
    assert not errors, errors
    dist.destroy_process_group()


@pytest.mark.timeout(60)
def test_two_threads_per_rank_with_a_tag_each():
    run_ranks(threaded, 2, timeout=50)


# --- 8. malformed records -------------------------------------------------------------------------

def corrupted(rank, world, posted_first):
    """Rank 0 sends rank 1 a message by ring, then spoils its record's lengths: rank 1's
    receive from rank 0 fails with DistBackendError, posted before the record was read or
    after."""
    from dtrain.distributed import DistError
    dist = init()
    short = dist.new_group([0, 1], timeout=1.5)
    engine = dist.group.WORLD.engine
    if rank == 0:
        ring = engine.sends.rings[1]
        dist.barrier()  # rank 1's first receive is posted
        start = ring._position
        dist.send(np.arange(3, dtype=np.int32), dst=1, group=short)
        assert ring._position > start, "the message did not go by ring"
        ring._data[start:start + 16].view(np.int64)[:] = (1 << 20, 12)
        dist.barrier()  # only now does rank 1 read the ring
        dist.recv(np.zeros(1, np.int8), src=1)  # rank 1 is done
        result = None
    else:
        buf = np.zeros(3, np.int32)
        work = dist.irecv(buf, src=0, group=short) if posted_first else None
        dist.barrier()
        dist.barrier()
        start = time.monotonic()
        try:
            (work or dist.irecv(buf, src=0, group=short)).wait()
            result = "no error", buf.tolist(), 0
        except DistError as e:
            result = type(e).__name__, str(e), time.monotonic() - start
        dist.send(np.ones(1, np.int8), dst=0)
    dist.destroy_process_group()
    return result


def check_corrupted(posted_first):
    kind, text, took = run_ranks(corrupted, 2, posted_first, timeout=50)[1]
    assert kind == "DistBackendError", (kind, text)
    assert "rank 1 cannot read rank 0's messages" in text and "malformed record" in text, text
    assert took < 1.0, f"the error took {took:.2f} s"


@pytest.mark.timeout(60)
def test_a_malformed_record_fails_the_receive_waiting_for_it():
    check_corrupted(posted_first=True)


@pytest.mark.timeout(60)
def test_a_malformed_record_fails_a_receive_posted_after_it():
    check_corrupted(posted_first=False)


# --- the ring itself, in one process --------------------------------------------------------------

@pytest.fixture
def ring():
    """An Outbound from rank 0 and the Inbound of rank 1 reading it, over two Lanes."""
    from dtrain.distributed import rings, shm
    a, b = shm.Lanes.create(2), shm.Lanes.create(2)
    pair = (rings.Outbound(own=a, peer_lanes=b, me=0, peer=1),
            rings.Inbound(own=b, peer_lanes=a, me=1, peer=0), a, b)
    yield pair
    del pair
    a.close()
    b.close()


def header(array, seq, tag=0, group=0):
    from dtrain.distributed import wire
    return wire.encode(wire.P2P, group, seq, tag, 0, 0, array.dtype, array.shape, -1,
                       array.nbytes)


def check(inbound, seq, array, tag=0):
    """The next record is ``array``, number ``seq``; then let it go."""
    got = inbound.peek()
    assert got is not None, f"record #{seq} is missing"
    head, payload = got
    assert (head.seq, head.tag, head.dtype, head.shape) == (seq, tag, array.dtype, array.shape)
    assert np.array_equal(np.frombuffer(payload, array.dtype).reshape(array.shape), array), \
        f"record #{seq}'s payload is damaged"
    inbound.pop()


@pytest.mark.timeout(30)
def test_a_record_makes_the_round_trip_and_rings_the_doorbell(ring):
    out, inbound, _, b = ring
    assert inbound.peek() is None
    array = np.arange(10, dtype=np.float32).reshape(2, 5) * 1.5
    bell = int(b.bell[0])
    assert out.put(header(array, 0, tag=9, group=3), array)
    assert int(b.bell[0]) == bell + 1
    head, payload = inbound.peek()
    assert (head.group, head.tag, head.nbytes) == (3, 9, 40)
    assert inbound.peek()[0] is head  # the same record until popped
    check(inbound, 0, array, tag=9)
    assert inbound.peek() is None
    empty = np.zeros((0, 3), np.int64)
    assert out.put(header(empty, 1), empty)
    check(inbound, 1, empty)


@pytest.mark.timeout(30)
def test_records_of_every_size_wrap_around_the_ring_many_times(ring):
    from dtrain.distributed import rings
    from dtrain.distributed.shm import RING_BYTES
    out, inbound, _, _ = ring
    rng = np.random.default_rng(0)
    sizes = [int(n) for n in rng.integers(0, rings.MAX_PAYLOAD + 1, size=96)]
    sizes += [rings.MAX_PAYLOAD, 0, 1, rings.MAX_PAYLOAD]
    unread = []
    for seq, n in enumerate(sizes):
        array = rng.integers(0, 256, size=n, dtype=np.uint8)
        while not out.put(header(array, seq), array):  # full: the reader catches up
            assert unread, f"an empty ring refused {n} bytes"
            check(inbound, *unread.pop(0))
        unread.append((seq, array))
        if seq % 3 == 0:  # reads lag behind writes
            check(inbound, *unread.pop(0))
    while unread:
        check(inbound, *unread.pop(0))
    assert inbound.peek() is None
    assert out._position > 5 * RING_BYTES and inbound._position == out._position


@pytest.mark.timeout(30)
def test_large_messages_go_through_the_bulk_area_one_at_a_time(ring, monkeypatch):
    from dtrain.distributed import rings
    out, inbound, _, _ = ring
    rng = np.random.default_rng(1)
    sizes = [rings.MAX_PAYLOAD + 1, 3 << 20, 100_000, 5 << 20, 1 << 20]
    for seq, n in enumerate(sizes):
        array = rng.integers(0, 256, size=n, dtype=np.uint8)
        assert out.put(header(array, seq), array)
        assert out.unread()
        later = np.ones(n, np.uint8)
        assert not out.put(header(later, seq + 1), later)  # one at a time: by socket
        small = np.ones(4, np.uint8)
        assert out.put(header(small, seq + 1), small) and out.unread()  # the ring is free
        check(inbound, seq, array)  # (the area grew, with the same fd number, maybe)
        assert not out.unread()
        inbound.peek()
        inbound.pop()
    assert out._bulk[1].size() < 6 << 20  # as large as the largest message, rounded to a page
    monkeypatch.setattr(rings, "MAX_BULK", 1 << 20)
    too_big = np.zeros((1 << 20) + 1, np.uint8)
    assert not out.put(header(too_big, 100), too_big)


@pytest.mark.timeout(30)
def test_a_full_ring_refuses_a_record_until_the_reader_makes_room(ring):
    out, inbound, a, _ = ring
    written, _, _ = a.ring(1)
    records = []
    while True:
        array = message(len(records), KB // 4)
        if not out.put(header(array, len(records)), array):
            break
        records.append(array)
    assert 200 < len(records) < 256, len(records)
    position = int(written[0])
    assert not out.put(header(array, len(records)), array)  # still full
    assert int(written[0]) == position == out._position    # and nothing was written
    check(inbound, 0, records[0])
    assert out.put(header(array, len(records)), array)
    records.append(array)
    for seq, array in enumerate(records[1:], 1):
        check(inbound, seq, array)
    assert inbound.peek() is None


def _corrupt_lengths(data):
    data[0:16].view(np.int64)[:] = (1 << 20, 4)


def _corrupt_negative_payload(data):
    data[8:16].view(np.int64)[0] = -8


def _corrupt_magic(data):
    data[32:34] = np.frombuffer(b"XX", np.uint8)  # the header, after three lengths and a pad


def _corrupt_kind(data):
    data[32 + 3] = 2  # COLLECTIVE


def _corrupt_payload_size(data):
    data[8:16].view(np.int64)[0] = 16  # the header says 12


@pytest.mark.timeout(30)
@pytest.mark.parametrize("corrupt, problem", [
    (_corrupt_lengths, r"rank 0's point-to-point ring holds a malformed record \(1048576 "
                       r"header bytes, 4 payload bytes\)"),
    (_corrupt_negative_payload, r"malformed record \(\d+ header bytes, -8 payload bytes\)"),
    (_corrupt_magic, "not a dtrain v1 message"),
    (_corrupt_kind, "rank 0's point-to-point ring holds a message of kind 2"),
    (_corrupt_payload_size, "declares 12 payload bytes but 16 arrived"),
])
def test_a_malformed_record_raises_a_value_error_naming_the_problem(ring, corrupt, problem):
    out, inbound, a, _ = ring
    array = np.arange(3, dtype=np.int32)
    assert out.put(header(array, 0), array)
    corrupt(a.ring(1)[2])  # the writer's data, which the reader maps
    for _ in range(2):  # and again: it stays an error, not garbage
        with pytest.raises(ValueError, match=problem):
            inbound.peek()


SEND_LARGE_THEN_DIE = """
import sys, time
import numpy as np
import dtrain.distributed as dist
dist.init_process_group("gloo")
t = np.arange(1 << 20, dtype=np.float32)
if dist.get_rank() == 0:
    dist.send(t, dst=1)  # through the bulk area, which goes with this process
    raise ValueError("dies")  # leaves without the parting barrier, before rank 1 has read it
time.sleep(1.0)  # rank 0 has left by now: what it sent before is still received
got = np.zeros_like(t)
dist.recv(got, src=0)
print("equal", bool((got == t).all()))
"""


@pytest.mark.timeout(60)
def test_a_large_message_outlives_a_sender_that_leaves_at_once(tmp_path):
    script = tmp_path / "send_large.py"
    script.write_text(SEND_LARGE_THEN_DIE)
    out = run_script(script)
    assert out[1][0] == "equal True\n", out[1][1]
    assert "ValueError: dies" in out[0][1]
