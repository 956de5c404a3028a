"""
proc= placement: stand-ins for blocks that run on a worker, created there
lazily, through treq's StubTreq on a task.Clock.
"""

import numpy as np
import pytest
from zope.interface.verify import verifyObject

from pyrf_blocks.blocks.dsp import calibrate_block, decimate_block, fft_block
from pyrf_blocks.blocks.sinks import collector, printer
from pyrf_blocks.errors import ParameterError
from pyrf_blocks.blocks.sources import simulated_instrument
from pyrf_blocks.cli import main
from pyrf_blocks.block import Block, Sink
from pyrf_blocks.graph import Graph
from pyrf_blocks.interfaces import (IChunkConsumer, IIQProducer, IRealProducer,
                                    ISpectrumProducer)
from pyrf_blocks.net import Place, placed_block, remote_block
from pyrf_blocks.net.stream import ServedStream
from pyrf_blocks import registry
from pyrf_blocks.registry import register
from pyrf_blocks.testing import (WORKER_URL, CuttingClient, FlakyClient, WorkerPair,
                                 assert_provides, manual_source, recording_sink, run_clock)


SOURCE = dict(paced=False, count=5, seed=4, tones=[(1.5e6, -30.0)])


@pytest.fixture
def pair():
    return WorkerPair()


@pytest.fixture
def place(pair):
    return pair.place()


def test_a_placed_block_is_a_stand_in_with_the_block_interface(pair, place):
    """proc= returns a placed_block providing the placed type's producer interface."""
    wsa = simulated_instrument(graph=pair.client, proc=place, **SOURCE)
    fft = fft_block(wsa, size=512, proc=place)
    assert isinstance(fft, placed_block) and isinstance(wsa, placed_block)
    assert_provides(ISpectrumProducer, fft)
    assert_provides(IIQProducer, wsa)
    assert fft.type_name == "fft_block" and fft.params == {"size": 512}
    assert decimate_block(wsa, proc=place).kind == "iq"  # a pass-through block
    assert fft.inputs == (wsa,)


def test_a_placed_chain_equals_the_local_chain_and_is_created_lazily(pair, place):
    """Nothing is created until a sink consumes; then the worker's chain equals a local one, and is removed at the end."""
    created = blocks_created(pair.worker)
    wsa = simulated_instrument(graph=pair.client, proc=place, **SOURCE)
    spectra = calibrate_block(fft_block(wsa, size=512, proc=place), proc=place)
    pair.pump(20)
    assert pair.server.blocks == {}
    sink = recording_sink(spectra)
    assert pair.run() is None
    assert [b.type_name for b in created.values()] == [
        "simulated_instrument", "fft_block", "calibrate_block"]
    assert pair.server.blocks == {} and pair.worker.streams == {}
    local = Graph(pair.clock)
    expected = recording_sink(calibrate_block(fft_block(
        simulated_instrument(graph=local, **SOURCE), size=512)))
    run_clock(pair.clock, local)
    assert sink.chunks == expected.chunks
    assert sink.problems == []


def test_a_block_placed_as_input_of_two_is_created_once(pair, place):
    """Two placed consumers of one placed block share it on the worker, and the three are removed at the end."""
    created = blocks_created(pair.worker)
    wsa = simulated_instrument(graph=pair.client, proc=place, **SOURCE)
    first = recording_sink(fft_block(wsa, size=256, proc=place))
    second = recording_sink(fft_block(wsa, size=1024, proc=place))
    assert pair.run() is None
    types = sorted(b.type_name for b in created.values())
    assert types == ["fft_block", "fft_block", "simulated_instrument"]
    assert pair.server.blocks == {}
    assert len(first.chunks) == len(second.chunks) == 5


@pytest.mark.parametrize("make, message", [
    # Parameters with rules are refused by them, before placing (ParameterError).
    (lambda wsa, place: collector(wsa, keep=object(), proc=place), "keep: <object"),
    (lambda wsa, place: fft_block(wsa, window=object(), proc=place),
     "window: expected a window name"),
    (lambda wsa, place: printer(wsa, interval=0.5, format=object(), proc=place),
     "parameter format=<object"),
    (lambda wsa, place: unregistered(wsa, proc=place), "only registered block types"),
    (lambda wsa, place: calibrate_block(wsa, proc=place),
     "input 1 must provide ISpectrumProducer"),
])
def test_what_cannot_be_placed_is_refused_at_once(pair, place, make, message):
    """Non-JSON parameters (of blocks and sinks), unregistered types and wrong inputs fail when placed."""
    wsa = manual_source(graph=pair.client)
    with pytest.raises((TypeError, ParameterError), match=message):
        make(wsa, place)


