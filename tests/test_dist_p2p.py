"""dtrain.distributed point-to-point in real processes: send/recv, isend/irecv, any-source
receives, tags, FIFO order, batch_isend_irecv, object lists and buffer-mismatch errors."""
import numpy as np
import pytest

from multiproc import run_ranks

DTYPES = ["float32", "float64", "int32", "int64", "bool", "uint8", "int8", "int16",
          "float16"]
SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 0, 3)]


def payload(src, dst, shape, dtype, salt=0):
    rng = np.random.default_rng([src, dst, salt, len(shape), *shape])
    return np.array(rng.integers(-100, 100, size=shape), dtype=dtype)


def same(got, want, what):
    got = np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: {got.dtype}{list(got.shape)} vs expected {want.dtype}{list(want.shape)}"
    assert np.array_equal(got, want), f"{what}: got\n{got}\nexpected\n{want}"


def p2p_battery(rank, world):
    import dtrain
    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    right, left = (rank + 1) % world, (rank - 1) % world

    # every dtype and shape around the ring; even ranks send first, so blocking calls pair up
    for dtype in DTYPES:
        for shape in SHAPES:
            what = f"{dtype}{list(shape)}"
            out = payload(rank, right, shape, dtype)
            buf = np.zeros(shape, dtype)
            if rank % 2 == 0:
                dist.send(out, dst=right)
                got = dist.recv(buf, src=left)
            else:
                got = dist.recv(buf, src=left)
                dist.send(out, dst=right)
            assert got == left
            same(buf, payload(left, rank, shape, dtype), f"send/recv {what}")
            # the same with Tensors and isend/irecv
            tbuf = dtrain.from_numpy(np.zeros(shape, dtype))
            rw = dist.irecv(tbuf, src=left, tag=3)
            sw = dist.isend(dtrain.from_numpy(payload(rank, right, shape, dtype, 1)), right, tag=3)
            assert sw.wait() is True and rw.wait() is True
            assert rw.source_rank() == left and rw.is_completed() and rw.exception() is None
            same(tbuf.numpy(), payload(left, rank, shape, dtype, 1), f"isend/irecv {what}")

    # non-contiguous send and receive buffers; a 4 MB message (zero-copy path)
    base = np.zeros((5, 3), np.float32)
    rw = dist.irecv(base.T, src=left)
    dist.isend(np.arange(15, dtype=np.float32).reshape(5, 3).T * (rank + 1), right).wait()
    rw.wait()
    same(base, np.arange(15, dtype=np.float32).reshape(5, 3) * (left + 1), "views")
    big = np.zeros(1 << 20, np.float32)
    rw = dist.irecv(big, src=left)
    sent = np.arange(1 << 20, dtype=np.float32) + rank
    dist.isend(sent, right).wait()
    rw.wait()
    same(big, np.arange(1 << 20, dtype=np.float32) + left, "4 MB message")

    # batch_isend_irecv: a ring exchange in both directions at once
    to_r, to_l = np.full(4, rank, np.int64), np.full(4, -rank, np.int64)
    from_l, from_r = np.zeros(4, np.int64), np.zeros(4, np.int64)
    ops = [dist.P2POp(dist.isend, to_r, right), dist.P2POp(dist.irecv, from_l, left),
           dist.P2POp(dist.isend, to_l, left, tag=1), dist.P2POp(dist.irecv, from_r, right,
                                                                 tag=1)]
    works = dist.batch_isend_irecv(ops)
    assert len(works) == 4
    for w in works:
        w.wait()
    same(from_l, np.full(4, left, np.int64), "batch_isend_irecv from the left")
    same(from_r, np.full(4, -right, np.int64), "batch_isend_irecv from the right")
    assert works[1].source_rank() == left

    # any-source receive: rank 0 hears from everyone, in whatever order, and learns who
    if rank == 0:
        seen = {}
        for _ in range(world - 1):
            buf = np.zeros(3, np.int32)
            src = dist.recv(buf)  # src=None
            seen[src] = buf.copy()
        assert sorted(seen) == list(range(1, world))
        for src, buf in seen.items():
            same(buf, np.full(3, src * 11, np.int32), f"any-source from {src}")
        works = [dist.irecv(np.zeros(1, np.int64), tag=9) for _ in range(world - 1)]
        for w in works:
            w.wait()
        assert sorted(w.source_rank() for w in works) == list(range(1, world))
    elif world > 1:
        dist.send(np.full(3, rank * 11, np.int32), dst=0)
        dist.send(np.zeros(1, np.int64), dst=0, tag=9)

    if world > 1 and rank in (0, 1):
        peer = 1 - rank
        if rank == 0:
            # tags: sent 1, 2, 3; received 3, 1, 2
            for tag in (1, 2, 3):
                dist.send(np.full(2, tag * 10, np.int16), dst=1, tag=tag)
            # FIFO: 100 messages, same source and tag, arrive in the order sent
            works = [dist.isend(np.array([i], np.int64), dst=1, tag=7) for i in range(100)]
            for w in works:
                w.wait()
            for i in range(100):
                dist.send(np.array([1000 + i], np.int64), dst=1, tag=8)
        else:
            for tag in (3, 1, 2):
                buf = np.zeros(2, np.int16)
                assert dist.recv(buf, src=peer, tag=tag) == peer
                same(buf, np.full(2, tag * 10, np.int16), f"tag {tag}")
            bufs = [np.zeros(1, np.int64) for _ in range(100)]
            works = [dist.irecv(b, src=peer, tag=7) for b in bufs]
            for w in reversed(works):
                w.wait()
            assert [int(b[0]) for b in bufs] == list(range(100)), "irecv out of FIFO order"
            got = []
            for _ in range(100):
                buf = np.zeros(1, np.int64)
                dist.recv(buf, tag=8)  # any source
                got.append(int(buf[0]))
            assert got == [1000 + i for i in range(100)], "recv out of FIFO order"
    dist.barrier()
    dist.destroy_process_group()
    return True


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", [2, 3, 4])
def test_send_recv_every_dtype_shape_tags_fifo_and_batches(world):
    run_ranks(p2p_battery, world, timeout=50)


