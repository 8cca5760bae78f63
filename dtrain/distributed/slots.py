"""A large all_reduce between the processes of one host, through shared-memory slots.

It runs where fastpath.py runs a call (the caller's thread, or the group's worker), with its
_Exchange: the call's header goes through the mailboxes, and the waits on the peers' counters
are the exchange's (spinning, yielding or sleeping on a futex; deadlines, peers gone).
"""
import numpy as np

from . import collectives
from .shm import chunk_bytes, publish


def large_all_reduce(ex, buf, op):
    """Chunk by chunk through this rank's slots: copy the chunk into a slot and raise the
    lane's "put" counter. Two ranks then each combine both slots; from three on, each rank
    combines only its portion (1/n) of every slot, writes the result over that portion of its
    own slot, raises its "reduced" counter, and everyone copies the portions from their
    owners: each rank reads about twice the buffer instead of n times. Either way a portion
    is summed in rank order by one computation, so all ranks end bit-identical. The next chunk
    is copied in while the peers still read this one. The call's header goes through the
    mailboxes after the first chunk, so every call is checked against every peer's.

    Why SLOTS = 3 suffices: chunk g goes into slot g % 3 once every peer has put chunk g-1.
    A peer puts chunk g-1 after it has finished reading chunk g-3 (the last user of slot
    g % 3), and before it reads chunk g-2. The chunk count runs on across the group's calls,
    so this holds from one call to the next too. (A rank's own portion of its slot is not
    copied in: it reduces that portion reading its own buffer, writes the result there, and
    says "reduced"; the peers then only copy it.)
    """
    run, shared = ex.run, ex.engine.shared
    group, n, me = run.group.id, run.size, run.me
    ex.check_usable()  # before writing a slot a peer may still read in a call given up
    parts = [buf] if isinstance(buf, np.ndarray) else buf
    dtype = parts[0].dtype
    step = chunk_bytes(n)
    chunks = _chunked(parts, step // dtype.itemsize)
    first = shared.chunk_count[group]
    shared.chunk_count[group] = first + len(chunks)
    lanes = [shared.lanes[r] for r in run.ranks]
    put, reduced = lanes[me].progress(group)
    peers = [(run.ranks[k], *lanes[k].progress(group)) for k in range(n) if k != me]
    peers_put = {r: put_k for r, put_k, _ in peers}
    peers_reduced = {r: reduced_k for r, _, reduced_k in peers}

    def portion(count, k):
        """Elements lo..hi of a chunk of ``count``: rank k's to reduce (none with two ranks)."""
        return (count * k // n, count * (k + 1) // n) if n > 2 else (0, 0)

    def put_in(i):
        # all but this rank's portion, which only this rank reads (from the buffer itself)
        count, pieces = chunks[i][-1], chunks[i][:-1]
        slot = lanes[me].slot(group, first + i, dtype, count)
        lo, hi = portion(count, me)
        for start, end in ((0, lo), (hi, count)):
            for view, at in _overlaps(pieces, start, end):
                np.copyto(slot[start + at:start + at + view.size], view)
        publish(put, first + i + 1)

    put_in(0)
    ex.exchange(None, tag=step)  # every peer made this call, and has put chunk 0 in
    for i, chunk in enumerate(chunks):
        count, pieces = chunk[-1], chunk[:-1]
        if i + 1 < len(chunks):
            put_in(i + 1)
        slots = [lane.slot(group, first + i, dtype, count) for lane in lanes]
        if n == 2:
            for piece, at in pieces:
                collectives.combine(piece, [s[at:at + piece.size] for s in slots], op)
                collectives.average(piece, op, n)  # while the chunk is in cache
        else:
            lo, hi = portion(count, me)
            views = list(_overlaps(pieces, lo, hi))
            if len(views) == 1:
                own = views[0][0]
            else:  # the portion spans arrays of a list
                own = np.empty(hi - lo, dtype)
                for view, at in views:
                    np.copyto(own[at:at + view.size], view)
            result = slots[me][lo:hi]
            collectives.combine(result, [own if k == me else s[lo:hi]
                                         for k, s in enumerate(slots)], op)
            collectives.average(result, op, n)
            publish(reduced, first + i + 1)
        # a peer puts chunk g only once this rank has put chunk g-1, and reduces a chunk only
        # once this rank has put it: more means it gave this call up (it failed there) and went
        # on to its next, whose counters must not pass for this call's
        if i + 1 < len(chunks):
            ex.wait(peers_put, first + i + 2, limit=int(put[0]) + 1)
        if n > 2:
            ex.wait(peers_reduced, first + i + 1, limit=int(put[0]))
            for k in range(n):
                lo, hi = portion(count, k)
                for view, at in _overlaps(pieces, lo, hi):
                    np.copyto(view, slots[k][lo + at:lo + at + view.size])


def _overlaps(pieces, lo, hi):
    """Where elements lo..hi of a chunk lie in its ``pieces``: (a view of a piece, its offset
    from lo), for each piece they overlap."""
    for piece, at in pieces:
        a, b = max(lo, at), min(hi, at + piece.size)
        if a < b:
            yield piece[a - at:b - at], a - lo


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
