"""
Tests for records: irregular, time-stamped chunks, their wire encoding, and
cutting and joining them.
"""

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_array_equal

from pyrf_blocks.chunk import (
    RECORDS, Chunk, ChunkDecodeError, ChunkStreamDecoder, decode_chunk, decode_chunks,
    encode_chunk, encode_chunks,
)
from pyrf_blocks.interfaces import KIND_INTERFACES, IChunkProducer, IRecordsProducer
from pyrf_blocks.sync import Synchronizer, concat_chunks, slice_chunk

TIMES = [1_000, 2_500, 2_500, 9_000]
FIELDS = np.dtype([("voltage", "<f8"), ("current", "<f8"), ("phase", "<i2")])
META = {"units": "V", "sensor": "board-3"}


def numbers():
    return np.array([1.5, -2.0, 3.25, 1e300])


def value_sets():
    """Each kind of value records may hold, four rows each."""
    return {
        "float64": numbers(),
        "int16": np.array([1, -2, 3, 32767], np.int16),
        "complex64": np.array([1j, 2, -3j, 4 + 4j], np.complex64),
        "bool": np.array([True, False, False, True]),
        "rows_of_3": np.arange(12, dtype=np.float32).reshape(4, 3),
        "fields": np.array([(1.0, 0.5, 3), (2.0, 0.25, -1), (3.0, 0.0, 0), (4.0, 1.0, 7)],
                           FIELDS),
        "text": ["on", "off", "ü ñ ✓", ""],
        "bytes": [b"\x89PNG\r\n\x1a\n" + bytes(range(256)), b"", b"\x00\x00", b"abc\x00"],
        "mixed": ["start", b"\xff\xfe", "stop", b"\x00"],
    }


def make_records(values, times=TIMES, **kwargs):
    return Chunk.records(times, values, meta=dict(META), **kwargs)


# The chunk


def test_records_interface_is_a_chunk_producer_of_its_own_kind():
    """IRecordsProducer extends IChunkProducer and is the interface of kind 'records'."""
    assert IRecordsProducer.extends(IChunkProducer)
    assert KIND_INTERFACES[RECORDS] is IRecordsProducer
    assert "sorted" in IRecordsProducer.__doc__


@pytest.mark.parametrize("name", list(value_sets()))
def test_records_constructor_fills_defaults_and_freezes_arrays(name):
    """Chunk.records covers first time to last + 1 ns, rate 0, with read-only int64 times and values."""
    chunk = make_records(value_sets()[name], seq=4)
    assert chunk.kind == RECORDS and chunk.rate == 0.0 and chunk.seq == 4
    assert (chunk.start, chunk.end) == (1_000, 9_001)
    assert chunk.times.dtype == np.int64
    assert_array_equal(chunk.times, TIMES)
    assert len(chunk) == 4
    for array in (chunk.times, chunk.data):
        with pytest.raises(ValueError):
            array[0] = array[1]


def test_text_and_bytes_rows_are_kept_exactly():
    """Text rows stay str and bytes rows stay bytes, trailing NULs and all, in one object array."""
    chunk = make_records(value_sets()["mixed"])
    assert chunk.data.dtype == object
    assert chunk.data.tolist() == ["start", b"\xff\xfe", "stop", b"\x00"]
    text = make_records(np.array(["a", "bc", "d", "e"]))
    assert text.data.dtype == object and text.data.tolist() == ["a", "bc", "d", "e"]


def test_an_empty_records_chunk_just_advances_time():
    """A records chunk without rows is legal given its range, and says nothing happened in it."""
    chunk = Chunk.records([], [], start=5_000, end=8_000, seq=2)
    assert len(chunk) == 0 and chunk.times.shape == (0,)
    assert (chunk.start, chunk.end) == (5_000, 8_000)
    assert chunk.index_at(6_000) == 0 and chunk.time_of(0) == 8_000
    assert "empty" in repr(chunk)


def test_the_range_may_reach_far_beyond_the_last_row():
    """end is a watermark: it may lie far beyond the last row, and start before the first."""
    chunk = make_records(numbers(), start=0, end=10**12)
    assert (chunk.start, chunk.end) == (0, 10**12)


