"""
The peaks of a 1-D signal as ``scipy.signal.find_peaks`` selects them by
height, distance and prominence: the same indices, in the same order.

Why not scipy's own: ``import scipy.signal`` cost 0.9–1.5 s of CPU per
process with scipy 1.17, a quarter of ``pyrf-blocks demo``'s time, for the
one function its peak table needs.  The rules below are scipy's (its
``_local_maxima_1d``, ``_select_by_peak_distance`` and
``_peak_prominences``, with no window length), and the tests compare the
two on random signals full of plateaus and ties.  Here the rules run as
numpy calls per peak, which is quick for the few peaks above a peak
table's threshold; a signal with more than :data:`MOST_PEAKS_HERE` peaks
left after the height condition (a noisy spectrum with no threshold) goes
to scipy's compiled loops instead, paying the import once.

- A peak is a run of equal samples with a lower sample on each side (the
  first and last samples never are); its index is the middle of the run,
  rounded down.
- ``height``: a peak's value is at least this.
- ``distance``: of two peaks closer than this many samples, the higher
  stays; the peaks are visited from the highest down (ties in numpy's
  ``argsort`` order, as scipy does), each removing the lower ones near it.
- ``prominence``: how far a peak rises above the higher of its two bases.
  Its base on each side is the lowest sample between it and the nearest
  strictly higher sample on that side (or that end of the signal).
"""

import math

import numpy as np

__all__ = ["find_peaks", "MOST_PEAKS_HERE"]

#: Peaks (after the height condition) up to which the distance and
#: prominence conditions are settled here; beyond, by scipy.  A peak costs
#: about 14 µs here, scipy's whole search on 64 Ki samples about 3 ms.
MOST_PEAKS_HERE = 256


def find_peaks(x, height=None, distance=None, prominence=None):
    """
    Indices of the peaks of ``x`` that meet every condition given, in
    increasing order: ``scipy.signal.find_peaks(x, height=height,
    distance=distance, prominence=prominence)[0]`` for scalar conditions.

    :param x: 1-D sequence of numbers (taken as float64).
    :param height: least value of a peak, or None.
    :param distance: least spacing of two peaks in samples (>= 1), or None.
    :param prominence: least prominence of a peak, or None.
    :raise ValueError: ``x`` is not 1-D, or ``distance`` is below 1.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"find_peaks takes a 1-D signal, got shape {x.shape}")
    if distance is not None and distance < 1:
        raise ValueError(f"find_peaks: distance must be at least 1, got {distance!r}")
    peaks = _local_maxima(x)
    if height is not None:
        peaks = peaks[height <= x[peaks]]
    if len(peaks) > MOST_PEAKS_HERE and (distance is not None or prominence is not None):
        import scipy.signal  # imported when first needed: it costs a second

        return scipy.signal.find_peaks(x, height=height, distance=distance,
                                       prominence=prominence)[0]
    if distance is not None:
        peaks = peaks[_apart(peaks, x[peaks], math.ceil(distance))]
    if prominence is not None:
        peaks = peaks[prominence <= _prominences(x, peaks)]
    return peaks


def _local_maxima(x):
    # The middle of each run of equal samples that has a lower run on
    # both sides.
    if len(x) < 3:
        return np.empty(0, dtype=np.intp)
    starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
    ends = np.append(starts[1:] - 1, len(x) - 1)
    values = x[starts]
    inner = slice(1, -1)
    higher = (values[:-2] < values[inner]) & (values[2:] < values[inner])
    return ((starts[inner] + ends[inner]) // 2)[higher].astype(np.intp)


def _apart(peaks, heights, distance):
    # Which peaks stay when no two may be closer than ``distance``.
    keep = np.ones(len(peaks), dtype=bool)
    if distance <= 1 or len(peaks) < 2:
        return keep  # (peaks are at least 2 apart)
    positions = peaks.tolist()
    for j in np.argsort(heights)[::-1].tolist():
        if not keep[j]:
            continue
        k = j - 1
        while k >= 0 and positions[j] - positions[k] < distance:
            keep[k] = False
            k -= 1
        k = j + 1
        while k < len(positions) and positions[k] - positions[j] < distance:
            keep[k] = False
            k += 1
    return keep


def _prominences(x, peaks):
    # Each peak's prominence: its value less the higher of its two bases.
    prominences = np.empty(len(peaks), dtype=np.float64)
    for number, peak in enumerate(peaks.tolist()):
        top = x[peak]
        left = _nearest_higher(x, peak, top, -1)
        right = _nearest_higher(x, peak, top, 1)
        prominences[number] = top - max(x[left + 1:peak + 1].min(), x[peak:right].min())
    return prominences


def _nearest_higher(x, peak, top, step):
    # The index of the sample nearest ``peak`` in direction ``step`` that
    # is not at or below ``top`` (higher, or NaN: scipy's walk stops at
    # either); -1 or len(x) where there is none.  Searched in
    # windows that double, since most peaks of a noisy signal meet a higher
    # sample a few samples away and only the few highest reach the ends.
    span = 16
    near = peak
    while True:
        if step < 0:
            low = max(0, near - span)
            above = np.flatnonzero(~(x[low:near] <= top))
            if len(above):
                return low + int(above[-1])
            if low == 0:
                return -1
            near = low
        else:
            high = min(len(x), near + 1 + span)
            above = np.flatnonzero(~(x[near + 1:high] <= top))
            if len(above):
                return near + 1 + int(above[0])
            if high == len(x):
                return len(x)
            near = high - 1
        span *= 2
