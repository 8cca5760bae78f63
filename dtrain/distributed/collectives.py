"""Collective algorithms, each a generator run by the engine (see collective_run.py).

Every algorithm works on flat, contiguous numpy arrays and ranks within the group; all_reduce
also takes a list of them, reduced as their concatenation (DDP's gradients, without copying
them into one buffer first). Reductions combine contributions in one fixed order (rank order,
or ring order for one owner per chunk followed by copies), so every rank ends with
bit-identical results.
"""
import numpy as np

from .shm import SLOT_BYTES

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
    """Through shared memory when every rank is on this host (small calls there take
    fastpath.py's mailboxes instead, without the engine); else a direct exchange for small
    buffers and ring reduce-scatter + all-gather for large ones. ``buf``: an array, or a list
    of arrays of one dtype."""
    if run.size == 1:
        return
    if run.shares_memory:
        run.algorithm, run.variant = "shared", 1
        yield from _shared_all_reduce(run, buf, op)
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


def _shared_all_reduce(run, buf, op):
    """Chunk by chunk: copy the chunk into this rank's lane, tell the others, and once all have
    done so, combine every rank's slot in rank order (each rank computes the same sums, so all
    end bit-identical). One message round per chunk; the next chunk is copied in while the
    peers still read this one.

    Why SLOTS = 3 suffices: chunk g goes into slot g % 3 after this rank has heard "chunk g-1
    is in" from every peer. A peer says that before combining chunk g-2 but after combining
    chunk g-3, the last user of slot g % 3. The chunk count runs on across the group's calls,
    so this holds from one call to the next too.
    """
    parts = [buf] if isinstance(buf, np.ndarray) else buf
    dtype = parts[0].dtype
    chunks = _chunked(parts, SLOT_BYTES // dtype.itemsize)
    first = yield run.lane(len(chunks))
    others = _others(run)

    def put(i):
        slot = run.slot(run.me, first + i, dtype, chunks[i][-1])
        for piece, at in chunks[i][:-1]:
            np.copyto(slot[at:at + piece.size], piece)
        for k in others:
            run.send(k, _EMPTY)

    put(0)
    for i, chunk in enumerate(chunks):
        for k in others:
            yield run.recv(k)
        if i + 1 < len(chunks):
            put(i + 1)
        slots = [run.slot(k, first + i, dtype, chunk[-1]) for k in range(run.size)]
        for piece, at in chunk[:-1]:
            combine(piece, [s[at:at + piece.size] for s in slots], op)
            average(piece, op, run.size)  # while the chunk is in cache


def _chunked(parts, per):
    """The concatenation of the arrays ``parts``, cut into chunks of ``per`` elements: for each
    chunk, its pieces as (view of a part, offset in the chunk), then its element count."""
    chunks, chunk, filled = [], [], 0
    for part in parts:
        start = 0
        while start < part.size:
            take = min(per - filled, part.size - start)
            chunk.append((part[start:start + take], filled))
            filled += take
            start += take
            if filled == per:
                chunks.append(chunk + [filled])
                chunk, filled = [], 0
    if chunk:
        chunks.append(chunk + [filled])
    return chunks


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