@pytest.mark.parametrize("times, values, kwargs, message", [
    ([2, 1], [1.0, 2.0], {}, "sorted.*row 1 at 1 ns comes after 2 ns"),
    ([1, 2, 3], [1.0, 2.0], {}, "3 times but 2 rows"),
    ([1.5, 2.5], [1.0, 2.0], {}, "integer nanoseconds"),
    ([[1, 2]], [1.0], {}, "times must be 1-D"),
    ([1, 2], ["a", 7], {}, "row 1 is of type int"),
    ([1, 2], np.array([1.0, None], object), {}, "row 0 is of type float"),
    ([1], [{"a": 1}], {}, "row 0 is of type dict"),
    ([], [], {}, "explicit start and end"),
    ([], [], {"start": 5}, "explicit start and end"),
    ([10, 20], [1, 2], {"start": 11}, "not all inside"),
    ([10, 20], [1, 2], {"end": 20}, "not all inside"),
    ([], [], {"start": 9, "end": 5}, "before start"),
    ([1, 2], np.zeros((2, 2, 2)), {}, "1-D or \\(rows, k\\)"),
    ([1, 2], np.array(["2026-01-01", "2026-01-02"], "datetime64[D]"), {}, "cannot be records"),
    ([1], np.zeros(1, [("when", "M8[ns]")]), {}, "fields must be plain numbers"),
    ([1], np.zeros(1, [("pair", "<f8", (2,))]), {}, "fields must be plain numbers"),
    ([1], np.zeros(1, [("x" * 65, "<f8")]), {}, "field names"),
    ([1], 3.0, {}, "scalar"),
    ([1, 2], [[1.0], [2.0, 3.0]], {}, "do not form an array"),
])
def test_bad_records_are_refused_with_a_one_line_reason(times, values, kwargs, message):
    """Each malformed input to Chunk.records raises a one-line ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message) as raised:
        Chunk.records(times, values, **kwargs)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("build, message", [
    (lambda: Chunk(RECORDS, np.zeros(2), 0, 10, 1e6), "needs times"),
    (lambda: Chunk("iq", np.zeros(2), 0, 10, 0.0), "rate > 0"),
    (lambda: Chunk("iq", np.zeros(2), 0, 10, 0.0, times=np.array([1, 2])), "only records"),
    (lambda: Chunk(RECORDS, np.zeros(2), 0, 10, 5.0, times=np.array([1, 2])), "rate must be 0"),
    (lambda: Chunk(RECORDS, np.zeros(2), 0, 10, 0.0, times=np.array([1, 2], np.int32)),
     "int64"),
    (lambda: Chunk(RECORDS, np.zeros(3), 0, 10, 0.0, times=np.array([1, 2])), "2 times but 3"),
    (lambda: Chunk(RECORDS, np.zeros(2), 0, 10, 0.0, times=np.array([1, 10])), "not all inside"),
])
def test_chunk_keeps_rate_and_times_consistent(build, message):
    """A chunk has times and rate 0 (records) or no times and a rate > 0 (sampled), never a mix."""
    with pytest.raises(ValueError, match=message):
        build()


def test_records_time_of_index_at_and_nbytes():
    """time_of gives a row's own time (end after the last), index_at counts rows before a time."""
    chunk = make_records(value_sets()["text"], end=20_000)
    assert [chunk.time_of(i) for i in range(5)] == [1_000, 2_500, 2_500, 9_000, 20_000]
    assert [chunk.index_at(t) for t in (0, 1_000, 1_001, 2_500, 2_501, 9_001, 10**30)] == [
        0, 0, 1, 1, 3, 4, 4]
    with pytest.raises(IndexError):
        chunk.time_of(5)
    assert chunk.nbytes == len("onoffü ñ ✓") + 4 * 8
    assert make_records(numbers()).nbytes == 4 * 8 + 4 * 8


def test_equality_replace_and_repr_know_the_times():
    """Chunks with other times are unequal; replace keeps the times; repr shows the rows' times."""
    chunk = make_records(numbers())
    assert chunk == make_records(numbers())
    assert chunk != make_records(numbers(), times=[1_000, 2_500, 2_600, 9_000])
    assert chunk.replace(seq=9).times is chunk.times
    assert chunk != Chunk("real", chunk.data, chunk.start, chunk.end, 1.0, meta=dict(META))
    assert "at 1000..9000 [1000, 9001) ns" in repr(chunk)


# The wire


