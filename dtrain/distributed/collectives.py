"""Collective algorithms, each a generator run by the engine (see collective_run.py).

Every algorithm works on flat, contiguous numpy arrays and ranks within the group; all_reduce
also takes a list of them, reduced as their concatenation (DDP's gradients). Reductions
combine contributions in one fixed order (rank order, or ring order for one owner per chunk
followed by copies), so every rank ends with bit-identical results.
"""
import numpy as np

# reduce ops, by ReduceOp's codes (torch's): SUM, AVG (a sum, then divided: average()),
# PRODUCT, MIN, MAX, BAND, BOR, BXOR
UFUNCS = (np.add, np.add, np.multiply, np.minimum, np.maximum, np.bitwise_and, np.bitwise_or,
          np.bitwise_xor)
AVG = 1

SMALL = 64 * 1024  # bytes: below this, one direct exchange beats the ring's 2(n-1) steps
_EMPTY = np.zeros(0, dtype=np.uint8)


def _others(run):
    return [k for k in range(run.size) if k != run.me]


def all_reduce(run, buf, op):
    """A direct exchange for small buffers, ring reduce-scatter + all-gather for large ones.
    (Among the processes of one host, fastpath.py runs it in shared memory instead.) ``buf``:
    an array, or a list of arrays of one dtype."""
    if run.size == 1:
        return
    whole = joined(buf)
    if whole.nbytes <= SMALL or whole.size < run.size:
        run.algorithm = "direct"
        yield from _direct_all_reduce(run, whole, op)
    else:
        run.algorithm = "ring"
        yield from _ring_all_reduce(run, whole, op)
    scatter_back(whole, buf)


def joined(buf):
    """``buf`` as one flat array: itself, or a list's concatenation (a copy)."""
    return buf if isinstance(buf, np.ndarray) else np.concatenate(buf)


def scatter_back(whole, buf):
    """Copy ``joined(buf)``'s results back into the list ``buf`` (nothing for an array)."""
    if whole is not buf:
        start = 0
        for part in buf:
            np.copyto(part, whole[start:start + part.size])
            start += part.size


def average(buf, op, n):
    """AVG's last step: divide the sum by the group's size (in place)."""
    if op == AVG:
        np.divide(buf, n, out=buf, casting="unsafe")


def combine(out, parts, op):
    """out = parts[0] op parts[1] op ... in rank order: the same order on every rank."""
    ufunc = UFUNCS[op]
    np.copyto(out, parts[0])
    for k in range(1, len(parts)):
        ufunc(out, parts[k], out=out)


def _direct_all_reduce(run, buf, op):
    mine = buf.copy()
    for k in _others(run):
        run.send(k, mine)
    parts = {run.me: mine}
    for k in _others(run):
        parts[k] = run.expect((yield run.recv(k)), buf.size, k)
    combine(buf, [parts[k] for k in range(run.size)], op)
    average(buf, op, run.size)


def _ring_all_reduce(run, buf, op):
    n, r = run.size, run.me
    right, left = (r + 1) % n, (r - 1) % n
    chunks = np.array_split(buf, n)
    ufunc = UFUNCS[op]
    for step in range(n - 1):  # reduce-scatter: chunk (r+1) % n ends fully reduced here
        send, recv = (r - step) % n, (r - step - 1) % n
        # NOTE: a copy: the all-gather below overwrites this chunk while it may still be on its
        # way out, and waiting for it there would stall the engine
        run.send(right, chunks[send].copy())
        data = run.expect((yield run.recv(left)), chunks[recv].size, left)
        ufunc(chunks[recv], data, out=chunks[recv])
    # this rank's chunk is complete: average it before the all-gather sends it (without a copy)
    average(chunks[(r + 1) % n], op, n)
    for step in range(n - 1):  # all-gather the reduced chunks around the ring
        send, recv = (r + 1 - step) % n, (r - step) % n
        run.send(right, chunks[send])
        data = run.expect((yield run.recv(left)), chunks[recv].size, left)
        np.copyto(chunks[recv], data)


def broadcast(run, buf, root):
    if run.me == root:
        for k in _others(run):
            run.send(k, buf)
    else:
        np.copyto(buf, run.expect((yield run.recv(root)), buf.size, root))


def reduce(run, buf, op, root):
    """Everyone sends to the root, which combines contributions in rank order."""
    if run.me != root:
        run.send(root, buf)
        return
    parts = {root: buf.copy()}
    for k in _others(run):
        parts[k] = run.expect((yield run.recv(k)), buf.size, k)
    combine(buf, [parts[k] for k in range(run.size)], op)
    average(buf, op, run.size)


def all_gather(run, outs, buf):
    for k in _others(run):
        run.send(k, buf)
    np.copyto(outs[run.me], buf)
    for k in _others(run):
        np.copyto(outs[k], run.expect((yield run.recv(k)), buf.size, k))


def gather(run, outs, buf, root):
    if run.me != root:
        run.send(root, buf)
        return
    np.copyto(outs[root], buf)
    for k in _others(run):
        np.copyto(outs[k], run.expect((yield run.recv(k)), buf.size, k))


def scatter(run, buf, ins, root):
    if run.me == root:
        for k in _others(run):
            run.send(k, ins[k])
        np.copyto(buf, ins[root])
    else:
        np.copyto(buf, run.expect((yield run.recv(root)), buf.size, root))


def reduce_scatter(run, out, ins, op):
    """Rank k ends with the reduction of everyone's ``ins[k]``, combined in rank order."""
    for k in _others(run):
        run.send(k, ins[k])
    parts = {run.me: ins[run.me]}
    for k in _others(run):
        parts[k] = run.expect((yield run.recv(k)), out.size, k)
    combine(out, [parts[k] for k in range(run.size)], op)
    average(out, op, run.size)


def all_to_all(run, outs, ins):
    for k in _others(run):
        run.send(k, ins[k])
    np.copyto(outs[run.me], ins[run.me])
    for k in _others(run):
        np.copyto(outs[k], run.expect((yield run.recv(k)), outs[k].size, k))


def barrier(run):
    for k in _others(run):
        run.send(k, _EMPTY)
    for k in _others(run):
        yield run.recv(k)
