"""
The VRT codec: packets built and parsed field by field, payload decoding
against analytic values, and the stream parser on any split and on garbage.
"""

import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from pyrf_blocks.instruments import vrt
from pyrf_blocks.testing import split_array


def _tone(count, cycles=0.0625, amplitude=0.5):
    n = np.arange(count)
    return (amplitude * np.exp(2j * np.pi * cycles * n)).astype(np.complex64)


def _quantised(samples):
    return vrt.decode_payload(vrt.encode_payload(samples))


def test_header_word_fields():
    """The header carries type, C, T, TSI, TSF, count and size in their bits."""
    packet = vrt.build_data_packet(b"\0" * 16, count=9, trailer=vrt.Trailer(),
                                   class_id=(0x7B5, 1, 2), tsi_kind=1, tsf_kind=2)
    header = struct.unpack(">I", packet[:4])[0]
    assert header >> 28 == vrt.IF_DATA
    assert header >> 27 & 1 == 1 and header >> 26 & 1 == 1
    assert header >> 22 & 3 == 1 and header >> 20 & 3 == 2
    assert header >> 16 & 0xF == 9
    assert (header & 0xFFFF) * 4 == len(packet) == 4 * (1 + 1 + 2 + 1 + 2 + 4 + 1)


def test_data_packet_round_trip_with_every_optional_field():
    """Stream ID, class ID, timestamps, payload and trailer survive build → parse."""
    samples = _quantised(_tone(64))
    trailer = vrt.Trailer(valid_data=True, reference_lock=False, spectral_inversion=True,
                          over_range=False, sample_loss=True)
    packet = vrt.parse_packet(vrt.build_data_packet(
        vrt.encode_payload(samples), count=5, integer_seconds=1_700_000_000,
        fractional=123_456_789_012, trailer=trailer, class_id=(0x7B5, 3, 4)))
    assert packet.is_data and packet.stream_id == vrt.STREAM_I14Q14 and packet.count == 5
    assert packet.class_id == (0x7B5, 3, 4)
    assert (packet.integer_seconds, packet.fractional) == (1_700_000_000, 123_456_789_012)
    assert packet.time_ns == 1_700_000_000_123_456_789
    assert packet.trailer == trailer
    assert (trailer.valid_data, trailer.reference_lock, trailer.spectral_inversion,
            trailer.over_range, trailer.sample_loss) == (True, False, True, False, True)
    assert_array_equal(packet.samples(), samples)


def test_flags_are_honoured_not_assumed():
    """Without class ID, timestamps or trailer, the payload starts and ends where the flags say."""
    payload = vrt.encode_payload(_tone(8))
    bare = vrt.build_data_packet(payload, tsi_kind=0, tsf_kind=0)
    packet = vrt.parse_packet(bare)
    assert len(bare) == 4 * 2 + len(payload)
    assert packet.class_id is None and packet.trailer is None
    assert packet.integer_seconds is None and packet.fractional is None
    assert bytes(packet.payload) == payload
    no_id = vrt.parse_packet(vrt.build_data_packet(payload, stream_id=None))
    assert no_id.packet_type == vrt.IF_DATA_NO_ID and no_id.stream_id is None
    assert bytes(no_id.payload) == payload


def test_trailer_indicators_are_none_unless_enabled():
    """An indicator whose enable bit is clear reads None, whatever its indicator bit."""
    indicator_bits_only = (1 << 18) | (1 << 12)  # valid data and sample loss, not enabled
    trailer = vrt.Trailer(indicator_bits_only)
    assert trailer.valid_data is None and trailer.sample_loss is None
    assert vrt.Trailer(1 << 30).valid_data is False


