"""dtrain.distributed collectives in real processes on 127.0.0.1 (tests/multiproc.py).

Each test is one spawn per world size that runs a whole battery inside the ranks: every rank
computes the expected result itself, in numpy, from every rank's (deterministic) input, asserts,
and returns digests of its results so the parent can check that all ranks hold bit-identical
values. Values are small integers (also in float tensors) so that any reduction order gives the
exact result; one random float case checks that the ring path gives every rank the same bits.
The last test runs the same battery in torch.distributed (gloo) and compares.
"""
import hashlib

import numpy as np
import pytest

from multiproc import run_ranks

WORLD_SIZES = [1, 2, 3, 4]
DTYPES = ["float32", "float64", "int32", "int64", "bool"]
SHAPES = [(), (0,), (1,), (7,), (3, 5)]
OPS = {"float": ["SUM", "PRODUCT", "MAX", "MIN", "AVG"],
       "int": ["SUM", "PRODUCT", "MAX", "MIN", "BAND", "BOR", "BXOR"],
       "bool": ["SUM", "PRODUCT", "MAX", "MIN", "BAND", "BOR", "BXOR"]}
UFUNCS = {"SUM": np.add, "AVG": np.add, "PRODUCT": np.multiply, "MAX": np.maximum,
          "MIN": np.minimum, "BAND": np.bitwise_and, "BOR": np.bitwise_or,
          "BXOR": np.bitwise_xor}


# --- run inside the ranks --------------------------------------------------------------------

def kind(dtype):
    dtype = np.dtype(dtype)
    return "bool" if dtype == np.bool_ else "float" if dtype.kind == "f" else "int"


def value(rank, shape, dtype, salt=0, op="SUM"):
    """Rank ``rank``'s input: small integers, so every reduction order is exact."""
    rng = np.random.default_rng([rank, salt, len(shape), *shape])
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        values = rng.random(shape) < 0.5
    elif op == "PRODUCT":
        values = rng.choice(np.array([-2, -1, 1, 2]), size=shape)
    elif op in ("BAND", "BOR", "BXOR"):
        values = rng.integers(-128, 128, size=shape)
    else:
        values = rng.integers(-50, 50, size=shape)
    return np.array(values, dtype=dtype)  # an array even when 0-d


def fold(arrays, op):
    """The reduction of ``arrays`` in rank order, computed here independently."""
    out = np.array(arrays[0], copy=True)
    for a in arrays[1:]:
        out = np.asarray(UFUNCS[op](out, a)).astype(out.dtype)
    if op == "AVG":
        out = np.asarray(np.divide(out, len(arrays))).astype(out.dtype)
    return out


def digest(arr):
    arr = np.asarray(arr)
    return hashlib.sha1(f"{arr.dtype}{arr.shape}".encode() + arr.tobytes()).hexdigest()


def same(got, want, what):
    got = np.asarray(got)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert np.array_equal(got, want), f"{what}: got\n{got}\nexpected\n{want}"


def init():
    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    return dist


