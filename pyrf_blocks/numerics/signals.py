"""
Analytic test signals: tones, harmonics and noise, relative to full scale.
"""

import functools

import numpy as np

from .decibels import db_to_amplitude, db_to_power

__all__ = ["amplitude_of", "in_band", "tone_samples", "noise_samples", "signal_samples"]


def amplitude_of(level_dbm, reference_level):
    """
    Amplitude (relative to full scale) of a tone of ``level_dbm`` when a
    full-scale tone is ``reference_level`` dBm.
    """
    return db_to_amplitude(level_dbm - reference_level)


@functools.lru_cache(maxsize=32)
def _phasors(count, cycles_per_sample):
    # exp(j·2π·f·n/rate) for n in 0..count-1, computed once per tone and
    # chunk length: each chunk then costs one multiply by its start phase.
    n = np.arange(count, dtype=np.float64)
    table = np.exp(2j * np.pi * np.mod(n * cycles_per_sample, 1.0)).astype(np.complex64)
    table.flags.writeable = False
    return table


def in_band(offset_hz, rate):
    """
    Whether a component ``offset_hz`` from the centre reaches the samples of
    a receiver sampling complex IQ at ``rate`` (Hz).

    A real analyzer's anti-alias filter removes what lies outside the
    Nyquist band ``-rate/2 <= offset < rate/2``; without it a tone outside
    the span would fold into it at ``offset - k·rate`` as a phantom.  The
    simulated instrument and the emulator both apply this rule.
    """
    return -rate / 2.0 <= offset_hz < rate / 2.0


def tone_samples(first_index, count, rate, frequency, amplitude, phase=0.0,
                 complex_output=True):
    """
    Samples ``first_index .. first_index+count-1`` of a tone.

    The phase is computed from the absolute sample index, so consecutive
    calls join without a seam.  Complex: ``A·exp(j(2πfn/rate + φ))``; real:
    ``A·cos(...)``.  Returns complex64 or float32.
    """
    cycles_per_sample = frequency / rate
    # The start phase is reduced modulo one cycle in exact integer-times-
    # float arithmetic first, so it stays accurate for very large indices.
    start_cycles = np.mod(first_index * cycles_per_sample, 1.0)
    start = amplitude * np.exp(1j * (2.0 * np.pi * start_cycles + phase))
    samples = _phasors(int(count), cycles_per_sample) * np.complex64(start)
    if complex_output:
        return samples
    return samples.real.copy()


def noise_samples(rng, count, power, complex_output=True):
    """
    White Gaussian noise of total ``power`` (full scale²).

    Complex noise is circular Gaussian, made in polar form (Box and Muller,
    1958): its magnitude ``sqrt(-power·ln u)`` from a float64 uniform ``u``
    in ``(0, 1]`` and its phase ``2πv`` from a float32 uniform ``v``.  That
    is exactly the Gaussian's law (each of I and Q has variance
    ``power/2``, independent of the other; the magnitude's tail reaches
    8.6 σ), and costs about half of ``rng.standard_normal``'s ziggurat in
    float32, which spends about 9 ns per value.  The simulated instrument
    makes its noise here, so this is most of its cost.  Real noise is
    ``rng.standard_normal`` scaled.
    """
    if not complex_output:
        return (rng.standard_normal(count, dtype=np.float32)
                * np.float32(np.sqrt(power)))
    count = int(count)
    samples = np.empty(count, np.complex64)
    _complex_noise_into(rng, samples, power)
    return samples


def _complex_noise_into(rng, out, power):
    # |z|² = -power·ln u with u uniform in (0, 1]: exponential of mean
    # ``power``, as the sum of two squared Gaussians of variance power/2.
    # u in float64 (53 bits) keeps the tail; after the log float32 is
    # enough.  The phase is uniform and independent of the magnitude.
    count = len(out)
    magnitude = rng.random(count)
    np.subtract(1.0, magnitude, out=magnitude)
    np.log(magnitude, out=magnitude)
    magnitude = magnitude.astype(np.float32)
    magnitude *= np.float32(-power)
    np.sqrt(magnitude, out=magnitude)
    phase = rng.random(count, dtype=np.float32)
    phase *= np.float32(2.0 * np.pi)
    parts = out.view(np.float32)
    re, im = parts[0::2], parts[1::2]
    np.cos(phase, out=re)
    re *= magnitude
    np.sin(phase, out=im)
    im *= magnitude


def signal_samples(first_index, count, rate, tones, harmonics=(), noise_floor=None,
                   reference_level=0.0, rng=None, out=None):
    """
    Samples ``first_index .. first_index+count-1`` of an instrument's input:
    tones, harmonics of the first tone and white noise, as complex64
    fractions of full scale.  Components outside the Nyquist band
    (:func:`in_band`) are left out, as a receiver's anti-alias filter
    would remove them.

    :param tones: ``[(offset_hz, level_dbm), ...]`` relative to the centre.
    :param harmonics: ``[(order, level_dbc), ...]`` of the first tone, at
        ``order × offset``.
    :param noise_floor: noise density, dBm/Hz (``None``: no noise; then
        ``rng`` may be ``None``).
    :param reference_level: dBm of a full-scale tone.
    :param out: complex64 array of ``count`` samples to write them into
        (a new one by default); returned.
    """
    parts = [(offset, amplitude_of(level, reference_level), 0.0) for offset, level in tones]
    if parts and harmonics:
        offset, level = tones[0]
        parts += [(order * offset, amplitude_of(level + dbc, reference_level), 0.5 * order)
                  for order, dbc in harmonics]
    # The noise is made in the output array and the tones added to it in
    # place: no array of zeros, no second pass for the noise.
    samples = np.empty(count, np.complex64) if out is None else out
    if noise_floor is not None:
        power = db_to_power(noise_floor - reference_level) * rate
        _complex_noise_into(rng, samples, power)
    else:
        samples[:] = 0
    for frequency, amplitude, phase in parts:
        if not in_band(frequency, rate):
            continue
        samples += tone_samples(first_index, count, rate, frequency, amplitude, phase)
    return samples
