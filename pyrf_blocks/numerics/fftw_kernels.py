"""
The window multiply, FFTW's FFT, ``|X|²`` and the per-bin extreme in one
compiled call (and, for a group of chunks, their calibration to dBm too):
FFTW's ``fftwf_execute_dft`` called from numba's machine code, so a
thread of a compute pool releases the GIL once for them all.  Imported
only where numba's kernels run and FFTW's library is found (else
``ImportError``); :mod:`pyrf_blocks.numerics.kernels` is their interface.

Importing it makes FFTW's library known to LLVM first, so that the
machine code numba keeps in its cache links to it in the next process
too.  The functions are module-level, the compiled functions they call
module globals, so that the next process loads them from that cache (made
inside a function, each process compiled them again, about 1.5 s, and
added another copy to the cache).
"""

import llvmlite.binding
import numba
from numba import types

from . import fft
from .dbm_kernel import dbm_rows
from .numba_kernels import power_extreme_rows

__all__ = ["window_fft_extreme", "window_fft_extremes"]

_library = fft.library_path()
if _library is None:
    raise ImportError("FFTW's single-precision library (libfftw3f) was not found")
llvmlite.binding.load_library_permanently(_library)

#: ``fftwf_execute_dft(plan, input, output)``, pointers as integers.
execute = types.ExternalFunction("fftwf_execute_dft",
                                 types.void(types.uintp, types.uintp, types.uintp))

_jit = numba.njit(nogil=True, cache=True, boundscheck=False)


@_jit
def window_fft_extreme(frames, values, plan, input, output, out, largest, start):
    """
    ``frames`` times the window ``values`` into the FFTW ``plan``'s
    ``input``, the plan run into its ``output``, then
    :func:`~pyrf_blocks.numerics.numba_kernels.power_extreme_rows` of
    that into ``out``; what it returns.
    """
    rows, size = frames.shape
    for row in range(rows):
        for column in range(size):
            input[row, column] = frames[row, column] * values[column]
    execute(plan, input.ctypes.data, output.ctypes.data)
    return power_extreme_rows(output, out, largest, start)


@_jit
def window_fft_extremes(chunks, count, values, plan, input, output, outs, found, largest,
                        calibrate, offset, doubled, first_doubled, last_doubled):
    """
    :func:`window_fft_extreme` over the frames of each of the first
    ``count`` chunks, batch by batch, into the row of its ``(1, bins)``
    array in ``outs``, then (with ``calibrate``)
    :func:`~pyrf_blocks.numerics.dbm_kernel.dbm_rows` of it;
    ``found[k]`` is what the last batch of chunk k returned (0: stopped at
    a NaN, the row unfinished and not calibrated).
    """
    batch, size = input.shape
    for index in range(count):
        frames = chunks[index]
        held = outs[index]
        found[index] = 1
        for first in range(0, frames.shape[0], batch):
            for row in range(batch):
                for column in range(size):
                    input[row, column] = frames[first + row, column] * values[column]
            execute(plan, input.ctypes.data, output.ctypes.data)
            found[index] = power_extreme_rows(output, held[0], largest, first == 0)
            if not found[index]:
                break
        if calibrate and found[index]:
            dbm_rows(held, held, offset, doubled, first_doubled, last_doubled)
