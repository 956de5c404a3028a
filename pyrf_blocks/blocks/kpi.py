"""
Pointwise KPIs: one output row per input row, computed from several
time-synchronised inputs (``P = V·I``, ``η = P_out / P_in``, any formula of
named inputs).

The inputs are all sampled (``real`` or ``scalar``, one rate) or all
records.  The runtime's :class:`~pyrf_blocks.sync.Synchronizer` re-cuts
them to common time ranges first, so sampled inputs line up sample by
sample however they were chunked, and the pieces a block sees are views of
its producers' arrays (one signal feeds power and THD without a copy).
Records line up row by row: the rows of one range must be at the same
times in every input (records made on the same grid, such as the per-cycle
values of :class:`~pyrf_blocks.blocks.cycles.cycle_rms`); otherwise the
block fails with a message saying where they differ.  The output has the
inputs' kind, rate and times, so it feeds a window or an aggregator like
any other stream.
"""

from collections import deque, namedtuple
from functools import partial

import numpy as np
from twisted.python.failure import Failure

from ..block import MAIN, Block, block_of
from ..chunk import Chunk
from ..interfaces import IChunkProducer
from ..numerics.formula import Formula
from ..registry import register
from ..sync import InputsAhead, take_aligned

__all__ = ["pointwise_block", "formula_block", "efficiency_block"]

#: Kinds a pointwise block computes with: real numbers, sampled or records.
POINTWISE_KINDS = ("real", "scalar", "records")


