"""
Shared pieces of the tests of pyrf_blocks.net: a worker and its client on
one task.Clock, joined by treq's StubTreq, and the pump that drives them.
"""

import numpy as np
from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from treq.testing import StubTreq

from pyrf_blocks.block import Block
from pyrf_blocks.graph import Graph
from pyrf_blocks.net import Worker

WORKER = "http://worker"


class Pair:
    """
    A worker serving ``server`` and a ``client`` graph, on one clock.
    """

    def __init__(self, token=None, **worker_options):
        self.clock = Clock()
        self.server = Graph(self.clock)
        self.client = Graph(self.clock)
        self.worker = Worker(self.server, token=token, **worker_options)
        self.http = StubTreq(self.worker.resource)

    def pump(self, steps=1, step=0.001):
        for _ in range(steps):
            self.http.flush()
            self.clock.advance(step)
            self.http.flush()

    def run(self, graph=None, limit=20000, step=0.001):
        """
        Pump until ``graph`` (the client graph) is done; its outcome.
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
        Send one request; a list that receives ``(status, headers, body)``
        once the worker answers (it may hold the request).
        """
        result = []
        d = self.http.request(method, WORKER + path, **kwargs)
        d.addCallback(lambda response: self.http.content(response).addCallback(
            lambda body: result.append((response.code, response.headers, body))))
        d.addErrback(result.append)
        self.http.flush()
        return result

    def call(self, method, path, **kwargs):
        """
        One request answered at once: ``(status, headers, body)``.
        """
        result = self.request(method, path, **kwargs)
        assert result, f"{method} {path} was held"
        if not isinstance(result[0], tuple):
            result[0].raiseException()
        return result[0]


class manual_source(Block):
    """
    A producer the test drives by hand: :meth:`push` emits one chunk of
    ``n`` samples, :meth:`finish` ends the stream.
    """

    type_name = "manual_source"
    kind = "iq"

    def __init__(self, rate=1e6, **kwargs):
        self.rate = rate
        self.samples = 0
        super().__init__(**kwargs)

    def push(self, n=4, dtype=np.complex64):
        first = self.samples
        self.samples += n
        data = np.arange(first, self.samples).astype(dtype)
        return self.emit(data, round(first * 1e9 / self.rate),
                         round(self.samples * 1e9 / self.rate), self.rate,
                         {"center_frequency": 1e9})

    def finish(self):
        self.end()


class flaky_client:
    """
    Refuses the first ``failures`` requests, then passes them to ``http``.
    """

    def __init__(self, http, failures):
        self.http = http
        self.failures = failures
        self.refused = 0

    def _call(self, method, *args, **kwargs):
        if self.refused < self.failures:
            self.refused += 1
            return defer.fail(ConnectionRefusedError("127.0.0.1:9"))
        return getattr(self.http, method)(*args, **kwargs)

    def get(self, *args, **kwargs):
        return self._call("get", *args, **kwargs)

    def post(self, *args, **kwargs):
        return self._call("post", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._call("delete", *args, **kwargs)
