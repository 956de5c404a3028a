"""
Peak search lists what a bench analyzer's peak table lists: peaks that rise
``excursion`` dB above the valleys on both sides and reach ``threshold``,
never noise, at frequencies interpolated between bins.
"""

import numpy as np
import pytest
import scipy.signal

from pyrf_blocks.numerics.decibels import power_to_db
from pyrf_blocks.numerics.peaks import find_peaks, peak_bins, peak_frequency
from pyrf_blocks.numerics.signals import noise_samples, tone_samples

SIZE = 1024


def spectrum_db(samples, window):
    """Levels in dB of one windowed FFT frame, a full-scale tone reading 0 dB."""
    taper = scipy.signal.get_window(window, SIZE)
    spectrum = np.fft.fftshift(np.fft.fft(samples[:SIZE] * taper)) / taper.sum()
    return power_to_db(np.abs(spectrum) ** 2 + 1e-30)


@pytest.mark.parametrize("window", ["hann", "flattop", "blackmanharris"])
@pytest.mark.parametrize("fraction", [0.0, 0.13, 0.5, 0.77])
def test_interpolated_frequency_of_a_tone_between_bins(window, fraction):
    """A tone at bin 300 + fraction reads within 0.01 bin of its frequency, where the bin alone is up to 0.5 off."""
    cycles = 300 - SIZE // 2 + fraction
    levels = spectrum_db(tone_samples(0, SIZE, SIZE, cycles, 1.0), window)
    table = find_peaks(levels, start_frequency=-SIZE // 2, bin_width=1.0, count=1)
    assert table[0, 0] == pytest.approx(cycles, abs=0.01)
    assert table[0, 1] == pytest.approx(0.0, abs=1.5)


def test_noise_is_not_listed_as_peaks():
    """Live flat-top spectra of noise alone list no peak; with a -40 dB tone, the tone alone."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        noise = noise_samples(rng, SIZE, 1e-8)
        assert len(find_peaks(spectrum_db(noise, "flattop"), 0.0, 1.0, count=5)) == 0
        tone = tone_samples(0, SIZE, SIZE, 100.25, 0.01) + noise
        table = find_peaks(spectrum_db(tone, "flattop"), 0.0, 1.0, count=5)
        assert len(table) == 1 and table[0, 0] == pytest.approx(612.25, abs=0.05)


def test_excursion_and_threshold():
    """A bump 3 dB over its valley is no peak at 6 dB excursion; one 10 dB over is; the threshold cuts weak ones."""
    levels = np.full(100, -100.0)
    levels[20:23] = [-30.0, -20.0, -26.0]      # a tone
    levels[23:27] = [-26.0, -25.0, -23.0, -27.0]  # a shoulder 3 dB above the valley (-26)
    levels[60:63] = [-80.0, -70.0, -80.0]      # a weak tone, 30 dB above the floor
    assert list(peak_bins(levels)) == [21, 61]
    assert list(peak_bins(levels, excursion=0.0)) == [21, 25, 61]
    assert list(peak_bins(levels, threshold=-60.0)) == [21]
    assert list(peak_bins(levels, excursion=40.0)) == [21]


def test_peaks_at_the_edges_and_nan_bins():
    """A peak in the first or last bin is found; NaN bins are never peaks."""
    levels = np.full(50, -100.0)
    levels[0], levels[49], levels[10] = -10.0, -20.0, np.nan
    assert list(peak_bins(levels)) == [0, 49]
    assert peak_frequency(levels, 0, 5.0, 2.0) == 5.0