class pointwise_block(Block):
    """
    Base of the pointwise KPI blocks: the output is :attr:`formula` of the
    inputs, row by row, with :attr:`meta` as its meta.

    A subclass sets ``formula`` (a :class:`~pyrf_blocks.numerics.formula.Formula`
    of :attr:`input_names`, one name per input in order) and ``meta`` in
    its constructor before calling this one.
    """

    kind = None  # the inputs' kind
    requires = (IChunkProducer,)
    variadic = True

    def output_kind(self):
        kinds = [getattr(producer, "kind", None) for producer in self.inputs]
        for index, kind in enumerate(kinds):
            if kind not in POINTWISE_KINDS:
                raise TypeError(f"{self.label}: input {index + 1} emits {kind!r} chunks; "
                                f"it computes with {', '.join(POINTWISE_KINDS)}")
        if len(set(kinds)) > 1:
            raise TypeError(f"{self.label}: inputs of different kinds "
                            f"({', '.join(kinds)}); give it all sampled inputs of one "
                            "kind, or all records")
        return kinds[0]

    def compute(self, *chunks):
        first = chunks[0]
        values = self.values(chunks)
        if first.times is None:
            self.emit(values, first.start, first.end, first.rate, self.meta)
        else:
            # The rows are at the input's times, already in order.
            self.emit_records(first.times, values, first.start, first.end, self.meta,
                              ordered=True)

    def values(self, chunks, out=None):
        """
        The output rows for one synchronised group of input ``chunks`` (one
        per input), after checking that they line up: what :meth:`compute`
        emits, and what a block fused with this one computes from the same
        chunks (:class:`~pyrf_blocks.optimise.CyclesOfPower`).  ``out``:
        an array the rows may be computed into, as
        :meth:`Formula.evaluate <pyrf_blocks.numerics.formula.Formula.evaluate>`
        says (the result ``is out`` when they were; the formula is given
        the inputs in order, by
        :meth:`~pyrf_blocks.numerics.formula.Formula.evaluate_inputs`).
        """
        first = chunks[0]
        times = first.times
        names = self.input_names
        for name, chunk in zip(names[1:], chunks[1:]):
            if times is None:
                if chunk.rate != first.rate:
                    raise ValueError(f"{self.label}: inputs {names[0]!r} and {name!r} have "
                                     f"different rates ({first.rate} and {chunk.rate} Hz); "
                                     "resample one first")
            elif not _same_times(chunk.times, times):
                raise ValueError(
                    f"{self.label}: records of {names[0]!r} and {name!r} are "
                    f"at different times in [{first.start}, {first.end}) ns "
                    f"({_first_difference(times, chunk.times)}); a pointwise formula "
                    "needs rows on the same grid (e.g. the same window block)")
        return self._evaluate([chunk.data for chunk in chunks], len(first.data), out)

    def _evaluate(self, arrays, rows, out=None):
        """The formula of ``arrays`` (the inputs' rows, in order), as ``rows`` rows."""
        values = self.formula.evaluate_inputs(arrays, out)
        if values.ndim == 0:
            values = np.full(rows, values)
        return values

    # Chain optimisation: the rows of cycle blocks handed over directly.

    #: The cycle blocks fused into this one (one per input, in order) by
    #: chain optimisation (:class:`~pyrf_blocks.optimise.PointwiseOfCycles`),
    #: or None.
    fed = None

    def fuse_cycles(self, feeders):
        """
        Take the rows of ``feeders``, this block's inputs (each a
        :class:`~pyrf_blocks.blocks.cycles.cycle_rms` read by nothing
        else), from them directly rather than as chunks over edges.
        Called by chain optimisation before the graph runs.
        """
        feeders = tuple(feeders)
        if len(feeders) < 2 or feeders != tuple(self.inputs):
            raise ValueError(f"{self.label}: cannot fuse {len(feeders)} blocks that are not "
                             "its inputs, in order (two or more)")
        self.fed = feeders
        self._fused_queues()
        for index, feeder in enumerate(feeders):
            feeder.hand_rows_to(partial(self.take_rows, index))

    def reset(self):
        if self.fed is not None:
            self._fused_queues()

    def _fused_queues(self):
        # Per input, the rows handed over and not yet computed: what the
        # synchroniser would hold, as long as it holds nothing itself.
        self._queues = [deque() for _ in self.fed]
        # A feeder that runs ahead is paused as an input edge would be
        # (Block's own InputsAhead pauses edges, which carry nothing here).
        self._fed_ahead = InputsAhead(self.input_maxsize, self._fused_depth,
                                      self.fed.__getitem__)

    @property
    def holding(self):
        # Rows handed over wait in the queues too (fused), not only in the
        # synchroniser.
        return super().holding or (self.fed is not None and any(self._queues))

    def _fused_depth(self, index):
        """The chunks held of fused input ``index``: queued here, and in the synchroniser."""
        return len(self._queues[index]) + self._sync.depth(index)

    def take_rows(self, index, times, values, start, end, meta, seq):
        """
        The rows a fused feeder (input ``index``) would have emitted as a
        records chunk: ``times`` (a list of int ns, in order), ``values``,
        ``start``, ``end``, ``meta`` and ``seq`` of that chunk.  Computed
        as :meth:`compute` computes the synchroniser's groups: at once
        where every input's first rows cover one range (the synchroniser's
        own first rule), else by the synchroniser itself.
        """
        if not self.active:
            return  # (failed or stopped: as a closed edge)
        try:
            self._take_rows(index, HandedRows(times, values, start, end, meta, seq))
        except Exception:
            self.graph.fail(self, Failure())  # as the edge would, for this block
        self._ports[index].through = end

    def _take_rows(self, index, rows):
        queues = self._queues
        if self._sync.holding:
            taken = self._synchronise(index, [rows])
        else:
            queues[index].append(rows)
            groups = []
            cut_apart = not take_aligned(queues, groups)
            for heads in groups:
                self._compute_rows(heads)
            taken = bool(groups)
            if cut_apart:
                # The synchroniser takes all that is held, in order (its
                # groups depend only on each input's chunks).
                held = [list(queue) for queue in queues]
                for queue in queues:
                    queue.clear()
                for other, pieces in enumerate(held):
                    taken = self._synchronise(other, pieces) or taken
        self._fed_ahead.added(index, taken)

    def _synchronise(self, index, pieces):
        """The synchroniser takes ``pieces`` of input ``index``; whether a group was computed."""
        taken = False
        for rows in pieces:
            for group in self._sync.add(index, _records_chunk(rows)):
                self.compute(*group)
                taken = True
        return taken

    def _compute_rows(self, heads):
        """:meth:`compute` of the chunks ``heads`` are the parts of."""
        first = heads[0]
        times = first.times
        for head in heads[1:]:
            if head.times != times:  # (as lists: the same ints)
                self.compute(*map(_records_chunk, heads))  # (refused there, as unfused)
                return
        values = self._evaluate([head.values for head in heads], len(times))
        self.emit_records(np.array(times, np.int64), values, first.start, first.end,
                          self.meta, ordered=True)

    def on_input_end(self, index):
        if self.fed is not None:
            self._fed_ahead.release()


#: The rows a fused feeder hands over: the parts of the records chunk it
#: would have emitted, with the times as a list of int ns.
HandedRows = namedtuple("HandedRows", "times values start end meta seq")


def _records_chunk(rows):
    """The records chunk a feeder would have emitted, from its parts."""
    return Chunk("records", rows.values, rows.start, rows.end, 0.0, rows.seq, rows.meta,
                 np.array(rows.times, np.int64))


