"""
Short heads: the compact form of a chunk whose array lies in a stream's
shared-memory ring (``?shm=2``), decoded against chunks of every other
form in the same body, split anywhere, and refused clearly when malformed.
"""

import copy
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyrf_blocks.chunk import (SHORT_HEAD, Chunk, ChunkStreamDecoder, MetaPacker, RingHead,
                               chunk_packer, decode_chunks, encode_chunk)
from pyrf_blocks.errors import ChunkDecodeError
from pyrf_blocks.net import shm

pytestmark = pytest.mark.skipif(not shm.available(), reason="no memfd_create here")


@pytest.fixture(scope="module")
def rings():
    ring = shm.Ring(4 << 20)
    reader = shm.RingReader(ring.describe())
    yield ring, reader
    reader.close()
    ring.close()


class Writer:
    """
    What a stream does for a reader polling with ``shm=2``: each array
    into the ring, and a short head carrying the meta only when it
    differs from the chunk's before it; ``whole=True`` sends a chunk in
    the body instead, ``as_map=True`` as its map with ``x``.
    """

    def __init__(self, ring):
        self.ring = ring
        self.metas = MetaPacker()
        self.packer = chunk_packer()
        self.last = None

    def piece(self, chunk, whole=False, as_map=False):
        if whole or chunk.times is not None:
            self.last = None
            return encode_chunk(chunk, self.packer)
        head = RingHead.place(chunk, lambda array: self.ring.put(array, chunk.seq))
        assert head is not None
        if as_map:
            self.last = None
            return head.map(self.packer)
        key, packed = self.metas.key(chunk.meta)
        piece = head.short(None if key == self.last else packed)
        self.last = key
        return piece


def same(decoded, chunks, metas=None):
    """``decoded`` are ``chunks``, with ``metas`` (their metas when sent) if given."""
    assert len(decoded) == len(chunks)
    metas = metas or [chunk.meta for chunk in chunks]
    for got, want, meta in zip(decoded, chunks, metas):
        assert (got.kind, got.start, got.end, got.rate, got.seq, got.meta) == \
               (want.kind, want.start, want.end, want.rate, want.seq, meta)
        assert got.data.dtype == want.data.dtype and got.data.shape == want.data.shape
        np.testing.assert_array_equal(got.data, want.data)


def sampled(seq, meta, kind="iq", dtype=np.complex64, shape=(64,)):
    data = (np.arange(np.prod(shape)) + seq).astype(dtype).reshape(shape)
    return Chunk(kind, data, seq * 1000, seq * 1000 + 1000, 64e3, seq, meta)


def test_a_short_head_is_a_few_dozen_bytes_and_its_meta_travels_once(rings):
    """Eight chunks of one meta: the first head carries it, the others do not, and all decode equal."""
    ring, reader = rings
    meta = {"center_frequency": 2.4e9, "units": "dBm", "fft_size": 1024}
    chunks = [sampled(seq, meta, "spectrum", np.float32, (4, 16)) for seq in range(8)]
    writer = Writer(ring)
    pieces = [writer.piece(chunk) for chunk in chunks]
    assert all(piece[0] == SHORT_HEAD for piece in pieces)
    assert [piece[1] for piece in pieces] == [1] + [0] * 7  # the meta flag
    assert len(pieces[1]) < 100 < len(pieces[0])
    decoder = ChunkStreamDecoder(ring=reader)
    decoded = decoder.feed(b"".join(pieces))
    decoder.close()
    same(decoded, chunks)
    # One meta object for the answer, as in one process.
    assert all(chunk.meta is decoded[0].meta for chunk in decoded)


@given(st.lists(st.tuples(st.sampled_from(["short", "short", "short", "whole", "map",
                                           "records"]),
                          st.sampled_from(["same", "same", "changed", "mutated"]),
                          st.sampled_from([(np.complex64, (48,)), (np.float32, (3, 8)),
                                           (np.int16, (2, 2, 5)), (np.float64, (1,))])),
                min_size=1, max_size=12),
       st.lists(st.integers(min_value=1, max_value=120), max_size=10))
@settings(max_examples=60, deadline=None)
def test_short_heads_decode_among_every_other_form_however_the_body_is_split(plan, cuts):
    """Short heads, whole chunks, maps with x and records in one body, fed in pieces cut anywhere: the chunks sent, each once."""
    # A ring of its own: the seqs start again at 0 in each example.
    ring = shm.Ring(1 << 20)
    reader = shm.RingReader(ring.describe())
    writer = Writer(ring)
    meta = {"center_frequency": 1e9, "tones": [1.0, 2.0]}
    chunks, pieces, sent = [], [], []
    for seq, (form, change, (dtype, shape)) in enumerate(plan):
        if change == "changed":
            meta = {"center_frequency": 1e9 + seq, "tones": [1.0, 2.0]}
        elif change == "mutated":
            meta["tones"].append(float(seq))  # the same dict, changed in place
        if form == "records":
            chunk = Chunk.records(np.array([seq * 1000, seq * 1000 + 5], np.int64),
                                  np.array([1.5, 2.5]), seq=seq, meta=meta)
        else:
            chunk = sampled(seq, meta, "iq", dtype, shape)
        chunks.append(chunk)
        pieces.append(writer.piece(chunk, whole=form == "whole", as_map=form == "map"))
        sent.append(copy.deepcopy(meta))  # (the block may change it later, in place)
    body = b"".join(pieces)
    bounds = sorted({0, len(body), *(min(cut * 7, len(body)) for cut in cuts)})
    decoder = ChunkStreamDecoder(ring=reader)
    decoded = []
    for first, last in zip(bounds, bounds[1:]):
        decoded += decoder.feed(body[first:last])
    decoder.close()
    same(decoded, chunks, sent)
    del decoded, decoder
    reader.close()
    ring.close()


