"""
The display's traces and markers, without Qt: averages in power, holds,
waterfall rows, re-chunking, peak search and next peak.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from pyrf_blocks.chunk import Chunk
from pyrf_blocks.gui.markers import Marker, delta
from pyrf_blocks.gui.traces import TRACE_NAMES, SpectrumTraces
from pyrf_blocks.testing import split_array

META = {"units": "dBm", "start_frequency": 100e6, "bin_width": 1e3}


def chunk_of(rows, meta=META, seq=0):
    rows = np.asarray(rows, np.float32)
    return Chunk("spectrum", rows, seq * 1000, seq * 1000 + len(rows) * 10, 1e8, seq, meta)


def noisy(count=40, bins=64, seed=0):
    rng = np.random.default_rng(seed)
    return (-90.0 + 5.0 * rng.standard_normal((count, bins))).astype(np.float32)


def test_live_and_holds_follow_the_rows():
    """Live is the newest row; max and min holds are the extremes of every row seen."""
    rows = noisy(10)
    traces = SpectrumTraces()
    traces.update(chunk_of(rows[:4]))
    traces.update(chunk_of(rows[4:], seq=1))
    assert_array_equal(traces.live, rows[-1])
    assert_array_equal(traces.max_hold, rows.max(axis=0))
    assert_array_equal(traces.min_hold, rows.min(axis=0))
    assert traces.spectra == 10
    assert_allclose(traces.frequencies[[0, 63]], [100e6, 100e6 + 63e3])


def test_average_is_the_mean_power_not_the_mean_of_decibels():
    """Two spectra at -10 and -20 dBm average to 10·log10((0.1 + 0.01) / 2) mW."""
    traces = SpectrumTraces(average=2)
    traces.update(chunk_of([[-10.0, -30.0], [-20.0, -30.0]]))
    assert_allclose(traces.average, [10 * np.log10(0.055), -30.0], atol=1e-4)


def test_average_becomes_exponential_with_weight_one_over_count():
    """After ``average`` spectra each new one moves the mean power by 1/average of the step."""
    traces = SpectrumTraces(average=4)
    traces.update(chunk_of(np.full((4, 3), -30.0)))
    traces.update(chunk_of(np.full((1, 3), -20.0), seq=1))
    expected = 0.001 + (0.01 - 0.001) / 4
    assert_allclose(traces.average, 10 * np.log10(expected), atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=8))
def test_traces_do_not_depend_on_chunking(sizes):
    """Holds, average and live trace are the same however the spectra are cut into chunks."""
    rows = noisy(40, 16, seed=3)
    whole = SpectrumTraces(average=7)
    whole.update(chunk_of(rows))
    pieces = SpectrumTraces(average=7)
    for seq, piece in enumerate(split_array(rows, sizes)):
        pieces.update(chunk_of(piece, seq=seq))
    for name in TRACE_NAMES:
        assert_allclose(pieces.trace(name), whole.trace(name), atol=1e-3, err_msg=name)


def test_waterfall_rows_hold_the_peak_since_the_last_row_oldest_first():
    """Each committed row is the per-bin maximum of the spectra since the previous one."""
    traces = SpectrumTraces(waterfall_rows=3)
    assert traces.waterfall() is None
    assert not traces.commit_row()
    batches = [noisy(3, 8, seed=s) for s in range(5)]
    for seq, batch in enumerate(batches):
        traces.update(chunk_of(batch, seq=seq))
        assert traces.commit_row()
    assert traces.rows_added == 5
    waterfall = traces.waterfall()
    assert waterfall.shape == (3, 8)
    assert_array_equal(waterfall, [b.max(axis=0) for b in batches[2:]])
    assert not traces.commit_row()  # nothing new arrived


def test_unfilled_waterfall_rows_are_nan():
    """Before the waterfall is full, its older rows are NaN (drawn as the floor colour)."""
    traces = SpectrumTraces(waterfall_rows=4)
    traces.update(chunk_of(noisy(1, 5)))
    traces.commit_row()
    waterfall = traces.waterfall()
    assert np.isnan(waterfall[:3]).all() and np.isfinite(waterfall[3]).all()


def test_a_new_frequency_axis_starts_every_trace_afresh():
    """Another centre frequency restarts holds, average and waterfall."""
    traces = SpectrumTraces()
    traces.update(chunk_of(np.full((2, 4), -10.0)))
    traces.commit_row()
    moved = dict(META, start_frequency=200e6)
    traces.update(chunk_of(np.full((1, 4), -50.0), meta=moved, seq=1))
    assert_array_equal(traces.max_hold, np.full(4, -50.0))
    assert traces.rows_added == 0 and traces.spectra == 1
    assert traces.frequencies[0] == 200e6


def test_restart_clears_average_and_holds_only():
    """restart() forgets average and holds but keeps the live trace and the waterfall."""
    traces = SpectrumTraces()
    traces.update(chunk_of(noisy(3, 4)))
    traces.commit_row()
    traces.restart()
    assert traces.max_hold is None and traces.min_hold is None and traces.average is None
    assert traces.live is not None and traces.rows_added == 1
    traces.update(chunk_of(np.full((1, 4), -70.0), seq=1))
    assert_array_equal(traces.max_hold, np.full(4, -70.0))


def test_bad_parameters_name_the_value():
    """A non-positive average or waterfall size is refused with the value in the message."""
    with pytest.raises(ValueError, match="average must be a positive integer, got 0"):
        SpectrumTraces(average=0)
    with pytest.raises(ValueError, match="waterfall_rows .* got -1"):
        SpectrumTraces(waterfall_rows=-1)
    with pytest.raises(ValueError, match="unknown trace 'peak'"):
        SpectrumTraces().trace("peak")


def spectrum_with_peaks(bins=200, floor=-100.0, peaks=((50, -20.0), (120, -40.0), (170, -60.0))):
    levels = np.full(bins, floor, np.float32)
    for index, level in peaks:
        levels[index] = level
    return levels


def test_peak_search_finds_the_highest_bin():
    """Peak puts the marker on the strongest bin."""
    marker = Marker()
    assert marker.peak(spectrum_with_peaks()) == 50


def test_next_peak_walks_down_the_peaks_then_stays():
    """Next peak goes to each lower peak in turn and stays on the last."""
    levels = spectrum_with_peaks()
    marker = Marker()
    marker.peak(levels)
    assert marker.next_peak(levels) == 120
    assert marker.next_peak(levels) == 170
    assert marker.next_peak(levels) is None
    assert marker.bin == 170


def test_next_peak_from_a_bin_that_is_not_a_peak():
    """From a flank, next peak goes to the highest peak below the marker's level."""
    levels = spectrum_with_peaks()
    levels[100] = -30.0
    levels[101] = -31.0  # a flank next to the -30 dBm peak at bin 100
    marker = Marker()
    marker.bin = 101
    assert marker.next_peak(levels) == 120


def test_delta_reads_frequency_and_level_differences():
    """The delta readout is marker 2 minus marker 1 in Hz and dB; None until both are placed."""
    levels = spectrum_with_peaks()
    frequencies = 1e9 + 1e3 * np.arange(len(levels))
    first, second = Marker(), Marker()
    assert delta(first, second, frequencies, levels) is None
    first.peak(levels)
    second.bin = 120
    assert_allclose(delta(first, second, frequencies, levels), (70e3, -20.0))
    assert first.reading(frequencies, levels) == (1e9 + 50e3, -20.0)
