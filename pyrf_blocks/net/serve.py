"""
Serving this process's own blocks to the workers that consume them.

When a block placed in another process takes a block of this process as
input (the instrument here, the FFT in a child), this process must serve
that input too: :func:`serve` starts a :class:`~.worker.Worker` for the
graph on demand, on loopback with a random token.  Served on an ``ssl:``
endpoint, its URL is ``https://``, and a worker reading from it trusts the
CA that the script's ``process(url, ca=...)`` trusts for that worker.
"""

import secrets

from twisted.internet import defer

from ..waiting import Outcome
from .worker import Worker

__all__ = ["serve", "streamed", "LOCAL_LISTEN"]

#: Where this process serves its blocks unless told otherwise.
LOCAL_LISTEN = "tcp:0:interface=127.0.0.1"

_served = {}


def serve(graph, listen=LOCAL_LISTEN, token=None, url=None):
    """
    Serve ``graph``'s blocks (once per graph); a Deferred firing with
    ``(base_url, token)``.

    :param listen: Twisted endpoint description (``ssl:...`` for TLS).
    :param token: bearer token; a random one by default.
    :param url: the base URL to give to workers, when they must reach this
        process by another name than the address it listens on.
    """
    entry = _served.get(id(graph))
    if entry is not None and entry[0] is graph:
        return entry[1].wait()
    outcome = Outcome()
    token = token or secrets.token_urlsafe(24)
    worker = Worker(graph, token=token)
    _served[id(graph)] = (graph, outcome, worker)

    def listening(port):
        address = port.getHost()
        scheme = "https" if listen.lower().startswith("ssl:") else "http"
        return (url or f"{scheme}://{address.host}:{address.port}", token)

    def failed(failure):
        del _served[id(graph)]
        return failure

    d = defer.maybeDeferred(worker.listen, listen)
    d.addCallbacks(listening, failed).addBoth(outcome.set)
    return outcome.wait()


def streamed(producer):
    """
    A Deferred that fires when a stream of ``producer`` (a block of a graph
    that :func:`serve` serves) is next opened.
    """
    entry = _served.get(id(producer.graph))
    if entry is None or entry[0] is not producer.graph:
        raise LookupError(f"{producer!r}: its graph is not served")
    return entry[2].when_streamed(producer)
