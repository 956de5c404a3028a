"""
Calculations done by an external service, in any language (seed 001).

The service answers three requests over HTTP, each a JSON POST:

``/process`` ``{"var", "time", "args"}`` → ``{"result"}``
    compute with the state it keeps for ``var``; 409 when it has none.
``/process_state`` ``{"var", "time", "state", "args"}`` → ``{"state", "result"}``
    compute from the given state (``null``: the initial one) and keep the
    new state for ``var``.
``/get_state`` ``{"var", "time"}`` → ``{"state"}``
    the state it keeps for ``var``; 409 when it has none.

:class:`external_calculation` sends every request for one variable to the
same node, chosen by consistent hashing over the services
(:class:`~pyrf_blocks.cluster.hashring.HashRing`), so that node keeps the
state and each request carries only new values.  The block keeps the last
state it fetched (every ``state_every`` requests) and the arguments sent
since; when the node changes — it went down, or lost the state — the next
node is brought up to date with ``/process_state`` from that state over
those arguments, and the results go on as if nothing happened.  That
state and list are the block's own state (``IStateful``), so a cluster
worker that takes the block over does the same.
"""

import json
from collections import deque

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from ..block import Block
from ..errors import RemoteError
from ..interfaces import IChunkProducer, IRecordsProducer, IStateful
from ..registry import register

__all__ = ["external_calculation"]

log = Logger()

#: Chunks queued for the service before the inputs are paused.
QUEUE = 8


class _NoState(RemoteError):
    """The service has no state for the variable (409)."""


class _Down(RemoteError):
    """The node did not answer (refused, reset, timed out) or answered 5xx."""


