"""
Tests for composition: lazy connection, fan-out, edge policies, input
synchronisation, failures and end-of-stream.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_array_equal
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from pyrf_blocks import (
    Graph, calibrate_block, collector, fft_block, max_hold, power_block,
    simulated_instrument,
)
from pyrf_blocks.block import Block
from pyrf_blocks.edge import Edge
from pyrf_blocks.interfaces import IChunkProducer, IIQProducer, IScalarProducer
from pyrf_blocks.testing import array_source, recording_sink, run_clock, slow_sink, split_array


def sim(graph, **settings):
    settings.setdefault("noise_floor", None)
    settings.setdefault("packets_per_block", 4)
    return simulated_instrument(graph=graph, **settings)


def test_chain_without_sink_stays_idle(graph, clock):
    """wsa -> fft -> calibrate without a sink does not start the source."""
    wsa = sim(graph)
    chain = calibrate_block(fft_block(wsa))
    assert not wsa.active and not chain.active
    assert clock.getDelayedCalls() == []
    clock.advance(1)
    assert wsa.edges == ()


def test_adding_a_sink_starts_and_removing_it_stops_the_source(graph, clock):
    """A sink brings the chain to life back to the source; closing it stops the source."""
    wsa = sim(graph)
    fft = fft_block(wsa)
    sink = collector(calibrate_block(fft))
    assert wsa.active and fft.active
    clock.advance(0.01)
    assert sink.chunks
    sink.close()
    assert not wsa.active and not fft.active
    assert clock.getDelayedCalls() == []
    received = len(sink.chunks)
    clock.advance(1)
    assert len(sink.chunks) == received


def test_source_stops_only_when_its_last_sink_goes(graph, clock):
    """With two sinks, closing one keeps the source running."""
    wsa = sim(graph)
    first, second = collector(wsa), collector(wsa)
    first.close()
    assert wsa.active
    clock.advance(0.01)
    assert second.chunks and not first.chunks
    second.close()
    assert not wsa.active


def test_fan_out_shares_arrays(graph, clock):
    """One producer feeds several consumers the same array, never a copy."""
    fft = fft_block(sim(graph))
    sinks = [collector(fft) for _ in range(3)]
    clock.advance(0.01)
    assert len(sinks[0].chunks) > 0
    for a, b, c in zip(*(s.chunks for s in sinks)):
        assert np.shares_memory(a.data, b.data) and np.shares_memory(a.data, c.data)


def test_wrong_connection_names_block_interface_and_producer(graph):
    """calibrate_block given an IQ producer raises TypeError naming all three."""
    wsa = sim(graph, name="wsa")
    with pytest.raises(TypeError) as raised:
        calibrate_block(wsa, name="cal")
    message = str(raised.value)
    assert "calibrate_block 'cal'" in message
    assert "ISpectrumProducer" in message
    assert "simulated_instrument 'wsa'" in message and "IIQProducer" in message


def test_wrong_number_of_inputs_is_refused(graph):
    """A block given too few inputs says how many it takes."""
    with pytest.raises(TypeError, match="takes 2 input"):
        power_block(array_source([np.zeros(4)], kind="real", graph=graph))


def test_sink_cannot_be_consumed(graph):
    """Subscribing to a sink is refused."""
    sink = collector(sim(graph))
    with pytest.raises(TypeError, match="must provide IChunkProducer.*no producer interface"):
        collector(sink)


def test_block_policy_slow_consumer_pauses_source_and_loses_nothing(graph, clock):
    """Under `block`, a slow sink pauses the source; every chunk arrives once, in order."""
    arrays = [np.full(100, n, np.complex64) for n in range(200)]
    source = array_source(arrays, graph=graph)
    fft = fft_block(source, size=50)
    sink = slow_sink(fft, delay=0.01, maxsize=4)
    paused_seen = []
    for _ in range(5000):
        clock.advance(0.001)
        paused_seen.append(source.paused)
        if sink.finished:
            break
    assert sink.finished and any(paused_seen)
    assert [c.seq for c in sink.chunks] == list(range(200))
    values = np.concatenate([c.data for c in sink.chunks])
    assert len(values) == 400
    # Bounded memory: no queue ever held more than its bound.
    for edge in graph.edges:
        assert edge.max_depth <= edge.maxsize + 1, edge


@pytest.mark.parametrize("policy, maxsize", [("drop_oldest", 4), ("latest", None)])
def test_lossy_policies_count_every_drop(graph, clock, policy, maxsize):
    """Under drop_oldest and latest, received + dropped equals emitted, exactly."""
    arrays = [np.full(10, n, np.complex64) for n in range(300)]
    source = array_source(arrays, graph=graph)
    sink = slow_sink(source, delay=0.005, policy=policy, maxsize=maxsize)
    edge = source.edges[0]
    for _ in range(20000):
        clock.advance(0.001)
        if sink.finished:
            break
    assert sink.finished
    assert not source.paused
    assert edge.dropped > 0
    assert len(sink.chunks) + edge.dropped == 300 == edge.chunks_in
    seqs = [c.seq for c in sink.chunks]
    assert seqs == sorted(seqs) and seqs[-1] == 299
    if policy == "latest":
        assert edge.maxsize == 1


def test_slow_lossy_display_does_not_slow_a_lossless_recorder(graph, clock):
    """A `latest` display edge never pauses the source that also feeds a recorder."""
    arrays = [np.full(10, n, np.complex64) for n in range(100)]
    source = array_source(arrays, graph=graph)
    recorder = recording_sink(source)
    display = slow_sink(source, delay=1.0, policy="latest")
    run_clock(clock, graph, step=0.5)
    assert [c.seq for c in recorder.chunks] == list(range(100))
    assert recorder.problems == []
    assert len(display.chunks) < 100


def test_bad_policy_and_maxsize_are_refused(graph):
    """An unknown policy or a non-positive bound raises ValueError naming it."""
    wsa = sim(graph)
    with pytest.raises(ValueError, match="unknown edge policy 'fast'"):
        collector(wsa, policy="fast")
    with pytest.raises(ValueError, match="maxsize"):
        collector(wsa, maxsize=0)


class exploding_block(Block):
    type_name = "exploding_block"
    kind = "iq"
    requires = (IIQProducer,)

    def __init__(self, producer, after, **kwargs):
        self.after = after
        super().__init__(producer, **kwargs)

    def reset(self):
        self.seen = 0

    def compute(self, chunk):
        self.seen += 1
        if self.seen > self.after:
            raise RuntimeError("boom in the block")
        self.emit(chunk.data, chunk.start, chunk.end, chunk.rate, chunk.meta)


def test_exception_fails_completion_logs_block_and_stops_sources(graph, clock):
    """An exception in a block is logged with its name, fails done() and halts the sources."""
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        wsa = sim(graph)
        bad = exploding_block(wsa, after=3, name="bad")
        sink = collector(bad)
        outcome = run_clock(clock, graph)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert outcome.check(RuntimeError)
    assert "boom" in str(outcome.value)
    assert graph.failed_block is bad
    assert len(sink.chunks) == 3
    assert clock.getDelayedCalls() == []
    assert any("exploding_block 'bad'" in str(e.get("block")) for e in events)


class failing_source(array_source):
    type_name = "failing_source"

    def next_chunk(self):
        if self._position == 2:
            raise OSError("instrument went away")
        return super().next_chunk()


def test_exception_in_source_fails_completion(graph, clock):
    """A source whose next_chunk raises fails the graph instead of hanging it."""
    source = failing_source([np.ones(4, np.complex64)] * 5, graph=graph)
    sink = collector(source)
    outcome = run_clock(clock, graph)
    assert outcome.check(OSError)
    assert graph.failed_block is source
    assert len(sink.chunks) == 2 and not sink.finished


class named_failing_source(failing_source):
    def next_chunk(self):
        if self._position == 2:
            raise OSError(f"{self.label}: instrument went away")
        return super().next_chunk()


@pytest.mark.parametrize("source_type, name, line", [
    (failing_source, None, "failing_source failed: instrument went away"),
    (failing_source, "wsa", "failing_source 'wsa' failed: instrument went away"),
    (named_failing_source, None, "failing_source: instrument went away"),
    (named_failing_source, "wsa", "failing_source 'wsa': instrument went away"),
])
def test_a_failure_line_names_the_block_once(graph, clock, source_type, name, line):
    """failure_line names the failed block once: by its type alone when it is named after it, not again before an error that names it (before: "X 'X': ..." and "X 'x' failed: X 'x': ...")."""
    source = source_type([np.ones(4, np.complex64)] * 5, graph=graph, name=name)
    collector(source)
    outcome = run_clock(clock, graph)
    assert graph.failure_line(outcome.value) == line


def test_a_failure_line_names_a_block_fused_into_the_failed_one(clock):
    """Optimised, a hold computes the calibration fused into it: when that calibration refuses its input the line names the calibration, as the unoptimised graph's does (before: "max_hold 'hold' failed: calibrate_block 'again' ...")."""
    lines = []
    for optimise in (False, True):
        graph = Graph(clock)
        spectra = array_source([np.ones((2, 8), np.float32)] * 3, rate=1e3, kind="spectrum",
                               meta={"units": "dBm"}, graph=graph)
        hold = max_hold(calibrate_block(spectra, name="again"), name="hold")
        collector(hold)
        if optimise:
            assert [fusion.rule for fusion in graph.optimise()] == ["hold_of_calibration"]
        outcome = run_clock(clock, graph)
        assert graph.failed_block is (graph.blocks["hold"] if optimise else
                                      graph.blocks["again"])
        lines.append(graph.failure_line(outcome.value))
    assert lines[0] == lines[1]
    assert lines[0].startswith("calibrate_block 'again' needs linear power spectra")


