"""
The analyzer source against the emulator on real loopback sockets: the
seed's script, device timestamps, context metadata, backpressure down to
TCP, reconnection and the errors a user can cause.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from twisted.internet import defer, error as net_error

from pyrf_blocks import Graph, calibrate_block, collector, fft_block
from pyrf_blocks.instruments import R5500, WSA4000, WSA5000, thinkrf_analyzer
from pyrf_blocks.instruments.wsa import InstrumentConnectionError, InstrumentError
from pyrf_blocks.interfaces import IIQProducer
from pyrf_blocks.testing import (assert_provides, new_reactor, recording_sink, run_until,
                                 start_emulator, wait_for)

RATE = 125e6 / 16


def _until(reactor, graph, predicate):
    """Run until ``predicate()``, then stop the graph and wait for it to finish."""
    @defer.inlineCallbacks
    def scenario():
        yield wait_for(reactor, predicate)
        graph.stop()
        yield graph.done()

    return run_until(reactor, scenario())


def _ports(emulator):
    return {"scpi_port": emulator.ports["scpi"], "data_port": emulator.ports["data"]}


def test_seed_script_shows_the_emulated_tone():
    """WSA4000 → fft → calibrate: the tone's peak is within one bin and ±0.5 dB."""
    reactor = new_reactor()
    tone = 2.401e9
    emulator = start_emulator(reactor, model="WSA4000", tones=[(tone, -35.0)],
                              reference_level=-10.0, noise_floor=-140.0)
    graph = Graph(reactor)
    wsa = WSA4000("127.0.0.1", graph=graph, center_frequency=2.4e9, decimation=16,
                  **_ports(emulator))
    fft = fft_block(wsa)
    calibrate = calibrate_block(fft)
    spectrum = collector(calibrate)
    _until(reactor, graph, lambda: len(spectrum.chunks) >= 2)
    assert_provides(IIQProducer, wsa)
    chunk = spectrum.chunks[-1]
    meta = chunk.meta
    assert meta["units"] == "dBm" and meta["reference_level"] == -10.0
    assert meta["center_frequency"] == 2.4e9 and meta["sample_rate"] == RATE
    levels = chunk.data.mean(axis=0)
    peak = int(np.argmax(levels))
    frequency = meta["start_frequency"] + peak * meta["bin_width"]
    assert abs(frequency - tone) <= meta["bin_width"]
    # Off-bin by 0.07 bin: the Hann scalloping loss there is 0.02 dB.
    assert_allclose(levels[peak], -35.0, atol=0.5)


def test_chunks_carry_device_time_gap_free():
    """Chunk times come from the VRT timestamps, contiguous, with gap-free seq."""
    reactor = new_reactor()
    emulator = start_emulator(reactor, start_time=1_763_800_000_000_000_000, paced=False)
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, decimation=16, samples_per_packet=512,
                  packets_per_block=4, **_ports(emulator))
    sink = recording_sink(wsa)
    _until(reactor, graph, lambda: len(sink.chunks) >= 20)
    assert sink.problems == []
    first = sink.chunks[0]
    assert first.start == 1_763_800_000_000_000_000
    assert len(first.data) == 2048 and first.data.dtype == np.complex64
    assert [c.start for c in sink.chunks[1:]] == [c.end for c in sink.chunks[:-1]]
    assert first.end - first.start == round(2048 * 1e9 / RATE)
    assert wsa.stats["gaps"] == 0 and wsa.stats["sample_loss"] == 0
    assert first.meta["identity"] == "ThinkRF,WSA5000,EMU000001,1.0.0"