def test_context_fields_round_trip_with_their_resolution():
    """Frequencies keep 20 fractional bits, reference level and gain 7."""
    receiver = vrt.parse_packet(vrt.build_context_packet(
        vrt.STREAM_RECEIVER, {"rf_frequency": 2_400_000_000.5, "gain": (10.25, -3.5),
                              "reference_point": 7, "temperature": 41.5}))
    assert receiver.packet_type == vrt.CONTEXT and receiver.stream_id == vrt.STREAM_RECEIVER
    assert receiver.fields == {"reference_point": 7, "rf_frequency": 2_400_000_000.5,
                               "gain": (10.25, -3.5), "temperature": 41.5}
    digitizer = vrt.parse_packet(vrt.build_context_packet(
        vrt.STREAM_DIGITIZER, {"bandwidth": 100e6, "rf_offset": -1.25e6,
                               "reference_level": -12.5078125, "sample_rate": 125e6}))
    assert digitizer.fields == {"bandwidth": 100e6, "rf_offset": -1.25e6,
                                "reference_level": -12.5078125, "sample_rate": 125e6}
    assert digitizer.unsupported == 0
    extension = vrt.parse_packet(vrt.build_context_packet(
        vrt.STREAM_EXTENSION, {"sweep_id": 0xDEADBEEF, "stream_id": vrt.STREAM_I14Q14}))
    assert extension.packet_type == vrt.EXTENSION_CONTEXT
    assert extension.fields == {"stream_id": vrt.STREAM_I14Q14, "sweep_id": 0xDEADBEEF}


def test_reference_level_rounds_to_its_7_fractional_bits():
    """-10.3 dBm travels as the nearest multiple of 1/128 dB."""
    packet = vrt.parse_packet(vrt.build_context_packet(vrt.STREAM_DIGITIZER,
                                                       {"reference_level": -10.3}))
    assert packet.fields["reference_level"] == round(-10.3 * 128) / 128


def test_unknown_context_field_stops_decoding_there():
    """Fields after an indicator bit of unknown size are not guessed."""
    packet = bytearray(vrt.build_context_packet(vrt.STREAM_DIGITIZER, {
        "bandwidth": 1e6, "reference_level": -5.0}))
    indicators_at = 4 * 5
    word = struct.unpack_from(">I", packet, indicators_at)[0] | (1 << 25)  # IF band offset
    struct.pack_into(">I", packet, indicators_at, word)
    parsed = vrt.parse_packet(bytes(packet))
    assert parsed.unsupported == 1 << 25
    assert parsed.fields == {"bandwidth": 1e6}


def test_i14q14_decodes_to_fractions_of_full_scale():
    """An I14Q14 payload of known integers reads as I/8192 + jQ/8192."""
    i = np.array([0, 8191, -8192, 100], np.int16)
    q = np.array([1, -1, 4096, -4096], np.int16)
    payload = np.column_stack((i, q)).astype(">i2").tobytes()
    assert_array_equal(vrt.decode_payload(payload, "I14Q14"),
                       (i + 1j * q).astype(np.complex64) / 8192)


def test_i14_and_i24_decode_real_samples():
    """I14 holds two int16 samples per word; I24 sign-extends 24 bits per word."""
    i14 = np.array([5, -5, 8191, -8192], ">i2").tobytes()
    assert_array_equal(vrt.decode_payload(i14, "I14"),
                       np.array([5, -5, 8191, -8192], np.float32) / 8192)
    words = np.array([1, 0xFFFFFF, 0x7FFFFF, 0x800000], ">u4").tobytes()
    assert_array_equal(vrt.decode_payload(words, "I24"),
                       np.array([1, -1, 2 ** 23 - 1, -2 ** 23], np.float32) / 2 ** 23)
    real = np.sin(np.arange(16) / 3.0) * 0.9
    assert_allclose(vrt.decode_payload(vrt.encode_payload(real, "I24"), "I24"), real,
                    atol=1 / 2 ** 23)


def test_encoding_a_tone_is_exact_to_half_an_lsb():
    """A -6 dBFS tone survives I14Q14 quantisation within half a 14-bit step."""
    tone = _tone(1024)
    decoded = _quantised(tone)
    assert_allclose(decoded.real, tone.real, atol=0.5 / 8192 + 1e-7)
    assert_allclose(decoded.imag, tone.imag, atol=0.5 / 8192 + 1e-7)


