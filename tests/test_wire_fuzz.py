"""Hostile frames (issue 8, item 5): hypothesis fuzzes the message header decoder with random,
truncated, oversized and lying frames. Each must give a ValueError, never another exception, a
crash or a big allocation, because declared sizes are checked against what arrived.

Every property runs derandomized (a fixed sequence of examples, the same on every machine) with
no example database, so CI is reproducible; hypothesis's other files (its cache of constants,
patches of failing examples) go to a temporary directory removed at exit."""
import atexit
import math
import shutil
import struct
import tempfile
import tracemalloc
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from dtrain.distributed import wire

# hypothesis writes a cache of constants (at collection, before any fixture runs) and patches
# of failing examples under .hypothesis/ in the working directory: send them to a temporary
# directory of ours instead, removed when the run ends
_HOME = tempfile.mkdtemp(prefix="dtrain-tests-hypothesis-")
set_hypothesis_home_dir(_HOME)
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

FUZZ = settings(derandomize=True, database=None, max_examples=300,
                deadline=timedelta(milliseconds=500),
                suppress_health_check=[HealthCheck.too_slow])

U8 = st.integers(0, 2**8 - 1)
U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
I32 = st.integers(-2**31, 2**31 - 1)
I64 = st.integers(-2**63, 2**63 - 1)
DTYPE = st.sampled_from(wire.DTYPES)
SMALL_SHAPE = st.lists(st.integers(0, 6), max_size=6).map(tuple)
HEAD = struct.Struct("<2sBBIQqBBBBiQ")  # the header's fixed part, as wire.py packs it


@st.composite
def messages(draw):
    """(frame, header fields, payload length) of a message the protocol can send."""
    kind = draw(st.sampled_from(wire.KINDS))
    dtype = draw(DTYPE) if kind in (wire.P2P, wire.COLLECTIVE, wire.PROBE) else None
    shape = draw(SMALL_SHAPE) if kind in (wire.P2P, wire.COLLECTIVE, wire.PROBE) else ()
    if kind == wire.P2P:
        nbytes = math.prod(shape) * dtype.itemsize
    elif kind == wire.COLLECTIVE:  # one piece of the call: any whole number of elements
        nbytes = draw(st.integers(0, 2**20)) * dtype.itemsize
    else:
        nbytes = 0
    if kind == wire.ABORT:  # its text
        nbytes = draw(st.integers(0, 200))
    payload = nbytes
    fields = dict(kind=kind, group=draw(U32), seq=draw(U64), tag=draw(I64),
                  collective=draw(U8), op=draw(U8), dtype=dtype, shape=shape, root=draw(I32),
                  nbytes=nbytes)
    return wire.encode(**fields), fields, payload


def _decode_or_value_error(frame, payload=None):
    try:
        return wire.decode(frame, payload)
    except ValueError as e:
        assert str(e)  # a message that names the problem
        return None


# --- (1) random bytes: a ValueError or a header, and an accepted frame is canonical -----------

@FUZZ
@given(st.one_of(st.binary(max_size=600),
                 # past the magic and version check, so the fields behind it get fuzzed too
                 st.binary(max_size=600).map(lambda b: wire.MAGIC + bytes([wire.VERSION]) + b)),
       st.one_of(st.none(), st.integers(0, 2**64)))
def test_random_bytes_give_a_value_error_or_a_header(frame, payload):
    h = _decode_or_value_error(frame, payload)
    if h is not None:
        assert isinstance(h, wire.Header)
        assert wire.encode(h.kind, h.group, h.seq, h.tag, h.collective, h.op, h.dtype, h.shape,
                           h.root, h.nbytes) == frame


@FUZZ
@given(st.sampled_from(range(256)), U8, st.integers(0, 70), st.lists(I64, max_size=70),
       U64, st.one_of(st.none(), st.integers(0, 2**64)))
def test_random_fields_give_a_value_error_or_a_header(kind, code, ndim, dims, nbytes, payload):
    """Every fixed field random (kind, dtype code, ndim, nbytes), dims anything an int64 holds,
    ndim agreeing with the dims or not."""
    frame = HEAD.pack(wire.MAGIC, wire.VERSION, kind, 0, 0, 0, 0, 0, code, ndim, -1, nbytes)
    frame += b"".join(struct.pack("<q", d) for d in dims)
    h = _decode_or_value_error(frame, payload)
    if h is not None:
        assert h.kind in wire.KINDS and len(h.shape) == ndim <= wire.MAX_NDIM
        assert all(0 <= d for d in h.shape) and h.nbytes <= wire.MAX_NBYTES
        assert payload is None or h.nbytes == payload


# --- (2) round trip -------------------------------------------------------------------------

@FUZZ
@given(messages())
def test_every_valid_header_round_trips(message):
    frame, fields, payload = message
    for h in (wire.decode(frame), wire.decode(frame, payload)):
        assert {name: getattr(h, name) for name in fields} == fields


@pytest.mark.parametrize("dtype", wire.DTYPES, ids=str)
def test_round_trip_of_every_dtype_at_the_largest_dims(dtype):
    shape = (1,) * wire.MAX_NDIM
    frame = wire.encode(wire.P2P, 2**32 - 1, 2**64 - 1, -2**63, 255, 255, dtype, shape, 2**31 - 1,
                        dtype.itemsize)
    h = wire.decode(frame, dtype.itemsize)
    assert (h.group, h.seq, h.tag, h.root, h.dtype, h.shape) == \
        (2**32 - 1, 2**64 - 1, -2**63, 2**31 - 1, dtype, shape)