def small_battery(rank, world):
    """Every collective x dtype x shape x op, on numpy arrays and dtrain Tensors."""
    import dtrain
    dist = init()
    assert dist.is_initialized() and dist.get_rank() == rank and dist.get_world_size() == world
    digests = {}
    for dtype in DTYPES:
        for shape in SHAPES:
            name = f"{dtype}{list(shape)}"
            for op in OPS[kind(dtype)]:
                want = fold([value(r, shape, dtype, 1, op) for r in range(world)], op)
                mine = value(rank, shape, dtype, 1, op)
                arr = mine.copy()
                assert dist.all_reduce(arr, op=getattr(dist.ReduceOp, op)) is None
                same(arr, want, f"all_reduce {op} {name} (numpy)")
                base = mine.copy()
                t = dtrain.from_numpy(base)
                dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
                same(base, want, f"all_reduce {op} {name} (Tensor, in place)")
                same(t.numpy(), want, f"all_reduce {op} {name} (Tensor)")
                digests[f"all_reduce {op} {name}"] = digest(arr)
                for root in range(world):
                    buf = value(rank, shape, dtype, 2 + root, op)
                    dist.reduce(buf, dst=root, op=getattr(dist.ReduceOp, op))
                    if rank == root:
                        want = fold([value(r, shape, dtype, 2 + root, op) for r in range(world)],
                                    op)
                        same(buf, want, f"reduce {op} {name} to {root}")
                want = [value(r, shape, dtype, 10 + rank, op) for r in range(world)]
                out = np.zeros(shape, dtype)
                dist.reduce_scatter(out, [value(rank, shape, dtype, 10 + j, op)
                                          for j in range(world)], op=getattr(dist.ReduceOp, op))
                same(out, fold(want, op), f"reduce_scatter {op} {name}")
                if shape:
                    inp = np.concatenate([value(rank, shape, dtype, 20 + j, op)
                                          for j in range(world)])
                    out = dtrain.from_numpy(np.zeros(shape, dtype))
                    dist.reduce_scatter_tensor(out, dtrain.from_numpy(inp),
                                               op=getattr(dist.ReduceOp, op))
                    want = fold([value(r, shape, dtype, 20 + rank, op) for r in range(world)],
                                op)
                    same(out.numpy(), want, f"reduce_scatter_tensor {op} {name}")

            for root in range(world):
                buf = value(rank, shape, dtype, 30 + root) if rank == root \
                    else np.zeros(shape, dtype)
                dist.broadcast(buf, src=root)
                same(buf, value(root, shape, dtype, 30 + root), f"broadcast {name} from {root}")
                t = dtrain.from_numpy(np.zeros(shape, dtype))
                if rank == root:
                    t = dtrain.from_numpy(value(rank, shape, dtype, 40))
                dist.broadcast(t, src=root)
                same(t.numpy(), value(root, shape, dtype, 40), f"broadcast Tensor {name}")

            mine = value(rank, shape, dtype, 50)
            everyone = [value(r, shape, dtype, 50) for r in range(world)]
            outs = [np.ones(shape, dtype) for _ in range(world)]
            dist.all_gather(outs, mine)
            for r in range(world):
                same(outs[r], everyone[r], f"all_gather {name} [{r}]")
            touts = [dtrain.from_numpy(np.ones(shape, dtype)) for _ in range(world)]
            dist.all_gather(touts, dtrain.from_numpy(mine))
            for r in range(world):
                same(touts[r].numpy(), everyone[r], f"all_gather Tensor {name} [{r}]")
            stacked = np.zeros((world,) + shape, dtype)
            dist.all_gather_into_tensor(stacked, mine)
            same(stacked, np.stack(everyone), f"all_gather_into_tensor stacked {name}")
            if shape:
                cat = dtrain.from_numpy(np.zeros((world * shape[0],) + shape[1:], dtype))
                dist.all_gather_into_tensor(cat, dtrain.from_numpy(mine))
                same(cat.numpy(), np.concatenate(everyone), f"all_gather_into_tensor {name}")

            for root in range(world):
                lst = [np.zeros(shape, dtype) for _ in range(world)] if rank == root else None
                dist.gather(value(rank, shape, dtype, 60 + root), lst, dst=root)
                if rank == root:
                    for r in range(world):
                        same(lst[r], value(r, shape, dtype, 60 + root), f"gather {name} [{r}]")
                out = np.zeros(shape, dtype)
                lst = [value(k, shape, dtype, 70 + root) for k in range(world)] \
                    if rank == root else None
                dist.scatter(out, lst, src=root)
                same(out, value(rank, shape, dtype, 70 + root), f"scatter {name} from {root}")

            # all_to_all: piece i -> j has its own length, so sizes differ per pair
            def piece(i, j):
                n = (i + 2 * j) % 3 + (i == j)
                return (np.arange(n) + 100 * i + 10 * j).astype(dtype)
            outs = [dtrain.from_numpy(np.zeros(piece(j, rank).shape, dtype))
                    for j in range(world)]
            dist.all_to_all(outs, [dtrain.from_numpy(piece(rank, j)) for j in range(world)])
            for j in range(world):
                same(outs[j].numpy(), piece(j, rank), f"all_to_all {dtype} [{j}]")
            outs = [np.zeros(shape, dtype) for _ in range(world)]
            dist.all_to_all(outs, [value(rank, shape, dtype, 80 + j) for j in range(world)])
            for j in range(world):
                same(outs[j], value(j, shape, dtype, 80 + rank), f"all_to_all {name} [{j}]")
            if shape:  # even split along dim 0
                inp = np.concatenate([value(rank, shape, dtype, 90 + j) for j in range(world)])
                out = np.zeros_like(inp)
                dist.all_to_all_single(out, inp)
                same(out, np.concatenate([value(j, shape, dtype, 90 + rank)
                                          for j in range(world)]), f"all_to_all_single {name}")
            ins = [np.stack([piece(rank, j)] * 2, axis=1) for j in range(world)]  # uneven
            outs = [np.stack([piece(j, rank)] * 2, axis=1) for j in range(world)]
            out = dtrain.from_numpy(np.zeros((sum(len(o) for o in outs), 2), dtype))
            dist.all_to_all_single(out, dtrain.from_numpy(np.concatenate(ins)),
                                   output_split_sizes=[len(o) for o in outs],
                                   input_split_sizes=[len(i) for i in ins])
            same(out.numpy(), np.concatenate(outs), f"all_to_all_single uneven {dtype}")
    assert dist.barrier() is None
    dist.monitored_barrier(timeout=20)
    dist.monitored_barrier(timeout=20, wait_all_ranks=True)
    dist.barrier()
    dist.destroy_process_group()
    assert not dist.is_initialized()
    return digests


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", WORLD_SIZES)
def test_every_collective_dtype_shape_and_op(world):
    digests = run_ranks(small_battery, world, timeout=50)
    assert all(d == digests[0] for d in digests), "all_reduce results differ between ranks"


