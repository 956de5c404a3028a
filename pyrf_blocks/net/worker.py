"""
The worker: a twisted.web site that serves the blocks of one graph.

Control API (JSON in, JSON out; every error is ``{"error": message}``):

=================================  ======================================
``GET /health``                    liveness, block and stream counts,
                                   the failed blocks and why
``GET /blocks``                    every block, with its state (idle,
                                   active, failed), outputs and their
                                   edges' and streams' statistics
``POST /blocks``                   create a block of a registered type
``GET /blocks/{name}``             one block
``DELETE /blocks/{name}``          remove a block nothing else consumes
``POST /blocks/{name}/streams``    open a stream of one of the block's
                                   outputs (``{"output": "late"}``; the
                                   main one by default)
``POST /blocks/{name}/stop``       end a source's stream
``GET /blocks/{name}/finished``    long-poll a sink until it has seen
                                   the end of its inputs (``?wait=s``;
                                   ``204`` when it has not yet)
``GET /streams``                   every stream's statistics
``GET /streams/{id}``              long-poll a stream (see :mod:`.stream`)
``DELETE /streams/{id}``           close a stream
``GET /calculations``              the registered calculations
``POST /calculations/{name}/...``  seed 001's ``process``,
                                   ``process_state`` and ``get_state``
                                   for the calculation ``name`` (see
                                   :mod:`pyrf_blocks.calculations`)
``GET /metrics``                   metrics in Prometheus's text format
                                   (:mod:`pyrf_blocks.metrics`)
``/computations/...``              a cluster worker's computations'
                                   outputs, read by other computations
                                   (:mod:`pyrf_blocks.cluster.edges`)
=================================  ======================================

Only registered block types can be created: a request names a type, never
an import path; types that read or write files (``register(remote=False)``)
only by a worker started with ``allow_files`` (``--allow-files``; children
of :func:`~.placement.process` are).  With a token, every request must carry
``Authorization: Bearer <token>`` (401 otherwise).  Request bodies and
headers are size-limited, JSON bodies nest at most :data:`MAX_JSON_DEPTH`
deep, and a request must arrive whole within ``request_deadline`` seconds
of its first byte (:data:`REQUEST_DEADLINE`; ``--request-deadline``): a
client trickling headers or a body is answered 408 and cut off.

A block's input is named as ``"fft"`` (its main output), ``"window:late"``
or ``{"block": "window", "output": "late"}`` (another output), or as the
URL of a block on another worker (``{"url": ..., "kind": ..., "output":
...}``).  A stream's id names what it reads, ``{block}:{output}:{n}``,
``n`` counting the streams of that output on this worker, never reused.
Its answer also gives the stream's ``instance`` (random; see :mod:`.stream`).

A request that opens streams may carry a ``key`` the client chose (random,
one per stream it means to open): a second request with the same key, as
a client sends when the answer to the first was lost, is answered with the
stream(s) the first one opened (``200``, the same answer), not with new
ones.  Without it, a lost answer leaves a stream nobody reads, holding the
block (see :data:`.stream.FIRST_POLL_TIMEOUT`), while the client's new
stream starts where the block has got to by then, and what the block
emitted in between reached no reader.  A key whose streams are closed
already is answered ``410``; the last :data:`MAX_STREAM_KEYS` keys are kept.

Nothing a client made outlives its use by more than ``lease`` seconds
(:data:`LEASE`, ``--lease``): a stream nobody polls for that long is
closed, and a block created by a request is removed once that long has
passed since a request last named it and nothing uses it (no stream of it,
no block reading it).  Freed memory is then handed back to the system.
"""

import hmac
import ipaddress
import json
import re
from collections import OrderedDict

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import http, resource, server

from ..block import MAIN, Sink, Source, block_of, split_reference
from ..calculations import CalculationService
from ..errors import (HTTPError, NoCalculationState, ParameterError, UnknownBlockType,
                      UnknownCalculation)
from ..interfaces import IOutput
from ..memory import release_freed_memory
from ..params import MAX_SECONDS, check_params, check_seconds
from ..registry import lookup, parameters, remote_allowed
from ..waiting import Waiters
from .client import remote_block
from .replies import error_reply, json_reply
from .stream import (DEFAULT_WAIT, ServedStream, instance_argument, poll_arguments,
                     seconds_argument, shm_argument)
from .tls import check_certificate_files

__all__ = ["Worker", "check_listen", "check_certificates", "check_limits", "MAX_BODY",
           "MAX_BODY_LIMIT", "MAX_SECONDS", "MAX_BLOCKS", "MAX_STREAMS", "MAX_COUNT_LIMIT",
           "MAX_HEADERS_SIZE", "REQUEST_DEADLINE", "IDLE_TIMEOUT", "MAX_JSON_DEPTH", "LEASE"]

log = Logger()

