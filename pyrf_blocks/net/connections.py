"""
The HTTP connections of the clients that read streams and control workers.

A client is treq over Twisted's ``Agent`` with a persistent connection
pool, so that consecutive polls of a stream reuse one connection.  Its
connections are made by :class:`StreamEndpoints`, the same TCP (and TLS
under ``https``) endpoints as ``Agent``'s own, with two differences that
only public hooks of Twisted give (an ``IAgentEndpointFactory``, and a
wrapper of the pool's protocol factory): each connection reads
:data:`READ_SIZE` bytes from its socket at a time instead of 64 KiB, and
the pool's connections come and go without a log line each.  Request
bodies (small JSON) are written at once by :class:`BytesBody`: treq's
default producer writes them from a cooperator of the *global* reactor,
so that a client on any other reactor (a graph given its own, as the tests
of real sockets do) sent headers and never the body of a ``POST``.

A request to a worker goes from :class:`WorkerClient` straight to the
agent, its URL encoded once: treq's own road adds cookies, redirects and
gzip, which workers never use, and parses every URL again; it cost about
half the CPU of a stream poll, and a reader of a lossy stream of a fast
block polls hundreds of times a second.

Imported only by what reaches a worker: it loads ``twisted.web`` and treq.
"""

import json
from urllib.parse import quote, urlencode

import treq
from hyperlink import EncodedURL
from treq.client import HTTPClient
from twisted.internet import defer, protocol
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.components import proxyForInterface
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IResponse, UNKNOWN_LENGTH
from zope.interface import implementer

from .tls import explaining_agent, trust_policy

__all__ = ["new_client", "WorkerClient", "Answer", "StreamEndpoints", "BytesBody",
           "READ_SIZE", "MAX_PERSISTENT_PER_HOST"]

#: Bytes a stream connection reads from its socket at a time (Twisted's
#: default is 64 KiB): fewer, larger reads of a body of chunks.
READ_SIZE = 256 << 10
#: Connections kept open to each worker (a stream each, and control).
MAX_PERSISTENT_PER_HOST = 16


def new_client(reactor, pem=None, pool=None):
    """
    A treq client on ``reactor`` with its own persistent connection pool
    (``pool``, or a new one), trusting the certificates ``pem`` (the
    system's certificate authorities for ``None``) and explaining TLS
    failures (see :mod:`.tls`).
    """
    if pool is None:
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = MAX_PERSISTENT_PER_HOST
    agent = Agent.usingEndpointFactory(reactor, StreamEndpoints(reactor, trust_policy(pem)),
                                       pool=pool)
    return WorkerClient(explaining_agent(agent, pem), data_to_body_producer=_body_producer)


#: Worker URLs whose encoded form a client keeps, and places whose
#: endpoint its :class:`StreamEndpoints` keeps (each cache is emptied when
#: it reaches this many).
URL_CACHE = 256
#: What :meth:`WorkerClient.request` takes on its own road; any other
#: argument goes to treq's.
_DIRECT = frozenset({"params", "headers", "json", "reactor", "timeout", "unbuffered",
                     "_stacklevel"})


class WorkerClient(HTTPClient):
    """
    treq's client, whose requests without a body or with a ``json`` one
    go straight to its agent: no cookie jar, no redirects followed (a
    worker answers none), no gzip asked for, and each URL encoded once
    (``params`` must then be text).  The answer is an :class:`Answer`.
    Anything else (``data``, ``files``, ``auth``, ``cookies``...) takes
    treq's road.
    """

    def __init__(self, agent, **kwargs):
        super().__init__(agent, **kwargs)
        self._encoded = {}

    def request(self, method, url, **kwargs):
        if not _direct(url, kwargs):
            return super().request(method, url, **kwargs)
        uri = self._encoded.get(url)
        if uri is None:
            if len(self._encoded) >= URL_CACHE:
                self._encoded.clear()
            uri = self._encoded[url] = EncodedURL.from_text(url).to_uri().to_text().encode(
                "ascii")
        params = kwargs.get("params")
        if params:
            query = urlencode(params, quote_via=quote).encode("ascii")
            uri += (b"&" if b"?" in uri else b"?") + query
        headers = Headers(kwargs.get("headers") or {})
        body = None
        if "json" in kwargs:  # (None too: it is JSON's null, as treq sends it)
            body = BytesBody(json.dumps(kwargs["json"], separators=(",", ":")).encode())
            headers.setRawHeaders(b"Content-Type", [b"application/json; charset=UTF-8"])
        d = self._agent.request(method.encode("ascii").upper(), uri, headers, body)
        timeout = kwargs.get("timeout")
        if timeout:
            reactor = kwargs.get("reactor")
            if reactor is None:
                from twisted.internet import reactor
            call = reactor.callLater(timeout, d.cancel)

            def cancel_timeout(result):
                if call.active():
                    call.cancel()
                return result
            d.addBoth(cancel_timeout)
        return d.addCallback(Answer)