def test_a_failure_line_without_a_failed_block_says_what_failed(graph):
    """A run that failed with no block to blame is named by the words the caller gives."""
    assert graph.failure_line(OSError("no reactor")) == "the graph failed: no reactor"
    assert graph.failure_line(OSError("no reactor"), "the pipeline") == (
        "the pipeline failed: no reactor")


def test_finite_source_ends_every_sink_and_fires_done(graph, clock):
    """A finite source gives every sink end-of-stream and done() fires with None."""
    source = array_source([np.ones(64, np.complex64)] * 5, graph=graph)
    fft = fft_block(source, size=32)
    sinks = [collector(fft), collector(calibrate_block(fft)), collector(source)]
    assert run_clock(clock, graph) is None
    assert all(s.finished for s in sinks)
    assert [len(s.chunks) for s in sinks] == [5, 5, 5]


def test_stop_ends_streams_cleanly(graph, clock):
    """graph.stop() ends a live source's stream; sinks flush and done() fires."""
    sink = collector(max_hold(calibrate_block(fft_block(sim(graph)))))
    clock.advance(0.01)
    graph.stop()
    assert run_clock(clock, graph) is None
    assert sink.finished and sink.chunks


def test_late_subscriber_to_finished_producer_gets_end_of_stream(graph, clock):
    """Subscribing to a producer that has already ended delivers end-of-stream at once."""
    source = array_source([np.ones(4, np.complex64)], graph=graph)
    first = collector(source)
    run_clock(clock, graph)
    late = collector(source)
    assert first.finished and late.finished


