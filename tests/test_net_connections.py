"""
The HTTP client's connections (pyrf_blocks.net.connections), over a real
loopback socket: Twisted's public hooks only, large reads, no log noise.
"""

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.web import resource, server
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface.verify import verifyObject

import pytest

from pyrf_blocks.graph import Graph
from pyrf_blocks.net import connections
from pyrf_blocks.net.client import http_client
from pyrf_blocks.testing import new_reactor, run_until


class _Text(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"x" * 1000


def test_the_endpoint_factory_is_an_agent_endpoint_factory():
    """StreamEndpoints provides IAgentEndpointFactory and refuses schemes other than http(s)."""
    endpoints = connections.StreamEndpoints(new_reactor(), policy=None)
    verifyObject(IAgentEndpointFactory, endpoints)
    with pytest.raises(SchemeNotSupported):
        endpoints.endpointForURI(URI.fromBytes(b"ftp://host:21/"))


def test_connections_are_reused_read_large_and_do_not_log(monkeypatch):
    """Three requests share one pooled connection, which reads READ_SIZE bytes at a time, silently."""
    reactor = new_reactor()
    site = server.Site(_Text())
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/"
    transports = []
    read_more = connections._read_more

    def spy(connected):
        transports.append(connected.transport)
        return read_more(connected)
    monkeypatch.setattr(connections, "_read_more", spy)
    events = []
    globalLogPublisher.addObserver(events.append)
    client = http_client(Graph(reactor))

    async def scenario():
        bodies = []
        for _ in range(3):
            response = await client.get(url)
            bodies.append(await response.content())
        return bodies
    try:
        bodies = run_until(reactor, defer.ensureDeferred(scenario()))
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert bodies == [b"x" * 1000] * 3
    assert len(transports) == 1 and transports[0].bufferSize == connections.READ_SIZE
    assert not [e for e in events if "factory" in e.get("log_format", "").lower()]
