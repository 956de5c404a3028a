"""
Stream integrity against a real worker process: a lost answer to the
request that opens a stream, a worker started again on the same port with
the same stream ids, and answers cut again and again after delivering
chunks.  Each reads every chunk exactly (0 lost, 0 duplicated, 0 foreign)
or fails saying why; the figures are in the assertion messages.
"""

import signal

import pytest

from pyrf_blocks.chunk import decode_chunks
from pyrf_blocks.errors import RemoteError
from pyrf_blocks.graph import Graph
from pyrf_blocks.net import remote_block
from pyrf_blocks.testing import new_reactor, recording_sink, run_until
from pyrf_blocks.testing.servers import free_port

from net_real import RealWorker
from stream_faults import FaultyProxy, compare_chunks, expected_chunks

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(90)]

SOURCE = {"paced": False, "seed": 3, "tones": [[1e6, -20.0]], "samples_per_packet": 256}


@pytest.fixture
def worker(stream_worker):
    return stream_worker


def _outcome(graph):
    """
    A Deferred firing with ``None`` when ``graph`` is done, or with the
    exception it failed with.
    """
    return graph.done().addErrback(lambda failure: failure.value)


def _read_through(proxy_options, worker, name, count, packets_per_block, **reader):
    """
    Read ``count`` chunks of a new source ``name`` on ``worker`` with a
    remote_block through a :class:`FaultyProxy`; (chunks, reader, proxy,
    failure or None).
    """
    params = dict(SOURCE, count=count, packets_per_block=packets_per_block)
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": name,
                                    "params": params}, 201)
    reactor = new_reactor()
    proxy = FaultyProxy(reactor, worker.port, **proxy_options)
    graph = Graph(reactor)
    block = remote_block(f"{proxy.url}/blocks/{name}", "iq", graph=graph, **reader)
    sink = recording_sink(block)
    outcome = run_until(reactor, _outcome(graph), timeout=60)
    return sink.chunks, block, proxy, outcome


def test_stream_a_lost_answer_to_opening_it_loses_nothing(worker):
    """The answer to POST /blocks/{name}/streams is lost: the retry gets the same stream, every chunk arrives."""
    count = 1500
    chunks, block, proxy, outcome = _read_through({"lose_posts": 1}, worker, "lost_post",
                                                  count, 1, backoff=0.05, max_backoff=0.2)
    lost, duplicated, foreign = compare_chunks(chunks, expected_chunks(
        count=count, packets_per_block=1, **SOURCE))
    streams = [s for s in worker.json("GET", "/streams")["streams"] if s["block"] == "lost_post"]
    figures = (f"{len(chunks)} of {count} chunks delivered: {lost} lost, {duplicated} "
               f"duplicated, {foreign} foreign, dropped {block.dropped}; answers lost "
               f"{proxy.lost_posts}; streams of the source on the worker "
               f"{[s['id'] for s in streams]}; outcome {outcome}")
    print(figures)
    assert proxy.lost_posts == 1, figures
    assert outcome is None and (lost, duplicated, foreign) == (0, 0, 0), figures
    assert block.dropped == 0 and len(streams) <= 1, figures


# (With the samples in shared memory a chunk is a short head of some 70
# bytes, its answer's first a few hundred: 1 KiB cuts each answer after a
# dozen or so, as 48 KiB does the bodies of 8 KiB chunks.)
@pytest.mark.parametrize("shared_memory, cut_after", [(False, 48 << 10), (True, 1 << 10)])
def test_stream_answers_cut_after_progress_do_not_exhaust_the_retries(worker, shared_memory,
                                                                      cut_after):
    """Every answer is cut after 48 KiB of body (1 KiB of chunk heads when the samples are in shared memory): each delivered chunks, so the reader goes on to the end, exactly."""
    count = 300
    chunks, block, proxy, outcome = _read_through({"cut_after": cut_after}, worker,
                                                  f"cut_often_{shared_memory}", count, 4,
                                                  backoff=0.01, max_backoff=0.05,
                                                  shared_memory=shared_memory)
    lost, duplicated, foreign = compare_chunks(chunks, expected_chunks(
        count=count, packets_per_block=4, **SOURCE))
    figures = (f"{len(chunks)} of {count} chunks delivered through {proxy.cuts} cut "
               f"answers ({min(proxy.bytes_before_cuts, default=0)}-"
               f"{max(proxy.bytes_before_cuts, default=0)} bytes each): {lost} lost, "
               f"{duplicated} duplicated, {foreign} foreign; outcome {outcome}")
    print(figures)
    assert proxy.cuts > 2 * block.retries, figures
    assert outcome is None and (lost, duplicated, foreign) == (0, 0, 0), figures


