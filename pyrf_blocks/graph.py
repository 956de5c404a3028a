"""
Composition: blocks, the edges between them, lazy connection and the graph.

A block connects to its inputs only while it is a sink or something
downstream consumes it, so ``wsa -> fft -> calibrate`` without a sink stays
idle and adding a sink brings the chain to life back to the source.  Each
edge is a bounded queue with a policy; under ``block`` a full queue pauses
the producer (Twisted's ``IPushProducer``), which pauses its own inputs, all
the way back to the source.  Chunks travel by reference: fan-out never copies
an array.
"""

from collections import deque

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from .chunk import Chunk
from .interfaces import (
    KIND_INTERFACES, IBlock, IChunkConsumer, IEdge, ISink, IPushProducer,
)
from .memory import keep_freed_memory
from .sync import Synchronizer

__all__ = ["Graph", "Block", "Source", "Sink", "Edge", "POLICIES",
           "DEFAULT_MAXSIZE", "default_graph", "set_default_graph", "run"]

log = Logger()

POLICIES = ("block", "drop_oldest", "latest")
#: Queue bound of an edge, in chunks, unless the consumer asks otherwise.
DEFAULT_MAXSIZE = 8
_END = object()


def _label(obj):
    """
    How error messages name a block or any other object.
    """
    if IBlock.providedBy(obj):
        return f"{obj.type_name} {obj.name!r}"
    return repr(obj)


def _provided_kinds(obj):
    names = [iface.__name__ for iface in KIND_INTERFACES.values()
             if iface.providedBy(obj)]
    return ", ".join(names) or "no producer interface"


def check_policy(policy, maxsize):
    """
    Validate an edge policy and queue bound; return the effective bound.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown edge policy {policy!r}; use one of "
                         f"{', '.join(POLICIES)}")
    if policy == "latest":
        return 1
    if maxsize is None:
        return DEFAULT_MAXSIZE
    if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
        raise ValueError(f"maxsize must be a positive integer, got {maxsize!r}")
    return maxsize


@implementer(IEdge)
class Edge:
    """
    A bounded queue from one producer to one consumer.

    The edge is an ``IPushProducer`` towards its consumer, which may pause
    and resume it; under the ``block`` policy it pauses its own producer
    while the queue is full.  Under ``drop_oldest`` and ``latest`` it never
    pauses the producer and counts every chunk it drops.
    """

    def __init__(self, producer, consumer, policy="block", maxsize=None):
        self.maxsize = check_policy(policy, maxsize)
        self.policy = policy
        self.producer = producer
        self.consumer = consumer
        self._queue = deque()
        self._pauses = 0
        self._holding = False
        self._draining = False
        self._closed = False
        self.chunks_in = self.chunks_out = self.bytes_out = 0
        self.dropped = self.max_depth = 0

    def __repr__(self):
        return (f"<Edge {_label(self.producer)} -> {_label(self.consumer)} "
                f"{self.policy}/{self.maxsize}>")

    @property
    def stats(self):
        return {"policy": self.policy, "maxsize": self.maxsize,
                "chunks_in": self.chunks_in, "chunks_out": self.chunks_out,
                "bytes_out": self.bytes_out, "dropped": self.dropped,
                "depth": self.depth, "max_depth": self.max_depth}

    @property
    def depth(self):
        return sum(1 for item in self._queue if item is not _END)

    @property
    def paused(self):
        return self._pauses > 0

    # Called by the producer.

    def put(self, chunk):
        if self._closed:
            return
        self.chunks_in += 1
        queue = self._queue
        if not queue and not self._pauses and not self._draining:
            # The common case: nothing waits, hand the chunk straight over.
            self._deliver(chunk)
            if queue and not self._pauses:
                self._drain()
            return
        if len(queue) >= self.maxsize and self.policy != "block":
            queue.popleft()
            self.dropped += 1
        queue.append(chunk)
        if len(queue) > self.max_depth:
            self.max_depth = len(queue)
        if not self._pauses and not self._draining:
            self._drain()
        if (self.policy == "block" and not self._holding
                and len(queue) >= self.maxsize):
            self._holding = True
            self.producer.pauseProducing()

    def put_end(self):
        if self._closed:
            return
        self._queue.append(_END)
        if not self._pauses and not self._draining:
            self._drain()

    def close(self):
        """
        Detach from both ends; what is still queued is discarded.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._release()
        self.consumer.unregisterProducer()

    # IPushProducer, called by the consumer.

    def pauseProducing(self):
        self._pauses += 1

    def resumeProducing(self):
        if self._pauses:
            self._pauses -= 1
        if not self._pauses and not self._draining:
            self._drain()

    def stopProducing(self):
        self.producer.unsubscribe(self)

    def _deliver(self, chunk):
        self.chunks_out += 1
        self.bytes_out += chunk.data.nbytes
        self._draining = True
        try:
            self.consumer.write(chunk)
        except Exception:
            self._failed()
        finally:
            self._draining = False

    def _failed(self):
        owner = getattr(self.consumer, "block", self.consumer)
        graph = getattr(owner, "graph", None) or self.producer.graph
        graph.fail(owner, Failure())

    def _drain(self):
        queue, consumer = self._queue, self.consumer
        self._draining = True
        try:
            while queue and not self._pauses and not self._closed:
                item = queue.popleft()
                if item is _END:
                    consumer.end_of_stream()
                    continue
                self.chunks_out += 1
                self.bytes_out += item.data.nbytes
                consumer.write(item)
        except Exception:
            self._failed()
        finally:
            self._draining = False
        if self._holding and len(queue) <= self.maxsize // 2:
            self._release()

    def _release(self):
        if self._holding:
            self._holding = False
            self.producer.resumeProducing()