#: Largest request body accepted, bytes.
MAX_BODY = 64 << 10
#: Largest body limit a worker may be given (``--max-body``): a body is
#: held whole and parsed as JSON, so this bounds what one request costs.
MAX_BODY_LIMIT = 64 << 20
#: Most blocks a worker holds (``POST /blocks`` beyond it is a 429): each
#: may hold chunks and compute, and nothing else bounds how many a client
#: makes (3 000 simulated instruments were made in 7.5 s, measured).
MAX_BLOCKS = 1000
#: Most streams open on a worker at once (``POST .../streams`` beyond it is
#: a 429): each keeps up to 32 MiB of chunks for its reader.
MAX_STREAMS = 1000
#: Largest ``max_blocks`` and ``max_streams`` a worker may be given
#: (``--max-blocks``, ``--max-streams``), a hundred times the defaults:
#: beyond, a limit bounds nothing a machine could hold (as many streams
#: may keep 32 MiB each; as many simulated instruments, each with a chunk
#: of its default 128 KiB in flight, 12 GiB), and is a typo or "none".
MAX_COUNT_LIMIT = 100_000
#: Largest total size of a request's headers, bytes.
MAX_HEADERS_SIZE = 8 << 10
#: Seconds a request may take to arrive, from its first byte to the end of
#: its body: a client that trickles headers or a body is cut off (408).
REQUEST_DEADLINE = 30.0
#: Seconds a connection may stay open with no request in progress.
IDLE_TIMEOUT = 300
#: Seconds a block or stream that a client created is kept once nothing
#: uses it (no poll of the stream; no request naming the block, no stream
#: of it and no block reading it): what a vanished client left is then
#: removed.  Clients delete what they made when they finish; this is for
#: those that cannot (killed, cut off).
LEASE = 120.0
#: Deepest nesting of arrays and objects in a JSON body (a block spec
#: needs 4); deeper bodies are refused before parsing.
MAX_JSON_DEPTH = 32
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}\Z")
#: Stream keys remembered (a retried ``POST .../streams`` is recognised by
#: its key while it is among the last this many).
MAX_STREAM_KEYS = 4096
_KEY = re.compile(r"[A-Za-z0-9_-]{8,128}\Z")
#: Keyword arguments of every block that a request may also set.
_COMMON_PARAMETERS = {"policy", "maxsize"}


def _endpoint(description):
    """
    The kind (``tcp``, ``ssl``...) and the ``key=value`` options of a
    Twisted endpoint description.
    """
    fields = re.split(r"(?<!\\):", description)
    options = dict(field.replace("\\:", ":").split("=", 1)
                   for field in fields[1:] if "=" in field)
    return fields[0].lower(), options


#: Endpoint kinds a worker listens on.
LISTEN_KINDS = ("tcp", "tcp6", "ssl", "unix")


def check_endpoint(description):
    """
    Refuse (``ValueError`` naming it and what is wrong) an endpoint
    description that is not one a worker can listen on: an unknown kind, a
    port that is not a number, an interface that is not an IP address.
    """
    kind, options = _endpoint(description)
    example = "e.g. tcp:8750:interface=127.0.0.1"
    if description.split(":", 1)[0] not in LISTEN_KINDS:  # (Twisted's are lower case)
        raise ValueError(f"{description!r} is not an endpoint to listen on: it must start "
                         f"with {', '.join(k + ':' for k in LISTEN_KINDS)} ({example})")
    if kind == "unix":
        return
    fields = re.split(r"(?<!\\):", description)
    port = options.get("port") or next((f for f in fields[1:] if "=" not in f), "")
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{description!r}: the port must be a number from 0 to 65535, "
                         f"got {port!r} ({example})")
    interface = options.get("interface")
    if interface is not None and interface != "localhost":
        try:
            ipaddress.ip_address(interface)
        except ValueError:
            raise ValueError(f"{description!r}: interface {interface!r} is not an IP "
                             f"address of this machine ({example})") from None


