"""
Spectrum markers, without Qt: peak search, next peak and the delta
readout between two markers.
"""

import numpy as np

from ..numerics.peaks import peak_bins

__all__ = ["Marker", "delta"]


class Marker:
    """
    A marker sits on a bin of a trace; it follows that bin as the trace
    changes, until moved again.

    :param min_distance: two peaks closer than this many bins count as one
        (what :meth:`next_peak` skips over).
    """

    def __init__(self, min_distance=3):
        self.min_distance = min_distance
        self.bin = None

    def __repr__(self):
        return f"<Marker at bin {self.bin}>"

    def _peaks(self, levels):
        # The peaks of the peak table: the same threshold and excursion.
        return peak_bins(levels, min_distance=self.min_distance)

    def peak(self, levels):
        """
        Move to the highest bin of ``levels``; return the bin.
        """
        levels = np.asarray(levels)
        finite = np.where(np.isfinite(levels), levels, -np.inf)
        self.bin = int(np.argmax(finite))
        return self.bin

    def next_peak(self, levels):
        """
        Move to the highest peak lower than the marker's level (the first
        peak when the marker is not placed yet).  Return the new bin, or
        ``None`` if there is no lower peak (the marker stays).
        """
        levels = np.asarray(levels)
        if self.bin is None or self.bin >= len(levels):
            return self.peak(levels)
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
        not placed (or the trace has fewer bins now).
        """
        if self.bin is None or self.bin >= len(levels):
            return None
        return float(frequencies[self.bin]), float(levels[self.bin])


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
