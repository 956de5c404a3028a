"""
Blocks: what a block author writes, and the runtime around it.

An author subclasses :class:`Block` (a step with inputs), :class:`Sink` (no
outputs), :class:`PolledSource` (the graph asks it for chunks) or
:class:`Source` (chunks arrive on their own: a connection, a
subscription).  The class declares ``type_name``, ``kind`` (the main
output's kind; ``extra_outputs`` for more) and ``requires``, and
implements the hooks of :class:`~pyrf_blocks.interfaces.IBlockHooks`:
``compute``, ``flush``, ``reset``, and for a source ``on_start``,
``on_stop``, ``on_pause`` and ``on_resume``.  It emits with :meth:`emit`.

Everything else is the runtime's and private to this module: input ports,
lazy connection (a block connects to its inputs only while something
consumes one of its outputs), pausing the inputs when an output is full,
synchronising several inputs, end of stream.
"""

import functools
import inspect

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from . import graph as _graphs  # default_graph(); graph.py imports this module
import numpy as np

from . import reactor_thread
from .buffers import BufferPool
from .parallel import Mailbox
from .params import convert_arguments
from .chunk import Chunk
from .edge import Edge, check_policy
from .interfaces import (
    KIND_INTERFACES, IBlock, IBlockHooks, IChunkConsumer, IOutput, IPushProducer, ISink,
)
from .sync import InputsAhead, Synchronizer
from .waiting import Waiters

__all__ = ["Block", "Source", "PolledSource", "Sink", "Output", "InputPort", "MAIN",
           "label", "output_kinds", "reference", "split_reference", "block_of"]

log = Logger()

#: Name of a block's first output, the one the block itself stands for.
MAIN = "main"


def label(obj):
    """
    How messages name a block, an output or any other object.
    """
    return obj.label if IBlock.providedBy(obj) else repr(obj)


def block_of(producer):
    """
    The block of a producer given as an input: the block itself, or the
    block an output (``block.output("late")``) belongs to.
    """
    return producer.block if IOutput.providedBy(producer) else producer


def output_kinds(factory, kind):
    """
    ``{output name: kind}`` of a block type (or block) whose main output is
    of ``kind`` (``None`` for a sink): the main one first, then its
    ``extra_outputs``.
    """
    kinds = {} if kind is None else {MAIN: kind}
    kinds.update(getattr(factory, "extra_outputs", None) or {})
    return kinds


def reference(name, output=MAIN):
    """
    How an input names a block's output: ``name`` for the main one,
    ``name:output`` for another (pipeline files, worker requests).
    """
    return name if output == MAIN else f"{name}:{output}"


def split_reference(ref):
    """
    ``(block name, output name)`` of a :func:`reference`.
    """
    name, _, output = ref.partition(":")
    return name, output or MAIN


def _provided_kinds(obj):
    names = [iface.__name__ for iface in KIND_INTERFACES.values()
             if iface.providedBy(obj)]
    return ", ".join(names) or "no producer interface"


