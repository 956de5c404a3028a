"""
Tests for the chunk and its msgpack wire encoding.
"""

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_array_equal

from pyrf_blocks.chunk import (
    Chunk, ChunkDecodeError, ChunkStreamDecoder, decode_chunk, decode_chunks,
    encode_chunk, encode_chunks,
)

DTYPES = [np.complex64, np.float32, np.float64, np.int16]
SHAPES = [(0,), (1,), (1000,), (0, 8), (3, 8), (64, 1024)]


def make_chunk(dtype=np.complex64, shape=(16,), seq=0):
    rng = np.random.default_rng(1)
    values = rng.standard_normal(int(np.prod(shape)) * 2) * 1000
    data = values.view(np.complex128)[:int(np.prod(shape))] if np.dtype(dtype).kind == "c" \
        else values[:int(np.prod(shape))]
    data = data.astype(dtype).reshape(shape)
    return Chunk("iq", data, 1_000, 17_000, 1e6, seq,
                 {"center_frequency": 2.4e9, "units": "full_scale", "window": ["kaiser", 8.0]})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip(dtype, shape):
    """Every supported dtype and shape, empty included, decodes to the same chunk."""
    chunk = make_chunk(dtype, shape)
    decoded = decode_chunk(encode_chunk(chunk))
    assert decoded == chunk
    assert decoded.data.dtype == np.dtype(dtype)
    assert decoded.data.shape == shape
    assert_array_equal(decoded.data, chunk.data)


def test_decoded_array_is_aligned_read_only_and_independent_of_the_body():
    """The decoder copies the samples once, into the array's own aligned memory."""
    chunk = make_chunk(np.complex64, (4096,))
    body = encode_chunk(chunk)
    decoder = ChunkStreamDecoder()
    pieces = [body[n:n + 1000] for n in range(0, len(body), 1000)]
    [decoded] = [c for piece in pieces for c in decoder.feed(piece)]
    assert decoded.data.flags.aligned and decoded.data.flags.c_contiguous
    assert not decoded.data.flags.writeable
    assert not any(np.shares_memory(decoded.data, np.frombuffer(piece, np.uint8))
                   for piece in pieces)
    assert_array_equal(decoded.data, chunk.data)