def test_settings_reach_the_instrument():
    """Centre frequency, decimation, packet size and reference level are applied by SCPI."""
    reactor = new_reactor()
    emulator = start_emulator(reactor, model="R5500", paced=False)
    graph = Graph(reactor)
    source = R5500("127.0.0.1", graph=graph, center_frequency=915e6, decimation=32,
                   samples_per_packet=256, packets_per_block=2, reference_level=-25.0,
                   **_ports(emulator))
    sink = collector(source)
    _until(reactor, graph, lambda: len(sink.chunks) >= 3)
    assert (emulator.center_frequency, emulator.decimation, emulator.samples_per_packet,
            emulator.reference_level) == (915e6, 32, 256, -25.0)
    meta = sink.chunks[-1].meta
    assert meta["center_frequency"] == 915e6 and meta["reference_level"] == -25.0
    assert meta["sample_rate"] == 125e6 / 32 and len(sink.chunks[-1].data) == 512


def test_backpressure_pauses_the_data_socket_and_loses_nothing():
    """A paused consumer pauses the data transport and, through TCP, the emulator; nothing is lost."""
    reactor = new_reactor()
    emulator = start_emulator(reactor, paced=False)
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, decimation=16, **_ports(emulator))
    sink = recording_sink(wsa, maxsize=2)

    @defer.inlineCallbacks
    def scenario():
        yield wait_for(reactor, lambda: len(sink.chunks) >= 2)
        edge = sink.input_edges[0]
        edge.pauseProducing()
        yield wait_for(reactor, lambda: emulator.data_streams
                       and emulator.data_streams[0].paused)
        assert wsa.paused
        received = wsa.stats["packets"]
        for _ in range(20):
            yield wait_for(reactor, lambda: True)
        held = wsa.stats["packets"] - received
        edge.resumeProducing()
        yield wait_for(reactor, lambda: len(sink.chunks) >= 40)
        graph.stop()
        yield graph.done()
        return held

    held = run_until(reactor, scenario())
    assert held == 0
    assert sink.problems == [] and wsa.stats["gaps"] == 0
    assert emulator.data_streams == [] or emulator.data_streams[0].pauses >= 1


def test_reconnects_after_the_data_connection_drops():
    """A dropped data connection is logged and made again; streaming resumes."""
    reactor = new_reactor()
    emulator = start_emulator(reactor, paced=False)
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, decimation=16, reconnect_delay=0.05,
                  **_ports(emulator))
    sink = collector(wsa)

    @defer.inlineCallbacks
    def scenario():
        yield wait_for(reactor, lambda: len(sink.chunks) >= 2)
        emulator.data_streams[0].transport.loseConnection()
        yield wait_for(reactor, lambda: wsa.stats["reconnects"] == 1)
        count = len(sink.chunks)
        yield wait_for(reactor, lambda: len(sink.chunks) >= count + 3)
        graph.stop()
        yield graph.done()

    run_until(reactor, scenario())
    assert wsa.stats["reconnects"] == 1


def _closed_scpi_port():
    reactor = new_reactor()
    emulator = start_emulator(reactor)
    port = emulator.ports["scpi"]
    run_until(reactor, emulator.stop())
    return port


def test_an_analyzer_never_reached_fails_at_the_first_refusal_naming_the_address():
    """No instrument on the port: the graph fails at once, naming the block and address, with no retry."""
    port = _closed_scpi_port()
    reactor = new_reactor()
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, scpi_port=port, reconnect_delay=30.0)
    collector(wsa)
    with pytest.raises(InstrumentConnectionError) as caught:
        # (A retry would wait reconnect_delay, 30 s: beyond this timeout.)
        run_until(reactor, graph.done(), timeout=10)
    assert str(caught.value).startswith(
        f"thinkrf_analyzer 'thinkrf_analyzer': cannot connect to the SCPI port "
        f"127.0.0.1:{port}: Connection was refused")
    assert "attempt" not in str(caught.value)
    assert wsa.stats["reconnects"] == 0


