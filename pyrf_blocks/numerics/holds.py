"""
Holds and averages over rows of spectra: the state a caller keeps is passed
in and the new state returned, so the result never depends on how the rows
were cut into chunks.

Means are taken over linear power (mW), never over decibels: the mean of
-10 and -20 dBm is -12.6 dBm, and the dB mean of noise reads 2.5 dB low.
Convert with :mod:`pyrf_blocks.numerics.decibels` around these functions.
Extremes need no conversion: dB and power are in the same order, so a hold
of dBm is the hold of power in dBm.

No function writes into its arguments: a returned hold or mean is a new
array, which a caller may emit while keeping it as its state.
"""

import numpy as np

__all__ = ["running_extreme", "block_means", "running_mean"]


def running_extreme(rows, held=None, combine=np.maximum):
    """
    Per-bin extreme of a hold and every row: the hold after ``rows``.

    :param rows: array ``(n, bins...)``, any units (dBm or mW alike).
    :param held: the hold before these rows, shape ``(bins...)``, or
        ``None`` for none yet.
    :param combine: ``numpy.maximum`` (max hold) or ``numpy.minimum`` (min
        hold); any binary ufunc with ``reduce`` works (``numpy.fmax``
        ignores NaN).
    :return: a new array ``(bins...)`` in the units and dtype of ``rows``;
        ``held`` itself when there are no rows.
    """
    if not len(rows):
        return held
    if (len(rows) == 1 and held is not None and held.dtype == rows.dtype
            and held.shape == rows.shape[1:]):
        # One row (a sweep, a display's chunk, a fused FFT's extreme): one
        # new array, not a copy combined in place.
        return combine(rows[0], held)
    # One row (a sweep, or a display's chunk) is copied: a reduce costs 1 µs more.
    extreme = rows[0].copy() if len(rows) == 1 else combine.reduce(rows, axis=0)
    if held is not None:
        combine(extreme, held, out=extreme)
    return extreme


def block_means(power, count, total=None, seen=0):
    """
    Mean of every ``count`` consecutive rows, carrying a partial block over
    from earlier rows and to later ones.

    :param power: array ``(n, bins...)`` of linear power (mW, W or full
        scale²; not dB).
    :param count: rows per mean, at least 1.
    :param total: float64 sum of the ``seen`` rows of the block begun
        before ``power`` (``None`` when ``seen`` is 0).
    :param seen: rows of that block already summed, ``0 <= seen < count``.
    :return: ``(means, total, seen)``: float64 ``(k, bins...)`` means of the
        ``k`` blocks completed within ``power`` (the first one includes the
        carried rows; it ends at row ``count - seen`` of ``power``), and the
        sum and number of rows of the block left incomplete, to pass to the
        next call.
    """
    rows = len(power)
    bins = np.shape(power)[1:]
    first = count - seen
    if rows < first:
        if rows:
            part = power.sum(axis=0, dtype=np.float64)
            total = part if total is None else total + part
        return np.empty((0,) + bins), total, seen + rows
    head = power[:first].sum(axis=0, dtype=np.float64)
    if total is not None:
        head += total
    full = (rows - first) // count
    used = first + full * count
    middle = power[first:used].reshape((full, count) + bins).sum(axis=1, dtype=np.float64)
    means = np.concatenate((head[np.newaxis], middle))
    means /= count
    rest = power[used:]
    total = rest.sum(axis=0, dtype=np.float64) if len(rest) else None
    return means, total, len(rest)


def running_mean(power, count, mean=None, seen=0):
    """
    Mean of the rows so far while fewer than ``count`` have been seen, then
    an exponential mean giving each new row the weight ``1/count``: a trace
    that settles at once and then follows changes with a time constant of
    about ``count`` rows.

    :param power: array ``(n, bins...)`` of linear power (not dB).
    :param count: rows of the true mean, and inverse weight afterwards.
    :param mean: float64 ``(bins...)`` mean before these rows, or ``None``.
    :param seen: rows behind ``mean``.
    :return: ``(mean, seen)``: a new float64 mean including these rows, and
        the rows behind it (``mean`` unchanged when there are no rows).
    """
    take = min(len(power), max(count - seen, 0))
    if take:
        part = power[:take].sum(axis=0, dtype=np.float64)
        if mean is not None:
            part += mean * seen
        mean = part / (seen + take)
        seen += take
    rest = power[take:]
    steps = len(rest)
    keep = 1.0 - 1.0 / count
    if steps == 1:
        # A display's usual chunk, one spectrum: mean += (row - mean)/count,
        # without the 5 µs of setting up the product below.
        mean = mean * keep + np.multiply(rest[0], 1.0 / count, dtype=np.float64)
    elif steps:
        # ``steps`` such steps at once, as one float64 matrix product
        # (tensordot costs 10 µs of Python more per call).
        weights = keep ** np.arange(steps - 1, -1, -1) / count
        mean = mean * keep ** steps
        mean += (weights @ rest.reshape(steps, -1)).reshape(rest.shape[1:])
    return mean, seen + steps
