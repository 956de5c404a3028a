"""
Blocks over spectra: average, max hold, min hold and peak search.

Levels in dBm are combined as power (milliwatts), never as decibels: the
mean of noise in dB reads 2.5 dB low.
"""

import numpy as np
from zope.interface import implementer

from ..registry import register
from ..block import Block
from ..interfaces import IPeaksProducer, ISpectrumProducer, IStateful
from ..numerics.decibels import db_to_power, power_to_db
from ..numerics.holds import block_means, running_extreme
from ..numerics.peaks import EXCURSION_DB, find_peaks

__all__ = ["average_block", "max_hold", "min_hold", "peak_search"]


@register
@implementer(ISpectrumProducer, IStateful)
class average_block(Block):
    """
    Mean of every ``count`` consecutive spectra (as power), one output row
    per ``count`` input rows, stamped with the range they cover.

    :param count: spectra averaged into each output row.
    """

    type_name = "average_block"
    kind = "spectrum"
    requires = (ISpectrumProducer,)

    def __init__(self, producer, count=10, **kwargs):
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"average_block: count must be a positive integer, got {count!r}")
        self.count = count
        super().__init__(producer, **kwargs)

    def reset(self):
        self._sum = None    # float64 sum of the rows of the block begun
        self._rows = 0
        self._start = None  # time (ns) of its first row

    def get_state(self):
        return {"sum": None if self._sum is None else self._sum.tolist(),
                "rows": self._rows, "start": self._start}

    def set_state(self, state):
        self._sum = None if state["sum"] is None else np.asarray(state["sum"], np.float64)
        self._rows, self._start = state["rows"], state["start"]

    def compute(self, chunk):
        dbm = chunk.meta.get("units") == "dBm"
        power = db_to_power(chunk.data) if dbm else chunk.data
        rows, before = len(power), self._rows
        means, self._sum, self._rows = block_means(power, self.count, self._sum, before)
        if not len(means):
            if not before and self._rows:
                self._start = chunk.time_of(0)
            return
        start = self._start if before else chunk.time_of(0)
        used = rows - self._rows
        end = chunk.time_of(used) if used < rows else chunk.end
        self._start = chunk.time_of(used) if self._rows else None
        levels = power_to_db(means, out=means) if dbm else means
        self.emit(levels.astype(np.float32), start, end, chunk.rate / self.count,
                  dict(chunk.meta, averaged=self.count))


class _Hold(Block):
    """
    Running extreme of every bin.  For each input chunk it emits one row:
    the hold as of the chunk's last frame, stamped with that frame's time
    range.  ``clear()`` starts afresh.
    """

    kind = "spectrum"
    requires = (ISpectrumProducer,)
    _combine = None

    def reset(self):
        self._hold = None

    def clear(self):
        self._hold = None

    def get_state(self):
        return {"hold": None if self._hold is None else self._hold.tolist()}

    def set_state(self, state):
        self._hold = None if state["hold"] is None else np.asarray(state["hold"], np.float32)

    def compute(self, chunk):
        data = chunk.data
        if not len(data):
            return
        if self._hold is not None and self._hold.shape != data.shape[1:]:
            self._hold = None  # the number of bins changed: a new sweep
        self._hold = running_extreme(data, self._hold, type(self)._combine)
        self.emit(self._hold[np.newaxis].copy(), chunk.time_of(len(data) - 1), chunk.end,
                  chunk.rate, dict(chunk.meta, trace=self.type_name))


@register
@implementer(ISpectrumProducer, IStateful)
class max_hold(_Hold):
    """
    Maximum of every bin since the block started or was cleared.
    """

    type_name = "max_hold"
    _combine = np.maximum


@register
@implementer(ISpectrumProducer, IStateful)
class min_hold(_Hold):
    """
    Minimum of every bin since the block started or was cleared.
    """

    type_name = "min_hold"
    _combine = np.minimum


@register
@implementer(IPeaksProducer)
class peak_search(Block):
    """
    The ``count`` strongest peaks of a spectrum: frequency (Hz, interpolated
    between bins) and level, as a bench analyzer's peak table lists them
    (see :mod:`pyrf_blocks.numerics.peaks`).

    By default only the last spectrum of each input chunk is searched (what a
    display needs); ``every_frame=True`` searches every one.  Output rows
    are ``(frames, count, 2)``, padded with NaN when fewer peaks exist.

    :param count: peaks reported, strongest first.
    :param min_distance: bins between two peaks, at least.
    :param threshold: least level of a peak, dBm after calibration (dB of
        linear power before); ``None``: 12 dB above the median level (the
        noise floor).
    :param excursion: dB a peak rises above the valleys on both sides, at
        least (6 dB, as on bench analyzers; 0: every local maximum).
    :param every_frame: search every spectrum, not only each chunk's last.
    """

    type_name = "peak_search"
    kind = "peaks"
    requires = (ISpectrumProducer,)
    param_units = {"count": "count", "min_distance": "count", "threshold": "dBm",
                   "excursion": "dB"}

    def __init__(self, producer, count=5, min_distance=3, threshold=None,
                 excursion=EXCURSION_DB, every_frame=False, **kwargs):
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"peak_search: count must be a positive integer, got {count!r}")
        if not excursion >= 0:
            raise ValueError(f"peak_search: excursion must be 0 dB or more, got {excursion!r}")
        self.count = count
        self.min_distance = min_distance
        self.threshold = threshold
        self.excursion = excursion
        self.every_frame = every_frame
        super().__init__(producer, **kwargs)

    def compute(self, chunk):
        if not len(chunk.data):
            return
        first = 0 if self.every_frame else len(chunk.data) - 1
        meta = chunk.meta
        table = np.full((len(chunk.data) - first, self.count, 2), np.nan)
        linear = meta.get("units") == "power"  # fft_block's, before calibration
        for row, spectrum in enumerate(chunk.data[first:]):
            # The excursion is in dB: linear power is searched in dB, and
            # its peaks reported in the input's unit.
            levels = power_to_db(spectrum.astype(np.float64) + 1e-300) if linear else spectrum
            peaks = find_peaks(levels, meta["start_frequency"], meta["bin_width"],
                               self.count, self.min_distance, self.threshold, self.excursion)
            if linear:
                peaks[:, 1] = db_to_power(peaks[:, 1])
            table[row, :len(peaks)] = peaks
        self.emit(table, chunk.time_of(first), chunk.end, chunk.rate, meta)
