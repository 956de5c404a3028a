"""
Windows over device time: :class:`window_block` (statistics per window,
tumbling or sliding, by device time on a calendar grid or by count, with
watermarks, allowed lateness and a ``late`` output) and
:class:`moving_max` / :class:`moving_min` (the extreme of the last
``over`` seconds at every row: "max efficiency over 4 s").

The logic lives in :mod:`pyrf_blocks.windows`; these blocks wire it to
chunks, outputs and the reactor (the idle timeout).
"""

import numpy as np
from twisted.logger import Logger
from zope.interface import implementer

from ..block import Block
from ..interfaces import IChunkProducer, IRecordsProducer, IStateful
from ..registry import register
from ..timebase import Timebase, continues
from ..windows import (STATE_VERSION, CalendarGrid, CountWindows, Fired, WindowEngine,
                       parse_duration, result_dtype, value_columns)

__all__ = ["window_block", "moving_max", "moving_min"]

log = Logger()


class _SampleCount:
    """
    The running count of a sampled stream's rows, and the timebase they are
    timed from.  A chunk that continues the stream (it starts where the last
    one ended, a rounding apart at most: :func:`~pyrf_blocks.timebase.continues`)
    keeps the timebase, so device times never pick up rounding; any other
    starts a new one at its own start.
    """

    __slots__ = ("timebase", "next_index", "expected")

    def __init__(self):
        self.timebase = None
        self.next_index = 0
        self.expected = None

    def positions(self, chunk):
        """``(first index, timebase)`` of sampled ``chunk``'s rows, counted."""
        timebase = self.timebase
        if (timebase is None or chunk.rate != timebase.rate
                or not continues(self.expected, chunk.start, chunk.rate)):
            timebase = self.timebase = Timebase(chunk.start, chunk.rate, self.next_index)
        first = self.next_index
        self.next_index += len(chunk.data)
        self.expected = chunk.end
        return first, timebase

    def get_state(self):
        tb = self.timebase
        return {"timebase": None if tb is None else [tb.origin_ns, tb.rate, tb.origin_index],
                "next_index": self.next_index, "expected": self.expected}

    def set_state(self, state):
        tb = state["timebase"]
        self.timebase = None if tb is None else Timebase(*tb)
        self.next_index, self.expected = state["next_index"], state["expected"]


class _Input:
    """
    What the block knows of one input: its watermark, its sample count
    (sampled inputs), when it last sent, its windows.
    """

    def __init__(self, engine):
        self.engine = engine
        self.watermark = None
        self.count = _SampleCount()
        self.last_seen = None
        self.idle = False
        self.ended = False

    def get_state(self):
        return {"engine": self.engine.get_state(), "watermark": self.watermark,
                **self.count.get_state()}

    def set_state(self, state):
        self.engine.set_state(state["engine"])
        self.watermark = state["watermark"]
        self.count.set_state(state)


