"""
Tests for the timebase: sample counts to device time and back.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyrf_blocks.chunk import Chunk
from pyrf_blocks.timebase import (
    NS_PER_SECOND, Timebase, beyond_half_sample, continues, duration_ns, rounding_apart,
    rows_before, sample_index, sample_time,
)

RATES = st.floats(min_value=1e-3, max_value=5e8, allow_nan=False, allow_infinity=False)
ORIGINS = st.integers(min_value=-2**62, max_value=2**62)
INDEXES = st.integers(min_value=0, max_value=2**48)


@pytest.mark.parametrize("origin, index, rate, expected", [
    (0, 0, 1e6, 0),
    (1_000, 3, 3e6, 2_000),               # 3 samples of 333.3 ns: exactly 1 us
    (0, 1, 3e6, 333),                     # 333.33 rounds down
    (0, 2, 3e6, 667),                     # 666.67 rounds up
    (0, 5, 125e6, 40),                    # 8 ns a sample
    (0, 1, 4e8, 2),                       # 2.5 ns: half to even
    (0, 3, 4e8, 8),                       # 7.5 ns: half to even
    (10**18, 1024, 7.8125e6, 10**18 + 131_072),
    (500, -2, 1e6, -1_500),               # before the origin
    (0, 10**9, 1.0, 10**18),              # a billion seconds at 1 Sa/s
])
def test_sample_time_gives_exact_integers(origin, index, rate, expected):
    """sample_time returns the hand-computed integer nanoseconds, rounding once from the origin."""
    assert sample_time(origin, index, rate) == expected
    assert type(sample_time(origin, index, rate)) is int


@pytest.mark.parametrize("origin, time, rate, expected", [
    (0, 0, 1e6, 0),
    (1_000, 2_000, 3e6, 3),
    (0, 333, 3e6, 1),
    (0, 667, 3e6, 2),
    (0, 1_600, 1e6, 2),                   # nearest sample, not the one before
    (0, 1_400, 1e6, 1),
    (500, -1_500, 1e6, -2),
])
def test_sample_index_gives_the_nearest_sample(origin, time, rate, expected):
    """sample_index returns the hand-computed nearest sample count."""
    assert sample_index(origin, time, rate) == expected


def test_timebase_counts_from_its_origin_index():
    """A timebase whose origin is sample 1000 times later samples from there."""
    timebase = Timebase(5_000, 3e6, origin_index=1_000)
    assert timebase.time_of(1_000) == 5_000
    assert timebase.time_of(1_001) == 5_333
    assert timebase.time_of(1_003) == 6_000
    assert timebase.index_at(6_000) == 1_003
    assert timebase.index_at(5_000) == 1_000


def test_rebased_counts_from_the_rate_change():
    """After a rate change at sample k, times count from sample k's time at the new rate."""
    before = Timebase(0, 3e6)
    after = before.rebased(1, 1e6)
    assert after == Timebase(333, 1e6, 1)
    assert after.time_of(1) == 333
    assert after.time_of(2) == 1_333       # 333 + 1000, not 0 + round(2 * 1e9 / 1e6)
    assert after.time_of(4) == 3_333
    assert after.index_at(3_333) == 4


def test_times_after_a_rebase_stay_within_a_nanosecond_of_the_exact_time():
    """Rounding never accumulates: far past a rate change, times are within 1 ns of exact."""
    before = Timebase(0, 3e6)
    after = before.rebased(10, 7e6)
    change = Fraction(10 * NS_PER_SECOND, 3_000_000)        # exact time of sample 10
    for count in (1, 7, 10**6 + 3, 10**9 + 1):
        exact = change + Fraction(count * NS_PER_SECOND, 7_000_000)
        assert abs(after.time_of(10 + count) - exact) <= 1
        assert after.time_of(10 + count) - after.time_of(10) == round(count * 1e9 / 7e6)


def test_timebase_is_immutable_and_checks_its_rate():
    """A Timebase refuses a non-positive rate and cannot be changed once made."""
    with pytest.raises(ValueError, match="rate must be > 0"):
        Timebase(0, 0.0)
    timebase = Timebase(0, 1e6)
    with pytest.raises(AttributeError):
        timebase.rate = 2e6
    assert timebase == Timebase(0, 1e6) and hash(timebase) == hash(Timebase(0, 1e6))
    assert "origin_ns=0" in repr(timebase)


@given(ORIGINS, INDEXES, RATES)
@settings(max_examples=500, deadline=None)
def test_index_at_inverts_time_of(origin, index, rate):
    """index_at(time_of(i)) == i for rates up to 500 MSa/s and indexes up to 2**48."""
    assert sample_index(origin, sample_time(origin, index, rate), rate) == index
    timebase = Timebase(origin, rate, origin_index=17)
    assert timebase.index_at(timebase.time_of(index + 17)) == index + 17


@given(st.integers(min_value=-10**12, max_value=10**12),
       st.integers(min_value=0, max_value=2**40), RATES)