@implementer(IChunkConsumer)
class InputPort:
    """
    Where one of a block's inputs arrives: the consumer end of an edge.
    """

    def __init__(self, block, index):
        self.block = block
        self.index = index
        self.edge = None
        self.ended = False

    def __repr__(self):
        return f"<input {self.index + 1} of {_label(self.block)}>"

    def registerProducer(self, producer, streaming):
        self.edge = producer

    def unregisterProducer(self):
        self.edge = None

    def write(self, chunk):
        self.block._receive(self.index, chunk)

    def end_of_stream(self):
        self.ended = True
        self.block._input_ended(self.index)


@implementer(IBlock, IPushProducer)
class Block:
    """
    Base of every block: input checking, lazy connection, emission, flow
    control and end-of-stream.

    Subclasses declare ``type_name``, ``kind`` (the output kind, ``None``
    for a sink) and ``requires`` (one interface per input; with
    ``variadic = True`` a single interface that every input must provide),
    and implement :meth:`compute` (and :meth:`flush` if they hold data back).
    """

    type_name = "block"
    kind = None
    requires = ()
    variadic = False
    #: Several inputs are re-cut to common time ranges before ``compute``.
    #: A block that treats its inputs independently (a display overlaying
    #: sources) sets this to False and implements ``compute_input``.
    synchronised = True

    def __new__(cls, *inputs, proc=None, **kwargs):
        # proc= places the block in another process: what is made here is
        # that process's stand-in for it (pyrf_blocks.net.placement).
        if proc is not None:
            return proc.place(cls, inputs, kwargs)
        return super().__new__(cls)

    def __init__(self, *inputs, name=None, graph=None, policy="block",
                 maxsize=None, proc=None):
        self.inputs = tuple(inputs)
        self.graph = graph or self._graph_of_inputs() or default_graph()
        self.name = self.graph.unique_name(name or self.type_name)
        self._check_inputs()
        self.input_policy = policy
        self.input_maxsize = check_policy(policy, maxsize)
        self.kind = self.output_kind()
        if self.kind is not None:
            alsoProvides(self, KIND_INTERFACES[self.kind])
        self.active = False
        self._edges = ()
        self._ports = ()
        self._pauses = 0
        self._seq = 0
        self._ended = False
        self._sync = None
        self._held = set()
        self.graph.add(self)

    def __repr__(self):
        return f"<{self.type_name} {self.name!r}>"

    def output_kind(self):
        """
        The kind this block emits (a pass-through block returns its input's).
        """
        return type(self).kind

    def _graph_of_inputs(self):
        return next((p.graph for p in self.inputs if IBlock.providedBy(p)), None)

    def _check_inputs(self):
        what = f"{self.type_name} {self.name!r}"
        if self.variadic:
            if not self.inputs:
                raise TypeError(f"{what} needs at least one input")
            needed = self.requires * len(self.inputs)
        else:
            needed = self.requires
            if len(self.inputs) != len(needed):
                raise TypeError(f"{what} takes {len(needed)} input(s), "
                                f"got {len(self.inputs)}")
        for index, (producer, iface) in enumerate(zip(self.inputs, needed)):
            if not iface.providedBy(producer):
                got = (f"{_label(producer)} (provides {_provided_kinds(producer)})"
                       if IBlock.providedBy(producer) else repr(producer))
                raise TypeError(f"{what}: input {index + 1} must provide "
                                f"{iface.__name__}, got {got}")
            if producer.graph is not self.graph:
                raise ValueError(f"{what}: input {_label(producer)} belongs "
                                 "to another graph")

    # Downstream side: IChunkProducer.

    @property
    def edges(self):
        return self._edges

    def subscribe(self, consumer, policy="block", maxsize=None):
        if self.kind is None:
            raise TypeError(f"{_label(self)} is a sink: nothing can consume it")
        edge = Edge(self, consumer, policy, maxsize)
        self._edges += (edge,)
        consumer.registerProducer(edge, True)
        if len(self._edges) == 1:
            self._activate()
        if self._ended:
            edge.put_end()
        return edge

    def unsubscribe(self, edge):
        if edge not in self._edges:
            return
        self._edges = tuple(e for e in self._edges if e is not edge)
        edge.close()
        if not self._edges:
            self._deactivate()

    def emit(self, data, start, end, rate, meta=None):
        """
        Send one chunk to every consumer; return it.
        """
        chunk = Chunk(self.kind, data, start, end, rate, self._seq, meta)
        self._seq += 1
        for edge in self._edges:
            edge.put(chunk)
        return chunk

    # Flow control: IPushProducer, called by the edges this block feeds.

    def pauseProducing(self):
        self._pauses += 1
        if self._pauses == 1:
            self._on_pause()

    def resumeProducing(self):
        if not self._pauses:
            return
        self._pauses -= 1
        if not self._pauses:
            self._on_resume()

    def stopProducing(self):
        for edge in self._edges:
            self.unsubscribe(edge)

    @property
    def paused(self):
        return self._pauses > 0

    def _on_pause(self):
        for port in self._ports:
            if port.edge is not None:
                port.edge.pauseProducing()

    def _on_resume(self):
        for port in self._ports:
            if port.edge is not None:
                port.edge.resumeProducing()

    # Upstream side: lazy connection to the inputs.

    def _activate(self):
        if self.active:
            return
        self.active = True
        self._ended = False
        self._sync = (Synchronizer(len(self.inputs))
                      if len(self.inputs) > 1 and self.synchronised else None)
        self._held = set()
        self.reset()
        ports = []
        for index, producer in enumerate(self.inputs):
            port = InputPort(self, index)
            ports.append(port)
            self._ports = tuple(ports)
            producer.subscribe(port, self.input_policy, self.input_maxsize)
            if self._pauses:
                port.edge.pauseProducing()

    def _deactivate(self):
        if not self.active:
            return
        self.active = False
        ports, self._ports = self._ports, ()
        for port, producer in zip(ports, self.inputs):
            if port.edge is not None:
                producer.unsubscribe(port.edge)

    def reset(self):
        """
        Forget what was seen before: called each time the block connects.
        """

    def _receive(self, index, chunk):
        if self._sync is None:
            if len(self.inputs) > 1:
                self.compute_input(index, chunk)
            else:
                self.compute(chunk)
            return
        for group in self._sync.add(index, chunk):
            self.compute(*group)
        self._balance_inputs()

    def _balance_inputs(self):
        """
        Pause an input that runs ahead of the others, so the synchroniser
        never buffers more than one queue's worth of it.
        """
        for port in self._ports:
            ahead = self._sync.depth(port.index) >= self.input_maxsize
            if ahead and port not in self._held and port.edge is not None:
                self._held.add(port)
                port.edge.pauseProducing()
            elif not ahead and port in self._held:
                self._held.discard(port)
                if port.edge is not None:
                    port.edge.resumeProducing()

    def _input_ended(self, index):
        if all(port.ended for port in self._ports):
            if self._sync is not None and self._sync.unaligned_rows:
                log.warn("{block} dropped {rows} rows that no other input "
                         "covered", block=_label(self), rows=self._sync.unaligned_rows)
            self.flush()
            self._end_stream()
        elif self._sync is not None and self._held:
            # An ended input will bring nothing more: release the others.
            for port in tuple(self._held):
                self._held.discard(port)
                if port.edge is not None:
                    port.edge.resumeProducing()

    def _end_stream(self):
        if self._ended:
            return
        self._ended = True
        for edge in self._edges:
            edge.put_end()

    # What subclasses implement.

    def compute(self, *chunks):
        """
        Handle one chunk (one per input, synchronised, for several inputs).
        """
        raise NotImplementedError(f"{type(self).__name__}.compute")

    def compute_input(self, index, chunk):
        """
        Handle one chunk of input ``index`` (blocks with
        ``synchronised = False`` only).
        """
        raise NotImplementedError(f"{type(self).__name__}.compute_input")

    def flush(self):
        """
        All inputs have ended: emit whatever is still held back.
        """