def test_a_meta_changed_in_place_is_packed_again():
    """MetaPacker keys equal metas alike, and a dict changed after it was packed anew."""
    metas = MetaPacker()
    meta = {"a": 1, "b": [1, 2]}
    first = metas.key(meta)
    assert metas.key({"a": 1, "b": [1, 2]}) == first
    meta["b"].append(3)
    second = metas.key(meta)
    assert second[0] != first[0] and second[1] != first[1]
    assert metas.key(meta) == second


def head(ring, chunk=None, meta=b"\x80"):
    chunk = chunk or sampled(0, {})
    return RingHead.place(chunk, lambda array: ring.put(array, chunk.seq)).short(meta)


def patched(piece, at, fmt, value):
    piece = bytearray(piece)
    struct.pack_into(fmt, piece, at, value)
    return bytes(piece)


@pytest.mark.parametrize("change, message", [
    (lambda p: patched(p, 1, "<B", 3), "flags 3"),
    (lambda p: patched(p, 2, "<B", 0), "0 axes"),
    (lambda p: patched(p, 2, "<B", 9), "9 axes"),
    (lambda p: patched(p, 3, "<B", 0), "0-byte dtype"),
    (lambda p: p[:52] + b"<O8" + p[55:], "dtype"),
    (lambda p: patched(p, 4, "<q", 5000), "start <= end"),
    (lambda p: patched(p, 20, "<q", -1), "seq non-negative"),
    (lambda p: patched(p, 28, "<d", 0.0), "rate"),
    (lambda p: patched(p, 36, "<q", 1 << 40), "outside the ring"),
    (lambda p: patched(p, 44, "<q", 8), "needs 512"),
    (lambda p: patched(p, 55, "<q", 65), "needs 520"),
    (lambda p: p[:63] + b"\x00" + p[64:], "non-empty"),
    (lambda p: p[:64] + b"\xff\xfe" + p[66:], "not text"),
    (lambda p: p[:66] + b"\x01\x00\x00\x00\x90", "string keys"),
    (lambda p: p[:66] + b"\x05\x00\x00\x00\x81\xc4\x01a\x01", "string keys"),
    (lambda p: p[:66] + b"\x05\x00\x00\x00\xc1\xc1\xc1\xc1\xc1", "FormatError"),
])
def test_a_malformed_short_head_is_a_clear_decode_error(rings, change, message):
    """Each field of a short head is checked: a bad one is a ChunkDecodeError naming it."""
    ring, reader = rings
    piece = head(ring)
    assert len(piece) == 71  # 52 fixed, "<c8", one axis, "iq", an empty meta
    with pytest.raises(ChunkDecodeError, match=message):
        decoder = ChunkStreamDecoder(ring=reader)
        decoder.feed(change(piece))
        decoder.close()


def test_a_short_head_needs_a_ring_and_a_meta_before_it(rings):
    """Without the stream's ring, or without a meta to take from the chunk before, the body is refused."""
    ring, reader = rings
    with pytest.raises(ChunkDecodeError, match="did not ask"):
        decode_chunks(head(ring))
    with pytest.raises(ChunkDecodeError, match="none came before it"):
        ChunkStreamDecoder(ring=reader).feed(head(ring, meta=None))
    # Cut short, it is carried to the next piece; never finished, it is truncated.
    decoder = ChunkStreamDecoder(ring=reader)
    assert decoder.feed(head(ring)[:40]) == []
    with pytest.raises(ChunkDecodeError, match="truncated"):
        decoder.close()


def test_a_meta_over_a_mebibyte_travels_in_the_map_and_a_head_claiming_one_is_refused(rings):
    """A head never asks its reader to gather more than MAX_SHORT_META of meta."""
    from pyrf_blocks.chunk import MAX_SHORT_META
    ring, reader = rings
    chunk = sampled(0, {"notes": "x" * MAX_SHORT_META})
    placed = RingHead.place(chunk, lambda array: ring.put(array, 0))
    assert placed.short(MetaPacker().key(chunk.meta)[1]) is None
    assert placed.short(None) is not None  # without it, it has a short form
    piece = patched(head(ring), 66, "<I", MAX_SHORT_META + 1)
    with pytest.raises(ChunkDecodeError, match="at most"):
        ChunkStreamDecoder(ring=reader).feed(piece)


def test_a_chunk_of_records_kind_cannot_hide_in_a_short_head(rings):
    """A short head says nothing of times: one of kind records is refused."""
    ring, reader = rings
    piece = head(ring, sampled(0, {}, kind="recordz", dtype=np.float64, shape=(4,)))
    with pytest.raises(ChunkDecodeError, match="times"):
        ChunkStreamDecoder(ring=reader).feed(piece.replace(b"recordz", b"records"))