@pytest.mark.parametrize("name", list(value_sets()) + ["empty numbers", "empty text"])
def test_records_round_trip_through_the_codec(name):
    """Every kind of record value, empty ones too, decodes to an equal chunk."""
    if name == "empty numbers":
        chunk = Chunk.records([], np.zeros((0, 3), np.int32), start=7, end=70, seq=3)
    elif name == "empty text":
        chunk = Chunk.records([], np.array([], object), start=7, end=7)
    else:
        chunk = make_records(value_sets()[name], end=50_000, seq=11)
    decoded = decode_chunk(encode_chunk(chunk))
    assert decoded == chunk
    assert decoded.data.dtype == chunk.data.dtype and decoded.data.shape == chunk.data.shape
    assert_array_equal(decoded.times, chunk.times)
    assert decoded.times.dtype == np.int64 and not decoded.times.flags.writeable
    assert not decoded.data.flags.writeable
    if chunk.data.dtype == object:
        assert [type(v) for v in decoded.data] == [type(v) for v in chunk.data]


def test_records_wire_map_holds_times_and_values_as_documented():
    """Times travel as raw <i8 bin under 't'; values as [dtype, shape, bin], fields or str/bin rows."""
    chunk = make_records(numbers())
    fields = msgpack.unpackb(encode_chunk(chunk), raw=False)
    assert list(fields) == ["k", "s", "e", "q", "r", "m", "t", "d"]
    assert fields["r"] == 0.0 and fields["k"] == "records"
    assert fields["t"] == np.array(TIMES, "<i8").tobytes()
    assert fields["d"] == ["<f8", [4], numbers().tobytes()]
    structured = msgpack.unpackb(encode_chunk(make_records(value_sets()["fields"])), raw=False)
    assert structured["d"][:2] == [[["voltage", "<f8"], ["current", "<f8"], ["phase", "<i2"]], [4]]
    assert structured["d"][2] == value_sets()["fields"].tobytes()
    rows = msgpack.unpackb(encode_chunk(make_records(value_sets()["mixed"])), raw=False)
    assert rows["d"] == ["O", [4], ["start", b"\xff\xfe", "stop", b"\x00"]]


def test_fields_travel_packed_and_little_endian():
    """A padded, big-endian structured array decodes to its values in packed little-endian fields."""
    padded = np.dtype({"names": ["a", "b"], "formats": [">i4", ">f8"], "offsets": [0, 8],
                       "itemsize": 24})
    values = np.zeros(2, padded)
    values["a"], values["b"] = [1, -2], [0.5, 1e-9]
    decoded = decode_chunk(encode_chunk(Chunk.records([1, 2], values)))
    assert decoded.data.dtype == np.dtype([("a", "<i4"), ("b", "<f8")])
    assert_array_equal(decoded.data["a"], [1, -2])
    assert_array_equal(decoded.data["b"], [0.5, 1e-9])


def test_encoder_refuses_rows_that_are_neither_text_nor_bytes():
    """A records chunk built by hand with other objects cannot be encoded."""
    rows = np.array(["a", 3], object)
    chunk = Chunk(RECORDS, rows, 0, 10, 0.0, times=np.array([1, 2]))
    with pytest.raises(TypeError, match="row 1: of type int"):
        encode_chunk(chunk)


def test_sampled_and_records_chunks_share_a_body():
    """Records and sampled chunks back to back, small and large, decode in order from any split."""
    big = make_records([b"x" * 300_000, "y", b"z" * 70_000, ""], end=10**6, seq=1)
    chunks = [
        Chunk("iq", np.arange(8, dtype=np.complex64), 0, 8_000, 1e6, 0),
        big,
        make_records(value_sets()["fields"], seq=2),
        Chunk("iq", np.arange(100_000, dtype=np.complex64), 8_000, 100_008_000, 1e6, 3),
        Chunk.records([], [], start=0, end=1, seq=4),
    ]
    body = encode_chunks(chunks)
    assert decode_chunks(body) == chunks
    for step in (1_000, 4_096, 65_536, 300_001):
        decoder = ChunkStreamDecoder()
        found = [c for n in range(0, len(body), step) for c in decoder.feed(body[n:n + step])]
        decoder.close()
        assert found == chunks