def test_paced_source_keeps_device_time(graph, clock):
    """A paced source emits one second of device time per second of the clock."""
    wsa = sim(graph, sample_rate=1e6, samples_per_packet=1000, packets_per_block=10)
    sink = collector(wsa)
    for _ in range(100):
        clock.advance(0.01)
    assert sink.chunks[-1].end == pytest.approx(1e9, abs=0.02e9)
    assert sum(len(c.data) for c in sink.chunks) == pytest.approx(1e6, rel=0.02)


def test_edge_statistics(graph, clock):
    """Edges count chunks and bytes through, depth and drops."""
    source = array_source([np.ones(8, np.complex64)] * 3, graph=graph)
    collector(source)
    run_clock(clock, graph)
    stats = source.edges[0].stats
    assert stats["chunks_in"] == stats["chunks_out"] == 3
    assert stats["bytes_out"] == 3 * 8 * 8
    assert stats["dropped"] == 0 and stats["depth"] == 0


def test_unique_names(graph):
    """Blocks get unique names in their graph; a taken name is refused."""
    a, b = sim(graph), sim(graph)
    assert a.name == "simulated_instrument" and b.name == "simulated_instrument1"
    fft_block(a, name="fft")
    assert fft_block(a).name == "fft_block"


def test_edge_repr_and_stop_producing(graph):
    """An edge's stopProducing detaches its consumer from the producer."""
    wsa = sim(graph)
    sink = collector(wsa)
    edge = wsa.edges[0]
    assert isinstance(edge, Edge) and "collector" in repr(edge)
    edge.stopProducing()
    assert wsa.edges == () and not wsa.active


