"""
The emulator over real loopback sockets: its SCPI subset, the acquisition
lock, its VRT stream, TCP flow control, and discovery.
"""

import re

import numpy as np
import pytest
from numpy.testing import assert_allclose
from twisted.internet import defer, protocol

from pyrf_blocks.instruments import vrt
from pyrf_blocks.instruments.discovery import (Analyzer, decode_query, decode_response,
                                               discover, encode_query, encode_response)
from pyrf_blocks.instruments.emulator import normalise_header
from pyrf_blocks.instruments.scpi import SCPIClientFactory
from pyrf_blocks.numerics.spectral import frame_spectra, power_to_dbm, window
from pyrf_blocks.testing import new_reactor, run_until, start_emulator, wait_for


class _Collector(protocol.Protocol):
    def __init__(self):
        self.parser = vrt.VRTStreamParser(stream_ids=vrt.THINKRF_STREAMS)
        self.packets = []

    def dataReceived(self, data):
        self.packets += self.parser.feed(data)


def _connect(reactor, port, factory):
    reactor.connectTCP("127.0.0.1", port, factory)
    return factory


def _scpi(reactor, emulator):
    factory = _connect(reactor, emulator.ports["scpi"], SCPIClientFactory(reactor, 5.0))
    return factory.connected


def _data(reactor, emulator):
    collector = _Collector()
    factory = protocol.ClientFactory.forProtocol(lambda: collector)
    factory.protocol = lambda: collector
    connected = defer.Deferred()

    class Factory(protocol.ClientFactory):
        def buildProtocol(self, addr):
            reactor.callLater(0, connected.callback, collector)
            return collector

    reactor.connectTCP("127.0.0.1", emulator.ports["data"], Factory())
    return connected


def test_headers_normalise_to_short_forms():
    """Long and short forms, any case, with or without SENSE, name one command."""
    assert normalise_header(":sense:decimation?") == "DEC?"
    assert normalise_header("SENS:DEC") == "DEC"
    assert normalise_header(":FREQuency:CENTer") == "FREQ:CENT"
    assert normalise_header(":TRACE:STREAM:START") == "TRAC:STR:STAR"


def test_scpi_identity_settings_and_errors():
    """*IDN?, settings with read-back, and out-of-range values in the error queue."""
    reactor = new_reactor()
    emulator = start_emulator(reactor, model="R5500", serial="SN42")

    @defer.inlineCallbacks
    def session():
        scpi = yield _scpi(reactor, emulator)
        replies = [(yield scpi.query("*IDN?"))]
        replies.append((yield scpi.query(":SYSTEM:LOCK:REQUEST? ACQ")))
        yield scpi.command(":FREQ:CENT 915e6; :SENSE:DECIMATION 8")
        replies.append((yield scpi.query("FREQ:CENT?")))
        replies.append((yield scpi.query("dec?")))
        replies.append((yield scpi.query(":SYSTEM:ERROR?")))
        yield scpi.command(":SENSE:DECIMATION 3")
        yield scpi.command(":BOGUS:COMMAND 1")
        replies.append((yield scpi.query(":SYST:ERR?")))
        replies.append((yield scpi.query(":SYST:ERR?")))
        replies.append((yield scpi.query(":SYST:ERR?")))
        scpi.close()
        return replies

    replies = run_until(reactor, session())
    assert replies[0] == "ThinkRF,R5500,SN42,1.0.0"
    assert replies[1:5] == ["1", "915000000", "8", '0,"No error"']
    assert replies[5].startswith("-222,") and "decimation 3 is not supported" in replies[5]
    assert replies[6] == '-113,"Undefined header; BOGUS:COMMAND"'
    assert replies[7] == '0,"No error"'


def test_acquisition_lock_belongs_to_one_client():
    """A second client is refused the lock and cannot change settings."""
    reactor = new_reactor()
    emulator = start_emulator(reactor)

    @defer.inlineCallbacks
    def session():
        first = yield _scpi(reactor, emulator)
        second = yield _scpi(reactor, emulator)
        granted = yield first.query(":SYST:LOCK:REQ? ACQ")
        refused = yield second.query(":SYST:LOCK:REQ? ACQ")
        have = yield second.query(":SYST:LOCK:HAVE? ACQ")
        yield second.command(":FREQ:CENT 1e9")
        error = yield second.query(":SYST:ERR?")
        first.close()
        yield wait_for(reactor, lambda: emulator.lock_holder is None)
        regained = yield second.query(":SYST:LOCK:REQ? ACQ")
        second.close()
        return granted, refused, have, error, regained

    granted, refused, have, error, regained = run_until(reactor, session())
    assert (granted, refused, have, regained) == ("1", "0", "0", "1")
    assert "acquisition lock held by another client" in error
    assert emulator.center_frequency == 2.4e9


