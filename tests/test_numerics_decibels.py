"""
dB to power and amplitude ratios and back, against analytic values, and the
calibration and test signals built on them.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from pyrf_blocks.numerics.decibels import (
    amplitude_to_db, db_to_amplitude, db_to_power, power_to_db,
)
from pyrf_blocks.numerics.signals import amplitude_of, signal_samples, tone_samples
from pyrf_blocks.numerics.spectral import frame_spectra, power_to_dbm, window, window_gains

LEVELS = st.floats(-150.0, 150.0)


def test_three_decibels_is_a_power_ratio_of_1_995():
    """3 dB is a power ratio of 1.995, 10 dB of 10, -20 dB of 0.01 and 30 dBm is 1 W."""
    assert_allclose(db_to_power([3.0, 10.0, -20.0, 30.0]),
                    [1.9952623, 10.0, 0.01, 1000.0], rtol=1e-7)
    assert db_to_power(30.0) == 1000.0


def test_power_ratios_read_their_decibels():
    """Half the power is -3.0103 dB; 1 mW is 0 dBm, 1 W 30 dBm, 1 µW -30 dBm."""
    assert_allclose(power_to_db([0.5, 1.0, 1000.0, 1e-3]), [-3.0103, 0.0, 30.0, -30.0],
                    atol=1e-4)


def test_amplitude_ratios_are_twenty_log10():
    """-20 dB is an amplitude of 0.1 and twice the amplitude is +6.0206 dB."""
    assert_allclose(db_to_amplitude([-20.0, 0.0, 6.0206]), [0.1, 1.0, 2.0], rtol=1e-5)
    assert_allclose(amplitude_to_db([0.1, 1.0, 2.0]), [-20.0, 0.0, 6.0206], atol=1e-4)


def test_zero_power_is_minus_infinity_decibels_without_a_warning():
    """Zero power or amplitude reads -inf dB (no warning), and -inf dB is zero."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_array_equal(power_to_db(np.zeros(3, np.float32)), -np.inf)
        assert amplitude_to_db(0.0) == -np.inf
    assert db_to_power(-np.inf) == 0.0 and db_to_amplitude(-np.inf) == 0.0


def test_precision_follows_the_input():
    """float32 arrays stay float32; float64, integers and scalars give float64."""
    spectrum = np.array([10.0, 20.0], np.float32)
    for convert in (db_to_power, power_to_db, db_to_amplitude, amplitude_to_db):
        assert convert(spectrum).dtype == np.float32
        assert convert(spectrum.astype(np.float64)).dtype == np.float64
        assert convert(np.array([1, 2])).dtype == np.float64
        assert isinstance(convert(2.0), np.float64)


def test_out_converts_in_place():
    """With out= the result is written into the given array, which may be the input."""
    levels = np.array([-10.0, -30.0], np.float32)
    assert db_to_power(levels, out=levels) is levels
    assert_allclose(levels, [0.1, 0.001], rtol=3e-6)
    assert power_to_db(levels, out=levels) is levels
    assert_allclose(levels, [-10.0, -30.0], atol=1e-5)
    wide = np.empty(2)
    power_to_db(np.array([0.5, 2.0], np.float32), out=wide)
    assert_allclose(wide, [-3.0103, 3.0103], atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(st.lists(LEVELS, min_size=1, max_size=20))
def test_float32_conversions_match_float64_within_three_ppm(levels):
    """The float32 route is within 3e-6 of the float64 one over ±150 dB."""
    exact = np.asarray(levels, np.float32).astype(np.float64)
    assert_allclose(db_to_power(exact.astype(np.float32)), 10 ** (exact / 10), rtol=3e-6)
    assert_allclose(db_to_amplitude(exact.astype(np.float32)), 10 ** (exact / 20), rtol=3e-6)


@settings(max_examples=60, deadline=None)
@given(LEVELS)
def test_round_trips_return_the_level(level):
    """dB to power and back, and dB to amplitude and back, give the level again."""
    assert_allclose(power_to_db(db_to_power(level)), level, atol=1e-9)
    assert_allclose(amplitude_to_db(db_to_amplitude(level)), level, atol=1e-9)
    single = np.array([level], np.float32)
    assert_allclose(power_to_db(db_to_power(single)), single, atol=1e-4)


@pytest.mark.parametrize("level", [-20.0, -63.5])
def test_a_tone_reads_its_level_in_dbm(level):
    """A complex tone of amplitude_of(-20 dBm) reads -20 dBm on its bin after power_to_dbm."""
    size, reference = 1024, -10.0
    samples = tone_samples(0, size, 1024.0, 100.0, amplitude_of(level, reference))
    shifted = window("hann", size, shift=True)
    window_sum = window_gains("hann", size)[0] * size
    dbm = power_to_dbm(frame_spectra(samples[np.newaxis], shifted, True), window_sum,
                       reference)
    assert dbm.dtype == np.float32
    assert_allclose(dbm[0, size // 2 + 100], level, atol=1e-3)


def test_a_real_tone_reads_its_level_on_a_one_sided_spectrum():
    """A real cosine of -20 dBm reads -20 dBm once its one-sided bin is doubled."""
    size = 480
    samples = tone_samples(0, size, 480.0, 30.0, amplitude_of(-20.0, 0.0), complex_output=False)
    plain = window("boxcar", size)
    dbm = power_to_dbm(frame_spectra(samples[np.newaxis], plain, False), float(size), 0.0,
                       real_fft_size=size)
    assert_allclose(dbm[0, 30], -20.0, atol=1e-3)


def test_a_bin_of_zero_power_is_minus_infinity_dbm():
    """power_to_dbm of zero power is -inf dBm, without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dbm = power_to_dbm(np.zeros((1, 4), np.float32), 512.0, 0.0)
    assert_array_equal(dbm, -np.inf)


def test_noise_floor_sets_the_noise_power():
    """Noise of -100 dBm/Hz over 1 MHz is -40 dBm: a mean power of 1e-4 full scale²."""
    rng = np.random.default_rng(0)
    samples = signal_samples(0, 400_000, 1e6, [], noise_floor=-100.0, rng=rng)
    assert_allclose(np.mean(np.abs(samples) ** 2), 1e-4, rtol=0.01)