def test_encoding_clips_beyond_full_scale():
    """Samples beyond full scale clip to the 14-bit range instead of wrapping."""
    decoded = _quantised(np.array([1.5 + 0j, -2.0 - 2.0j], np.complex64))
    assert_array_equal(decoded, np.array([8191 / 8192, -1 - 1j], np.complex64))


def _stream(count=6, samples=32):
    packets = [vrt.build_context_packet(vrt.STREAM_DIGITIZER, {"reference_level": -3.0})]
    for index in range(count):
        packets.append(vrt.build_data_packet(
            vrt.encode_payload(_tone(samples, amplitude=0.25 + index / 100)), count=index,
            integer_seconds=10, fractional=index * 1000, trailer=vrt.Trailer(valid_data=True)))
    return packets


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 300), max_size=40))
def test_parser_output_does_not_depend_on_the_split(sizes):
    """Any split of the byte stream gives the same packets, in order."""
    packets = _stream()
    stream = b"".join(packets)
    parser = vrt.VRTStreamParser(stream_ids=vrt.THINKRF_STREAMS)
    parsed = []
    for piece in split_array(stream, sizes):
        parsed += parser.feed(piece)
    assert [p.count for p in parsed] == [0] + list(range(6))
    assert [bytes(p.payload) for p in parsed[1:]] == [
        bytes(vrt.parse_packet(p).payload) for p in packets[1:]]
    assert parser.stats["garbage_bytes"] == 0 and parser.buffered == 0
    assert parser.stats["bytes"] == len(stream)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=20))
def test_parser_never_raises_on_arbitrary_bytes(garbage, sizes):
    """Fuzz: arbitrary bytes are parsed, counted or held back, never raised on."""
    parser = vrt.VRTStreamParser(max_words=64)
    packets = []
    for piece in split_array(garbage, sizes):
        packets += parser.feed(piece)
    stats = parser.stats
    assert stats["bytes"] + parser.buffered == len(garbage)
    assert stats["packets"] == len(packets)
    parser.close()
    assert parser.buffered == 0


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 5))
def test_parser_resynchronises_after_garbage(garbage, where):
    """Garbage between packets is skipped and counted; every real packet still arrives."""
    packets = _stream(count=5)
    stream = b"".join(packets[:where + 1]) + garbage + b"".join(packets[where + 1:])
    parser = vrt.VRTStreamParser(stream_ids=vrt.THINKRF_STREAMS, max_words=64)
    parsed = parser.feed(stream)
    counts = [p.count for p in parsed if p.is_data]
    # A garbage run may swallow at most the packet it runs into.
    assert set(counts) >= set(range(5)) - {where}
    assert parser.stats["bytes"] + parser.buffered == len(stream)


def test_garbage_is_reported_with_its_position():
    """The first bad byte's stream offset and the reason are in ``problems``."""
    good = _stream(count=1)
    parser = vrt.VRTStreamParser(stream_ids=vrt.THINKRF_STREAMS)
    parsed = parser.feed(good[0] + b"\xff" * 7 + good[1])
    assert len(parsed) == 2
    assert parser.stats["garbage_bytes"] == 7 and parser.stats["resyncs"] == 1
    assert f"stream byte {len(good[0])}" in parser.problems[0]
    assert "unsupported packet type 15" in parser.problems[0]


def test_oversized_packet_is_counted_and_skipped():
    """A header announcing more words than allowed is an oversized packet, not a wait."""
    big = vrt.build_data_packet(b"\0" * 4 * 100)
    small = _stream(count=1)[1]
    parser = vrt.VRTStreamParser(max_words=50)
    parsed = parser.feed(big + small)
    assert parser.stats["oversized"] >= 1
    assert any(f"oversized packet: {len(big) // 4} words, limit 50" in p for p in parser.problems)
    assert [p.count for p in parsed][-1] == 0