def test_connect_attempts_wait_for_an_analyzer_that_is_still_starting():
    """connect_attempts: the first connection is tried again; an emulator started meanwhile is reached."""
    port = _closed_scpi_port()
    reactor = new_reactor()
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, scpi_port=port, connect_attempts=20,
                  reconnect_delay=0.05, timeout=1.0)
    sink = collector(wsa)
    emulator = {}

    @defer.inlineCallbacks
    def scenario():
        yield wait_for(reactor, lambda: wsa._reconnects.failures >= 2)
        from pyrf_blocks.instruments.emulator import InstrumentEmulator
        emulator["it"] = InstrumentEmulator(reactor, paced=False)
        ports = emulator["it"].listen("127.0.0.1", port, 0, 0)
        wsa.data_port = ports["data"]
        yield wait_for(reactor, lambda: len(sink.chunks) >= 2)
        graph.stop()
        yield graph.done()
        yield emulator["it"].stop()

    run_until(reactor, scenario())
    assert len(sink.chunks) >= 2 and wsa.stats["reconnects"] == 0


def test_connect_attempts_spent_fail_naming_them():
    """connect_attempts=1 on a closed port: one retry, then the graph fails saying so."""
    port = _closed_scpi_port()
    reactor = new_reactor()
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, scpi_port=port, connect_attempts=1,
                  reconnect_delay=0.01, timeout=1.0)
    collector(wsa)
    with pytest.raises(InstrumentConnectionError,
                       match=r"thinkrf_analyzer 'thinkrf_analyzer': cannot connect to the SCPI "
                             rf"port 127\.0\.0\.1:{port}: .*refused.*; gave up after 1 "
                             r"connection attempt\(s\)"):
        run_until(reactor, graph.done())


@pytest.mark.parametrize("error, reason", [
    (net_error.TimeoutError(), "no answer within 2.5 s"),
    (net_error.DNSLookupError("lab-wsa"), "DNS lookup failed: lab-wsa."),  # (before: no name)
])
def test_a_connection_that_cannot_be_made_names_the_block_address_and_reason(error, reason):
    """A connect timeout or an unknown host name, never reached: the graph fails at once naming the block, the address and why."""
    from twisted.internet.testing import MemoryReactorClock
    from twisted.python.failure import Failure

    reactor = MemoryReactorClock()
    graph = Graph(reactor)
    wsa = WSA5000("lab-wsa", graph=graph, timeout=2.5)
    collector(wsa)
    host, port, factory, timeout, _ = reactor.tcpClients[0]
    assert (host, port, timeout) == ("lab-wsa", 37001, 2.5)
    factory.clientConnectionFailed(None, Failure(error))
    failures = []
    graph.done().addErrback(failures.append)
    assert failures and failures[0].check(InstrumentConnectionError)
    assert failures[0].getErrorMessage() == (
        f"thinkrf_analyzer 'thinkrf_analyzer': cannot connect to the SCPI port "
        f"lab-wsa:37001: {reason}")
    assert len(reactor.tcpClients) == 1 and not reactor.getDelayedCalls()


def test_a_lost_connection_is_retried_reconnect_attempts_times_then_fails():
    """Streaming, then the analyzer goes away: reconnect_attempts retries, then a failure naming them."""
    reactor = new_reactor()
    emulator = start_emulator(reactor, paced=False)
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, decimation=16, reconnect_attempts=2,
                  reconnect_delay=0.01, timeout=1.0, **_ports(emulator))
    sink = collector(wsa)

    @defer.inlineCallbacks
    def scenario():
        yield wait_for(reactor, lambda: len(sink.chunks) >= 2)
        yield emulator.stop()  # stops listening and drops the connections
        yield graph.done()

    with pytest.raises(InstrumentConnectionError,
                       match=r"thinkrf_analyzer 'thinkrf_analyzer': cannot connect to the .* "
                             r"port 127\.0\.0\.1:\d+: .*refused.*; gave up after 2 "
                             r"reconnection attempt\(s\)"):
        run_until(reactor, scenario())
    assert wsa.stats["reconnects"] == 2