@register
@implementer(IRecordsProducer, IStateful)
class window_block(Block):
    """
    Statistics of its input(s) per window of device time (or of rows): one
    record per window, stamped with the window's start, with fields
    ``end`` (ns), ``count``, ``final``, ``update`` and the statistics
    (``mean``; ``mean_voltage`` for a field ``voltage`` of structured
    records; ``mean_0``... for several columns).

    :param every: the window step: a duration (``"1m"``, ``"1h"``,
        ``"1d"``, or seconds); windows are aligned to local midnight in
        ``zone`` (in UTC, to the Unix epoch).  ``1m`` by default.
    :param size: the window length, a multiple of ``every`` (sliding
        windows); ``every`` by default (tumbling).
    :param zone: IANA time zone of the calendar (``"Europe/Berlin"``).
    :param stats: any of ``count``, ``sum``, ``mean``, ``rms``, ``min``,
        ``max``.
    :param allowed_lateness: how long (seconds or ``"30s"``) a window stays
        open after its end for rows that arrive late.  0: a window is
        final as soon as the watermark passes its end.
    :param emit_empty: also emit windows without rows (count 0), so that a
        dashboard sees the gaps.
    :param idle_timeout: with several inputs, seconds of reactor time
        after which an input that sent nothing stops holding the others'
        windows open (``None``: never; leave it so for replays, so that
        history is deterministic).  An input that has ended holds none
        open anyway.
    :param rows: count windows instead: ``rows`` rows each (``every``,
        ``zone`` and lateness then do not apply).
    :param step_rows: a count window every ``step_rows`` rows (sliding);
        ``rows`` by default.
    :param reducers: Python only: ``{name: function(values) -> float}``
        computed per window (per column) on its rows, e.g. THD; the rows of
        open windows are then kept in memory.

    Outputs: ``main`` the final result of each window, in order of start
    (its chunks' ``end`` is a watermark: every window that starts earlier
    is final), ``update`` true where late rows revised it after it was
    due; ``updates`` (with ``allowed_lateness``) each window when the
    watermark passes its end, not yet final, and again whenever late rows
    change it (``update`` true); ``late`` the rows that came after their
    window was final, as records (counted in :attr:`late_rows`).  ``main``
    and ``late`` do not depend on how the input was chunked, to the bit.

    A window closes when the watermark of every input (the ``end`` of its
    latest chunk) has passed its end plus ``allowed_lateness``.  At end of
    stream every open window fires, final.
    """

    type_name = "window_block"
    kind = "records"
    extra_outputs = {"updates": "records", "late": "records"}
    requires = (IChunkProducer,)
    variadic = True
    synchronised = False
    param_units = {"every": "s", "size": "s", "allowed_lateness": "s", "idle_timeout": "s",
                   "rows": "count", "step_rows": "count"}
    python_only_params = ("reducers",)

    def __init__(self, *producers, every=None, size=None, zone="UTC", stats=("mean",),
                 allowed_lateness=0.0, emit_empty=False, idle_timeout=None, rows=None,
                 step_rows=None, reducers=None, **kwargs):
        what = f"{self.type_name} {kwargs.get('name') or ''}".strip()
        for producer in producers:
            if getattr(producer, "kind", None) == "iq":
                raise ValueError(f"{what}: input {producer!r} is IQ (complex); window "
                                 "statistics need real numbers")
        self.reducers = dict(reducers or {})
        self.stats = tuple([stats] if isinstance(stats, str) else stats)
        self.by_count = rows is not None
        self.rows, self.step_rows = rows, step_rows
        if self.by_count:
            if every is not None or size is not None:
                raise ValueError(f"{what}: give either rows (count windows) or "
                                 "every/size (time windows), not both")
            CountWindows(rows, step_rows, self.stats, self.reducers, what)  # checks them
        else:
            self.every_ns = parse_duration("1m" if every is None else every, f"{what} every")
            self.size_ns = (self.every_ns if size is None
                            else parse_duration(size, f"{what} size"))
            if self.every_ns <= 0 or self.size_ns <= 0 or self.size_ns % self.every_ns:
                raise ValueError(f"{what}: size ({self.size_ns} ns) must be a positive "
                                 f"multiple of every ({self.every_ns} ns)")
            self.grid = CalendarGrid(self.every_ns, zone)
            self.lateness_ns = parse_duration(allowed_lateness, f"{what} allowed_lateness")
            if self.lateness_ns < 0:
                raise ValueError(f"{what}: allowed_lateness must be >= 0, "
                                 f"got {allowed_lateness!r}")
        # The parameters as a pipeline file writes them (durations in
        # seconds), for graph_to_yaml; the block works in ns.
        self.every = None if every is None else parse_duration(every, what) / 1e9
        self.size = None if size is None else parse_duration(size, what) / 1e9
        self.allowed_lateness = parse_duration(allowed_lateness, what) / 1e9
        self.zone = zone
        self.emit_empty = bool(emit_empty)
        if not self.by_count:
            self._engine(what)  # checks the statistics
        if idle_timeout is not None:
            idle_timeout = parse_duration(idle_timeout, f"{what} idle_timeout") / 1e9
            if idle_timeout <= 0:
                raise ValueError(f"{what}: idle_timeout must be positive or None")
        self.idle_timeout = idle_timeout
        self._inputs = []
        self._dtypes = {}  # result dtypes by (column names, several inputs)
        super().__init__(*producers, **kwargs)
        self.meta = {"quantity": "window", "stats": list(self.stats) + list(self.reducers)}
        if self.by_count:
            self.meta.update(rows=self.rows, step_rows=self.step_rows or self.rows)
        else:
            self.meta.update(every=self.every_ns, size=self.size_ns,
                             zone=self.grid.zone_name, allowed_lateness=self.lateness_ns)

    def _engine(self, what=None):
        what = what or self.label
        if self.by_count:
            return CountWindows(self.rows, self.step_rows, self.stats, self.reducers, what)
        return WindowEngine(self.grid, self.size_ns // self.every_ns, self.stats,
                            self.lateness_ns,
                            self.emit_empty, self.reducers, what)

    @property
    def late_rows(self):
        """
        Rows sent to the ``late`` output so far.
        """
        return sum(getattr(i.engine, "late_rows", 0) for i in self._inputs)

    # Runtime hooks.

    def reset(self):
        self._inputs = [_Input(self._engine()) for _ in self.inputs]
        self._main_end = None
        self._idle_call = None
        self._warned_late = False

    def on_start(self):
        if self.idle_timeout is not None and len(self.inputs) > 1:
            self._schedule_idle_check()

    def on_stop(self):
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None

    def compute(self, chunk):
        self._take(0, chunk)

    def compute_input(self, index, chunk):
        self._take(index, chunk)

    def flush(self):
        results = []
        for index, inp in enumerate(self._inputs):
            updates, finals = (([], inp.engine.finish()) if self.by_count
                               else inp.engine.finish())
            self._emit_results(Fired.from_results(updates), index, "updates")
            finals = Fired.from_results(finals)
            if finals is not None:
                results.append((finals, index))
        end = None
        if results:
            end = max(int(fired.ends.max()) for fired, _ in results)
        self._emit_main(results, end)
        self.on_stop()

    # State (IStateful).

    def get_state(self):
        return {"version": STATE_VERSION, "main_end": self._main_end,
                "inputs": [inp.get_state() for inp in self._inputs]}

    def set_state(self, state):
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{self.label}: state version {state.get('version')!r} is "
                             f"not {STATE_VERSION}")
        self._main_end = state["main_end"]
        for inp, saved in zip(self._inputs, state["inputs"]):
            inp.set_state(saved)

    # Rows in.

    def _take(self, index, chunk):
        inp = self._inputs[index]
        if self.idle_timeout is not None:
            inp.last_seen = self.graph.reactor.seconds()
            inp.idle = False
        columns, names = value_columns(chunk.data, self.label)
        n = columns.shape[1]
        if self.by_count:
            if chunk.times is not None:
                times = chunk.times
            else:
                first, timebase = inp.count.positions(chunk)
                times = timebase.times_of(np.arange(first, first + n + 1))
            fired = Fired.from_results(inp.engine.add(times, columns, names))
            self._emit_main([] if fired is None else [(fired, index)], None)
            return
        engine = inp.engine
        engine.start(chunk.start)
        if chunk.times is not None and len(self._inputs) == 1:
            # One input: its watermark is the block's, so the rows and the
            # watermark go in at once (the engine's direct path).
            inp.watermark = chunk.end if inp.watermark is None else max(inp.watermark,
                                                                        chunk.end)
            late, updates, finals = engine.add_advance(chunk.times, columns, names,
                                                       inp.watermark)
            if len(late):
                self._emit_late(index, chunk.times[late], chunk.data[late], chunk.meta)
            self._emit_results(updates, index, "updates")
            self._emit_main([] if finals is None else [(finals, index)], engine.final_until)
            return
        if chunk.times is not None:
            late = engine.add(chunk.times, columns, names)
            late_times = chunk.times[late] if len(late) else None
        else:
            first, timebase = inp.count.positions(chunk)
            late = np.zeros(0, np.intp)
            if n:
                def split(t):
                    return min(max(timebase.first_at_or_after(t) - first, 0), n)
                late = engine.add(None, columns, names, (
                    timebase.time_of(first), timebase.time_of(first + n - 1), split))
            late_times = timebase.times_of(first + late) if len(late) else None
        if late_times is not None:
            self._emit_late(index, late_times, chunk.data[late], chunk.meta)
        inp.watermark = chunk.end if inp.watermark is None else max(inp.watermark, chunk.end)
        self._advance()

    def _emit_late(self, index, times, values, meta):
        if not self._warned_late:
            self._warned_late = True
            log.warn("{block}: rows arrived after their window was final; they go to "
                     "its 'late' output (counted in late_rows)", block=self.label)
        self.emit_records(times, values, int(times[0]), int(times[-1]) + 1,
                          dict(meta, input=index), output="late")

    # Results out.

    def _combined_watermark(self):
        # An ended input holds nothing open: it will bring no more rows.
        marks = [inp.watermark for inp in self._inputs if not (inp.idle or inp.ended)]
        if not marks:  # every input idle: what is known
            marks = [max((inp.watermark for inp in self._inputs
                          if inp.watermark is not None), default=None)]
        if any(mark is None for mark in marks):
            return None
        return min(marks)

    def _advance(self):
        watermark = self._combined_watermark()
        if watermark is None:
            return
        results = []
        for index, inp in enumerate(self._inputs):
            updates, finals = inp.engine.advance_fired(watermark)
            self._emit_results(updates, index, "updates")
            if finals is not None:
                results.append((finals, index))
        ends = [inp.engine.final_until for inp in self._inputs
                if inp.engine.final_until is not None]
        self._emit_main(results, min(ends) if ends else None)

    def _records(self, results):
        """
        ``(times, structured values)`` of ``[(Fired, input index)...]``,
        sorted by window start then input.
        """
        names = next((inp.engine.names for inp in self._inputs
                      if inp.engine.names is not None), [None])
        extra = [("input", "<i8")] if len(self.inputs) > 1 else []
        key = (tuple(names), bool(extra))
        dtype = self._dtypes.get(key)
        if dtype is None:
            dtype = self._dtypes[key] = result_dtype(self.stats, names, self.reducers, extra)
        results = [(fired, index) for fired, index in results if len(fired)]
        if not results:
            return np.zeros(0, np.int64), np.zeros(0, dtype)
        if len(results) == 1:
            fired, index = results[0]
            inputs = None
        else:
            inputs = np.concatenate([np.full(len(fired), index, np.int64)
                                     for fired, index in results])
            # The same start from several inputs: in order of input.
            starts = np.concatenate([f.starts for f, _ in results])
            order = np.lexsort((inputs, starts))
            joined = [f for f, _ in results]
            fired = Fired(starts[order],
                          np.concatenate([f.ends for f in joined])[order],
                          np.concatenate([f.counts for f in joined])[order],
                          np.concatenate([f.final for f in joined])[order],
                          np.concatenate([f.update for f in joined])[order],
                          {stat: np.concatenate([f.values[stat] for f in joined])[order]
                           for stat in joined[0].values})
            inputs = inputs[order]
        values = np.zeros(len(fired), dtype)
        # Field by field over all the windows at once, not row by row.
        values["end"] = fired.ends
        values["count"] = fired.counts
        values["final"] = fired.final
        values["update"] = fired.update
        if extra:
            values["input"] = index if inputs is None else inputs
        for stat, column_values in fired.values.items():
            for column, name in enumerate(names):
                values[stat if name is None else f"{stat}_{name}"] = column_values[:, column]
        return fired.starts, values

    def _emit_results(self, results, index, output):
        if results is None or not len(results):
            return
        times, values = self._records([(results, index)])
        self.emit_records(times, values, int(times[0]), int(times[-1]) + 1, self.meta,
                          output=output)

    def _emit_main(self, results, end):
        """
        Final results on ``main``; ``end``: every window starting earlier
        is final (None: just after the last result).
        """
        if results:
            times, values = self._records(results)
            last = int(times[-1]) + 1
            end = last if end is None else max(end, last)
            start = int(times[0]) if self._main_end is None else min(self._main_end,
                                                                    int(times[0]))
        else:
            if end is None or (self._main_end is not None and end <= self._main_end):
                return
            if self._main_end is None:
                self._main_end = end
                return
            times, values = self._records([])
            start = self._main_end
        self.emit_records(times, values, start, end, self.meta)
        self._main_end = end

    def on_input_end(self, index):
        self._inputs[index].ended = True
        if not self.by_count:
            self._advance()

    # Idle inputs (live only).

    def _schedule_idle_check(self):
        self._idle_call = self.graph.reactor.callLater(self.idle_timeout, self._check_idle)

    def _check_idle(self):
        self._idle_call = None
        now = self.graph.reactor.seconds()
        changed = False
        for inp in self._inputs:
            since = inp.last_seen if inp.last_seen is not None else now - self.idle_timeout
            if not inp.idle and now - since >= self.idle_timeout:
                inp.idle = changed = True
        if changed and self.active:
            self._advance()
        if self.active:
            self._schedule_idle_check()


