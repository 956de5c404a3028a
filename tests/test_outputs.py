"""
Tests for named outputs and the block author's hooks: a block with several
streams, each consumed, checked and paced on its own; the hooks the
runtime calls and when.
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pyrf_blocks import Graph, collector
from pyrf_blocks.block import MAIN, Block, Output, Source
from pyrf_blocks.chunk import Chunk
from pyrf_blocks.interfaces import (
    IBlockHooks, IChunkProducer, IOutput, IRealProducer, IScalarProducer,
    ISpectrumProducer,
)
from pyrf_blocks.testing import array_source, assert_provides, recording_sink, run_clock


@implementer(IRealProducer)
class split_sign(Block):
    """Non-negative samples on ``main``, a count of negative ones on ``negatives``."""

    type_name = "split_sign"
    kind = "real"
    extra_outputs = {"negatives": "scalar"}
    requires = (IRealProducer,)

    def compute(self, chunk):
        self.emit(np.maximum(chunk.data, 0.0), chunk.start, chunk.end, chunk.rate,
                  chunk.meta)
        negatives = np.array([np.count_nonzero(chunk.data < 0)], np.float64)
        self.emit(negatives, chunk.start, chunk.end, chunk.rate / len(chunk.data),
                  {"units": "count"}, output="negatives")


@pytest.fixture
def graph():
    return Graph(Clock())


def ramp_source(graph, chunks=4, size=8):
    arrays = [np.arange(size, dtype=np.float64) - size / 2 + n for n in range(chunks)]
    return array_source(arrays, kind="real", rate=1e3, graph=graph), arrays


def test_outputs_provide_their_own_interfaces(graph):
    """Each output provides the producer interface of its kind, verified, and names its block."""
    block = split_sign(ramp_source(graph)[0])
    assert list(block.outputs) == [MAIN, "negatives"]
    main, negatives = block.output(), block.output("negatives")
    assert_provides(IOutput, negatives)
    assert_provides(IScalarProducer, negatives)
    assert_provides(IRealProducer, main)
    assert not IRealProducer.providedBy(negatives)
    assert_provides(IRealProducer, block)
    verifyObject(IBlockHooks, block)
    assert negatives.block is block and negatives.name == f"{block.name}:negatives"
    assert main.name == block.name
    assert "output 'negatives'" in negatives.label


def test_connecting_an_output_checks_its_interface_at_construction(graph):
    """A consumer that needs another kind than an output's is refused at once, naming the output."""
    from pyrf_blocks import calibrate_block
    block = split_sign(ramp_source(graph)[0])
    with pytest.raises(TypeError, match="ISpectrumProducer.*output 'negatives'.*IScalarProducer"):
        calibrate_block(block.output("negatives"))


def test_unknown_output_names_the_ones_that_exist(graph):
    """Asking for an output a block does not have lists those it has."""
    block = split_sign(ramp_source(graph)[0])
    with pytest.raises(KeyError, match="no output 'late'; it has 'main', 'negatives'"):
        block.output("late")


def test_a_consumer_of_any_output_brings_the_block_to_life(graph):
    """Lazy connection: consuming only a side output starts the chain; closing it stops it."""
    source, arrays = ramp_source(graph)
    block = split_sign(source)
    assert not block.active and not source.active
    counts = recording_sink(block.output("negatives"))
    assert block.active and source.active
    assert run_clock(graph.reactor, graph) is None
    assert [c.data[0] for c in counts.chunks] == [np.count_nonzero(a < 0) for a in arrays]
    assert counts.problems == []
    counts.close()
    assert not block.active and not source.active