def objects_and_mismatch(rank, world):
    import dtrain.distributed as dist
    from dtrain.distributed import DistError
    dist.init_process_group("gloo")
    offset = 7 * rank
    if rank == 0:
        dist.send_object_list([(lambda x: x + offset), {"k": [1, 2]}, None, "é" * 3], dst=1)
        dist.send_object_list([b"z" * 300_000], dst=1)
        dist.send(np.zeros(3, np.float32), dst=1)
        dist.send(np.zeros(3, np.float32), dst=1, tag=1)
        dist.send(np.zeros((2, 2), np.float64), dst=1, tag=2)
        dist.send(np.ones(3, np.float32), dst=1, tag=3)
        return None
    objs = [None] * 4
    assert dist.recv_object_list(objs, src=0) == 0
    assert objs[0](1) == 1 and objs[1] == {"k": [1, 2]} and objs[2] is None and objs[3] == "ééé"
    objs = [None]
    assert dist.recv_object_list(objs) == 0  # any source
    assert objs[0] == b"z" * 300_000
    errors = []
    for buf, tag in [(np.zeros(4, np.float32), 0), (np.zeros(3, np.int32), 1),
                     (np.zeros((4,), np.float64), 2)]:
        try:
            dist.recv(buf, src=0, tag=tag)
            errors.append(None)
        except DistError as e:
            errors.append(str(e))
    # the group is still usable after a refused message
    buf = np.zeros(3, np.float32)
    dist.recv(buf, src=0, tag=3)
    same(buf, np.ones(3, np.float32), "after a mismatch")
    return errors


@pytest.mark.timeout(60)
def test_object_lists_and_receive_buffer_mismatch_names_both_sides():
    errors = run_ranks(objects_and_mismatch, 2, timeout=40)[1]
    shape, dtype, both = errors
    assert shape and "[3]" in shape and "[4]" in shape, shape
    assert dtype and "float32" in dtype and "int32" in dtype, dtype
    assert both and "[2, 2]" in both and "[4]" in both and "float64" in both, both
