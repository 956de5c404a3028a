"""
Places to run blocks: a child worker on this machine, or a worker that is
already running elsewhere.

``process()`` starts ``pyrf-blocks worker`` as a child tied to this
process (it cannot outlive it, see :mod:`.parent`); ``process(url,
token=..., ca=...)`` attaches to a running worker (``ca``: the CA
certificate of an ``https://`` worker, see :mod:`.tls`).
``fft_block(wsa, proc=p)`` then gives a :class:`placed_block`: this
graph's stand-in for a block that is created on the worker, from its
registered type and keyword parameters, the first time something here
consumes it.  Until then nothing is created and nothing streams.  Each of
the placed type's outputs has its stand-in too (``window.output("late")``,
a :class:`placed_output`), reading its own stream of the same block.  A sink
placed there (``record_block(fft, path=..., proc=p)``) gives a
:class:`placed_sink`, created on the worker at once, as sinks connect at
once; this graph is done when it is.
"""

import json
import os
import secrets
import sys

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

import pyrf_blocks

from ..backoff import Backoff, RetrySetting
from ..block import MAIN, Sink, block_of, output_kinds
from ..errors import RemoteError, UnknownBlockType, WorkerUnreachable
from ..interfaces import KIND_INTERFACES
from ..registry import lookup
from ..waiting import Outcome
from .client import auth_headers, failure_text, http_client, read_json, remote_block
from .serve import serve, streamed

__all__ = ["process", "Place", "placed_block", "placed_output", "placed_sink"]

log = Logger()

#: The environment variable through which a child receives its token.
TOKEN_VARIABLE = "PYRF_BLOCKS_TOKEN"
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pyrf_blocks.__file__)))


def process(url=None, token=None, **options):
    """
    A place to run blocks: a new child process (no ``url``), or the worker
    at ``url``.  See :class:`Place` for the options.
    """
    return Place(url, token, **options)


class _ChildProtocol(protocol.ProcessProtocol):
    def __init__(self, owner):
        self.owner = owner
        self._buffer = b""

    def outReceived(self, data):
        if self.owner.started.settled:
            return
        self._buffer += data
        line, newline, _ = self._buffer.partition(b"\n")
        if newline:
            text = line.decode("utf-8", "replace").strip()
            if text.startswith("listening on "):
                self.owner.base_url = text.removeprefix("listening on ")
                self.owner.started.set(self.owner.base_url)
            else:
                self.owner.started.set(Failure(WorkerUnreachable(
                    f"child worker said {text!r} instead of its address")))

    def processEnded(self, reason):
        self.owner.exited = reason.value
        message = f"child worker (pid {self.owner.pid}) exited: {reason.getErrorMessage()}"
        if not self.owner.started.settled:
            self.owner.started.set(Failure(WorkerUnreachable(message)))
        elif not self.owner.closing:
            log.error("{message}", message=message)


