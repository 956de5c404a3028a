"""
Holds and averages over rows of spectra, against analytic values, and their
independence from how the rows were cut.
"""

import numpy as np
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from pyrf_blocks.numerics.decibels import db_to_power, power_to_db
from pyrf_blocks.numerics.holds import block_means, running_extreme, running_mean

ROWS = np.random.default_rng(7).uniform(-90.0, -10.0, (41, 6)).astype(np.float32)

#: Where to cut ROWS: any positions, repeated or not, so pieces may be empty.
CUTS = st.lists(st.integers(0, len(ROWS)), max_size=12).map(sorted)


def pieces(rows, cuts):
    """`rows` cut at the given positions (empty pieces included)."""
    return np.split(rows, cuts)


def reference_running_mean(power, count):
    """The running mean, one row at a time: the definition."""
    mean = None
    for seen, row in enumerate(power.astype(np.float64)):
        if mean is None:
            mean = row.copy()
        else:
            mean += (row - mean) / min(seen + 1, count)
    return mean


def test_running_extreme_holds_the_maximum_or_minimum_of_every_bin():
    """The max hold is the per-bin maximum of the hold and the rows; min likewise."""
    rows = np.array([[1.0, 5.0], [3.0, 2.0]], np.float32)
    assert_array_equal(running_extreme(rows), [3.0, 5.0])
    assert_array_equal(running_extreme(rows, np.array([0.0, 9.0], np.float32)), [3.0, 9.0])
    assert_array_equal(running_extreme(rows, None, np.minimum), [1.0, 2.0])
    assert_array_equal(running_extreme(rows, np.array([2.0, 0.0]), np.minimum), [1.0, 0.0])


def test_running_extreme_leaves_its_arguments_alone():
    """The hold returned is a new array; the old hold and the rows are not written."""
    rows = ROWS[:4].copy()
    held = np.full(6, -50.0, np.float32)
    new = running_extreme(rows, held)
    assert new is not held and new.dtype == np.float32
    assert_array_equal(held, -50.0)
    assert_array_equal(rows, ROWS[:4])
    assert running_extreme(rows[:0], held) is held and running_extreme(rows[:0]) is None
    one = running_extreme(rows[:1], held)  # (one row: combined without a copy)
    assert one is not held and one.dtype == np.float32
    assert_array_equal(one, np.maximum(ROWS[0], -50.0))
    assert_array_equal(held, -50.0)
    assert running_extreme(rows[:1], held.astype(np.float64)).dtype == np.float32


def test_fmax_hold_ignores_missing_bins():
    """With numpy.fmax as the combination a NaN bin does not wipe the hold."""
    rows = np.array([[np.nan, 1.0], [2.0, np.nan]])
    assert_array_equal(running_extreme(rows, np.array([0.0, 3.0]), np.fmax), [2.0, 3.0])


@settings(max_examples=60, deadline=None)
@given(CUTS)
def test_running_extreme_does_not_depend_on_chunking(cuts):
    """Fed piece by piece, the hold after each piece is the extreme of every row so far."""
    for combine, accumulate in ((np.maximum, np.maximum.accumulate),
                                (np.minimum, np.minimum.accumulate)):
        expected = accumulate(ROWS, axis=0)
        held, seen = None, 0
        for piece in pieces(ROWS, cuts):
            held = running_extreme(piece, held, combine)
            seen += len(piece)
            if seen:
                assert_array_equal(held, expected[seen - 1])
        assert_array_equal(held, expected[-1])


def test_mean_of_minus_10_and_minus_20_dbm_is_minus_12_596_dbm():
    """The mean of -10 and -20 dBm taken as power is -12.596 dBm, not -15 dBm."""
    means, total, seen = block_means(db_to_power(np.array([[-10.0], [-20.0]])), 2)
    assert_allclose(power_to_db(means), [[-12.596]], atol=1e-3)
    assert total is None and seen == 0