@pytest.mark.parametrize("nbytes", [0, 8, 248, 256, 65528, 65536, 1 << 20])
def test_encoding_is_canonical_msgpack(nbytes):
    """encode_chunk gives the bytes msgpack itself packs (bin8, bin16 and bin32 headers)."""
    chunk = make_chunk(np.float64, (nbytes // 8,))
    expected = msgpack.packb({
        "k": chunk.kind, "s": chunk.start, "e": chunk.end, "q": chunk.seq,
        "r": chunk.rate, "m": chunk.meta, "d": ["<f8", [nbytes // 8], chunk.data.tobytes()]})
    assert encode_chunk(chunk) == expected


@given(st.permutations(list("kseqrmd")), st.integers(min_value=1, max_value=200))
@settings(max_examples=40, deadline=None)
def test_any_key_order_decodes_split_anywhere(order, step):
    """A chunk packed by another encoder, keys in any order, decodes from any split."""
    chunk = make_chunk(np.int16, (100,), seq=7)
    fields = {"k": chunk.kind, "s": chunk.start, "e": chunk.end, "q": chunk.seq,
              "r": chunk.rate, "m": chunk.meta, "d": ["<i2", [100], chunk.data.tobytes()]}
    body = msgpack.packb({key: fields[key] for key in order}) * 2
    decoder = ChunkStreamDecoder()
    found = [c for n in range(0, len(body), step) for c in decoder.feed(body[n:n + step])]
    decoder.close()
    assert found == [chunk, chunk]


def test_a_declared_array_beyond_the_limit_is_refused_before_it_arrives():
    """A head announcing more bytes than the decoder's limit fails at once, allocating nothing."""
    body = encode_chunk(make_chunk(np.complex64, (4096,)))
    decoder = ChunkStreamDecoder(max_size=1000)
    with pytest.raises(ChunkDecodeError, match="size limit"):
        decoder.feed(body[:200])


def test_encoding_packs_the_array_buffer_as_msgpack_bin():
    """The array travels as one bin field holding exactly its raw bytes."""
    chunk = make_chunk(np.int16, (5,))
    fields = msgpack.unpackb(encode_chunk(chunk), raw=False)
    dtype, shape, buffer = fields["d"]
    assert dtype == "<i2" and shape == [5]
    assert buffer == chunk.data.tobytes()


def test_non_contiguous_and_big_endian_arrays_encode():
    """Strided views and big-endian arrays encode as their values, little-endian."""
    base = np.arange(20, dtype=">f8").reshape(4, 5)
    chunk = Chunk("real", base[:, ::2], 0, 4, 1.0)
    decoded = decode_chunk(encode_chunk(chunk))
    assert_array_equal(decoded.data, base[:, ::2])
    assert decoded.data.dtype == np.dtype("<f8")


def test_several_chunks_in_one_body():
    """A body of back-to-back chunks decodes to the same chunks in order."""
    chunks = [make_chunk(seq=n) for n in range(5)]
    assert decode_chunks(encode_chunks(chunks)) == chunks


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12))
@settings(max_examples=50, deadline=None)
def test_stream_decoder_accepts_any_split(cuts):
    """Bytes split anywhere decode to the same chunks as the whole body."""
    chunks = [make_chunk(np.float32, (n,), seq=n) for n in (3, 0, 40)]
    body = encode_chunks(chunks)
    decoder, found, position = ChunkStreamDecoder(), [], 0
    for cut in sorted(min(c, len(body)) for c in cuts) + [len(body)]:
        found += decoder.feed(body[position:cut])
        position = cut
    decoder.close()
    assert found == chunks


def test_truncated_bytes_raise_a_clear_error():
    """A body cut short raises ChunkDecodeError saying it was truncated."""
    body = encode_chunk(make_chunk())
    for length in (1, len(body) // 2, len(body) - 1):
        with pytest.raises(ChunkDecodeError, match="truncated"):
            decode_chunks(body[:length])


@pytest.mark.parametrize("mutation, message", [
    (lambda m: m.pop("k"), "expected a map"),
    (lambda m: m.update(k=3), "kind"),
    (lambda m: m.update(s=10, e=5), "start and end"),
    (lambda m: m.update(q=-1), "seq"),
    (lambda m: m.update(r=0), "rate"),
    (lambda m: m.update(m=[1]), "meta"),
    (lambda m: m.update(d=["|O", [1], b"12345678"]), "plain numeric"),
    (lambda m: m.update(d=["<c8", [3], b"\0" * 16]), "needs 24"),
    (lambda m: m.update(d=["<f4", [-1], b""]), "shape"),
    (lambda m: m.update(d=["nonsense", [1], b"\0"]), "dtype"),
    (lambda m: m.update(d=["<f4", [1], "text"]), "bin"),
])
def test_malformed_fields_raise_never_a_wrong_array(mutation, message):
    """Each kind of malformed field is reported with a message naming it."""
    fields = msgpack.unpackb(encode_chunk(make_chunk()), raw=False)
    mutation(fields)
    with pytest.raises(ChunkDecodeError, match=message):
        decode_chunk(msgpack.packb(fields, use_bin_type=True))


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_decode_or_raise(data):
    """Arbitrary bytes either decode to well-formed chunks or raise ChunkDecodeError."""
    try:
        chunks = decode_chunks(data)
    except ChunkDecodeError:
        return
    for chunk in chunks:
        assert chunk.data.size * chunk.data.itemsize == chunk.data.nbytes


@given(st.binary(max_size=60), st.integers(min_value=0, max_value=200))
@settings(max_examples=200, deadline=None)
def test_corrupted_chunk_never_decodes_to_another_array(noise, position):
    """Overwriting bytes of a valid body gives an error or a chunk of consistent size."""
    body = bytearray(encode_chunk(make_chunk(np.int16, (32,))))
    position %= len(body)
    body[position:position + len(noise)] = noise
    try:
        chunks = decode_chunks(bytes(body))
    except ChunkDecodeError:
        return
    for chunk in chunks:
        assert chunk.data.nbytes == int(np.prod(chunk.data.shape)) * chunk.data.itemsize


def test_meta_rejects_arrays_and_converts_numpy_scalars():
    """numpy scalars in meta become plain numbers; arrays in meta are refused."""
    chunk = Chunk("scalar", np.zeros(1), 0, 1, 1.0, meta={"level": np.float32(-20.5)})
    assert decode_chunk(encode_chunk(chunk)).meta == {"level": -20.5}
    with pytest.raises(TypeError, match="only as a chunk's data"):
        encode_chunk(chunk.replace(meta={"axis": np.zeros(3)}))


def test_chunk_data_is_read_only_and_times_map_to_rows():
    """Chunks are immutable and convert between row index and device time."""
    chunk = Chunk("iq", np.zeros(10, np.complex64), 1000, 1100, 1e8)
    with pytest.raises(ValueError):
        chunk.data[0] = 1
    assert chunk.time_of(5) == 1050
    assert chunk.index_at(1050) == 5
    assert chunk.index_at(0) == 0 and chunk.index_at(10**9) == 10


@settings(max_examples=30, deadline=None)
@given(st.booleans(), st.integers(0, 2 ** 40), st.sampled_from([None, {}, {"units": "V"}]),
       st.sampled_from(["seq", "meta", "both"]))
def test_replacing_seq_or_meta_gives_the_chunk_the_constructor_would(records, seq, meta, which):
    """replace(seq=, meta=) (no checks needed) equals a chunk built and checked from the same fields."""
    if records:
        chunk = Chunk.records(np.array([5, 7, 7, 9], np.int64), np.arange(4.0), 5, 10,
                              seq=3, meta={"a": 1})
    else:
        chunk = Chunk("real", np.arange(4.0), 0, 4000, 1e6, seq=3, meta={"a": 1})
    changes = {"seq": {"seq": seq}, "meta": {"meta": meta},
               "both": {"seq": seq, "meta": meta}}[which]
    fast = chunk.replace(**changes)
    fields = {name: getattr(chunk, name) for name in Chunk.__slots__}
    fields.update(changes)
    assert fast == Chunk(**fields)
    assert fast.data is chunk.data and fast.times is chunk.times
    assert type(fast.seq) is int and fast.meta is not None


def test_fields_are_plain_python_numbers_whatever_was_given():
    """start, end and seq become int and rate float from numpy scalars, floats and bools; data becomes read-only."""
    data = np.zeros(4, np.float32)
    chunk = Chunk("iq", data, np.int64(5), 9.7, np.float32(2.0), np.uint8(3))
    assert (chunk.start, chunk.end, chunk.rate, chunk.seq) == (5, 9, 2.0, 3)
    assert [type(v) for v in (chunk.start, chunk.end, chunk.rate, chunk.seq)] == [int, int, float, int]
    assert not data.flags.writeable
    chunk = Chunk("iq", data, True, 10, 1, seq=False)
    assert [type(v) for v in (chunk.start, chunk.end, chunk.rate, chunk.seq)] == [int, int, float, int]
    assert not chunk.data.flags.writeable


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-50, 50), max_size=40), st.sampled_from(["sorted", "as drawn"]),
       st.one_of(st.none(), st.integers(-60, 60)), st.one_of(st.none(), st.integers(-60, 60)),
       st.sampled_from(["float64", "int16", "complex64", "2 columns", "list", "text"]),
       st.booleans())
def test_records_give_the_chunk_or_the_error_the_checking_constructor_gives(
        times, order, start, end, values, fresh_times):
    """Chunk.records, which fills the slots itself after its checks, equals Chunk() on the same fields, or fails with the same message."""
    if order == "sorted":
        times = sorted(times)
    rows = len(times)
    data = {"float64": np.arange(rows, dtype=np.float64), "int16": np.arange(rows, dtype=np.int16),
            "complex64": np.arange(rows, dtype=np.complex64) * 1j,
            "2 columns": np.ones((rows, 2)), "list": [float(r) for r in range(rows)],
            "text": ["a"] * rows}[values]
    given_times = np.array(times, np.int64) if fresh_times else times
    try:
        chunk = Chunk.records(given_times, data, start, end, seq=4, meta={"k": 1})
    except ValueError as error:
        problem = str(error)
    else:
        problem = None
    # What it did before: the checks of times and values, then the constructor's.
    expected_times = np.array(times, np.int64)
    if expected_times.size and np.any(expected_times[1:] < expected_times[:-1]):
        assert problem and problem.startswith("records: times must be sorted")
        return
    if not rows and (start is None or end is None):
        assert problem == "records: a chunk without rows needs an explicit start and end"
        return
    expected_values = np.array(data, object) if values == "text" and rows else np.asarray(data)
    try:
        expected = Chunk("records", expected_values,
                         times[0] if start is None else start,
                         times[-1] + 1 if end is None else end, 0.0, 4, {"k": 1}, expected_times)
    except ValueError as error:
        assert problem == str(error)
        return
    assert problem is None
    assert chunk == expected
    assert type(chunk.start) is int and type(chunk.end) is int and type(chunk.seq) is int
    assert not chunk.data.flags.writeable and not chunk.times.flags.writeable
