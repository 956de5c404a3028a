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

Speed
    Tumbling windows without lateness or custom reducers take whole panes
    in columns, a few numpy calls for all the panes of a chunk rather than
    a few per pane.  :meth:`WindowEngine.add_advance` (a block with one
    input of records) goes further when the watermark closes every pane of
    the rows but the last: it fires them straight from the rows, one
    records chunk of results, and keeps only the last pane open.  Sliding
    windows, ``allowed_lateness`` (windows fire as updates and stay open),
    custom reducers (they need each window's rows), several inputs and
    late rows take the pane-by-pane path.  Every path gives the same
    results and state, to the bit (tested against each other).

The state of a :class:`WindowEngine` (its panes, watermark and what it has
fired) is one object, saved and restored with :meth:`WindowEngine.get_state`
and :meth:`WindowEngine.set_state` (msgpack-encodable, versioned).
"""

import bisect
import datetime
import math
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from .timebase import NS_PER_SECOND
from .units import parse_quantity

__all__ = ["CalendarGrid", "WindowEngine", "CountWindows", "Accumulator", "Fired", "STATS",
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
#: Windows are final: a read-only column of True to take views of.
_TRUE = np.ones(4096, bool)
_TRUE.flags.writeable = False
#: Nor updates: a column of False.
_FALSE = np.zeros(4096, bool)
_FALSE.flags.writeable = False
#: No rows: the late rows of the direct path.
_NO_ROWS = np.zeros(0, np.intp)
_NO_ROWS.flags.writeable = False
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


#: What an Accumulator computes, by tuple of statistics: (sums, squares,
#: min, max).  (Worked out once per tuple, not per pane.)
_STAT_FLAGS = {}


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
        flags = _STAT_FLAGS.get(stats) if type(stats) is tuple else None
        if flags is None:
            flags = (bool({"sum", "mean"} & set(stats)), "rms" in stats, "min" in stats,
                     "max" in stats)
            if type(stats) is tuple and len(_STAT_FLAGS) < 64:
                _STAT_FLAGS[stats] = flags
        self._sum, self._sq, self._min, self._max = flags
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
            # (reshape copies only where the rows are not contiguous)
            self._fold(blocks.reshape(len(columns), -1, BLOCK_ROWS))
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


class Fired:
    """
    Window results in columns: ``starts``, ``ends``, ``counts`` (int64),
    ``final``, ``update`` (bool), one entry per window, and ``values``
    ``{stat: (windows, k) float64}``, in order of start.  What
    :meth:`WindowEngine.advance_fired` returns, so that a chunk of panes
    becomes a chunk of results without an object per window.
    """

    __slots__ = ("starts", "ends", "counts", "final", "update", "values")

    def __init__(self, starts, ends, counts, final, update, values):
        self.starts, self.ends, self.counts = starts, ends, counts
        self.final, self.update, self.values = final, update, values

    def __len__(self):
        return len(self.starts)

    @classmethod
    def from_results(cls, results):
        """
        Columns of ``[(start, end, count, final, update, {stat: (k,)})...]``
        (None for no results).
        """
        if not results:
            return None
        values = {stat: np.array([r[5][stat] for r in results], np.float64)
                  .reshape(len(results), -1) for stat in results[0][5]}
        return cls(np.array([r[0] for r in results], np.int64),
                   np.array([r[1] for r in results], np.int64),
                   np.array([r[2] for r in results], np.int64),
                   np.array([r[3] for r in results], bool),
                   np.array([r[4] for r in results], bool), values)

    def results(self):
        """
        The same as ``[(start, end, count, final, update, {stat: (k,)})...]``.
        """
        stats = list(self.values)
        return [(start, end, count, final, update,
                 {stat: self.values[stat][i] for stat in stats})
                for i, (start, end, count, final, update) in enumerate(zip(
                    self.starts.tolist(), self.ends.tolist(), self.counts.tolist(),
                    self.final.tolist(), self.update.tolist()))]

    def take(self, index):
        """
        The windows at ``index`` (a slice or an index array).
        """
        return Fired(self.starts[index], self.ends[index], self.counts[index],
                     self.final[index], self.update[index],
                     {stat: column[index] for stat, column in self.values.items()})

    @staticmethod
    def join(parts):
        """
        One :class:`Fired` of ``parts`` (None and empty ones skipped), in
        order of start (stable); None when there is nothing.
        """
        parts = [part for part in parts if part is not None and len(part)]
        if len(parts) < 2:
            return parts[0] if parts else None
        joined = Fired(*(np.concatenate([getattr(part, name) for part in parts])
                         for name in ("starts", "ends", "counts", "final", "update")),
                       {stat: np.concatenate([part.values[stat] for part in parts])
                        for stat in parts[0].values})
        if all(a.starts[-1] <= b.starts[0] for a, b in zip(parts, parts[1:])):
            return joined  # parts in order already (parts are sorted)
        order = np.argsort(joined.starts, kind="stable")
        return joined.take(order)


def _sequential_sums(blocks):
    """
    ``blocks`` (..., m, BLOCK_ROWS): each row summed by numpy's pairwise
    ``add.reduce``, the m sums folded in order from 0.0 (as
    :func:`_fold_in` does), over the last two axes at once.
    """
    if not blocks.shape[-2]:
        return np.zeros(blocks.shape[:-2])
    # add.accumulate is a strictly sequential sum; folding from the first
    # sum instead of 0.0 differs only by the sign of a zero, which +0.0
    # puts right.
    return np.add.accumulate(np.add.reduce(blocks, axis=-1), axis=-1)[..., -1] + 0.0


class _Batch:
    """
    Panes that one chunk completed, kept in columns until they fire: the
    fast path of :class:`WindowEngine` for tumbling windows without
    lateness.  The first may be a pane that earlier chunks began (its
    :class:`Accumulator` is ``head``); the others are new and whole.
    :meth:`WindowEngine._materialize` turns them back into
    :class:`Accumulator` objects (the same state, to the bit) whenever
    anything else needs them.

    Per pane (columns ``(k, panes)`` or arrays ``(panes,)``): ``starts``
    (a list, and ``start_array``), ``ends``, ``counts``, ``update``, the
    statistics' inputs ``total``, ``squares``, ``min``, ``max``; for
    :meth:`~WindowEngine._materialize` the sums of whole sub-blocks
    ``whole``, ``whole_sq`` and the rows after them, ``tails``.
    """

    __slots__ = ("starts", "start_array", "ends", "counts", "update", "total", "squares",
                 "min", "max", "whole", "whole_sq", "tails", "head", "arrived", "first",
                 "owned")

    def __init__(self):
        self.first = 0  # panes before it have fired
        self.owned = False
        self.head = None
        self.tails = []


def _positions(times, bounds, first=None, last=None):
    """
    ``np.searchsorted(times, bounds, "left")`` as a list, for ``bounds``
    after the first time and at most the last: guessed by interpolation
    between the first and the last time, each guess checked (exact at
    once for regular rows, a few reads instead of a binary search through
    a large array), searched where a guess is wrong.  ``first`` and
    ``last``: the first and last time, where the caller has them.
    """
    n = len(times)
    if n < 65536 or len(bounds) < 4:
        return np.searchsorted(times, bounds, "left").tolist()
    if first is None:
        first, last = int(times[0]), int(times[-1])
    guess = ((bounds - first) * ((n - 1) / max(last - first, 1))).astype(np.intp)
    np.minimum(np.maximum(guess, 1, out=guess), n - 1, out=guess)
    wrong = (times[guess] < bounds) | (times[guess - 1] >= bounds)
    if wrong.any():
        guess[wrong] = np.searchsorted(times, bounds[wrong], "left")
    return guess.tolist()


def _runs(stops):
    """
    ``[(j0, j1, rows)...]``: the panes ``j0 <= j < j1`` between
    consecutive ``stops`` (pane ``j`` holds rows ``stops[j]:stops[j + 1]``)
    in runs of panes with as many rows; panes without rows are left out.
    """
    runs = []
    j, last = 0, len(stops) - 1
    while j < last:
        rows = stops[j + 1] - stops[j]
        end = j + 1
        while end < last and stops[end + 1] - stops[end] == rows:
            end += 1
        if rows:
            runs.append((j, end, rows))
        j = end
    return runs


def _statistics(stats, counts, column):
    """
    ``{stat: (windows, k) array}`` of windows in columns: ``counts`` the
    rows of each, ``column(name)`` their ``(k, windows)`` ``"total"``,
    ``"squares"``, ``"min"`` or ``"max"``; for each window what
    :func:`combine` gives, to the bit.
    """
    values = {}
    for stat in stats:
        if stat == "sum":
            values[stat] = column("total").T
        elif stat == "mean":
            values[stat] = column("total").T / counts[:, None]
        elif stat == "rms":
            values[stat] = np.sqrt(column("squares").T / counts[:, None])
        elif stat == "min":
            values[stat] = column("min").T
        elif stat == "max":
            values[stat] = column("max").T
    return values


def _joined(parts):
    """``(k, m)`` arrays side by side (None for none)."""
    return (None if not parts else parts[0] if len(parts) == 1
            else np.concatenate(parts, axis=1))


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
        #: Whole panes kept in columns (:class:`_Batch`), not yet fired.
        self._batches = []
        #: Whether whole panes may be kept in columns: tumbling windows of
        #: the built-in statistics without lateness (empty windows, with
        #: ``emit_empty``, are fired one by one beside them).
        self._min, self._max = "min" in self.stats, "max" in self.stats
        self._sums = bool({"sum", "mean"} & set(self.stats))
        self._squares = "rms" in self.stats
        self.bulk = self.panes_per_window == 1 and not self.lateness and not self.reducers

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
                return _positions(times, bounds)
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
            if self._batches:
                self._materialize(pane, last)
            bound_list, stops = bounds.tolist(), splits(bounds)
            if (self.bulk and len(bound_list) > 2 and columns.strides[1] == columns.itemsize
                    and not any(b in self.panes for b in bound_list[:-1])):
                # Every pane between the first bound and the last is whole
                # and new: in columns, all at once.
                if stops[0] > at:
                    self._fold_rows(pane, columns[:, at:stops[0]], watermark)
                self._add_whole(pane, bound_list, stops, columns, watermark)
                pane, at = bound_list[-1], stops[-1]
                bound_list, stops = [], []
            for bound, stop in zip(bound_list + [None], stops + [n]):
                if stop > at:
                    self._fold_rows(pane, columns[:, at:stop], watermark)
                    at = stop
                if bound is not None:
                    pane = bound
        return np.arange(late_stop)

    def _fold_rows(self, pane, columns, watermark):
        acc = self.panes.get(pane)
        if acc is None:
            acc = self.panes[pane] = Accumulator(self.columns, self.stats, bool(self.reducers))
        acc.add(columns)
        if watermark is not None and (acc.arrived is None or watermark > acc.arrived):
            acc.arrived = watermark
        self.dirty.add(pane)

    def _add_whole(self, pane, bounds, stops, columns, watermark):
        """
        Rows ``stops[j]:stops[j + 1]`` fill the new pane ``bounds[j]``
        whole, for every ``j`` but the last, and ``pane`` (in
        :attr:`panes`, if it has rows) ends at ``bounds[0]``: one
        :class:`_Batch` of those with rows (:meth:`_whole_panes`).
        """
        runs = _runs(stops)
        head = self.panes.pop(pane, None)
        if not runs and head is None:
            return
        batch = self._columns_of([head] if head is not None else [], [pane], bounds[:1])
        parts = self._whole_panes(columns, stops, runs, (
            batch.whole, batch.total, batch.whole_sq, batch.squares, batch.min, batch.max),
            len(batch.starts))
        whole, total, whole_sq, total_sq, low, high, tails = parts
        starts, ends, counts = batch.starts, batch.ends, batch.counts
        for j0, j1, rows in runs:
            starts += bounds[j0:j1]
            ends += bounds[j0 + 1:j1 + 1]
            counts += [rows] * (j1 - j0)
        batch.tails = tails  # views: copied if the batch outlives the chunk
        updates = batch.update
        batch.start_array = np.array(starts, np.int64)
        batch.ends, batch.counts = np.array(ends, np.int64), np.array(counts, np.int64)
        batch.update = (np.zeros(len(starts), bool) if watermark is None
                        else watermark >= batch.ends)
        batch.update[:len(updates)] = updates
        batch.whole, batch.whole_sq = _joined(whole), _joined(whole_sq)
        batch.total, batch.squares = _joined(total), _joined(total_sq)
        batch.min, batch.max = _joined(low), _joined(high)
        batch.arrived = watermark
        self._batches.append(batch)
        self.dirty.update(starts)

    def _whole_panes(self, columns, stops, runs, first=(None,) * 6, offset=0):
        """
        The statistics' inputs of whole panes, run by run of consecutive
        panes with as many rows (:func:`_runs`; one run for regular rows),
        a few numpy calls a run: lists of ``(k, panes)`` arrays ``whole``,
        ``total``, ``whole_sq``, ``total_sq``, ``min``, ``max`` (each
        starting with the column of ``first`` where it is not None), and
        ``tails``, ``(pane number, (k, panes, rows) view)`` of the rows
        after the whole sub-blocks (numbered from ``offset``).  ``total`` is what
        :meth:`Accumulator.totals` gives for the same rows, to the bit.
        """
        k = columns.shape[0]
        whole, total, whole_sq, total_sq, low, high = (
            [part] if part is not None else [] for part in first)
        tails = []
        sums, squares = self._sums, self._squares
        at = offset
        for j0, j1, rows in runs:
            panes = j1 - j0
            start = stops[j0]
            # Views, never copies: the last axis (rows, contiguous) split.
            segments = columns[:, start:start + panes * rows].reshape(k, panes, rows)
            if self._min:
                low.append(np.minimum.reduce(segments, axis=2))
            if self._max:
                high.append(np.maximum.reduce(segments, axis=2))
            if sums or squares:
                count = rows // BLOCK_ROWS * BLOCK_ROWS
                blocks = segments[:, :, :count].reshape(k, panes, -1, BLOCK_ROWS)
                rest = segments[:, :, count:]
                if sums:
                    whole.append(_sequential_sums(blocks))
                    total.append(whole[-1] + np.add.reduce(rest, axis=2))
                if squares:
                    whole_sq.append(_sequential_sums(blocks * blocks))
                    total_sq.append(whole_sq[-1] + np.add.reduce(rest * rest, axis=2))
                tails.append((at, rest))
            at += panes
        return whole, total, whole_sq, total_sq, low, high, tails

    def _columns_of(self, accs, starts, ends):
        """
        A :class:`_Batch` of the panes ``accs`` (Accumulators, taken out
        of :attr:`panes`) at ``starts`` ending at ``ends``, its lists not
        yet arrays (``head``: the first of them).
        """
        batch = _Batch()
        batch.head = accs[0] if accs else None
        batch.starts, batch.ends = list(starts[:len(accs)]), list(ends[:len(accs)])
        batch.counts = [acc.count for acc in accs]
        batch.update = [acc.arrived is not None and acc.arrived >= end
                        for acc, end in zip(accs, ends)]
        batch.whole = batch.whole_sq = batch.total = batch.squares = None
        batch.min = batch.max = None
        if not accs:
            return batch
        if len(accs) == 1:  # the common case, a chunk's first pane: views, no copies
            acc = accs[0]
            if self._sums or self._squares:
                total, squares = acc.totals()
                if self._sums:
                    batch.whole, batch.total = acc.sum[:, None], total[:, None]
                if self._squares:
                    batch.whole_sq, batch.squares = acc.sumsq[:, None], squares[:, None]
            if self._min:
                batch.min = acc.min[:, None]
            if self._max:
                batch.max = acc.max[:, None]
            return batch
        if self._sums or self._squares:
            totals = [acc.totals() for acc in accs]
            if self._sums:
                batch.whole = np.array([acc.sum for acc in accs]).T
                batch.total = np.array([total for total, _ in totals]).T
            if self._squares:
                batch.whole_sq = np.array([acc.sumsq for acc in accs]).T
                batch.squares = np.array([square for _, square in totals]).T
        if self._min:
            batch.min = np.array([acc.min for acc in accs]).T
        if self._max:
            batch.max = np.array([acc.max for acc in accs]).T
        return batch

    def _materialize(self, lo=None, hi=None):
        """
        Turn the panes of the batches that reach into ``[lo, hi]`` (all
        batches by default) back into :class:`Accumulator` objects in
        :attr:`panes`: the state the rows would have made one by one.
        """
        keep = []
        for batch in self._batches:
            if lo is not None and (int(batch.ends[-1]) <= lo or batch.starts[batch.first] > hi):
                keep.append(batch)
                continue
            tails = {}
            for offset, tail in batch.tails:
                for j in range(tail.shape[1]):
                    tails[offset + j] = tail[:, j]
            for i in range(batch.first, len(batch.starts)):
                if i == 0 and batch.head is not None:
                    self.panes[batch.starts[0]] = batch.head
                    continue
                acc = Accumulator(self.columns, self.stats, False)
                acc.count = int(batch.counts[i])
                if batch.whole is not None:
                    acc._total = batch.whole[:, i].copy()
                if batch.whole_sq is not None:
                    acc._squares = batch.whole_sq[:, i].copy()
                if batch.min is not None:
                    acc.min = batch.min[:, i].copy()
                if batch.max is not None:
                    acc.max = batch.max[:, i].copy()
                if acc.tail is not None:
                    rest = tails[i]
                    acc.fill = rest.shape[1]
                    acc.tail[:, :acc.fill] = rest
                acc.arrived = batch.arrived
                self.panes[batch.starts[i]] = acc
        self._batches = keep

    def _own_batches(self):
        """
        Batches that outlive the chunk they came from take their own copy
        of its tail rows, so as not to hold the whole chunk.
        """
        for batch in self._batches:
            if not batch.owned:
                batch.tails = [(at, rest.copy()) for at, rest in batch.tails]
                batch.owned = True

    def _fire_tumbling(self, finals, until):
        """
        Final results, in columns, of tumbling windows without lateness
        (:attr:`bulk`): the windows ``finals`` (panes of :attr:`panes`, or
        empty windows with ``emit_empty``) and the panes of the batches
        that start before ``until`` (then forgotten); for each what
        :func:`combine` gives, to the bit.  None: none.
        """
        # Panes not in a batch (a chunk without a whole pane, rows out of
        # order) and empty windows: one by one.
        fired = Fired.from_results([self._result(start, True, None) for start in finals])
        parts, keep = [], []
        for batch in self._batches:
            lo, hi = batch.first, bisect.bisect_left(batch.starts, until)
            if hi > lo:
                parts.append((batch, lo, hi))
                batch.first = hi
            if batch.first < len(batch.starts):
                keep.append(batch)
        self._batches = keep
        if not parts:
            return fired
        if len(parts) == 1:
            batch, lo, hi = parts[0]

            def column(name):
                return getattr(batch, name)[..., lo:hi]
        else:
            def column(name):
                return np.concatenate([getattr(b, name)[..., lo:hi] for b, lo, hi in parts],
                                      axis=-1)
        counts = column("counts")
        values = _statistics(self.stats, counts, column)
        n = len(counts)
        batches = Fired(column("start_array"), column("ends"), counts,
                        _TRUE[:n] if n <= len(_TRUE) else np.ones(n, bool),
                        column("update"), values)
        starts = batches.starts
        if len(parts) > 1 and (starts[1:] < starts[:-1]).any():
            batches = batches.take(np.argsort(starts, kind="stable"))
        return batches if fired is None else Fired.join([fired, batches])

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
        updates, finals = self.advance_fired(watermark)
        return ([] if updates is None else updates.results(),
                [] if finals is None else finals.results())

    def advance_fired(self, watermark):
        """
        :meth:`advance`, the results in columns: ``(updates, finals)``,
        each a :class:`Fired` or None.
        """
        if self._batches:
            try:
                return self._advance_fired(watermark)
            finally:
                self._own_batches()
        return self._advance_fired(watermark)

    def add_advance(self, times, columns, names, watermark):
        """
        :meth:`add` the rows (``times`` sorted), then
        :meth:`advance_fired` to ``watermark``: ``(late, updates,
        finals)``, the indexes of the late rows and the two :class:`Fired`
        (or None).

        The direct path: for tumbling windows without lateness or reducers
        (:attr:`bulk`), when the rows are on time, nothing else is open but
        the pane the rows start in, and the watermark closes every pane of
        the rows but the last (or every one), the panes fire straight from
        the rows (a few numpy calls per statistic, no :class:`_Batch`); the
        last pane stays open unless it closed.  Otherwise the two calls.
        The same results and state either way, to the bit.
        """
        fired = self._direct(times, columns, names, watermark)
        if fired is not None:
            return _NO_ROWS, None, fired
        late = self.add(times, columns, names)
        updates, finals = self.advance_fired(watermark)
        return late, updates, finals

    def _direct(self, times, columns, names, watermark):
        """
        The finals of :meth:`add_advance`'s direct path, or None where it
        does not apply (having done no more than :meth:`add` does first).
        """
        n = columns.shape[1]
        if not (self.bulk and n > 1 and not self._batches and not self.dirty
                and not self.emitted and len(self.panes) < 2
                and columns.strides[1] == columns.itemsize):
            return None
        grid = self.grid
        first, last = int(times[0]), int(times[-1])
        pane, top = grid.floor(first), grid.floor(last)
        old = self.watermark
        mark = int(watermark) if old is None or watermark > old else old
        until = grid.floor(mark)
        if until < top or until == pane:
            # The watermark short of the last pane (panes stay open), or
            # nothing closes.
            return None
        self._setup(names)
        self.start(first)
        if first < self.seal_time():
            return None  # late rows
        panes = self.panes
        if panes and pane not in panes:
            return None
        if (self.emit_empty and self.final_until != pane) or self.final_until > top:
            return None  # empty windows before the rows (or finished)
        bounds = grid.boundaries(pane + 1, last)
        edges = bounds.tolist()
        stops = _positions(times, bounds, first, last) if edges else []
        if until > top:
            # The last pane closes too: whole, up to the next boundary
            # (windows after it are empty).
            after = grid.shift(top, 1)
            if self.emit_empty and until > after:
                return None
            edges.append(after)
            stops.append(n)
            bounds = np.array(edges, np.int64)
        runs = _runs(stops)
        if self.emit_empty and sum(j1 - j0 for j0, j1, _ in runs) < len(edges) - 1:
            return None  # an empty pane among them: an empty window to fire
        if old is not None and old >= edges[0]:
            return None  # (rows of a pane the watermark has passed are late)
        # The pane the rows start in, then the whole ones: fired.
        head = panes.pop(pane, None)
        if head is None:
            head = Accumulator(self.columns, self.stats, False)
        head.add(columns[:, :stops[0]])
        total = squares = None
        if self._sums or self._squares:
            total, squares = head.totals()
        whole, total, whole_sq, total_sq, low, high, _ = self._whole_panes(
            columns, stops, runs, (
                None, total[:, None] if self._sums else None,
                None, squares[:, None] if self._squares else None,
                head.min[:, None] if self._min else None,
                head.max[:, None] if self._max else None))
        m = 1 + sum(j1 - j0 for j0, j1, _ in runs)
        starts = np.empty(m, np.int64)
        counts = np.empty(m, np.int64)
        starts[0], counts[0] = pane, head.count
        if m == len(edges):  # every pane has rows (one run for regular rows)
            starts[1:] = bounds[:-1]
            ends = bounds
            for j0, j1, rows in runs:
                counts[j0 + 1:j1 + 1] = rows
        else:
            ends = np.empty(m, np.int64)
            ends[0] = edges[0]
            at = 1
            for j0, j1, rows in runs:
                starts[at:at + j1 - j0] = bounds[j0:j1]
                ends[at:at + j1 - j0] = bounds[j0 + 1:j1 + 1]
                counts[at:at + j1 - j0] = rows
                at += j1 - j0
        parts = {"total": total, "squares": total_sq, "min": low, "max": high}
        values = _statistics(self.stats, counts, lambda name: _joined(parts[name]))
        fired = Fired(starts, ends, counts, _TRUE[:m] if m <= len(_TRUE) else np.ones(m, bool),
                      _FALSE[:m] if m <= len(_FALSE) else np.zeros(m, bool), values)
        if stops[-1] < n:  # the last pane stays open
            tail = Accumulator(self.columns, self.stats, False)
            tail.add(columns[:, stops[-1]:])
            tail.arrived = old
            panes[edges[-1]] = tail
        self.watermark = mark
        self.final_until = self.next_on_time = until
        return fired

    def _advance_fired(self, watermark):
        if self.watermark is not None and watermark <= self.watermark and not self.dirty:
            return None, None
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
            return None, None
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
        panes = self.panes
        if self.bulk and all(panes[start].count for start in finals if start in panes):
            if self.emit_empty:
                # Every window start is due: those of panes in batches fire
                # from their columns, the others (panes with rows, or none:
                # empty windows) one by one, as the slow path does.
                batched = {start for batch in self._batches
                           for start in batch.starts[batch.first:]}
                results = self._fire_tumbling([start for start in finals
                                               if start not in batched], final_until)
            else:
                results = self._fire_tumbling(finals, final_until)
        else:
            if self._batches:  # not seen by _to_fire: as Accumulators, then fired
                self._materialize()
                finals = self._to_fire(self.final_until, final_until)
            results = Fired.from_results([self._result(start, True, None) for start in finals])
        for start in finals:
            self.emitted.pop(start, None)
        self.final_until, self.next_on_time = final_until, on_time_until
        self.dirty.clear()
        for pane in [p for p in self.panes if p < final_until]:
            del self.panes[pane]
        return Fired.from_results(updates), results

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
        self._materialize()
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
        self._materialize()
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
        self._batches = []
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
