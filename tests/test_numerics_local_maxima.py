"""
The peak table selects peaks as ``scipy.signal.find_peaks`` does, by
height, distance and prominence, without importing scipy.signal: the same
indices on signals full of plateaus, ties and NaN, and the demo's process
loads no scipy.signal.
"""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from pyrf_blocks.numerics import local_maxima
from pyrf_blocks.numerics.local_maxima import find_peaks
from pyrf_blocks.testing import modules_loaded

# Few distinct levels: runs of equal samples (plateaus), equal peaks
# (ties for the distance rule) and equal valleys are common.
levels = st.sampled_from([-3.0, -1.0, 0.0, -0.0, 0.5, 1.0, 2.0, 7.0])
signals = st.lists(st.one_of(levels, st.floats(-50, 50)), max_size=300).map(np.array)
conditions = st.fixed_dictionaries({
    "height": st.none() | st.floats(-5, 8, allow_nan=False),
    "distance": st.none() | st.integers(1, 40) | st.floats(1, 40),
    "prominence": st.none() | st.floats(0, 10),
})


def scipys(x, **given):
    return scipy.signal.find_peaks(x, **given)[0]


@settings(max_examples=600, deadline=None)
@given(signals, conditions)
def test_the_same_peaks_as_scipy(x, given):
    """Any signal and any mix of height, distance and prominence give scipy's indices, in order."""
    assert_array_equal(find_peaks(x, **given), scipys(x, **given), strict=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, np.nan]), max_size=60).map(np.array),
       conditions)
def test_nan_samples_end_a_peak_and_its_bases_as_in_scipy(x, given):
    """A NaN sample is no peak, no neighbour of one, and stops the search for a base, as in scipy."""
    assert_array_equal(find_peaks(x, **given), scipys(x, **given), strict=True)


def test_plateaus_and_edges():
    """A plateau's peak is its middle (rounded down); a run touching either end is no peak."""
    x = np.array([3, 3, 1, 2, 2, 2, 2, 1, 4, 4, 4, 0, 5, 5])
    assert_array_equal(find_peaks(x), [4, 9])
    assert_array_equal(find_peaks(x, height=3), [9])
    assert len(find_peaks([1.0, 2.0])) == 0


def test_distance_keeps_the_higher_peak_and_prominence_measures_from_the_higher_base():
    """Of two peaks closer than the distance the higher stays; prominence is measured to the higher base."""
    x = np.array([0, 5, 0, 6, 0, 0, 0, 0, 2, 1, 3, 0])
    assert_array_equal(find_peaks(x, distance=3), [3, 10])  # 8 (2) and 10 (3): the higher stays
    assert_array_equal(find_peaks(x, distance=3), scipys(x, distance=3))
    # 8 rises 2 above its left base (0) but 1 above its right one (1, at 9): prominence 1
    assert_array_equal(find_peaks(x, prominence=1), [1, 3, 8, 10])
    assert_array_equal(find_peaks(x, prominence=1.01), [1, 3, 10])


def test_equal_peaks_closer_than_the_distance_are_settled_in_scipys_order():
    """Hundreds of equal peaks, 2 apart: which survive a distance depends on numpy's argsort of ties, as in scipy."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = np.zeros(1001)
        x[1:-1:2] = rng.choice([1.0, 2.0], size=500)
        for distance in (3, 4, 5, 9):
            assert_array_equal(find_peaks(x, distance=distance), scipys(x, distance=distance),
                               strict=True)


@pytest.mark.parametrize("bad", [{"distance": 0.5}, {"distance": 0}])
def test_a_distance_below_one_is_refused(bad):
    with pytest.raises(ValueError, match="distance must be at least 1"):
        find_peaks([0.0, 1.0, 0.0], **bad)


def test_a_signal_of_more_than_one_dimension_is_refused():
    with pytest.raises(ValueError, match="1-D signal"):
        find_peaks(np.zeros((3, 3)))


@pytest.mark.parametrize("most_here", [local_maxima.MOST_PEAKS_HERE, 10**9])
def test_a_large_noisy_spectrum_gives_scipys_peaks(most_here, monkeypatch):
    """64 Ki bins of noise with tones, as a long FFT's spectrum: the same peaks with each condition, thousands of peaks settled here too."""
    monkeypatch.setattr(local_maxima, "MOST_PEAKS_HERE", most_here)
    rng = np.random.default_rng(7)
    x = 10 * np.log10(rng.exponential(size=65536))
    x[[100, 30000, 65000]] += [40, 30, 20]
    for given in ({}, {"height": 5.0}, {"distance": 50}, {"prominence": 6.0},
                  {"height": 0.0, "distance": 7, "prominence": 3.0}):
        assert_array_equal(find_peaks(x, **given), scipys(x, **given), strict=True)


def test_the_demo_loads_no_scipy_signal():
    """The demo's peak table no longer imports scipy.signal (0.9-1.5 s of each run's CPU)."""
    code = ("import contextlib, io, sys\n"
            "from pyrf_blocks.cli import main\n"
            "sys.argv = ['pyrf-blocks', 'demo', '--duration', '0.2']\n"
            "printed = io.StringIO()\n"
            "with contextlib.redirect_stdout(printed):\n"
            "    try:\n"
            "        main()\n"
            "    except SystemExit as end:\n"
            "        assert not end.code, end.code\n"
            "assert 'peaks after' in printed.getvalue(), printed.getvalue()\n")
    assert modules_loaded(code, ("scipy.signal",), timeout=120) == []
