"""
State and recovery without processes: a graph captured at any consistent
cut and restored into a fresh graph goes on exactly as the uninterrupted one;
the cluster store fences and upserts; array state packs losslessly.
"""

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import Graph, calibrate_block, fft_block, max_hold, simulated_instrument
from pyrf_blocks.cluster.runner import capture, quiescent, restore
from pyrf_blocks.cluster.store import ClusterStore
from pyrf_blocks.errors import Fenced
from pyrf_blocks.interfaces import IBlock, ISink, IStateful
from pyrf_blocks.state import pack_array, unpack_array
from pyrf_blocks.testing import assert_provides, new_reactor, recording_sink


def chain(graph, count):
    source = simulated_instrument(seed=7, count=count, paced=True, sample_rate=51200,
                                  samples_per_packet=64, packets_per_block=4,
                                  tones=((3000, -30), (5000, -60)), noise_floor=-110,
                                  graph=graph, name="wsa")
    hold = max_hold(calibrate_block(fft_block(source, size=64, graph=graph, name="fft"),
                                    graph=graph, name="cal"), graph=graph, name="hold")
    return recording_sink(hold, graph=graph, name="sink")


def run_chunks(clock, graph, sink, chunks):
    while len(sink.chunks) < chunks and not sink.finished:
        clock.advance(0.001)


@given(st.integers(1, 29))
@settings(max_examples=25, deadline=None)
def test_restored_graph_goes_on_exactly(cut):
    """Capture after any chunk, restore into a new graph: the outputs equal the uninterrupted run's."""
    clock = Clock()
    whole = chain(Graph(clock), 30)
    run_chunks(clock, whole.graph, whole, 30)

    clock = Clock()
    first = chain(Graph(clock), 30)
    run_chunks(clock, first.graph, first, cut)
    assert quiescent(first.graph)
    state = msgpack.unpackb(msgpack.packb(capture(first.graph), use_bin_type=True))
    first.graph.stop()

    clock = Clock()
    second = chain(Graph(clock), 30)
    restore(second.graph, state)
    run_chunks(clock, second.graph, second, 30 - cut)
    assert len(first.chunks) == cut
    got = first.chunks + second.chunks
    assert [c.seq for c in got] == list(range(30))
    for a, b in zip(whole.chunks, got):
        assert (a.start, a.end, a.seq) == (b.start, b.end, b.seq)
        assert_array_equal(a.data, b.data)


def power_chain(graph, count):
    """V and I -> P -> 100 ms windows, per-cycle RMS of V, whole-run average of P."""
    from pyrf_blocks import average, cycle_rms, power_block, waveform_source, window_block

    common = dict(sample_rate=5000, samples_per_chunk=250, count=count, paced=True,
                  graph=graph, start_time=1774742400000000000)
    v = waveform_source(amplitude=325, harmonics=[(3, 0.03)], noise=0.5, seed=1,
                        name="V", **common)
    i = waveform_source(amplitude=10, phase=-30, noise=0.01, seed=2, name="I", **common)
    p = power_block(v, i, graph=graph, name="P")
    windows = window_block(p, every="100ms", stats=["mean", "max", "count"], graph=graph,
                           name="windows")
    cycles = cycle_rms(v, graph=graph, name="cycles")
    mean = average(p, graph=graph, name="mean")
    return [recording_sink(b, graph=graph, name=f"sink_{b.name}")
            for b in (windows, cycles, mean)]


@given(st.integers(1, 19))
@settings(max_examples=15, deadline=None)
def test_restored_power_chain_goes_on_exactly(cut):
    """V, I, power, windows, cycles, average: restored after any chunk, outputs equal the uninterrupted run's."""
    def run(sinks, clock, chunks):
        source = sinks[0].graph.blocks["V"]
        while source.outputs["main"].next_seq < chunks and not all(s.finished for s in sinks):
            clock.advance(0.001)
        for _ in range(5):
            clock.advance(0.001)

    clock = Clock()
    whole = power_chain(Graph(clock), 20)
    run(whole, clock, 10 ** 9)

    clock = Clock()
    first = power_chain(Graph(clock), 20)
    run(first, clock, cut)
    assert quiescent(first[0].graph)
    state = msgpack.unpackb(msgpack.packb(capture(first[0].graph), use_bin_type=True))
    first[0].graph.stop()

    clock = Clock()
    second = power_chain(Graph(clock), 20)
    restore(second[0].graph, state)
    run(second, clock, 10 ** 9)
    for a, b, c in zip(whole, first, second):
        # The stopped first run flushed what it held: keep only what it had
        # emitted before the cut (the restored run emits the rest again).
        got = [x for x in b.chunks if x.seq < state["blocks"][b.inputs[0].name]["seq"]["main"]]
        got += c.chunks
        assert [x.seq for x in got] == [x.seq for x in a.chunks], a.name
        for x, y in zip(a.chunks, got):
            assert (x.start, x.end) == (y.start, y.end)
            assert_array_equal(x.times, y.times)
            assert_array_equal(x.data, y.data)


def test_a_block_aligning_inputs_is_not_quiescent(clock):
    """While a two-input block holds one input's chunk, no snapshot may be taken."""
    from pyrf_blocks import power_block
    from pyrf_blocks.testing import manual_source

    graph = Graph(clock)
    v = manual_source("real", rate=10.0, graph=graph)
    i = manual_source("real", rate=10.0, graph=graph)
    recording_sink(power_block(v, i, graph=graph), graph=graph)
    assert quiescent(graph)
    v.push(data=np.ones(4, np.float32))
    assert not quiescent(graph)
    i.push(data=np.ones(4, np.float32))
    assert quiescent(graph)