# Synchronisation of several inputs.

cuts = st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=30)


@given(cuts, cuts)
@settings(max_examples=60, deadline=None)
def test_power_does_not_depend_on_input_chunking(voltage_cuts, current_cuts):
    """power_block's output is v·i sample by sample however v and i were cut."""
    clock = Clock()
    graph = Graph(clock)
    n, rate = 1000, 1e4
    t = np.arange(n) / rate
    voltage = (10 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)
    current = (2 * np.sin(2 * np.pi * 50 * t + 0.3)).astype(np.float32)
    v = array_source(split_array(voltage, voltage_cuts), kind="real", rate=rate, graph=graph)
    i = array_source(split_array(current, current_cuts), kind="real", rate=rate, graph=graph)
    sink = recording_sink(power_block(v, i))
    assert run_clock(clock, graph) is None
    assert sink.problems == []
    assert_array_equal(sink.data(), voltage * current)
    assert sink.chunks[0].start == 0
    assert sink.chunks[-1].end == round(n * 1e9 / rate)


def test_inputs_starting_at_different_times_align_on_the_later(graph, clock):
    """Rows of one input that no other input covers are dropped, not misaligned."""
    rate = 1e3
    voltage = np.arange(100, dtype=np.float32)
    current = np.ones(90, np.float32)
    v = array_source([voltage], kind="real", rate=rate, graph=graph)
    i = array_source([current], kind="real", rate=rate, graph=graph,
                     start_time=round(10 * 1e9 / rate))
    sink = collector(power_block(v, i))
    run_clock(clock, graph)
    assert_array_equal(sink.data(), voltage[10:])
    assert sink.chunks[0].start == 10_000_000


def test_fast_input_is_paused_while_the_other_lags(graph, clock):
    """A multi-input block pauses an input that runs ahead, so buffering stays bounded."""
    rate = 1e3
    fast = array_source([np.ones(10, np.float32)] * 100, kind="real", rate=rate, graph=graph)
    slow = array_source([np.ones(10, np.float32)] * 100, kind="real", rate=rate,
                        graph=graph, paced=True)
    power = power_block(fast, slow)
    sink = collector(power)
    clock.advance(0.0)
    clock.advance(0.05)
    assert power._sync.depth(0) <= power.input_maxsize
    run_clock(clock, graph, step=0.01)
    assert len(sink.data()) == 1000


def test_an_input_ahead_is_resumed_once_half_its_bound_is_taken(graph, clock, monkeypatch):
    """An input paused for running ahead goes on when half the bound is taken, not after every chunk the other brings."""
    events = []
    pause, resume = Edge.pauseProducing, Edge.resumeProducing
    monkeypatch.setattr(Edge, "pauseProducing", lambda edge: (events.append("pause"), pause(edge)))
    monkeypatch.setattr(Edge, "resumeProducing",
                        lambda edge: (events.append("resume"), resume(edge)))
    v, i = (array_source([np.full(10, value, np.float32)] * 160, kind="real", rate=1e3,
                         graph=graph) for value in (2.0, 3.0))
    power = power_block(v, i)
    sink = collector(power)
    assert run_clock(clock, graph) is None
    assert_array_equal(sink.data(), np.full(1600, 6.0, np.float32))
    # Sources emit 16 chunks a turn against a bound of 8: the first runs
    # ahead every turn.  Paused until 4 are taken: a pause per 4 chunks or
    # fewer (resumed as each chunk was taken, it paused for nearly every one).
    assert 0 < events.count("pause") <= 160 // 4 + 2
    assert power._sync.depth(0) == power._sync.depth(1) == 0


