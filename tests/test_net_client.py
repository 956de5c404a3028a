"""
The consuming side of a cross-process edge: remote_block polling a worker
through treq's StubTreq on a task.Clock.
"""

import numpy as np
import pytest
from twisted.logger import LogLevel

from pyrf_blocks.blocks.dsp import calibrate_block, fft_block
from pyrf_blocks.blocks.sources import simulated_instrument
from pyrf_blocks.graph import Graph
from pyrf_blocks.interfaces import IIQProducer, IRealProducer, ISpectrumProducer
from pyrf_blocks.net import WorkerUnreachable, remote_block
from pyrf_blocks.net.client import RemoteError
from pyrf_blocks.testing import (WORKER_URL, FlakyClient, WorkerPair, array_source,
                                 assert_provides, manual_source, recording_sink, run_clock,
                                 slow_sink)


def instrument(graph, **kwargs):
    return simulated_instrument(graph=graph, name="wsa", paced=False, count=6,
                                seed=3, tones=[(1e6, -20.0)], **kwargs)


def test_remote_block_provides_the_remote_producer_interface():
    """A remote_block is a producer of its kind, verified with verifyObject."""
    pair = WorkerPair()
    block = remote_block(WORKER_URL + "/blocks/x", "spectrum", client=pair.http, graph=pair.client)
    assert_provides(ISpectrumProducer, block)
    assert_provides(IIQProducer, remote_block(WORKER_URL + "/blocks/y", "iq", graph=pair.client))


def test_a_split_chain_gives_the_same_spectra_as_one_graph():
    """instrument -> fft on the worker, calibrate here: equal to the local chain."""
    pair = WorkerPair()
    fft_block(instrument(pair.server), name="fft", graph=pair.server)
    remote = remote_block(WORKER_URL + "/blocks/fft", "spectrum", client=pair.http,
                          graph=pair.client)
    split = recording_sink(calibrate_block(remote))
    assert pair.run() is None

    local_graph = Graph(pair.clock)
    local = recording_sink(calibrate_block(fft_block(instrument(local_graph))))
    assert run_clock(pair.clock, local_graph) is None
    assert split.problems == []
    assert len(split.chunks) == 6
    assert [c.meta for c in split.chunks] == [c.meta for c in local.chunks]
    assert [(c.start, c.end, c.rate) for c in split.chunks] == \
        [(c.start, c.end, c.rate) for c in local.chunks]
    np.testing.assert_array_equal(split.data(), local.data())