class unregistered(Block):
    type_name = "unregistered"
    kind = "iq"
    requires = (IIQProducer,)


def test_served_streams_are_chunk_consumers(pair):
    """A served stream is an IChunkConsumer (verifyObject)."""
    stream = ServedStream("1", manual_source(graph=pair.server), pair.clock)
    assert verifyObject(IChunkConsumer, stream)


@pytest.mark.parametrize("linger", [0.0, 0.05])
def test_answers_lost_on_the_way_are_fetched_again_from_the_cursor(pair, linger):
    """Answers lost after the worker sent them are polled again: nothing lost or repeated."""
    source = manual_source(graph=pair.server, name="src")
    client = CuttingClient(pair.http, every=2)
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=client, graph=pair.client,
                          backoff=0.01, linger=linger)
    sink = recording_sink(remote)
    pair.pump(3)
    for _ in range(30):
        source.push(3)
        pair.pump(3, 0.01)
    source.finish()
    assert pair.run(step=0.01) is None
    assert client.cut >= 5
    assert [c.seq for c in sink.chunks] == list(range(30))
    assert np.array_equal(sink.data(), np.arange(90))


def test_the_worker_command_refuses_a_public_address_without_a_token(capsys, monkeypatch):
    """pyrf-blocks worker on 0.0.0.0 without a token exits 2 with a one-line reason."""
    monkeypatch.delenv("PYRF_BLOCKS_TOKEN", raising=False)
    assert main(["worker", "--listen", "tcp:8750:interface=0.0.0.0"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "refusing to listen on interface 0.0.0.0" in error


def test_the_worker_command_names_a_module_it_cannot_import(capsys):
    """pyrf-blocks worker --import of a missing module exits 2 naming it."""
    assert main(["worker", "--import", "no_such_blocks_module"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "cannot import 'no_such_blocks_module'" in error


def test_a_worker_that_cannot_create_a_placed_block_is_named(pair):
    """When creating a placed block keeps failing, the failure names the worker's URL."""
    client = FlakyClient(pair.http, failures=10 ** 6)
    place = Place(WORKER_URL, reactor=pair.clock, client=client, retries=2, backoff=0.01)
    recording_sink(simulated_instrument(graph=pair.client, proc=place, **SOURCE))
    failure = pair.run(step=0.01)
    assert f"worker {WORKER_URL} did not answer after 3 attempts" in str(failure.value)


def test_stopping_the_graph_ends_a_placed_source_on_its_worker_losing_nothing(pair, place):
    """graph.stop() ends a placed source on the worker: every chunk it emitted arrives, then the end."""
    wsa = simulated_instrument(graph=pair.client, proc=place, seed=4, tones=[(1.5e6, -30.0)],
                               packets_per_block=2)
    sink = recording_sink(wsa)
    pair.pump(400)
    [source] = pair.server.blocks.values()
    assert len(sink.chunks) > 0 and source.active
    pair.clock.advance(0.05)  # the worker emits; nothing has crossed yet
    assert source.output().next_seq > len(sink.chunks)
    pair.client.stop()
    assert pair.run() is None
    assert sink.finished and not source.active
    assert [c.seq for c in sink.chunks] == list(range(source.output().next_seq))



@pytest.mark.parametrize("pumps", [0, 1, 2, 3, 400])
def test_stopping_the_graph_ends_a_source_read_only_on_its_worker(pumps):
    """graph.stop() at any moment of creation ends a placed source that only placed blocks read."""
    pair = WorkerPair()
    made = {}
    create = pair.worker.create
    pair.worker.create = lambda spec: made.setdefault(spec["type"], create(spec))
    place = pair.place()
    wsa = simulated_instrument(graph=pair.client, proc=place, seed=4, packets_per_block=2)
    fft = fft_block(wsa, size=256, proc=place)
    sink = recording_sink(fft)
    there = collector(wsa, keep=1, proc=place)
    pair.pump(pumps)
    pair.client.stop()
    assert pair.run() is None  # before the fix: the source ran on, and this gave up
    assert sink.finished and there.finished
    emitted = made["fft_block"].output().next_seq if "fft_block" in made else 0
    assert [c.seq for c in sink.chunks] == list(range(emitted))
    assert all(block.ended for block in made.values())



def test_a_sink_fed_by_blocks_placed_on_the_same_worker_reads_them_there(pair, place):
    """A placed chain ending in a placed sink runs wholly on the worker: no stream comes back."""
    created = blocks_created(pair.worker)
    wsa = simulated_instrument(graph=pair.client, proc=place, **SOURCE)
    sink = collector(fft_block(wsa, size=512, proc=place), proc=place)
    assert sink.type_name == "collector" and not sink.finished
    assert pair.run() is None
    assert sink.finished
    remote = created[sink.name]
    assert pair.server.blocks == {}  # the sink, then the chain feeding it: removed
    local = Graph(pair.clock)
    expected = recording_sink(fft_block(simulated_instrument(graph=local, **SOURCE), size=512))
    run_clock(pair.clock, local)
    assert remote.chunks == expected.chunks
    assert pair.worker.streams == {}


class exploding_sink(Sink):
    """A sink that fails on its second chunk."""

    type_name = "exploding_sink"
    requires = (IIQProducer,)

    def reset(self):
        self.seen = 0

    def compute(self, chunk):
        self.seen += 1
        if self.seen == 2:
            raise RuntimeError("disk full")


@pytest.fixture
def registered_exploding_sink():
    """exploding_sink in the registry (so it can be placed) for one test only."""
    register(exploding_sink)
    yield exploding_sink
    registry._TYPES.pop(exploding_sink.type_name, None)


@pytest.mark.usefixtures("registered_exploding_sink")
def test_a_placed_sink_that_fails_fails_this_graph_naming_it(pair, place):
    """An exception in the worker's sink fails this graph's done() with the block and reason."""
    exploding_sink(simulated_instrument(graph=pair.client, proc=place, **SOURCE), proc=place)
    failure = pair.run()
    assert "exploding_sink" in str(failure.value) and "disk full" in str(failure.value)


def test_closing_a_placed_sink_removes_it_from_the_worker(pair, place):
    """close() removes the sink there, and the source that fed it stops."""
    wsa = simulated_instrument(graph=pair.client, proc=place, seed=4)
    sink = collector(wsa, proc=place)
    pair.pump(10)
    source = pair.server.blocks[wsa.remote_name]
    assert sink.remote_name in pair.server.blocks and source.active
    sink.close()
    pair.pump(10)
    assert sink.remote_name not in pair.server.blocks
    assert not source.active


def test_file_blocks_need_a_worker_that_allows_files():
    """record_block is refused (403, naming --allow-files) unless the worker allows files."""
    for allow, expected in ((False, 403), (True, 201)):
        pair = WorkerPair(allow_files=allow)
        manual_source(graph=pair.server, name="src")
        status, _, body = pair.call("POST", "/blocks", json={
            "type": "record_block", "inputs": ["src"],
            "params": {"path": "/tmp/pyrf-test-allow-files"}})
        assert status == expected, body
        if not allow:
            assert b"--allow-files" in body


# Named outputs of placed blocks.

def local_tee(tee_power, clock):
    """
    Both outputs of tee_power over the SOURCE instrument, run in one graph.
    """
    graph = Graph(clock)
    tee = tee_power(simulated_instrument(graph=graph, **SOURCE))
    main, power = recording_sink(tee), recording_sink(tee.output("power"))
    assert run_clock(clock, graph) is None
    return main, power


def blocks_created(worker):
    """
    The blocks ``worker`` creates from now on, by name, kept after their
    clients have removed them (as they do once a run is done).
    """
    created = {}
    create = worker.create

    def creating(spec):
        block = create(spec)
        created[block.name] = block
        return block
    worker.create = creating
    return created


def streams_opened(worker):
    """
    The ids of the streams ``worker`` opens from now on, as a list that grows.
    """
    opened = []
    open_stream, open_streams = worker.open_stream, worker.open_streams

    def opening(name, spec):
        stream = open_stream(name, spec)
        opened.append(stream.id)
        return stream

    def opening_together(name, spec):
        streams = open_streams(name, spec)
        opened.append([stream.id for stream in streams])
        return streams
    worker.open_stream, worker.open_streams = opening, opening_together
    return opened


def test_a_placed_blocks_outputs_each_read_their_own_stream_of_one_block(pair, place,
                                                                         tee_power):
    """stand_in.output(name) reads that output of the same worker block, created once."""
    wsa = simulated_instrument(graph=pair.client, proc=place, **SOURCE)
    tee = tee_power(wsa, proc=place, name="tee")
    power_output = tee.output("power")
    assert power_output is tee.output("power")
    assert_provides(IRealProducer, power_output)
    assert_provides(IIQProducer, tee)
    assert tee.output_kinds == {"main": "iq", "power": "real"}
    opened = streams_opened(pair.worker)
    created = blocks_created(pair.worker)
    main, power = recording_sink(tee), recording_sink(power_output)
    assert pair.run() is None
    assert opened == [["tee:main:1", "tee:power:1"]]  # in one request: they start together
    assert sorted(b.type_name for b in created.values()) == [
        "simulated_instrument", "tee_power"]
    assert pair.server.blocks == {}
    expected_main, expected_power = local_tee(tee_power, pair.clock)
    assert main.chunks == expected_main.chunks and len(main.chunks) == 5
    assert power.chunks == expected_power.chunks and len(power.chunks) == 2
    assert main.problems == power.problems == []


def test_consuming_only_another_output_creates_the_placed_block(pair, place, tee_power):
    """A placed block's other output alone brings it to life; its main output is not streamed."""
    tee = tee_power(simulated_instrument(graph=pair.client, proc=place, **SOURCE),
                    proc=place, name="tee")
    pair.pump(20)
    assert pair.server.blocks == {}
    opened = streams_opened(pair.worker)
    created = blocks_created(pair.worker)
    power = recording_sink(tee.output("power"))
    assert pair.run() is None
    assert opened == ["tee:power:1"]
    assert [c.seq for c in power.chunks] == [0, 1]
    assert "tee" in created
    assert not tee.active and tee.remote_name is None and pair.server.blocks == {}


def test_a_placed_sink_reads_another_output_of_a_block_on_its_worker(pair, place, tee_power):
    """A placed consumer of a placed block's output is connected there, by output name."""
    created = blocks_created(pair.worker)
    tee = tee_power(simulated_instrument(graph=pair.client, proc=place, **SOURCE),
                    proc=place, name="tee")
    sink = collector(tee.output("power"), proc=place)
    assert pair.run() is None and sink.finished
    remote = created[sink.name]
    assert [producer.name for producer in remote.inputs] == ["tee:power"]
    _, expected = local_tee(tee_power, pair.clock)
    assert remote.chunks == expected.chunks
    assert pair.worker.streams == {}


def test_a_placed_block_has_only_its_types_outputs(pair, place, tee_power):
    """Asking a stand-in for an output its type lacks raises, naming the block and its outputs."""
    tee = tee_power(simulated_instrument(graph=pair.client, proc=place, **SOURCE),
                    proc=place, name="tee")
    with pytest.raises(KeyError, match="tee_power 'tee' has no output 'late'; it has "
                                       "'main', 'power'"):
        tee.output("late")
    with pytest.raises(TypeError, match="input 1 must provide ISpectrumProducer"):
        calibrate_block(tee.output("power"), proc=place)


def test_a_stream_opened_for_an_output_no_longer_read_is_closed(pair, place, tee_power):
    """An output whose reader left while its stream was being opened with others does not hold the block."""
    tee = tee_power(simulated_instrument(graph=pair.client, proc=place, seed=4),
                    proc=place, name="tee")
    main = recording_sink(tee)
    power = recording_sink(tee.output("power"))
    open_streams = pair.worker.open_streams

    def opening_together(name, spec):
        streams = open_streams(name, spec)
        power.close()  # the power reader leaves before the answer reaches it
        return streams
    pair.worker.open_streams = opening_together
    pair.pump(200, 0.01)
    assert list(pair.worker.streams) == ["tee:main:1"]  # tee:power:1 was closed
    assert len(main.chunks) > 3 and power.chunks == []
    assert pair.server.blocks["tee"].output("power").edges == ()


def test_a_block_on_another_worker_reads_a_placed_blocks_other_output(tee_power):
    """A placed consumer on worker B of an output of a block placed on worker A reads it from A."""
    from treq.testing import StubTreq
    from twisted.internet.task import Clock

    from pyrf_blocks.net.worker import Worker

    clock = Clock()
    client, graph_a, graph_b = Graph(clock), Graph(clock), Graph(clock)
    worker_a = Worker(graph_a)
    http_a = StubTreq(worker_a.resource)
    worker_b = Worker(graph_b, client=http_a)
    http_b = StubTreq(worker_b.resource)
    created_a, created_b = blocks_created(worker_a), blocks_created(worker_b)
    place_a = Place("http://a", reactor=clock, client=http_a)
    place_b = Place("http://b", reactor=clock, client=http_b)
    tee = tee_power(simulated_instrument(graph=client, proc=place_a, **SOURCE),
                    proc=place_a, name="tee")
    sink = collector(tee.output("power"), proc=place_b)
    outcome = []
    client.done().addBoth(outcome.append)
    for _ in range(5000):
        if outcome:
            break
        http_a.flush()
        http_b.flush()
        clock.advance(0.001)
    assert outcome == [None]
    remote = created_b[sink.name]
    [reader] = remote.inputs
    assert (reader.remote_output, reader.url) == ("power", "http://a/blocks/tee")
    _, expected = local_tee(tee_power, clock)
    assert remote.chunks == expected.chunks
    assert reader.name == "tee.power"
    assert sorted(b.type_name for b in created_a.values()) == [
        "simulated_instrument", "tee_power"]
    assert graph_a.blocks == graph_b.blocks == {}
