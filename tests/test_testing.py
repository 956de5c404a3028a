"""
The fakes of pyrf_blocks.testing do what their docstrings say: users test
their own blocks, sources and worker-facing code with them.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from twisted.internet import defer, protocol
from twisted.internet.error import ConnectionRefusedError
from zope.interface import Interface, implementer
from zope.interface.exceptions import Invalid

from pyrf_blocks.block import Block
from pyrf_blocks.blocks.dsp import fft_block
from pyrf_blocks.blocks.sinks import collector
from pyrf_blocks.blocks.sources import simulated_instrument
from pyrf_blocks.chunk import Chunk
from pyrf_blocks.graph import Graph
from pyrf_blocks.interfaces import IBlock, IIQProducer, ISink, ISpectrumProducer
from pyrf_blocks.testing import (
    WORKER_URL, CuttingClient, FlakyClient, WorkerPair, array_source, assert_provides,
    manual_source, new_reactor, recording_sink, run_clock, run_until, slow_sink,
    split_array, start_emulator, wait_for)


# Blocks.

def test_array_source_plays_arrays_with_exact_times_then_ends(graph, clock):
    """array_source emits each array as one chunk, times contiguous at its rate, then ends."""
    arrays = [np.arange(n, dtype=np.float32) for n in (3, 5, 2)]
    source = array_source(arrays, kind="real", rate=1e3, start_time=7, meta={"units": "V"},
                          graph=graph)
    sink = recording_sink(source)
    assert run_clock(clock, graph) is None
    assert_provides(IBlock, source)
    assert source.kind == "real" and sink.finished and sink.problems == []
    assert [(c.start, c.end) for c in sink.chunks] == [
        (7, 7 + 3_000_000), (7 + 3_000_000, 7 + 8_000_000), (7 + 8_000_000, 7 + 10_000_000)]
    assert [c.meta for c in sink.chunks] == [{"units": "V"}] * 3
    assert np.array_equal(sink.data(), np.concatenate(arrays))


def test_array_source_replays_chunks_as_they_are_and_repeats(graph, clock):
    """Chunks keep their own times, rate and meta; repeat=2 plays the list twice."""
    made = Chunk("iq", np.ones(4, np.complex64), 100, 500, 1e7, meta={"tag": 1})
    source = array_source([made], repeat=2, graph=graph)
    sink = recording_sink(source)
    assert run_clock(clock, graph) is None
    assert_provides(IIQProducer, source)
    assert [(c.start, c.end, c.rate, c.meta) for c in sink.chunks] == [
        (100, 500, 1e7, {"tag": 1})] * 2
    assert [c.seq for c in sink.chunks] == [0, 1]


def test_array_source_refuses_an_unknown_kind(graph):
    """An unknown kind raises ValueError naming it and the known ones."""
    with pytest.raises(ValueError, match="array_source: unknown kind 'audio'; known: iq"):
        array_source([np.ones(4)], kind="audio", graph=graph)


def test_manual_source_emits_numbered_samples_when_pushed(graph):
    """Each push emits one chunk at once: samples numbered on, times contiguous at rate."""
    source = manual_source(rate=1e3, graph=graph)
    sink = recording_sink(source)
    assert_provides(IIQProducer, source)
    sent = [source.push(3), source.push(2)]
    assert sink.chunks == sent and sink.problems == []
    assert np.array_equal(sink.data(), np.arange(5)) and sink.data().dtype == np.complex64
    assert [(c.start, c.end) for c in sent] == [(0, 3_000_000), (3_000_000, 5_000_000)]
    assert sent[0].meta == {"center_frequency": 1e9} and source.samples == 5
    assert not sink.finished


def test_manual_source_pushes_given_data_of_any_kind(graph):
    """With kind= and data=, a push emits that array; rows count as samples."""
    source = manual_source(kind="spectrum", rate=10.0, meta={"units": "dBm"}, graph=graph)
    sink = recording_sink(source)
    assert_provides(ISpectrumProducer, source)
    frames = np.full((2, 8), -30.0, np.float32)
    chunk = source.push(data=frames)
    assert np.array_equal(sink.data(), frames) and chunk.meta == {"units": "dBm"}
    assert (chunk.start, chunk.end) == (0, 200_000_000) and source.samples == 2


def test_manual_source_pauses_resumes_and_ends(graph):
    """A full consumer pauses the source and resumes it when drained; finish ends the stream."""
    source = manual_source(graph=graph)
    assert source.events == []
    sink = slow_sink(source, maxsize=2)
    assert source.events == ["start"] and not source.paused
    pushed = 0
    while not source.paused:
        source.push(2)
        pushed += 1
        assert pushed < 10, "the source was never paused"
    assert source.events == ["start", "pause"]
    while source.paused:
        sink.next()
    assert source.events == ["start", "pause", "resume"]
    source.finish()
    while not sink.finished:
        sink.next()
    assert len(sink.chunks) == pushed and sink.problems == []
    assert np.array_equal(sink.data(), np.arange(source.samples))


def test_manual_source_stops_when_its_last_consumer_leaves(graph):
    """Closing the only sink stops the source (its on_stop runs) and disconnects it."""
    source = manual_source(graph=graph)
    sink = recording_sink(source)
    sink.close()
    assert source.events == ["start", "stop"] and not source.active


def test_manual_source_ends_its_stream_when_the_graph_stops(graph, clock):
    """Graph.stop() stops a manual_source and ends its stream: done() fires."""
    source = manual_source(graph=graph)
    sink = recording_sink(source)
    source.push(4)
    graph.stop()
    assert run_clock(clock, graph) is None
    assert sink.finished and len(sink.chunks) == 1 and source.events[-1] == "stop"


def test_recording_sink_lists_gaps_and_overlaps(graph, clock):
    """recording_sink reports a seq gap and a chunk that starts before the previous end."""
    overlapping = [Chunk("iq", np.ones(4, np.complex64), 0, 400, 1e7),
                   Chunk("iq", np.ones(4, np.complex64), 300, 700, 1e7)]
    sink = recording_sink(array_source(overlapping, graph=graph))
    assert_provides(ISink, sink)
    assert run_clock(clock, graph) is None
    assert sink.problems == ["chunk 1 starts at 300 before the previous end 400"]

    source = manual_source(graph=graph)
    lossy = slow_sink(source, policy="drop_oldest", maxsize=1)
    for _ in range(3):
        source.push(2)
    lossy.next()
    assert [c.seq for c in lossy.chunks] == [0, 2]
    assert lossy.problems == ["seq 2 after 0"]


def test_slow_sink_with_a_delay_paces_a_block_policy_source_losing_nothing(graph, clock):
    """slow_sink(delay=) takes one chunk per delay; the source is paused and nothing is lost."""
    source = array_source([np.full(4, n, np.complex64) for n in range(20)], graph=graph)
    sink = slow_sink(source, delay=0.01, maxsize=2)
    assert_provides(ISink, sink)
    paused = []
    for _ in range(1000):
        clock.advance(0.001)
        paused.append(source.paused)
        if sink.finished:
            break
    assert sink.finished and any(paused)
    assert clock.seconds() >= 19 * 0.01
    assert [c.seq for c in sink.chunks] == list(range(20)) and sink.problems == []


def test_slow_sink_without_a_delay_takes_one_chunk_per_next(graph):
    """Without delay, slow_sink takes one chunk, then one more on each next()."""
    source = manual_source(graph=graph)
    sink = slow_sink(source, maxsize=8)
    for _ in range(3):
        source.push(2)
    assert len(sink.chunks) == 1
    sink.next()
    assert len(sink.chunks) == 2
    sink.next()
    sink.next()  # nothing waiting: the next push goes straight through
    assert len(sink.chunks) == 3
    source.push(2)
    assert len(sink.chunks) == 4


def test_split_array_cuts_and_keeps_the_rest():
    """split_array cuts at the given sizes; the last piece takes the rest."""
    array = np.arange(10)
    assert [list(p) for p in split_array(array, [3, 4])] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert [len(p) for p in split_array(array, [6, 6, 6])] == [6, 4]
    assert np.array_equal(np.concatenate(split_array(array, [1, 2, 3])), array)


def test_assert_provides_fails_on_a_missing_declaration_or_member(graph):
    """assert_provides fails for an undeclared interface and for a declared one not implemented."""
    class IThing(Interface):
        def frobnicate():
            """Do it."""

    @implementer(IThing)
    class broken:
        pass

    with pytest.raises(AssertionError, match="does not provide IThing"):
        assert_provides(IThing, manual_source(graph=graph))
    with pytest.raises(Invalid):
        assert_provides(IThing, broken())


# Running.

def test_run_clock_returns_none_when_done_and_the_failure_when_a_block_raises(graph, clock):
    """run_clock returns None for a finished graph and the Failure when a block raised."""
    recording_sink(array_source([np.ones(4, np.complex64)], graph=graph))
    assert run_clock(clock, graph) is None

    class exploding(Block):
        type_name = "exploding"
        kind = "iq"
        requires = (IIQProducer,)

        def compute(self, chunk):
            raise RuntimeError("boom")

    failing = Graph(clock)
    collector(exploding(array_source([np.ones(4, np.complex64)], graph=failing)))
    failure = run_clock(clock, failing)
    assert failure.check(RuntimeError) and str(failure.value) == "boom"


def test_run_clock_gives_up_after_its_limit(graph, clock):
    """A graph that never ends makes run_clock raise AssertionError after limit steps."""
    recording_sink(manual_source(graph=graph))
    with pytest.raises(AssertionError, match="graph not done after 50 steps of 0.01 s"):
        run_clock(clock, graph, step=0.01, limit=50)
    assert clock.seconds() == pytest.approx(0.5)


def test_run_until_runs_a_fresh_reactor_and_closes_what_is_open():
    """run_until returns the Deferred's result, then closes the ports and connections left open."""
    class greeted(protocol.Protocol):
        def connectionMade(self):
            connected.append(self)

    reactor = new_reactor()
    connected = []
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol),
                             interface="127.0.0.1")
    reactor.connectTCP("127.0.0.1", port.getHost().port,
                       protocol.ClientFactory.forProtocol(greeted))
    waited = wait_for(reactor, lambda: connected).addCallback(lambda _: "ok")
    assert run_until(reactor, waited) == "ok"
    assert not port.connected and not connected[0].transport.connected
    assert [r for r in reactor.getReaders() if r is not reactor.waker] == []
    assert reactor.getWriters() == []


