"""
Device time of regularly sampled data, written once.

A sampled stream's times are counted from an *origin*: the device time
(integer nanoseconds) of one sample, and the rate since it.  Sample ``n``
after the origin is at ``origin + round(n * 1e9 / rate)`` ns: each time is
rounded once, from the origin, so rounding never accumulates however a
stream is chunked.  When the rate changes (or the device's clock jumps) the
stream takes a new origin at that sample (:meth:`Timebase.rebased`), and
times after it are again counted from there.

Every block, source and codec that turns sample counts into device time or
back uses these functions; they are the exact arithmetic the project has
always used, so times are the same integers wherever they are computed.
"""

import functools
from fractions import Fraction

import numpy as np

__all__ = ["NS_PER_SECOND", "Timebase", "sample_time", "sample_times", "sample_index",
           "rows_before", "duration_ns", "beyond_half_sample", "continues", "rounding_apart"]

#: Nanoseconds in a second (an integer, so sums stay exact).
NS_PER_SECOND = 1_000_000_000


def sample_time(origin_ns, index, rate):
    """
    Device time of a sample counted from an origin.

    Parameters
    ----------
    origin_ns : int
        Device time of sample 0 of the count, in integer nanoseconds.
    index : int
        Samples (or frames) after the origin; may be negative.
    rate : float
        Samples (or frames) per second, > 0.

    Returns
    -------
    int
        ``origin_ns + round(index * 1e9 / rate)``, in nanoseconds.
    """
    # x.__round__() is round(x) without the builtin's lookup of the
    # method and the bound method it makes: a third of the cost.
    return origin_ns + (index * 1e9 / rate).__round__()


def sample_times(origin_ns, indexes, rate):
    """
    Device times of many samples counted from an origin: :func:`sample_time`
    over an array, giving the same integers.

    Parameters
    ----------
    origin_ns : int
        Device time of sample 0 of the count, in integer nanoseconds.
    indexes : numpy.ndarray
        Samples after the origin (integers).
    rate : float
        Samples per second, > 0.

    Returns
    -------
    numpy.ndarray
        int64 nanoseconds.  The offsets are rounded half to even, as
        Python's ``round`` does, and added to the origin as integers, so a
        large origin loses nothing to float rounding.
    """
    offsets = np.rint(np.asarray(indexes) * 1e9 / rate).astype(np.int64)
    return offsets + np.int64(origin_ns)


def sample_index(origin_ns, time_ns, rate):
    """
    Nearest sample count at a device time: the inverse of :func:`sample_time`.

    Parameters
    ----------
    origin_ns : int
        Device time of sample 0 of the count, in integer nanoseconds.
    time_ns : int
        A device time, in integer nanoseconds.
    rate : float
        Samples (or frames) per second, > 0.

    Returns
    -------
    int
        ``round((time_ns - origin_ns) * rate / 1e9)``: samples from the
        origin to ``time_ns``, rounded to the nearest.  It undoes
        :func:`sample_time` exactly (``sample_index(o, sample_time(o, i, r),
        r) == i``) while a sample lasts more than about 2 ns (``rate`` up to
        some 500 MSa/s) and ``index`` stays below 2**48.
    """
    return round((time_ns - origin_ns) * rate / NS_PER_SECOND)


#: Counts below this times 1e9 ns are exact in a float64 (2**53).
_EXACT_COUNT = 2**53 // NS_PER_SECOND


@functools.lru_cache(maxsize=64)
def _whole_period(rate):
    """
    The sample period of ``rate`` in ns if it is exactly a whole number
    (``rate * period == 1e9`` in exact arithmetic), else None.
    """
    period = round(NS_PER_SECOND / rate)
    return period if period and Fraction(rate) * period == NS_PER_SECOND else None