class Source(Block):
    """
    A block without inputs that emits chunks from :meth:`next_chunk`.

    It starts when its first consumer subscribes and stops when the last one
    leaves.  Paced, it keeps to device time through the graph's reactor;
    free-running, it emits as fast as its consumers take chunks (a pause
    stops it until they resume).
    """

    #: Most chunks emitted in one reactor turn when free-running or
    #: catching up, so other events keep being served.
    burst = 16

    def __init__(self, *, paced=True, **kwargs):
        super().__init__(**kwargs)
        self.paced = paced
        self._running = False
        self._call = None
        self._origin = None

    def next_chunk(self):
        """
        Return ``(data, start, end, rate, meta)`` for the next chunk, or
        ``None`` at the end of a finite stream.
        """
        raise NotImplementedError(f"{type(self).__name__}.next_chunk")

    def _activate(self):
        if self.active:
            return
        self.active = True
        self._ended = False
        self.reset()
        self._running = True
        self._start()

    def _start(self):
        """
        Begin producing: schedule the first chunk.  A source fed by a
        connection (an analyzer) connects here instead.
        """
        self._origin = None
        self._schedule(0)

    def _deactivate(self):
        self.active = False
        self._halt()

    def _halt(self):
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def stopProducing(self):
        """
        End the stream now: consumers see end-of-stream after what they
        already have.
        """
        self._halt()
        self._end_stream()

    def _on_pause(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _on_resume(self):
        if self._running:
            self._origin = None
            self._schedule(0)

    def _schedule(self, delay):
        if self._call is None or not self._call.active():
            self._call = self.graph.reactor.callLater(delay, self._tick)

    def _tick(self):
        self._call = None
        reactor = self.graph.reactor
        for _ in range(self.burst):
            if not self._running or self._pauses:
                return
            try:
                item = self.next_chunk()
            except Exception:
                self.graph.fail(self, Failure())
                return
            if item is None:
                self._halt()
                self._end_stream()
                return
            data, start, end, rate, meta = item
            if self._origin is None:
                self._origin = (reactor.seconds(), start)
            self.emit(data, start, end, rate, meta)
            if self.paced:
                wall, device = self._origin
                delay = wall + (end - device) / 1e9 - reactor.seconds()
                if delay > 0:
                    if self._running and not self._pauses:
                        self._schedule(delay)
                    return
        if self._running and not self._pauses:
            self._schedule(0)


@implementer(ISink)
class Sink(Block):
    """
    A block without outputs.  It connects to its inputs as soon as it is
    made, which starts the chain behind it.
    """

    def __init__(self, *inputs, **kwargs):
        super().__init__(*inputs, **kwargs)
        self.finished = False
        self._finish_waiters = []
        self.graph.add_sink(self)
        self._activate()

    def close(self):
        self._deactivate()
        self.graph.remove_sink(self)

    def wait_finished(self):
        """
        A Deferred that fires with the sink once it has seen the end of its
        inputs (at once if it has); cancelling it only stops the waiting.
        """
        if self.finished:
            return defer.succeed(self)
        waiter = defer.Deferred(lambda d: self._finish_waiters.remove(d))
        self._finish_waiters.append(waiter)
        return waiter

    def _end_stream(self):
        if not self.finished:
            self.finished = True
            waiters, self._finish_waiters = self._finish_waiters, []
            for waiter in waiters:
                waiter.callback(self)
            self.graph.sink_finished(self)


class Graph:
    """
    The blocks and edges of one program, and the reactor they run in.

    :param reactor: the reactor (or a ``task.Clock`` in tests); the global
        reactor when omitted.
    """

    def __init__(self, reactor=None):
        self._reactor = reactor
        self.blocks = {}
        self._sinks = []
        self._counts = {}
        self._waiters = []
        self._failure_waiters = []
        self.failure = None
        self.failed_block = None

    def __repr__(self):
        return f"<Graph of {len(self.blocks)} blocks>"

    @property
    def reactor(self):
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        return self._reactor

    def unique_name(self, base):
        if base not in self.blocks and base not in self._counts:
            self._counts[base] = 0
            return base
        while True:
            self._counts[base] = self._counts.get(base, 0) + 1
            name = f"{base}{self._counts[base]}"
            if name not in self.blocks:
                return name

    def add(self, block):
        if block.name in self.blocks:
            raise ValueError(f"a block named {block.name!r} already exists")
        self.blocks[block.name] = block

    @property
    def sinks(self):
        return tuple(self._sinks)

    @property
    def sources(self):
        return tuple(b for b in self.blocks.values() if isinstance(b, Source))

    @property
    def edges(self):
        return tuple(edge for block in self.blocks.values() for edge in block.edges)

    def add_sink(self, sink):
        self._sinks.append(sink)

    def remove_sink(self, sink):
        if sink in self._sinks:
            self._sinks.remove(sink)
        self._check_done()

    def sink_finished(self, sink):
        self._check_done()

    def _check_done(self):
        if self.failure is None and all(s.finished for s in self._sinks):
            self._fire(None)

    def _fire(self, result):
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if result is None:
                waiter.callback(None)
            else:
                waiter.errback(result)

    def done(self):
        """
        A Deferred that fires when every sink has seen end-of-stream, or
        fails with the first exception raised inside a block.
        """
        waiter = defer.Deferred()
        if self.failure is not None:
            waiter.errback(self.failure)
        elif self._sinks and all(s.finished for s in self._sinks):
            waiter.callback(None)
        else:
            self._waiters.append(waiter)
        return waiter

    def when_failed(self):
        """
        A Deferred that fires with the first block that raises (never, if
        none does); its exception is then :attr:`failure`.  Unlike
        :meth:`done` it does not wait for sinks: a long-lived graph (a
        worker's) whose sinks come and go watches it.  Cancelling it only
        stops the waiting.
        """
        if self.failure is not None:
            return defer.succeed(self.failed_block)
        waiter = defer.Deferred(lambda d: self._failure_waiters.remove(d))
        self._failure_waiters.append(waiter)
        return waiter

    def fail(self, block, failure):
        """
        A block raised: log it, stop the sources, fail :meth:`done`.
        """
        if self.failure is not None:
            log.failure("{block} also failed", failure, block=_label(block))
            return
        log.failure("{block} failed", failure, block=_label(block))
        self.failure = failure
        self.failed_block = block
        for source in self.sources:
            source._halt()
        waiters, self._failure_waiters = self._failure_waiters, []
        for waiter in waiters:
            waiter.callback(block)
        self._fire(failure)

    def stop(self):
        """
        End every running source's stream (and every stream that enters
        from another process); sinks finish with what they have and
        :meth:`done` fires.
        """
        # Every active producer without inputs is where a stream enters
        # this graph: a source, or a stream from another process.
        for block in tuple(self.blocks.values()):
            if block.active and not block.inputs and block.kind is not None:
                block.stopProducing()
        self._check_done()

    def run(self, duration=None):
        """
        Run the reactor until the graph is done (or for ``duration``
        seconds, then stop it cleanly).  Re-raises a block's exception.
        """
        keep_freed_memory()
        reactor = self.reactor
        outcome = []
        stopping = []

        def finished(result):
            outcome.append(result)
            if reactor.running and not stopping:
                reactor.stop()

        def shutting_down():
            # Ctrl-C or SIGTERM: let the sinks flush before the reactor goes.
            stopping.append(True)
            if not outcome:
                self.stop()

        self.done().addBoth(finished)
        if not outcome:
            if duration is not None:
                reactor.callLater(duration, self.stop)
            reactor.addSystemEventTrigger("before", "shutdown", shutting_down)
            reactor.run()
        if outcome and isinstance(outcome[0], Failure):
            outcome[0].raiseException()


_default_graph = None


def default_graph():
    """
    The graph that sources join when no ``graph=`` is given.
    """
    global _default_graph
    if _default_graph is None:
        _default_graph = Graph()
    return _default_graph


def set_default_graph(graph):
    """
    Make ``graph`` the default; return the previous one.
    """
    global _default_graph
    previous, _default_graph = _default_graph, graph
    return previous


def run(duration=None):
    """
    Run the default graph (see :meth:`Graph.run`).
    """
    default_graph().run(duration)