def test_a_large_chunk_with_its_array_not_last_decodes():
    """A chunk over 4 KiB whose array is not its last item decodes, whole or in pieces."""
    data = np.arange(2_000, dtype=np.float64)
    chunk = Chunk("real", data, 0, 2_000_000, 1e3, 5)
    body = msgpack.packb({"d": ["<f8", [2_000], data.tobytes()], "k": "real", "s": 0,
                          "e": 2_000_000, "q": 5, "r": 1e3, "m": {}})
    assert decode_chunk(body) == chunk
    decoder = ChunkStreamDecoder()
    found = [c for n in range(0, len(body), 1_000) for c in decoder.feed(body[n:n + 1_000])]
    decoder.close()
    assert found == [chunk]


def test_a_records_chunk_beyond_the_size_limit_is_refused():
    """A records chunk larger than the decoder's limit raises as its bytes arrive."""
    body = encode_chunk(make_records([b"x" * 50_000] * 4))
    decoder = ChunkStreamDecoder(max_size=20_000)
    with pytest.raises(ChunkDecodeError, match="size limit"):
        for n in range(0, len(body), 5_000):
            decoder.feed(body[n:n + 5_000])


def test_an_unfinished_records_chunk_is_truncated():
    """A stream that ends inside a large records chunk reports truncation at close."""
    body = encode_chunk(make_records([b"x" * 50_000] * 4))
    decoder = ChunkStreamDecoder()
    assert decoder.feed(body[:-10]) == []
    assert decoder.pending == len(body) - 10
    with pytest.raises(ChunkDecodeError, match="truncated"):
        decoder.close()


def records_map(name="float64"):
    return msgpack.unpackb(encode_chunk(make_records(value_sets()[name], end=20_000)),
                           raw=False)


@pytest.mark.parametrize("name, mutation, message", [
    ("float64", lambda m: m.update(t=np.array([3_000, 2_000, 4_000, 5_000], "<i8").tobytes()),
     "not sorted"),
    ("float64", lambda m: m.update(s=1_001), "outside the chunk's range"),
    ("float64", lambda m: m.update(e=9_000), "outside the chunk's range"),
    ("float64", lambda m: m.update(t=m["t"][:-8]), "3 times but 4 rows"),
    ("float64", lambda m: m.update(t=m["t"][:-1]), "int64 times"),
    ("float64", lambda m: m.update(t=[1, 2, 3, 4]), "int64 times"),
    ("float64", lambda m: m.update(r=1e6), "rate must be 0"),
    ("float64", lambda m: m.pop("t"), "needs its times"),
    ("float64", lambda m: m.update(k="iq"), "only records carry times"),
    ("float64", lambda m: m.update(d=["<f8", [2, 2, 1], m["d"][2]]), "1-D or"),
    ("float64", lambda m: m.update(d=["O", [4], [1.0, 2.0, 3.0, 4.0]]), "neither str nor bin"),
    ("text", lambda m: m.update(d=["O", [5], m["d"][2]]), "rows must be"),
    ("text", lambda m: m.update(d=["O", [4], b"onoff"]), "rows must be"),
    ("text", lambda m: m["d"][2].__setitem__(2, None), "row 2 is neither"),
    ("text", lambda m: m["d"][2].__setitem__(0, ["nested"]), "row 0 is neither"),
    ("fields", lambda m: m["d"][0].__setitem__(1, ["voltage", "<f8"]), "unique"),
    ("fields", lambda m: m["d"][0].__setitem__(2, ["phase", "|O"]), "plain numeric"),
    ("fields", lambda m: m["d"][0].__setitem__(2, ["phase", "<U1"]), "plain numeric"),
    ("fields", lambda m: m["d"][0].__setitem__(2, ["phase", "(2,)i1"]), "plain numeric"),
    ("fields", lambda m: m["d"][0].__setitem__(2, ["phase", "f8,f8"]), "plain numeric"),
    ("fields", lambda m: m["d"][0].__setitem__(2, ["phase", ["<i2"]]), "short string"),
    ("fields", lambda m: m["d"][0].__setitem__(2, ["", "<i2"]), "field names"),
    ("fields", lambda m: m["d"][0].__setitem__(2, [b"phase", "<i2"]), "field names"),
    ("fields", lambda m: m["d"][0].__setitem__(2, ["p" * 65, "<i2"]), "field names"),
    ("fields", lambda m: m["d"][0].__setitem__(2, ["phase"]), "\\[name, dtype\\]"),
    ("fields", lambda m: m["d"][0].__setitem__(2, ["phase", "<i8"]), "not rows of 24"),
    ("fields", lambda m: m["d"].__setitem__(0, []), "1 to 256 fields"),
    ("fields", lambda m: m["d"].__setitem__(0, [["f%d" % i, "u1"] for i in range(257)]),
     "1 to 256 fields"),
    ("fields", lambda m: m["d"].__setitem__(1, [4, 1]), "not rows of"),
    ("fields", lambda m: m["d"].__setitem__(2, "text"), "bin"),
])
def test_malformed_records_raise_naming_the_problem(name, mutation, message):
    """Each malformed records field raises ChunkDecodeError with a message naming it."""
    fields = records_map(name)
    mutation(fields)
    body = msgpack.packb(fields, use_bin_type=True)
    with pytest.raises(ChunkDecodeError, match=message):
        decode_chunk(body)
    with pytest.raises(ChunkDecodeError, match=message):
        ChunkStreamDecoder().feed(body)


