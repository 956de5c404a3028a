"""
Spectrum markers, without Qt: a marker that tracks the peak, one fixed at
a frequency, peak search, next peak and the delta readout between two
markers.
"""

import numpy as np

from ..numerics.peaks import peak_bins, peak_frequency

__all__ = ["Marker", "delta", "marker_from_spec"]


class Marker:
    """
    A marker sits on a bin of a trace; it follows that bin as the trace
    changes, until moved again.  A *peak* marker (``tracking=True``) moves
    to the highest point of every new trace, a *fixed* one (``frequency``)
    to the bin nearest its frequency, until it is moved by hand.

    :param min_distance: two peaks closer than this many bins count as one
        (what :meth:`next_peak` skips over).
    :param tracking: follow the highest point of the trace.
    :param frequency: stay at this frequency, Hz.
    """

    def __init__(self, min_distance=3, tracking=False, frequency=None):
        self.min_distance = min_distance
        self.tracking = tracking
        self.frequency = None if frequency is None else float(frequency)
        self.bin = None

    def __repr__(self):
        if self.tracking:
            return f"<Marker tracking the peak, at bin {self.bin}>"
        if self.frequency is not None:
            return f"<Marker at {self.frequency:g} Hz, bin {self.bin}>"
        return f"<Marker at bin {self.bin}>"

    def _peaks(self, levels):
        # The peaks of the peak table: the same threshold and excursion.
        return peak_bins(levels, min_distance=self.min_distance)

    def follow(self, frequencies, levels):
        """
        Move a peak marker to the peak of ``levels`` and a fixed one to the
        bin nearest its frequency (unplaced if it is off the axis); a plain
        marker stays.
        """
        if self.tracking:
            self._peak(levels)
        elif self.frequency is not None:
            frequencies = np.asarray(frequencies)
            width = frequencies[1] - frequencies[0] if len(frequencies) > 1 else 0.0
            if (not len(frequencies) or self.frequency < frequencies[0] - width / 2
                    or self.frequency > frequencies[-1] + width / 2):
                self.bin = None
            else:
                self.bin = int(np.argmin(np.abs(frequencies - self.frequency)))

    def _peak(self, levels):
        levels = np.asarray(levels)
        finite = np.where(np.isfinite(levels), levels, -np.inf)
        self.bin = int(np.argmax(finite))
        return self.bin

    def peak(self, levels):
        """
        Move to the highest bin of ``levels``; return the bin.  (A fixed
        marker is fixed no more; a peak marker goes on tracking.)
        """
        self.frequency = None
        return self._peak(levels)

    def next_peak(self, levels):
        """
        Move to the highest peak lower than the marker's level (the first
        peak when the marker is not placed yet).  Return the new bin, or
        ``None`` if there is no lower peak (the marker stays).  The marker
        stops tracking the peak and leaves its fixed frequency.
        """
        self.tracking = False
        self.frequency = None
        levels = np.asarray(levels)
        if self.bin is None or self.bin >= len(levels):
            return self._peak(levels)
        peaks = self._peaks(levels)
        current = levels[self.bin]
        listed = np.flatnonzero(peaks == self.bin)
        if len(listed):
            lower = peaks[listed[0] + 1:]
        else:
            lower = peaks[levels[peaks] < current]
        if not len(lower):
            return None
        self.bin = int(lower[0])
        return self.bin

    def reading(self, frequencies, levels):
        """
        ``(frequency_hz, level)`` under the marker, or ``None`` if it is
        not placed (or the trace has fewer bins now).  On a peak the
        frequency is interpolated between bins
        (:func:`~pyrf_blocks.numerics.peaks.peak_frequency`), as in a peak
        table; elsewhere it is the bin's.
        """
        if self.bin is None or self.bin >= len(levels):
            return None
        index = self.bin
        frequency = float(frequencies[index])
        left = levels[index - 1] if index > 0 else -np.inf
        right = levels[index + 1] if index + 1 < len(levels) else -np.inf
        if (self.frequency is None and len(frequencies) > 1
                and levels[index] >= left and levels[index] >= right):
            frequency = peak_frequency(levels, index, frequencies[0],
                                       frequencies[1] - frequencies[0])
        return frequency, float(levels[index])


def marker_from_spec(spec):
    """
    A marker from its description: ``"peak"`` tracks the peak, a number is
    a fixed frequency in Hz.
    """
    if spec == "peak":
        return Marker(tracking=True)
    return Marker(frequency=float(spec))


def delta(reference, other, frequencies, levels):
    """
    ``(hz, db)`` of marker ``other`` relative to marker ``reference``, or
    ``None`` unless both are placed.
    """
    first = reference.reading(frequencies, levels)
    second = other.reading(frequencies, levels)
    if first is None or second is None:
        return None
    return second[0] - first[0], second[1] - first[1]