def test_simulated_instrument_is_stateful():
    """The simulator provides IStateful and its state survives msgpack."""
    source = simulated_instrument(seed=3, graph=Graph(Clock()))
    assert_provides(IStateful, source)
    state = source.get_state()
    assert msgpack.unpackb(msgpack.packb(state)) == state


def test_restore_refuses_a_snapshot_of_another_pipeline(clock):
    """A snapshot naming a block the graph lacks is refused, naming it."""
    graph = Graph(clock)
    chain(graph, 3)
    state = capture(graph)
    state["blocks"]["ghost"] = {"seq": {}, "ended": False}
    with pytest.raises(ValueError, match="'ghost'"):
        restore(graph, state)


def test_pack_array_round_trips():
    """Arrays of any plain dtype and shape come back equal, writable."""
    for array in (np.arange(12, dtype="<f4").reshape(3, 4), np.array([1 + 2j], ">c16"),
                  np.zeros((0, 5), np.int16)):
        back = unpack_array(msgpack.unpackb(msgpack.packb(pack_array(array))))
        assert back.dtype == array.dtype and back.flags.writeable
        assert_array_equal(back, array)
    assert unpack_array(pack_array(None)) is None
    with pytest.raises(TypeError):
        pack_array(np.zeros(2, dtype=[("a", "f4")]))


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server for this module."""
    from pyrf_blocks.testing.servers import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def cluster_store(request, tmp_path):
    """An empty cluster store of each backend."""
    if request.param == "sqlite":
        made = ClusterStore(tmp_path / "s.sqlite")
    else:
        import psycopg

        from pyrf_blocks.cluster.store import PostgresClusterStore

        server = request.getfixturevalue("postgres")
        name = f"cluster_{tmp_path.name.replace('-', '_').lower()[-40:]}"
        with psycopg.connect(server.url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        made = PostgresClusterStore(server.url.rsplit("/", 1)[0] + "/" + name)
    yield made
    made.close()


def test_store_fences_older_revisions(cluster_store):
    """After a takeover at a newer revision, the old owner's writes and snapshots are refused."""
    store = cluster_store
    assert store.take_over("c", 5) is None
    store.write_results("c", 5, "out", [(0, b"a"), (1, b"b")])
    store.save_snapshot("c", 5, {"at": 2})
    assert store.take_over("c", 9) == {"at": 2}
    with pytest.raises(Fenced):
        store.write_results("c", 5, "out", [(2, b"late")])
    with pytest.raises(Fenced):
        store.save_snapshot("c", 5, {"at": 3})
    store.write_results("c", 9, "out", [(1, b"b"), (2, b"c")])  # a replay overwrites
    assert store.results("c", "out") == [(0, b"a"), (1, b"b"), (2, b"c")]
    assert store.snapshot_info()["c"][0] == 5


def test_result_store_is_a_sink(tmp_path):
    """result_store provides IBlock and ISink and writes every chunk, by seq."""
    from pyrf_blocks import result_store as sink_type

    graph = Graph(new_reactor())
    source = simulated_instrument(seed=1, count=5, paced=False, graph=graph)
    sink = sink_type(source, path=str(tmp_path / "r.sqlite"), computation="c", graph=graph)
    assert_provides(IBlock, sink)
    assert_provides(ISink, sink)
    graph.run()
    assert [key for key, _ in ClusterStore(tmp_path / "r.sqlite").results("c", sink.name)] == \
        list(range(5))


def test_result_store_outside_a_cluster_needs_a_path(clock):
    """Without a cluster and without path, construction says what to give."""
    from pyrf_blocks import result_store as sink_type

    graph = Graph(clock)
    with pytest.raises(ValueError, match="give path"):
        sink_type(simulated_instrument(graph=graph), graph=graph)


def test_a_chain_that_had_ended_does_not_flush_again_when_restored():
    """A snapshot taken after one chain ended (another runs on): restored, its aggregator does not put out its final value a second time."""
    from pyrf_blocks import average, waveform_source

    def make(clock):
        graph = Graph(clock)
        common = dict(sample_rate=1000, samples_per_chunk=100, paced=True, graph=graph,
                      start_time=10 ** 18)
        ended = average(waveform_source(amplitude=10, count=3, name="A", **common),
                        graph=graph, name="mean")
        return (graph, recording_sink(ended, graph=graph, name="means"),
                recording_sink(waveform_source(amplitude=5, count=30, name="B", **common),
                               graph=graph, name="other"))

    clock = Clock()
    graph, means, other = make(clock)
    state = None
    while not other.finished:
        clock.advance(0.001)
        if state is None and means.finished and quiescent(graph):
            state = msgpack.unpackb(msgpack.packb(capture(graph), use_bin_type=True))
    assert state["blocks"]["mean"]["ended"] and not state["blocks"]["other"]["ended"]
    assert [c.seq for c in means.chunks] == [0]

    clock = Clock()
    graph, means, other_again = make(clock)
    restore(graph, state)
    while not (means.finished and other_again.finished):
        clock.advance(0.001)
    assert means.chunks == []  # (it put out seq 1, the same mean again, before the fix)
    assert other_again.chunks[0].seq == state["blocks"]["B"]["seq"]["main"]