def test_nothing_streams_until_something_consumes_the_remote_block():
    """Lazy connection holds across the boundary: no sink, no stream, no source."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http, graph=pair.client)
    fft = fft_block(remote, size=8)
    pair.pump(50)
    assert not source.active and pair.worker.streams == {}
    sink = recording_sink(fft)
    pair.pump(5)
    assert source.active and len(pair.worker.streams) == 1
    sink.close()
    pair.pump(5)
    assert not source.active and pair.worker.streams == {}
    assert not remote.active


def test_a_slow_consumer_pauses_the_remote_producer():
    """Backpressure crosses: the worker's backlog stays bounded and the source pauses."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http, graph=pair.client,
                          remote_maxsize=4, maxsize=2)
    sink = slow_sink(remote, maxsize=2)
    pair.pump(5)
    pushed = 0
    while not source.paused:
        source.push(2)
        pushed += 1
        pair.pump(2)
        assert pushed < 50, "the source was never paused"
    stream = next(iter(pair.worker.streams.values()))
    assert stream.stats["backlog"] <= 4
    for _ in range(pushed):
        sink.next()
        pair.pump(3)
        while not source.paused and source.samples < 2 * 40:
            source.push(2)
            pair.pump(2)
    source.finish()
    for _ in range(200):
        sink.next()
        pair.pump(2)
    assert [c.seq for c in sink.chunks] == list(range(source.samples // 2))
    assert np.array_equal(np.concatenate([c.data for c in sink.chunks]),
                          np.arange(source.samples))
    assert stream.stats["dropped"] == 0 and remote.dropped == 0


def test_drops_on_the_worker_are_visible_here():
    """A drop_oldest stream: the gap in seq and the worker's count both reach the reader."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http, graph=pair.client,
                          remote_policy="drop_oldest", remote_maxsize=2)
    sink = slow_sink(remote, maxsize=1)
    pair.pump(5)
    for _ in range(12):
        source.push(2)
    source.finish()
    for _ in range(40):
        sink.next()
        pair.pump(2)
    assert sink.finished
    assert remote.dropped > 0
    assert remote.remote_dropped == remote.dropped
    assert next(iter(pair.worker.streams.values()), None) is None  # closed at the end
    assert len(sink.chunks) + remote.dropped == 12


def test_refused_connections_are_retried_with_backoff(logged):
    """Errors are logged clearly and retried after doubling delays; then data flows."""
    pair = WorkerPair()
    array_source([np.ones(4, np.complex64)] * 3, graph=pair.server, name="src")
    client = FlakyClient(pair.http, failures=3)
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=client, graph=pair.client,
                          backoff=0.1, max_backoff=0.3)
    sink = recording_sink(remote)
    assert pair.run(step=0.01) is None
    assert len(sink.chunks) == 3 and sink.problems == []
    retries = [e for e in logged if e.get("log_level") == LogLevel.error
               and "retry" in e.get("log_format", "")]
    assert [e["delay"] for e in retries] == [0.1, 0.2, 0.3]
    assert "worker http://worker failed" in retries[0]["log_format"].format(**retries[0])


def test_a_worker_that_never_returns_fails_the_graph_naming_it(logged):
    """After the retry limit the completion Deferred fails with the worker's URL."""
    pair = WorkerPair()
    client = FlakyClient(pair.http, failures=10 ** 6)
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=client, graph=pair.client,
                          retries=4, backoff=0.1, max_backoff=1.0)
    recording_sink(remote)
    failure = pair.run(step=0.05)
    assert failure.check(WorkerUnreachable)
    assert "worker http://worker did not answer after 5 attempts" in str(failure.value)
    assert not remote.active or remote._busy is None
    pair.pump(100, 0.1)
    assert client.failed == 5  # nothing more is tried


def test_retries_and_backoff_set_after_the_sink_connected_are_honoured(logged):
    """remote_block.retries (backoff, max_backoff) set once its sink started it count at the next failure, as the constructor's do."""
    pair = WorkerPair()
    client = FlakyClient(pair.http, failures=10 ** 6)
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=client, graph=pair.client,
                          retries=8, backoff=0.1, max_backoff=1.0)
    recording_sink(remote)
    # The sink started it: its first attempt failed, the retry is due in 0.1 s.
    assert remote.active and client.failed == 1
    remote.retries, remote.backoff, remote.max_backoff = 2, 0.25, 0.25
    assert (remote.retries, remote.backoff, remote.max_backoff) == (2, 0.25, 0.25)
    failure = pair.run(step=0.05)
    assert failure.check(WorkerUnreachable)
    assert "worker http://worker did not answer after 3 attempts" in str(failure.value)
    delays = [e["delay"] for e in logged if "retry" in e.get("log_format", "")]
    assert delays == [0.1, 0.25]  # (before: 8 retries, 0.1 s doubling)
    assert client.failed == 3


def retry_lines(logged):
    return [e["log_format"].format(**e) for e in logged if "retry" in e.get("log_format", "")]


def test_a_worker_never_reached_fails_at_once_with_no_connect_attempts(logged):
    """connect_attempts=0: the first refused connection fails the graph naming the worker, with no retry (before: 8 retries over 9 s)."""
    pair = WorkerPair()
    client = FlakyClient(pair.http, failures=10 ** 6)
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=client, graph=pair.client,
                          connect_attempts=0)
    sink = recording_sink(remote)
    failure = pair.run(step=0.01)
    assert failure.check(WorkerUnreachable)
    assert str(failure.value) == ("remote_block 'remote_block': cannot reach the worker "
                                  "http://worker: Connection was refused by other side: "
                                  "127.0.0.1:9.")
    assert client.failed == 1 and retry_lines(logged) == [] and not sink.finished