def check_limits(max_body=MAX_BODY, request_deadline=REQUEST_DEADLINE, lease=LEASE,
                 names=None, max_blocks=MAX_BLOCKS, max_streams=MAX_STREAMS):
    """
    Check a worker's limits: ``max_body`` a whole number of bytes from 1
    to :data:`MAX_BODY_LIMIT`, ``max_blocks`` and ``max_streams`` whole
    numbers from 1 to :data:`MAX_COUNT_LIMIT`, ``request_deadline`` and
    ``lease`` more than 0 and less than :data:`~pyrf_blocks.params.MAX_SECONDS`
    seconds (:func:`~pyrf_blocks.params.check_seconds`; ``lease`` may be
    ``None``: kept until deleted).  ``ValueError`` names the first out of
    range, as ``names`` calls it (``{"lease": "--lease"}``) or by its own
    name.
    """
    names = names or {}
    for name, value, what, limit in (("max_body", max_body, "number of bytes", MAX_BODY_LIMIT),
                                     ("max_blocks", max_blocks, "number", MAX_COUNT_LIMIT),
                                     ("max_streams", max_streams, "number", MAX_COUNT_LIMIT)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ValueError(f"{names.get(name, name)} must be a whole {what} from 1 to "
                             f"{limit}, got {value!r}")
    for name, value in (("request_deadline", request_deadline), ("lease", lease)):
        if name == "lease" and value is None:
            continue  # (kept until deleted)
        check_seconds(value, names.get(name, name))


def check_listen(description, token):
    """
    Refuse (``ValueError``) a Twisted endpoint description that is not one
    to listen on (:func:`check_endpoint`), or that binds a non-loopback
    address when there is no token.
    """
    check_endpoint(description)
    kind, options = _endpoint(description)
    if kind == "unix":
        return
    interface = options.get("interface", "")
    loopback = interface == "localhost" or (
        interface != "" and ipaddress.ip_address(interface).is_loopback)
    if not loopback and not token:
        where = f"interface {interface}" if interface else "every interface"
        raise ValueError(f"refusing to listen on {where} ({description!r}) "
                         "without a token: give --token, or bind 127.0.0.1")


def check_certificates(description):
    """
    Refuse (``ValueError``, naming the option and the file) an ``ssl:``
    endpoint description whose key and certificate files cannot be loaded.
    """
    kind, options = _endpoint(description)
    if kind == "ssl":
        # Twisted's defaults: server.pem holds both, unless certKey is given.
        check_certificate_files(options.get("privateKey", "server.pem"),
                                options.get("certKey"))


class _LimitedRequest(server.Request):
    """
    A request whose body is kept only up to ``max_body`` bytes; a larger one
    is read, discarded and answered 413.
    """

    max_body = MAX_BODY
    too_large = False

    def gotLength(self, length):
        self._received = 0
        self.too_large = length is not None and length > self.max_body
        super().gotLength(0 if self.too_large else length)

    def handleContentChunk(self, data):
        self._received += len(data)
        if self._received > self.max_body:
            self.too_large = True
        if not self.too_large:
            super().handleContentChunk(data)


#: Bytes a worker's connection hands the kernel in one send (Twisted's
#: default is 128 KiB): a chunk of a megabyte goes in one or two calls.
SEND_SIZE = 512 << 10


class _LimitedChannel(http.HTTPChannel):
    """
    A connection whose requests must arrive whole within
    ``request_deadline`` seconds of their first byte (headers and body),
    else it is answered 408 and closed: a client that trickles bytes cannot
    hold a connection forever.  Once a request has arrived, answering it
    (a long poll) takes as long as it needs.
    """

    totalHeadersSize = MAX_HEADERS_SIZE
    maxHeaders = 64
    request_deadline = REQUEST_DEADLINE
    _deadline = None

    def dataReceived(self, data):
        if self._deadline is None and not self._handlingRequest:
            self._deadline = self.callLater(self.request_deadline, self._too_slow)
        super().dataReceived(data)

    def allContentReceived(self):
        self._cancel_deadline()
        super().allContentReceived()

    def connectionLost(self, reason):
        self._cancel_deadline()
        super().connectionLost(reason)

    def _cancel_deadline(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self):
        self._deadline = None
        log.info("cut off {peer}: no whole request within {deadline} s",
                 peer=str(self.transport.getPeer()), deadline=self.request_deadline)
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                             b"Content-Length: 0\r\n\r\n")
        self.loseConnection()

    def connectionMade(self):
        super().connectionMade()
        # A lingering answer writes each chunk when it is emitted: send it
        # at once rather than wait for the reader's acknowledgement of the
        # last segment (Nagle's algorithm, up to 40 ms on Linux).
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        if hasattr(self.transport, "SEND_LIMIT"):
            self.transport.SEND_LIMIT = SEND_SIZE


class _QuietSite(server.Site):
    """
    A site that does not log every request (a stream is polled thousands
    of times a second).
    """

    protocol = _LimitedChannel
    noisy = False

    def log(self, request):
        pass


def _failure_text(block):
    """
    Why ``block`` failed, as answers say it.
    """
    failure = block.failure
    return (f"{block.label} failed on the worker: {failure.type.__name__}: "
            f"{failure.getErrorMessage()}")


def _opened(stream):
    """
    The answer to a request that opened ``stream``.
    """
    answer = {"id": stream.id, "kind": stream.kind, "block": stream.block.name,
              "output": stream.output.output_name, "path": f"/streams/{stream.id}",
              "instance": stream.instance}
    if stream.ring is not None:
        answer["shm"] = stream.ring.describe()
    return answer


def _from_loopback(request):
    """
    Whether ``request`` came over loopback (from a process of this host).
    """
    host = getattr(request.getClientAddress(), "host", None)
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _json_depth(body):
    """
    How deeply ``body``'s arrays and objects nest (strings left aside).
    """
    depth = deepest = 0
    for byte in _JSON_STRING.sub(b'""', body):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def _json_body(request, limit):
    request.content.seek(0)
    body = request.content.read(limit + 1)
    if getattr(request, "too_large", False) or len(body) > limit:
        raise HTTPError(413, f"request body exceeds {limit} bytes")
    if not body:
        return {}
    if _json_depth(body) > MAX_JSON_DEPTH:
        raise HTTPError(400, f"malformed JSON body: nested deeper than {MAX_JSON_DEPTH}")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise HTTPError(400, f"malformed JSON body: {error}") from None
    if not isinstance(value, dict):
        raise HTTPError(400, "the JSON body must be an object")
    return value


class _Root(resource.Resource):
    isLeaf = True

    def __init__(self, worker):
        super().__init__()
        self.worker = worker

    def render(self, request):
        try:
            self.worker.authorise(request)
            return self.worker.route(request)
        except HTTPError as error:
            return error_reply(request, error.code, error.message)
        except Exception:
            log.failure("answering {method} {uri}", method=request.method,
                        uri=request.uri)
            return error_reply(request, 500, "internal error; see the worker's log")


