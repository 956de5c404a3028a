"""
Aggregators: a whole stream → one value (seed 000's "average(V)", "THD at
50 % load", weighted efficiency), where a processor turns a stream into a
stream.

While the stream runs, an aggregator emits its estimate so far on its
``running`` output (one chunk per input chunk that brought rows, stamped
with the latest row's time); when every input has ended it emits the
final value on its main output, stamped with the time of the first row it
saw and covering the whole run.  Both are records with named fields and
``units`` in their meta.  A value that has no data (an empty run, a load
point never reached) is ``nan`` with a count of 0, and the meta lists it
under ``missing``: never a zero.
"""

import numpy as np
from zope.interface import implementer

from ..block import Block
from ..interfaces import IChunkProducer, IRecordsProducer, IStateful
from ..numerics import loadbins
from ..numerics.loadbins import (DEFAULT_TOLERANCE, WEIGHTS, bin_sums, load_bin_edges,
                                 load_bin_index)
from ..registry import register
from ..state import check_version
from ..timebase import sample_times

__all__ = ["aggregator_block", "average", "thd_at_load", "weighted_efficiency"]

#: Kinds an aggregator reads: real numbers, sampled or records.
NUMERIC_KINDS = ("real", "scalar", "records")


def row_times(chunk):
    """
    The device time (int64 ns) of each row of ``chunk``: a records chunk's
    own, a sampled chunk's from its start and rate.
    """
    if chunk.times is not None:
        return chunk.times
    return sample_times(chunk.start, np.arange(len(chunk.data)), chunk.rate)


@implementer(IRecordsProducer, IStateful)
class aggregator_block(Block):
    """
    Base of the aggregators.  A subclass implements :meth:`accumulate` and
    :meth:`result`, and lists in ``state_fields`` the attributes that hold
    what it accumulated (numbers, or numpy arrays of one dtype) for
    :meth:`get_state`; the base emits the running and final values.
    """

    #: Attributes holding the accumulated data, saved by :meth:`get_state`.
    state_fields = ()

    kind = "records"
    extra_outputs = {"running": "records"}
    requires = (IChunkProducer,)

    def __init__(self, *inputs, **kwargs):
        for index, producer in enumerate(inputs):
            kind = getattr(producer, "kind", None)
            if IChunkProducer.providedBy(producer) and kind not in NUMERIC_KINDS:
                raise TypeError(f"{self.type_name} {kwargs.get('name')!r}: input {index + 1} "
                                f"emits {kind!r} chunks; it reads {', '.join(NUMERIC_KINDS)}")
        super().__init__(*inputs, **kwargs)

    def reset(self):
        self._first = None
        self._end = None
        self._running_end = None
        self.clear()

    def clear(self):
        """
        Forget the accumulated data (called on every connection).
        """

    def get_state(self):
        state = {"version": 1, "first": self._first, "end": self._end,
                 "running_end": self._running_end}
        for name in self.state_fields:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value = {"dtype": value.dtype.str, "values": value.tolist()}
            state[name] = value
        return state

    def set_state(self, state):
        check_version(self, state, 1, unversioned=1)
        self._first, self._end = state["first"], state["end"]
        self._running_end = state["running_end"]
        for name in self.state_fields:
            value = state[name]
            if isinstance(value, dict):
                value = np.asarray(value["values"], np.dtype(value["dtype"]))
            setattr(self, name, value)

    def accumulate(self, *chunks):
        """
        Take one chunk per input (synchronised); return the device time of
        the latest row taken, or ``None`` if none was.
        """
        raise NotImplementedError(f"{type(self).__name__}.accumulate")

    def result(self):
        """
        ``(rows, meta)``: the value so far, as a structured array of one
        row or more, and the meta to send with it.
        """
        raise NotImplementedError(f"{type(self).__name__}.result")

    def compute(self, *chunks):
        first = chunks[0]
        if self._first is None and (len(first.data) or first.times is not None):
            self._first = first.start
        self._end = first.end if self._end is None else max(self._end, first.end)
        latest = self.accumulate(*chunks)
        if latest is None or not self.outputs["running"].edges:
            return
        rows, meta = self.result()
        start = latest if self._running_end is None else min(self._running_end, latest)
        end = max(self._end, latest + 1)
        self.emit_records(np.full(len(rows), latest, np.int64), rows, start, end, meta,
                          output="running")
        self._running_end = end

    def flush(self):
        rows, meta = self.result()
        first = 0 if self._first is None else self._first
        end = max(first + 1, self._end or 0)
        self.emit_records(np.full(len(rows), first, np.int64), rows, first, end, meta)