def test_each_output_numbers_its_own_chunks_and_ends_with_the_block(graph):
    """Both outputs carry their own gap-free seq from 0, and both end when the input ends."""
    source, arrays = ramp_source(graph, chunks=5)
    block = split_sign(source)
    values = recording_sink(block)
    counts = recording_sink(block.output("negatives"))
    assert run_clock(graph.reactor, graph) is None
    assert [c.seq for c in values.chunks] == list(range(5))
    assert [c.seq for c in counts.chunks] == list(range(5))
    assert values.finished and counts.finished
    assert_array_equal(values.data(), np.maximum(np.concatenate(arrays), 0))
    assert {c.kind for c in counts.chunks} == {"scalar"}
    assert block.output("negatives").next_seq == 5


def test_every_output_counts_the_rows_and_device_time_metrics_report(graph):
    """emit(), like forward() and a source's chunks, counts each output's rows and last end time (what /metrics reports); emit() once skipped both."""
    source, arrays = ramp_source(graph, chunks=5, size=8)
    block = split_sign(source)
    values = recording_sink(block)
    counts = recording_sink(block.output("negatives"))
    assert run_clock(graph.reactor, graph) is None
    for output, sink in ((block.output(), values), (block.output("negatives"), counts),
                         (source.output(), None)):
        assert output.rows == 5 * (8 if output is not block.output("negatives") else 1)
        assert output.device_end == (sink or values).chunks[-1].end


def test_a_full_side_output_pauses_the_whole_block_losslessly(graph):
    """A slow consumer of one output pauses the block (and its source); nothing is lost on either."""
    source, arrays = ramp_source(graph, chunks=40)
    block = split_sign(source)
    values = collector(block)
    slow = collector(block.output("negatives"), maxsize=2)
    edge = slow.input_edges[0]
    edge.pauseProducing()
    graph.reactor.advance(0.01)
    assert block.paused and source.paused
    assert len(values.chunks) < 40
    edge.resumeProducing()
    assert run_clock(graph.reactor, graph) is None
    assert len(values.chunks) == 40 and len(slow.chunks) == 40


def test_forward_keeps_the_seq_of_a_relayed_chunk_and_refuses_going_back(graph):
    """forward() re-emits a chunk with its own seq; the output continues from it; older seqs are refused."""

    @implementer(IRealProducer)
    class relay(Source):
        type_name = "relay"
        kind = "real"

    block = relay(graph=graph)
    sink = collector(block)
    for seq in (3, 4, 9):
        block.forward(Chunk("real", np.zeros(2), seq * 10, seq * 10 + 10, 200.0, seq))
    assert [c.seq for c in sink.chunks] == [3, 4, 9]
    assert block.output().next_seq == 10
    with pytest.raises(ValueError, match="seq 5 after 9"):
        block.forward(Chunk("real", np.zeros(2), 0, 10, 200.0, 5))
    with pytest.raises(ValueError, match="emits 'real' chunks, not 'scalar'"):
        block.forward(Chunk("scalar", np.zeros(2), 0, 10, 200.0, 11))


def test_hooks_are_called_in_order():
    """The runtime calls reset, on_start, on_pause, on_resume and on_stop when it should, and nothing else."""
    calls = []

    @implementer(IRealProducer)
    class traced(Source):
        type_name = "traced"
        kind = "real"

        def reset(self):
            calls.append("reset")

        def on_start(self):
            calls.append("start")

        def on_stop(self):
            calls.append("stop")

        def on_pause(self):
            calls.append("pause")

        def on_resume(self):
            calls.append("resume")

    graph = Graph(Clock())
    source = traced(graph=graph)
    verifyObject(IBlockHooks, source)
    assert calls == []
    sink = collector(source)
    assert calls == ["reset", "start"]
    sink.input_edges[0].pauseProducing()
    source.pauseProducing()  # a second pause of the same producer: counted, no hook
    source.resumeProducing()
    sink.input_edges[0].resumeProducing()
    assert calls == ["reset", "start", "pause", "resume"]
    sink.close()
    assert calls[-1] == "stop" and not source.active


