"""
Cycles of a mains signal: where they begin, and sums over them.

Two ways to find cycle boundaries:

* **nominal**: cycle ``k`` of a ``frequency`` Hz mains begins at device time
  ``round(k * 1e9 / frequency)`` ns, counted from device time 0, computed
  in exact integer arithmetic (:func:`nominal_boundaries`).  Every stream
  of one device clock shares these boundaries, so the per-cycle values of
  a voltage and a current, or of two powers, are at the same times and can
  be combined row by row.  The signal's phase does not matter, and a
  mains frequency that drifts from the nominal one makes a cycle hold
  slightly more or less than one period (at 49.9 Hz for a 50 Hz grid, the
  RMS of a sine is still within 0.3 %, measured).
* **zero crossing**: a cycle begins at each rising zero crossing, the first
  sample ``>= 0`` after one ``< 0`` (:func:`rising_zero_crossings`), not
  interpolated; a crossing less than half a nominal period after the
  previous one is noise and ignored.  Cycles then follow the signal's real
  period, but two signals' cycles are at different times.
"""

import functools
from fractions import Fraction

import numpy as np

from ..timebase import NS_PER_SECOND

__all__ = ["nominal_boundary", "nominal_boundaries", "boundaries_from", "rising_zero_crossings",
           "segment_sums", "whole_cycle_sums"]


@functools.lru_cache(maxsize=64)
def _period(frequency):
    """
    The period of ``frequency`` Hz as an exact fraction of nanoseconds,
    ``(numerator, denominator)`` integers.
    """
    period = NS_PER_SECOND / Fraction(frequency).limit_denominator(1_000_000)
    return period.numerator, period.denominator


def nominal_boundary(k, frequency):
    """
    Device time (int ns) of nominal cycle boundary ``k``:
    ``round(k * 1e9 / frequency)``, halves up, exact.
    """
    numerator, denominator = _period(frequency)
    return (2 * k * numerator + denominator) // (2 * denominator)


def nominal_boundaries(start_ns, end_ns, frequency):
    """
    The nominal cycle boundaries in the closed range ``[start_ns, end_ns]``.

    Parameters
    ----------
    start_ns, end_ns : int
        A range of device time, integer ns.
    frequency : float
        Nominal mains frequency, Hz (50, 60...).

    Returns
    -------
    list of (int, int)
        ``(k, time_ns)`` of each boundary, ``time_ns = round(k * 1e9 /
        frequency)`` (halves up), in order.
    """
    numerator, denominator = _period(frequency)
    # Boundary k is at floor((2·k·numerator + denominator) / (2·denominator)):
    # the period numerator/denominator ns times k, rounded half up, in
    # integers however large the device time.
    k = (start_ns * denominator) // numerator - 1
    boundaries = []
    twice = 2 * denominator
    while True:
        time = (2 * k * numerator + denominator) // twice
        if time > end_ns:
            return boundaries
        if time >= start_ns:
            boundaries.append((k, time))
        k += 1


def boundaries_from(k, end_ns, frequency):
    """
    The nominal cycle boundaries from boundary ``k`` on, up to ``end_ns``
    included, and the first one after them.

    Parameters
    ----------
    k : int
        The first boundary's number.
    end_ns : int
        The last device time wanted, integer ns.
    frequency : float
        Nominal mains frequency, Hz.

    Returns
    -------
    tuple
        ``(times, k_next, time_next)``: the device times (int ns, a list)
        of boundaries ``k, k + 1, ...`` that are ``<= end_ns``, and the
        number and time of the first boundary after ``end_ns``, each as
        :func:`nominal_boundary` gives it.
    """
    numerator, denominator = _period(frequency)
    twice = 2 * denominator
    times = []
    while True:
        time = (2 * k * numerator + denominator) // twice
        if time > end_ns:
            return times, k, time
        times.append(time)
        k += 1


def rising_zero_crossings(samples, previous=None):
    """
    Indexes of the rising zero crossings of ``samples``: ``i`` where the
    sample before is ``< 0`` and ``samples[i] >= 0``.

    Parameters
    ----------
    samples : numpy.ndarray
        1-D real samples.
    previous : float, optional
        The sample just before ``samples[0]`` (the end of the previous
        chunk), so that a crossing at index 0 is found.

    Returns
    -------
    numpy.ndarray
        int64 indexes, increasing.
    """
    samples = np.asarray(samples)
    found = np.flatnonzero((samples[:-1] < 0) & (samples[1:] >= 0)) + 1
    if previous is not None and len(samples) and previous < 0 <= samples[0]:
        found = np.concatenate(([0], found))
    return found.astype(np.int64)


#: Segments this long on average, or this few, are summed one by one
#: (pairwise, at numpy's full speed); shorter ones all at once with
#: ``add.reduceat`` in float64, whose casting costs more per sample than a
#: Python call per segment does for long segments.
_LONG_SEGMENT = 512
_FEW_SEGMENTS = 32


def segment_sums(values, edges):
    """
    The sum of each segment ``values[edges[i]:edges[i + 1]]``.

    Parameters
    ----------
    values : numpy.ndarray
        1-D numbers.
    edges : array_like of int
        Non-decreasing, from 0 to ``len(values)``; equal neighbours make an
        empty segment, whose sum is 0.

    Returns
    -------
    numpy.ndarray
        ``len(edges) - 1`` sums, float64 (complex128 for complex values).
        Few or long segments (mains cycles) are summed one by one with
        numpy's pairwise summation, in the values' own precision (relative
        error about ``eps · log2(n)``: 1e-6 for float32); many short ones
        at once with ``add.reduceat``, accumulating in float64.
    """
    dtype = np.result_type(values.dtype, np.float64)
    segments = len(edges) - 1
    if segments <= _FEW_SEGMENTS or len(values) >= _LONG_SEGMENT * segments:
        bounds = edges.tolist() if isinstance(edges, np.ndarray) else list(edges)
        return np.array([values[a:b].sum() for a, b in zip(bounds, bounds[1:])], dtype)
    edges = np.asarray(edges, dtype=np.int64)
    starts, stops = edges[:-1], edges[1:]
    sums = np.zeros(len(starts), dtype)
    nonempty = stops > starts
    if nonempty.any():
        # Empty segments lie between the non-empty ones, so each non-empty
        # segment ends where the next non-empty one starts.
        sums[nonempty] = np.add.reduceat(values[:edges[-1]], starts[nonempty], dtype=dtype)
    return sums


def whole_cycle_sums(values, indexes, lengths=None):
    """
    The sum of each whole cycle ``values[indexes[i]:indexes[i + 1]]``, each
    by numpy's pairwise summation over the cycle's samples alone (in the
    values' own precision), so the same samples give the same bits
    wherever they lie; cycles of one length are summed in one call.
    Python numbers (``float`` for float values), a list.  ``lengths``, the
    cycles' lengths if the caller has them, saves computing them again.
    """
    if len(indexes) < 2:
        return []
    if lengths is None:
        lengths = [b - a for a, b in zip(indexes, indexes[1:])]
    length = lengths[0]
    if length and lengths.count(length) == len(lengths):
        # np.add.reduce is what .sum() calls, without its Python wrapper.
        return np.add.reduce(values[indexes[0]:indexes[-1]].reshape(-1, length), 1).tolist()
    return [np.add.reduce(values[a:b]).item() for a, b in zip(indexes, indexes[1:])]