def _direct(url, kwargs):
    # Whether WorkerClient sends a request itself: a text URL, text
    # params, headers as lists, and of treq's other arguments none.
    params, headers = kwargs.get("params"), kwargs.get("headers") or {}
    return (isinstance(url, str) and isinstance(headers, dict)
            and all(isinstance(values, list) for values in headers.values())
            and (not params or (isinstance(params, dict)
                                and all(isinstance(value, str) for value in params.values())))
            and all(value is None for key, value in kwargs.items() if key not in _DIRECT))


class Answer(proxyForInterface(IResponse)):
    """
    A worker's answer as :class:`WorkerClient` gives it: Twisted's
    response, with treq's ``content()``, ``json()`` and ``text()``.
    """

    def content(self):
        return treq.content(self.original)

    def json(self, **kwargs):
        return treq.json_content(self.original, **kwargs)

    def text(self, encoding="ISO-8859-1"):
        return treq.text_content(self.original, encoding)


@implementer(IBodyProducer)
class BytesBody:
    """
    A request body of bytes, written in one piece when the request starts.
    """

    def __init__(self, data):
        self.data = bytes(data)
        self.length = len(self.data)

    def startProducing(self, consumer):
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


def _body_producer(data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        return BytesBody(data)
    producer = IBodyProducer(data)
    if producer.length is None:
        producer.length = UNKNOWN_LENGTH
    return producer


@implementer(IAgentEndpointFactory)
class StreamEndpoints:
    """
    Where a client connects for a URL: a ``HostnameEndpoint``, wrapped in
    TLS with ``policy`` (an ``IPolicyForHTTPS``) for ``https``, each of
    whose connections reads :data:`READ_SIZE` bytes at a time.
    """

    def __init__(self, reactor, policy):
        self.reactor = reactor
        self.policy = policy
        #: One endpoint per place (made anew for every request, it cost a
        #: tenth of a poll's CPU: the host name's IDNA encoding).
        self._endpoints = {}

    def endpointForURI(self, uri):
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if uri.scheme == b"https":
                endpoint = wrapClientTLS(self.policy.creatorForNetloc(uri.host, uri.port),
                                         HostnameEndpoint(self.reactor, uri.host.decode("ascii"),
                                                          uri.port))
            elif uri.scheme == b"http":
                endpoint = HostnameEndpoint(self.reactor, uri.host.decode("ascii"), uri.port)
            else:
                raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
            if len(self._endpoints) >= URL_CACHE:
                self._endpoints.clear()
            endpoint = self._endpoints[key] = _ReadingEndpoint(endpoint)
        return endpoint


@implementer(IStreamClientEndpoint)
class _ReadingEndpoint:
    """
    ``endpoint``, with each connection set to read :data:`READ_SIZE` bytes
    at a time.
    """

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def connect(self, factory):
        return self.endpoint.connect(_QuietFactory(factory)).addCallback(_read_more)


def _read_more(connected):
    transport = connected.transport
    if hasattr(transport, "bufferSize"):
        transport.bufferSize = READ_SIZE
    return connected


class _QuietFactory(protocol.Factory):
    """
    ``factory``'s protocols, without a log line each time a pooled
    connection starts or stops (streams open many).
    """

    noisy = False

    def __init__(self, factory):
        self.factory = factory

    def buildProtocol(self, addr):
        return self.factory.buildProtocol(addr)