def _numbers(chunk, label):
    data = chunk.data
    if data.ndim != 1 or data.dtype.kind not in "biuf":
        raise ValueError(f"{label}: needs one real number per row, got "
                         f"{data.dtype}{list(data.shape)} rows")
    return data


@register
class average(aggregator_block):
    """
    The mean of a whole stream (``average(V)``): of every sample of a
    sampled stream, or every row of records, each counting once.  Unlike
    :class:`~pyrf_blocks.blocks.spectrum.average_block`, which averages
    spectra frame by frame into a stream, it gives one value per run.

    Rows: ``mean`` (the input's units) and ``count`` (rows averaged); nan
    rows are left out and counted in the meta's ``nan_rows``.
    """

    type_name = "average"
    state_fields = ("_sum", "_count", "_nan", "_units")

    def __init__(self, producer, **kwargs):
        super().__init__(producer, **kwargs)

    def clear(self):
        self._sum = 0.0
        self._count = 0
        self._nan = 0
        self._units = ""

    def accumulate(self, chunk):
        data = _numbers(chunk, self.label)
        if not len(data):
            return None
        self._units = chunk.meta.get("units", self._units)
        total = np.sum(data, dtype=np.float64)
        if np.isnan(total):
            keep = ~np.isnan(data)
            self._nan += int(len(data) - keep.sum())
            data = data[keep]
            total = np.sum(data, dtype=np.float64)
        self._sum += float(total)
        self._count += len(data)
        return int(chunk.times[-1]) if chunk.times is not None else chunk.time_of(len(data) - 1)

    def result(self):
        mean = self._sum / self._count if self._count else float("nan")
        rows = np.array([(mean, self._count)], [("mean", "<f8"), ("count", "<i8")])
        meta = {"units": self._units, "quantity": "average", "nan_rows": self._nan,
                "missing": [] if self._count else ["mean"]}
        return rows, meta