class Worker:
    """
    Serves the blocks of ``graph`` over HTTP.

    :param graph: the graph whose blocks are created and served.
    :param token: bearer token every request must carry (``None``: none).
    :param clock: times held polls out; the graph's reactor by default.
    :param client: HTTP client of the ``remote_block`` inputs it creates.
    :param allow_files: also create the block types that read or write
        files on this machine (recorders, replays) for callers.
    :param request_deadline: seconds a request may take to arrive, headers
        and body (:data:`REQUEST_DEADLINE`).
    :param lease: seconds what a client made is kept once unused
        (:data:`LEASE`); ``None``: until deleted.
    :param max_blocks: most blocks requests may make (:data:`MAX_BLOCKS`).
    :param max_streams: most streams open at once (:data:`MAX_STREAMS`).

    Each limit is checked by :func:`check_limits` (``ValueError``).
    """

    def __init__(self, graph, token=None, clock=None, client=None, max_body=MAX_BODY,
                 allow_files=False, request_deadline=REQUEST_DEADLINE, lease=LEASE,
                 max_blocks=MAX_BLOCKS, max_streams=MAX_STREAMS):
        check_limits(max_body, request_deadline, lease, max_blocks=max_blocks,
                     max_streams=max_streams)
        self.graph = graph
        #: Most blocks requests may make, and streams open at once.
        self.max_blocks, self.max_streams = max_blocks, max_streams
        self.token = token
        self.allow_files = allow_files
        self.clock = clock or graph.reactor
        self.client = client
        self.max_body = max_body
        self.streams = {}
        self._stream_waiters = {}
        #: Streams opened so far per (block name, output name).
        self._stream_counts = {}
        #: Seed 001's calculations served on /calculations.
        self.calculations = CalculationService()
        #: Prometheus collectors served on /metrics besides the graph's own
        #: (a cluster worker adds its computations').
        self.collectors = []
        #: What serves ``/computations/...`` (a cluster worker's runner:
        #: :class:`~pyrf_blocks.cluster.edges.Served`); None: nothing.
        self.computations = None
        self._metrics = None
        #: ``key`` of a request that opened streams → (what it asked, their ids).
        self._stream_keys = OrderedDict()
        self.resource = _Root(self)
        self.site = _QuietSite(self.resource, timeout=IDLE_TIMEOUT)
        self.site.requestFactory = type("_Request", (_LimitedRequest,), {"max_body": max_body})
        self.site.protocol = type("_Channel", (_LimitedChannel,),
                                  {"request_deadline": request_deadline})
        self.lease = lease
        #: When a request last named each block that requests created.
        self._touched = {}
        self._sweeper = None
        self._freed = False
        #: Waiters for the failure of a block, by block (isolated failures).
        self._block_failure_waiters = {}
        if graph.isolate_failures:
            graph.observe_block_failures(self._blocks_failed)
        else:
            self._watch_graph()

    def listen(self, description="tcp:8750:interface=127.0.0.1", reactor=None):
        """
        Listen on a Twisted endpoint description; a Deferred firing with the
        listening port.  Non-loopback addresses need a token; ``ssl:`` ones
        key and certificate files that load.
        """
        from twisted.internet.endpoints import serverFromString

        check_listen(description, self.token)
        check_certificates(description)
        return serverFromString(reactor or self.graph.reactor, description).listen(self.site)

    def _watch_graph(self):
        def failed(block):
            failure = self.graph.failure
            message = (f"{block.label} failed on the worker: "
                       f"{failure.type.__name__}: {failure.getErrorMessage()}")
            for stream in self.streams.values():
                stream.fail(message)
        self.graph.when_failed().addCallback(failed)

    def _blocks_failed(self, block, failed):
        # Only the failed block and what depends on it: other streams go on.
        failed = set(failed)
        for stream in tuple(self.streams.values()):
            if stream.block in failed:
                stream.fail(_failure_text(stream.block))
        for dependent in failed:
            waiters = self._block_failure_waiters.pop(dependent, None)
            if waiters is not None:
                waiters.fire(dependent)

    def _when_fails(self, block):
        """
        A Deferred firing when ``block`` fails (or, in a graph that does
        not isolate failures, when any block does).
        """
        if not self.graph.isolate_failures:
            return self.graph.when_failed()
        return self._block_failure_waiters.setdefault(block, Waiters()).wait()

    def _failure_of(self, block):
        """
        Why ``block`` cannot serve (its own failure, or its graph's), or None.
        """
        if block.failure is not None:
            return _failure_text(block)
        failure = self.graph.failure
        if failure is not None:
            return (f"{self.graph.failed_block.label} failed on the worker: "
                    f"{failure.type.__name__}: {failure.getErrorMessage()}")
        return None

    # Requests.

    def authorise(self, request):
        if self.token is None:
            return
        given = request.getHeader(b"authorization") or b""
        expected = b"Bearer " + self.token.encode("utf-8")
        if not hmac.compare_digest(given, expected):
            request.setHeader(b"www-authenticate", b'Bearer realm="pyrf-blocks"')
            raise HTTPError(401, "missing or wrong bearer token")

    def route(self, request):
        method = request.method.decode("ascii", "replace")
        path = [part.decode("utf-8", "replace") for part in request.postpath]
        if path and path[-1] == "":
            path.pop()
        self._touch(path)
        match path:
            case ["health"] if method == "GET":
                return json_reply(request, self.health())
            case ["metrics"] if method == "GET":
                body, content_type = self.metrics()
                request.setHeader(b"content-type", content_type.encode("ascii"))
                return body
            case ["calculations"] if method == "GET":
                return json_reply(request, {"calculations": [
                    {"name": c.name, "version": c.version, "doc": c.doc}
                    for c in self.calculations.calculations.values()]})
            case ["calculations", name, ("process" | "process_state" | "get_state") as what] \
                    if method == "POST":
                return json_reply(request, self.calculate(
                    name, what, _json_body(request, self.max_body)))
            case ["calculations"] | ["calculations", _, "process" | "process_state" | "get_state"]:
                raise HTTPError(405, f"{method} is not allowed on /{'/'.join(path)}")
            case ["blocks"] if method == "GET":
                return json_reply(request, {"blocks": [self.describe(b) for b in
                                                       self.graph.blocks.values()]})
            case ["blocks"] if method == "POST":
                block = self.create(_json_body(request, self.max_body))
                return json_reply(request, self.describe(block), 201)
            case ["blocks", name] if method == "GET":
                return json_reply(request, self.describe(self._block(name)))
            case ["blocks", name] if method == "DELETE":
                self.remove(name)
                return json_reply(request, {"removed": name})
            case ["blocks", name, "streams"] if method == "POST":
                spec = _json_body(request, self.max_body)
                if isinstance(spec, dict) and spec.get("shm") is True \
                        and not _from_loopback(request):
                    spec["shm"] = False  # shared memory is for this host's processes
                streams, code = self._keyed_streams(name, spec)
                if "outputs" in spec:
                    return json_reply(request, {"streams": list(map(_opened, streams))}, code)
                return json_reply(request, _opened(streams[0]), code)
            case ["blocks", name, "stop"] if method == "POST":
                block = self._block(name)
                if not isinstance(block, Source):
                    raise HTTPError(409, f"{block.label} is not a source")
                block.stopProducing()
                return json_reply(request, {"stopped": name})
            case ["blocks", name, "finished"] if method == "GET":
                return self.report_finished(request, self._block(name))
            case ["streams"] if method == "GET":
                return json_reply(request, {"streams": [s.stats for s in self.streams.values()]})
            case ["streams", ident] if method == "GET":
                after, wait, linger = poll_arguments(request)
                return self._stream(ident).poll(request, after, wait, linger,
                                                instance_argument(request),
                                                shm_argument(request))
            case ["streams", ident] if method == "DELETE":
                self._stream(ident).close()
                del self.streams[ident]
                self._freed = True
                return json_reply(request, {"closed": ident})
            case ["computations", *rest] if self.computations is not None:
                return self.computations.route(request, method, rest)
            case (["health"] | ["metrics"] | ["blocks"] | ["blocks", _]
                  | ["blocks", _, "streams" | "stop" | "finished"]
                  | ["streams"] | ["streams", _]):
                raise HTTPError(405, f"{method} is not allowed on /{'/'.join(path)}")
        raise HTTPError(404, f"no such resource: /{'/'.join(path)}")

    def calculate(self, name, request, body):
        """
        Answer seed 001's ``request`` (``process``, ``process_state`` or
        ``get_state``) for the calculation ``name``: 404 for an unknown
        calculation, 400 for a bad var, time, state or args, 409 when no
        state is kept for the variable.
        """
        fields = {"process": {"var", "time", "args"}, "get_state": {"var", "time"},
                  "process_state": {"var", "time", "state", "args"}}[request]
        if set(body) != fields:
            raise HTTPError(400, f"{name}/{request} takes a JSON object of "
                                 f"{', '.join(sorted(fields))}, got "
                                 f"{', '.join(sorted(body)) or 'none'}")
        service = self.calculations
        try:
            if request == "process":
                return {"result": service.process(name, body["var"], body["time"],
                                                  body["args"])}
            if request == "process_state":
                state, result = service.process_state(name, body["var"], body["time"],
                                                      body["state"], body["args"])
                return {"state": state, "result": result}
            return {"state": service.get_state(name, body["var"], body["time"])}
        except UnknownCalculation as error:
            raise HTTPError(404, str(error)) from None
        except NoCalculationState as error:
            raise HTTPError(409, str(error)) from None
        except ValueError as error:
            raise HTTPError(400, f"{name}/{request}: {error}") from None

    def metrics(self):
        """``(body, content type)``: the graph's metrics and the collectors'."""
        from ..metrics import CalculationCollector, GraphCollector, new_registry, render

        if self._metrics is None:
            self._metrics = new_registry()
            self._metrics.register(GraphCollector(lambda: {"worker": self.graph}))
            self._metrics.register(CalculationCollector(self.calculations))
        for collector in self.collectors:
            if not getattr(collector, "_registered", False):
                self._metrics.register(collector)
                collector._registered = True
        return render(self._metrics)

    def _block(self, name):
        block = self.graph.blocks.get(name)
        if block is None:
            raise HTTPError(404, f"no block named {name!r} on this worker")
        return block

    def _output(self, block, name, where=None):
        """
        ``block``'s output ``name``; 400 for a name that is not a string,
        404 naming the block's outputs for one it does not have.
        """
        if not isinstance(name, str):
            raise HTTPError(400, f"{where or block.label}: output must be an output "
                                 f"name, got {name!r}")
        try:
            return block.output(name)
        except KeyError as error:
            message = error.args[0]
            raise HTTPError(404, f"{where}: {message}" if where else message) from None

    def _stream(self, ident):
        stream = self.streams.get(ident)
        if stream is None:
            raise HTTPError(404, f"no stream {ident!r} on this worker")
        return stream

    # What the routes do.

    def health(self):
        """
        ``status`` is ``ok`` while the worker serves (``failed`` when its
        whole graph failed, for a graph that does not isolate failures);
        ``failed_blocks`` names each failed block with why.
        """
        failure = self.graph.failure
        return {"status": "failed" if failure else "ok",
                "blocks": len(self.graph.blocks), "streams": len(self.streams),
                "failure": failure.getErrorMessage() if failure else None,
                "failed_blocks": {b.name: _failure_text(b) for b in self.graph.blocks.values()
                                  if b.failure is not None}}

    def describe(self, block):
        streams = [s for s in self.streams.values() if s.block is block]
        failure = self._failure_of(block)
        state = "failed" if failure else "active" if block.active else "idle"
        return {"name": block.name, "type": block.type_name, "kind": block.kind,
                "active": block.active, "state": state, "failure": failure,
                "inputs": [producer.name for producer in block.inputs],
                "outputs": [{"name": output.output_name, "kind": output.kind,
                             "next_seq": output.next_seq,
                             "edges": [edge.stats for edge in output.edges],
                             "streams": [s.stats for s in streams if s.output is output]}
                            for output in block.outputs.values()],
                "edges": [edge.stats for edge in block.edges],
                "streams": [s.stats for s in streams]}

    def create(self, spec):
        """
        Create a block from ``{"type", "name"?, "inputs"?, "params"?}``.
        """
        unknown = set(spec) - {"type", "name", "inputs", "params"}
        if unknown:
            raise HTTPError(400, f"unknown field(s) {', '.join(sorted(map(repr, unknown)))}; "
                                 "a block is {type, name, inputs, params}")
        type_name = spec.get("type")
        if not isinstance(type_name, str):
            raise HTTPError(400, f"'type' must be a block type name, got {type_name!r}")
        if len(self.graph.blocks) >= self.max_blocks:
            raise HTTPError(429, f"this worker holds {len(self.graph.blocks)} blocks, its "
                                 f"limit: delete some first{self._lease_text('made')}")
        try:
            factory = lookup(type_name)
        except UnknownBlockType as error:
            raise HTTPError(404, str(error)) from None
        if not remote_allowed(type_name) and not self.allow_files:
            raise HTTPError(403, f"{type_name} reads or writes files on this machine and "
                                 "cannot be created remotely; run it in the process "
                                 "that owns the files (or start this worker with "
                                 "--allow-files)")
        name = spec.get("name")
        if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
            raise HTTPError(400, f"{type_name}: name {name!r} must be letters, digits, "
                                 "'_', '.' or '-' (at most 100)")
        params = spec.get("params", {})
        if not isinstance(params, dict):
            raise HTTPError(400, f"{type_name}: 'params' must be an object")
        allowed = set(parameters(factory)) | _COMMON_PARAMETERS
        wrong = set(params) - allowed
        if wrong:
            raise HTTPError(400, f"{type_name} has no parameter(s) "
                                 f"{', '.join(sorted(wrong))}; it takes "
                                 f"{', '.join(sorted(allowed))}")
        try:
            # Before any input is made or anything allocated: as strictly
            # as a pipeline file reads them.
            params = check_params(factory, params, block=f"cannot create {type_name}")
        except ParameterError as error:
            raise HTTPError(400, str(error)) from None
        inputs = spec.get("inputs", [])
        if not isinstance(inputs, list) or len(inputs) > 64:
            raise HTTPError(400, f"{type_name}: 'inputs' must be a list (at most 64)")
        producers = [self._input(type_name, index, item) for index, item in enumerate(inputs)]
        try:
            block = factory(*producers, name=name, graph=self.graph, **params)
        except Exception as error:  # the parameters are the caller's: say why
            for producer in producers:
                if isinstance(producer, remote_block) and not producer.active:
                    self.graph.blocks.pop(producer.name, None)
            raise HTTPError(400, f"cannot create {type_name}: "
                                 f"{type(error).__name__}: {error}") from None
        log.info("created {block}", block=block.label)
        if self.lease is not None:
            self._touched[block.name] = self.clock.seconds()
            self._start_sweeping()
        return block

    def report_finished(self, request, block):
        """
        Answer whether the sink ``block`` has seen the end of its inputs,
        holding the request up to ``?wait=`` seconds for it.
        """
        if not isinstance(block, Sink):
            raise HTTPError(409, f"{block.label} is not a sink")
        wait = seconds_argument(request, "wait", DEFAULT_WAIT)
        if self._failure_of(block) is not None or block.finished or wait == 0:
            return self._finished_reply(request, block)
        finished, failed = block.wait_finished(), self._when_fails(block)
        answered = []

        def answer(code):
            if answered:
                return
            answered.append(code)
            for waiting in (finished, failed):
                waiting.cancel()  # the other one, or both when the wait ran out
            if timer.active():
                timer.cancel()
            if code is None or request.finished:
                return  # (the reader went away: notifyFinish said so, code None)
            if code == 204:
                request.setResponseCode(204)
            else:
                request.write(self._finished_reply(request, block))
            request.finish()

        for waiting in (finished, failed):
            waiting.addCallbacks(lambda _: answer(200),
                                 lambda failure: failure.trap(defer.CancelledError))
        timer = self.clock.callLater(wait, answer, 204)
        request.notifyFinish().addErrback(lambda _: answer(None))
        return server.NOT_DONE_YET

    def _finished_reply(self, request, block):
        failure = self._failure_of(block)
        if failure is not None:
            return error_reply(request, 500, failure)
        return json_reply(request, {"finished": block.finished})

    def _input(self, type_name, index, item):
        where = f"{type_name}: input {index + 1}"
        if isinstance(item, str):
            return self._producer(*split_reference(item), where)
        if isinstance(item, dict) and "block" in item:
            unknown = set(item) - {"block", "output"}
            if unknown:
                raise HTTPError(400, f"{where}: unknown field(s) "
                                     f"{', '.join(sorted(unknown))}")
            if not isinstance(item["block"], str):
                raise HTTPError(400, f"{where}: block must be a block name")
            return self._producer(item["block"], item.get("output", MAIN), where)
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise HTTPError(400, f'{where} must be a block name ("fft", or "window:late" '
                                 'for another output), {"block": ..., "output": ...} or '
                                 '{"url": ..., "kind": ..., "output": ..., "token": ..., '
                                 '"ca": ...}')
        unknown = set(item) - {"url", "kind", "output", "token", "ca", "policy", "maxsize"}
        if unknown:
            raise HTTPError(400, f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        url, kind, token = item["url"], item.get("kind"), item.get("token")
        output = item.get("output", MAIN)
        if not isinstance(output, str):
            raise HTTPError(400, f"{where}: output must be an output name, got {output!r}")
        if not re.match(r"https?://[^/\s]+/blocks/[^/\s]+\Z", url):
            raise HTTPError(400, f"{where}: {url!r} is not http(s)://host:port/blocks/NAME")
        if token is not None and not isinstance(token, str):
            raise HTTPError(400, f"{where}: token must be a string")
        ca = item.get("ca")
        if ca is not None and not isinstance(ca, str):
            raise HTTPError(400, f"{where}: ca must be PEM text")
        name = url.rsplit("/", 1)[1]
        try:
            return remote_block(url, kind, output=output, token=token, client=self.client,
                                ca=ca.encode("utf-8") if ca is not None else None,
                                graph=self.graph,
                                name=name if output == MAIN else f"{name}.{output}",
                                remote_policy=item.get("policy", "block"),
                                # Unless told, the window of any remote_block
                                # (256 chunks, at most 32 MiB of samples).
                                **({} if item.get("maxsize") is None
                                   else {"remote_maxsize": item["maxsize"]}))
        except (TypeError, ValueError) as error:
            raise HTTPError(400, f"{where}: {error}") from None

    def _producer(self, name, output, where):
        """
        The block ``name`` (for its main output) or its output ``output``,
        as an input of a block created here.
        """
        block = self._block(name)
        failure = self._failure_of(block)
        if failure is not None:
            raise HTTPError(409, f"{where}: {failure}")
        if output == MAIN:
            return block
        return self._output(block, output, where)

    def remove(self, name):
        block = self._block(name)
        users = self._users(block)
        if users or block.edges:
            raise HTTPError(409, f"{block.label} is in use by "
                                 f"{', '.join(users) or 'a stream'}; remove that first")
        self._remove(block)

    def _users(self, block):
        return [b.name for b in self.graph.blocks.values()
                if any(block_of(producer) is block for producer in b.inputs)]

    def _remove(self, block):
        name = block.name
        self._touched.pop(name, None)
        self._freed = True
        if isinstance(block, Sink):
            block.close()
        del self.graph.blocks[name]
        for producer in block.inputs:
            if isinstance(producer, remote_block) and not any(
                    producer in b.inputs for b in self.graph.blocks.values()):
                del self.graph.blocks[producer.name]
        log.info("removed {block}", block=block.label)

    def _keyed_streams(self, name, spec):
        """
        The streams a ``POST /blocks/{name}/streams`` opens, and the status
        of its answer: those opened before with the same ``key`` (200),
        or new ones (201).
        """
        key = spec.get("key")
        if key is None:
            return self._open_requested(name, spec), 201
        if not isinstance(key, str) or not _KEY.match(key):
            raise HTTPError(400, f"key {key!r} must be 8 to 128 letters, digits, '_' or '-' "
                                 "(random, chosen by the client)")
        asked = (name, json.dumps(spec, sort_keys=True))
        known = self._stream_keys.get(key)
        if known is not None:
            before, idents = known
            if before != asked:
                raise HTTPError(409, f"key {key!r} opened other streams "
                                     f"({', '.join(idents)}); a key names one request, "
                                     "retried as it was")
            streams = [self.streams.get(ident) for ident in idents]
            closed = [ident for ident, stream in zip(idents, streams)
                      if stream is None or stream.closed]
            if closed:
                raise HTTPError(410, f"the stream(s) opened with key {key!r} "
                                     f"({', '.join(closed)}) are closed already "
                                     "(nobody polled them in time, or they were deleted)")
            return streams, 200
        streams = self._open_requested(name, spec)
        self._stream_keys[key] = (asked, [stream.id for stream in streams])
        while len(self._stream_keys) > MAX_STREAM_KEYS:
            self._stream_keys.popitem(last=False)
        return streams, 201

    def _lease_text(self, what):
        # How what vanished clients left goes, for a 429's message.
        if self.lease is None:
            return ""
        return f" (what vanished clients {what} goes after the lease, {self.lease:g} s)"

    def _open_requested(self, name, spec):
        spec = {field: value for field, value in spec.items() if field != "key"}
        wanted = len(spec["outputs"]) if isinstance(spec.get("outputs"), list) else 1
        if len(self.streams) + wanted > self.max_streams:
            raise HTTPError(429, f"this worker has {len(self.streams)} streams open, and "
                                 f"{self.max_streams} at most: close some first"
                                 f"{self._lease_text('opened')}")
        if "outputs" in spec:
            return self.open_streams(name, spec)
        return [self.open_stream(name, spec)]

    def open_stream(self, name, spec):
        """
        Open a stream of the output ``spec["output"]`` (the main one by
        default) of the block ``name``.
        """
        block = self._stream_block(name, spec, "output")
        return self._open(block, self._output(block, spec.get("output", MAIN)), spec)

    def open_streams(self, name, spec):
        """
        Open a stream of each output of ``spec["outputs"]`` of the block
        ``name``, all before the block can emit again, so that they start
        at the same chunk (as consumers subscribed together in one process).
        """
        block = self._stream_block(name, spec, "outputs")
        names = spec["outputs"]
        if (not isinstance(names, list) or not names or len(set(map(str, names))) != len(names)
                or len(names) > len(block.outputs)):
            raise HTTPError(400, f"{block.label}: outputs must be a list of distinct output "
                                 f"names, got {names!r}")
        outputs = [self._output(block, output) for output in names]
        return [self._open(block, output, spec) for output in outputs]

    def _stream_block(self, name, spec, field):
        block = self._block(name)
        failure = self._failure_of(block)
        if failure is not None:
            raise HTTPError(409, f"cannot stream {block.label}: {failure}")
        if not block.outputs:
            raise HTTPError(409, f"{block.label} is a sink: it has no output to stream")
        unknown = set(spec) - {field, "policy", "maxsize", "shm"}
        if unknown:
            raise HTTPError(400, f"unknown field(s) {', '.join(sorted(unknown))}; "
                                 f"a stream takes {field}, policy, maxsize and key")
        if not isinstance(spec.get("shm", False), bool):
            raise HTTPError(400, f"shm={spec['shm']!r} must be true or false")
        return block

    def _open(self, block, output, spec):
        key = (block.name, output.output_name)
        self._stream_counts[key] = count = self._stream_counts.get(key, 0) + 1
        ident = f"{block.name}:{output.output_name}:{count}"
        try:
            stream = ServedStream(ident, output, self.clock, spec.get("policy", "block"),
                                  spec.get("maxsize"), on_close=self._forget_stream,
                                  shared=spec.get("shm", False),
                                  **({} if self.lease is None else {"idle_timeout": self.lease}))
        except (TypeError, ValueError) as error:
            raise HTTPError(400, f"stream of {output.label}: {error}") from None
        self.streams[ident] = stream
        waiters = self._stream_waiters.pop(output, None)
        if waiters is not None:
            waiters.fire(stream)
        return stream

    def when_streamed(self, producer):
        """
        A Deferred that fires when a stream of ``producer`` (a block, for
        its main output, or an output) is next opened.
        """
        output = producer if IOutput.providedBy(producer) else producer.output()
        return self._stream_waiters.setdefault(output, Waiters()).wait()

    def _forget_stream(self, stream):
        self.streams.pop(stream.id, None)
        self._freed = True

    # Reclaiming what clients left.

    def _touch(self, path):
        if len(path) >= 2 and path[0] == "blocks" and path[1] in self._touched:
            self._touched[path[1]] = self.clock.seconds()
        elif len(path) == 2 and path[0] == "streams":
            stream = self.streams.get(path[1])
            if stream is not None and stream.block.name in self._touched:
                self._touched[stream.block.name] = self.clock.seconds()

    def _start_sweeping(self):
        if self._sweeper is None:
            from twisted.internet import task

            self._sweeper = task.LoopingCall(self.reclaim)
            self._sweeper.clock = self.clock
            self._sweeper.start(max(self.lease / 4, 0.25), now=False)

    def stop_reclaiming(self):
        """
        Stop the periodic :meth:`reclaim` (the worker stops serving).
        """
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None

    def reclaim(self):
        """
        Remove the blocks that requests made and that nothing used for
        ``lease`` seconds (consumers before their inputs), then hand freed
        memory back to the system; the names removed.
        """
        now = self.clock.seconds()
        removed = []
        for name in reversed(list(self._touched)):
            block = self.graph.blocks.get(name)
            if block is None:
                self._touched.pop(name, None)
                continue
            in_use = (block.edges or self._users(block)
                      or any(s.block is block for s in self.streams.values()))
            if in_use or now - self._touched[name] < self.lease:
                continue
            log.info("{block}: unused for {lease:g} s; removing it", block=block.label,
                     lease=self.lease)
            self._remove(block)
            removed.append(name)
        if self._freed:
            self._freed = False
            release_freed_memory()
        return removed
