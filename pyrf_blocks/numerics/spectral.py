"""
Windowed FFT spectra and their calibration to dBm.

Conventions: samples are relative to full scale, and the instrument's
``reference_level`` is the power (dBm) of a full-scale tone.  A complex tone
``A·exp(j2πft)`` and a real tone ``A·cos(2πft)`` both read
``reference_level + 20·log10(A)`` dBm once calibrated.
"""

import functools
import threading

import numpy as np

from . import fft, kernels
from .cosine_windows import periodic_window
from .decibels import amplitude_to_db, power_to_db

__all__ = ["window", "window_spec", "window_gains", "overlapping_frames", "frame_spectra",
           "frame_extreme", "calibrated_extreme", "calibrated_spectra", "power_to_dbm",
           "bin_frequencies", "MIN_FFT_SIZE"]

#: Fewest points of an FFT (``fft_block``'s ``size``, and so the command
#: line's ``--fft-size``).  Below it a window is no longer the window it is
#: named for (a 3-point flattop has an ENBW of 1.5 bins, not 3.8) and the
#: main lobe of a tone fills the spectrum, so no level or frequency read
#: from it means what it says.
MIN_FFT_SIZE = 8


def window_spec(name):
    """
    The window ``name`` as ``scipy.signal.get_window`` takes it: a name
    (``"hann"``), a name with its parameters after colons (``"kaiser:8.6"``,
    ``"tukey:0.25"``: the same in Python, pipeline files and on the command
    line), or a tuple or list (``("kaiser", 8.6)``).
    """
    if isinstance(name, list):
        return tuple(name)
    if isinstance(name, str) and ":" in name:
        kind, *values = name.split(":")
        try:
            return (kind.strip(), *(float(value) for value in values))
        except ValueError:
            raise ValueError(f"window {name!r}: the parameters after {kind!r} must be "
                             "numbers, as in 'kaiser:8.6'") from None
    return name


@functools.lru_cache(maxsize=64)
def _window(name, size, shift):
    # The common windows without scipy.signal, whose import costs seconds
    # (:mod:`pyrf_blocks.numerics.cosine_windows`: the same bits).
    values = periodic_window(name, size)
    if values is None:
        values = _scipy_window(name, size)
    values = values.astype(np.float32)
    if not (np.isfinite(values).all() and values.sum(dtype=np.float64) > 0):
        # (kaiser:1e308 or gaussian:0 gave NaN; a window of zeros would
        # calibrate every level to -inf)
        raise ValueError(f"window {name!r}: its values are not finite with a sum "
                         "above 0 (a parameter out of its range?)")
    if shift:
        # Multiplying by (-1)^n moves bin N/2 to bin 0: the fftshift, folded
        # into the window so it costs nothing.
        values[1::2] *= -1
    values.flags.writeable = False
    return values


def _scipy_window(name, size):
    try:
        import scipy.signal  # imported when first needed: it costs seconds
        with np.errstate(all="ignore"):  # (a result that is not finite is refused above)
            return scipy.signal.get_window(name, size, fftbins=True)
    except (ValueError, TypeError, ArithmeticError) as error:
        if "parameters" in str(error) and isinstance(name, str):  # (kaiser, gaussian...)
            raise ValueError(f"window {name!r} needs its parameter(s) after a colon, "
                             f"as in 'kaiser:8.6' (or the tuple ('kaiser', 8.6))") from None
        raise ValueError(f"unknown window {name!r}: {error}") from None


def window(name, size, shift=False):
    """
    ``scipy.signal.get_window(name, size)`` as float32, cached.  ``name`` may
    be a string, with parameters after colons (``"kaiser:8.0"``), or a tuple
    such as ``("kaiser", 8.0)`` (see :func:`window_spec`).  With ``shift``
    (even sizes only) the window also performs the fftshift.
    """
    return _window(window_spec(name), int(size), bool(shift))


def check_window(name):
    """
    ``name`` as :func:`window` takes it (a list becomes a tuple), after
    checking that scipy knows the window: ``ValueError`` otherwise.  It
    computes a short window only, whatever size the FFT will have.
    """
    name = tuple(name) if isinstance(name, list) else name
    if not isinstance(name, (str, tuple)) or not name:
        raise ValueError(f"expected a window name or (name, parameter...), got {name!r}")
    window(name, 16)
    return name