N = 1 << 20  # 4 MB of float32: the shared-memory path (one slot), or the ring without it


def large_value(rank, n, dtype, op="SUM"):
    i = np.arange(n, dtype=np.int64)
    if op == "PRODUCT":
        return ((i * 7 + rank * 3) % 5 - 2).astype(dtype)
    return ((i * 7 + rank * 13) % 1001 - 500).astype(dtype)


def large_battery(rank, world):
    import dtrain
    dist = init()
    digests = {}
    for n, dtype, ops in [(N, np.float32, ["SUM", "MAX", "MIN", "AVG", "PRODUCT"]),
                          (N + 3, np.float32, ["SUM"]),  # chunks of unequal length
                          (N // 2 + 1, np.float64, ["SUM", "AVG"]),
                          (N // 2 + 5, np.int64, ["SUM", "BXOR"]),
                          (4 * N + 1, np.bool_, ["MAX"])]:
            for op in ops:
                want = fold([large_value(r, n, dtype, op) for r in range(world)], op)
                buf = large_value(rank, n, dtype, op)
                dist.all_reduce(dtrain.from_numpy(buf), op=getattr(dist.ReduceOp, op))
                same(buf, want, f"all_reduce {op} {n} {np.dtype(dtype)}")
                digests[f"{op} {n} {np.dtype(dtype)}"] = digest(buf)
    # random floats: any order rounds differently, but every rank must hold the same bits
    rng = np.random.default_rng(rank)
    buf = rng.standard_normal(N + 1).astype(np.float32)
    exact = sum(np.random.default_rng(r).standard_normal(N + 1).astype(np.float32)
                .astype(np.float64) for r in range(world))
    dist.all_reduce(buf)
    np.testing.assert_allclose(buf, exact, rtol=1e-5, atol=1e-5)
    digests["random SUM"] = digest(buf)
    tv = dtrain.from_numpy(rng.standard_normal((1024, 1025)).astype(np.float32))
    dist.broadcast(tv, src=world - 1)
    digests["random broadcast"] = digest(tv.numpy())

    root = world - 1
    buf = large_value(rank, N, np.float32) if rank == root else np.zeros(N, np.float32)
    dist.broadcast(buf, src=root)
    same(buf, large_value(root, N, np.float32), "large broadcast")
    buf = large_value(rank, N, np.float32)
    dist.reduce(buf, dst=root)
    if rank == root:
        same(buf, fold([large_value(r, N, np.float32) for r in range(world)], "SUM"),
             "large reduce")
    out = np.zeros(world * N, np.float32)
    dist.all_gather_into_tensor(out, large_value(rank, N, np.float32))
    same(out, np.concatenate([large_value(r, N, np.float32) for r in range(world)]),
         "large all_gather_into_tensor")
    lst = [np.zeros(N // 4, np.float32) for _ in range(world)] if rank == 0 else None
    dist.gather(large_value(rank, N // 4, np.float32), lst, dst=0)
    if rank == 0:
        for r in range(world):
            same(lst[r], large_value(r, N // 4, np.float32), f"large gather [{r}]")
    inp = np.concatenate([large_value(rank + 10 * j, N // world, np.float32)
                          for j in range(world)])
    out = np.zeros(N // world, np.float32)
    dist.reduce_scatter_tensor(out, inp)
    same(out, fold([large_value(r + 10 * rank, N // world, np.float32) for r in range(world)],
                   "SUM"), "large reduce_scatter_tensor")
    inp = np.concatenate([large_value(rank + 10 * j, N // world, np.float32)
                          for j in range(world)])
    out = np.zeros_like(inp)
    dist.all_to_all_single(out, inp)
    same(out, np.concatenate([large_value(j + 10 * rank, N // world, np.float32)
                              for j in range(world)]), "large all_to_all_single")
    dist.destroy_process_group()
    return digests


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shm", ["1", "0"], ids=["shared-memory", "network"])
@pytest.mark.parametrize("world", WORLD_SIZES)
def test_large_tensors_exact_and_bit_identical_across_ranks(world, shm):
    digests = run_ranks(large_battery, world, timeout=50, env={"DTRAIN_SHM": shm})
    for r, d in enumerate(digests):
        assert d == digests[0], f"rank {r} holds different bits than rank 0"


def views_and_async(rank, world):
    """In place on the caller's object, non-contiguous views written back, async overlap."""
    import dtrain
    dist = init()
    everyone = [value(r, (3, 5), np.float32, 1) for r in range(world)]
    # a transposed view of a dtrain Tensor: the base sees the result
    base = dtrain.from_numpy(value(rank, (3, 5), np.float32, 1).T.copy())
    view = base.t()
    assert not view._data.flags.c_contiguous
    dist.all_reduce(view, op=dist.ReduceOp.MAX)
    same(view.numpy(), fold(everyone, "MAX"), "all_reduce into a transposed view")
    same(base.numpy(), fold(everyone, "MAX").T, "the view's base")
    everyone = [value(r, (5, 3), np.float32, 1) for r in range(world)]
    # numpy transposed view
    base = value(rank, (5, 3), np.float32, 1)
    dist.all_reduce(base.T, op=dist.ReduceOp.AVG)
    same(base, fold(everyone, "AVG"), "AVG into a numpy transposed view")
    # strided slice
    arr = np.zeros(20, np.int64)
    arr[::2] = rank + 1
    dist.all_reduce(arr[::2])
    same(arr[::2], np.full(10, world * (world + 1) // 2, np.int64), "strided slice")
    assert not arr[1::2].any(), "writing back a strided view touched the gaps"
    # broadcast, scatter, reduce_scatter, all_gather into views; views as inputs
    base = np.zeros((3, 4), np.float64)
    if rank == 0:
        base[:] = np.arange(12).reshape(3, 4)
    dist.broadcast(base.T, src=0)
    same(base, np.arange(12.0).reshape(3, 4), "broadcast into a view")
    base = np.zeros((4, 3), np.float64)
    dist.scatter(base.T, [np.full((3, 4), k, np.float64) for k in range(world)]
                 if rank == 0 else None, src=0)
    same(base, np.full((4, 3), rank, np.float64), "scatter into a view")
    bases = [np.zeros((3, 2), np.int32) for _ in range(world)]
    dist.all_gather([b.T for b in bases], np.full((3, 2), rank, np.int32).T)
    for r in range(world):
        same(bases[r], np.full((3, 2), r, np.int32), f"all_gather into views [{r}]")
    out = np.zeros((2, 3), np.int32)
    dist.reduce_scatter(out.T, [np.full((3, 2), j + rank, np.int32) for j in range(world)])
    same(out, np.full((2, 3), sum(rank + r for r in range(world)), np.int32),
         "reduce_scatter into a view")
    out = dtrain.zeros(world * 3, 2)
    src = dtrain.from_numpy(np.full((2, 3), float(rank), np.float32))
    dist.all_gather_into_tensor(out, src.t())
    same(out.numpy(), np.repeat(np.arange(world, dtype=np.float32), 3)[:, None].repeat(2, 1),
         "all_gather_into_tensor from a transposed input")

    # several async all_reduces in flight at once (small, ring-sized, odd), waited in reverse
    sizes = [1, 1000, N // 4, 7, N, 0]
    bufs = [np.full(n, rank + i, np.float32) for i, n in enumerate(sizes)]
    views = np.zeros((6, 4), np.float32)
    views[:] = rank
    works = [dist.all_reduce(b, async_op=True) for b in bufs]
    works.append(dist.all_reduce(views.T, op=dist.ReduceOp.AVG, async_op=True))
    bc = np.full(11, rank, np.int64)
    works.append(dist.broadcast(bc, src=world - 1, async_op=True))
    gathered = [np.zeros(3, np.int32) for _ in range(world)]
    works.append(dist.all_gather(gathered, np.full(3, rank, np.int32), async_op=True))
    works.append(dist.barrier(async_op=True))
    for w in reversed(works):
        assert w.wait() is True
        assert w.is_completed() and w.is_success() and w.exception() is None
    for i, (n, b) in enumerate(zip(sizes, bufs)):
        same(b, np.full(n, sum(r + i for r in range(world)), np.float32), f"async [{i}]")
    same(views, np.full((6, 4), (world - 1) / 2, np.float32), "async AVG into a view")
    same(bc, np.full(11, world - 1, np.int64), "async broadcast")
    for r in range(world):
        same(gathered[r], np.full(3, r, np.int32), "async all_gather")
    # async ops mixed with blocking ones
    a = np.ones(N, np.float32)
    w = dist.all_reduce(a, async_op=True)
    b = np.ones(3, np.float32)
    dist.all_reduce(b)
    assert w.wait() and not w.exception()
    same(a, np.full(N, world, np.float32), "async under a blocking one")
    same(b, np.full(3, world, np.float32), "blocking over an async one")
    # a Tensor's version counter moves when a collective writes it, as torch's does
    t = dtrain.zeros(3)
    v = t._version
    dist.all_reduce(t)
    assert t._version > v
    dist.destroy_process_group()
    return True


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", WORLD_SIZES)
def test_views_in_place_and_async_overlap(world):
    run_ranks(views_and_async, world, timeout=50)


def objects(rank, world):
    dist = init()
    offset = 1000 * rank

    def closure(x):
        return x + offset

    for src in range(world):
        objs = [closure, (lambda y: y * 2), {"r": rank, "t": (1, "a")}, None,
                np.arange(3) + rank, b"x" * (200_000 if src == 1 else 1)] if rank == src \
            else [None] * 6
        dist.broadcast_object_list(objs, src=src)
        assert objs[0](1) == 1 + 1000 * src and objs[1](4) == 8
        assert objs[2] == {"r": src, "t": (1, "a")} and objs[3] is None
        same(objs[4], np.arange(3) + src, "broadcast_object_list array")
        assert len(objs[5]) == (200_000 if src == 1 else 1)
    got = [None] * world
    dist.all_gather_object(got, closure)
    assert [f(1) for f in got] == [1 + 1000 * r for r in range(world)]
    got = [None] * world
    dist.all_gather_object(got, "x" * (rank * 1000))  # different sizes per rank
    assert got == ["x" * (r * 1000) for r in range(world)]
    for dst in range(world):
        got = [None] * world if rank == dst else None
        dist.gather_object((lambda: rank * 10), got, dst=dst)
        if rank == dst:
            assert [f() for f in got] == [r * 10 for r in range(world)]
    for src in range(world):
        out = [None]
        ins = [(lambda k=k: (src, k)) for k in range(world)] if rank == src else None
        dist.scatter_object_list(out, ins, src=src)
        assert out[0]() == (src, rank)
    dist.destroy_process_group()
    return True


@pytest.mark.timeout(60)
@pytest.mark.parametrize("world", WORLD_SIZES)
def test_object_collectives_carry_closures(world):
    run_ranks(objects, world, timeout=50)


# --- the same battery in torch.distributed (gloo) ----------------------------------------------

def reference_battery(rank, world, libname):
    """Small cases in dtrain or torch; returns plain results to compare."""
    if libname == "torch":
        import torch as lib
        import torch.distributed as dist
    else:
        import dtrain as lib
        import dtrain.distributed as dist
    dist.init_process_group("gloo")

    def t(a):
        return lib.from_numpy(np.array(a, copy=True))

    def res(x):
        a = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
        return str(a.dtype), a.shape, a.tolist()

    out = {"rank": dist.get_rank(), "size": dist.get_world_size(),
           "backend": dist.get_backend(), "initialized": dist.is_initialized()}
    for dtype in ["float32", "float64", "int32", "int64", "bool"]:
        for op in OPS[kind(dtype)]:
            x = t(value(rank, (2, 3), dtype, 1, op))
            dist.all_reduce(x, op=getattr(dist.ReduceOp, op))
            out[f"all_reduce {op} {dtype}"] = res(x)
        x = t(value(rank, (), dtype, 2))
        dist.all_reduce(x, op=dist.ReduceOp.MAX)
        out[f"all_reduce 0-d {dtype}"] = res(x)
    x = t(value(rank, (0,), "float32"))
    dist.all_reduce(x)
    out["all_reduce empty"] = res(x)
    x = t(value(rank, (4,), "int64", 3))
    dist.reduce(x, dst=world - 1, op=dist.ReduceOp.MIN)
    if rank == world - 1:
        out["reduce"] = res(x)
    x = t(value(rank, (4,), "float64", 4))
    dist.broadcast(x, src=world - 1)
    out["broadcast"] = res(x)
    lst = [t(np.zeros(3, np.float32)) for _ in range(world)]
    dist.all_gather(lst, t(value(rank, (3,), "float32", 5)))
    out["all_gather"] = [res(y) for y in lst]
    x = t(np.zeros((world * 2, 3), np.int32))
    dist.all_gather_into_tensor(x, t(value(rank, (2, 3), "int32", 6)))
    out["all_gather_into_tensor"] = res(x)
    lst = [t(np.zeros(2, np.int64)) for _ in range(world)] if rank == 0 else None
    dist.gather(t(value(rank, (2,), "int64", 7)), lst, dst=0)
    if rank == 0:
        out["gather"] = [res(y) for y in lst]
    x = t(np.zeros(3, np.float32))
    dist.scatter(x, [t(value(k, (3,), "float32", 8)) for k in range(world)]
                 if rank == 0 else None, src=0)
    out["scatter"] = res(x)
    x = t(np.zeros(3, np.float32))
    dist.reduce_scatter_tensor(x, t(value(rank, (3 * world,), "float32", 9)))
    out["reduce_scatter_tensor"] = res(x)
    x = t(np.zeros(2 * world, np.int64))
    dist.all_to_all_single(x, t(np.arange(2 * world) + 100 * rank))
    out["all_to_all_single"] = res(x)
    ins = [(j + rank) % 3 + 1 for j in range(world)]
    outs = [(rank + j) % 3 + 1 for j in range(world)]
    x = t(np.zeros(sum(outs), np.float32))
    dist.all_to_all_single(x, t(np.arange(sum(ins), dtype=np.float32) + 10 * rank), outs, ins)
    out["all_to_all_single uneven"] = res(x)
    objs = [{"a": rank}, [1, 2]] if rank == 0 else [None, None]
    dist.broadcast_object_list(objs, src=0)
    out["broadcast_object_list"] = objs
    got = [None] * world
    dist.all_gather_object(got, ("r", rank))
    out["all_gather_object"] = got
    got = [None] * world if rank == world - 1 else None
    dist.gather_object(rank * 3, got, dst=world - 1)
    out["gather_object"] = got
    got = [None]
    dist.scatter_object_list(got, [k * k for k in range(world)] if rank == 0 else None, src=0)
    out["scatter_object_list"] = got
    g = dist.new_group([world - 1, 0])
    out["group rank"], out["group size"] = dist.get_rank(g), dist.get_world_size(g)
    if rank in (0, world - 1):
        out["group ranks"] = dist.get_process_group_ranks(g)
        out["group_rank"] = [dist.get_group_rank(g, r) for r in (0, world - 1)]
        out["global_rank"] = [dist.get_global_rank(g, i) for i in range(len(out["group ranks"]))]
        x = t(np.full(2, rank + 1.0, np.float32))
        dist.all_reduce(x, group=g)
        out["group all_reduce"] = res(x)
    if world > 1:
        if rank == 0:
            out["recv from"] = sorted(dist.recv(t(np.zeros(1, np.float32))) for _ in
                                      range(world - 1))
        else:
            dist.send(t(np.full(1, rank, np.float32)), dst=0)
    dist.barrier()
    dist.destroy_process_group()
    return out


@pytest.mark.torch
@pytest.mark.timeout(90)
@pytest.mark.parametrize("world", [3])
def test_same_results_as_torch_gloo(world):
    pytest.importorskip("torch")
    ours = run_ranks(reference_battery, world, "dtrain", timeout=40)
    theirs = run_ranks(reference_battery, world, "torch", timeout=60)
    for rank in range(world):
        for key in theirs[rank]:
            assert ours[rank].get(key) == theirs[rank][key], f"rank {rank}: {key}"
        assert ours[rank].keys() == theirs[rank].keys()
