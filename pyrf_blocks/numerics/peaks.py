"""
Peak search over a spectrum.
"""

import numpy as np

__all__ = ["find_peaks"]


def find_peaks(levels, start_frequency, bin_width, count=5, min_distance=1):
    """
    The ``count`` strongest local maxima of one spectrum.

    :param levels: 1-D array of levels (dBm or linear), one per bin.
    :param start_frequency: frequency of bin 0, Hz.
    :param bin_width: Hz per bin.
    :param min_distance: minimum spacing of two peaks, in bins.
    :return: float64 array ``(n, 2)`` of ``[frequency_hz, level]`` rows,
        strongest first, ``n <= count``.
    """
    levels = np.asarray(levels)
    if levels.ndim != 1:
        raise ValueError(f"find_peaks takes one spectrum, got shape {levels.shape}")
    padded = np.concatenate(([-np.inf], levels, [-np.inf]))
    import scipy.signal  # imported when first needed: it costs seconds
    indices, _ = scipy.signal.find_peaks(padded, distance=max(1, int(min_distance)))
    indices = indices - 1
    strongest = indices[np.argsort(levels[indices], kind="stable")[::-1][:count]]
    table = np.empty((len(strongest), 2))
    table[:, 0] = start_frequency + bin_width * strongest
    table[:, 1] = levels[strongest]
    return table