def test_run_until_raises_the_failure_or_gives_up_after_its_timeout():
    """run_until re-raises the Deferred's exception, and raises AssertionError past the timeout."""
    with pytest.raises(KeyError, match="gone"):
        run_until(new_reactor(), defer.fail(KeyError("gone")))
    with pytest.raises(AssertionError, match="not done after 0.05 s"):
        run_until(new_reactor(), defer.Deferred(), timeout=0.05)


def test_wait_for_fires_once_the_predicate_holds(clock):
    """wait_for polls every interval and fires once the predicate is true."""
    state = []
    fired = []
    wait_for(clock, lambda: state, interval=0.1).addCallback(fired.append)
    clock.advance(0)
    clock.advance(0.1)
    assert fired == []
    state.append(1)
    clock.advance(0.1)
    assert fired == [None]


def test_start_emulator_serves_an_analyzer_on_free_loopback_ports():
    """start_emulator listens on free ports where a WSA5000 source reads gap-free data."""
    from pyrf_blocks.instruments import WSA5000

    reactor = new_reactor()
    emulator = start_emulator(reactor, paced=False)
    assert set(emulator.ports) >= {"scpi", "data"} and all(emulator.ports.values())
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, scpi_port=emulator.ports["scpi"],
                  data_port=emulator.ports["data"])
    sink = recording_sink(wsa)

    @defer.inlineCallbacks
    def scenario():
        yield wait_for(reactor, lambda: len(sink.chunks) >= 3)
        graph.stop()
        yield graph.done()

    run_until(reactor, scenario())
    assert len(sink.chunks) >= 3 and sink.problems == []