def test_lost_sync_after_too_much_garbage():
    """More than ``max_garbage`` bytes without a packet sets ``lost_sync``."""
    parser = vrt.VRTStreamParser(max_garbage=100)
    parser.feed(b"\xee" * 99)
    assert not parser.lost_sync
    parser.feed(b"\xee" * 10)
    assert parser.lost_sync


def test_truncated_stream_is_counted_at_close():
    """A stream that ends inside a packet reports the leftover bytes."""
    packet = _stream(count=1)[1]
    parser = vrt.VRTStreamParser()
    assert parser.feed(packet[:-3]) == []
    assert parser.close() == f"stream ended inside a packet: {len(packet) - 3} bytes left over"
    assert parser.stats["truncated"] == 1


def test_context_field_past_the_packet_end_is_malformed():
    """A context packet too short for its indicated fields is counted, not read past."""
    packet = bytearray(vrt.build_context_packet(vrt.STREAM_DIGITIZER, {"bandwidth": 1e6}))
    struct.pack_into(">I", packet, 0, struct.unpack_from(">I", packet)[0] - 2)
    short = bytes(packet[:-8])
    parser = vrt.VRTStreamParser()
    assert parser.feed(short) == []
    assert parser.stats["malformed"] == 1
    assert "field bandwidth lies past" in parser.problems[0]
    with pytest.raises(vrt.VRTError, match="truncated"):
        vrt.parse_packet(short)


def test_building_rejects_what_the_format_cannot_hold():
    """Odd payload lengths, oversized packets and misplaced fields raise VRTError."""
    with pytest.raises(vrt.VRTError, match="whole 32-bit words"):
        vrt.build_data_packet(b"\0" * 3)
    with pytest.raises(vrt.VRTError, match="65535-word limit"):
        vrt.build_data_packet(b"\0" * 4 * 70000)
    with pytest.raises(vrt.VRTError, match="cannot put field"):
        vrt.build_context_packet(vrt.STREAM_DIGITIZER, {"sweep_id": 1, "bandwidth": 2.0})


def test_timestamp_conversions_are_exact():
    """ns ↔ (seconds, picoseconds) round-trips exactly."""
    ns = 1_763_812_345_678_901_234
    assert vrt.timestamp_ns(*vrt.timestamp_of_ns(ns)) == ns


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 400), max_size=30), st.integers(1, 9))
def test_runs_give_the_same_packets_as_one_by_one(sizes, count):
    """Parsing with runs=True yields the same samples, times, counts and trailers."""
    packets = _stream(count=count, samples=16)
    stream = b"".join(packets[1:2]) + b"".join(packets)
    one, batched = vrt.VRTStreamParser(), vrt.VRTStreamParser()
    singles, runs = [], []
    for piece in split_array(stream, sizes):
        singles += one.feed(piece)
        runs += batched.feed(piece, runs=True)
    expanded = []
    for item in runs:
        expanded += item.unpack() if isinstance(item, vrt.DataRun) else [item]
    assert [type(p) for p in expanded] == [type(p) for p in singles]
    data = [p for p in singles if p.is_data]
    run_items = [item for item in runs if item.is_data]
    assert_array_equal(np.concatenate([item.samples() for item in run_items]),
                       np.concatenate([p.samples() for p in data]))
    times = np.concatenate([item.time_ns if isinstance(item, vrt.DataRun)
                            else [item.time_ns] for item in run_items])
    assert times.tolist() == [p.time_ns for p in data]
    counts = np.concatenate([item.counts if isinstance(item, vrt.DataRun)
                             else [item.count] for item in run_items])
    assert counts.tolist() == [p.count for p in data]
    assert batched.stats == one.stats


