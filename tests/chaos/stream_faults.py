"""
Faults between a reader and a real worker, for the chaos tests of streams:
a TCP proxy, run in the test's own reactor, that loses the answer to the
request opening a stream or cuts every answer after so many bytes; and
what a source emits when nothing goes wrong, to compare with.
"""

from twisted.internet import protocol
from twisted.internet.task import Clock

from pyrf_blocks.blocks.sources import simulated_instrument
from pyrf_blocks.graph import Graph
from pyrf_blocks.testing import recording_sink, run_clock

__all__ = ["FaultyProxy", "expected_chunks", "compare_chunks"]


class _ToWorker(protocol.Protocol):
    def __init__(self, front):
        self.front = front

    def connectionMade(self):
        self.front.attach(self)

    def dataReceived(self, data):
        self.front.from_worker(data)

    def connectionLost(self, reason):
        self.front.worker_lost()


class _FromReader(protocol.Protocol):
    """
    One reader connection, passed on to the worker through a connection
    of its own, and cut as the proxy's rules say.
    """

    def connectionMade(self):
        self.proxy = self.factory.proxy
        self.back = None
        self.waiting = []
        self.passed = 0
        self.request = b""
        self.cut = False
        self.transport.pauseProducing()
        factory = protocol.ClientFactory()
        factory.protocol = lambda: _ToWorker(self)
        factory.clientConnectionFailed = lambda connector, reason: self.transport.loseConnection()
        self.proxy.reactor.connectTCP("127.0.0.1", self.proxy.port, factory)

    def attach(self, back):
        self.back = back
        self.transport.resumeProducing()

    def dataReceived(self, data):
        # The request line of the latest request: what an answer answers.
        start = data.find(b"\r\n")
        if data[:4] in (b"GET ", b"POST", b"DELE"):
            self.request = data[:start]
        self.back.transport.write(data)

    def from_worker(self, data):
        proxy = self.proxy
        if self.cut:
            return
        if proxy.lose_posts and self.request.startswith(b"POST ") and b"/streams" in self.request:
            proxy.lose_posts -= 1
            proxy.lost_posts += 1
            self._cut()
            return
        if proxy.cut_after is not None:
            room = proxy.cut_after - self.passed
            if len(data) >= room:
                self.transport.write(data[:room])
                proxy.cuts += 1
                proxy.bytes_before_cuts.append(self.passed + room)
                self._cut()
                return
        self.passed += len(data)
        self.transport.write(data)

    def _cut(self):
        # What was written goes out first (an abort would discard it),
        # then the reader sees the connection end in the middle.
        self.cut = True
        self.transport.pauseProducing()
        self.transport.loseConnection()
        if self.back is not None:
            self.back.transport.abortConnection()

    def worker_lost(self):
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.back is not None:
            self.back.transport.loseConnection()


class FaultyProxy:
    """
    Listens on a free loopback port of ``reactor`` and passes each
    connection on to the worker at ``port``, but for the faults asked for.

    :param lose_posts: answers to ``POST .../streams`` to lose (the worker
        has done what it was asked; the reader never hears of it).
    :param cut_after: bytes of answers each connection carries before it
        is cut (``None``: never).
    """

    def __init__(self, reactor, port, lose_posts=0, cut_after=None):
        self.reactor = reactor
        self.port = port
        self.lose_posts = lose_posts
        self.cut_after = cut_after
        self.lost_posts = self.cuts = 0
        self.bytes_before_cuts = []
        factory = protocol.ServerFactory.forProtocol(_FromReader)
        factory.proxy = self
        self.listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.listening.getHost().port}"


def expected_chunks(**params):
    """
    What ``simulated_instrument(**params)`` emits in one process, nothing
    going wrong.
    """
    graph = Graph(Clock())
    sink = recording_sink(simulated_instrument(graph=graph, **params))
    run_clock(graph.reactor, graph)
    return sink.chunks


def compare_chunks(received, expected):
    """
    ``(lost, duplicated, foreign)``: chunks of ``expected`` not received,
    received more than once, received but not among ``expected`` (other
    samples or another device time under a known seq).
    """
    known = {chunk.seq: chunk for chunk in expected}
    seqs = [chunk.seq for chunk in received]
    duplicated = len(seqs) - len(set(seqs))
    foreign = sum(1 for chunk in received
                  if chunk.seq not in known or not _same(chunk, known[chunk.seq]))
    lost = len(set(known) - set(seqs))
    return lost, duplicated, foreign


def _same(a, b):
    return (a.start, a.end, a.data.tobytes()) == (b.start, b.end, b.data.tobytes())
