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
from .numba_kernels import power_extreme_rows, window_hops

__all__ = ["window_fft_extreme", "window_fft_extreme_dbm", "window_fft_extremes"]

_library = fft.library_path()
if _library is None:
    raise ImportError("FFTW's single-precision library (libfftw3f) was not found")
llvmlite.binding.load_library_permanently(_library)

#: ``fftwf_execute_dft(plan, input, output)``, pointers as integers.
execute = types.ExternalFunction("fftwf_execute_dft",
                                 types.void(types.uintp, types.uintp, types.uintp))

_jit = numba.njit(nogil=True, cache=True, boundscheck=False)


@_jit
def window_fft_extreme(samples, hop, rows, values, plan, input, output, out, largest, start):
    """
    ``rows`` frames of ``samples`` (complex samples seen as float32
    pairs, the frames ``hop`` floats apart) times the interleaved window
    ``values`` into the FFTW ``plan``'s ``input`` (its float32 view), the
    plan run into its ``output``, then
    :func:`~pyrf_blocks.numerics.numba_kernels.power_extreme_rows` of
    that into ``out``: batch by batch of the plan's rows (``rows`` is a
    whole number of them), the extreme continued from the first.  What
    the last batch returned (0: it stopped at a NaN).
    """
    found = 1
    for first in range(0, rows, input.shape[0]):
        window_hops(samples[first * hop:], hop, values, input)
        execute(plan, input.ctypes.data, output.ctypes.data)
        found = power_extreme_rows(output, out, largest, start and first == 0)
        if not found:
            break
    return found


@_jit
def window_fft_extreme_dbm(samples, hop, rows, values, plan, input, output, held, largest,
                           offset, doubled, first_doubled, last_doubled):
    """
    :func:`window_fft_extremes` for one chunk: :func:`window_fft_extreme`
    into the row of ``held`` (``(1, bins)``), then, unless it met a NaN,
    :func:`~pyrf_blocks.numerics.dbm_kernel.dbm_rows` of it.  (One chunk
    as a tuple of :data:`~pyrf_blocks.numerics.kernels.GROUP_SLOTS`
    arrays cost more to hand over than the kernel ran on a small chunk.)
    """
    found = window_fft_extreme(samples, hop, rows, values, plan, input, output, held[0],
                               largest, True)
    if found:
        dbm_rows(held, held, offset, doubled, first_doubled, last_doubled)
    return found


@_jit
def window_fft_extremes(chunks, count, hop, rows, values, plan, input, output, outs, found,
                        largest, calibrate, offset, doubled, first_doubled, last_doubled):
    """
    :func:`window_fft_extreme` of each of the first ``count`` chunks (runs
    of samples, chunk k of ``rows[k]`` frames ``hop`` apart) into the row of
    its ``(1, bins)`` array in ``outs``, then (with ``calibrate``)
    :func:`~pyrf_blocks.numerics.dbm_kernel.dbm_rows` of it; ``found[k]``
    is what chunk k's returned (0: stopped at a NaN, the row unfinished
    and not calibrated).
    """
    for index in range(count):
        held = outs[index]
        found[index] = window_fft_extreme(chunks[index], hop, rows[index], values, plan, input,
                                          output, held[0], largest, True)
        if calibrate and found[index]:
            dbm_rows(held, held, offset, doubled, first_doubled, last_doubled)