def test_a_sampled_chunk_with_times_is_refused():
    """A sampled chunk's map with a 't' key is refused, with its rate or with rate 0."""
    fields = msgpack.unpackb(encode_chunk(Chunk("iq", np.zeros(2, np.complex64), 0, 2, 1e9)),
                             raw=False)
    fields["t"] = np.array([0, 1], "<i8").tobytes()
    with pytest.raises(ChunkDecodeError, match="only records carry times"):
        decode_chunk(msgpack.packb(fields))
    fields["r"] = 0.0
    with pytest.raises(ChunkDecodeError, match="only records carry times"):
        decode_chunk(msgpack.packb(fields))


@given(st.text(alphabet="iufcbO<>|=,()[]:0123456789 SUVMmaAgG?lLqQdDfFhH", max_size=8))
@settings(max_examples=300, deadline=None)
def test_any_dtype_text_decodes_or_raises_a_decode_error(text):
    """Whatever numpy's dtype parser makes of a dtype text (even a SyntaxError), decoding raises only ChunkDecodeError."""
    sampled = {"k": "iq", "s": 0, "e": 1, "q": 0, "r": 1.0, "m": {}, "d": [text, [1], b"\0"]}
    fields = records_map("fields")
    fields["d"][0][0][1] = text
    for body in (msgpack.packb(sampled), msgpack.packb(fields)):
        check_well_formed(decodes_or_raises(body))


ENCODED = {name: encode_chunk(make_records(values, end=30_000, seq=1))
           for name, values in value_sets().items()}


def decodes_or_raises(data, step=None):
    """Decode ``data`` (in pieces of ``step``); return the chunks or None on ChunkDecodeError."""
    try:
        if step is None:
            return decode_chunks(data)
        decoder = ChunkStreamDecoder()
        chunks = [c for n in range(0, len(data), step) for c in decoder.feed(data[n:n + step])]
        decoder.close()
        return chunks
    except ChunkDecodeError:
        return None


def check_well_formed(chunks):
    for chunk in chunks or ():
        if chunk.times is not None:
            assert chunk.rate == 0 and len(chunk.times) == len(chunk.data)
            assert np.all(np.diff(chunk.times) >= 0)
            assert not len(chunk.times) or chunk.start <= chunk.times[0] <= chunk.times[-1] < chunk.end
            if chunk.data.dtype == object:
                assert all(type(v) in (str, bytes) for v in chunk.data)
        else:
            assert chunk.rate > 0 and chunk.kind != RECORDS


@given(st.sampled_from(sorted(ENCODED)), st.binary(min_size=1, max_size=40),
       st.integers(min_value=0, max_value=10**6), st.sampled_from([None, 1, 7, 64]))
@settings(max_examples=400, deadline=None)
def test_corrupted_records_decode_or_raise_a_decode_error(name, noise, position, step):
    """Overwriting bytes of an encoded records chunk gives well-formed chunks or ChunkDecodeError."""
    body = bytearray(ENCODED[name])
    position %= len(body)
    body[position:position + len(noise)] = noise
    check_well_formed(decodes_or_raises(bytes(body), step))


@given(st.sampled_from(sorted(ENCODED)), st.integers(min_value=0, max_value=10**6),
       st.integers(min_value=1, max_value=30))
@settings(max_examples=300, deadline=None)
def test_truncated_or_shuffled_records_decode_or_raise(name, position, width):
    """Records cut short, or with a span of bytes removed or repeated, never raise anything else."""
    body = ENCODED[name]
    position %= len(body)
    for data in (body[:position], body[:position] + body[position + width:],
                 body[:position + width] + body[position:]):
        check_well_formed(decodes_or_raises(data))
    if position:
        assert decodes_or_raises(body[:position]) is None