@settings(max_examples=300, deadline=None)
def test_chunk_times_are_the_integers_of_the_formula_they_replace(start, index, rate):
    """Chunk.time_of and index_at give exactly what their former inline formulas gave."""
    chunk = Chunk("iq", np.zeros(0, np.int8), start, start + 1, rate)
    assert chunk.time_of(index) == start + round(index * NS_PER_SECOND / rate)
    time = sample_time(start, index, rate)
    assert sample_index(start, time, rate) == round((time - start) * rate / NS_PER_SECOND)


@given(st.integers(min_value=0, max_value=2**30), st.integers(min_value=1, max_value=64),
       RATES, ORIGINS)
@settings(max_examples=300, deadline=None)
def test_decimated_times_match_the_former_formula(first, factor, rate, origin):
    """Timebase.time_of(first * factor) is decimate_block's former origin + round(first * factor * 1e9 / rate)."""
    assert (Timebase(origin, rate).time_of(first * factor)
            == origin + round(first * factor * 1e9 / rate))


@given(ORIGINS, st.integers(min_value=0, max_value=300),
       st.one_of(RATES, st.sampled_from([1e6, 1e9, 2e9, 1.0, 0.5, 0.25, 125e6, 3e6, 1e-3])),
       st.lists(st.integers(min_value=-10**13, max_value=10**13), max_size=6))
@settings(max_examples=400, deadline=None)
def test_rows_before_each_time_are_the_samples_sample_time_puts_before_it(
        origin, count, rate, offsets):
    """rows_before gives, for each time, the count of samples whose sample_time is before it, also on whole-ns periods."""
    times = [origin + offset for offset in offsets]
    times += [sample_time(origin, n, rate) + d for n in (0, count // 2, count) for d in (-1, 0, 1)]
    expected = [sum(1 for n in range(count) if sample_time(origin, n, rate) < time)
                for time in times]
    assert rows_before(origin, times, rate, count) == expected


def test_duration_and_half_sample_check():
    """duration_ns is unrounded; beyond_half_sample flags offsets over half a period, arrays too."""
    assert duration_ns(1, 3e6) == pytest.approx(333.3333333)
    assert duration_ns(1024, 7.8125e6) == 131_072.0
    assert not beyond_half_sample(500, 1e6) and beyond_half_sample(501, 1e6)
    assert beyond_half_sample(-501, 1e6)
    assert list(beyond_half_sample(np.array([-600.0, 0.0, 499.0, 700.0]), 1e6)) == [
        True, False, False, True]


def test_a_chunk_continues_a_stream_within_half_a_sample_and_records_only_exactly():
    """continues: a sampled chunk starting less than half a sample from the last end goes on (either side), one further is a gap or an overlap; records (rate 0) go on only exactly."""
    end = 1_000_000
    assert continues(end, end, 3e6) and continues(end, end, 0.0)
    assert continues(end, end + 166, 3e6) and continues(end, end - 166, 3e6)  # 333.3 ns a sample
    assert not continues(end, end + 167, 3e6) and not continues(end, end - 167, 3e6)
    assert continues(end, end + 1, 1e9 / 3) and not continues(end, end + 2, 1e9 / 3)
    assert not continues(end, end + 1, 0.0) and not continues(end, end - 1, 0.0)


def test_two_times_are_a_rounding_apart_only_where_a_period_is_fractional_ns():
    """rounding_apart: equal times, or 1 ns apart at 48e3/7, 3e6 or 1e9/3 Sa/s; never 2 ns; never 1 ns at whole-ns periods (1 MSa/s, 125 MSa/s)."""
    for rate in (48e3 / 7, 3e6, 1e9 / 3):
        assert rounding_apart(10, 10, rate) and rounding_apart(10, 11, rate)
        assert rounding_apart(11, 10, rate) and not rounding_apart(10, 12, rate)
    for rate in (1e6, 125e6):
        assert rounding_apart(10, 10, rate) and not rounding_apart(10, 11, rate)


@given(st.sampled_from([48e3 / 7, 3e6, 1e9 / 3, 1e6]), ORIGINS.filter(lambda o: abs(o) < 2**61),
       st.integers(min_value=0, max_value=2**30), st.integers(min_value=0, max_value=2**30))
def test_a_sample_timed_from_a_chunk_start_is_a_rounding_apart_from_it_timed_from_the_origin(
        rate, origin, first, offset):
    """The time of sample first + offset counted from a chunk that starts at sample first (itself rounded) is a rounding apart from it counted from the origin: what the synchroniser relies on."""
    start = sample_time(origin, first, rate)
    assert rounding_apart(sample_time(start, offset, rate),
                          sample_time(origin, first + offset, rate), rate)


@given(st.integers(min_value=-2**61, max_value=2**61), st.integers(min_value=0, max_value=2**40),
       st.floats(min_value=1e3, max_value=5e8))
@settings(max_examples=200, deadline=None)
def test_sample_times_gives_sample_times_integers_over_an_array(origin, first, rate):
    """sample_times over an array is sample_time for every index, as int64, even for large origins."""
    from pyrf_blocks.timebase import sample_times

    indexes = np.arange(first, first + 50)
    times = sample_times(origin, indexes, rate)
    assert times.dtype == np.int64
    assert times.tolist() == [sample_time(origin, int(i), rate) for i in indexes]