def test_run_fields_and_split():
    """A run exposes per-packet fields as arrays and splits without copying."""
    packets = _stream(count=5, samples=8)[1:]
    run = vrt.VRTStreamParser().feed(b"".join(packets), runs=True)[0]
    assert isinstance(run, vrt.DataRun) and len(run) == 5
    assert run.samples_per_packet == 8 and run.payload_bytes == 32
    assert run.counts.tolist() == [0, 1, 2, 3, 4]
    assert run.integer_seconds.tolist() == [10] * 5
    assert run.fractional.tolist() == [0, 1000, 2000, 3000, 4000]
    assert [vrt.Trailer(int(w)).valid_data for w in run.trailers] == [True] * 5
    head, tail = run.split(2)
    assert (len(head), len(tail)) == (2, 3)
    assert_array_equal(np.concatenate([head.samples(), tail.samples()]), run.samples())
    assert run.split(0) == (None, run) and run.split(9) == (run, None)


def test_decode_payloads_joins_packets():
    """decode_payloads equals decoding each payload and concatenating."""
    payloads = [vrt.encode_payload(_tone(n)) for n in (3, 16, 1)]
    assert_array_equal(vrt.decode_payloads(payloads),
                       np.concatenate([vrt.decode_payload(p) for p in payloads]))
    with pytest.raises(ValueError, match="out must be complex64\\[4\\]"):
        vrt.decode_payload(payloads[0] + b"\0" * 4, out=np.empty(3, np.complex64))


def _junk(kind, packet, draw):
    """Junk that looks like the packet it is sent before, as a damaged stream has."""
    if kind == "bare_header":
        return packet[:draw(st.sampled_from([4, 8]))]
    if kind == "truncated":
        return packet[:draw(st.integers(8, len(packet) - 1))]
    if kind == "huge_size":
        return packet[:2] + b"\xff\xff" + packet[4:]
    if kind == "bit_flips":
        data = bytearray(packet)
        for bit in draw(st.sets(st.integers(0, 20 * 8 - 1), min_size=1, max_size=3)):
            data[bit // 8] ^= 1 << (bit % 8)
        return bytes(data)
    if kind == "copy_of_previous":
        return draw(st.sampled_from(["previous"]))
    if kind == "other_stream":
        return vrt.build_data_packet(vrt.encode_payload(np.zeros(64, np.float32), "I14"),
                                     vrt.STREAM_I14, draw(st.integers(0, 15)))
    return draw(st.binary(min_size=1, max_size=40))


_KINDS = ["bare_header", "truncated", "huge_size", "bit_flips", "copy_of_previous",
          "other_stream", "random"]


# Derandomized, so that a run never depends on luck; 4000 random examples
# of it passed once when it was written.
@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.data())
def test_junk_before_packets_costs_no_valid_packet_on_any_split(data):
    """Bare, truncated, swollen, damaged or repeated packets and garbage: the valid packets come out exactly, whatever the split."""
    draw = data.draw
    valid = [vrt.build_data_packet(vrt.encode_payload(_tone(32, amplitude=0.2 + i / 100)),
                                   count=i, integer_seconds=10, fractional=i * 4000,
                                   trailer=vrt.Trailer(valid_data=True)) for i in range(24)]
    pieces = [vrt.build_context_packet(vrt.STREAM_DIGITIZER, {"reference_level": -3.0})]
    for index, packet in enumerate(valid):
        if 0 < index < len(valid) - 2 and draw(st.booleans()):
            junk = _junk(draw(st.sampled_from(_KINDS)), packet, draw)
            pieces.append(valid[index - 1] if junk == "previous" else junk)
        pieces.append(packet)
    stream = b"".join(pieces)
    parser = vrt.VRTStreamParser(stream_ids=vrt.THINKRF_STREAMS)
    parsed = []
    for piece in split_array(stream, draw(st.lists(st.integers(1, 2000), max_size=30))):
        parsed += parser.feed(piece, runs=draw(st.booleans()))
    payloads = []
    for item in parsed:
        if item.is_data and item.stream_id == vrt.STREAM_I14Q14:
            payloads += ([bytes(p.payload) for p in item.unpack()]
                         if isinstance(item, vrt.DataRun) else [bytes(item.payload)])
    assert payloads == [bytes(vrt.parse_packet(p).payload) for p in valid], parser.problems