@implementer(IOutput)
class Output:
    """
    One named stream of a block: its consumers' edges and its ``seq``.

    A block's main output is consumed through the block itself
    (``fft_block(wsa)``); any output through :meth:`Block.output`
    (``collector(window.output("late"))``).  It provides the producer
    interface of its kind, so connecting it is checked like a block.
    """

    def __init__(self, block, name, kind):
        if kind not in KIND_INTERFACES:
            raise ValueError(f"{block.label}: output {name!r} has unknown kind {kind!r}; "
                             f"known: {', '.join(KIND_INTERFACES)}")
        self.block = block
        self.output_name = name
        self.kind = kind
        self.edges = ()
        #: ``seq`` of the next chunk of this output.
        self.next_seq = 0
        #: Rows it has put out, and the device time (ns) its last chunk
        #: ended at (None before the first): what metrics report.
        self.rows = 0
        self.device_end = None
        alsoProvides(self, KIND_INTERFACES[kind])

    def __repr__(self):
        return f"<output {self.output_name!r} of {self.block.label}>"

    @property
    def name(self):
        return reference(self.block.name, self.output_name)

    @property
    def label(self):
        block = self.block.label
        return block if self.output_name == MAIN else f"{block} output {self.output_name!r}"

    @property
    def type_name(self):
        return self.block.type_name

    @property
    def graph(self):
        return self.block.graph

    @property
    def inputs(self):
        return self.block.inputs

    @property
    def outputs(self):
        return self.block.outputs

    @property
    def active(self):
        return self.block.active

    def subscribe(self, consumer, policy="block", maxsize=None):
        edge = Edge(self, consumer, policy, maxsize)
        self.edges += (edge,)
        consumer.registerProducer(edge, True)
        self.block._consumer_added()
        if self.block.ended:
            edge.put_end()
        return edge

    def unsubscribe(self, edge):
        if edge not in self.edges:
            return
        self.edges = tuple(e for e in self.edges if e is not edge)
        edge.close()
        self.block._consumer_removed()

    def put(self, chunk):
        """
        Send ``chunk`` to every consumer, counted first (:meth:`count`).
        """
        self.count(chunk.seq, len(chunk.data), chunk.end)
        for edge in self.edges:
            edge.put(chunk)

    def count(self, seq, rows, end):
        """
        Count chunk ``seq``, of ``rows`` rows ending at device time ``end``
        (ns), as put out: the numbering goes on after it, and metrics see
        its rows and end.  :meth:`put` counts every chunk it sends; a block
        that hands a chunk's rows straight to its consumer instead (chain
        optimisation) counts them itself.
        """
        self.next_seq = seq + 1
        self.rows += rows
        self.device_end = end

    def put_end(self):
        for edge in self.edges:
            edge.put_end()

    # IPushProducer: an edge of this output pauses the whole block.

    def pauseProducing(self):
        self.block.pauseProducing()

    def resumeProducing(self):
        self.block.resumeProducing()

    def stopProducing(self):
        for edge in self.edges:
            self.unsubscribe(edge)


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
        #: One input and no synchroniser: a chunk goes straight to compute.
        self._direct = block._sync is None and len(block.inputs) == 1
        #: Device time (ns) up to which the block has taken this input:
        #: the ``end`` of the last chunk it computed (None before the
        #: first).  Durable acknowledgement reads it (:mod:`~pyrf_blocks.durable`).
        self.through = None

    def __repr__(self):
        return f"<input {self.index + 1} of {self.block.label}>"

    @property
    def label(self):
        return repr(self)

    def registerProducer(self, producer, streaming):
        self.edge = producer

    def unregisterProducer(self):
        self.edge = None

    def write(self, chunk):
        if self._direct:
            self.block.compute(chunk)  # Block._receive's common case, written out
        else:
            self.block._receive(self.index, chunk)
        self.through = chunk.end

    def end_of_stream(self):
        self.ended = True
        self.block._input_ended(self.index)


class BlockType(type):
    """
    The type of blocks: a block made while its graph runs in the reactor's
    thread, from another thread, is made in the reactor's thread (its
    constructor connects a sink, which starts the chain behind it).
    Anywhere else, between runs and on a ``task.Clock``, it is made right
    here (see :meth:`Graph.in_reactor_thread
    <pyrf_blocks.graph.Graph.in_reactor_thread>`).
    """

    @property
    def __signature__(cls):
        # What help(), a notebook's ``fft_block?`` and Sphinx show: the
        # constructor's parameters, not those of __call__ below.
        signature = inspect.signature(cls.__init__)
        return signature.replace(parameters=tuple(signature.parameters.values())[1:])

    def __call__(cls, *inputs, **kwargs):
        # Parameters are converted ("2.4GHz") and checked by the class's
        # rules before anything is made, here or in another process.
        inputs, kwargs = convert_arguments(cls, inputs, kwargs)
        if reactor_thread.running_elsewhere() is None:
            return super().__call__(*inputs, **kwargs)
        graph = (kwargs.get("graph")
                 or next((p.graph for p in inputs if IBlock.providedBy(p)), None)
                 or _graphs.default_graph())
        return graph.in_reactor_thread(super().__call__, *inputs, **kwargs)


