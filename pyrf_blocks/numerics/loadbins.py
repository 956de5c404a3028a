"""
Values binned by load, and weighted efficiency (CEC and European).

A *load point* is a percentage of the rated load (50 means half load).  Its
bin is the half-open interval ``[point - tolerance, point + tolerance)`` of
measured load, in percent; values whose load falls in no bin count for no
load point.  With the default tolerance of 2.5 percentage points the bins of
both standards' points are disjoint (5 % is ``[2.5, 7.5)``, 10 % is
``[7.5, 12.5)``...).  A load point without values is *missing*: its mean is
``nan`` and its count 0, never a zero.
"""

import numpy as np

__all__ = ["CEC_WEIGHTS", "EUROPEAN_WEIGHTS", "WEIGHTS", "DEFAULT_TOLERANCE",
           "load_bin_edges", "load_bin_index", "bin_sums", "weighted_efficiency"]

#: California Energy Commission weights: ``{load %: weight}``.
CEC_WEIGHTS = {10.0: 0.04, 20.0: 0.05, 30.0: 0.12, 50.0: 0.21, 75.0: 0.53, 100.0: 0.05}
#: European ("Euro-eta") weights: ``{load %: weight}``.
EUROPEAN_WEIGHTS = {5.0: 0.03, 10.0: 0.06, 20.0: 0.13, 30.0: 0.10, 50.0: 0.48, 100.0: 0.20}
#: The weights by name, as blocks and pipeline files give them.
WEIGHTS = {"cec": CEC_WEIGHTS, "european": EUROPEAN_WEIGHTS}
#: Half-width of a load bin, percentage points.
DEFAULT_TOLERANCE = 2.5


def load_bin_edges(points, tolerance=DEFAULT_TOLERANCE):
    """
    The bin of each load point.

    Parameters
    ----------
    points : sequence of float
        Load points, % of rated load, increasing.
    tolerance : float
        Half-width of each bin, percentage points, > 0.

    Returns
    -------
    numpy.ndarray
        ``(len(points), 2)``: each bin's low (included) and high (excluded)
        edge, in %.

    Raises
    ------
    ValueError
        Points not increasing, or bins that overlap.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 1 or not len(points):
        raise ValueError(f"load points: give one or more numbers (%), got {points.tolist()}")
    if not tolerance > 0:
        raise ValueError(f"load bins: tolerance must be > 0 percentage points, got {tolerance!r}")
    if np.any(np.diff(points) <= 0):
        raise ValueError(f"load points must increase, got {points.tolist()}")
    edges = np.stack([points - tolerance, points + tolerance], axis=1)
    overlap = np.flatnonzero(edges[1:, 0] < edges[:-1, 1])
    if len(overlap):
        i = int(overlap[0])
        raise ValueError(f"load bins of {points[i]} % and {points[i + 1]} % overlap with a "
                         f"tolerance of {tolerance} points; make it at most "
                         f"{(points[i + 1] - points[i]) / 2}")
    return edges


def load_bin_index(load, edges):
    """
    The bin of each measured load: its index in ``edges``, or -1 when it is
    in none (or is nan).

    Parameters
    ----------
    load : numpy.ndarray
        Measured load, % of rated.
    edges : numpy.ndarray
        From :func:`load_bin_edges`.

    Returns
    -------
    numpy.ndarray
        int64, the shape of ``load``.
    """
    load = np.asarray(load, dtype=np.float64)
    candidate = np.searchsorted(edges[:, 0], load, side="right") - 1
    inside = candidate >= 0
    inside[inside] = load[inside] < edges[candidate[inside], 1]
    return np.where(inside, candidate, -1)


def bin_sums(values, index, bins):
    """
    Sum and count of the values in each bin (nan values are left out).

    Returns
    -------
    tuple of numpy.ndarray
        ``(sums, counts)``, float64 and int64, ``bins`` long.
    """
    values = np.asarray(values, dtype=np.float64)
    keep = (index >= 0) & ~np.isnan(values)
    sums = np.bincount(index[keep], weights=values[keep], minlength=bins)
    counts = np.bincount(index[keep], minlength=bins).astype(np.int64)
    return sums, counts


def weighted_efficiency(bin_efficiency, weights):
    """
    The weighted efficiency ``Σ weight_k · η_k``.

    Parameters
    ----------
    bin_efficiency : sequence of float
        Mean efficiency at each load point (% or ratio); nan where missing.
    weights : sequence of float
        The weight of each load point (they sum to 1 for CEC and European).

    Returns
    -------
    float
        In the unit of ``bin_efficiency``; nan when a load point is missing,
        never a sum over fewer points.
    """
    bin_efficiency = np.asarray(bin_efficiency, dtype=np.float64)
    if np.isnan(bin_efficiency).any():
        return float("nan")
    return float(np.dot(np.asarray(weights, dtype=np.float64), bin_efficiency))