def test_mean_of_noise_is_taken_as_power():
    """Exponentially distributed noise power reads its true mean; a dB mean reads 2.51 dB low."""
    power = np.random.default_rng(1).exponential(1.0, (200_000, 1)).astype(np.float32)
    means, _, _ = block_means(power, len(power))
    assert_allclose(power_to_db(means), [[0.0]], atol=0.02)
    # The mean of 10·log10 of exponential noise is -10·γ/ln 10 (γ: Euler's constant).
    assert_allclose(np.mean(power_to_db(power)), -10 * np.euler_gamma / np.log(10), atol=0.02)


def test_block_means_carry_a_partial_block_over():
    """Rows left over are summed into the state and complete the next call's first block."""
    means, total, seen = block_means(np.array([[1.0], [2.0], [3.0], [4.0], [5.0]]), 3)
    assert_allclose(means, [[2.0]])
    assert_allclose(total, [9.0])
    assert seen == 2
    means, total, seen = block_means(np.array([[6.0], [7.0]]), 3, total, seen)
    assert_allclose(means, [[5.0]])
    assert_allclose(total, [7.0])
    assert seen == 1
    means, total, seen = block_means(np.empty((0, 1)), 3, total, seen)
    assert means.shape == (0, 1) and seen == 1


def test_block_means_leave_their_arguments_alone():
    """The carried sum passed in is not written; a new one is returned."""
    total = np.array([1.0, 2.0])
    _, new, seen = block_means(np.ones((1, 2)), 3, total, 1)
    assert_array_equal(total, [1.0, 2.0])
    assert_allclose(new, [2.0, 3.0])
    assert seen == 2


@settings(max_examples=60, deadline=None)
@given(CUTS, st.integers(1, 9))
def test_block_means_do_not_depend_on_chunking(cuts, count):
    """Means of every `count` rows are the same however the rows were cut."""
    power = db_to_power(ROWS)
    blocks = len(power) // count
    expected = power[:blocks * count].astype(np.float64).reshape(blocks, count, 6).mean(axis=1)
    found, total, seen = [], None, 0
    for piece in pieces(power, cuts):
        means, total, seen = block_means(piece, count, total, seen)
        found.append(means)
    assert_allclose(np.concatenate(found), expected, rtol=1e-12)
    assert seen == len(power) % count
    assert_allclose(0.0 if total is None else total,
                    power[blocks * count:].sum(axis=0, dtype=np.float64), rtol=1e-12)


def test_running_mean_is_a_true_mean_until_count_rows():
    """The first `count` rows are averaged with equal weights."""
    mean, seen = running_mean(np.array([[1.0], [2.0], [6.0]]), 4)
    assert_allclose(mean, [3.0])
    assert seen == 3


def test_running_mean_then_moves_by_one_over_count_of_each_step():
    """After `count` rows a new row moves the mean by 1/count of the difference."""
    mean, seen = running_mean(np.full((4, 2), 1.0), 4)
    mean, seen = running_mean(np.array([[5.0, 1.0]]), 4, mean, seen)
    assert_allclose(mean, [2.0, 1.0])
    assert seen == 5
    mean, seen = running_mean(np.array([[5.0, 1.0], [5.0, 1.0]]), 4, mean, seen)
    assert_allclose(mean, [5.0 - 4.0 * 0.75 ** 3, 1.0])
    assert seen == 7


def test_running_mean_leaves_its_arguments_alone():
    """The mean passed in is not written; no rows return it unchanged."""
    before = np.array([2.0])
    mean, seen = running_mean(np.array([[4.0], [4.0]]), 2, before, 5)
    assert_array_equal(before, [2.0])
    assert_allclose(mean, [3.5])
    assert seen == 7
    assert running_mean(np.empty((0, 1)), 2, before, 5) == (before, 5)


@settings(max_examples=60, deadline=None)
@given(CUTS, st.integers(1, 12))
def test_running_mean_does_not_depend_on_chunking(cuts, count):
    """The running mean is the one-row-at-a-time definition however the rows were cut."""
    power = db_to_power(ROWS)
    mean, seen = None, 0
    for piece in pieces(power, cuts):
        mean, seen = running_mean(piece, count, mean, seen)
    assert seen == len(power)
    assert_allclose(mean, reference_running_mean(power, count), rtol=1e-9)