def msgpack_containers(inner):
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=3)


MSGPACK_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64 - 1)
    | st.floats() | st.text(max_size=8) | st.binary(max_size=24)
    | st.sampled_from(["O", "<f8", "<i8", "|u1", "|O", "<U4", "f8,f8"]),
    msgpack_containers, max_leaves=12)


@st.composite
def record_like_maps(draw):
    """A records chunk's map with each key kept, dropped or given a random value, and maybe one more key."""
    fields = {}
    for key, value in records_map("fields").items():
        choice = draw(st.sampled_from(["keep", "keep", "drop", "random"]))
        if choice == "keep":
            fields[key] = value
        elif choice == "random":
            fields[key] = draw(MSGPACK_VALUES)
    if draw(st.booleans()):
        fields[draw(st.text(max_size=2))] = draw(MSGPACK_VALUES)
    return fields


@given(record_like_maps(), st.sampled_from([None, 3]))
@settings(max_examples=300, deadline=None)
def test_random_records_maps_decode_or_raise(fields, step):
    """Random msgpack maps shaped like a records chunk give well-formed chunks or ChunkDecodeError."""
    check_well_formed(decodes_or_raises(msgpack.packb(fields, use_bin_type=True), step))


@given(st.lists(st.tuples(st.sampled_from(sorted(["d", "t", "r", "k", "s", "e"])),
                          MSGPACK_VALUES), max_size=3))
@settings(max_examples=300, deadline=None)
def test_records_maps_with_a_few_fields_replaced_decode_or_raise(changes):
    """A valid records map with a few fields replaced by random values decodes or raises ChunkDecodeError."""
    fields = records_map("text")
    for key, value in changes:
        fields[key] = value
    check_well_formed(decodes_or_raises(msgpack.packb(fields, use_bin_type=True)))


# Cutting and joining


@st.composite
def record_streams(draw):
    """A records chunk with duplicate times, and cuts at row boundaries between different times."""
    steps = draw(st.lists(st.integers(min_value=0, max_value=5), max_size=40))
    times = 100 + np.cumsum(steps, dtype=np.int64)
    kind = draw(st.sampled_from(["float64", "fields", "text"]))
    rows = len(times)
    values = {"float64": np.arange(rows, dtype=np.float64),
              "fields": np.zeros(rows, FIELDS),
              "text": [("row %d" % i) if i % 3 else b"\x00%d" % i for i in range(rows)]}[kind]
    chunk = Chunk.records(times, values, start=50, end=int(times[-1]) + 7 if rows else 60,
                          seq=3, meta=dict(META))
    allowed = [i for i in range(1, rows) if times[i - 1] != times[i]]
    cuts = sorted(set(draw(st.lists(st.sampled_from(allowed), max_size=6)))) if allowed else []
    return chunk, cuts


@given(record_streams())
@settings(max_examples=300, deadline=None)
def test_records_cut_anywhere_and_joined_give_the_original(stream):
    """A records chunk sliced at any row boundaries tiles its range with views and concats back to itself."""
    chunk, cuts = stream
    bounds = [0] + cuts + [len(chunk)]
    pieces = [slice_chunk(chunk, begin, stop) for begin, stop in zip(bounds, bounds[1:])]
    assert pieces[0].start == chunk.start and pieces[-1].end == chunk.end
    for before, after in zip(pieces, pieces[1:]):
        assert before.end == after.start == after.times[0]
    for piece in pieces:
        assert piece.rate == 0 and piece.kind == RECORDS
        assert not len(piece) or np.shares_memory(piece.times, chunk.times)
    assert concat_chunks(pieces) == chunk


def test_records_are_not_cut_between_rows_of_one_time():
    """slice_chunk refuses a cut between two rows at the same time: ranges are half-open."""
    chunk = make_records(numbers())
    with pytest.raises(ValueError, match="rows 1 and 2: both are at 2500 ns"):
        slice_chunk(chunk, 0, 2)
    assert slice_chunk(chunk, 0, 1).end == 2_500 and slice_chunk(chunk, 3, 4).start == 9_000


@given(st.integers(min_value=0, max_value=300), st.lists(st.integers(0, 300), max_size=6),
       st.sampled_from([1e6, 3e6, 7.8125e6]))
