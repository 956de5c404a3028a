"""
The element-wise kernels of :mod:`pyrf_blocks.numerics.kernels`, compiled
with numba: the window multiply, ``|X|²`` and ``|X|²`` combined per bin
over the rows.  Imported only where numba's kernels run (it imports
numba); :mod:`~pyrf_blocks.numerics.kernels` is their interface.

They are module-level so that numba's cache finds them again in the next
process (a compiled function made inside another function, and calling
compiled functions of its closure, gets a new cache key in every process
and is compiled again, its machine code added to the cache each time).
"""

import numba
import numpy as np

__all__ = ["window_rows", "window_hops", "power_rows", "power_extreme_rows"]

_jit = numba.njit(nogil=True, cache=True, boundscheck=False)


@_jit
def window_rows(frames, values, out):
    """``out[r, c] = frames[r, c] * values[c]``."""
    rows, size = frames.shape
    for row in range(rows):
        for column in range(size):
            out[row, column] = frames[row, column] * values[column]


@_jit
def window_hops(samples, hop, values, out):
    """
    ``out[r, c] = samples[r·hop + c] * values[c]``: the frames of the 1-D
    ``samples``, ``hop`` apart, times the window.  Overlapping frames
    given as a 2-D view have a row stride numba cannot know to be the
    samples' own, so :func:`window_rows` reads them element by element;
    here each row is a run of adjacent samples, which LLVM vectorises.
    """
    rows, size = out.shape
    for row in range(rows):
        # (row by row as slices: indexing ``samples[row·hop + c]`` costs a
        # test for a negative index per element, which LLVM does not
        # vectorise; 15 against 76 µs for 64 rows of 2 048 float32)
        first = row * hop
        frame, windowed = samples[first:first + size], out[row]
        for column in range(size):
            windowed[column] = frame[column] * values[column]


@_jit
def power_rows(spectra, out):
    """``out[r, c] = |spectra[r, c]|²`` as ``re² + im²``."""
    rows, bins = spectra.shape
    for row in range(rows):
        for column in range(bins):
            value = spectra[row, column]
            out[row, column] = value.real * value.real + value.imag * value.imag

@_jit
def power_extreme_rows(spectra, out, largest, start):
    """
    ``|X|²`` of each element, combined per column into ``out`` (the
    largest, or the smallest; started afresh with ``start``).  0 when a
    power was NaN (the caller then takes numpy's route, whose NaN is the
    one to give), else 2 when an extreme is 0, else 1.
    """
    rows, bins = spectra.shape
    nan = False
    first = 0
    if start:
        for column in range(bins):
            value = spectra[0, column]
            power = value.real * value.real + value.imag * value.imag
            nan |= power != power
            out[column] = power
        first = 1
    for row in range(first, rows):
        for column in range(bins):
            value = spectra[row, column]
            power = value.real * value.real + value.imag * value.imag
            nan |= power != power
            # np.maximum/np.minimum of two scalars, not ``if
            # power > out[column]: out[column] = power``: LLVM
            # makes that a masked store, which costs about 3×
            # the whole loop on AMD's Zen (the same bits: powers
            # are never -0, and a NaN sends the caller down
            # numpy's route).
            out[column] = (np.maximum(out[column], power) if largest
                           else np.minimum(out[column], power))
    if nan:
        return 0
    for column in range(bins):
        if out[column] == 0:
            return 2
    return 1
