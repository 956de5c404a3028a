"""
Serving this process's own blocks to the workers that consume them.

When a block placed in another process takes a block of this process as
input (the instrument here, the FFT in a child), this process must serve
that input too: :func:`serve` starts a :class:`~.worker.Worker` for the
graph on demand, on loopback with a random token.  Served on an ``ssl:``
endpoint, its URL is ``https://``, and a worker reading from it trusts the
CA that the script's ``process(url, ca=...)`` trusts for that worker.

The graph keeps what serves it (``graph.served``), so a graph is served
once however many placed blocks read from it, and :meth:`Served.stop`
ends it.
"""

import secrets

from twisted.internet import defer

from ..waiting import Outcome

__all__ = ["serve", "Served", "streamed", "LOCAL_LISTEN"]

#: Where this process serves its blocks unless told otherwise.
LOCAL_LISTEN = "tcp:0:interface=127.0.0.1"


def serve(graph, listen=LOCAL_LISTEN, token=None, url=None):
    """
    Serve ``graph``'s blocks; its :class:`Served` (the one that already
    serves it, if any: then the arguments are not used).

    :param listen: Twisted endpoint description (``ssl:...`` for TLS).
    :param token: bearer token; a random one by default.
    :param url: the base URL to give to workers, when they must reach this
        process by another name than the address it listens on.
    """
    served = graph.served
    if served is None:
        served = graph.served = Served(graph, listen, token, url)
        served.start()
    return served


class Served:
    """
    A graph's blocks served over HTTP to the workers that read them: a
    :class:`~.worker.Worker` of the graph, listening on ``listen``.  Made
    by :func:`serve`.
    """

    def __init__(self, graph, listen=LOCAL_LISTEN, token=None, url=None):
        from .worker import Worker  # twisted.web: only a served graph needs it

        self.graph = graph
        self.listen = listen
        self.token = token or secrets.token_urlsafe(24)
        self.worker = Worker(graph, token=self.token)
        #: The listening port, once it listens (``None`` again once stopped).
        self.port = None
        self.stopped = False
        self._url = url
        self._address = Outcome()

    def __repr__(self):
        state = "stopped" if self.stopped else self._url or "starting"
        return f"<Served {self.graph!r} {state}>"

    def start(self):
        """
        Start listening (:func:`serve` does); see :meth:`address`.
        """
        d = defer.maybeDeferred(self.worker.listen, self.listen)
        d.addCallbacks(self._listening, self._failed).addBoth(self._address.set)

    def address(self):
        """
        A Deferred firing with ``(base_url, token)`` once it listens (or
        failing with why it cannot).
        """
        return self._address.wait()

    def stop(self):
        """
        Stop listening and close every stream served (their readers' polls
        are answered 410); a Deferred firing once the port is closed.  A
        later :func:`serve` of the graph starts a new one.
        """
        if self.graph.served is self:
            self.graph.served = None
        self.stopped = True
        self.worker.stop_reclaiming()
        self._close_streams()

        def unlisten(_):  # (a failure to listen needs no stopping)
            port, self.port = self.port, None
            return port.stopListening() if port is not None else None
        d = self._address.wait().addBoth(unlisten)
        # Streams opened while the port was closing go too.
        return d.addCallback(lambda _: self._close_streams())

    def _close_streams(self):
        streams = self.worker.streams
        for ident, stream in list(streams.items()):
            stream.close()
            del streams[ident]

    def _listening(self, port):
        self.port = port
        address = port.getHost()
        scheme = "https" if self.listen.lower().startswith("ssl:") else "http"
        self._url = self._url or f"{scheme}://{address.host}:{address.port}"
        return (self._url, self.token)

    def _failed(self, failure):
        if self.graph.served is self:
            self.graph.served = None  # the next serve() tries again
        return failure


def streamed(producer):
    """
    A Deferred that fires when a stream of ``producer`` (a block of a graph
    that :func:`serve` serves) is next opened.
    """
    served = producer.graph.served
    if served is None:
        raise LookupError(f"{producer!r}: its graph is not served")
    return served.worker.when_streamed(producer)