@settings(max_examples=200, deadline=None)
def test_sampled_chunks_cut_anywhere_and_joined_give_the_original(rows, cuts, rate):
    """concat_chunks undoes slice_chunk for sampled chunks too."""
    data = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    chunk = Chunk("spectrum", data, 10**12, 10**12 + round(rows * 1e9 / rate), rate, 8, META)
    bounds = [0] + sorted(min(c, rows) for c in cuts) + [rows]
    pieces = [slice_chunk(chunk, begin, stop) for begin, stop in zip(bounds, bounds[1:])]
    assert concat_chunks(pieces) == chunk


@pytest.mark.parametrize("pieces, message", [
    ([], "no chunks"),
    ([Chunk.records([1], [1.0], end=5), Chunk.records([7], [1.0], start=6)], "not where chunk 0"),
    ([Chunk.records([1], [1.0], end=5), Chunk.records([7], [1], start=5)], "holds int64"),
    ([Chunk.records([1], [1.0], end=5), Chunk("real", np.ones(1), 5, 6, 1e9)], "real at"),
    ([Chunk.records([1], [1.0], end=5), Chunk.records([7], [1.0], start=5, meta={"a": 1})],
     "meta differs"),
    ([Chunk("real", np.ones((1, 2)), 0, 5, 1e9), Chunk("real", np.ones((1, 3)), 5, 6, 1e9)],
     "holds float64\\[3\\]"),
])
def test_concat_refuses_chunks_that_do_not_follow_each_other(pieces, message):
    """concat_chunks joins only consecutive chunks of one kind, rate, dtype and meta."""
    with pytest.raises(ValueError, match=message):
        concat_chunks(pieces)


# Synchronised with other inputs


RATE = 1e6  # 1 us a sample: sample boundaries are whole nanoseconds


@st.composite
def iq_and_records(draw):
    """An IQ stream and a records stream over the same time, each cut any way."""
    samples = draw(st.integers(min_value=1, max_value=60))
    iq = Chunk("iq", np.arange(samples, dtype=np.complex64), 0, samples * 1_000, RATE)
    iq_cuts = sorted(set(draw(st.lists(st.integers(1, samples), max_size=5)))) or []
    times = np.sort(np.array(draw(st.lists(st.integers(0, samples * 1_000 - 1), max_size=30)),
                             np.int64))
    records = Chunk.records(times, np.arange(len(times), dtype=np.float64), start=0,
                            end=samples * 1_000)
    record_cuts = sorted(set(draw(st.lists(st.integers(1, samples * 1_000 - 1), max_size=5))))
    return iq, iq_cuts, records, record_cuts


def cut_records_at_times(chunk, cuts):
    """Records cut at device times (empty pieces allowed)."""
    pieces, rest = [], chunk
    for time in cuts:
        rows = rest.index_at(time)
        pieces.append(rest.replace(data=rest.data[:rows], times=rest.times[:rows], end=time))
        rest = rest.replace(data=rest.data[rows:], times=rest.times[rows:], start=time)
    return pieces + [rest]


