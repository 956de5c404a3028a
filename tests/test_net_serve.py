"""
Serving a script's own blocks (pyrf_blocks.net.serve): once per graph, and
stoppable, across real loopback sockets.
"""

import pytest
from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock, deferLater

from pyrf_blocks.graph import Graph
from pyrf_blocks.net import Served, serve
from pyrf_blocks.net.client import auth_headers, http_client
from pyrf_blocks.net.serve import streamed

from pyrf_blocks.testing import manual_source, new_reactor, run_until


def test_a_graph_is_served_once_and_only_by_itself():
    """serve() keeps its Served on the graph: the same one again, another graph its own."""
    reactor = new_reactor()
    graph, other = Graph(reactor), Graph(reactor)
    served = serve(graph)
    assert isinstance(served, Served) and graph.served is served
    assert serve(graph) is served and serve(other) is not served
    assert other.served is not served
    run_until(reactor, defer.gatherResults([served.stop(), other.served.stop()]))
    assert graph.served is None and other.served is None


def test_streamed_needs_a_served_graph():
    """streamed() of a block whose graph nobody serves says so."""
    source = manual_source(graph=Graph(Clock()), name="src")
    with pytest.raises(LookupError, match="its graph is not served"):
        streamed(source)


def test_stop_closes_the_streams_and_the_port_and_the_graph_may_be_served_again():
    """A held poll gets 410, the port refuses connections, and serve() starts a new one."""
    reactor = new_reactor()
    graph = Graph(reactor)
    source = manual_source(graph=graph, name="src")
    served = serve(graph)

    async def scenario():
        url, token = await served.address()
        assert url.startswith("http://127.0.0.1:") and token == served.token
        client = http_client(Graph(reactor))
        headers = auth_headers(token)
        # (Opened here, not by a POST: treq writes request bodies with the
        # global reactor's cooperator, and this test runs a reactor of its own.)
        stream = served.worker.open_stream("src", {})
        assert stream.block is source
        held = client.get(f"{url}/streams/{stream.id}", params={"after": "-1", "wait": "30"},
                          headers=headers)
        while not stream.stats["waiting_polls"]:
            await deferLater(reactor, 0.01, lambda: None)
        await served.stop()
        answer = await held
        assert answer.code == 410
        await answer.content()
        assert stream.closed and served.worker.streams == {} and served.port is None
        assert graph.served is None and served.stopped
        host, port = url.removeprefix("http://").split(":")
        with pytest.raises(ConnectionRefusedError):
            await TCP4ClientEndpoint(reactor, host, int(port)).connect(
                protocol.Factory.forProtocol(protocol.Protocol))
        again = serve(graph)
        assert again is not served and graph.served is again
        new_url, new_token = await again.address()
        assert new_url != url or new_token != token
        await again.stop()
        return True

    assert run_until(reactor, defer.ensureDeferred(scenario())) is True


def test_a_port_that_cannot_be_listened_on_is_not_kept():
    """serve() on a busy port fails its address(); the next serve() tries again."""
    reactor = new_reactor()
    graph = Graph(reactor)
    busy = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol),
                             interface="127.0.0.1")
    port = busy.getHost().port
    served = serve(graph, listen=f"tcp:{port}:interface=127.0.0.1")
    outcome = []
    served.address().addBoth(outcome.append)
    assert graph.served is None and outcome and hasattr(outcome[0], "check")
    assert serve(graph) is not served
    busy.stopListening()
    run_until(reactor, graph.served.stop())