def test_a_failed_graph_stops_reading_its_other_workers_streams(logged):
    """When the graph fails (here: one worker never reached), every other stream read from a worker stops being polled and is closed there, instead of being read until the process exits."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    reader = FlakyClient(pair.http, failures=0)
    alive = remote_block(WORKER_URL + "/blocks/src", "iq", client=reader, graph=pair.client)
    recording_sink(alive)
    while not source.active:
        pair.pump(1, 0.01)
    source.push(4)
    pair.pump(5, 0.01)
    recording_sink(remote_block(WORKER_URL + "/blocks/gone", "iq", graph=pair.client,
                                client=FlakyClient(pair.http, failures=10 ** 6),
                                connect_attempts=0))
    failure = pair.run(step=0.01)
    assert failure.check(WorkerUnreachable)
    pair.pump(20, 0.5)  # (its long polls would have been answered and asked again)
    asked = reader.passed
    pair.pump(20, 0.5)
    assert reader.passed == asked
    assert not source.active  # its stream was closed on the worker
    assert retry_lines(logged) == []


def test_a_connection_lost_mid_answer_is_said_in_words(logged):
    """A failure that wraps others (twisted.web's ResponseFailed: the connection lost mid-answer) is said by their messages, each once, not as the repr of a list of Failures."""
    from twisted.internet.error import ConnectionLost
    from twisted.python.failure import Failure
    from twisted.web.client import ResponseFailed

    pair = WorkerPair()
    client = FlakyClient(pair.http, failures=10 ** 6, error=lambda: ResponseFailed([
        Failure(ConnectionLost("Connection lost.")), Failure(ConnectionLost("Connection lost.")),
        Failure(ValueError("the body was cut"))]))
    recording_sink(remote_block(WORKER_URL + "/blocks/src", "iq", client=client,
                                graph=pair.client, connect_attempts=0))
    failure = pair.run(step=0.01)
    assert failure.check(WorkerUnreachable)
    assert str(failure.value) == (
        "remote_block 'remote_block': cannot reach the worker http://worker: Connection to "
        "the other side was lost in a non-clean fashion: Connection lost..; the body was cut")


def test_connect_attempts_wait_for_a_worker_still_starting_then_give_up(logged):
    """connect_attempts=2: two refusals are retried and the stream then flows; a third gives up, saying after how many attempts."""
    pair = WorkerPair()
    array_source([np.ones(4, np.complex64)] * 3, graph=pair.server, name="src")
    client = FlakyClient(pair.http, failures=2)
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=client, graph=pair.client,
                          connect_attempts=2, backoff=0.1)
    sink = recording_sink(remote)
    assert pair.run(step=0.01) is None
    assert len(sink.chunks) == 3
    assert [line.split("; ")[-1] for line in retry_lines(logged)] == [
        "retry 1 of 2 in 0.10 s", "retry 2 of 2 in 0.20 s"]

    pair = WorkerPair()
    client = FlakyClient(pair.http, failures=10 ** 6)
    recording_sink(remote_block(WORKER_URL + "/blocks/src", "iq", client=client,
                                graph=pair.client, connect_attempts=2, backoff=0.1))
    failure = pair.run(step=0.01)
    assert failure.check(WorkerUnreachable)
    assert str(failure.value).startswith(
        "remote_block 'remote_block': cannot reach the worker http://worker: Connection was "
        "refused by other side: 127.0.0.1:9.; gave up after 2 connection attempt(s) over 0.3")
    assert client.failed == 3