@register
@implementer(IRecordsProducer, IStateful)
class external_calculation(Block):
    """
    One result per input chunk, computed by an external service from the
    chunk's rows: ``args`` is ``{"times": [ns...], "values": [...]}``, and
    the result (a number) is emitted as a record at the time of the chunk's
    last row.  A chunk without rows asks nothing.

    :param services: the services' base URLs; a variable goes to one of them
        by consistent hashing, to the next one when it is down.
    :param variable: the name of what is computed (``var`` of each request).
    :param state_every: fetch the state from the service after this many
        requests (the arguments since are kept to rebuild it elsewhere).
    :param timeout: seconds a request may take before its node counts as down.
    :param retry_down: seconds before a node that was down is tried again.
    :param token: bearer token every request carries (``pyrf-blocks
        worker`` needs the one it was started with, see below).

    ``pyrf-blocks worker`` processes serve the calculations registered in
    :mod:`pyrf_blocks.calculations` under ``/calculations/NAME``: give
    ``services`` as ``http://HOST:PORT/calculations/mean``, one per worker,
    and the ring is made of our own workers.
    """

    type_name = "external_calculation"
    kind = "records"
    requires = (IChunkProducer,)
    param_units = {"state_every": "count", "timeout": "s", "retry_down": "s"}

    def __init__(self, producer, services, variable, state_every=16, timeout=5.0,
                 retry_down=30.0, token=None, **kwargs):
        from ..cluster.hashring import HashRing

        services = [services] if isinstance(services, str) else list(services)
        if not services or not all(isinstance(s, str) and s.startswith(("http://", "https://"))
                                   for s in services):
            raise ValueError(f"external_calculation: services are http(s):// URLs, "
                             f"not {services!r}")
        if not isinstance(variable, str) or not variable:
            raise ValueError(f"external_calculation: variable is a non-empty name, "
                             f"not {variable!r}")
        if int(state_every) < 1:
            raise ValueError(f"external_calculation: state_every must be at least 1, "
                             f"not {state_every!r}")
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("external_calculation: token is a non-empty string")
        self.services = [s.rstrip("/") for s in services]
        self.token = token
        self.variable = variable
        self.state_every = int(state_every)
        self.timeout = float(timeout)
        self.retry_down = float(retry_down)
        self._ring = HashRing(self.services)
        self._client = None
        #: Requests answered from a rebuilt state (the node changed).
        self.rebuilds = 0
        super().__init__(producer, **kwargs)

    def reset(self):
        self._state = None
        self._since = []  # [(time, args)] sent after self._state was fetched
        self._node = None  # the node that holds the current state
        self._down = {}  # node -> reactor time it went down
        self._queue = deque()
        self._busy = False
        self._ending = False
        self._held = False

    # IStateful: the last fetched state and what was sent since.

    def get_state(self):
        return {"version": 1, "state": json.dumps(self._state),
                "since": [[t, json.dumps(a)] for t, a in self._since]}

    def set_state(self, state):
        if state.get("version") != 1:
            raise ValueError(f"{self.label}: unknown state version {state.get('version')!r}")
        self._state = json.loads(state["state"])
        self._since = [(t, json.loads(a)) for t, a in state["since"]]
        self._node = None  # whoever serves next is brought up to date

    # The flow: one request at a time, in order; the inputs wait when full.

    def compute(self, chunk):
        self._queue.append(chunk)
        if len(self._queue) >= QUEUE and not self._held:
            self._held = True
            for edge in self.input_edges:
                if edge is not None:
                    edge.pauseProducing()
        self._pump()

    def _pump(self):
        if self._busy:
            return
        if not self._queue:
            if self._ending:
                self._ending = False
                super().end()
            return
        self._busy = True
        chunk = self._queue.popleft()
        d = defer.ensureDeferred(self._handle(chunk))
        d.addErrback(lambda failure: self.graph.fail(self, failure))
        d.addBoth(self._handled)

    def _handled(self, _):
        self._busy = False
        if self._held and len(self._queue) < QUEUE // 2:
            self._held = False
            for edge in self.input_edges:
                if edge is not None:
                    edge.resumeProducing()
        if self.graph.failure is None:
            self._pump()

    @property
    def holding(self):
        """True while chunks wait for the service's answers."""
        return self._busy or bool(self._queue) or super().holding

    def end(self):
        # End only once every queued chunk has its result.
        if self._busy or self._queue:
            self._ending = True
            return
        super().end()

    async def _handle(self, chunk):
        if not len(chunk.data):
            return
        if chunk.kind == "records":
            times = chunk.times
        else:
            times = [chunk.time_of(i) for i in range(len(chunk.data))]
        values = chunk.data.tolist()
        time = int(times[-1])
        args = {"times": [int(t) for t in times], "values": values}
        result = await self._process(time, args)
        self._since.append((time, args))
        if len(self._since) >= self.state_every:
            try:
                answer = await self._call(self._node, "get_state", {"var": self.variable,
                                                                   "time": time})
                self._state, self._since = answer["state"], []
            except (_Down, _NoState) as error:
                log.warn("{block}: could not fetch the state ({error}); keeping the "
                         "arguments to rebuild it", block=self.label, error=error)
        if isinstance(result, bool) or not isinstance(result, (int, float)):
            raise RemoteError(f"{self.label}: the service answered {result!r} for "
                              f"{self.variable!r}; a result is a number")
        self.emit_records([time], [float(result)], start=chunk.start, end=chunk.end,
                          meta={"variable": self.variable})

    async def _process(self, time, args):
        while True:
            node = self._pick()
            try:
                if node == self._node:
                    try:
                        answer = await self._call(node, "process", {
                            "var": self.variable, "time": time, "args": args}, retry=False)
                        return answer["result"]
                    except _Down:
                        # Maybe it did the step and the answer was lost: a
                        # repeated /process would count the values twice, so
                        # rebuild there, from what is known, instead.
                        self._node = None
                        continue
                return await self._rebuild(node, time, args)
            except _NoState:
                self._node = None  # it restarted or forgot: rebuild there
            except _Down as error:
                log.warn("{block}: {node} is down ({error}); the next node takes over",
                         block=self.label, node=node, error=error)
                self._down[node] = self.graph.reactor.seconds()
                self._node = None

    def _pick(self):
        now = self.graph.reactor.seconds()
        down = {n for n, since in self._down.items() if now - since < self.retry_down}
        try:
            return self._ring.node_for(self.variable, without=down)
        except LookupError:
            raise RemoteError(f"{self.label}: every service is down: "
                              f"{', '.join(self.services)}") from None

    async def _rebuild(self, node, time, args):
        state = self._state
        for t, earlier in self._since:
            answer = await self._call(node, "process_state", {
                "var": self.variable, "time": t, "state": state, "args": earlier})
            state = answer["state"]
        answer = await self._call(node, "process_state", {
            "var": self.variable, "time": time, "state": state, "args": args})
        self._node = node
        self.rebuilds += 1
        return answer["result"]

    async def _call(self, node, request, body, retry=True):
        from ..net.connections import new_client

        if self._client is None:
            self._client = new_client(self.graph.reactor)
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2) if retry else (2,):
            try:
                response = await self._client.post(
                    f"{node}/{request}", data=json.dumps(body).encode(), headers=headers,
                    timeout=self.timeout, reactor=self.graph.reactor)
                content = await response.content()
                break
            except Exception as error:  # refused, reset, timed out
                # A kept-alive connection the service has since closed fails
                # at once: one more try on a new connection tells that from
                # a node that is down (for requests that may be repeated).
                if attempt == 2:
                    raise _Down(f"{node}/{request}: {error}") from error
        if response.code == 409:
            raise _NoState(f"{node} has no state for {self.variable!r}")
        if response.code >= 500:
            raise _Down(f"{node}/{request} answered {response.code}")
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
        if response.code != 200 or not isinstance(answer, dict):
            raise RemoteError(f"{self.label}: {node}/{request} answered {response.code}: "
                              f"{content[:200]!r}")
        return answer