def window_gains(name, size):
    """
    Return ``(coherent_gain, enbw_bins)`` of a window: the sum of its values
    divided by its length, and its equivalent noise bandwidth in bins.
    """
    values = window(name, size).astype(np.float64)
    total = values.sum()
    return total / size, size * np.sum(values ** 2) / total ** 2


def overlapping_frames(samples, size, hop, count):
    """
    The first ``count`` frames of ``size`` samples of the 1-D array
    ``samples``, ``hop`` samples apart, as one read-only view (rows may
    share samples): what ``sliding_window_view(samples, size)[::hop]``
    gives, made directly where ``samples`` is contiguous (numpy's
    function costs about 30 µs of Python per call, 2 µs this way).
    """
    if not samples.flags.c_contiguous:
        return np.lib.stride_tricks.sliding_window_view(samples, size)[:count * hop:hop]
    step = samples.itemsize
    frames = np.ndarray((count, size), samples.dtype, samples, 0, (hop * step, step))
    frames.setflags(write=False)
    return frames


def frame_spectra(frames, window_values, complex_input, out=None):
    """
    Power spectra ``|FFT(frame · window)|²`` of each row of ``frames``.

    :param frames: 2-D array, one frame per row (complex64 or float32).
    :param window_values: 1-D window; for complex input, a window made with
        ``shift=True`` gives fftshifted spectra (bin 0 = lowest frequency).
    :param complex_input: full FFT for IQ, one-sided ``rfft`` for real input.
    :param out: optional float32 array ``(rows, bins)`` to write into.
    :return: float32 array ``(rows, bins)`` of linear power (full scale²,
        unnormalised: a tone of amplitude A on a bin reads
        ``(A · sum(window))²``, halved in amplitude for real input).

    The FFT is FFTW's when pyFFTW is installed, pocketfft's otherwise
    (:mod:`pyrf_blocks.numerics.fft`): the same powers within float32
    rounding.
    """
    rows, size = frames.shape
    bins = size if complex_input else size // 2 + 1
    if out is None:
        out = np.empty((rows, bins), np.float32)
    # Batch by batch (at most 64 Ki samples: they stay in cache), each step
    # written into the plan's own buffers: no memory is allocated per chunk
    # on the FFTW path.
    # The multiply and |X|² are compiled kernels where numba is installed
    # (:mod:`pyrf_blocks.numerics.kernels`).
    for first, plan in fft.batches(rows, size, complex_input):
        last = first + plan.rows
        kernels.window_into(frames[first:last], window_values, plan.input)
        kernels.power_into(plan.execute(), out[first:last])
    return out


_scratch = threading.local()


def frame_extreme(frames, window_values, complex_input, combine, out):
    """
    ``combine.reduce`` over the rows of :func:`frame_spectra` (per bin: the
    largest power of the frames with ``numpy.maximum``, the smallest with
    ``numpy.minimum``), written into ``out`` (float32, ``(1, bins)``).

    A hold fused with its FFT (:class:`~pyrf_blocks.optimise.HoldOfSpectra`)
    needs only this row, so the batch of spectra never leaves the thread
    (or process) that computed it.  With numba's kernels it is never
    written at all: each FFT batch's output goes through one pass that
    squares and combines (:func:`~pyrf_blocks.numerics.kernels.power_extreme_into`,
    the same bits; 93 against 108 µs for a 64 Ki-sample chunk on the
    2-core machine); otherwise, or when a power is NaN, the spectra go
    into an array of the calling thread's, used again by its next call.
    """
    _extreme(frames, window_values, complex_input, combine, out)
    return out


