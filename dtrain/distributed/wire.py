"""The wire format: every message is two ZeroMQ frames, [header, payload].

The header is a small fixed struct plus the dims of a shape; the payload is an array's raw
bytes, sent without copying where possible and never pickled. A collective's header carries the
sender's whole call (kind, op, dtype, shape, root) so the receiver can check that both ranks
made the same call.
"""
import struct

import numpy as np

from .._dtypes import ALL

MAGIC = b"DT"
VERSION = 1

# message kinds: PROBE asks a silent peer which call it made at a collective's sequence number;
# BYE is the last message of a rank that leaves the process group
P2P, COLLECTIVE, ABORT, PROBE, BYE = 1, 2, 3, 4, 5

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


def decode(frame):
    """Unpack a header, refusing anything that is not a dtrain message of this version."""
    if len(frame) < _HEAD.size:
        raise ValueError(f"message header too short ({len(frame)} bytes)")
    (magic, version, kind, group, seq, tag, collective, op, code, ndim, root,
     nbytes) = _HEAD.unpack_from(frame)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"not a dtrain v{VERSION} message (magic {magic!r}, version {version})")
    if len(frame) != _HEAD.size + ndim * _DIM.size:
        raise ValueError("message header has the wrong length for its shape")
    shape = tuple(_DIM.unpack_from(frame, _HEAD.size + i * _DIM.size)[0] for i in range(ndim))
    if code != NO_DTYPE and code >= len(DTYPES):
        raise ValueError(f"message header has an unknown dtype code {code}")
    dtype = None if code == NO_DTYPE else DTYPES[code]
    return Header(kind, group, seq, tag, collective, op, dtype, shape, root, nbytes)


def as_array(payload, dtype, shape):
    """A read-only numpy view of a received payload (no copy)."""
    return np.frombuffer(payload, dtype=dtype).reshape(shape)
