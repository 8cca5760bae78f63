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
    """Chunk by chunk through this rank's lane: copy the chunk into a slot and tell the others.
    Two ranks then each combine both slots; from three on, each rank combines only its
    portion (1/n) of every slot, writes the result over that portion of its own slot, says
    so, and everyone copies the portions from their owners: each rank then reads about twice
    the buffer instead of n times. Either way a portion is summed in rank order by one
    computation, so all ranks end bit-identical. The next chunk is copied in while the peers
    still read this one.

    Why SLOTS = 3 suffices: chunk g goes into slot g % 3 after this rank has heard "chunk g-1
    is in" from every peer. A peer says that after it has finished reading chunk g-3 (the last
    user of slot g % 3), and before it reads chunk g-2. The chunk count runs on across the
    group's calls, so this holds from one call to the next too. (A rank's own portion of its
    slot is read only by itself until it says "reduced", then only copied.)
    """
    parts = [buf] if isinstance(buf, np.ndarray) else buf
    dtype = parts[0].dtype
    chunks = _chunked(parts, SLOT_BYTES // dtype.itemsize)
    first = yield run.lane(len(chunks))
    others = _others(run)
    n, me = run.size, run.me

    def put(i):
        slot = run.slot(me, first + i, dtype, chunks[i][-1])
        for piece, at in chunks[i][:-1]:
            np.copyto(slot[at:at + piece.size], piece)
        for k in others:
            run.send(k, _EMPTY)

    put(0)
    for k in others:  # "chunk 0 is in"
        yield run.recv(k)
    for i, chunk in enumerate(chunks):
        count, pieces = chunk[-1], chunk[:-1]
        if i + 1 < len(chunks):
            put(i + 1)
        slots = [run.slot(k, first + i, dtype, count) for k in range(n)]
        if n == 2:
            for piece, at in pieces:
                combine(piece, [s[at:at + piece.size] for s in slots], op)
                average(piece, op, n)  # while the chunk is in cache
        else:
            lo, hi = count * me // n, count * (me + 1) // n
            mine = np.empty(hi - lo, dtype)
            combine(mine, [s[lo:hi] for s in slots], op)
            average(mine, op, n)
            slots[me][lo:hi] = mine
            for k in others:  # "my portion of chunk i is reduced"
                run.send(k, _EMPTY)
        if i + 1 < len(chunks):
            for k in others:  # "chunk i+1 is in"
                yield run.recv(k)
        if n > 2:
            for k in others:  # "portion k of chunk i is reduced"
                yield run.recv(k)
            for k in range(n):
                lo, hi = count * k // n, count * (k + 1) // n
                _copy_range(pieces, lo, hi, slots[k][lo:hi])


def _copy_range(pieces, lo, hi, source):
    """Copy ``source``, elements lo..hi of a chunk, into the chunk's ``pieces``."""
    for piece, at in pieces:
        a, b = max(lo, at), min(hi, at + piece.size)
        if a < b:
            np.copyto(piece[a - at:b - at], source[a - lo:b - lo])


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