# Workers.

def test_worker_pair_answers_a_real_stream():
    """A remote_block of the pair's client graph receives what a source on the worker emits."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    remote = pair.remote("src", "iq")
    assert remote.url == f"{WORKER_URL}/blocks/src" and remote.graph is pair.client
    assert_provides(IIQProducer, remote)
    sink = recording_sink(remote)
    pair.pump(5)
    assert source.active and len(pair.worker.streams) == 1
    sent = [source.push(n) for n in (3, 5, 2)]
    source.finish()
    assert pair.run() is None
    assert sink.chunks == sent and sink.problems == []
    assert pair.worker.streams == {}


def test_worker_pair_requests_are_held_or_answered_at_once():
    """request() stays empty while the worker holds a poll; call() answers at once or fails."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    status, _, body = pair.call("POST", "/blocks/src/streams", json={})
    assert status == 201
    path = json.loads(body)["path"]
    held = pair.request("GET", path, params={"after": "-1", "wait": "5", "linger": "0"})
    pair.pump(10)
    assert held == []
    source.push(4)
    pair.http.flush()
    assert held[0][0] == 200
    assert pair.call("GET", "/health")[0] == 200
    with pytest.raises(AssertionError, match="GET /streams/src:main:1 was held"):
        pair.call("GET", path, params={"after": "0", "wait": "5"})