def _same_times(a, b):
    """
    Whether two records' times are equal, row by row (a few rows compared
    as bytes: cheaper than numpy's calls).
    """
    if a is b:
        return True
    if len(a) != len(b):
        return False
    if len(a) <= 64:
        return a.tobytes() == b.tobytes()  # int64: equal bytes are equal times
    return bool(np.equal(a, b).all())


def _first_difference(a, b):
    if len(a) != len(b):
        return f"{len(a)} rows and {len(b)} rows"
    row = int(np.flatnonzero(a != b)[0])
    return f"row {row}: {a[row]} ns and {b[row]} ns"


def _input_name(producer):
    block = block_of(producer)
    output = getattr(producer, "output_name", MAIN)
    return block.name if output == MAIN else f"{block.name}_{output}"


@register
class formula_block(pointwise_block):
    """
    Any formula of named, time-synchronised inputs, row by row (see
    :mod:`pyrf_blocks.numerics.formula` for what a formula may contain).

    Two ways to call it::

        formula_block("p_out / p_in * 100", p_out=p_out, p_in=p_in, units="%")
        formula_block(p_out, p_in, expr="p_out / p_in * 100", names=["p_out", "p_in"])

    the second being the one pipeline files use (``inputs: [...]`` and
    ``params: {expr: ..., names: [...]}``).  Without ``names`` each input
    is named after its block (``name_output`` for another output).

    :param expr: the formula; checked here, so a mistake fails at once,
        with its column.
    :param names: the name of each positional input, in order.
    :param units: the unit of the result (its meta's ``units``).
    :param timeout: most seconds one chunk's evaluation may take.
    """

    type_name = "formula_block"
    param_units = {"timeout": "s"}

    def __new__(cls, *args, proc=None, **kwargs):
        inputs, kwargs = _canonical(args, kwargs)
        return super().__new__(cls, *inputs, proc=proc, **kwargs)

    def __init__(self, *inputs, expr=None, names=None, units="", timeout=1.0, **kwargs):
        inputs, kwargs = _canonical(inputs, dict(kwargs, expr=expr, names=names))
        expr, names = kwargs.pop("expr"), kwargs.pop("names")
        if names is None:
            names = [_input_name(producer) for producer in inputs]
        names = list(names)
        if expr is None:
            raise TypeError("formula_block needs a formula: formula_block('v * i', v=..., "
                            "i=...) or expr='...'")
        if len(names) != len(inputs):
            raise ValueError(f"formula_block: {len(names)} names for {len(inputs)} inputs")
        if len(set(names)) != len(names):
            raise ValueError(f"formula_block: input names repeat: {names}")
        self.input_names = tuple(names)
        self.formula = Formula(expr, names, timeout=timeout)
        self.expr = expr
        self.meta = {"units": units, "quantity": "formula", "formula": expr}
        super().__init__(*inputs, **kwargs)


def _canonical(args, kwargs):
    """
    ``formula_block(expr, a=x, b=y)`` as ``(x, y), {expr=..., names=[a, b]}``.
    """
    kwargs = dict(kwargs)
    inputs = list(args)
    if inputs and isinstance(inputs[0], str):
        if kwargs.get("expr") is not None:
            raise TypeError("formula_block: the formula is given twice (first argument "
                            "and expr=)")
        kwargs["expr"] = inputs.pop(0)
    named = {key: value for key, value in kwargs.items()
             if IChunkProducer.providedBy(value)}
    if named:
        if inputs:
            raise TypeError("formula_block: give the inputs either by position (with "
                            "names=) or by name, not both")
        if kwargs.get("names") is not None:
            raise TypeError("formula_block: inputs given by name take no names=")
        for key in named:
            del kwargs[key]
        inputs = list(named.values())
        kwargs["names"] = list(named)
    return tuple(inputs), kwargs


@register
class efficiency_block(pointwise_block):
    """
    Efficiency ``P_out / P_in`` of a converter, row by row, in percent (or
    as a ratio with ``percent=False``).  A row with ``P_in = 0`` gives
    ``inf`` or ``nan``, as the division does.

    :param percent: the result in % (default) or as a ratio.
    """

    type_name = "efficiency_block"
    requires = (IChunkProducer, IChunkProducer)
    variadic = False

    def __init__(self, *inputs, percent=True, **kwargs):
        # efficiency_block(p_out, p_in)
        self.input_names = ("p_out", "p_in")
        self.percent = bool(percent)
        self.formula = Formula("p_out / p_in * 100" if percent else "p_out / p_in",
                               self.input_names)
        self.meta = {"units": "%" if percent else "1", "quantity": "efficiency"}
        super().__init__(*inputs, **kwargs)
