"""
Windows over device time: which window a row belongs to, when a window
closes, and the statistics of its rows.  Pure logic, no reactor: the
:mod:`~pyrf_blocks.blocks.window` blocks wire it.

Calendar grid
    Window boundaries are the instants whose *local* wall-clock time, in an
    IANA zone (:mod:`zoneinfo`), is a multiple of the period counted from
    local midnight: ``1h`` windows start on the hour, ``15m`` on the
    quarter, ``1d`` at local midnight.  On a daylight-saving day a ``1d``
    window lasts 23 h or 25 h, and the ``1h`` windows around the change
    still last one hour each (the skipped hour has no window; the repeated
    one has two).  In UTC any period works and is counted from the Unix
    epoch (``4s``, ``7m``); elsewhere the period must divide a day or be
    whole days.  Everything is computed from device time, never the wall
    clock of the machine.

Panes and windows
    Rows fall in *panes*, the cells of the grid.  A tumbling window is one
    pane; a sliding window of ``size`` every ``step`` is ``size / step``
    consecutive panes.

Watermark and lateness
    The caller advances a watermark: device time up to which its inputs
    are complete.  A window whose end the watermark has passed fires; with
    ``allowed_lateness`` it stays open that much longer, rows that arrive
    for it meanwhile re-fire it (``update``), and it is *final* once the
    watermark passed its end plus the lateness.  A row whose pane is
    already final is *late*: it is handed back to the caller (for a
    ``late`` output), never folded in.

Exact statistics
    Sums are accumulated in float64 over fixed sub-blocks of
    :data:`BLOCK_ROWS` rows counted from the first row of each pane, each
    summed by numpy's pairwise ``add.reduce`` and folded in order, so a
    window's sum, mean and RMS are the same *bits* however its rows were
    chunked (``np.add.reduceat`` is not: its result depends on where the
    segment lies in memory).  Min, max and count are exact anyway.

The state of a :class:`WindowEngine` (its panes, watermark and what it has
fired) is one object, saved and restored with :meth:`WindowEngine.get_state`
and :meth:`WindowEngine.set_state` (msgpack-encodable, versioned).
"""

import datetime
import math
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from .timebase import NS_PER_SECOND

__all__ = ["CalendarGrid", "WindowEngine", "CountWindows", "Accumulator", "STATS",
           "BLOCK_ROWS", "parse_duration", "value_columns", "result_dtype",
           "STATE_VERSION"]

#: Nanoseconds in a day.
DAY_NS = 86400 * NS_PER_SECOND
#: Rows per sub-block of an exact sum.
BLOCK_ROWS = 1024
#: The statistics a window computes, by name.
STATS = ("count", "sum", "mean", "rms", "min", "max")
#: Version of the state :meth:`WindowEngine.get_state` returns.
STATE_VERSION = 1
#: Largest shift of a zone's offset at one transition, with margin (ns).
_SHIFT_MARGIN = 3 * 3600 * NS_PER_SECOND
#: Days searched each way for a change of a zone's offset.
_STEADY_DAYS = 400
#: Largest number of windows one call may enumerate (empty windows over a
#: gap): beyond it the caller gets an error rather than a frozen reactor.
MAX_WINDOWS_PER_CALL = 10_000_000


def parse_duration(value, what="duration"):
    """
    A duration as integer nanoseconds: text with a unit (``"1h"``,
    ``"30s"``, ``"250ms"``, ``"1d"``) or a number of seconds.

    :raise ValueError: naming ``what`` and the value.
    """
    if isinstance(value, str):
        # The one parser of quantities; imported here, where text is read,
        # so that ``import pyrf_blocks`` does not load the pipeline package.
        from .pipeline.units import parse_quantity
        return parse_quantity(value, "ns", what)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}: expected a duration such as '1h' or a number of "
                         f"seconds, got {value!r}")
    return int(round(value * NS_PER_SECOND))


def _zone(name):
    if name in (None, "UTC", "utc", "Etc/UTC", "Z"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as "
                         "'Europe/Berlin' or 'UTC'") from None