def rows_before(origin_ns, times, rate, count):
    """
    How many of ``count`` samples lie before each of several device
    times: the samples of a chunk a cut at each time leaves on its left.

    Parameters
    ----------
    origin_ns : int
        Device time of sample 0, integer nanoseconds.
    times : iterable of int
        Device times, integer nanoseconds.
    rate : float
        Samples per second, > 0.
    count : int
        Number of samples (>= 0).

    Returns
    -------
    list of int
        For each time, the least ``n`` in ``[0, count]`` with
        ``sample_time(origin_ns, n, rate) >= time`` (``count`` if there
        is none), by exactly :func:`sample_time`'s integers.  When a
        sample lasts a whole number of nanoseconds (1 MSa/s: 1000 ns),
        ``sample_time`` is ``origin_ns + n * period`` exactly for the
        counts a float holds exactly, and this is one integer division
        per time.
    """
    step = _whole_period(rate)
    if step is not None and count < _EXACT_COUNT and count * step < 2**53:
        # n * 1e9 is exact below 2**53, and so is its quotient by the rate
        # when that is the whole number n * step: no rounding anywhere.
        rows = []
        for time in times:  # min() and max() of big ints cost twice this
            row = -((origin_ns - time) // step)
            rows.append(0 if row < 0 else count if row > count else row)
        return rows
    rows = []
    for time in times:
        row = min(max(sample_index(origin_ns, time, rate), 0), count)
        while row < count and sample_time(origin_ns, row, rate) < time:
            row += 1
        while row > 0 and sample_time(origin_ns, row - 1, rate) >= time:
            row -= 1
        rows.append(row)
    return rows


def duration_ns(count, rate):
    """
    Exact (unrounded) length of ``count`` samples.

    Parameters
    ----------
    count : int, float or numpy.ndarray
        Number of samples.
    rate : float
        Samples per second, > 0.

    Returns
    -------
    float or numpy.ndarray
        ``count * 1e9 / rate``, in nanoseconds, not rounded.
    """
    return count * 1e9 / rate


def beyond_half_sample(offset_ns, rate):
    """
    Whether a time offset is more than half a sample period: a timestamp
    that far from where the stream should be is a discontinuity, not
    rounding.

    Parameters
    ----------
    offset_ns : int, float or numpy.ndarray
        Difference between two device times, in nanoseconds (any sign).
    rate : float
        Samples per second, > 0.

    Returns
    -------
    bool or numpy.ndarray of bool
        ``abs(offset_ns) * rate > 0.5e9``.
    """
    return abs(offset_ns) * rate > 0.5e9


def continues(end_ns, start_ns, rate):
    """
    Whether a chunk that starts at ``start_ns`` continues a stream whose
    last chunk ended at ``end_ns``: the project's one rule of contiguity,
    for every block that spots gaps.

    A sampled chunk continues the stream when it starts less than half a
    sample from where the last one ended (:func:`beyond_half_sample`): at a
    rate whose period is not a whole number of nanoseconds, the same instant
    timed from two chunk starts may be rounded to two neighbouring
    nanoseconds.  Records (``rate`` 0) have no sample period and each row
    its own exact time: they continue only exactly where the last ended.

    Parameters
    ----------
    end_ns : int
        Where the stream's last chunk ended, integer nanoseconds.
    start_ns : int
        Where the next chunk starts, integer nanoseconds.
    rate : float
        The stream's samples (or frames) per second; 0 for records.

    Returns
    -------
    bool
        True when the chunk continues the stream; False at a gap or an
        overlap.
    """
    return start_ns == end_ns or (rate > 0 and not beyond_half_sample(start_ns - end_ns, rate))


def rounding_apart(a_ns, b_ns, rate):
    """
    Whether two device times may be the same instant of a stream at
    ``rate``, each rounded to the nanosecond from its own anchor.

    Each of the two is within half a nanosecond of a sample's exact time
    when it is counted from an origin (:func:`sample_time`), and within one
    when it is counted from a chunk's start that was itself rounded; their
    difference is then at most a nanosecond, and nothing at all when a
    sample lasts a whole number of nanoseconds (nothing is rounded).

    Parameters
    ----------
    a_ns, b_ns : int
        Two device times, integer nanoseconds.
    rate : float
        Samples per second of the stream, > 0.

    Returns
    -------
    bool
        True when they are equal, or one nanosecond apart at a rate whose
        period is not a whole number of nanoseconds.
    """
    return a_ns == b_ns or (abs(a_ns - b_ns) == 1 and _whole_period(rate) is None)


class Timebase:
    """
    The device time of every sample of a regular stream since an origin.

    Immutable.  Sample ``origin_index`` is at ``origin_ns``; sample ``n`` at
    ``origin_ns + round((n - origin_index) * 1e9 / rate)``.

    Parameters
    ----------
    origin_ns : int
        Device time of sample ``origin_index``, in integer nanoseconds.
    rate : float
        Samples (or frames) per second, > 0.
    origin_index : int
        The sample the origin belongs to (a running count of the stream's
        samples, so indexes need not restart at a rate change).
    """

    __slots__ = ("origin_ns", "rate", "origin_index")

    def __init__(self, origin_ns, rate, origin_index=0):
        rate = float(rate)
        if not rate > 0:
            raise ValueError(f"Timebase: rate must be > 0 samples per second, got {rate!r}")
        object.__setattr__(self, "origin_ns", int(origin_ns))
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "origin_index", int(origin_index))

    def __setattr__(self, name, value):
        raise AttributeError("Timebase is immutable; use rebased()")

    def __repr__(self):
        return (f"Timebase(origin_ns={self.origin_ns}, rate={self.rate!r}, "
                f"origin_index={self.origin_index})")

    def __eq__(self, other):
        if not isinstance(other, Timebase):
            return NotImplemented
        return (self.origin_ns, self.rate, self.origin_index) == (
            other.origin_ns, other.rate, other.origin_index)

    def __hash__(self):
        return hash((self.origin_ns, self.rate, self.origin_index))

    def time_of(self, index):
        """
        Device time of sample ``index``, in integer nanoseconds.
        """
        return sample_time(self.origin_ns, index - self.origin_index, self.rate)

    def times_of(self, indexes):
        """
        Device times (int64 ns array) of the samples ``indexes`` (an array).
        """
        return sample_times(self.origin_ns, np.asarray(indexes) - self.origin_index, self.rate)

    def index_at(self, time_ns):
        """
        Nearest sample index at ``time_ns`` (integer nanoseconds).
        """
        return self.origin_index + sample_index(self.origin_ns, time_ns, self.rate)

    def first_at_or_after(self, time_ns):
        """
        The first sample index whose device time is at or after ``time_ns``.
        """
        index = self.index_at(time_ns)
        while self.time_of(index) < time_ns:
            index += 1
        while self.time_of(index - 1) >= time_ns:
            index -= 1
        return index

    def rebased(self, index, rate):
        """
        The timebase after a rate change at sample ``index``: its origin is
        that sample's time on this timebase, and later times count from it,
        so the rounding of the old rate never carries over.

        Parameters
        ----------
        index : int
            First sample at the new rate.
        rate : float
            The new rate, samples per second, > 0.
        """
        return Timebase(self.time_of(index), rate, index)
