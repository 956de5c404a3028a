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

Imported only by what reaches a worker: it loads ``twisted.web`` and treq.
"""

from treq.client import HTTPClient
from twisted.internet import defer, protocol
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, UNKNOWN_LENGTH
from zope.interface import implementer

from .tls import explaining_agent, trust_policy

__all__ = ["new_client", "StreamEndpoints", "BytesBody", "READ_SIZE",
           "MAX_PERSISTENT_PER_HOST"]

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
    return HTTPClient(explaining_agent(agent, pem), data_to_body_producer=_body_producer)


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

    def endpointForURI(self, uri):
        endpoint = HostnameEndpoint(self.reactor, uri.host.decode("ascii"), uri.port)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self.policy.creatorForNetloc(uri.host, uri.port),
                                     endpoint)
        elif uri.scheme != b"http":
            raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
        return _ReadingEndpoint(endpoint)


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
