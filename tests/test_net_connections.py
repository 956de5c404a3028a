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


class _Recorder(resource.Resource):
    """
    Records each request (method, URI, headers, body) and answers by path:
    ``/json`` a JSON map, ``/moved`` a redirect to it, ``/silent`` never.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render(self, request):
        self.seen.append((request.method, request.uri, request.requestHeaders,
                          request.content.read()))
        if request.path == b"/moved":
            request.setResponseCode(302)
            request.setHeader(b"location", b"/json")
            return b""
        if request.path == b"/silent":
            return server.NOT_DONE_YET
        request.setHeader(b"content-type", b"application/json")
        return b'{"answer": 42}'


def _worker_site():
    reactor = new_reactor()
    recorder = _Recorder()
    site = server.Site(recorder)
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return reactor, recorder, f"http://127.0.0.1:{port.getHost().port}"


def test_a_request_without_a_body_goes_straight_to_the_agent():
    """A poll's GET (text params, header lists) reaches the worker as treq would send it, less gzip and cookies; its Answer reads as treq's response; a redirect is not followed."""
    reactor, recorder, base = _worker_site()
    client = http_client(Graph(reactor))
    assert isinstance(client, connections.WorkerClient)

    async def scenario():
        response = await client.get(base + "/json?kind=iq",
                                    headers={b"Authorization": [b"Bearer t"]},
                                    params={"after": "41", "wait": "2.5"}, reactor=reactor,
                                    timeout=30, unbuffered=True)
        value = (response.code, response.headers.getRawHeaders(b"content-type"),
                 await response.json())
        moved = await client.get(base + "/moved")
        text = await (await client.get(base + "/json")).text()
        return value, moved.code, text
    value, moved, text = run_until(reactor, defer.ensureDeferred(scenario()))
    assert value == (200, [b"application/json"], {"answer": 42})
    assert moved == 302
    assert text == '{"answer": 42}'
    method, uri, headers, body = recorder.seen[0]
    assert (method, uri, body) == (b"GET", b"/json?kind=iq&after=41&wait=2.5", b"")
    assert headers.getRawHeaders(b"authorization") == [b"Bearer t"]
    assert not headers.hasHeader(b"accept-encoding") and not headers.hasHeader(b"cookie")
    assert [seen[1] for seen in recorder.seen] == [b"/json?kind=iq&after=41&wait=2.5",
                                                   b"/moved", b"/json"]


def test_a_json_body_is_sent_as_treq_sends_it_and_other_bodies_take_treqs_road():
    """json= goes straight to the agent, compact with treq's content type (None too: JSON's null); data= and non-text params go through treq, to the same worker."""
    reactor, recorder, base = _worker_site()
    client = http_client(Graph(reactor))

    async def scenario():
        codes = []
        for kwargs in ({"json": {"type": "fft_block", "params": {"size": 1024}}},
                       {"json": None}, {"data": b"raw bytes"}):
            response = await client.post(base + "/json", **kwargs)
            codes.append(response.code)
            await response.content()
        response = await client.get(base + "/json", params={"after": 5})
        codes.append(response.code)
        return codes
    assert run_until(reactor, defer.ensureDeferred(scenario())) == [200] * 4
    bodies = [(seen[0], seen[3], seen[2].getRawHeaders(b"content-type")) for seen in recorder.seen]
    assert bodies[:2] == [
        (b"POST", b'{"type":"fft_block","params":{"size":1024}}',
         [b"application/json; charset=UTF-8"]),
        (b"POST", b"null", [b"application/json; charset=UTF-8"])]
    assert bodies[2][:2] == (b"POST", b"raw bytes")
    assert recorder.seen[3][1] == b"/json?after=5"


def test_a_request_unanswered_is_cancelled_after_its_timeout_as_treqs_would_be():
    """A worker that never answers: the direct request fails once its timeout is up, with the error treq's own road gives."""
    import time

    from treq.client import HTTPClient

    reactor, recorder, base = _worker_site()
    client = http_client(Graph(reactor))
    plain = HTTPClient(client._agent)

    async def scenario():
        started = time.monotonic()
        outcomes = await defer.DeferredList(
            [each.get(base + "/silent", reactor=reactor, timeout=0.3, params={"after": "1"})
             for each in (client, plain)], consumeErrors=True)
        return time.monotonic() - started, [(ok, result.type) for ok, result in outcomes]
    elapsed, outcomes = run_until(reactor, defer.ensureDeferred(scenario()))
    assert len(recorder.seen) == 2
    assert elapsed >= 0.3
    assert outcomes[0] == outcomes[1] and outcomes[0][0] is False, outcomes


def test_one_endpoint_is_kept_per_place():
    """endpointForURI makes one endpoint per scheme, host and port, and gives it again."""
    endpoints = connections.StreamEndpoints(new_reactor(), policy=None)
    first = endpoints.endpointForURI(URI.fromBytes(b"http://127.0.0.1:8000/streams/a"))
    assert endpoints.endpointForURI(URI.fromBytes(b"http://127.0.0.1:8000/blocks")) is first
    assert endpoints.endpointForURI(URI.fromBytes(b"http://127.0.0.1:8001/blocks")) is not first