def test_stream_carries_context_then_the_configured_tone():
    """Context packets state frequency and level; the data holds the tone at the right offset and level."""
    reactor = new_reactor()
    rate = 125e6 / 16
    emulator = start_emulator(reactor, tones=[(2.4e9 + 205 * rate / 1024, -30.0)],
                              reference_level=-10.0,
                              noise_floor=None, paced=False, start_time=5_000_000_000)

    @defer.inlineCallbacks
    def session():
        scpi = yield _scpi(reactor, emulator)
        yield scpi.query(":SYST:LOCK:REQ? ACQ")
        yield scpi.command(":SENSE:DEC 16; :TRACE:SPP 1024")
        data = yield _data(reactor, emulator)
        yield scpi.command(":TRACE:STREAM:START")
        yield wait_for(reactor, lambda: len(data.packets) >= 8)
        yield scpi.command(":TRACE:STREAM:STOP")
        scpi.close()
        return data.packets

    packets = run_until(reactor, session())
    context = {}
    for packet in packets[:3]:
        assert not packet.is_data
        context.update(packet.fields)
    assert context["rf_frequency"] == 2.4e9 and context["reference_level"] == -10.0
    assert context["sample_rate"] == 125e6 / 16
    data = [p for p in packets if p.is_data]
    times = [p.time_ns for p in data]
    assert times[0] == 5_000_000_000
    assert np.diff(times).tolist() == [round(1024 * 1e9 / rate)] * (len(times) - 1)
    assert [p.count for p in data[:4]] == [0, 1, 2, 3]
    assert all(p.trailer.valid_data and not p.trailer.sample_loss for p in data)
    samples = data[0].samples()
    spectrum = power_to_dbm(frame_spectra(samples[None, :], window("hann", 1024, shift=True),
                                          True), window("hann", 1024).sum(), -10.0)[0]
    peak = int(np.argmax(spectrum))
    assert peak == 512 + 205
    assert_allclose(spectrum[peak], -30.0, atol=0.05)


def test_tcp_flow_control_pauses_the_emulator():
    """
    A client that stops reading makes the emulator stop generating: in 0.3 s
    it makes no more than the kernel's socket buffers and one transport
    buffer hold, and keeps at most one transport buffer in user space.
    """
    import socket

    from twisted.internet import task

    reactor = new_reactor()
    emulator = start_emulator(reactor, paced=False)

    @defer.inlineCallbacks
    def session():
        scpi = yield _scpi(reactor, emulator)
        yield scpi.query(":SYST:LOCK:REQ? ACQ")
        data = yield _data(reactor, emulator)
        data.transport.pauseProducing()  # reads nothing from here on
        yield scpi.command(":TRACE:STREAM:START")
        yield wait_for(reactor, lambda: emulator.data_streams
                       and emulator.data_streams[0].paused)
        stream = emulator.data_streams[0]
        # Unpaced and unchecked, the emulator makes hundreds of MB in this time.
        yield task.deferLater(reactor, 0.3, lambda: None)
        server = stream.transport
        held = {
            "user": len(server.dataBuffer) - server.offset + server._tempDataLen,
            "buffer_size": server.bufferSize,
            "kernel": (server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                       + data.transport.socket.getsockopt(socket.SOL_SOCKET,
                                                          socket.SO_RCVBUF)),
        }
        made = emulator._index
        data.transport.resumeProducing()
        yield wait_for(reactor, lambda: emulator._index > made + 100_000)
        scpi.close()
        return stream, made, held

    stream, made, held = run_until(reactor, session())
    burst_bytes = stream.burst * emulator.samples_per_packet * 4
    assert stream.pauses >= 1
    assert held["user"] <= held["buffer_size"] + burst_bytes
    assert made * 4 <= held["kernel"] + held["buffer_size"] + burst_bytes


def test_a_paused_stream_generates_nothing_until_resumed():
    """While its transport has paused it, the data stream makes no packet; resumed, it goes on."""
    emulator, clock, transport = _offline_emulator(paced=True)
    emulator.execute(None, "DEC", "64")
    emulator.execute(None, "TRAC:STR:STAR", "")
    for _ in range(10):
        clock.advance(0.001)
    stream = emulator.data_streams[0]
    made = emulator._index
    assert made > 0
    stream.pauseProducing()
    for _ in range(100):
        clock.advance(0.001)
    assert emulator._index == made and stream.pauses == 1
    stream.resumeProducing()
    clock.advance(0.001)
    assert emulator._index > made


