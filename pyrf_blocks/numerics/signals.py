"""
Analytic test signals: tones, harmonics and noise, relative to full scale.
"""

import numpy as np

__all__ = ["amplitude_of", "tone_samples", "noise_samples"]


def amplitude_of(level_dbm, reference_level):
    """
    Amplitude (relative to full scale) of a tone of ``level_dbm`` when a
    full-scale tone is ``reference_level`` dBm.
    """
    return 10.0 ** ((level_dbm - reference_level) / 20.0)


def tone_samples(first_index, count, rate, frequency, amplitude, phase=0.0,
                 complex_output=True):
    """
    Samples ``first_index .. first_index+count-1`` of a tone.

    The phase is computed from the absolute sample index, so consecutive
    calls join without a seam.  Complex: ``A·exp(j(2πfn/rate + φ))``; real:
    ``A·cos(...)``.  Returns complex64 or float32.
    """
    # Reduce the cycle count modulo 1 in float64 before scaling to radians,
    # so the phase stays exact for very large indices.
    n = np.arange(first_index, first_index + count, dtype=np.float64)
    cycles = np.mod(n * (frequency / rate), 1.0)
    angle = 2.0 * np.pi * cycles + phase
    if complex_output:
        return (amplitude * np.exp(1j * angle)).astype(np.complex64)
    return (amplitude * np.cos(angle)).astype(np.float32)


def noise_samples(rng, count, power, complex_output=True):
    """
    White Gaussian noise of total ``power`` (full scale²).
    """
    if complex_output:
        scale = np.sqrt(power / 2.0)
        values = rng.standard_normal(2 * count, dtype=np.float32) * np.float32(scale)
        return values.view(np.complex64)
    return (rng.standard_normal(count, dtype=np.float32)
            * np.float32(np.sqrt(power)))