class CalendarGrid:
    """
    Window boundaries every ``period_ns`` of local wall-clock time in
    ``zone``, aligned to local midnight (in UTC: to the Unix epoch).

    :param period_ns: the period, integer ns.  Outside UTC it must divide a
        day (``1m``, ``5m``, ``1h``, ``12h``...) or be whole days.
    :param zone: an IANA zone name (``"Europe/Berlin"``), ``"UTC"`` by
        default.

    Offsets are read from :mod:`zoneinfo` with one-second resolution;
    two transitions of one zone within a single UTC day are not told apart
    (no zone has them since 1970).
    """

    def __init__(self, period_ns, zone="UTC"):
        period_ns = int(period_ns)
        if period_ns <= 0:
            raise ValueError(f"window period must be positive, got {period_ns} ns")
        self.period = period_ns
        self.zone_name = zone or "UTC"
        self.zone = _zone(zone)
        if self.zone is not None and DAY_NS % period_ns and period_ns % DAY_NS:
            raise ValueError(
                f"a calendar window of {period_ns / NS_PER_SECOND:g} s does not divide a "
                f"day; in zone {self.zone_name!r} use a period that does (1m, 5m, 15m, "
                "1h, 12h...) or whole days")
        self._offsets = {}
        #: Stretches of constant offset found so far: (start, stop, offset) ns.
        self._steady_pieces = []

    def __repr__(self):
        return f"CalendarGrid({self.period}, {self.zone_name!r})"

    # Offsets of the zone.

    def _offset_at(self, second):
        """
        UTC offset (ns) in effect at a whole Unix second.
        """
        cached = self._offsets.get(second)
        if cached is None:
            moment = datetime.datetime.fromtimestamp(second, datetime.timezone.utc)
            offset = moment.astimezone(self.zone).utcoffset()
            cached = int(offset.total_seconds()) * NS_PER_SECOND
            if len(self._offsets) > 65536:
                self._offsets.clear()
            self._offsets[second] = cached
        return cached

    def _segments(self, lo, hi):
        """
        ``[(start, stop, offset)...]``: the UTC range ``[lo, hi]`` cut where
        the zone's offset changes; ``start`` of every piece after the first
        is a transition.
        """
        first, last = lo // NS_PER_SECOND, hi // NS_PER_SECOND + 1
        pieces = []
        start, offset = lo, self._offset_at(first)
        probe = first
        while probe < last:
            step = min(86400, last - probe)
            after = self._offset_at(probe + step)
            if after != offset:
                low, high = probe, probe + step  # offset changes in (low, high]
                while high - low > 1:
                    middle = (low + high) // 2
                    if self._offset_at(middle) == offset:
                        low = middle
                    else:
                        high = middle
                change = high * NS_PER_SECOND
                if change > hi:
                    break
                pieces.append((start, change, offset))
                start, offset = change, self._offset_at(high)
                probe = high
                continue
            probe += step
        pieces.append((start, hi + 1, offset))
        return pieces

    def _steady(self, t):
        """
        ``(start, stop, offset)``: the stretch of device time around ``t``
        over which the zone's offset stays the same, ends included where
        they are transitions (searched up to :data:`_STEADY_DAYS` days
        each way).  Inside it boundaries are every ``period`` of local
        time, as in UTC: the fast path of :meth:`boundaries`,
        :meth:`floor` and :meth:`shift`.
        """
        for piece in self._steady_pieces:
            if piece[0] < t < piece[1]:
                return piece
        second = t // NS_PER_SECOND
        offset = self._offset_at(second)
        piece = (self._change(second, offset, -1) * NS_PER_SECOND,
                 self._change(second, offset, 1) * NS_PER_SECOND, offset)
        if piece not in self._steady_pieces:
            self._steady_pieces = [piece] + self._steady_pieces[:7]
        return piece

    def _change(self, second, offset, direction):
        """
        Going ``direction`` (+1, -1) from ``second``: the first second with
        another offset (forward), or the first with this one (backward).
        """
        probe, step = second, direction * 86400
        for _ in range(_STEADY_DAYS):
            if self._offset_at(probe + step) != offset:
                low, high = sorted((probe, probe + step))
                while high - low > 1:
                    middle = (low + high) // 2
                    same = self._offset_at(middle) == offset
                    if (direction > 0) == same:
                        low = middle
                    else:
                        high = middle
                return high
            probe += step
        return probe

    # Boundaries.

    def boundaries(self, lo, hi):
        """
        Every boundary ``b`` with ``lo <= b <= hi`` (int64 ns array, sorted).
        """
        lo, hi, period = int(lo), int(hi), self.period
        if hi < lo:
            return np.zeros(0, np.int64)
        if self.zone is None:
            first = -(-lo // period) * period
            return np.arange(first, hi + 1, period, dtype=np.int64)
        start, stop, offset = self._steady(lo)
        if start < lo and hi < stop:
            first = lo + (-(lo + offset)) % period
            return np.arange(first, hi + 1, period, dtype=np.int64)
        return self._boundaries_across(lo, hi)

    def _boundaries_across(self, lo, hi):
        """
        :meth:`boundaries` where the offset may change in ``[lo, hi]``.
        """
        period = self.period
        parts = []
        previous = None
        # From a second earlier, so that a transition right at lo is seen.
        for start, stop, offset in self._segments(lo - NS_PER_SECOND, hi):
            first = start + (-(start + offset)) % period
            parts.append(np.arange(first, stop, period, dtype=np.int64))
            if previous is not None and offset > previous:
                # A jump forward that skipped an aligned local time (local
                # midnight in a zone that skips it): the window starts when
                # the clock resumes.
                aligned = -(-(start + previous) // period) * period
                if aligned < start + offset and first != start:
                    parts.append(np.array([start], np.int64))
            previous = offset
        found = np.unique(np.concatenate(parts))
        return found[(found >= lo) & (found <= hi)]

    def floor(self, t):
        """
        The last boundary at or before ``t``: the start of the pane that
        holds ``t``.
        """
        t = int(t)
        if self.zone is None:
            return t - t % self.period
        start, _, offset = self._steady(t)
        candidate = t - (t + offset) % self.period
        if candidate > start:
            return candidate
        return int(self._boundaries_across(t - self.period - _SHIFT_MARGIN, t)[-1])

    def shift(self, boundary, count):
        """
        The boundary ``count`` panes after ``boundary`` (before it for a
        negative ``count``).
        """
        boundary, count = int(boundary), int(count)
        if self.zone is None or count == 0:
            return boundary + count * self.period
        start, stop, offset = self._steady(boundary)
        candidate = boundary + count * self.period
        if start < boundary < stop and start < candidate < stop \
                and (boundary + offset) % self.period == 0:
            return candidate
        reach = abs(count) * (self.period + _SHIFT_MARGIN)
        if count > 0:
            return int(self.boundaries(boundary, boundary + reach)[count])
        return int(self.boundaries(boundary - reach, boundary)[count - 1])

    def describe(self, t):
        """
        A boundary (or any time) as local ISO text, for messages and docs.
        """
        seconds, fraction = divmod(int(t), NS_PER_SECOND)
        moment = datetime.datetime.fromtimestamp(seconds, self.zone or datetime.timezone.utc)
        return moment.isoformat() + (f" +{fraction}ns" if fraction else "")


def value_columns(data, what="window"):
    """
    The numbers of a chunk as float64 columns: ``((k, n) array, names)``;
    ``names`` is ``[None]`` for 1-D data, field names for a structured
    array, column numbers as text for ``(n, k)`` data.

    :raise ValueError: text, bytes or complex rows.
    """
    if data.dtype.fields is not None:
        names = list(data.dtype.names)
        columns = np.empty((len(names), len(data)), np.float64)
        for row, name in enumerate(names):
            field = data[name]
            if field.dtype.kind == "c":
                raise ValueError(f"{what}: field {name!r} is complex; window statistics "
                                 "need real numbers")
            columns[row] = field
        return columns, names
    kind = data.dtype.kind
    if kind == "O":
        raise ValueError(f"{what}: rows are text or bytes; window statistics need numbers")
    if kind == "c":
        raise ValueError(f"{what}: samples are complex; window statistics need real "
                         "numbers (take a magnitude or a real part first)")
    if data.ndim == 1:
        return np.asarray(data, np.float64).reshape(1, -1), [None]
    flat = data.reshape(len(data), -1)
    return np.ascontiguousarray(flat.T, np.float64), [str(i) for i in range(flat.shape[1])]


def _fold_in(total, sums):
    """
    ``total`` (k,) plus each column of ``sums`` (k, m), one after another:
    a strictly sequential sum in float64 (Python's float addition is the
    same IEEE operation as ``np.cumsum``'s, and cheaper for a few dozen
    values than building arrays).
    """
    folded = []
    for start, row in zip(total.tolist(), sums.tolist()):
        for value in row:
            start += value
        folded.append(start)
    return np.array(folded)


class Accumulator:
    """
    The running statistics of one pane, exact whatever the chunking.

    :param columns: values per row.
    :param stats: names from :data:`STATS` to compute.
    :param keep_rows: keep the rows themselves (for custom reducers).
    """

    __slots__ = ("count", "_total", "_squares", "min", "max", "tail", "fill", "rows", "arrived",
                 "_sum", "_sq", "_min", "_max", "_parts", "_part_squares")

    def __init__(self, columns, stats, keep_rows=False):
        self._sum = bool({"sum", "mean"} & set(stats))
        self._sq = "rms" in stats
        self._min = "min" in stats
        self._max = "max" in stats
        self.count = 0
        zeros = np.zeros(columns)
        self._total = self._squares = zeros  # replaced, never written in place
        # Sums of whole sub-blocks not yet folded into _total/_squares: they
        # are folded once, when the totals are asked for.
        self._parts, self._part_squares = [], []
        self.min = np.full(columns, np.inf) if self._min else None
        self.max = np.full(columns, -np.inf) if self._max else None
        self.tail = np.empty((columns, BLOCK_ROWS)) if (self._sum or self._sq) else None
        self.fill = 0
        self.rows = [] if keep_rows else None
        #: The latest watermark at which rows arrived (None: none known).
        self.arrived = None

    def add(self, columns):
        """
        Fold in ``(k, n)`` float64 columns, rows in arrival order.
        """
        n = columns.shape[1]
        if not n:
            return
        self.count += n
        if self._min:
            np.minimum(self.min, columns.min(axis=1), out=self.min)
        if self._max:
            np.maximum(self.max, columns.max(axis=1), out=self.max)
        if self.rows is not None:
            self.rows.append(columns.copy())
        if self.tail is None:
            return
        at = 0
        if self.fill:
            take = min(BLOCK_ROWS - self.fill, n)
            self.tail[:, self.fill:self.fill + take] = columns[:, :take]
            self.fill += take
            at = take
            if self.fill == BLOCK_ROWS:
                self._fold(self.tail.reshape(len(self.tail), 1, BLOCK_ROWS))
                self.fill = 0
        whole = (n - at) // BLOCK_ROWS * BLOCK_ROWS
        if whole:
            blocks = columns[:, at:at + whole]
            self._fold(np.ascontiguousarray(blocks).reshape(len(columns), -1, BLOCK_ROWS))
            at += whole
        if at < n:
            rest = n - at
            self.tail[:, :rest] = columns[:, at:]
            self.fill = rest

    def _fold(self, blocks):
        # Pairwise sums of whole sub-blocks, folded in order (later).
        if self._sum:
            self._parts.append(np.add.reduce(blocks, axis=2))
        if self._sq:
            self._part_squares.append(np.add.reduce(blocks * blocks, axis=2))

    @property
    def sum(self):
        """
        Sum of the rows of whole sub-blocks so far, (k,) float64.
        """
        if self._parts:
            parts = self._parts
            self._total = _fold_in(self._total, parts[0] if len(parts) == 1
                                   else np.concatenate(parts, axis=1))
            self._parts = []
        return self._total

    @property
    def sumsq(self):
        """
        Sum of the squares of the rows of whole sub-blocks so far.
        """
        if self._part_squares:
            parts = self._part_squares
            self._squares = _fold_in(self._squares, parts[0] if len(parts) == 1
                                     else np.concatenate(parts, axis=1))
            self._part_squares = []
        return self._squares

    def totals(self):
        """
        ``(sum, sum of squares)`` of every row so far (float64 arrays).
        """
        total, squares = self.sum, self.sumsq
        if self.fill:
            part = self.tail[:, :self.fill]
            if self._sum:
                total = total + np.add.reduce(part, axis=1)
            if self._sq:
                squares = squares + np.add.reduce(part * part, axis=1)
        return total, squares

    def get_state(self):
        """
        msgpack-encodable state.
        """
        return {"count": self.count, "arrived": self.arrived, "sum": self.sum.tolist(), "sumsq": self.sumsq.tolist(),
                "min": None if self.min is None else self.min.tolist(),
                "max": None if self.max is None else self.max.tolist(),
                "tail": (None if self.tail is None
                         else np.ascontiguousarray(self.tail[:, :self.fill]).tobytes()),
                "rows": (None if self.rows is None
                         else [[r.shape[1], r.tobytes()] for r in self.rows])}

    def set_state(self, state):
        """
        Restore :meth:`get_state`'s result.
        """
        self.count = state["count"]
        self.arrived = state["arrived"]
        self._total = np.array(state["sum"], np.float64)
        self._squares = np.array(state["sumsq"], np.float64)
        self._parts, self._part_squares = [], []
        self.min = None if state["min"] is None else np.array(state["min"], np.float64)
        self.max = None if state["max"] is None else np.array(state["max"], np.float64)
        if self.tail is not None and state["tail"] is not None:
            part = np.frombuffer(state["tail"], np.float64).reshape(len(self.sum), -1)
            self.fill = part.shape[1]
            self.tail[:, :self.fill] = part
        if self.rows is not None and state["rows"] is not None:
            self.rows = [np.frombuffer(raw, np.float64).reshape(-1, n).copy()
                         for n, raw in state["rows"]]


def result_dtype(stats, names, reducers=(), extra=()):
    """
    The structured dtype of window results: ``end`` (ns), ``count``,
    ``final``, ``update``, then each statistic per column (``mean`` for one
    column, ``mean_voltage`` or ``mean_0`` for several) and each custom
    reducer the same way.
    """
    fields = [("end", "<i8"), ("count", "<i8"), ("final", "?"), ("update", "?")]
    fields += list(extra)
    for stat in list(s for s in stats if s != "count") + list(reducers):
        for name in names:
            fields.append((stat if name is None else f"{stat}_{name}", "<f8"))
    return np.dtype(fields)


def combine(accumulators, stats, reducers, columns):
    """
    The statistics of a window made of ``accumulators`` (its panes, in
    order): ``(count, {stat: (k,) array})``.
    """
    if not accumulators:
        count, total, squares = 0, np.zeros(columns), np.zeros(columns)
        low = high = None
    else:
        first = accumulators[0]
        count = first.count
        total, squares = first.totals()
        low, high = first.min, first.max
        for acc in accumulators[1:]:
            count += acc.count
            part, part_sq = acc.totals()
            total = total + part
            squares = squares + part_sq
            if low is not None:
                low = np.minimum(low, acc.min)
            if high is not None:
                high = np.maximum(high, acc.max)
    values = {}
    nan = None if count else np.full(columns, np.nan)
    for stat in stats:
        if stat == "sum":
            values[stat] = total
        elif stat == "mean":
            values[stat] = total / count if count else nan
        elif stat == "rms":
            values[stat] = np.sqrt(squares / count) if count else nan
        elif stat == "min":
            values[stat] = low if count else nan
        elif stat == "max":
            values[stat] = high if count else nan
    for name, function in reducers.items():
        rows = [r for acc in accumulators for r in (acc.rows or ())]
        if not count:
            values[name] = nan
            continue
        joined = np.concatenate(rows, axis=1) if len(rows) > 1 else rows[0]
        values[name] = np.array([float(function(column)) for column in joined])
    return count, values


def check_stats(stats, reducers, what):
    """
    ``stats`` as a tuple of known names, or ValueError naming ``what``.
    """
    if isinstance(stats, str):
        stats = (stats,)
    stats = tuple(stats)
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise ValueError(f"{what}: unknown statistic(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(STATS)} (or a custom reducer)")
    if not stats and not reducers:
        raise ValueError(f"{what}: no statistics asked for")
    for name, function in (reducers or {}).items():
        if name in STATS or not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{what}: reducer name {name!r} must be an identifier "
                             f"other than {', '.join(STATS)}")
        if not callable(function):
            raise ValueError(f"{what}: reducer {name!r} is not callable")
    return stats


class WindowEngine:
    """
    The windows of one series of rows: panes, watermark, what has fired.

    :param grid: a :class:`CalendarGrid` (the panes).
    :param panes: panes per window (1: tumbling; ``size / step`` sliding).
    :param stats: statistics to compute (:data:`STATS`).
    :param allowed_lateness: ns a window stays open after its end.
    :param emit_empty: fire windows without rows too (count 0).
    :param reducers: ``{name: function(values) -> float}`` computed per
        window and column on the window's rows (kept while it is open).

    Use: :meth:`add` rows (it returns the late ones), then :meth:`advance`
    the watermark (it returns what fired).  Rows need not arrive in order.
    """

    def __init__(self, grid, panes=1, stats=("mean",), allowed_lateness=0,
                 emit_empty=False, reducers=None, what="window"):
        self.grid = grid
        self.panes_per_window = int(panes)
        self.reducers = dict(reducers or {})
        self.stats = check_stats(stats, self.reducers, what)
        self.lateness = int(allowed_lateness)
        if self.lateness < 0:
            raise ValueError(f"{what}: allowed_lateness must be >= 0")
        self.emit_empty = bool(emit_empty)
        self.what = what
        self.columns = None
        self.names = None
        #: Open panes by start (ns): Accumulator.
        self.panes = {}
        #: Panes that received rows since the last :meth:`advance`.
        self.dirty = set()
        #: Windows fired but not yet final: start -> True.
        self.emitted = {}
        self.watermark = None
        #: Windows with an earlier start are final.
        self.final_until = None
        #: Windows with an earlier start have fired (or were empty).
        self.next_on_time = None
        #: Rows handed back as late.
        self.late_rows = 0
        #: The first pane of the stream (None until it starts).
        self.origin = None

    # Rows.

    def _setup(self, names):
        if self.columns is None:
            self.names = list(names)
            self.columns = len(names)
        elif list(names) != self.names:
            raise ValueError(f"{self.what}: rows changed shape from {self.names} to "
                             f"{list(names)} columns")

    def seal_time(self):
        """
        Rows before this device time are late: the first window holding
        their pane is final (its end plus the lateness is behind the
        watermark), or their pane lies before the stream's first (no
        window of it will ever fire).
        """
        if self.watermark is None:
            return self.origin
        return max(self.grid.floor(self.watermark - self.lateness), self.origin)

    def start(self, time_ns):
        """
        Device time the stream starts at (its first chunk's start): windows
        before it are never fired, empty ones from it on are.
        """
        if self.final_until is None:
            first = self.grid.floor(time_ns)
            self.final_until = self.next_on_time = self.origin = first

    def add(self, times, columns, names, positions=None):
        """
        Fold rows in; return the indexes (into the rows) of the late ones.

        :param times: int64 ns of each row, sorted (``None`` when
            ``positions`` is given).
        :param columns: ``(k, n)`` float64 values.
        :param names: column names (:func:`value_columns`).
        :param positions: instead of ``times`` for sampled rows,
            ``(first, last, split)``: the device times of the first and the
            last row and a function from a time to the number of rows
            before it.
        """
        self._setup(names)
        n = columns.shape[1]
        if not n:
            return np.zeros(0, np.intp)
        if positions is None:
            first, last = int(times[0]), int(times[-1])

            def split(t):
                return int(np.searchsorted(times, t, "left"))

            def splits(bounds):
                return np.searchsorted(times, bounds, "left").tolist()
        else:
            first, last, split = positions

            def splits(bounds):
                return [split(int(bound)) for bound in bounds]
        self.start(first)
        late_stop = 0
        seal = self.seal_time()
        if seal is not None and first < seal:
            late_stop = min(split(seal), n)
            self.late_rows += late_stop
        if late_stop < n:
            at = late_stop
            pane = self.grid.floor(first if at == 0 else max(first, seal))
            bounds = self.grid.boundaries(pane + 1, last)
            watermark = self.watermark
            for bound, stop in zip(bounds.tolist() + [None], splits(bounds) + [n]):
                if stop > at:
                    acc = self.panes.get(pane)
                    if acc is None:
                        acc = self.panes[pane] = Accumulator(self.columns, self.stats,
                                                             bool(self.reducers))
                    acc.add(columns[:, at:stop])
                    if watermark is not None and (acc.arrived is None
                                                  or watermark > acc.arrived):
                        acc.arrived = watermark
                    self.dirty.add(pane)
                    at = stop
                if bound is not None:
                    pane = bound
        return np.arange(late_stop)

    # Firing.

    def _window_end(self, start):
        return self.grid.shift(start, self.panes_per_window)

    def _windows_of(self, panes):
        """
        Starts of every window holding one of ``panes`` (sorted).
        """
        m = self.panes_per_window
        if m == 1:
            return sorted(panes)
        starts = set()
        for pane in panes:
            boundary = self.grid.shift(pane, -(m - 1))
            for _ in range(m):
                starts.add(boundary)
                boundary = self.grid.shift(boundary, 1)
        return sorted(starts)

    def _result(self, start, final, update):
        """
        The result of the window at ``start``; ``update=None``: whether
        rows arrived for it after the watermark had passed its end.
        """
        end = self._window_end(start)
        parts = []
        pane = start
        while pane < end:
            acc = self.panes.get(pane)
            if acc is not None:
                parts.append(acc)
            pane = self.grid.shift(pane, 1)
        if update is None:
            update = any(acc.arrived is not None and acc.arrived >= end for acc in parts)
        count, values = combine(parts, self.stats, self.reducers, self.columns)
        return start, end, count, final, update, values

    def advance(self, watermark):
        """
        Move the watermark (it never goes back) and fire what it closes.

        :return: ``(updates, finals)``: lists of ``(start, end, count,
            final, update, {stat: values})`` in order of start.
            ``updates`` (with ``allowed_lateness``) are windows fired
            before they are final: ``update`` says this window was fired
            before.  In ``finals``, ``update`` says that late rows (within
            the lateness) were folded in after the watermark had passed the
            window's end: a result fired earlier was revised.  Finals are
            judged on device time alone, so they do not depend on how the
            rows were chunked; how often a window appears in ``updates``
            does (each watermark step may fire it).
        """
        if self.watermark is not None and watermark <= self.watermark and not self.dirty:
            return [], []
        if self.watermark is None or watermark > self.watermark:
            self.watermark = int(watermark)
        if self.final_until is None:
            self.start(self.watermark)
        w, m, grid = self.watermark, self.panes_per_window, self.grid
        final_until = max(self.final_until,
                          grid.shift(grid.floor(w - self.lateness), -(m - 1)))
        on_time_until = max(self.next_on_time, grid.shift(grid.floor(w), -(m - 1)))
        if final_until == self.final_until and on_time_until == self.next_on_time and (
                not self.dirty or min(self.dirty) >= grid.shift(on_time_until, m - 1)):
            # Nothing due, and new rows only in windows not yet due: the
            # common case of a chunk inside a window.
            self.dirty.clear()
            return [], []
        finals = self._to_fire(self.final_until, final_until)
        updates = []
        if self.lateness:
            fresh = set(self._to_fire(self.next_on_time, on_time_until))
            changed = {s for s in self._windows_of(self.dirty)
                       if final_until <= s < on_time_until}
            for start in sorted((fresh | changed) - set(finals)):
                if start < final_until:
                    continue
                updates.append(self._result(start, False, start in self.emitted))
                self.emitted[start] = True
        results = [self._result(start, True, None) for start in finals]
        for start in finals:
            self.emitted.pop(start, None)
        self.final_until, self.next_on_time = final_until, on_time_until
        self.dirty.clear()
        for pane in [p for p in self.panes if p < final_until]:
            del self.panes[pane]
        return updates, results

    def _to_fire(self, lo, hi):
        """
        Starts of windows in ``[lo, hi)`` to fire: those with rows (all,
        with ``emit_empty``).
        """
        if hi <= lo:
            return []
        if self.emit_empty:
            starts = self.grid.boundaries(lo, hi - 1)
            if len(starts) > MAX_WINDOWS_PER_CALL:
                raise ValueError(f"{self.what}: {len(starts)} empty windows to emit at once "
                                 "(a gap in device time?); set emit_empty to false")
            return [int(s) for s in starts]
        return [s for s in self._windows_of(self.panes) if lo <= s < hi]

    def finish(self):
        """
        End of stream: fire every window with rows as final.
        """
        if not self.panes:
            return [], []
        last = max(self.panes)
        end = self._window_end(last)
        return self.advance(max(end + self.lateness, self.watermark or end))

    # State.

    def get_state(self):
        """
        Everything the engine holds, msgpack-encodable and versioned.
        """
        return {"version": STATE_VERSION, "names": self.names,
                "watermark": self.watermark, "final_until": self.final_until,
                "next_on_time": self.next_on_time, "late_rows": self.late_rows,
                "origin": self.origin,
                "emitted": sorted(self.emitted), "dirty": sorted(self.dirty),
                "panes": [[start, acc.get_state()] for start, acc in sorted(self.panes.items())]}

    def set_state(self, state):
        """
        Restore a state from :meth:`get_state` (of an engine with the same
        parameters).
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{self.what}: window state version {state.get('version')!r} "
                             f"is not {STATE_VERSION}")
        self.names = state["names"]
        self.columns = None if self.names is None else len(self.names)
        self.watermark = state["watermark"]
        self.final_until = state["final_until"]
        self.next_on_time = state["next_on_time"]
        self.late_rows = state["late_rows"]
        self.origin = state["origin"]
        self.emitted = dict.fromkeys(state["emitted"], True)
        self.dirty = set(state["dirty"])
        self.panes = {}
        for start, saved in state["panes"]:
            acc = Accumulator(self.columns, self.stats, bool(self.reducers))
            acc.set_state(saved)
            self.panes[start] = acc


class CountWindows:
    """
    Windows of ``size`` rows every ``step`` rows (``size`` a multiple of
    ``step``), counted from the first row, in arrival order.  A window
    fires (final) as soon as its last row arrives; at end of stream the
    unfinished ones fire with fewer rows.
    """

    def __init__(self, size, step=None, stats=("mean",), reducers=None, what="window"):
        step = size if step is None else step
        if not (isinstance(size, int) and isinstance(step, int)) or size < 1 or step < 1 \
                or size % step:
            raise ValueError(f"{what}: rows must be a positive integer multiple of "
                             f"step_rows, got {size!r} and {step!r}")
        self.size, self.step = size, step
        self.reducers = dict(reducers or {})
        self.stats = check_stats(stats, self.reducers, what)
        self.what = what
        self.columns = self.names = None
        self.rows = 0
        #: Open panes in order: [first time, last time, Accumulator].
        self.panes = []

    def add(self, times, columns, names):
        """
        Fold rows in (``times``: int64 ns of each); return fired windows as
        ``(start, end, count, final, update, values)``, ``end`` just after
        the last row's time.
        """
        if self.columns is None:
            self.names, self.columns = list(names), len(names)
        results = []
        n, at = columns.shape[1], 0
        m = self.size // self.step
        while at < n:
            if not self.panes or self.panes[-1][2].count == self.step:
                self.panes.append([int(times[at]), None,
                                   Accumulator(self.columns, self.stats, bool(self.reducers))])
            pane = self.panes[-1]
            take = min(self.step - pane[2].count, n - at)
            pane[2].add(columns[:, at:at + take])
            # With one time more than rows (sampled rows: the time after
            # the last), a window ends where the next row starts.
            pane[1] = (int(times[at + take]) - 1 if len(times) > n
                       else int(times[at + take - 1]))
            at += take
            self.rows += take
            if pane[2].count == self.step and len(self.panes) == m:
                results.append(self._fire(self.panes))
                self.panes = self.panes[1:]
        return results

    def _fire(self, panes):
        count, values = combine([p[2] for p in panes], self.stats, self.reducers, self.columns)
        start = min(p[0] for p in panes)
        end = max(p[1] for p in panes) + 1
        return start, end, count, True, False, values

    def finish(self):
        """
        End of stream: the windows still short of rows, once each.
        """
        results = []
        if self.panes and (len(self.panes) < self.size // self.step
                           or self.panes[-1][2].count < self.step):
            results.append(self._fire(self.panes))
        self.panes = []
        return results

    def get_state(self):
        return {"version": STATE_VERSION, "names": self.names, "rows": self.rows,
                "panes": [[a, b, acc.get_state()] for a, b, acc in self.panes]}

    def set_state(self, state):
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{self.what}: window state version {state.get('version')!r} "
                             f"is not {STATE_VERSION}")
        self.names = state["names"]
        self.columns = None if self.names is None else len(self.names)
        self.rows = state["rows"]
        self.panes = []
        for a, b, saved in state["panes"]:
            acc = Accumulator(self.columns, self.stats, bool(self.reducers))
            acc.set_state(saved)
            self.panes.append([a, b, acc])
