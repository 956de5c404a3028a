"""
The spectrum chain's element-wise kernels: the window multiply and
``|X|²``, written into buffers the caller owns.

They are done with numpy unless numba's compiled kernels are asked for:
``PYRF_BLOCKS_KERNELS=numba`` in the environment, or :func:`set_backend`
(numba from the ``numba`` extra).  Measured on the 2-core machine
(2026-11-30, CPU time, a 64×1024 complex64 batch): the window multiply
took 28 µs with numpy's broadcast multiply (it casts the float32 window to
complex64 on the fly) and 13 µs compiled; ``|X|²`` took 26 µs with numpy
(``abs`` then squaring in place, its fastest route) and 8 µs compiled —
together a third of the FFT's 55 µs, saved on every 64 Ki samples.  The
compiled kernels release the GIL, so threads of a compute pool
(:mod:`pyrf_blocks.parallel`) run them side by side.

**Why they are not the default:** a process that had run numba's kernels
and then drew a Qt window offscreen crashed (SIGSEGV, no Python frame) in
3 of 6 runs of the Qt loop test, and in none with numpy's; the cause is
not known (two copies of LLVM in one process, numba's and the graphics
stack's, is a guess).  Use them in processes without a window.

The two implementations agree within float32 rounding (``re² + im²``
against numpy's ``hypot`` squared), not bit for bit: one process uses one
of them throughout, so an optimised graph, a pool and a serial run give
the same bits, and processes that must agree bit for bit (a split graph
compared with one reactor, a replay on Dask) need the same setting.
"""

import importlib
import os
import threading

import numpy as np

__all__ = ["backend", "set_backend", "window_into", "power_into", "BACKENDS"]

#: The kernel implementations: numpy (the default) and numba (asked for).
BACKENDS = ("numpy", "numba")

_chosen = None
_compile_lock = threading.Lock()
_compiled = None


def _numba_available():
    try:
        importlib.import_module("numba")
    except ImportError:
        return False
    return True


def backend():
    """
    The kernels in use: ``"numpy"``, or ``"numba"`` when
    ``PYRF_BLOCKS_KERNELS=numba`` or :func:`set_backend` asked for them.
    """
    if _chosen is None:
        set_backend(os.environ.get("PYRF_BLOCKS_KERNELS", "").strip().lower() or "numpy")
    return _chosen


def set_backend(name="numpy"):
    """
    Use the kernels ``name`` (``"numba"`` or ``"numpy"``); return it.
    Raises ``ValueError`` for an unknown name and ``ImportError`` for
    ``"numba"`` without numba.
    """
    global _chosen
    if name not in BACKENDS:
        raise ValueError(f"unknown kernels {name!r}; use one of {', '.join(BACKENDS)}")
    if name == "numba" and not _numba_available():
        raise ImportError("the kernels 'numba' need numba: pip install 'pyrf_blocks[numba]'")
    _chosen = name
    return name


def _numba_kernels():
    # Compiled once per process and signature; numba keeps the machine
    # code in its cache (next to this module, or in the user's cache
    # directory where that is read-only), so later processes load it.
    global _compiled
    if _compiled is not None:
        return _compiled
    with _compile_lock:
        if _compiled is None:
            import numba

            jit = numba.njit(nogil=True, cache=True, boundscheck=False)

            @jit
            def window_rows(frames, values, out):
                rows, size = frames.shape
                for row in range(rows):
                    for column in range(size):
                        out[row, column] = frames[row, column] * values[column]

            @jit
            def power_rows(spectra, out):
                rows, bins = spectra.shape
                for row in range(rows):
                    for column in range(bins):
                        value = spectra[row, column]
                        out[row, column] = value.real * value.real + value.imag * value.imag

            _compiled = window_rows, power_rows
    return _compiled


_pairs = {}


def _interleaved(values):
    # A real window for complex frames seen as float32 pairs (re, im): each
    # value twice, so the multiply is float32 times float32, with no cast.
    # Kept per window array (the windows themselves are cached, read-only).
    found = _pairs.get(id(values))
    if found is None or found[0] is not values:
        if len(_pairs) >= 64:
            _pairs.clear()
        found = _pairs[id(values)] = (values, np.repeat(values, 2))
    return found[1]


def window_into(frames, values, out):
    """
    ``out[r, c] = frames[r, c] * values[c]``: frames (complex64 or
    float32, rows of ``len(values)``) times a float32 window, into
    ``out`` (the frames' dtype and shape).
    """
    if backend() == "numba":
        _numba_kernels()[0](frames, values, out)
        return out
    if (frames.dtype == np.complex64 and frames.strides[-1] == frames.itemsize
            and out.flags.c_contiguous):
        # (a + bi)·w as (a·w, b·w) over float32 pairs: what the broadcast
        # multiply gives for finite samples, at about 1.4× its speed.
        np.multiply(frames.view(np.float32), _interleaved(values),
                    out=out.view(np.float32))
    else:
        np.multiply(frames, values, out=out)
    return out


def power_into(spectra, out):
    """
    ``out = |spectra|²`` (complex64 in, float32 out, the same shape).
    """
    if backend() == "numba":
        _numba_kernels()[1](spectra, out)
        return out
    # |X| then squaring in place is the fastest route to |X|² in numpy
    # (re² + im² over a float32 view ran at half its speed).
    np.abs(spectra, out=out)
    np.multiply(out, out, out=out)
    return out