class Place:
    """
    A worker that runs blocks for this graph.

    :param url: base URL of a running worker; ``None`` starts a child.
    :param token: the worker's bearer token (a child gets a random one).
    :param ca: the CA certificate(s) that an ``https://`` worker's
        certificate must be signed by, as a PEM file's path or PEM
        ``bytes``; the system's certificate authorities by default.  Blocks
        placed here, and a worker that reads from this one, trust the same.
    :param reactor: spawns the child and runs the HTTP client; the global
        reactor by default.
    :param client: treq-like HTTP client; the reactor's persistent pool by
        default.
    :param imports: modules the child imports first, so the block types
        they register can be placed there.
    :param listen: where a child listens (loopback, any free port).
    :param stream_options: passed to the :class:`remote_block` of every
        block placed here (``retries``, ``backoff``, ``wait``,
        ``remote_policy``...).
    """

    def __init__(self, url=None, token=None, *, ca=None, reactor=None, client=None,
                 imports=(), listen="tcp:0:interface=127.0.0.1", **stream_options):
        if reactor is None:
            from twisted.internet import reactor
        self.ca = None
        if ca is not None:
            from .tls import read_ca  # OpenSSL: only for a place that has a CA
            try:
                self.ca = read_ca(ca)
            except ValueError as error:
                raise ValueError(f"process({url!r}): {error}") from None
        self.reactor = reactor
        self.client = client
        self.stream_options = stream_options
        self.started = Outcome()
        self.closing = False
        self.exited = None
        self.pid = None
        #: The worker's base URL, once known.
        self.base_url = None
        self._transport = None
        if url is not None:
            self.token = token
            self.base_url = url.rstrip("/")
            self.started.set(self.base_url)
        else:
            self.token = token or secrets.token_urlsafe(24)
            self._spawn(imports, listen)

    def __repr__(self):
        return f"<Place {self.base_url or f'pid {self.pid}, starting'}>"

    def url(self):
        """
        A Deferred firing with the worker's base URL once it listens.
        """
        return self.started.wait()

    def _spawn(self, imports, listen):
        env = dict(os.environ)
        env[TOKEN_VARIABLE] = self.token
        env["PYTHONPATH"] = os.pathsep.join(
            [_PROJECT_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        # A child is this process's own, as trusted as it: it may record.
        argv = [sys.executable, "-m", "pyrf_blocks.cli", "worker", "--listen", listen,
                "--parent-pid", str(os.getpid()), "--log-level", "warn", "--allow-files"]
        for module in imports:
            argv += ["--import", module]
        self._transport = self.reactor.spawnProcess(
            _ChildProtocol(self), sys.executable, argv, env=env,
            childFDs={0: "w", 1: "r", 2: 2})
        self.pid = self._transport.pid
        self.reactor.addSystemEventTrigger("before", "shutdown", self.close)

    def close(self):
        """
        Let a child worker go: it exits when its stdin closes.
        """
        if self._transport is not None and not self.closing:
            self.closing = True
            self._transport.closeStdin()

    # Placement.

    def place(self, factory, inputs, params):
        """
        The stand-in for ``factory(*inputs, **params)`` run on this worker.
        """
        if isinstance(factory, type) and issubclass(factory, Sink):
            return placed_sink(self, factory, inputs, params)
        return placed_block(self, factory, inputs, params)

    async def create(self, block):
        """
        Create ``block`` (a :class:`placed_block`) on the worker, its
        inputs first; return its URL there.
        """
        inputs = [await self._input_spec(producer) for producer in block.inputs]
        base, answer = await self._call(
            "post", "/blocks", "creating {block} on {base}", block,
            json={"type": block.type_name, "name": block.name, "inputs": inputs,
                  "params": block.params})
        if answer.get("kind") != block.kind:
            raise RemoteError(f"creating {block.type_name} {block.name!r} on {base}: the "
                              f"worker made a {answer.get('kind')!r} producer, expected "
                              f"{block.kind!r}")
        block.remote_name = answer["name"]
        return f"{base}/blocks/{answer['name']}"

    async def stop(self, block):
        """
        End the stream of ``block``, a source placed on this worker, there:
        what it emitted before still travels.
        """
        await self._call("post", f"/blocks/{block.remote_name}/stop",
                         "stopping {block} on {base}", block)

    async def remove(self, block):
        """
        Remove ``block`` (placed here) from the worker.
        """
        await self._call("delete", f"/blocks/{block.remote_name}",
                         "removing {block} from {base}", block)

    async def release(self, block):
        """
        ``block`` (placed here) is done with here: remove it from the
        worker once nothing of its graph uses it there (no stream read
        here, no block placed on it), then the placed blocks that fed it
        and that nothing else uses.  A later run creates them again.
        """
        if block.remote_name is None or _in_use(block):
            return
        name, block.remote_name = block.remote_name, None
        for stand_in in getattr(block, "_output_stand_ins", {}).values():
            stand_in.remote_name = None
        block.forget_creation()
        await self._call("delete", f"/blocks/{name}", "removing {block} from {base}", block)
        for producer in block.inputs:
            upstream = block_of(producer)
            if isinstance(upstream, placed_output):
                upstream = upstream.placed
            if isinstance(upstream, placed_block):
                await upstream.place.release(upstream)

    async def _call(self, method, path, what, block, **options):
        """
        One control request about ``block``; ``(base_url, JSON answer)``,
        or :class:`RemoteError` saying ``what`` failed.
        """
        base = await self.url()
        response = await getattr(self._http(block.graph), method)(
            base + path, headers=auth_headers(self.token), reactor=self.reactor,
            timeout=30, **options)
        what = what.format(block=f"{block.type_name} {block.name!r}", base=base)
        return base, await read_json(response, what)

    def _http(self, graph):
        """
        The HTTP client that reaches this worker for the blocks of
        ``graph``: the ``client`` given, or the graph's own (see
        :func:`.client.http_client`).
        """
        if self.client is not None:
            return self.client
        return http_client(graph, ca=self.ca)

    async def _input_spec(self, producer):
        block = block_of(producer)
        if isinstance(block, placed_block):
            await block.prepare()
            if block.place is self:
                if block.remote_output == MAIN:
                    return block.remote_name
                return {"block": block.remote_name, "output": block.remote_output}
        if isinstance(block, remote_block):
            return _input(block.url, block.kind, block.token, block.ca,
                          block.remote_output)
        # A block of this process, served to the worker; over TLS, the worker
        # trusts what this process trusts for the worker (one lab CA).
        output = block.output() if producer is block else producer
        base, token = await serve(block.graph).address()
        return _input(f"{base}/blocks/{block.name}", output.kind, token,
                      self.ca if base.startswith("https://") else None, output.output_name)


def _in_use(block):
    """
    Whether something of ``block``'s graph still uses the placed block:
    a stream of it read here, or a block placed on it and not removed.
    """
    readers = [block, *getattr(block, "_output_stand_ins", {}).values()]
    if any(reader._running or reader.stream_url is not None for reader in readers):
        return True
    return any(getattr(other, "remote_name", None) is not None
               and any(block_of(producer) is block for producer in other.inputs)
               for other in tuple(block.graph.blocks.values()) if other is not block)


async def _end_inputs_at_origin(block, inputs):
    """
    End, where they start, the placed sources that the ``inputs`` of
    ``block`` (a placed block or sink) come from; RemoteError for an input
    whose source this graph cannot end (a plain :class:`remote_block` that
    the worker reads itself).  Inputs of this process are left to
    ``Graph.stop``.
    """
    endings = []
    for producer in inputs:
        upstream = block_of(producer)
        if isinstance(upstream, placed_block):
            endings.append(upstream.end_at_origin())
        elif isinstance(upstream, remote_block):
            raise RemoteError(f"{block.label} reads {upstream.source}, whose source "
                              "this graph does not run")
    try:
        await defer.gatherResults(endings, consumeErrors=True)
    except defer.FirstError as error:
        error.subFailure.raiseException()


def _input(url, kind, token, ca, output=MAIN):
    """
    How a worker is told to read an output of a block of another process:
    its URL, kind, token and, for TLS, the CA certificates to trust.
    """
    spec = {"url": url, "kind": kind, "token": token}
    if output != MAIN:
        spec["output"] = output
    if ca is not None:
        spec["ca"] = ca.decode("ascii")
    return spec


def _placed(factory, params):
    """
    The type name, JSON parameters, name and graph of ``factory(...,
    **params)`` placed in another process; TypeError if it cannot be.
    """
    type_name = getattr(factory, "type_name", None) or factory.__name__
    try:
        registered = lookup(type_name) is factory
    except UnknownBlockType:
        registered = False
    if not registered:
        raise TypeError(f"{type_name}: only registered block types can be placed "
                        "in another process (see pyrf_blocks.registry.register)")
    params = dict(params)
    name, graph = params.pop("name", None), params.pop("graph", None)
    for key, value in params.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise TypeError(f"{type_name}: parameter {key}={value!r} cannot be "
                            "sent to another process (JSON values only)") from None
    return type_name, params, name, graph


def _stand_in_for(stand_in, place, factory, type_name, params):
    """
    What a placed block's or sink's stand-in knows of the block it stands
    for: its type, parameters and input contract, and where it runs.
    """
    stand_in.place = place
    stand_in.factory = factory
    stand_in.params = params
    stand_in.remote_name = None
    stand_in.type_name = type_name
    stand_in.requires = getattr(factory, "requires", ())
    stand_in.variadic = getattr(factory, "variadic", False)


def _output_kinds(factory, type_name, main):
    """
    ``{name: kind}`` of every output of the placed type, main first.
    """
    kinds = output_kinds(factory, main)
    for name, kind in kinds.items():
        if name != MAIN and kind not in KIND_INTERFACES:
            raise TypeError(f"{type_name}: output {name!r} has unknown kind {kind!r}; "
                            f"known: {', '.join(KIND_INTERFACES)}")
    return kinds


class placed_block(remote_block):
    """
    This graph's stand-in for a block placed in a :class:`Place`.

    It takes the placed type's name and inputs (checked here as for a local
    block) and provides its producer interface; the block itself is created
    on the worker when something here first consumes the stand-in, or one
    of its outputs (:meth:`output`).
    """

    type_name = "placed_block"

    def __init__(self, place, factory, inputs, params):
        type_name, params, name, graph = _placed(factory, params)
        kind = getattr(factory, "kind", None) or params.get("kind")
        if kind is None and inputs:
            kind = getattr(inputs[0], "kind", None)  # a pass-through block
        if kind is None:
            raise TypeError(f"{type_name}: cannot tell what kind of chunks it "
                            "produces, so it cannot be placed in another process")
        _stand_in_for(self, place, factory, type_name, params)
        #: Every output of the placed block, ``{name: kind}``, main first.
        self.output_kinds = _output_kinds(factory, type_name, kind)
        self._creation = None
        #: While the sources this block's stream starts at are being told
        #: to end (:meth:`end_at_origin`).
        self._ending = None
        self._output_stand_ins = {}
        #: Streams of its outputs asked for in this reactor turn, by output.
        self._batch = None
        self._batch_keys = {}
        super().__init__(None, kind, inputs=inputs, token=place.token, ca=place.ca,
                         client=place.client, name=name or type_name, graph=graph,
                         **place.stream_options)

    def __repr__(self):
        return f"<{self.type_name} {self.name!r} at {self.source or self.where()}>"

    def output(self, name=MAIN):
        """
        The output ``name`` of the placed block, to consume it here: the
        main one is this stand-in's own; another is the main output of a
        :class:`placed_output` (made once per name) that reads that
        output's stream of the same block on the worker.
        """
        if name == MAIN:
            return super().output(name)
        if name not in self.output_kinds:
            raise KeyError(f"{self.label} has no output {name!r}; it has "
                           f"{', '.join(map(repr, self.output_kinds))}")
        stand_in = self._output_stand_ins.get(name)
        if stand_in is None:
            stand_in = self._output_stand_ins[name] = placed_output(self, name)
        return stand_in.output()

    def where(self):
        return self.worker_url or self.place.base_url or (
            f"child pid {self.place.pid} (not listening yet)")

    def stopProducing(self):
        """
        ``Graph.stop``: the stream that enters this graph here is ended
        where it starts, so that everything emitted before still reaches
        this graph, as with a source of this process: a source placed on a
        worker is ended there, and a block placed with inputs is ended
        through them (:meth:`end_at_origin`).  If that cannot be done (a
        worker cannot be told, the block is not created yet, an input is a
        plain :class:`remote_block` that is not this graph's), the stream
        ends here at once.  A stream still being opened is ended once it
        is open (:meth:`~.client.remote_block.stop_once_open`): its sources
        on the worker start only then.
        """
        self.stop_once_open()

    def stream_stopped(self):
        self.end_at_origin().addErrback(self._end_here)

    def end_at_origin(self):
        """
        Tell the workers to end the placed sources that this block's stream
        comes from (once, however many of its consumers ask): a Deferred
        that fails if one of them cannot be ended there.  Inputs of this
        process are not touched: ``Graph.stop`` ends them itself, and their
        end travels to the worker like their chunks.
        """
        ending = self._ending
        if ending is None:
            ending = self._ending = Outcome()
            d = defer.ensureDeferred(self._end_origins())
            d.addBoth(self._origins_ended, ending)
        return ending.wait()

    def _origins_ended(self, result, ending):
        if self._ending is ending:
            self._ending = None  # a later stop (of a later run) asks again
        return ending.set(result)

    async def _end_origins(self):
        if self.inputs:
            await _end_inputs_at_origin(self, self.inputs)
        elif self.remote_name is None:
            raise RemoteError(f"{self.label} is not created on its worker yet")
        else:
            await self.place.stop(self)

    def _end_here(self, failure):
        if self.active and not self.ended:
            log.warn("{block}: could not end its stream where it starts ({error}); "
                     "ending it here, without what its worker still held", block=self,
                     error=failure_text(failure))
        remote_block.stopProducing(self)

    def prepare(self):
        if self._creation is None:
            self._creation = Outcome()
            d = defer.ensureDeferred(self.place.create(self))
            d.addCallback(self.set_url)
            d.addErrback(self._creation_failed).addBoth(self._creation.set)
        return self._creation.wait()

    def _creation_failed(self, failure):
        self._creation = None  # try again on the next activation
        return failure

    def forget_creation(self):
        """
        The block was removed from its worker: the next activation creates
        it there again.
        """
        self._creation = None

    def release_remote(self):
        """
        The stream has ended: close it, then remove the block from its
        worker if nothing else here uses it (:meth:`Place.release`).
        """
        d = super().release_remote()
        d.addCallback(lambda _: defer.ensureDeferred(self.place.release(self)))
        return d

    def open_stream(self):
        return self.open_together(self)

    def open_together(self, stand_in):
        """
        Open the stream that ``stand_in`` (this block's or one of its
        outputs' stand-in) reads: those asked for in the same reactor turn
        are opened in one request, so that outputs consumed together here
        start at the same chunk on the worker, as in one process (a block
        would otherwise run, even end, before its next output's stream
        opened).  A Deferred firing with the worker's answer.
        """
        batch = self._batch
        if batch is None:
            batch = self._batch = {}
            self.graph.reactor.callLater(0, self._open_batch, batch)
        name = stand_in.remote_output
        waiter = batch[name] = defer.Deferred(lambda d: batch.pop(name, None))
        waiter.addBoth(self._forget_key, name)
        self._batch_keys[name] = stand_in.open_key
        return waiter

    def _forget_key(self, result, name):
        self._batch_keys.pop(name, None)
        return result

    def _open_batch(self, batch):
        self._batch = None
        names = list(batch)
        if not names:
            return  # every stand-in stopped waiting
        key = self.joint_key(self._batch_keys.get(name) for name in names)
        d = defer.ensureDeferred(self.request_streams(names, key=key))
        d.addCallbacks(self._batch_opened, self._batch_failed, (batch, names), None,
                       (batch,))

    def _batch_opened(self, answers, batch, names):
        for name, answer in zip(names, answers):
            waiter = batch.pop(name, None)
            if waiter is None:  # its stand-in stopped meanwhile: nobody reads it
                self.discard_stream(self.worker_url + answer["path"])
            else:
                waiter.callback(answer)

    def _batch_failed(self, failure, batch):
        waiters = list(batch.values())
        batch.clear()
        for waiter in waiters:
            waiter.errback(failure)


class placed_output(placed_block):
    """
    The stand-in for one more output of a block placed in a :class:`Place`
    (``window.output("late")``): its main output is that output, read
    through a stream of its own, and the block is created on the worker
    once, by whichever of its stand-ins is consumed first.
    """

    def __init__(self, block, output):
        #: The stand-in of the placed block.
        self.placed = block
        _stand_in_for(self, block.place, block.factory, block.type_name, block.params)
        self.output_kinds = {MAIN: block.output_kinds[output]}
        # Not placed_block.__init__: the block is the one ``block`` creates.
        remote_block.__init__(self, None, block.output_kinds[output], output=output,
                              inputs=block.inputs, token=block.token, ca=block.ca,
                              client=block.place.client, name=f"{block.name}:{output}",
                              graph=block.graph, **block.place.stream_options)

    def end_at_origin(self):
        return self.placed.end_at_origin()

    def prepare(self):
        def created(_):
            self.remote_name = self.placed.remote_name
            self.set_url(self.placed.url)
        return self.placed.prepare().addCallback(created)

    def release_remote(self):
        d = remote_block.release_remote(self)
        d.addCallback(lambda _: defer.ensureDeferred(self.place.release(self.placed)))
        return d

    def open_stream(self):
        return self.placed.open_together(self)


class placed_sink(Sink):
    """
    This graph's stand-in for a sink placed in a :class:`Place` (a
    recorder writing to that machine's disk, say).

    The sink is created on the worker at once, fed there by streams of
    this graph's producers (or by blocks placed on the same worker), and
    this graph is done when it is: the stand-in follows it with
    ``GET /blocks/{name}/finished`` and finishes with it.  ``close()``
    removes it from the worker.
    """

    type_name = "placed_sink"
    local_inputs = False
    # As remote_block's: set while it follows the sink, they take effect at
    # the next failure.
    retries = RetrySetting("retries")
    backoff = RetrySetting("initial")
    max_backoff = RetrySetting("maximum")

    def __init__(self, place, factory, inputs, params):
        type_name, params, name, graph = _placed(factory, params)
        _stand_in_for(self, place, factory, type_name, params)
        self._following = None
        self._backoff = None
        self._running = False
        self.stream_url = None
        #: Graph.stop came while the sink was being created on its worker.
        self._stop_when_created = False
        #: Producers of this graph held paused until the worker reads them.
        self._waiting_inputs = []
        options = place.stream_options
        self.retries = options.get("retries", 8)
        self.backoff = options.get("backoff", 0.1)
        self.max_backoff = options.get("max_backoff", 2.0)
        self.wait = options.get("wait", 20.0)
        super().__init__(*inputs, name=name or type_name, graph=graph)

    def __repr__(self):
        return f"<placed {self.type_name} {self.name!r} on {self.place!r}>"

    def on_start(self):
        # Nothing is consumed here: the worker's sink reads the inputs.  The
        # inputs of this process are held until it does, so that it sees
        # their streams from the start, as a sink of this process would.
        self._waiting_inputs = [producer for producer in self.inputs
                                if not isinstance(block_of(producer), remote_block)]
        for producer in self._waiting_inputs:
            producer.pauseProducing()
        self._following = defer.ensureDeferred(self._follow())
        self._following.addErrback(self._failed)

    def forget_creation(self):
        """
        The sink was removed from its worker.
        """

    def _release(self):
        waiting, self._waiting_inputs = self._waiting_inputs, []
        for producer in waiting:
            producer.resumeProducing()

    def on_stop(self):
        if self._following is not None:
            self._following.cancel()
        self._release()
        if self.remote_name is not None:
            d = defer.ensureDeferred(self.place.remove(self))
            d.addErrback(lambda failure: log.warn(
                "{block}: removing it from its worker failed: {error}", block=self,
                error=failure_text(failure)))

    async def _follow(self):
        opened = []
        try:
            for producer in self._waiting_inputs:
                await serve(producer.graph).address()
                opened.append(streamed(producer))
            url = await self.place.create(self)
            if self._stop_when_created:
                self._stop_when_created = False
                self.end_at_origin()
            await defer.gatherResults(opened, consumeErrors=True)
        finally:
            for waiting in opened:
                waiting.cancel()  # (those that fired are not affected)
            self._release()
        reactor = self.place.reactor
        backoff = self._backoff = Backoff(reactor, self.retries, self.backoff,
                                          self.max_backoff)
        while True:
            try:
                response = await self.place._http(self.graph).get(
                    url + "/finished", params={"wait": f"{self.wait:g}"},
                    headers=auth_headers(self.place.token), reactor=reactor,
                    timeout=self.wait + 30)
                if response.code == 204:
                    await response.content()
                    backoff.succeeded()
                    continue
                answer = await read_json(response, f"{self.type_name} {self.name!r} "
                                                   f"on {self.place.base_url}")
            except RemoteError:
                raise
            except Exception as error:
                pause = backoff.sleep(self, f"worker {self.place.base_url} failed: {error}")
                if pause is None:
                    raise WorkerUnreachable(
                        f"{self.type_name} {self.name!r}: worker {self.place.base_url} "
                        f"did not answer after {backoff.failures} attempts over "
                        f"{backoff.elapsed:.1f} s ({error})") from None
                await pause
                continue
            if answer.get("finished"):
                # Before the end: the graph is done once the worker is tidied.
                self.graph.add_cleanup(defer.ensureDeferred(self.place.release(self)))
                self.end()
                return

    def end_at_origin(self):
        """
        ``Graph.stop``: end the placed sources this sink reads where they
        start (see :meth:`placed_block.end_at_origin`), once the sink exists
        on its worker (its sources there start only then), so that it
        finishes there with everything they emitted.  The inputs of this
        process are ended by ``Graph.stop`` itself.  If a source cannot be
        ended, the sink is finished here, without what it had still to
        take.
        """
        if self.remote_name is None:
            if self._following is not None:
                self._stop_when_created = True
            return
        d = defer.ensureDeferred(_end_inputs_at_origin(self, self.inputs))
        d.addErrback(self._finish_here)

    def _finish_here(self, failure):
        if self.finished:
            return
        log.warn("{block}: could not end its inputs where they start ({error}); "
                 "finishing it here, without what it had still to take", block=self,
                 error=failure_text(failure))
        self.end()

    def _failed(self, failure):
        if failure.check(defer.CancelledError) or not self.active:
            return None
        self.graph.fail(self, failure)
        return None
