"""
Total harmonic distortion.
"""

import numpy as np

from .spectral import window

__all__ = ["thd", "harmonic_powers"]

#: Blackman-Harris leaks less than -92 dB beyond its main lobe of ±4 bins,
#: so summing the power over the lobe measures a tone wherever it falls.
_WINDOW = "blackmanharris"
_LOBE = 4


def harmonic_powers(samples, harmonics=5, fundamental_bin=None):
    """
    Power of the fundamental and of each harmonic of ``samples``.

    Each power is the sum of ``|X|²`` over the window's main lobe around the
    expected bin, so tones between bins are measured as accurately as tones
    on a bin.  Harmonics above the Nyquist frequency alias back, as they do
    in the sampled signal.

    :param samples: 1-D real or complex array.
    :param harmonics: highest harmonic order considered (2 = second...).
    :param fundamental_bin: bin of the fundamental (float); found as the
        strongest non-DC bin when omitted.
    :return: ``(fundamental_bin, powers)``, ``powers[0]`` the fundamental's
        and ``powers[k-1]`` the k-th harmonic's, in relative units.
    """
    samples = np.asarray(samples)
    size = len(samples)
    if size < 16 * _LOBE:
        raise ValueError(f"THD needs at least {16 * _LOBE} samples, got {size}")
    if harmonics < 2:
        raise ValueError(f"harmonics must be at least 2, got {harmonics}")
    import scipy.fft  # imported when first needed (see spectral.frame_spectra)

    weighted = samples * window(_WINDOW, size)
    if np.iscomplexobj(samples):
        power = np.abs(scipy.fft.fft(weighted)) ** 2
    else:
        power = np.abs(scipy.fft.rfft(weighted)) ** 2
    if fundamental_bin is None:
        search = power.copy()
        search[:_LOBE + 1] = 0
        if np.iscomplexobj(samples):
            search[-_LOBE:] = 0
        peak = int(np.argmax(search))
        lobe = power[peak - 1:peak + 2]
        # Centroid of the three top bins refines the fundamental's position.
        fundamental_bin = peak + float(np.dot(lobe, [-1, 0, 1]) / lobe.sum())
    powers = np.array([_lobe_power(power, order * fundamental_bin, size,
                                   np.iscomplexobj(samples))
                       for order in range(1, harmonics + 1)])
    return fundamental_bin, powers


def _lobe_power(power, position, size, complex_input):
    if complex_input:
        centre = int(round(position)) % size
        bins = np.arange(centre - _LOBE, centre + _LOBE + 1) % size
    else:
        position = position % size
        if position > size / 2:
            position = size - position
        centre = int(round(position))
        bins = np.arange(centre - _LOBE, centre + _LOBE + 1)
        bins = np.abs(bins)
        bins = np.where(bins > len(power) - 1, 2 * (len(power) - 1) - bins, bins)
    return float(power[np.unique(bins)].sum())


def thd(samples, harmonics=5, fundamental_bin=None):
    """
    THD of ``samples``, in percent: the RMS of harmonics 2..``harmonics``
    relative to the fundamental's.  A signal with 3 % third and 4 % fifth
    harmonics reads 5 %.
    """
    _, powers = harmonic_powers(samples, harmonics, fundamental_bin)
    return 100.0 * float(np.sqrt(powers[1:].sum() / powers[0]))