class _by_load(aggregator_block):
    """
    Base of the aggregators of values binned by load: input 1 the values,
    input 2 the load.  Each value is paired with the load measured at its
    time: the latest load row at or before it (so a load computed over the
    same windows or cycles as the values pairs exactly); values before the
    first load row count in the meta's ``without_load``, values whose load
    is in no bin in ``outside_bins``.
    """

    requires = (IChunkProducer, IChunkProducer)
    state_fields = ("_sums", "_counts", "_last_load", "_without_load", "_outside", "_units")

    def __init__(self, *inputs, tolerance=DEFAULT_TOLERANCE, rated=None, **kwargs):
        # A subclass sets self.points (load points, %) first.
        name = kwargs.get("name")
        if rated is not None and not (isinstance(rated, (int, float)) and rated > 0):
            raise ValueError(f"{self.type_name} {name!r}: rated must be a positive number "
                             f"(the load stream's unit at 100 % load), got {rated!r}")
        try:
            self.bin_edges = load_bin_edges(self.points, tolerance)
        except ValueError as error:
            raise ValueError(f"{self.type_name} {name!r}: {error}") from None
        self.points = [float(point) for point in self.points]
        self.tolerance = float(tolerance)
        self.rated = rated
        super().__init__(*inputs, **kwargs)

    def clear(self):
        bins = len(self.points)
        self._sums = np.zeros(bins)
        self._counts = np.zeros(bins, np.int64)
        self._last_load = np.nan
        self._without_load = 0
        self._outside = 0
        self._units = None

    def accumulate(self, values, load):
        data = _numbers(values, self.label)
        load_data = _numbers(load, self.label)
        if self._units is None:
            self._units = values.meta.get("units")
        load_times = row_times(load)
        times = row_times(values) if len(data) else None
        if len(data):
            before = np.searchsorted(load_times, times, side="right") - 1
            paired = np.full(len(data), self._last_load)
            if len(load_data):
                paired[before >= 0] = load_data[before[before >= 0]]
            if self.rated is not None:
                paired = paired * (100.0 / self.rated)
            unpaired = np.isnan(paired)
            self._without_load += int(unpaired.sum())
            index = load_bin_index(paired, self.bin_edges)
            self._outside += int(((index < 0) & ~unpaired).sum())
            sums, counts = bin_sums(data, index, len(self.points))
            self._sums += sums
            self._counts += counts
        if len(load_data):
            self._last_load = float(load_data[-1])
        return int(times[-1]) if len(data) else None

    def bin_means(self):
        """
        Mean value at each load point so far; nan where there is none.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._counts > 0, self._sums / np.maximum(self._counts, 1), np.nan)

    def common_meta(self, quantity, default_units):
        return {"units": self._units or default_units, "quantity": quantity,
                "tolerance": self.tolerance,
                "missing": [p for p, c in zip(self.points, self._counts) if not c],
                "without_load": self._without_load, "outside_bins": self._outside}


@register
class thd_at_load(_by_load):
    """
    THD at given loads ("THD at 50 % load"): the mean of the THD values
    whose load, measured at the same time, lies in each load point's bin
    ``[point - tolerance, point + tolerance)``.  THD is never recomputed:
    input 1 is a THD stream (from :class:`~pyrf_blocks.blocks.measure.thd_block`
    or any other), input 2 the load.

    Rows, one per load point: ``load`` (%), ``thd`` (the THD input's
    units, nan when missing) and ``count``.

    :param loads: load points, % of rated load, increasing.
    :param tolerance: half-width of a bin, percentage points.
    :param rated: the load stream's value at 100 % load (e.g. 500 for a
        power in W); ``None`` when the load stream is already in %.
    """

    type_name = "thd_at_load"

    def __init__(self, *inputs, loads=(50.0,), tolerance=DEFAULT_TOLERANCE, rated=None,
                 **kwargs):
        # thd_at_load(thd, load)
        self.points = list(loads)
        super().__init__(*inputs, tolerance=tolerance, rated=rated, **kwargs)

    def result(self):
        rows = np.zeros(len(self.points), [("load", "<f8"), ("thd", "<f8"), ("count", "<i8")])
        rows["load"], rows["thd"], rows["count"] = self.points, self.bin_means(), self._counts
        return rows, self.common_meta("thd_at_load", "%")


@register
class weighted_efficiency(_by_load):
    """
    Weighted efficiency ``Σ w_k · η_k`` from efficiency samples binned by
    load: ``η_k`` is the mean efficiency whose load, measured at the same
    time, lies in load point ``k``'s bin ``[point - tolerance, point +
    tolerance)``.  A load point without samples makes the result nan (and
    is listed in the meta's ``missing``), never a sum over fewer points.

    Row: ``efficiency`` (the efficiency input's units, % by default) and
    ``missing`` (load points without samples).  The meta's ``bins`` holds
    each point's ``load``, ``weight``, ``efficiency`` and ``count``.

    :param weights: ``"cec"`` (10/20/30/50/75/100 %: 0.04/0.05/0.12/0.21/
        0.53/0.05), ``"european"`` (5/10/20/30/50/100 %: 0.03/0.06/0.13/
        0.10/0.48/0.20), or in Python a mapping ``{load %: weight}``.
    :param tolerance: half-width of a bin, percentage points.
    :param rated: the load stream's value at 100 % load; ``None`` when it
        is already in %.
    """

    type_name = "weighted_efficiency"

    def __init__(self, *inputs, weights="cec", tolerance=DEFAULT_TOLERANCE, rated=None,
                 **kwargs):
        # weighted_efficiency(efficiency, load)
        if isinstance(weights, str):
            if weights not in WEIGHTS:
                raise ValueError(f"{self.type_name} {kwargs.get('name')!r}: weights must be "
                                 f"one of {', '.join(WEIGHTS)} or a mapping, got {weights!r}")
            self.weights_name = weights
            weights = WEIGHTS[weights]
        else:
            self.weights_name = "custom"
        table = sorted((float(load), float(weight)) for load, weight in dict(weights).items())
        self.weights = [weight for _, weight in table]
        self.points = [load for load, _ in table]
        super().__init__(*inputs, tolerance=tolerance, rated=rated, **kwargs)

    def result(self):
        means = self.bin_means()
        missing = int((self._counts == 0).sum())
        rows = np.array([(loadbins.weighted_efficiency(means, self.weights), missing)],
                        [("efficiency", "<f8"), ("missing", "<i8")])
        meta = self.common_meta("weighted_efficiency", "%")
        meta["weights"] = self.weights_name
        meta["bins"] = {"load": self.points, "weight": self.weights,
                        "efficiency": [float(m) for m in means],
                        "count": [int(c) for c in self._counts]}
        return rows, meta