def test_a_worker_lost_after_it_was_reached_keeps_its_retries(logged):
    """With connect_attempts=0, a worker that streamed and is then lost is retried ``retries`` times (set before or after it was reached), then fails naming it."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    client = FlakyClient(pair.http, failures=0)
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=client, graph=pair.client,
                          connect_attempts=0, retries=5, backoff=0.1, max_backoff=0.1)
    sink = recording_sink(remote)
    remote.retries = 3  # while the stream opens: counts once it is open, not before
    while not source.active:
        pair.pump(1, 0.01)
    source.push(4)
    pair.pump(5, 0.01)
    assert len(sink.chunks) == 1
    client.failures = 10 ** 6  # the worker goes away
    failure = pair.run(step=0.01)
    assert failure.check(WorkerUnreachable)
    assert str(failure.value).startswith("remote_block 'remote_block': worker http://worker "
                                         "did not answer after 4 attempts")
    assert [line.split("; ")[-1] for line in retry_lines(logged)] == [
        f"retry {n} of 3 in 0.10 s" for n in (1, 2, 3)]


def test_stopping_the_graph_while_the_worker_is_unreached_fails_it(logged):
    """graph.stop() during the retries fails the run naming the worker, not an empty success."""
    pair = WorkerPair()
    array_source([np.ones(4, np.complex64)] * 3, graph=pair.server, name="src")
    client = FlakyClient(pair.http, failures=10 ** 6)
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=client, graph=pair.client)
    sink = recording_sink(remote)
    pair.pump(30, 0.01)
    assert client.failed >= 2
    pair.client.stop()
    failure = pair.run(step=0.01)
    assert failure.check(WorkerUnreachable)
    assert ("remote_block 'remote_block': worker http://worker was not reached before the "
            "graph stopped (Connection was refused by other side: 127.0.0.1:9.)"
            == str(failure.value))
    assert not sink.finished and not remote._backoff.pending


def test_stopping_the_graph_after_the_stream_opened_ends_it_quietly():
    """Once the worker was reached, graph.stop() ends the stream with what arrived."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http, graph=pair.client)
    sink = recording_sink(remote)
    while not source.active:
        pair.pump(1, 0.01)
    source.push(4)
    pair.pump(5, 0.01)
    pair.client.stop()
    assert pair.run(step=0.01) is None
    assert sink.finished and len(sink.chunks) == 1


def test_a_refusal_from_the_worker_fails_at_once():
    """A 4xx from the worker (unknown block) is not retried: the graph fails with its message."""
    pair = WorkerPair()
    recording_sink(remote_block(WORKER_URL + "/blocks/nowhere", "iq", client=pair.http,
                                graph=pair.client))
    failure = pair.run()
    assert failure.check(RemoteError)
    assert "no block named 'nowhere' on this worker" in str(failure.value)


def test_a_stream_of_another_kind_is_refused():
    """Reading a spectrum block as IQ fails, naming both kinds."""
    pair = WorkerPair()
    fft_block(instrument(pair.server), name="fft", graph=pair.server)
    recording_sink(remote_block(WORKER_URL + "/blocks/fft", "iq", client=pair.http,
                                graph=pair.client))
    failure = pair.run()
    assert "produces 'spectrum' chunks, not 'iq'" in str(failure.value)


def test_equal_meta_arrives_as_one_object():
    """Chunks with equal meta share one dict, as in one process, so identity caches hold."""
    pair = WorkerPair()
    array_source([np.ones(4, np.complex64)] * 5, graph=pair.server, name="src",
                  meta={"center_frequency": 1e9})
    sink = recording_sink(remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http,
                                       graph=pair.client))
    assert pair.run() is None
    assert len({id(chunk.meta) for chunk in sink.chunks}) == 1
    assert sink.chunks[0].meta == {"center_frequency": 1e9}