def test_output_is_an_ichunkproducer_for_generic_consumers(graph):
    """A sink that takes any producer takes an output, and the output's edge stats are its own."""
    block = split_sign(ramp_source(graph)[0])
    side = block.output("negatives")
    assert IChunkProducer.providedBy(side) and isinstance(side, Output)
    sink = collector(side)
    assert side.edges == (sink.input_edges[0],)
    assert block.edges == side.edges
    assert not ISpectrumProducer.providedBy(side)


@implementer(IRealProducer)
class threshold_events(Block):
    """Samples above a threshold, as records on the 'events' output."""

    type_name = "threshold_events"
    kind = "real"
    extra_outputs = {"events": "records"}
    requires = (IRealProducer,)

    def compute(self, chunk):
        self.emit(chunk.data, chunk.start, chunk.end, chunk.rate, chunk.meta)
        above = np.flatnonzero(chunk.data > 2.5)
        times = [chunk.time_of(int(i)) for i in above]
        self.emit_records(times, chunk.data[above], chunk.start, chunk.end,
                          {"units": "V"}, output="events")


def test_records_on_a_side_output_keep_device_time_and_watermark(graph):
    """emit_records sends time-stamped rows, each chunk covering its input's range (empty ones too)."""
    source, arrays = ramp_source(graph, chunks=3, size=8)
    block = threshold_events(source)
    events = recording_sink(block.output("events"))
    collector(block)
    assert run_clock(graph.reactor, graph) is None
    assert [c.kind for c in events.chunks] == ["records"] * 3
    rows = np.concatenate([c.data for c in events.chunks])
    times = np.concatenate([c.times for c in events.chunks])
    samples = np.concatenate(arrays)
    expected = np.flatnonzero(samples > 2.5)
    assert_array_equal(rows, samples[expected])
    assert_array_equal(times, [round(i * 1e9 / 1e3) for i in expected])
    assert [c.end for c in events.chunks] == [8_000_000, 16_000_000, 24_000_000]
    assert events.problems == []
    with pytest.raises(ValueError, match="not records"):
        block.emit_records([0], [1.0])


def test_records_emitted_as_ordered_are_the_same_chunks_and_still_checked(graph):
    """emit_records(ordered=True) sends the chunk the checking path makes; rows outside its range or of another count still fail."""
    source, arrays = ramp_source(graph, chunks=3, size=8)
    block = threshold_events(source)
    events = recording_sink(block.output("events"))
    collector(block)
    assert run_clock(graph.reactor, graph) is None
    times = np.array([1_000_000, 5_000_000], np.int64)
    values = np.array([1.0, 2.0])
    checked = block.emit_records(times, values, 0, 8_000_000, {"units": "V"}, output="events")
    ordered = block.emit_records(times, values, 0, 8_000_000, {"units": "V"}, output="events",
                                 ordered=True)
    assert ordered == checked.replace(seq=ordered.seq) and ordered.seq == checked.seq + 1
    assert not ordered.data.flags.writeable and not ordered.times.flags.writeable
    with pytest.raises(ValueError, match="inside the chunk's range"):
        block.emit_records(times, values, 2_000_000, 8_000_000, output="events", ordered=True)
    with pytest.raises(ValueError, match="2 times but 1 rows"):
        block.emit_records(times, values[:1], 0, 8_000_000, output="events", ordered=True)


def test_a_polled_source_plays_records_chunks(graph):
    """array_source replays ready-made records chunks with its own seq, times untouched."""
    chunks = [Chunk.records([10, 20], [1.0, 2.0], 0, 30), Chunk.records([], np.zeros(0), 30, 60),
              Chunk.records([61], ["text"], 60, 70)]
    source = array_source(chunks, kind="records", graph=graph)
    sink = recording_sink(source)
    assert run_clock(graph.reactor, graph) is None
    assert [c.seq for c in sink.chunks] == [0, 1, 2]
    assert [list(c.times) for c in sink.chunks] == [[10, 20], [], [61]]
    assert sink.chunks[2].data[0] == "text" and sink.problems == []