def test_discovery_answers_on_loopback():
    """A discovery query sent to the emulator's UDP port lists it."""
    reactor = new_reactor()
    emulator = start_emulator(reactor, model="WSA4000", serial="WSA-1234", firmware="4.2")
    found = run_until(reactor, discover(reactor, "127.0.0.1", emulator.ports["discovery"],
                                        wait=0.3))
    assert found == [Analyzer("127.0.0.1", "WSA4000", "WSA-1234", "4.2")]


def test_discovery_codec_rejects_other_datagrams():
    """Datagrams that are not queries or answers are recognised as such."""
    assert decode_query(encode_query()) == 2
    assert decode_query(b"hello!!!") is None and decode_query(b"") is None
    answer = encode_response("WSA5000", "S1", "1.2.3")
    assert decode_response(answer, "h") == Analyzer("h", "WSA5000", "S1", "1.2.3")
    assert decode_response(answer[:-1], "h") is None
    assert decode_response(encode_query() + answer[8:], "h") is None


def test_unknown_model_is_refused():
    """The emulator names the models it knows."""
    with pytest.raises(ValueError, match="known: WSA4000, WSA5000, R5500"):
        start_emulator(new_reactor(), model="FSW43")


@pytest.mark.parametrize("settings, message", [
    ({"center_frequency": 1e21}, "WSA5000: centre frequency 1e+21 Hz is outside"),
    ({"model": "WSA4000", "center_frequency": -1.0}, "WSA4000: centre frequency -1 Hz"),
    ({"reference_level": 1e30}, "reference level 1e+30 dBm is outside -100..50 dBm"),
    ({"tones": [(1e9, float("inf"))]}, "tone (1e+09 Hz, inf dBm)"),
    ({"tones": [(float("nan"), -20.0)]}, "tone (nan Hz, -20 dBm)"),
    ({"harmonics": [(1.5, -10.0)]}, "harmonic (1.5, -10 dBc): the order must be a whole"),
    ({"harmonics": [(10 ** 8, -10.0)]}, "harmonic (1e+08, -10 dBc)"),
    ({"noise_floor": float("nan")}, "noise floor nan dBm/Hz is outside -300..100"),
    ({"seed": -1}, "seed must be a whole number at least 0, got -1"),
])
def test_settings_out_of_range_are_refused_when_made(settings, message):
    """The emulator refuses at construction what a client could not set (or a signal that is not a number); the seed -1 was a numpy traceback."""
    from pyrf_blocks.instruments.emulator import InstrumentEmulator

    with pytest.raises(ValueError, match=re.escape(message)):
        InstrumentEmulator(new_reactor(), **settings)


def _offline_emulator(**settings):
    """An emulator on a task.Clock with a StringTransport as its data connection."""
    from twisted.internet import task
    from twisted.internet.testing import StringTransport

    from pyrf_blocks.instruments.emulator import InstrumentEmulator, _DataProtocol

    clock = task.Clock()
    emulator = InstrumentEmulator(clock, start_time=0, **settings)
    factory = protocol.ServerFactory()
    factory.emulator = emulator
    data = _DataProtocol()
    data.factory = factory
    transport = StringTransport()
    data.makeConnection(transport)
    return emulator, clock, transport


def _data_packets(transport):
    return [p for p in vrt.VRTStreamParser().feed(transport.value()) if p.is_data]


def test_paced_stream_keeps_to_device_time():
    """Paced, the emulator sends 10 ms of samples in 10 ms of its clock, not more."""
    emulator, clock, transport = _offline_emulator(paced=True)
    emulator.execute(None, "DEC", "64")
    emulator.execute(None, "TRAC:STR:STAR", "")
    packet_ns = 1024 * 1e9 / (125e6 / 64)
    for _ in range(100):
        clock.advance(0.0001)
    sent = _data_packets(transport)
    # The first packet goes out on the first tick, 0.1 ms in.
    assert 0.01e9 / packet_ns - 1 <= len(sent) <= 0.01e9 / packet_ns + 1
    assert sent[-1].time_ns <= 0.01e9 + packet_ns


def test_block_capture_sends_one_block():
    """:TRACE:BLOCK:DATA? sends exactly packets-per-block packets, then stops."""
    emulator, clock, transport = _offline_emulator(paced=False)
    emulator.execute(None, "TRAC:BLOC:PACK", "5")
    emulator.execute(None, "TRAC:BLOC:DATA?", "")
    for _ in range(10):
        clock.advance(0.001)
    assert [p.count for p in _data_packets(transport)] == [0, 1, 2, 3, 4]