def test_chunks_are_emitted_while_their_answer_is_still_open():
    """A lingering answer's chunks reach the consumers as they arrive, not when it ends."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http, graph=pair.client,
                          linger=30)
    sink = recording_sink(remote)
    pair.pump(3)
    stream = next(iter(pair.worker.streams.values()))
    for n in range(1, 6):
        source.push(2)
        pair.pump(2)
        assert len(sink.chunks) == n
        assert stream.stats["answering"]
    assert stream.stats["acknowledged"] == -1  # no second poll: all in one answer


class silent_resource:
    """
    Stands in for a worker whose stream answer starts and then goes silent.
    """

    def __init__(self):
        from twisted.web import resource, server

        from pyrf_blocks.chunk import Chunk, encode_chunk
        from pyrf_blocks.net import wire

        self.polls = 0
        body = encode_chunk(Chunk("iq", np.ones(4, np.complex64), 0, 4000, 1e6))
        owner = self

        class stream(resource.Resource):
            isLeaf = True

            def render_POST(self, request):
                request.setResponseCode(201)
                return b'{"kind": "iq", "path": "/streams/1"}'

            def render_GET(self, request):
                owner.polls += 1
                for name, value in wire.stream_headers("iq", 0, None, 0, False).items():
                    request.setHeader(name, value)
                request.setHeader(b"content-type", wire.CONTENT_TYPE)
                if owner.polls == 1:
                    request.write(body)  # ... and nothing more, ever
                return server.NOT_DONE_YET

        self.resource = stream()


def test_an_answer_that_goes_silent_is_abandoned_and_polled_again(logged):
    """A lingering answer silent beyond linger + wait + 30 s fails and is retried."""
    from treq.testing import StubTreq

    pair = WorkerPair()
    silent = silent_resource()
    http = StubTreq(silent.resource)
    pair.http = http
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=http, graph=pair.client,
                          linger=1, wait=1, backoff=0.1)
    sink = recording_sink(remote)
    pair.pump(5)
    assert len(sink.chunks) == 1 and silent.polls == 1
    pair.clock.advance(31)
    pair.pump(5)
    assert silent.polls == 1
    pair.clock.advance(2)
    pair.pump(5, 0.1)
    assert silent.polls == 2
    errors = [e for e in logged if e.get("log_level") == LogLevel.error]
    message = errors[0]["log_format"].format(**errors[0])
    assert "http://worker/streams/1 went silent for 3" in message and "retry 1" in message


# Sequence numbers survive the crossing.

def test_a_reader_joining_late_gets_the_blocks_own_seqs_and_no_false_drops():
    """remote_block re-emits each chunk with the seq the remote block gave it, from where it joined."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    for _ in range(5):
        source.push(2)
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http, graph=pair.client)
    sink = recording_sink(remote)
    pair.pump(3)
    for _ in range(4):
        source.push(2)
        pair.pump(2)
    source.finish()
    assert pair.run() is None
    assert [c.seq for c in sink.chunks] == [5, 6, 7, 8]
    assert np.array_equal(sink.data(), np.arange(10, 18))
    assert sink.problems == [] and remote.dropped == 0 and remote.remote_dropped == 0
    assert remote.output().next_seq == 9


def test_seqs_and_drops_survive_two_hops():
    """source -> lossy stream -> relay on a second worker -> here: seqs are the source's, gaps counted."""
    from treq.testing import StubTreq

    from pyrf_blocks.net.worker import Worker

    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    for _ in range(3):
        source.push(2)  # before anyone reads
    middle = Graph(pair.clock)
    relay = remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http, graph=middle,
                         name="relay", remote_policy="drop_oldest", remote_maxsize=2)
    middle_http = StubTreq(Worker(middle).resource)
    remote = remote_block("http://middle/blocks/relay", "iq", client=middle_http,
                          graph=pair.client)
    sink = recording_sink(remote)

    def pump(steps):
        for _ in range(steps):
            pair.http.flush()
            middle_http.flush()
            pair.clock.advance(0.001)

    pump(10)
    assert relay.active
    for _ in range(12):
        source.push(2)  # in one go: the first hop keeps only the newest
    pump(20)
    source.push(2)
    pump(20)
    seqs = [c.seq for c in sink.chunks]
    assert seqs[0] == 3 and seqs[-1] == 15 and seqs == sorted(set(seqs))
    for chunk in sink.chunks:  # seq n carries samples 2n and 2n + 1
        assert chunk.data.tolist() == [2 * chunk.seq, 2 * chunk.seq + 1]
    assert relay.dropped == relay.remote_dropped > 0
    assert remote.dropped == relay.dropped == 15 - 3 + 1 - len(seqs)
    assert remote.remote_dropped == 0  # the second stream dropped nothing itself