def test_lock_held_by_another_client_fails_clearly():
    """A second source on the same analyzer reports the refused acquisition lock."""
    reactor = new_reactor()
    emulator = start_emulator(reactor)
    graph = Graph(reactor)
    first = WSA5000("127.0.0.1", graph=graph, decimation=16, **_ports(emulator))
    second = WSA5000("127.0.0.1", graph=graph, decimation=16, **_ports(emulator))
    collector(first)

    @defer.inlineCallbacks
    def scenario():
        yield wait_for(reactor, lambda: emulator.lock_holder is not None)
        collector(second)
        yield graph.done()

    with pytest.raises(InstrumentError, match="refused the acquisition lock"):
        run_until(reactor, scenario())


def test_settings_out_of_the_family_range_are_refused_at_once():
    """Bad settings raise ValueError naming the family and the value before connecting."""
    with pytest.raises(ValueError, match="WSA5000: decimation 3 is not supported"):
        WSA5000("192.0.2.1", graph=Graph(new_reactor()), decimation=3)
    with pytest.raises(ValueError, match="WSA5000: decimation 6 is not supported; use 1 "
                                         r"\(none\) or a power of two from 4 to 1024"):
        WSA5000("192.0.2.1", graph=Graph(new_reactor()), decimation=6)
    with pytest.raises(ValueError, match="samples per packet 100 must be a multiple of 16"):
        thinkrf_analyzer("192.0.2.1", graph=Graph(new_reactor()), samples_per_packet=100)


def test_sim_host_still_gives_the_simulated_instrument():
    """WSA4000('sim') keeps working without a network."""
    source = WSA4000("sim", graph=Graph(new_reactor()))
    assert source.type_name == "simulated_instrument"


def test_no_sink_no_connection():
    """Without a consumer the source stays idle and opens no socket."""
    reactor = new_reactor()
    graph = Graph(reactor)
    wsa = WSA5000("192.0.2.1", graph=graph)
    fft_block(wsa)
    assert not wsa.active and wsa._scpi is None
    assert list(reactor.getWriters()) == []


def test_garbage_gaps_and_sample_loss_in_the_stream():
    """Garbage is skipped, a timestamp jump starts a new chunk, lost samples are counted."""
    from twisted.internet import protocol

    from pyrf_blocks.instruments import vrt

    reactor = new_reactor()
    emulator = start_emulator(reactor)  # answers SCPI; the data come from below
    rate, spp, base = 1e6, 16, 1_000_000_000_000
    step = round(spp * 1e9 / rate)

    def packet(index, time, **trailer):
        seconds, picoseconds = vrt.timestamp_of_ns(time)
        samples = np.full(spp, (index + 1) / 64, np.complex64)
        return vrt.build_data_packet(vrt.encode_payload(samples), count=index,
                                     integer_seconds=seconds, fractional=picoseconds,
                                     trailer=vrt.Trailer(valid_data=True, **trailer))

    stream = (vrt.build_context_packet(vrt.STREAM_DIGITIZER, {"sample_rate": rate,
                                                              "reference_level": -20.0})
              + b"".join(packet(i, base + i * step) for i in range(6))
              + b"\x00garbage"
              + packet(6, base + 10**9, sample_loss=True) + packet(7, base + 10**9 + step))

    class Crafted(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(stream)

    listening = reactor.listenTCP(0, protocol.ServerFactory.forProtocol(Crafted),
                                  interface="127.0.0.1")
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, packets_per_block=4, scpi_port=emulator.ports["scpi"],
                  data_port=listening.getHost().port)
    sink = recording_sink(wsa)
    _until(reactor, graph, lambda: wsa.stats["packets"] == 8)
    assert sink.problems == []
    assert [(c.start, len(c.data)) for c in sink.chunks] == [
        (base, 64), (base + 4 * step, 32), (base + 10**9, 32)]
    assert sink.chunks[1].end == base + 6 * step
    assert_allclose(sink.data()[::spp].real, (np.arange(8) + 1) / 64)
    assert sink.chunks[0].meta["reference_level"] == -20.0
    assert (wsa.stats["gaps"], wsa.stats["sample_loss"]) == (1, 1)