def _open(worker, name, start_time):
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": name, "params": dict(
        SOURCE, packets_per_block=1, start_time=start_time)}, 201)
    return worker.json("POST", f"/blocks/{name}/streams", {}, 201)


def test_stream_a_restarted_worker_reusing_the_id_is_refused():
    """A worker killed and started again on its port serves another stream under the same id: the old reader is refused (410), and acknowledges nothing of it."""
    listen = f"tcp:{free_port()}:interface=127.0.0.1"
    first = RealWorker(listen)
    try:
        opened = _open(first, "src", 0)
        status, response, body = first.call("GET", f"{opened['path']}?after=-1&wait=5")
        assert status == 200, body
        assert response.getheader("X-Pyrf-Stream-Instance") == opened["instance"]
        cursor = decode_chunks(body)[-1].seq
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    finally:
        first.stop()
    second = RealWorker(listen)
    try:
        other = _open(second, "src", 10 ** 15)  # someone else's stream, far in device time
        assert other["id"] == opened["id"] and other["instance"] != opened["instance"]
        path = f"{opened['path']}?after={cursor}&wait=5&instance={opened['instance']}"
        status, response, body = second.call("GET", path)
        stats = second.json("GET", "/streams")["streams"][0]
        figures = (f"resuming {opened['id']} after seq {cursor}: HTTP {status}, instance "
                   f"{response.getheader('X-Pyrf-Stream-Instance')} (opened "
                   f"{opened['instance']}), body {body[:120]!r}; the other reader's "
                   f"stream acknowledged {stats['acknowledged']}")
        print(figures)
        assert status == 410 and b"not the stream you opened" in body, figures
        assert response.getheader("X-Pyrf-Stream-Instance") == other["instance"], figures
        assert stats["acknowledged"] == -1, figures
        # A reader that does not name the instance still sees it change.
        status, response, _ = second.call("GET", f"{opened['path']}?after=-1&wait=5")
        assert response.getheader("X-Pyrf-Stream-Instance") == other["instance"] != opened[
            "instance"], figures
    finally:
        second.stop()


def test_stream_a_remote_block_fails_clearly_on_another_instance():
    """remote_block reading a worker that is killed and started again with the same stream id fails naming both instances."""
    listen = f"tcp:{free_port()}:interface=127.0.0.1"
    workers = [RealWorker(listen)]
    try:
        workers[0].json("POST", "/blocks", {"type": "simulated_instrument", "name": "src",
                                            "params": dict(SOURCE, packets_per_block=1,
                                                           paced=True, sample_rate=1e6)}, 201)
        reactor = new_reactor()
        graph = Graph(reactor)
        block = remote_block(f"{workers[0].url}/blocks/src", "iq", graph=graph,
                             backoff=0.05, max_backoff=0.2, retries=60)
        sink = recording_sink(block)

        def restart():
            workers[0].process.send_signal(signal.SIGKILL)
            workers[0].process.wait(10)
            workers.append(RealWorker(listen))  # blocks this reactor a second: fine
            _open(workers[1], "src", 10 ** 15)

        def check():
            if len(sink.chunks) >= 5 and len(workers) == 1:
                restart()
            elif graph.failure is None:
                reactor.callLater(0.02, check)
        reactor.callLater(0.02, check)
        outcome = run_until(reactor, _outcome(graph),
                            timeout=60)
        starts = sorted({chunk.start for chunk in sink.chunks})
        figures = f"{len(sink.chunks)} chunks, last start {starts[-1]} ns; outcome {outcome}"
        print(figures)
        assert outcome is not None and isinstance(outcome, RemoteError), figures
        assert "not the stream you opened" in str(outcome), figures
        assert starts[-1] < 10 ** 15, figures  # nothing of the other stream was read
    finally:
        for worker in workers:
            worker.stop()