def _extreme(frames, window_values, complex_input, combine, out):
    # frame_extreme; returns 1 when no power was NaN and no extreme is 0
    # (so the held row's logarithm has nothing to warn of), else 0 or 2.
    rows, size = frames.shape
    # With numba's kernels, |X|² and the extreme are one pass over each
    # batch's FFT output (kernels.power_extreme_into: the same bits); the
    # spectra are never written.  A NaN power takes the route below.
    row, start = out[0], True
    for first, plan in fft.batches(rows, size, complex_input):
        batch = frames[first:first + plan.rows]
        # (one compiled call for the three steps where it can: FFTW's plan
        # run from numba; the same bits)
        found = kernels.window_fft_extreme_into(batch, window_values, plan, row, combine, start)
        if found is None:
            kernels.window_into(batch, window_values, plan.input)
            found = kernels.power_extreme_into(plan.execute(), row, combine, start)
        if not found:
            break
        start = False
    else:
        return found
    bins = size if complex_input else size // 2 + 1
    arrays = _scratch.__dict__
    spectra = arrays.get((rows, bins))
    if spectra is None:
        arrays.clear()  # one shape at a time: a stream's chunks mostly have one
        spectra = arrays[(rows, bins)] = np.empty((rows, bins), np.float32)
    frame_spectra(frames, window_values, complex_input, out=spectra)
    combine.reduce(spectra, axis=0, out=row)
    return 0


def calibrated_extreme(frames, window_values, complex_input, combine, out, window_sum,
                       reference_level, real_fft_size=None):
    """
    :func:`frame_extreme`, then calibrated to dBm in place
    (:func:`power_to_dbm` with the last three arguments): the row a hold
    fused with its FFT and its calibration holds
    (:class:`~pyrf_blocks.optimise.HoldOfSpectra`), computed in the FFT's
    task.
    """
    if complex_input and _fused_calibrated_extreme(frames, window_values, combine, out,
                                                   window_sum, reference_level, real_fft_size):
        return out
    found = _extreme(frames, window_values, complex_input, combine, out)
    return power_to_dbm(out, window_sum, reference_level, real_fft_size, out=out,
                        positive=found == 1)


def _fused_calibrated_extreme(frames, window_values, combine, out, window_sum,
                              reference_level, real_fft_size):
    # calibrated_extreme of IQ frames in one compiled call
    # (kernels.window_fft_extreme_dbm_into: the same bits as _extreme then
    # power_to_dbm, which takes kernels.dbm_into with numba's kernels), for
    # a chunk of whole batches and one level for all bins; a false value
    # where it cannot run or met a NaN (then the two steps run).
    rows, size = frames.shape
    batches = fft.batches(rows, size, True)
    offset, doubled, first, last = _calibration(size, window_sum, reference_level,
                                                real_fft_size)
    if isinstance(offset, np.ndarray):  # (a level per bin)
        return None
    return kernels.window_fft_extreme_dbm_into(frames, window_values, batches[0][1], out,
                                               combine, (offset, doubled, first, last))


def _extremes(calls, calibration=None):
    # The extremes of a group of frame_extreme calls (their arguments, in
    # order) in one compiled call, each written into its call's ``out``
    # (and calibrated with ``calibration``, kernels.dbm_into's terms):
    # what kernels.window_fft_extremes_into returns for them, or None
    # where the calls are not alike enough for it (then each runs alone).
    frames, values, complex_input, combine = calls[0][:4]
    rows, size = frames.shape
    if not complex_input or not frames.flags.c_contiguous:
        return None
    dtype = frames.dtype
    for args in calls:
        other, out = args[0], args[4]
        if (args[1] is not values or args[3] is not combine or other.shape != frames.shape
                or other.dtype != dtype or not other.flags.c_contiguous
                or out.shape != (1, size) or out.dtype != np.float32
                or not out.flags.c_contiguous):
            return None
    batches = fft.batches(rows, size, True)
    plan = batches[0][1]
    if rows % plan.rows:  # (then the chunk needs more than one plan)
        return None
    return kernels.window_fft_extremes_into([args[0] for args in calls], values, plan,
                                            [args[4] for args in calls], combine, calibration)


def _group(single, calls, calibration=None):
    # single.group: a group of calls to frame_extreme or calibrated_extreme
    # (their arguments, in order) as one compiled call where they are alike
    # (IQ frames of one shape and layout, one window and combine); the same
    # bits as the calls one by one.  Their results, in order.  A call whose
    # frames held a NaN runs alone (numpy's route for it), as do all where
    # they are not alike.
    found = _extremes(calls, calibration)
    if found is None:
        return [single(*args) for args in calls]
    for index in np.flatnonzero(found == 0):
        single(*calls[index])
    return [args[4] for args in calls]