class _Feeder:
    """A producer that notes when it is paused and resumed."""

    def __init__(self, name, events):
        self.name, self.events = name, events

    def pauseProducing(self):
        self.events.append(("pause", self.name))

    def resumeProducing(self):
        self.events.append(("resume", self.name))


def test_inputs_ahead_pause_at_the_bound_and_resume_at_half_once_groups_are_taken():
    """InputsAhead pauses an input at the bound, resumes it at half once groups are taken (below the bound when none were), leaves an input without producer alone, and releases all when asked."""
    from pyrf_blocks.sync import InputsAhead

    events, depths = [], [0, 0, 0]
    producers = [_Feeder(0, events), _Feeder(1, events), None]
    ahead = InputsAhead(4, depths.__getitem__, producers.__getitem__)
    depths[0] = 3
    ahead.added(0, False)
    assert events == [] and not ahead.paused
    depths[0] = 4
    ahead.added(0, False)
    assert events == [("pause", 0)] and ahead.paused == {0}
    depths[0], depths[1] = 3, 1
    ahead.added(1, True)  # a group taken: resumed only at half the bound
    assert events == [("pause", 0)]
    depths[0] = 2
    ahead.added(1, True)
    assert events == [("pause", 0), ("resume", 0)] and not ahead.paused
    depths[0] = 4
    ahead.added(0, False)
    depths[0] = 3
    ahead.added(1, False)  # no group: resumed as soon as below the bound
    assert events[-2:] == [("pause", 0), ("resume", 0)]
    depths[2] = 9
    ahead.added(2, False)  # no producer (no edge yet): nothing to pause
    assert not ahead.paused
    depths[:] = [4, 4, 0]
    ahead.added(0, False)
    ahead.added(1, False)
    del events[:]
    ahead.release()
    assert sorted(events) == [("resume", 0), ("resume", 1)] and not ahead.paused


def test_scalar_interface_of_thd(graph):
    """Blocks provide the producer interface of the kind they emit."""
    from pyrf_blocks import thd_block
    block = thd_block(sim(graph))
    assert IScalarProducer.providedBy(block) and block.kind == "scalar"


def test_wait_finished_fires_when_a_sink_sees_the_end_and_can_be_cancelled():
    """Sink.wait_finished fires with the sink at its end; a cancelled wait is forgotten."""
    clock = Clock()
    graph = Graph(clock)
    sink = recording_sink(array_source([np.ones(4)] * 3, graph=graph))
    seen, cancelled = [], sink.wait_finished()
    sink.wait_finished().addCallback(seen.append)
    cancelled.cancel()
    cancelled.addErrback(lambda failure: None)
    assert run_clock(clock, graph) is None
    assert seen == [sink] and len(sink._finish_waiters) == 0
    later = []
    sink.wait_finished().addCallback(later.append)
    assert later == [sink]


def test_when_failed_fires_with_the_failing_block_without_waiting_for_sinks():
    """Graph.when_failed fires with the block that raised, whatever the sinks."""
    clock = Clock()
    graph = Graph(clock)

    class breaks(Block):
        type_name = "breaks"
        kind = "real"
        requires = (IChunkProducer,)

        def compute(self, chunk):
            raise ValueError("no")

    source = array_source([np.ones(4)] * 3, graph=graph)
    broken = breaks(source)
    recording_sink(broken)
    failed = []
    graph.when_failed().addCallback(failed.append)
    run_clock(clock, graph)
    assert failed == [broken] and graph.failure.check(ValueError)
    graph.when_failed().addCallback(failed.append)
    assert failed == [broken, broken]
