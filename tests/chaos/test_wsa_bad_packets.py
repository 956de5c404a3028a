"""
The analyzer source against the emulator on real loopback sockets, with
junk injected between the valid packets of its VRT stream: every valid
packet is delivered once and nothing else is (0 lost, 0 duplicated, 0
foreign samples), the connection is never dropped, and the metadata stays
sane.  The figures are in the assertion messages.
"""

import numpy as np
import pytest
from twisted.internet import defer

from pyrf_blocks import Graph
from pyrf_blocks.instruments import WSA5000, vrt
from pyrf_blocks.testing import new_reactor, recording_sink, run_until, start_emulator, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(60)]

SPP = 256
VALID = 600  # valid data packets sent per kind of junk
EVERY = 3  # junk before every EVERY-th valid packet


def _flip(packet, rng, first, last):
    data = bytearray(packet)
    for bit in rng.choice((last - first) * 8, size=rng.integers(1, 4), replace=False):
        data[first + bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def _junk(kind, packet, rng, counts):
    """
    Junk to send before the valid ``packet``.
    """
    seconds, picoseconds = vrt.parse_packet(packet).integer_seconds, 0
    if kind in ("i14", "i24"):
        stream = vrt.STREAM_I14 if kind == "i14" else vrt.STREAM_I24
        count = counts[stream] = counts.get(stream, -1) + 1
        samples = rng.uniform(-0.5, 0.5, SPP).astype(np.float32)
        return vrt.build_data_packet(vrt.encode_payload(samples, kind.upper()), stream,
                                     count, seconds, picoseconds)
    if kind == "bare_header":
        return packet[:4 * rng.integers(1, 3)]  # its header (and stream ID), no more
    if kind == "truncated":
        return packet[:rng.integers(8, len(packet) - 4)]
    if kind == "huge_size":
        return packet[:2] + b"\xff\xff" + packet[4:]
    if kind == "bit_flips":
        return _flip(packet, rng, 0, 20)  # header, stream ID, timestamps
    if kind == "bad_context":
        return (vrt.build_context_packet(vrt.STREAM_DIGITIZER, {
            "sample_rate": -7.9e12, "rf_offset": -3e11, "reference_level": -20.0},
            count=int(rng.integers(16)), integer_seconds=seconds)
            + vrt.build_context_packet(vrt.STREAM_RECEIVER, {"rf_frequency": -2.4e9},
                                       count=int(rng.integers(16)), integer_seconds=seconds))
    if kind == "random":
        return rng.bytes(int(rng.integers(1, 80)))
    raise ValueError(kind)


def _tally(delivered, expected):
    """
    ``(indices of the valid packets delivered, in order; foreign
    samples)``: the delivered samples against the valid packets' samples.
    """
    known = {block.tobytes(): index for index, block in enumerate(expected)}
    seen, foreign, position = [], 0, 0
    while position < len(delivered):
        index = known.get(delivered[position:position + SPP].tobytes())
        if index is None:
            foreign += 1
            position += 1
        else:
            seen.append(index)
            position += SPP
    return seen, foreign


@pytest.mark.parametrize("kind", ["i14", "i24", "bare_header", "truncated", "huge_size",
                                  "bit_flips", "bad_context", "random"])
def test_wsa_junk_between_valid_packets_costs_nothing(kind):
    """Junk of each kind before every third of 600 packets: every valid packet arrives once, no foreign sample, sane metadata."""
    rng = np.random.default_rng(sum(map(ord, kind)))
    reactor = new_reactor()
    emulator = start_emulator(reactor, paced=False, start_time=1_700_000_000_000_000_000)
    sent, counts = [], {}
    original = emulator.next_packet

    def next_packet(count):
        # Junk among the first VALID packets; then the stream goes on
        # clean, as an instrument's does (a packet is vouched for by the
        # bytes after it).
        packet = original(count)
        sent.append(packet)
        if len(sent) % EVERY or len(sent) > VALID:
            return packet
        return _junk(kind, packet, rng, counts) + packet

    emulator.next_packet = next_packet
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, decimation=16, samples_per_packet=SPP,
                  packets_per_block=4, scpi_port=emulator.ports["scpi"],
                  data_port=emulator.ports["data"])
    sink = recording_sink(wsa)

    @defer.inlineCallbacks
    def scenario():
        yield wait_for(reactor, lambda: wsa.stats["samples"] >= (VALID + 8) * SPP
                       or wsa.stats["reconnects"])
        graph.stop()
        yield graph.done()

    failure = None
    try:
        run_until(reactor, scenario(), timeout=20)
    except AssertionError as error:
        failure = error
    expected = [vrt.parse_packet(packet).samples() for packet in sent]
    delivered = sink.data() if sink.chunks else np.zeros(0, np.complex64)
    seen, foreign = _tally(delivered, expected)
    lost = len(set(range(VALID)) - set(seen))
    duplicated = len(seen) - len(set(seen))
    rates = {chunk.meta["sample_rate"] for chunk in sink.chunks}
    centres = {chunk.meta["center_frequency"] for chunk in sink.chunks}
    figures = (f"{kind}: {sum(1 for i in seen if i < VALID)} of {VALID} valid packets "
               f"delivered ({len(seen)} with those after the junk), {lost} lost, "
               f"{duplicated} duplicated, {foreign} foreign samples; source {wsa.stats}; "
               f"sample rates {rates}, centres {centres}; {failure or 'done'}")
    print(figures)
    assert failure is None, figures
    assert (lost, duplicated, foreign) == (0, 0, 0), figures
    assert seen == list(range(len(seen))) and wsa.stats["reconnects"] == 0, figures
    assert rates == {125e6 / 16} and centres == {2.4e9}, figures
    if kind in ("i14", "i24"):
        assert wsa.stats["other_formats"] == VALID // EVERY, figures
    if kind == "bad_context":
        assert wsa.stats["bad_context"] >= 3, figures
