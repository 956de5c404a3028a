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
from ..state import check_version, pack_array, unpack_array
from ..numerics.decibels import db_to_power, power_to_db
from ..numerics.holds import block_means, running_extreme
from ..numerics.peaks import EXCURSION_DB, find_peaks
from ..params import Param

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
    param_rules = {"count": Param("count", minimum=1, maximum=1 << 20)}

    def __init__(self, producer, count=10, **kwargs):
        self.count = count
        super().__init__(producer, **kwargs)

    def reset(self):
        self._sum = None    # float64 sum of the rows of the block begun
        self._rows = 0
        self._start = None  # time (ns) of its first row

    def get_state(self):
        return {"version": 1, "sum": pack_array(self._sum), "rows": self._rows,
                "start": self._start}

    def set_state(self, state):
        check_version(self, state, 1, unversioned=1)
        self._sum = unpack_array(state["sum"])
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
    #: The calibrate_block fused into this hold by chain optimisation
    #: (:class:`~pyrf_blocks.optimise.HoldOfCalibration`), or None.
    calibration = None
    #: True when the FFT fused with this hold
    #: (:class:`~pyrf_blocks.optimise.HoldOfSpectra`) also applies that
    #: calibration to each row it sends: the hold then holds dBm.
    rows_calibrated = False

    def fuse_calibration(self, calibration):
        """
        Hold the linear power that ``calibration`` (this hold's input, a
        :class:`~pyrf_blocks.blocks.dsp.calibrate_block`) reads, and
        calibrate the held row: the same output, one logarithm per chunk
        instead of one per frame.  Called by chain optimisation before the
        graph runs.
        """
        if self.inputs != (calibration,):
            raise ValueError(f"{self.label}: cannot fuse {calibration.label}, "
                             "which is not its input")
        self.replace_input(0, calibration.inputs[0])
        self.calibration = calibration
        # A hold set before (set_state) is in dBm: kept, as a state set now.
        self._pending_state, self._hold = self._hold, None

    def reset(self):
        self._hold = None
        self._meta = None
        self._pending_state = None  # a dBm state set on a fused hold
        self._traced = None  # (input meta, output meta)

    def clear(self):
        self._hold = None

    def get_state(self):
        hold = self._hold
        if hold is not None and self.calibration is not None and not self.rows_calibrated:
            hold = self.calibration.calibrated(hold, self._meta)[0]
        return {"version": 1, "hold": pack_array(hold)}

    def set_state(self, state):
        check_version(self, state, 1, unversioned=1)
        hold = unpack_array(state["hold"])
        if hold is not None and self.calibration is not None and not self.rows_calibrated:
            # The state is in dBm; a fused hold keeps power.  The offset
            # cancels through the metadata of the next chunk's calibration,
            # so the held levels come back within float32 rounding.
            self._pending_state = hold
            hold = None
        self._hold = hold

    def compute(self, chunk):
        data = chunk.data
        if not len(data):
            return
        if self._hold is not None and self._hold.shape != data.shape[1:]:
            self._hold = None  # the number of bins changed: a new sweep
        calibration = self.calibration
        if calibration is None or self.rows_calibrated:
            pending = self._pending_state
            if pending is not None:  # (dBm, set before the FFT calibrated for it)
                self._pending_state = None
                self._hold = pending
            # dBm rows when the fused FFT calibrates them: the hold of
            # calibrated rows is the calibration of the held power
            # (HoldOfCalibration's proof).
            self._hold = running_extreme(data, self._hold, type(self)._combine)
            # (running_extreme makes a new array each time and nothing
            # writes into a hold: the chunk may show it, read-only.)
            row, meta = self._hold[np.newaxis], chunk.meta
            if calibration is not None:
                self._meta = chunk.meta
                meta = calibration.terms(meta)[0]
        else:
            pending = self._pending_state
            if pending is not None:
                self._pending_state = None
                self._hold = self._power_of(pending, chunk.meta)
            self._hold = running_extreme(data, self._hold, type(self)._combine)
            self._meta = chunk.meta
            row, meta = calibration.calibrated(self._hold[np.newaxis], chunk.meta)
        traced = self._traced
        if traced is None or traced[0] is not meta:
            # The output meta, made again only when the input's changes.
            traced = self._traced = (meta, dict(meta, trace=self.type_name))
        self.emit(row, chunk.time_of(len(data) - 1), chunk.end, chunk.rate, traced[1])

    def _power_of(self, dbm, meta):
        # The inverse of the calibration, from what it adds to a unit power.
        offset = self.calibration.calibrated(np.ones_like(dbm), meta)[0]
        return db_to_power(dbm - offset).astype(np.float32)


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
    param_rules = {"count": Param("count", minimum=1, maximum=1 << 20),
                   "min_distance": Param("count", minimum=1),
                   "threshold": Param("dBm", nullable=True),
                   "excursion": Param("dB", minimum=0)}

    def __init__(self, producer, count=5, min_distance=3, threshold=None,
                 excursion=EXCURSION_DB, every_frame=False, **kwargs):
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
