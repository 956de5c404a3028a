"""
Decibels to linear ratios and back: the one place where ``10·log10`` and
``10**(x/10)`` are written (but for the compiled calibration to dBm,
:mod:`~pyrf_blocks.numerics.dbm_kernel`, whose logarithm is its own).

A level in dB is a power ratio ``10·log10(P/P₀)`` or an amplitude ratio
``20·log10(A/A₀)``.  dBm is dB relative to one milliwatt, so
:func:`db_to_power` of dBm is milliwatts and :func:`power_to_db` of
milliwatts is dBm; a level relative to a reference is ``level - reference``
in dB.

Precision follows the input: float32 arrays (spectra) are converted in
float32, other arrays (float64, integers) in float64, and a scalar gives a
float64 numpy scalar.  (The calibration of float32 spectra to dBm with
numba's kernels, :func:`~pyrf_blocks.numerics.spectral.power_to_dbm`,
does not come here: :func:`~pyrf_blocks.numerics.kernels.dbm_into`
computes ``10·log10(p) + offset`` in float64 and rounds it once to
float32, within 1 float32 step of the exact level, where
:func:`power_to_db` and ``+= offset`` round the logarithm, the product
and the sum to float32 in turn.)  float32 levels go through ``exp(x·ln10/10)``: on a
(64, 1024) block it took 37 µs in place against 253 µs for ``10**x`` (numpy
2.4, 2 cores, 2026-12), within 3e-6 relative (1e-5 dB, a float32 step at
-100 dBm) over ±150 dB.  Each function takes ``out=`` (which may be its
input) to convert in place on hot paths; scalars skip numpy's array
machinery, which costs microseconds per call.
"""

import math

import numpy as np

__all__ = ["db_to_power", "power_to_db", "db_to_amplitude", "amplitude_to_db"]

_LN10 = math.log(10.0)
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)

# An array pays two isinstance checks before its ufuncs and nothing else:
# power_to_dbm runs once per chunk of spectra, where a microsecond of Python
# is a few percent of the chain's time on 4 Ki-sample chunks.


def _is_scalar(values):
    # np.ndim alone costs a microsecond on a Python float.
    if isinstance(values, np.ndarray):
        return values.ndim == 0
    return isinstance(values, (float, int, np.generic)) or np.ndim(values) == 0


def _from_db(db, out, per_decade):
    # 10**(db/per_decade), the base shared by power (10) and amplitude (20).
    if not isinstance(db, np.ndarray) or not db.ndim:
        if out is None and _is_scalar(db):
            try:
                return np.float64(10.0 ** (float(db) / per_decade))
            except OverflowError:  # above about 3080 dB, as numpy's float64 does
                return np.float64(np.inf)
        db = np.asarray(db)
    if out is not None:
        dtype = out.dtype
    else:
        dtype = _FLOAT32 if db.dtype == _FLOAT32 else _FLOAT64
    if dtype == _FLOAT64:
        out = np.divide(db, per_decade, out=out, dtype=dtype)
        return np.power(10.0, out, out=out)
    out = np.multiply(db, _LN10 / per_decade, out=out, dtype=dtype)
    return np.exp(out, out=out)


def _to_db(ratio, out, per_decade, positive=False):
    if not isinstance(ratio, np.ndarray) or not ratio.ndim:
        if out is None and (isinstance(ratio, float) or _is_scalar(ratio)):
            ratio = float(ratio)
            if ratio > 0.0:
                return np.float64(per_decade * math.log10(ratio))
            if ratio == 0.0:
                return np.float64(-np.inf)  # the truth, without a warning
            return per_decade * np.log10(np.float64(ratio))  # NaN, and numpy warns
        ratio = np.asarray(ratio)
    if out is not None:
        dtype = out.dtype
    else:
        dtype = _FLOAT32 if ratio.dtype == _FLOAT32 else _FLOAT64
    if positive:  # nothing to warn of: no errstate (2 µs, more than a row's logarithm)
        out = np.log10(ratio, out=out, dtype=dtype)
    else:
        with np.errstate(divide="ignore"):  # zero is -inf dB: the truth
            out = np.log10(ratio, out=out, dtype=dtype)
    out *= per_decade
    return out


def db_to_power(db, out=None):
    """
    Power ratio of a level in decibels: ``10**(db/10)``.

    :param db: level(s) in dB (or dBm, giving milliwatts).
    :param out: optional float array to write into (may be ``db`` itself).
    :return: power ratio (or mW), in ``out`` if given; ``-inf`` dB gives 0.
    """
    return _from_db(db, out, 10.0)


def power_to_db(power, out=None, positive=False):
    """
    Level in decibels of a power ratio: ``10·log10(power)``.

    :param power: non-negative power ratio(s) (or mW, giving dBm).
    :param out: optional float array to write into (may be ``power`` itself).
    :param positive: the caller knows every power is > 0 and not NaN: the
        same result, without the numpy error state that keeps a zero from
        warning (it costs more than the logarithm of a 1024-bin row).
    :return: dB (or dBm), in ``out`` if given.  Zero power is ``-inf`` dB,
        without a warning; negative power is NaN (numpy warns: it is a
        caller's bug).
    """
    return _to_db(power, out, 10.0, positive)


def db_to_amplitude(db, out=None):
    """
    Amplitude ratio (voltage, full-scale fraction) of a level in decibels:
    ``10**(db/20)``.

    :param db: level(s) in dB; a tone at ``db`` dBFS has the amplitude
        ``db_to_amplitude(db)`` of full scale.
    :param out: optional float array to write into (may be ``db`` itself).
    :return: amplitude ratio, in ``out`` if given; ``-inf`` dB gives 0.
    """
    return _from_db(db, out, 20.0)


def amplitude_to_db(amplitude, out=None):
    """
    Level in decibels of an amplitude ratio: ``20·log10(amplitude)``.

    :param amplitude: non-negative amplitude ratio(s) (magnitudes).
    :param out: optional float array to write into (may be ``amplitude``).
    :return: dB, in ``out`` if given.  Zero amplitude is ``-inf`` dB,
        without a warning; a negative one is NaN (numpy warns).
    """
    return _to_db(amplitude, out, 20.0)