@given(iq_and_records(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_synchronised_records_land_in_the_range_that_contains_them(streams, records_first):
    """Each group's records piece covers exactly its range and holds the rows inside it, however cut."""
    iq, iq_cuts, records, record_cuts = streams
    bounds = [0] + iq_cuts + [len(iq)]
    iq_pieces = [slice_chunk(iq, a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    record_pieces = cut_records_at_times(records, record_cuts)
    sync, groups = Synchronizer(2), []
    order = ([(1, p) for p in record_pieces] + [(0, p) for p in iq_pieces] if records_first
             else [(0, p) for p in iq_pieces] + [(1, p) for p in record_pieces])
    for index, piece in order:
        groups += sync.add(index, piece)
    assert sync.unaligned_rows == 0
    assert groups[0][1].start == 0 and groups[-1][1].end == records.end
    for samples, rows in groups:
        assert (rows.start, rows.end) == (samples.start, samples.end)
        assert np.all((rows.times >= rows.start) & (rows.times < rows.end))
    assert concat_chunks([rows for _, rows in groups]) == records
    assert_array_equal(np.concatenate([samples.data for samples, _ in groups]), iq.data)


def test_an_empty_records_chunk_lets_the_other_input_through():
    """An empty records chunk advances time: the sampled input is not held waiting for a row."""
    sync = Synchronizer(2)
    assert sync.add(0, Chunk("iq", np.zeros(10, np.complex64), 0, 10_000, RATE)) == []
    [(samples, rows)] = sync.add(1, Chunk.records([], [], start=0, end=10_000))
    assert len(samples) == 10 and len(rows) == 0 and (rows.start, rows.end) == (0, 10_000)


def test_records_before_the_other_inputs_start_are_counted_as_unaligned():
    """Rows earlier than every other input are dropped and counted, like samples."""
    sync = Synchronizer(2)
    sync.add(1, Chunk.records([100, 4_000, 6_000], [1.0, 2.0, 3.0], start=0, end=10_000))
    [(samples, rows)] = sync.add(0, Chunk("iq", np.zeros(5, np.complex64), 5_000, 10_000, RATE))
    assert sync.unaligned_rows == 2
    assert rows.start == 5_000 and list(rows.times) == [6_000]


def test_two_records_inputs_are_synchronised_by_time():
    """Two records streams cut differently pair up over common ranges, no row lost."""
    a = Chunk.records([1, 5, 9, 12], ["a", "b", "c", "d"], start=0, end=20)
    b = Chunk.records([2, 3, 15], [1, 2, 3], start=0, end=20)
    sync, groups = Synchronizer(2), []
    for piece in cut_records_at_times(a, [6]):
        groups += sync.add(0, piece)
    for piece in cut_records_at_times(b, [3, 14]):
        groups += sync.add(1, piece)
    assert [(x.start, x.end) for x, _ in groups] == [(0, 3), (3, 6), (6, 14), (14, 20)]
    assert [(x.start, x.end) for _, x in groups] == [(0, 3), (3, 6), (6, 14), (14, 20)]
    assert concat_chunks([x for x, _ in groups]) == a
    assert concat_chunks([y for _, y in groups]) == b


@given(iq_and_records(), st.lists(st.integers(0, 2), min_size=6, max_size=6))
@settings(max_examples=200, deadline=None)
def test_gaps_and_meta_changes_in_records_never_stall_the_group(streams, changes):
    """Records with gaps or meta changes inside a sample still let every group through; no row vanishes uncounted."""
    iq, _, records, record_cuts = streams
    pieces = cut_records_at_times(records, record_cuts)
    shown = []
    for piece, change in zip(pieces, changes):
        if change == 1 and len(piece) == 0 and piece.end - piece.start > 1:
            piece = piece.replace(start=piece.start + 1)       # a gap before it
        elif change == 2:
            piece = piece.replace(meta={"units": "A"})          # a change of meta
        shown.append(piece)
    shown += pieces[len(changes):]
    sync, groups = Synchronizer(2), []
    groups += sync.add(0, iq)
    for piece in shown:
        groups += sync.add(1, piece)
    assert groups
    # More of both streams flush whatever waited for the next samples.
    groups += sync.add(0, Chunk("iq", np.zeros(2, np.complex64), iq.end, iq.end + 2_000, RATE))
    groups += sync.add(1, Chunk.records([], [], start=iq.end, end=iq.end + 2_000))
    assert groups[-1][0].end == iq.end + 2_000
    # Every row of either input is in a group or counted as unaligned.
    grouped = sum(len(samples) + len(rows) for samples, rows in groups)
    assert grouped + sync.unaligned_rows == len(iq) + 2 + len(records)
    for samples, rows in groups:
        assert np.all((rows.times >= rows.start) & (rows.times < rows.end))


# Across a worker


def test_records_cross_a_worker_stream_unchanged():
    """Records forwarded by a block on a worker reach a remote_block equal, times and all."""
    from pyrf_blocks.testing import WorkerPair, manual_source, recording_sink

    pair = WorkerPair()
    source = manual_source(kind=RECORDS, graph=pair.server, name="events")
    remote = pair.remote("events", RECORDS)
    assert IRecordsProducer.providedBy(remote)
    sink = recording_sink(remote)
    pair.pump(5)
    sent = [
        make_records(value_sets()["mixed"], start=0, end=10_000, seq=0),
        Chunk.records([], [], start=10_000, end=20_000, seq=1, meta=dict(META)),
        make_records(value_sets()["fields"], times=[20_000, 20_000, 25_000, 29_999],
                     start=20_000, end=30_000, seq=2),
    ]
    for chunk in sent:
        source.forward(chunk)
    source.finish()
    assert pair.run() is None
    assert sink.chunks == sent and sink.problems == []
