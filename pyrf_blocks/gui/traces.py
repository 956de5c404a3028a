"""
What a spectrum display shows of one stream, without Qt: the live trace,
the average, max and min holds, and the waterfall's rows.

Levels are combined as power, never as decibels (an average of noise in dB
reads 2.5 dB low).  A change of frequency axis (another centre frequency,
span or FFT size) starts every trace afresh.
"""

import numpy as np

from ..numerics.decibels import db_to_power, power_to_db
from ..numerics.holds import running_extreme, running_mean

__all__ = ["SpectrumTraces", "TRACE_NAMES"]

#: The traces a display keeps per stream, in drawing order.
TRACE_NAMES = ("live", "average", "max_hold", "min_hold")


class SpectrumTraces:
    """
    The traces of one spectrum stream (levels in dBm).

    :param average: the average trace is the mean power of the last
        ``average`` spectra (exponentially weighted once that many arrived).
    :param waterfall_rows: rows kept for the waterfall; a row is added by
        :meth:`commit_row`, once per display frame, and holds the peak of
        every spectrum received since the previous row.
    """

    def __init__(self, average=10, waterfall_rows=256):
        if not isinstance(average, int) or isinstance(average, bool) or average < 1:
            raise ValueError(f"average must be a positive integer, got {average!r}")
        if (not isinstance(waterfall_rows, int) or isinstance(waterfall_rows, bool)
                or waterfall_rows < 1):
            raise ValueError(f"waterfall_rows must be a positive integer, "
                             f"got {waterfall_rows!r}")
        self.average_count = average
        self.waterfall_rows = waterfall_rows
        self.axis = None
        self.meta = {}
        self.frequencies = None
        self.clear()

    def clear(self):
        """
        Forget every trace and the waterfall (the axis is kept).
        """
        self.live = None
        self.spectra = 0
        self._pending = None
        self._pending_time = None
        self.restart()
        #: Waterfall rows ever committed (the newest is row ``rows_added - 1``).
        self.rows_added = 0
        self._ring = None
        self._time_ring = None

    def restart(self):
        """
        Start the average and both holds afresh (live trace and waterfall
        stay).
        """
        self.average = self.max_hold = self.min_hold = None
        self._power_average = None
        self._averaged = 0

    def trace(self, name):
        """
        The trace called ``name`` (one of :data:`TRACE_NAMES`), or ``None``
        before the first spectrum.
        """
        if name not in TRACE_NAMES:
            raise ValueError(f"unknown trace {name!r}; use one of {', '.join(TRACE_NAMES)}")
        return getattr(self, name)

    def update(self, chunk):
        """
        Take a chunk of spectra (rows × bins, dBm).
        """
        data = chunk.data
        if data.ndim != 2 or not len(data):
            return
        meta = chunk.meta
        axis = (meta["start_frequency"], meta["bin_width"], data.shape[1])
        if axis != self.axis:
            self.axis = axis
            start, width, bins = axis
            self.frequencies = start + width * np.arange(bins)
            self.clear()
        self.meta = meta
        data = data.astype(np.float32, copy=False)
        self.live = data[-1]
        self._pending_time = chunk.end
        top = running_extreme(data)  # the peak of this chunk, for both maxima
        self.max_hold = running_extreme(top[np.newaxis], self.max_hold)
        self.min_hold = running_extreme(data, self.min_hold, np.minimum)
        self._pending = running_extreme(top[np.newaxis], self._pending)
        # A true mean while the first ``average_count`` spectra arrive, then
        # an exponential average with weight 1/average_count per spectrum.
        self._power_average, self._averaged = running_mean(
            db_to_power(data), self.average_count, self._power_average, self._averaged)
        self.average = power_to_db(self._power_average).astype(np.float32)
        self.spectra += len(data)

    def commit_row(self):
        """
        Add the peak of the spectra received since the last call to the
        waterfall; return False (adding nothing) if none arrived.
        """
        if self._pending is None:
            return False
        rows, bins = self.waterfall_rows, len(self._pending)
        if self._ring is None:
            # Each row is written twice, so the newest ``rows`` rows are
            # always one contiguous slice: no copy when drawing.
            self._ring = np.full((2 * rows, bins), np.nan, np.float32)
            self._time_ring = np.full(2 * rows, np.nan)
        slot = self.rows_added % rows
        self._ring[slot] = self._ring[slot + rows] = self._pending
        self._time_ring[slot] = self._time_ring[slot + rows] = self._pending_time / 1e9
        self.rows_added += 1
        self._pending = None
        return True

    def waterfall(self):
        """
        The waterfall as ``(waterfall_rows, bins)`` dBm, oldest row first
        (rows never filled are NaN); ``None`` before the first row.
        """
        if self._ring is None:
            return None
        first = self.rows_added % self.waterfall_rows
        return self._ring[first:first + self.waterfall_rows]

    def row_times(self):
        """
        Device time (seconds) of each waterfall row, in the order of
        :meth:`waterfall`: the end of the newest spectrum in the row (NaN
        for rows never filled); ``None`` before the first row.  Rows are
        added once per drawn frame, so they are not evenly spaced in time.
        """
        if self._time_ring is None:
            return None
        first = self.rows_added % self.waterfall_rows
        return self._time_ring[first:first + self.waterfall_rows]