# --- (3) truncated and oversized frames -------------------------------------------------------

@FUZZ
@given(messages(), st.data())
def test_every_truncation_and_extension_of_a_valid_frame_is_refused(message, data):
    frame, _, payload = message
    for end in range(len(frame)):
        with pytest.raises(ValueError):
            wire.decode(frame[:end], payload)
        with pytest.raises(ValueError):
            wire.decode(frame[:end])
    extra = data.draw(st.binary(min_size=1, max_size=64))
    with pytest.raises(ValueError, match="wrong length"):
        wire.decode(frame + extra)


# --- (4) lying frames --------------------------------------------------------------------------

@FUZZ
@given(messages(), st.integers(-2**20, 2**20))
def test_a_payload_of_another_size_is_refused(message, delta):
    frame, fields, payload = message
    arrived = payload + delta
    assume(delta and arrived >= 0)
    with pytest.raises(ValueError, match=f"declares {fields['nbytes']} payload bytes but "
                                         f"{arrived} arrived"):
        wire.decode(frame, arrived)


@FUZZ
@given(messages(), U64.filter(bool))
def test_a_header_whose_nbytes_disagrees_with_its_payload_is_refused(message, delta):
    frame, fields, payload = message
    nbytes = (fields["nbytes"] + delta) % 2**64
    lying = wire.encode(**{**fields, "nbytes": nbytes})
    with pytest.raises(ValueError, match="payload bytes"):
        wire.decode(lying, payload)


@FUZZ
@given(messages().filter(lambda m: m[1]["kind"] == wire.P2P), SMALL_SHAPE)
def test_a_p2p_header_whose_shape_disagrees_with_its_size_is_refused(message, shape):
    frame, fields, payload = message
    assume(math.prod(shape) != math.prod(fields["shape"]))
    lying = wire.encode(**{**fields, "shape": shape})
    with pytest.raises(ValueError, match="payload bytes but shape"):
        wire.decode(lying)
    with pytest.raises(ValueError):
        wire.decode(lying, payload)


@st.composite
def absurd_shapes(draw):
    """Up to 64 dims of up to 2**63 - 1 each, none 0, one over 2**48: up to 2**4000 bytes."""
    dims = draw(st.lists(st.integers(1, 2**63 - 1), max_size=wire.MAX_NDIM - 1))
    at = draw(st.integers(0, len(dims)))
    return tuple(dims[:at] + [draw(st.integers(wire.MAX_NBYTES + 1, 2**63 - 1))] + dims[at:])


def _refused_without_allocating(frame, arrived, message):
    """decode(frame, arrived) raises a ValueError matching ``message``, within a small peak of
    memory (a frame of 64 dims is 560 bytes; decoding it must not make anything much bigger)."""
    def refuse():
        with pytest.raises(ValueError, match=message):
            wire.decode(frame, arrived)
    tracemalloc.start()
    try:
        refuse()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"decoding a lying header allocated {peak} bytes"


@FUZZ
@given(st.sampled_from(wire.KINDS), st.one_of(st.none(), DTYPE), absurd_shapes(), U64,
       st.one_of(st.none(), st.integers(0, 2**16)))
def test_a_shape_claiming_more_than_the_limit_is_refused_without_allocating(
        kind, dtype, shape, nbytes, arrived):
    """Whatever the kind, dtype, nbytes and payload: a shape over MAX_NBYTES is refused."""
    frame = wire.encode(kind, 0, 1, 0, 1, 0, dtype, shape, -1, nbytes)
    _refused_without_allocating(frame, arrived, "more than the limit")


@FUZZ
@given(st.sampled_from([wire.P2P, wire.COLLECTIVE]), DTYPE,
       st.lists(st.integers(2**10, 2**24), min_size=2, max_size=4), st.integers(0, 2**16))
def test_terabytes_claimed_over_a_small_payload_are_refused_without_allocating(
        kind, dtype, dims, arrived):
    """A well-formed header claiming up to 2**48 bytes (a shape and nbytes that agree) with a
    payload of at most 64 KiB: refused by comparing sizes, never by trying to hold them."""
    shape = tuple(dims)
    nbytes = math.prod(shape) * dtype.itemsize
    assume(2**30 <= nbytes <= wire.MAX_NBYTES)
    frame = wire.encode(kind, 0, 1, 0, 1, 0, dtype, shape, -1, nbytes)
    assert wire.decode(frame).nbytes == nbytes  # well formed in itself
    _refused_without_allocating(frame, arrived,
                                f"declares {nbytes} payload bytes but {arrived} arrived")


def test_terabytes_claimed_by_a_small_frame_are_refused_by_name():
    """The headline case: a 16-byte payload whose header claims a 1 TiB tensor."""
    f32 = np.dtype(np.float32)
    frame = wire.encode(wire.P2P, 0, 0, 0, 0, 0, f32, (2**18, 2**20), -1, 2**40)
    assert wire.decode(frame).nbytes == 2**40  # well formed in itself...
    message = "message header declares 1099511627776 payload bytes but 16 arrived"
    with pytest.raises(ValueError, match=message):  # ...but not what arrived
        wire.decode(frame, 16)
    absurd = wire.encode(wire.P2P, 0, 0, 0, 0, 0, f32, (2**40, 2**40), -1, 16)
    with pytest.raises(ValueError, match=r"shape \[1099511627776, 1099511627776\] of float32, "
                                         "more than the limit"):
        wire.decode(absurd, 16)