def test_a_reader_fails_clearly_when_the_remote_numbering_goes_back():
    """A stream whose seq goes back (its worker restarted) fails the graph naming the source."""
    first, restarted = WorkerPair(), WorkerPair()
    client = FlakyClient(first.http, failures=0)
    source = manual_source(graph=first.server, name="src")
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=client, graph=first.client)
    sink = recording_sink(remote)
    first.pump(3)
    source.push(2)
    source.push(2)
    first.pump(5)
    sink.close()
    first.pump(5)
    client.http = restarted.http  # the same URL now reaches a new worker
    fresh = manual_source(graph=restarted.server, name="src")  # numbering from 0 again
    recording_sink(remote)
    for _ in range(5):
        first.pump(1)
        restarted.pump(1)
    fresh.push(2)
    for _ in range(5):
        restarted.pump(1)
    failure = []
    first.client.done().addBoth(failure.append)
    assert failure and failure[0].check(RemoteError)
    assert ("sent seq 0, but this graph already had seq 1 of http://worker/blocks/src: "
            "its numbering went back") in str(failure[0].value)


# Named outputs.

def test_a_remote_block_reads_a_named_output(tee_power):
    """remote_block(url, kind, output=...) reads that output's stream, with its own seqs."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    tee_power(source, graph=pair.server, name="tee")
    power = remote_block(WORKER_URL + "/blocks/tee", "real", output="power", client=pair.http,
                         graph=pair.client)
    assert_provides(IRealProducer, power)
    sink = recording_sink(power)
    pair.pump(3)
    assert list(pair.worker.streams) == ["tee:power:1"]
    for _ in range(6):
        source.push(4)
        pair.pump(2)
    source.finish()
    assert pair.run() is None
    assert [c.seq for c in sink.chunks] == [0, 1, 2]
    assert [c.kind for c in sink.chunks] == ["real"] * 3
    assert "output 'power'" in repr(power)


@pytest.mark.parametrize("output, kind, message", [
    ("late", "real", "opening a stream of http://worker/blocks/tee output 'late': HTTP 404: "
                     "tee_power 'tee' has no output 'late'; it has 'main', 'power'"),
    ("power", "iq", "http://worker/blocks/tee output 'power' produces 'real' chunks, "
                    "not 'iq'"),
])
def test_a_remote_output_that_does_not_exist_or_differs_fails_naming_it(tee_power, output,
                                                                       kind, message):
    """A wrong output name or kind fails the graph at once with the worker's reason."""
    pair = WorkerPair()
    tee_power(manual_source(graph=pair.server, name="src"), graph=pair.server, name="tee")
    recording_sink(remote_block(WORKER_URL + "/blocks/tee", kind, output=output,
                                client=pair.http, graph=pair.client))
    failure = pair.run()
    assert failure.check(RemoteError) and message in str(failure.value)


def test_an_answer_is_delivered_over_several_turns_in_order_each_chunk_once(monkeypatch):
    """With a delivery slice used up by each chunk, an answer's chunks go one per reactor turn: in order, each once, none lost."""
    from pyrf_blocks.net import client as clients

    monkeypatch.setattr(clients, "DELIVERY_SLICE", 0.0)
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    remote = remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http, graph=pair.client)
    sink = recording_sink(remote)
    pair.pump(5)
    for _ in range(10):
        source.push(4)
    stream = next(iter(pair.worker.streams.values()))
    pair.clock.advance(0)  # the worker writes the ten in one piece
    pair.http.flush()
    assert len(sink.chunks) <= 2  # one per piece received; the rest wait for later turns
    for _ in range(20):
        pair.pump(1)
    source.finish()
    assert pair.run() is None
    assert [c.seq for c in sink.chunks] == list(range(10))
    np.testing.assert_array_equal(sink.data(), np.arange(40))
    assert remote.dropped == 0 and stream.stats["dropped"] == 0