@implementer(IBlock, IBlockHooks, IPushProducer)
class Block(metaclass=BlockType):
    """
    Base of every block.

    Subclasses declare ``type_name``, ``kind`` (the main output's kind,
    ``None`` for a sink), ``extra_outputs`` (``{name: kind}`` of further
    outputs) and ``requires`` (one interface per input; with ``variadic =
    True`` a single interface that every input must provide), and implement
    :meth:`compute` (and :meth:`flush` if they hold data back).
    """

    type_name = "block"
    kind = None
    #: Outputs beyond the main one, ``{name: kind}``.
    extra_outputs = {}
    requires = ()
    variadic = False
    #: Several inputs are re-cut to common time ranges before ``compute``.
    #: A block that treats its inputs independently (a display overlaying
    #: sources) sets this to False and implements ``compute_input``.
    synchronised = True
    #: False for a stand-in whose inputs are read in another process (a
    #: block placed on a worker): they are checked here but not connected.
    local_inputs = True
    #: Why the block failed (a ``Failure``), in a graph that isolates
    #: failures (a worker's: see :class:`~pyrf_blocks.graph.Graph`).
    failure = None

    #: A state given to ``set_state`` before the block was connected,
    #: applied when it connects (right after ``reset``).
    _state_before_connection = None
    _restoring = False
    #: True for a block restored from a snapshot taken after it had ended
    #: (:func:`~pyrf_blocks.cluster.runner.restore`): it flushed then, so
    #: the end of its inputs ends it without flushing a second time.
    flushed_before = False

    def __init_subclass__(cls, **kwargs):
        # A block's state is reset when it connects: a state restored
        # before that (a snapshot put back into a freshly built graph) is
        # applied at once (after a reset, which sets up what the state
        # fills) and again when the block connects, rather than wiped.
        super().__init_subclass__(**kwargs)
        restore = cls.__dict__.get("set_state")
        if restore is not None and not getattr(restore, "_kept_until_connected", False):
            @functools.wraps(restore)
            def set_state(self, state):
                if self.active or self._restoring:  # (a subclass's super() call)
                    restore(self, state)
                    return
                self._restoring = True
                try:
                    self.reset()
                    restore(self, state)
                finally:
                    self._restoring = False
                self._state_before_connection = state
            set_state._kept_until_connected = True
            cls.set_state = set_state

    def __new__(cls, *inputs, proc=None, **kwargs):
        # proc= places the block in another process: what is made here is
        # that process's stand-in for it (pyrf_blocks.net.placement).
        if proc is not None:
            return proc.place(cls, inputs, kwargs)
        return super().__new__(cls)

    def __init__(self, *inputs, name=None, graph=None, policy="block",
                 maxsize=None, proc=None, parallel=None):
        self.inputs = tuple(inputs)
        #: This block's compute pool (:mod:`pyrf_blocks.parallel`); None
        #: takes the graph's, False runs serially whatever the graph's.
        self.parallel = parallel
        self.graph = graph or self._graph_of_inputs() or _graphs.default_graph()
        self.name = self.graph.unique_name(name or self.type_name)
        self._check_inputs()
        self.input_policy = policy
        self.input_maxsize = check_policy(policy, maxsize)
        self.kind = self.output_kind()
        #: The block's outputs by name, the main one first.
        self.outputs = {name: Output(self, name, kind)
                        for name, kind in output_kinds(self, self.kind).items()}
        if self.kind is not None:
            alsoProvides(self, KIND_INTERFACES[self.kind])
        self.active = False
        #: True once the block has ended its outputs' streams.
        self.ended = False
        self._ports = ()
        self._pauses = 0
        self._sync = None
        #: With the synchroniser: its inputs that run ahead of the others.
        self._ahead = None
        self._buffers = None
        self._lender = None
        self._mailbox = None
        self._mail_paused = False
        self.graph.add(self)

    def __repr__(self):
        return f"<{self.type_name} {self.name!r}>"

    @property
    def label(self):
        return f"{self.type_name} {self.name!r}"

    def output_kind(self):
        """
        The kind of the main output (a pass-through block returns its
        input's).
        """
        return type(self).kind

    def output(self, name=MAIN):
        """
        The output called ``name``, to consume it:
        ``collector(block.output("late"))``.
        """
        try:
            return self.outputs[name]
        except KeyError:
            raise KeyError(f"{self.label} has no output {name!r}; it has "
                           f"{', '.join(map(repr, self.outputs)) or 'none'}") from None

    def _graph_of_inputs(self):
        return next((p.graph for p in self.inputs if IBlock.providedBy(p)), None)

    def _check_inputs(self):
        what = self.label
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
                got = (f"{label(producer)} (provides {_provided_kinds(producer)})"
                       if IBlock.providedBy(producer) else repr(producer))
                raise TypeError(f"{what}: input {index + 1} must provide "
                                f"{iface.__name__}, got {got}")
            if producer.graph is not self.graph:
                raise ValueError(f"{what}: input {label(producer)} belongs "
                                 "to another graph")

    # Downstream side: the main output, and emission.

    @property
    def edges(self):
        """
        The edges fed by every output of this block.
        """
        return tuple(edge for output in self.outputs.values() for edge in output.edges)

    def subscribe(self, consumer, policy="block", maxsize=None):
        if self.kind is None:
            raise TypeError(f"{self.label} is a sink: nothing can consume it")
        return self.outputs[MAIN].subscribe(consumer, policy, maxsize)

    def unsubscribe(self, edge):
        for output in self.outputs.values():
            if edge in output.edges:
                output.unsubscribe(edge)
                return

    def emit(self, data, start, end, rate, meta=None, output=MAIN):
        """
        Send one chunk to every consumer of ``output``; return it.
        """
        out = self.outputs[output]
        chunk = Chunk(out.kind, data, start, end, rate, out.next_seq, meta)
        out.put(chunk)
        return chunk

    def emit_records(self, times, values, start=None, end=None, meta=None, output=MAIN,
                     ordered=False):
        """
        Send one chunk of records (irregular, time-stamped values: see
        :meth:`Chunk.records <pyrf_blocks.chunk.Chunk.records>`) to every
        consumer of ``output``, a ``records`` output; return it.

        ``ordered=True``: ``times`` is an int64 array known to be in order
        (an input chunk's own times, or times made in order), ``values``
        an array of numbers, and ``start`` and ``end`` are given; they are
        then checked as :class:`~pyrf_blocks.chunk.Chunk` checks them
        (shapes and bounds), not row by row.
        """
        out = self.outputs[output]
        if out.kind != "records":
            raise ValueError(f"{out.label} emits {out.kind!r} chunks, not records")
        if ordered:
            chunk = Chunk("records", values, start, end, 0.0, out.next_seq, meta, times)
        else:
            chunk = Chunk.records(times, values, start, end, out.next_seq, meta)
        out.put(chunk)
        return chunk

    def forward(self, chunk, output=MAIN):
        """
        Send a chunk made elsewhere, keeping its ``seq`` (a stream relayed
        from another process): the output's numbering continues from it,
        and a jump is a gap its consumers see.
        """
        out = self.outputs[output]
        if chunk.kind != out.kind:
            raise ValueError(f"{out.label} emits {out.kind!r} chunks, not {chunk.kind!r}")
        if chunk.seq < out.next_seq:
            raise ValueError(f"{out.label}: chunk seq {chunk.seq} after "
                             f"{out.next_seq - 1}: a stream's seq only grows")
        out.put(chunk)
        return chunk

    def buffer(self, shape, dtype=np.float32):
        """
        An array for the data of a chunk this block is about to emit, taken
        from the block's :class:`~pyrf_blocks.buffers.BufferPool`: one it
        emitted before that no consumer holds any more, or a new one.  Its
        contents are undefined; fill it, then emit it.
        """
        lender = self._lender
        if lender is not None:
            array = lender(shape, dtype)
            if array is not None:
                return array
        pool = self._buffers
        if pool is None:
            compute = self.compute_pool
            # On a compute pool up to ``depth`` results are outstanding, each
            # holding its buffer, and as many again may wait in edges: a
            # pool remembering fewer scanned them all and made a new array
            # for every chunk.
            pool = self._buffers = (
                BufferPool() if compute is None
                else BufferPool(limit=max(16, 2 * compute.depth), allocate=compute.allocate))
        return pool.take(shape, dtype)

    def lend_buffers(self, lender):
        """
        Take the arrays :meth:`buffer` hands out from ``lender(shape,
        dtype)`` when it gives one (it returns ``None`` when it cannot):
        a shared-memory stream reading this block's main output lends
        memory of its ring, so that the output is written where the other
        process reads it and emitting it copies nothing (see
        :mod:`pyrf_blocks.net.shm`).
        """
        self._lender = lender

    def unlend_buffers(self, lender):
        """
        Stop taking arrays from ``lender``, if it is the one lending them.
        """
        if self._lender == lender:
            self._lender = None

    @property
    def compute_pool(self):
        """
        The pool :meth:`run_parallel` uses: the block's own
        (``parallel=``), else its graph's; None runs the work at once.
        """
        if self.parallel is False:
            return None
        return self.parallel if self.parallel is not None else self.graph.parallel

    def run_parallel(self, function, *args, then):
        """
        Run ``function(*args)`` on the block's :attr:`compute_pool` and
        call ``then(result)`` in the reactor's thread, in the order of the
        calls (at once, here, without a pool).  ``function`` must not touch
        the block (it may run in another thread or process: give it arrays
        and numbers); ``then`` emits.  With ``depth`` results outstanding
        the block's inputs pause; its stream ends after the last result.
        """
        pool = self.parallel  # compute_pool, written out: once per chunk
        if pool is None:
            pool = self.graph.parallel
        if pool is None or pool is False:
            then(function(*args))
            return
        mailbox = self._mailbox
        if mailbox is None:
            mailbox = self._mailbox = Mailbox(
                self.graph.reactor, lambda failure: self.graph.fail(self, failure),
                self._mail_delivered)
        mailbox.send(pool, function, args, then)
        if len(mailbox) >= pool.depth and not self._mail_paused:
            self._mail_paused = True
            for edge in self.input_edges:
                if edge is not None:
                    edge.pauseProducing()

    def _mail_delivered(self):
        pool = self.compute_pool
        # Inputs resume once half the pool's depth is free: a burst of
        # chunks per pause, not a pause and a resume per chunk.
        if self._mail_paused and (pool is None or len(self._mailbox) <= pool.depth // 2):
            self._mail_paused = False
            for edge in self.input_edges:
                if edge is not None:
                    edge.resumeProducing()

    def _close_mailbox(self):
        if self._mailbox is not None:
            self._mailbox.close()
            self._mailbox = None
        self._mail_paused = False

    def end(self):
        """
        End every output's stream: consumers see end-of-stream after what
        they already have.  (The runtime calls it once the inputs have
        ended; a source calls it at the end of a finite stream.)
        """
        if self.ended:
            return
        self.ended = True
        for output in self.outputs.values():
            output.put_end()

    # Flow control: IPushProducer, called through the outputs' edges.

    def pauseProducing(self):
        self._pauses += 1
        if self._pauses == 1:
            for edge in self.input_edges:
                if edge is not None:
                    edge.pauseProducing()
            self.on_pause()

    def resumeProducing(self):
        if not self._pauses:
            return
        self._pauses -= 1
        if not self._pauses:
            for edge in self.input_edges:
                if edge is not None:
                    edge.resumeProducing()
            self.on_resume()

    def stopProducing(self):
        for output in self.outputs.values():
            output.stopProducing()

    @property
    def paused(self):
        """
        True while a consumer of an output cannot take more.
        """
        return self._pauses > 0

    @property
    def holding(self):
        """
        True while the block holds input rows it has not computed yet (a
        chunk of one input waiting for the others').  A snapshot of the
        graph is consistent only when no block holds any.
        """
        return self._sync is not None and self._sync.holding

    @property
    def input_edges(self):
        """
        The edge feeding each input while connected (``None`` otherwise):
        a block may pause and resume them, and read their ``dropped``.
        """
        return tuple(port.edge for port in self._ports)

    def replace_input(self, index, producer):
        """
        Read input ``index`` from ``producer`` instead (chain optimisation
        rewires a graph this way before it runs): checked like a
        constructor's input; if the block is connected it subscribes to
        ``producer`` first, then leaves the old one, which stops if nothing
        else consumes it.
        """
        inputs = list(self.inputs)
        old, inputs[index] = inputs[index], producer
        self._set_inputs(inputs)
        if not (self.active and self.local_inputs):
            return
        port = self._ports[index]
        old_edge = port.edge
        edge = producer.subscribe(port, self.input_policy, self.input_maxsize)
        if self._pauses:
            edge.pauseProducing()
        if old_edge is not None:
            old.unsubscribe(old_edge)  # closing it unregisters it from the port
            port.edge = edge

    def _set_inputs(self, producers):
        # Checked like a constructor's inputs; left as they were if refused.
        previous, self.inputs = self.inputs, tuple(producers)
        try:
            self._check_inputs()
        except (TypeError, ValueError):
            self.inputs = previous
            raise

    def replace_inputs(self, producers):
        """
        Read from ``producers`` instead of the current inputs, however many
        (chain optimisation gives a block its feeder's inputs this way
        before the graph runs): checked like a constructor's inputs; if the
        block is connected it subscribes to all of them first, with fresh
        ports and synchroniser, then leaves the old ones, which stop if
        nothing else consumes them.
        """
        previous = self.inputs
        self._set_inputs(producers)
        if not (self.active and self.local_inputs):
            return
        old_ports = self._ports
        self._synchronise_inputs()
        self._ports = tuple(InputPort(self, index) for index in range(len(self.inputs)))
        for port, producer in zip(self._ports, self.inputs):
            producer.subscribe(port, self.input_policy, self.input_maxsize)
            if self._pauses:
                port.edge.pauseProducing()
        for port, producer in zip(old_ports, previous):
            if port.edge is not None:
                producer.unsubscribe(port.edge)

    def stop_failed(self):
        """
        The block, or one it depends on, failed (``failure`` is set): stop
        producing and let go of the inputs, so that the blocks upstream go
        on serving their other consumers.
        """
        self._deactivate()

    # Upstream side: lazy connection to the inputs.

    def _consumer_added(self):
        self._activate()

    def _consumer_removed(self):
        if not any(output.edges for output in self.outputs.values()):
            self._deactivate()

    def _activate(self):
        if self.active:
            return
        self.active = True
        self.ended = False
        self._synchronise_inputs()
        self._close_mailbox()
        self.reset()
        state, self._state_before_connection = self._state_before_connection, None
        if state is not None:
            self.set_state(state)
        if self.local_inputs:
            ports = []
            for index, producer in enumerate(self.inputs):
                port = InputPort(self, index)
                ports.append(port)
                self._ports = tuple(ports)
                producer.subscribe(port, self.input_policy, self.input_maxsize)
                if self._pauses:
                    port.edge.pauseProducing()
        self.on_start()

    def _synchronise_inputs(self):
        """
        A fresh synchroniser for the inputs (several, synchronised, read
        here), with the inputs it pauses when they run ahead; else none.
        """
        if len(self.inputs) > 1 and self.synchronised and self.local_inputs:
            self._sync = Synchronizer(len(self.inputs))
            self._ahead = InputsAhead(self.input_maxsize, self._sync.depth, self._input_edge)
        else:
            self._sync = self._ahead = None

    def _deactivate(self):
        if not self.active:
            return
        self.on_stop()
        self.active = False
        self._close_mailbox()
        ports, self._ports = self._ports, ()
        for port, producer in zip(ports, self.inputs):
            if port.edge is not None:
                producer.unsubscribe(port.edge)

    def _receive(self, index, chunk):
        if self._sync is None:
            if len(self.inputs) > 1:
                self.compute_input(index, chunk)
            else:
                self.compute(chunk)
            return
        groups = self._sync.add(index, chunk)
        for group in groups:
            self.compute(*group)
        self._ahead.added(index, bool(groups))

    def _input_edge(self, index):
        """The edge that feeds input ``index`` (None while it has none)."""
        return self._ports[index].edge

    def _input_ended(self, index):
        if all(port.ended for port in self._ports):
            if self._mailbox is not None and len(self._mailbox):
                # Results still outstanding come first.
                self._mailbox.when_idle(self._inputs_done)
                return
            self._inputs_done()
            return
        self.on_input_end(index)
        if self._ahead is not None:
            self._ahead.release()

    def _inputs_done(self):
        if self._sync is not None and self._sync.unaligned_rows:
            log.warn("{block} dropped {rows} rows that no other input "
                     "covered", block=self.label, rows=self._sync.unaligned_rows)
        if not self.flushed_before:
            self.flush()
        if self._mailbox is not None and len(self._mailbox):
            self._mailbox.when_idle(self.end)
        else:
            self.end()

    # The hooks (IBlockHooks): what subclasses implement.

    def reset(self):
        """
        Forget what was seen before: called each time the block connects.
        """

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

    def on_input_end(self, index):
        """
        Input ``index`` has ended while others go on (when the last one
        ends, :meth:`flush` is called instead).
        """

    def on_start(self):
        """
        The block is connected (after :meth:`reset`): a source starts
        producing.
        """

    def on_stop(self):
        """
        Stop producing: the last consumer left, the stream was ended or the
        graph failed.  May be called more than once.
        """

    def on_pause(self):
        """
        A consumer is full (the inputs are already paused): a source stops
        reading until :meth:`on_resume`.
        """

    def on_resume(self):
        """
        The consumers can take more again.
        """


class Source(Block):
    """
    A block without inputs whose chunks arrive on their own (a connection,
    a subscription): it implements :meth:`on_start` (connect),
    :meth:`on_stop` (disconnect), :meth:`on_pause` and :meth:`on_resume`
    (stop and restart reading, so that backpressure reaches the socket),
    and calls :meth:`emit` as data arrives and :meth:`end` at the end of
    a finite stream.
    """

    def stopProducing(self):
        """
        End the stream now (``Graph.stop``): consumers see end-of-stream
        after what they already have.
        """
        self.on_stop()
        self.end()

    def halt(self):
        """
        Stop producing without ending the stream (the graph failed).
        """
        self.on_stop()


class PolledSource(Source):
    """
    A source that emits the chunks :meth:`next_chunk` returns.

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
        Return ``(data, start, end, rate, meta)`` for the next chunk (or a
        :class:`~pyrf_blocks.chunk.Chunk`, records for instance, whose
        ``seq`` is then this source's next), or ``None`` at the end of a
        finite stream.
        """
        raise NotImplementedError(f"{type(self).__name__}.next_chunk")

    def on_start(self):
        self._running = True
        self._start_pacing()
        self._schedule(0)

    def on_stop(self):
        self._running = False
        self._cancel()

    def on_pause(self):
        self._cancel()

    def on_resume(self):
        if self._running:
            self._start_pacing()
            self._schedule(0)

    def _start_pacing(self):
        # Device time is kept from the moment the source starts (or
        # resumes), not from its first turn: a test's clock.advance(0.1)
        # right after making the sink then gives 0.1 s of data.
        self._origin = None
        self._started_at = self.graph.reactor.seconds()

    def _cancel(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self, delay):
        if self._call is None or not self._call.active():
            self._call = self.graph.reactor.callLater(delay, self._tick)

    def _tick(self):
        self._call = None
        reactor = self.graph.reactor
        for _ in range(self.burst):
            if not self._running or self._pauses:  # (paused, written out)
                return
            try:
                item = self.next_chunk()
            except Exception:
                self.graph.fail(self, Failure())
                return
            if item is None:
                self.on_stop()
                self.end()
                return
            if isinstance(item, Chunk):
                start, end = item.start, item.end
                out = self.outputs[MAIN]
                if self._origin is None:
                    self._origin = (self._started_at, start)
                out.put(item.replace(seq=out.next_seq))
            else:
                end = item[2]
                if self._origin is None:
                    self._origin = (self._started_at, item[1])
                self.emit(*item)
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
        self._finish_waiters = Waiters()
        self.graph.add_sink(self)
        self._activate()

    def close(self):
        """
        Disconnect from the inputs and leave the graph's sinks; a source
        left without consumers stops.
        """
        self.graph.in_reactor_thread(self._close)

    def _close(self):
        self._deactivate()
        self.graph.remove_sink(self)

    def wait_finished(self):
        """
        A Deferred that fires with the sink once it has seen the end of its
        inputs (at once if it has); cancelling it only stops the waiting.
        """
        if self.finished:
            return defer.succeed(self)
        return self._finish_waiters.wait()

    def end(self):
        """
        The sink has seen the end of its inputs: it is finished.  (A
        stand-in whose inputs are read in another process calls it when
        the sink there has.)
        """
        if self.finished:
            return
        self.ended = self.finished = True
        self._finish_waiters.fire(self)
        self.graph.sink_finished(self)
