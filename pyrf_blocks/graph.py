"""
The graph: the blocks of one program, the reactor they run in, and running
it until its sinks are done.

A block connects to its inputs only while it is a sink or something
downstream consumes it (see :mod:`.block`), so ``wsa -> fft -> calibrate``
without a sink stays idle and adding a sink brings the chain to life back
to the source.
"""

from twisted.internet import defer, error
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import reactor_thread
from .memory import keep_freed_memory
from .waiting import Waiters

__all__ = ["Graph", "default_graph", "set_default_graph", "run"]

log = Logger()

#: Longest :meth:`Graph.done` waits for the requests tidying up after a
#: graph (deleting the streams and blocks it made on workers), seconds.
CLEANUP_TIMEOUT = 5.0


class Graph:
    """
    The blocks and edges of one program, and the reactor they run in.

    :param reactor: the reactor (or a ``task.Clock`` in tests); the global
        reactor when omitted.
    :param parallel: a :class:`~pyrf_blocks.parallel.ThreadPool` or
        :class:`~pyrf_blocks.parallel.ProcessPool` for the compute of every
        block that can use one (unless the block is given its own).
    :param isolate_failures: a block that raises fails only itself and the
        blocks that depend on it (each gets a ``failure``), and the graph
        goes on: the graph of a worker, whose blocks belong to unrelated
        clients.  By default the first failure fails the whole graph.
    """

    def __init__(self, reactor=None, parallel=None, isolate_failures=False):
        self._reactor = reactor
        #: The graph's compute pool (:mod:`pyrf_blocks.parallel`), or None.
        self.parallel = parallel
        self.isolate_failures = isolate_failures
        self._block_failure_observers = []
        self._cleanups = []
        self._settling = False
        self.blocks = {}
        self._sinks = []
        self._counts = {}
        self._done_waiters = Waiters()
        self._failure_waiters = Waiters()
        self.failure = None
        self.failed_block = None
        #: The HTTP clients of the graph's remote blocks and places, by
        #: trusted CA: made and kept by :func:`~pyrf_blocks.net.client.http_client`.
        self.http_clients = {}
        #: The fusions chain optimisation made (:meth:`optimise`).
        self.fusions = ()
        #: What serves the graph's blocks to other processes, once
        #: :func:`~pyrf_blocks.net.serve.serve` has started it.
        self.served = None
        #: Sensor pipelines of the graph's file that no block keeps rows
        #: through, by name: fed from MQTT (``pyrf-blocks run`` serves
        #: them) and written back by ``graph_to_yaml``.
        self.sensor_pipelines = {}

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
        from .block import Source
        return tuple(b for b in tuple(self.blocks.values()) if isinstance(b, Source))

    @property
    def edges(self):
        return tuple(edge for block in tuple(self.blocks.values()) for edge in block.edges)

    def report(self, out):
        """
        Print what the run did to ``out``: one line per sink (chunks taken,
        finished or not), one per source with a ``summary()``, and one per
        edge that dropped chunks.
        """
        def consumer(edge):
            return getattr(edge.consumer, "block", edge.consumer)

        edges = self.edges
        for sink in self.sinks:
            taken = sum(edge.chunks_out for edge in edges if consumer(edge) is sink)
            state = "finished" if sink.finished else "not finished"
            print(f"{sink.type_name} {sink.name!r}: {taken} chunk{'s' * (taken != 1)}, "
                  f"{state}", file=out)
        for source in self.sources:
            summary = getattr(source, "summary", None)
            if summary is not None:
                print(f"{source.type_name} {source.name!r}: {summary()}", file=out)
        for edge in edges:
            if edge.dropped:
                print(f"{edge.producer.name} -> {consumer(edge).name}: "
                      f"dropped {edge.dropped} chunks ({edge.policy})", file=out)

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
            if self._cleanups:
                self._settle()
            else:
                self._done_waiters.fire(None)

    def add_cleanup(self, deferred):
        """
        Make :meth:`done` wait for ``deferred``, a request that tidies up
        after the graph (a worker's streams and blocks it made, deleted),
        up to :data:`CLEANUP_TIMEOUT` seconds; its failure is logged.
        """
        self._cleanups.append(deferred)

        def settled(result):
            self._cleanups.remove(deferred)
            if isinstance(result, Failure):
                log.warn("tidying up after {graph} failed: {error}", graph=self,
                         error=result.getErrorMessage())
            if not self._cleanups and self._settling:
                self._settled()
        deferred.addBoth(settled)

    def _settle(self):
        if self._settling:
            return
        self._settling = True
        self._settle_timer = self.reactor.callLater(CLEANUP_TIMEOUT, self._settled)

    def _settled(self):
        if not self._settling:
            return
        self._settling = False
        if self._settle_timer.active():
            self._settle_timer.cancel()
        if self.failure is None and all(s.finished for s in self._sinks):
            self._done_waiters.fire(None)

    def done(self):
        """
        A Deferred that fires when every sink has seen end-of-stream (and
        the clean-ups added meanwhile have settled: :meth:`add_cleanup`),
        or fails with the first exception raised inside a block.
        """
        if self.failure is not None:
            return defer.fail(self.failure)
        if self._sinks and all(s.finished for s in self._sinks) and not self._settling:
            return defer.succeed(None)
        return self._done_waiters.wait()

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
        return self._failure_waiters.wait()

    def fail(self, block, failure):
        """
        A block raised: log it, stop the sources and the reading of every
        stream that enters from another process, fail :meth:`done` (with
        ``isolate_failures``: fail that block and its dependents only).
        """
        if self.isolate_failures:
            self._fail_block(block, failure)
            return
        if self.failure is not None:
            log.failure("{block} also failed", failure, block=block.label)
            return
        log.failure("{block} failed", failure, block=block.label)
        self.failure = failure
        self.failed_block = block
        sources = self.sources
        for source in sources:
            source.halt()
        # A stream read from another process (a remote or placed block) is
        # not a Source: left alone, it was polled until the process exited.
        for other in tuple(self.blocks.values()):
            halt = getattr(other, "halt", None)
            if halt is not None and other.active and other not in sources:
                halt()
        self._failure_waiters.fire(block)
        self._done_waiters.fire(failure)

    def failure_line(self, error, unnamed="the graph"):
        """
        The line a command prints when a run of this graph raised
        ``error``: ``"fft_block 'fft' failed: ..."``, naming the block that
        failed (``unnamed`` when none did) once.  A block named after its
        type is named by it alone (``thinkrf_analyzer: cannot connect``,
        not ``thinkrf_analyzer 'thinkrf_analyzer': ...``), and an error
        that starts with the block's label (the block's own errors do) is
        not prefixed with it again.  Nor is an error of a block that chain
        optimisation fused into it (a hold that computes its calibration
        fails with the calibration's error): the line names that block, as
        the unoptimised graph's would.
        """
        message = str(error)
        block = self.failed_block
        if block is None:
            return f"{unnamed} failed: {message}"
        for other in (block, *self._fused_into(block)):
            if message.startswith(other.label):
                named = other.type_name if other.name == other.type_name else other.label
                return named + message[len(other.label):]
        named = block.type_name if block.name == block.type_name else block.label
        return f"{named} failed: {message}"

    def _fused_into(self, block):
        # The other blocks of the fusions ``block`` takes part in.
        names = {name for fusion in self.fusions if block.name in fusion.blocks
                 for name in fusion.blocks}
        return [self.blocks[name] for name in sorted(names - {block.name})
                if name in self.blocks]

    def dependents(self, block):
        """
        ``block`` and every block that consumes it, directly or through
        others, in flow order.
        """
        from .block import block_of

        found = [block]
        for other in tuple(self.blocks.values()):
            if other not in found and any(block_of(p) in found for p in other.inputs):
                found.append(other)
        return found

    def observe_block_failures(self, observer):
        """
        Call ``observer(block, failed)`` whenever a block fails in a graph
        with ``isolate_failures``; ``failed`` lists it and its dependents,
        each with its ``failure`` set.
        """
        self._block_failure_observers.append(observer)

    def _fail_block(self, block, failure):
        if block.failure is not None:
            log.failure("{block} also failed", failure, block=block.label)
            return
        log.failure("{block} failed; the blocks that depend on it stop, the others "
                    "go on", failure, block=block.label)
        failed = [b for b in self.dependents(block) if b.failure is None]
        message = f"{block.label} failed: {failure.type.__name__}: {failure.getErrorMessage()}"
        for dependent in failed:
            dependent.failure = failure if dependent is block else Failure(
                RuntimeError(f"{message} (an input of {dependent.label})"))
        for dependent in reversed(failed):
            dependent.stop_failed()
        for observer in tuple(self._block_failure_observers):
            observer(block, failed)

    def stop(self):
        """
        End every running source's stream (and every stream that enters
        from another process); sinks finish with what they have and
        :meth:`done` fires.
        """
        self.in_reactor_thread(self._stop)

    def _stop(self):
        # Every active producer whose inputs (if any) are not read here is
        # where a stream enters this graph: a source, a stream from another
        # process, or a block placed on a worker, which ends its stream
        # where it starts (see placed_block.stopProducing).
        # A sink placed on a worker ends there, when the sources it reads
        # (placed or of this process) have.
        for block in tuple(self.blocks.values()):
            if not block.active:
                continue
            if block.kind is None:
                if not block.local_inputs:
                    block.end_at_origin()
            elif not block.inputs or not block.local_inputs:
                block.stopProducing()
        self._check_done()

    def in_reactor_thread(self, function, *args, **kwargs):
        """
        Call ``function(*args, **kwargs)`` in the thread that runs this
        graph's reactor and return its result: directly when this is that
        thread, when the reactor is not running in another one (between
        runs, a ``task.Clock``), and through the reactor thread otherwise.
        Blocks are built, sinks closed and graphs stopped this way, so any
        thread may do it while a graph runs.
        """
        thread = reactor_thread.running_elsewhere()
        if thread is None or self.reactor is not thread.reactor:
            return function(*args, **kwargs)
        return thread.call(function, *args, **kwargs)

    def optimise(self):
        """
        Chain optimisation (:mod:`pyrf_blocks.optimise`): fuse the steps
        whose result is provably the same, before the graph runs; return
        the fusions made (also kept in :attr:`fusions`).
        """
        from .optimise import optimise
        return self.in_reactor_thread(optimise, self)

    def run(self, duration=None, optimise=False):
        """
        Run the reactor until the graph is done (or for ``duration``
        seconds, then stop it cleanly).  Re-raises a block's exception.
        With ``optimise`` the graph is first optimised (:meth:`optimise`).

        The global reactor runs in a thread of its own, started by the
        first run and parked between runs (:mod:`pyrf_blocks.reactor_thread`),
        so a process may run graphs again and again; Ctrl-C or SIGTERM stop
        the graph, its sinks finish with what they have, and ``run``
        returns.  A reactor given to the graph, or one that must run in the
        main thread (Qt's, see :mod:`pyrf_blocks.gui.loop`), is run here,
        once.
        """
        keep_freed_memory()
        if optimise:
            self.optimise()
        reactor = self.reactor
        thread = reactor_thread.reactor_thread(reactor)
        if thread is not None:
            thread.run(self, duration)
        else:
            self._run_here(reactor, duration)

    def _run_here(self, reactor, duration):
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
            try:
                reactor.run()
            except error.ReactorNotRestartable:
                raise error.ReactorNotRestartable(
                    f"{self!r}: this graph's reactor ran once already and cannot run "
                    "again (Qt's event loop, or a reactor given to the graph); graphs "
                    "on the global reactor without a window can run again and "
                    "again") from None
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
    Run the default graph (see :meth:`Graph.run`); call it again for the
    blocks made since.  If a block fails, its exception is raised and the
    failed graph is set aside: blocks made afterwards join a new default
    graph.
    """
    graph = default_graph()
    try:
        graph.run(duration)
    except Exception:
        if graph.failure is not None and _default_graph is graph:
            set_default_graph(Graph())
        raise