def test_worker_pair_place_runs_blocks_on_the_worker():
    """proc=pair.place() creates the block on the pair's worker; its chunks arrive here, then it is removed."""
    pair = WorkerPair()
    created = []
    create = pair.worker.create
    pair.worker.create = lambda spec: created.append(create(spec)) or created[-1]
    wsa = simulated_instrument(graph=pair.client, proc=pair.place(), paced=False, count=3,
                               seed=1)
    sink = recording_sink(fft_block(wsa, size=256))
    assert pair.run() is None
    assert [b.type_name for b in created] == ["simulated_instrument"]
    assert pair.server.blocks == {}
    assert len(sink.chunks) == 3 and sink.problems == []


def test_worker_pair_with_a_token_passes_it_from_remote_and_place():
    """With token=, bare requests get 401 while remote() and place() carry the token."""
    pair = WorkerPair(token="secret-token")
    assert pair.call("GET", "/health")[0] == 401
    source = manual_source(graph=pair.server, name="src")
    streamed = recording_sink(pair.remote("src", "iq"))
    placed = recording_sink(simulated_instrument(graph=pair.client, proc=pair.place(),
                                                 paced=False, count=2))
    pair.pump(5)
    source.push(2)
    source.finish()
    assert pair.run() is None
    assert len(streamed.chunks) == 1 and len(placed.chunks) == 2


def test_flaky_client_fails_exactly_the_first_n_requests():
    """FlakyClient refuses exactly its first N requests, of any method, then passes them on."""
    pair = WorkerPair()
    client = FlakyClient(pair.http, failures=3)
    answers = []
    for send in (client.get, client.post, client.get, client.get, client.delete):
        send(WORKER_URL + "/health").addBoth(answers.append)
    pair.http.flush()
    assert [a.type for a in answers[:3]] == [ConnectionRefusedError] * 3
    assert [a.code for a in answers[3:]] == [200, 405]
    assert (client.failed, client.passed) == (3, 2)


def test_flaky_client_fails_with_the_given_error():
    """error= makes the exception of each failed request; request() is counted like the rest."""
    pair = WorkerPair()
    client = FlakyClient(pair.http, failures=1, error=lambda: TimeoutError("slow"))
    answers = []
    client.request("GET", WORKER_URL + "/health").addBoth(answers.append)
    client.request("GET", WORKER_URL + "/health").addBoth(answers.append)
    pair.http.flush()
    assert answers[0].check(TimeoutError) and answers[1].code == 200


def test_flaky_client_is_retried_through_by_a_remote_block():
    """A remote_block over a FlakyClient retries past its failures and loses nothing."""
    pair = WorkerPair()
    array_source([np.ones(4, np.complex64)] * 3, graph=pair.server, name="src")
    client = FlakyClient(pair.http, failures=2)
    sink = recording_sink(pair.remote("src", "iq", client=client, backoff=0.01))
    assert pair.run(step=0.01) is None
    assert client.failed == 2 and len(sink.chunks) == 3 and sink.problems == []


def test_cutting_client_loses_every_nth_get_answer():
    """CuttingClient loses every N-th GET answer (ResponseFailed); other methods pass."""
    from twisted.web.client import ResponseFailed

    pair = WorkerPair()
    client = CuttingClient(pair.http, every=2)
    answers = []
    for _ in range(4):
        client.get(WORKER_URL + "/health").addBoth(answers.append)
    client.post(WORKER_URL + "/health").addBoth(answers.append)
    pair.http.flush()
    assert [getattr(a, "code", None) for a in answers] == [200, None, 200, None, 405]
    assert answers[1].check(ResponseFailed) and answers[3].check(ResponseFailed)
    assert (client.polls, client.cut) == (4, 2)


def test_a_remote_block_over_a_cutting_client_loses_nothing():
    """Answers lost by a CuttingClient are polled again: every chunk arrives once, in order."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    client = CuttingClient(pair.http, every=3)
    sink = recording_sink(pair.remote("src", "iq", client=client, backoff=0.01, linger=0))
    pair.pump(3)
    for _ in range(12):
        source.push(2)
        pair.pump(3, 0.01)
    source.finish()
    assert pair.run(step=0.01) is None
    assert client.cut >= 2 and sink.problems == []
    assert np.array_equal(sink.data(), np.arange(24))


def test_importing_testing_adds_neither_twisted_web_nor_treq():
    """import pyrf_blocks.testing adds no twisted.web, treq or OpenSSL module."""
    code = ("import sys\n"
            "heavy = lambda: {m for m in sys.modules if m.split('.')[0] in ('treq', 'OpenSSL')"
            " or m.startswith('twisted.web')}\n"
            "import pyrf_blocks\n"
            "before = heavy()\n"
            "import pyrf_blocks.testing\n"
            "print(sorted(heavy() - before))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
