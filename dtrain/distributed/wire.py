"""The wire format: every message is two ZeroMQ frames, [header, payload].

The header is a small fixed struct plus the dims of a shape; the payload is an array's raw
bytes, sent without copying where possible and never pickled. A collective's header carries the
sender's whole call (kind, op, dtype, shape, root) so the receiver can check that both ranks
made the same call.

A peer's header is not trusted: ``decode`` refuses, with a ValueError naming the problem, any
frame that is short, long, of another version or kind, with an unknown dtype, negative or too
many dims, a shape or size claiming more than MAX_NBYTES, or sizes that disagree with each other
or (given ``payload_nbytes``) with the payload that arrived.
"""
import struct

import numpy as np

from .._dtypes import ALL

MAGIC = b"DT"
VERSION = 1

# message kinds: PROBE asks a silent peer which call it made at a collective's sequence number;
# BYE is the last message of a rank that leaves the process group; PING says "still here"
P2P, COLLECTIVE, ABORT, PROBE, BYE, PING = 1, 2, 3, 4, 5, 6
KINDS = (P2P, COLLECTIVE, ABORT, PROBE, BYE, PING)
_KIND_NAMES = {P2P: "P2P", COLLECTIVE: "COLLECTIVE", ABORT: "ABORT", PROBE: "PROBE", BYE: "BYE",
               PING: "PING"}

# what a header may declare: no more dims than numpy allows, no tensor over 256 TiB
MAX_NDIM = 64
MAX_NBYTES = 2**48

# magic, version, kind, group, seq, tag, collective, op, dtype, ndim, root, nbytes
_HEAD = struct.Struct("<2sBBIQqBBBBiQ")
_DIM = struct.Struct("<q")

DTYPES = tuple(d.np for d in ALL)
DTYPE_CODE = {d: i for i, d in enumerate(DTYPES)}
NO_DTYPE = 255


class Header:
    """One message's header, decoded."""

    __slots__ = ("kind", "group", "seq", "tag", "collective", "op", "dtype", "shape", "root",
                 "nbytes")

    def __init__(self, kind, group, seq, tag, collective, op, dtype, shape, root, nbytes):
        self.kind, self.group, self.seq, self.tag = kind, group, seq, tag
        self.collective, self.op, self.dtype, self.shape = collective, op, dtype, shape
        self.root, self.nbytes = root, nbytes

    def __repr__(self):
        return (f"Header(kind={self.kind}, group={self.group}, seq={self.seq}, tag={self.tag}, "
                f"collective={self.collective}, op={self.op}, dtype={self.dtype}, "
                f"shape={self.shape}, root={self.root}, nbytes={self.nbytes})")


def encode(kind, group, seq, tag, collective, op, dtype, shape, root, nbytes):
    """Pack a header. ``dtype`` is a numpy dtype or None; ``shape`` a tuple of ints."""
    code = NO_DTYPE if dtype is None else DTYPE_CODE[dtype]
    head = _HEAD.pack(MAGIC, VERSION, kind, group, seq, tag, collective, op, code, len(shape),
                      root, nbytes)
    return head + b"".join(_DIM.pack(d) for d in shape)


def decode(frame, payload_nbytes=None):
    """Unpack a header, refusing anything that is not a well-formed dtrain message of this
    version, with a ValueError that names the problem.

    ``payload_nbytes`` is the length of the payload frame that arrived with this header; when
    given, the sizes the header declares are checked against it too. Nothing here allocates or
    computes more than the header's own few hundred bytes, whatever the header claims.
    """
    if len(frame) < _HEAD.size:
        raise ValueError(f"message header too short ({len(frame)} bytes, at least {_HEAD.size} "
                         "needed)")
    (magic, version, kind, group, seq, tag, collective, op, code, ndim, root,
     nbytes) = _HEAD.unpack_from(frame)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"not a dtrain v{VERSION} message (magic {magic!r}, version {version})")
    if kind not in KINDS:
        raise ValueError(f"message header has an unknown kind {kind}")
    if ndim > MAX_NDIM:
        raise ValueError(f"message header declares {ndim} dimensions, more than {MAX_NDIM}")
    if len(frame) != _HEAD.size + ndim * _DIM.size:
        need = _HEAD.size + ndim * _DIM.size
        raise ValueError(f"message header has the wrong length for its shape: {len(frame)} "
                         f"bytes for {ndim} dimensions, which need {need}")
    if code != NO_DTYPE and code >= len(DTYPES):
        raise ValueError(f"message header has an unknown dtype code {code}")
    dtype = None if code == NO_DTYPE else DTYPES[code]
    shape = struct.unpack_from(f"<{ndim}q", frame, _HEAD.size)
    if any(d < 0 for d in shape):
        raise ValueError(f"message header declares a negative dimension in shape {list(shape)}")
    if nbytes > MAX_NBYTES:
        raise ValueError(f"message header declares {nbytes} payload bytes, more than the limit "
                         f"of {MAX_NBYTES}")
    itemsize = 1 if dtype is None else dtype.itemsize
    size = _size_in_bytes(shape, itemsize)
    if size is None:
        raise ValueError(f"message header declares shape {list(shape)} of {dtype}, more than "
                         f"the limit of {MAX_NBYTES} bytes")
    if kind in (P2P, COLLECTIVE):
        if dtype is None:
            raise ValueError(f"{_KIND_NAMES[kind]} message header has no dtype")
        if kind == P2P and nbytes != size:
            # a point-to-point message carries a whole tensor: its shape gives its size
            raise ValueError(f"message header declares {nbytes} payload bytes but shape "
                             f"{list(shape)} of {dtype} has {size}")
        if nbytes % itemsize:
            raise ValueError(f"message header declares {nbytes} payload bytes, not a whole "
                             f"number of {dtype} elements ({itemsize} bytes each)")
    if payload_nbytes is not None:
        if nbytes != payload_nbytes:
            raise ValueError(f"message header declares {nbytes} payload bytes but "
                             f"{payload_nbytes} arrived")
    return Header(kind, group, seq, tag, collective, op, dtype, shape, root, nbytes)


def _size_in_bytes(shape, itemsize):
    """prod(shape) * itemsize, or None when that (or any one dim) is over MAX_NBYTES. The
    product is cut short as soon as it passes the limit, so no huge number is ever made."""
    limit = MAX_NBYTES // itemsize
    if any(d > limit for d in shape):
        return None
    if 0 in shape:
        return 0
    count = 1
    for d in shape:
        count *= d
        if count > limit:
            return None
    return count * itemsize


def as_array(payload, dtype, shape):
    """A read-only numpy view of a received payload (no copy)."""
    return np.frombuffer(payload, dtype=dtype).reshape(shape)
