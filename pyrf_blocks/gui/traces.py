"""
What a spectrum display shows of one stream, without Qt: the live trace,
the average, max and min holds, and the waterfall's rows.

Levels are combined as power, never as decibels (an average of noise in dB
reads 2.5 dB low).  A change of frequency axis (another centre frequency,
span or FFT size) starts every trace afresh.
"""

import numpy as np

__all__ = ["SpectrumTraces", "TRACE_NAMES"]

#: The traces a display keeps per stream, in drawing order.
TRACE_NAMES = ("live", "average", "max_hold", "min_hold")

_LN10_10 = np.float32(np.log(10.0) / 10.0)


def _db_to_power(levels):
    return np.exp(levels * _LN10_10)


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
        self.restart()
        #: Waterfall rows ever committed (the newest is row ``rows_added - 1``).
        self.rows_added = 0
        self._ring = None

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
        top, bottom = data.max(axis=0), data.min(axis=0)
        if self.max_hold is None:
            self.max_hold, self.min_hold = top, bottom
        else:
            np.maximum(self.max_hold, top, out=self.max_hold)
            np.minimum(self.min_hold, bottom, out=self.min_hold)
        if self._pending is None:
            self._pending = top.copy()
        else:
            np.maximum(self._pending, top, out=self._pending)
        self._average_in(data)
        self.spectra += len(data)

    def _average_in(self, data):
        # A true mean while the first ``average_count`` spectra arrive, then
        # an exponential average with weight 1/average_count per spectrum.
        power = _db_to_power(data)
        mean, seen, count = self._power_average, self._averaged, self.average_count
        index = 0
        while index < len(power) and (mean is None or seen < count):
            row = power[index]
            if mean is None:
                mean = row.astype(np.float64)
            else:
                mean += (row - mean) / (seen + 1)
            seen += 1
            index += 1
        rest = power[index:]
        if len(rest):
            # n steps of mean += a·(row - mean), all at once.
            alpha = 1.0 / count
            decay = (1.0 - alpha) ** np.arange(len(rest) - 1, -1, -1)
            mean *= (1.0 - alpha) ** len(rest)
            mean += (alpha * decay) @ rest
            seen += len(rest)
        self._power_average, self._averaged = mean, seen
        with np.errstate(divide="ignore"):  # a bin of zero power is -inf dBm
            self.average = (10.0 * np.log10(mean)).astype(np.float32)

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
        slot = self.rows_added % rows
        self._ring[slot] = self._ring[slot + rows] = self._pending
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