def _frame_extremes(calls):
    return _group(frame_extreme, calls)


#: :func:`frame_extreme` for a group of calls (see :mod:`pyrf_blocks.parallel`).
frame_extreme.group = _frame_extremes


def _calibrated_extremes(calls):
    # calibrated_extreme.group: as frame_extreme's, each row calibrated in
    # the same compiled call (kernels.dbm_into, as power_to_dbm calibrates
    # a row alone) where the calls share their calibration.
    terms = calls[0][5:]
    alike = all(isinstance(term, (float, int)) or term is None for term in terms) and all(
        args[5:] == terms for args in calls)
    if not alike:
        return [calibrated_extreme(*args) for args in calls]
    bins = calls[0][0].shape[1]
    return _group(calibrated_extreme, calls, _calibration(bins, *terms))


#: :func:`calibrated_extreme` for a group of calls.
calibrated_extreme.group = _calibrated_extremes


def calibrated_spectra(frames, window_values, complex_input, out, window_sum,
                       reference_level, real_fft_size=None):
    """
    :func:`frame_spectra` into ``out``, then calibrated to dBm in place
    (:func:`power_to_dbm` with the last three arguments): the spectra a
    calibration fused with its FFT reads
    (:class:`~pyrf_blocks.optimise.CalibrationOfSpectra`), computed in the
    FFT's task without a second array.
    """
    frame_spectra(frames, window_values, complex_input, out)
    return power_to_dbm(out, window_sum, reference_level, real_fft_size, out=out)


def power_to_dbm(power, window_sum, reference_level, real_fft_size=None, out=None,
                 positive=False):
    """
    Calibrate linear FFT power (from :func:`frame_spectra`) to dBm.

    :param power: linear power (full scale², unnormalised), any shape.
    :param window_sum: sum of the window values (coherent gain × size).
    :param reference_level: dBm of a full-scale tone.
    :param real_fft_size: for a real input's one-sided spectrum, the frame
        length: every bin but DC (and Nyquist, for even lengths) holds half
        the tone's amplitude and is doubled.
    :param out: optional float32 array of ``power``'s shape to write into
        (may be ``power`` itself).
    :param positive: the caller knows every power is > 0 (as
        :func:`~pyrf_blocks.numerics.decibels.power_to_db` takes it).
    :return: float32 array of dBm; a bin of zero power is ``-inf`` dBm.
    """
    if not isinstance(power, np.ndarray) or power.dtype != np.float32:
        power = np.asarray(power, np.float32)
    offset, doubled, first, last = _calibration(power.shape[-1] if power.ndim else 1, window_sum,
                                                reference_level, real_fft_size)
    if not isinstance(offset, np.ndarray):  # (one level for all: the compiled kernel)
        into = np.empty(power.shape, np.float32) if out is None else out
        if kernels.dbm_into(power, into, offset, doubled, first, last) is not None:
            return into
    out = power_to_db(power, out=out, positive=positive)
    out += offset
    if last > first:
        out[..., first:last] += doubled
    return out


def _calibration(bins, window_sum, reference_level, real_fft_size=None):
    # power_to_dbm's terms for rows of ``bins``: (offset, doubled, first,
    # last), the level ``doubled`` added over the columns first to last.
    try:
        offset, doubled = _dbm_terms(window_sum, reference_level)
    except TypeError:  # (unhashable: an array of levels)
        offset, doubled = _dbm_terms.__wrapped__(window_sum, reference_level)
    if real_fft_size is None:
        return offset, doubled, 0, 0
    return offset, doubled, 1, real_fft_size // 2 if real_fft_size % 2 == 0 else bins


@functools.lru_cache(maxsize=256)
def _dbm_terms(window_sum, reference_level):
    # (offset, the level of a doubled amplitude) as float32, once per
    # calibration rather than per chunk (they cost more than the logarithm
    # of a held row).  A full-scale tone reads window_sum² on its bin: that
    # is reference_level.
    return (np.float32(reference_level - amplitude_to_db(window_sum)),
            np.float32(amplitude_to_db(2.0)))


def bin_frequencies(start_frequency, bin_width, bins):
    """
    Frequency (Hz) of each of ``bins`` bins.
    """
    return start_frequency + bin_width * np.arange(bins)
