"""
Testing across processes without processes: a worker and a client graph
on one ``task.Clock``, joined by treq's ``StubTreq``, and HTTP clients
that fail the way networks do.

Everything runs in the test's own thread, in memory, and time passes only
when the test advances it, so what happens on a slow or broken network is
exact and repeatable.  twisted.web and treq are imported only when a
:class:`WorkerPair` is made.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError

__all__ = ["WORKER_URL", "WorkerPair", "FlakyClient", "CuttingClient"]

#: Base URL of the worker of a :class:`WorkerPair` (no socket behind it).
WORKER_URL = "http://worker"


class WorkerPair:
    """
    A worker serving the graph :attr:`server` and a graph :attr:`client`
    that consumes it, on one ``task.Clock``, their HTTP in memory.

    Blocks made in :attr:`client` reach the worker through :attr:`http`
    (give it as ``client=`` to ``remote_block`` or ``Place``, or use
    :meth:`remote` and :meth:`place`); :meth:`pump` moves requests,
    answers and time along.

    Parameters
    ----------
    token : str, optional
        The worker's bearer token; requests made through :meth:`remote`
        and :meth:`place` carry it.
    isolate_failures : bool
        Whether a failing block of the worker fails only itself and its
        dependents, as in ``pyrf-blocks worker`` (see
        :class:`~pyrf_blocks.graph.Graph`).
    **worker_options
        Further options of :class:`~pyrf_blocks.net.worker.Worker`
        (``allow_files=``, ``max_body=``...).

    Attributes
    ----------
    clock : twisted.internet.task.Clock
        The reactor of both graphs and of the worker.
    server : Graph
        The worker's graph.
    client : Graph
        The graph that consumes the worker's blocks.
    worker : Worker
        Serves :attr:`server`.
    http : treq.testing.StubTreq
        A treq-like client whose requests go straight to the worker.
    url : str
        The worker's base URL, :data:`WORKER_URL`.
    """

    def __init__(self, token=None, isolate_failures=False, **worker_options):
        from twisted.internet.task import Clock
        from treq.testing import StubTreq

        from ..graph import Graph
        from ..net.worker import Worker

        self.token = token
        self.url = WORKER_URL
        self.clock = Clock()
        self.server = Graph(self.clock, isolate_failures=isolate_failures)
        self.client = Graph(self.clock)
        self.worker = Worker(self.server, token=token, **worker_options)
        self.http = StubTreq(self.worker.resource)

    def pump(self, steps=1, step=0.001):
        """
        Deliver pending requests and answers, and advance the clock by
        ``step`` seconds, ``steps`` times.
        """
        for _ in range(steps):
            self.http.flush()
            self.clock.advance(step)
            self.http.flush()

    def run(self, graph=None, limit=20000, step=0.001):
        """
        Pump until ``graph`` is done.

        Parameters
        ----------
        graph : Graph, optional
            The graph to wait for; :attr:`client` by default.
        limit : int
            Most pumps before giving up.
        step : float
            Seconds the clock advances per pump.

        Returns
        -------
        None or twisted.python.failure.Failure
            The outcome of ``graph.done()``.

        Raises
        ------
        AssertionError
            If the graph is not done after ``limit`` pumps.
        """
        outcome = []
        (graph or self.client).done().addBoth(outcome.append)
        for _ in range(limit):
            if outcome:
                return outcome[0]
            self.pump(1, step)
        raise AssertionError(f"not done after {limit} steps")

    def request(self, method, path, **kwargs):
        """
        Send one request to the worker, which may hold it (a long poll).

        Parameters
        ----------
        method : str
            ``"GET"``, ``"POST"``, ``"DELETE"``.
        path : str
            Below the worker's URL: ``"/blocks"``, ``"/streams/src:main:1"``...
        **kwargs
            treq's request options: ``json=``, ``params=``, ``headers=``.

        Returns
        -------
        list
            Empty while the worker holds the request; then
            ``[(status, headers, body)]``, or ``[failure]`` if it failed.
        """
        result = []
        d = self.http.request(method, self.url + path, **kwargs)
        d.addCallback(lambda response: self.http.content(response).addCallback(
            lambda body: result.append((response.code, response.headers, body))))
        d.addErrback(result.append)
        self.http.flush()
        return result

    def call(self, method, path, **kwargs):
        """
        One request that the worker answers at once.

        Returns
        -------
        tuple
            ``(status, headers, body)``.

        Raises
        ------
        AssertionError
            If the worker holds the request.
        """
        result = self.request(method, path, **kwargs)
        assert result, f"{method} {path} was held"
        if not isinstance(result[0], tuple):
            result[0].raiseException()
        return result[0]

    def remote(self, name, kind, **options):
        """
        A ``remote_block`` of :attr:`client` that consumes the worker's
        block ``name``.

        Parameters
        ----------
        name : str
            A block of :attr:`server`.
        kind : str
            The kind of its chunks.
        **options
            Further options of :class:`~pyrf_blocks.net.remote_block`
            (``client=`` a :class:`FlakyClient`, ``remote_policy=``...).

        Returns
        -------
        remote_block
            Idle until something consumes it, like any block.
        """
        from ..net import remote_block

        options.setdefault("client", self.http)
        options.setdefault("graph", self.client)
        options.setdefault("token", self.token)
        return remote_block(f"{self.url}/blocks/{name}", kind, **options)

    def place(self, **options):
        """
        The worker as a ``Place``: ``block(..., proc=pair.place())`` in
        :attr:`client` runs the block on the worker.

        Parameters
        ----------
        **options
            Further options of :class:`~pyrf_blocks.net.Place`
            (``client=``, ``retries=``, ``backoff=``...).

        Returns
        -------
        Place
            Already started: the worker is there.
        """
        from ..net import Place

        options.setdefault("client", self.http)
        options.setdefault("reactor", self.clock)
        options.setdefault("token", self.token)
        return Place(self.url, **options)


class FlakyClient:
    """
    A treq-like client that fails its first ``failures`` requests, then
    passes every request on to ``http``.

    Parameters
    ----------
    http : treq-like client
        Usually :attr:`WorkerPair.http`.
    failures : int
        Requests to fail, counting every method.
    error : callable, optional
        Makes the exception of a failed request; by default a
        ``ConnectionRefusedError``, as from a worker that is not
        listening yet.

    Attributes
    ----------
    failed : int
        Requests failed so far.
    passed : int
        Requests passed on so far.
    """

    def __init__(self, http, failures, error=None):
        self.http = http
        self.failures = failures
        self.error = error or (lambda: ConnectionRefusedError("127.0.0.1:9"))
        self.failed = 0
        self.passed = 0

    def _send(self, method, *args, **kwargs):
        if self.failed < self.failures:
            self.failed += 1
            return defer.fail(self.error())
        self.passed += 1
        return getattr(self.http, method)(*args, **kwargs)

    def request(self, method, url, **kwargs):
        """A request of any method (see :meth:`get`)."""
        return self._send("request", method, url, **kwargs)

    def get(self, url, **kwargs):
        """
        Fail (a Deferred that errbacks) while failures remain, else
        ``http.get``.
        """
        return self._send("get", url, **kwargs)

    def post(self, url, **kwargs):
        """As :meth:`get`, with ``http.post``."""
        return self._send("post", url, **kwargs)

    def put(self, url, **kwargs):
        """As :meth:`get`, with ``http.put``."""
        return self._send("put", url, **kwargs)

    def delete(self, url, **kwargs):
        """As :meth:`get`, with ``http.delete``."""
        return self._send("delete", url, **kwargs)


class CuttingClient:
    """
    A treq-like client that loses every ``every``-th answer to a ``GET``
    (a stream's poll) after the worker has sent it, as a connection cut
    mid-body would; other requests pass untouched.

    A consumer that polls again from its cursor loses nothing.

    Parameters
    ----------
    http : treq-like client
        Usually :attr:`WorkerPair.http`.
    every : int
        Lose the answer of every ``every``-th ``GET``.

    Attributes
    ----------
    polls : int
        ``GET`` requests made so far.
    cut : int
        Answers lost so far.
    """

    def __init__(self, http, every):
        self.http = http
        self.every = every
        self.polls = self.cut = 0

    def get(self, url, **kwargs):
        """
        ``http.get``, whose answer every ``every``-th time fails with
        ``twisted.web.client.ResponseFailed`` once the worker has sent it.
        """
        self.polls += 1
        d = self.http.get(url, **kwargs)
        if self.polls % self.every == 0:
            self.cut += 1
            d.addCallback(self._lose)
        return d

    @staticmethod
    def _lose(response):
        from twisted.web.client import ResponseFailed

        return defer.fail(ResponseFailed(["cut mid-body"]))

    def request(self, method, url, **kwargs):
        """``http.request``, untouched."""
        return self.http.request(method, url, **kwargs)

    def post(self, url, **kwargs):
        """``http.post``, untouched."""
        return self.http.post(url, **kwargs)

    def put(self, url, **kwargs):
        """``http.put``, untouched."""
        return self.http.put(url, **kwargs)

    def delete(self, url, **kwargs):
        """``http.delete``, untouched."""
        return self.http.delete(url, **kwargs)