def _range_extreme(values, left, function):
    """
    ``function`` (np.maximum or np.minimum) of ``values[left[i]:i + 1]``
    for every ``i``, by a sparse table: O(n log w) for ranges up to ``w``.
    """
    n = len(values)
    right = np.arange(n)
    length = right - left + 1
    levels = [values]
    width = 1
    longest = int(length.max()) if n else 0
    while width * 2 <= longest:
        below = levels[-1]
        levels.append(function(below[:-width], below[width:]))
        width *= 2
    level = np.frexp(length.astype(np.float64))[1] - 1
    result = np.empty(n, values.dtype)
    for k in np.unique(level):
        chosen = level == k
        table = levels[k]
        result[chosen] = function(table[left[chosen]], table[right[chosen] - (1 << k) + 1])
    return result


@register
@implementer(IStateful)
class moving_max(Block):
    """
    At every row, the largest value of the last ``over`` seconds of device
    time, ``(t - over, t]``: "max efficiency over 4 s".  Sampled input
    gives sampled output at the same rate and times, records give records.
    Exact and independent of the chunking; only the rows that can still
    matter (a descending staircase of the last ``over``) are kept between
    chunks.

    :param over: the window, a duration (``"4s"``) or seconds.
    """

    type_name = "moving_max"
    requires = (IChunkProducer,)
    param_units = {"over": "s"}
    _function = staticmethod(np.maximum)
    _accumulate = staticmethod(np.maximum.accumulate)

    def __init__(self, producer, over="4s", **kwargs):
        what = f"{self.type_name} {kwargs.get('name') or ''}".strip()
        self.over_ns = parse_duration(over, f"{what} over")
        #: The window in seconds, as a pipeline file writes it.
        self.over = self.over_ns / 1e9
        if self.over_ns <= 0:
            raise ValueError(f"{what}: over must be positive, got {over!r}")
        kind = getattr(producer, "kind", None)
        if kind not in ("real", "scalar", "records"):
            raise ValueError(f"{what}: input is {kind!r}; a moving extreme needs one real "
                             "number per row (real, scalar or records)")
        super().__init__(producer, **kwargs)

    def output_kind(self):
        return self.inputs[0].kind

    def reset(self):
        self._stair_times = np.zeros(0, np.int64)
        self._stair_values = np.zeros(0, np.float64)
        self._count = _SampleCount()

    def get_state(self):
        return {"version": 1, "times": self._stair_times.tobytes(),
                "values": self._stair_values.tobytes(), **self._count.get_state()}

    def set_state(self, state):
        self._stair_times = np.frombuffer(state["times"], np.int64).copy()
        self._stair_values = np.frombuffer(state["values"], np.float64).copy()
        self._count.set_state(state)

    def _times(self, chunk):
        if chunk.times is not None:
            return chunk.times
        first, timebase = self._count.positions(chunk)
        return timebase.times_of(np.arange(first, first + len(chunk.data)))

    def compute(self, chunk):
        data = chunk.data
        if data.dtype.kind not in "iufb" or data.ndim != 1:
            raise ValueError(f"{self.label}: needs 1-D real numbers, got "
                             f"{data.dtype}{list(data.shape)}")
        times = self._times(chunk)
        values = np.asarray(data, np.float64)
        function = self._function
        if len(values):
            reach = times - self.over_ns
            left = np.searchsorted(times, reach, "right")
            result = _range_extreme(values, left, function)
            stair_times, stair_values = self._stair_times, self._stair_values
            if len(stair_times):
                first = np.searchsorted(stair_times, reach, "right")
                covered = first < len(stair_times)
                result[covered] = function(result[covered], stair_values[first[covered]])
            self._update_stair(times, values)
        else:
            result = values
        result = result.astype(data.dtype, copy=False) if data.dtype.kind == "f" else result
        if chunk.times is not None:
            self.emit_records(chunk.times, result, chunk.start, chunk.end, chunk.meta)
        else:
            self.emit(result, chunk.start, chunk.end, chunk.rate, chunk.meta)

    def _update_stair(self, times, values):
        # The rows that can still be the extreme of a later window: those
        # beating every later row, within ``over`` of the newest.
        all_times = np.concatenate([self._stair_times, times])
        all_values = np.concatenate([self._stair_values, values])
        later = self._accumulate(all_values[::-1])[::-1]
        beats = np.ones(len(all_values), bool)
        beats[:-1] = self._function(all_values[:-1], later[1:]) != later[1:]
        beats &= all_times > times[-1] - self.over_ns
        self._stair_times, self._stair_values = all_times[beats], all_values[beats]


@register
class moving_min(moving_max):
    """
    At every row, the smallest value of the last ``over`` seconds of
    device time, ``(t - over, t]``; see :class:`moving_max`.

    :param over: the window, a duration (``"4s"``) or seconds.
    """

    type_name = "moving_min"
    _function = staticmethod(np.minimum)
    _accumulate = staticmethod(np.minimum.accumulate)
