"""
The spectrum chain's element-wise kernels: the window multiply,
``|X|²``, the calibration of power to dBm and, for a hold fused with its
FFT, ``|X|²`` combined per bin over the frames in one pass, written into
buffers the caller owns.

They are compiled with numba when it is installed (the ``numba`` extra),
else done with numpy.  Measured on the 2-core machine (2026-11-30, CPU
time, a 64×1024 complex64 batch): the window multiply took 28 µs with
numpy's broadcast multiply (it casts the float32 window to complex64 on
the fly) and 13 µs compiled; ``|X|²`` took 26 µs with numpy (``abs`` then
squaring in place, its fastest route) and 8 µs compiled — together a
third of the FFT's 55 µs, saved on every 64 Ki samples.  The compiled
kernels release the GIL, so threads of a compute pool
(:mod:`pyrf_blocks.parallel`) run them side by side; a group of a hold's
chunks is one compiled call from the window to the calibrated row, which
releases the GIL once (numpy's logarithm and sums after it released and
took it back three times more per group, each a hand-off to the other
thread).

``PYRF_BLOCKS_KERNELS=numpy`` in the environment, or :func:`set_backend`,
uses numpy even where numba is installed (``PYRF_BLOCKS_KERNELS=numba``
insists on numba: an error where it is missing).

The calibration to dBm (:func:`dbm_into`) is compiled too: its logarithm
is computed in float64 by :mod:`pyrf_blocks.numerics.dbm_kernel`, which
LLVM vectorises, and the level rounded once to float32 — within 1 float32
step of the exact level, where numpy's float32 ``log10``, ``*= 10`` and
``+= offset`` round three times (the C library's ``log10f``, called per
element: 6.8–6.9 ns per element with the three steps on the 2-core AMD
EPYC, against 2.55 ns compiled, on 64×1024 powers;
``benchmarks/calibration.py``).

The two implementations agree within float32 rounding (``re² + im²``
against numpy's ``hypot`` squared; the compiled levels against numpy's
three roundings, which are up to thousands of float32 steps off where a
level is near 0 dB, a few millionths of a dB), not bit for bit: one
process uses one of them throughout, so an optimised graph, a pool and a
serial run give the same bits, and processes whose outputs are compared
bit for bit (a split graph and one reactor, a replay on Dask and
serially) need the same kernels — the same installation, or the same
setting.  (The compiled levels are the same bits on any processor: IEEE
additions, multiplications and a division, no fused multiply-add.)

numba's kernels and a Qt window share a process safely.  They were
opt-in for a while because a script that ran them and then showed a
viewer offscreen crashed at exit in 3 of 6 runs; the crash was not
numba's: it was PySide's own clean-up at exit deleting pyqtgraph's
widgets after Python had begun to shut down (a segfault in shiboken, in
``PySide::destroyQCoreApplication``), which struck with numpy's kernels
too, and which :mod:`pyrf_blocks.gui.loop` now prevents by closing the
windows first.
"""

import threading

import numpy as np

from . import fft
from .backends import BackendChoice, importable

__all__ = ["backend", "set_backend", "window_into", "power_into", "power_extreme_into",
           "window_fft_extreme_into", "window_fft_extreme_dbm_into", "window_fft_extremes_into",
           "dbm_into", "BACKENDS"]

#: The kernel implementations, preferred first.
BACKENDS = ("numba", "numpy")

_FLOAT32 = np.dtype(np.float32)

_compile_lock = threading.Lock()
_compiled = None


def _numba_available():
    return importable("numba")


#: Which kernels this process uses (:mod:`pyrf_blocks.numerics.backends`).
choice = BackendChoice("kernels", BACKENDS, "PYRF_BLOCKS_KERNELS", {
    "numba": (lambda: _numba_available(),
              "the kernels 'numba' need numba: pip install 'pyrf_blocks[numba]'")})


def backend():
    """
    The kernels in use: ``"numba"`` where numba is installed, unless
    ``PYRF_BLOCKS_KERNELS=numpy`` or :func:`set_backend` chose numpy;
    ``"numpy"`` otherwise.
    """
    return choice.chosen or choice.get()


def set_backend(name=None):
    """
    Use the kernels ``name`` (``"numba"`` or ``"numpy"``), or the best
    installed when ``None``; return the one now in use.  Raises
    ``ValueError`` for an unknown name and ``ImportError`` for
    ``"numba"`` without numba.
    """
    return choice.set(name)


def _numba_kernels():
    # Compiled once per process and signature; numba keeps the machine
    # code in its cache (next to this module, or in the user's cache
    # directory where that is read-only), so later processes load it.
    global _compiled
    if _compiled is not None:
        return _compiled
    with _compile_lock:
        if _compiled is None:
            from .dbm_kernel import dbm_rows
            from .numba_kernels import power_extreme_rows, power_rows, window_hops, window_rows

            _compiled = window_rows, power_rows, power_extreme_rows, dbm_rows, window_hops
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
    ``out`` (the frames' dtype and shape).  A complex sample ``a + bi``
    becomes ``(a·w, b·w)``, on either backend.
    """
    numba, result = backend() == "numba", out
    if (frames.dtype == np.complex64 and frames.strides[-1] == frames.itemsize
            and out.flags.c_contiguous):
        # (a + bi)·w as (a·w, b·w) over float32 pairs: what the broadcast
        # multiply gives for finite samples (it multiplies by w + 0i), at
        # about 1.4× its speed with numpy; numba's loop over the pairs is
        # a float32 multiply LLVM vectorises, where its complex product
        # was not.
        frames, values, out = (frames.view(np.float32), _interleaved(values),
                               out.view(np.float32))
    if not numba:
        np.multiply(frames, values, out=out)
        return result
    # Overlapping frames as the samples under them, one run: numba reads a
    # 2-D view of unknown row stride element by element.
    run = None if frames.flags.c_contiguous or not out.flags.c_contiguous else _run(frames)
    if run is None:
        _numba_kernels()[0](frames, values, out)
    else:
        _numba_kernels()[4](*run, values, out)
    return result


def _run(frames):
    # (the samples under the 2-D ``frames`` as one 1-D run, the hop between
    # rows in samples), or None where the rows are not runs of adjacent
    # samples a whole number of samples apart.
    if frames.ndim != 2 or not len(frames):
        return None
    rows, size = frames.shape
    step, item = frames.strides
    if frames.flags.c_contiguous:
        return frames.reshape(-1), size
    if item != frames.itemsize or step <= 0 or step % item:
        return None
    hop = step // item
    return np.lib.stride_tricks.as_strided(frames, ((rows - 1) * hop + size,), (item,)), hop


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


def power_extreme_into(spectra, out, combine, start=True):
    """
    ``combine.reduce(|spectra|², axis=0)`` (``combine`` is
    ``numpy.maximum`` or ``numpy.minimum``) written into the 1-D float32
    ``out``, in one pass that never writes the powers out; with
    ``start=False`` combined with what ``out`` holds.  The same bits as
    :func:`power_into` then the reduce: the powers are the same products
    and sums, and the extreme of floats is one of them (powers are never
    -0, so no two equal powers differ in their bits).

    Return 0 where the caller must take that unfused route instead:
    numpy's kernels are in use, or a power was NaN (which NaN comes out is
    numpy's reduce's to choose).  Else 1, or 2 when an extreme in ``out``
    is 0 (whose level in dB is -inf: the logarithm warns).
    """
    if backend() != "numba":
        return 0
    largest = _largest(combine, "power_extreme_into")
    return _numba_kernels()[2](spectra, out, largest, start)


_fused = None
_fused_dbm = None
_fused_group = None


def _fused_kernel():
    # window, FFT, |X|² and extreme in one compiled call
    # (pyrf_blocks.numerics.fftw_kernels), and its kernels that calibrate
    # too, for a chunk and for a group: False where FFTW's library cannot
    # be found.
    global _fused, _fused_dbm, _fused_group
    if _fused is not None:
        return _fused
    with _compile_lock:
        if _fused is None:
            try:
                from . import fftw_kernels
            except ImportError:  # (no FFTW library to call)
                _fused = False
                return _fused
            _fused_group = fftw_kernels.window_fft_extremes
            _fused_dbm = fftw_kernels.window_fft_extreme_dbm
            _fused = fftw_kernels.window_fft_extreme
    return _fused


def window_fft_extreme_into(frames, values, plan, out, combine, start=True):
    """
    :func:`window_into` the ``plan``'s input, the FFT
    (:class:`~pyrf_blocks.numerics.fft.Plan`), then
    :func:`power_extreme_into` ``out``: the same bits, in one compiled
    call that releases the GIL once (threads of a compute pool then
    hand the GIL back and forth a third as often).  ``None`` where it
    cannot run — numpy's kernels, pocketfft, real input, frames whose
    samples are not adjacent — and the caller takes the three steps; else
    what :func:`power_extreme_into` returns.
    """
    operands = _fused_operands(frames, values, plan)
    if operands is None:
        return None
    return _fused(*operands, out, _largest(combine, "window_fft_extreme_into"), start)


def window_fft_extreme_dbm_into(frames, values, plan, out, combine, calibration):
    """
    :func:`window_fft_extreme_into` the row of ``out`` (C-contiguous
    float32, ``(1, bins)``), then :func:`dbm_into` it with
    ``calibration`` (the last four arguments of :func:`dbm_into`): the
    same bits as the two calls, in one compiled call (a held row's
    calibration took a second call, with its own checks and hand-over,
    dearer than its logarithms).  ``frames`` may be any whole number of
    ``plan``'s batches.  ``None`` where it cannot run (as
    :func:`window_fft_extreme_into`, or ``out`` not such a row); else what
    :func:`power_extreme_into` returns (0: it met a NaN, and the row is
    neither finished nor calibrated).
    """
    # (The chunk's shape first: a remainder chunk is declined before its
    # sample run is made, which the steps taken apart make again.)
    if (len(frames) % plan.rows or out.dtype != _FLOAT32
            or out.shape != (1, frames.shape[1]) or not out.flags.c_contiguous):
        return None
    operands = _fused_operands(frames, values, plan)
    if operands is None:
        return None
    offset, doubled, first, last = calibration
    return _fused_dbm(*operands, out, _largest(combine, "window_fft_extreme_dbm_into"),
                      _float32(offset), _float32(doubled), first, last)


def _fused_operands(frames, values, plan):
    # What the fused kernels of one chunk take before its row: the frames'
    # samples as one run and the hop between them (_sample_run), the number
    # of frames, the interleaved window, and the plan they run
    # (_fused_plan) with its buffers.  None where they cannot run: numpy's
    # kernels, pocketfft, real input, no FFTW library, frames whose samples
    # are not adjacent.
    if not plan.raw or backend() != "numba" or not (_fused or _fused_kernel()):
        return None
    run = _sample_run(frames)
    if run is None:
        return None
    plan = _fused_plan(plan)
    return (*run, len(frames), _interleaved(values), plan.raw, plan.input.view(np.float32),
            plan.output)


def _sample_run(frames):
    # The float32 pairs under the complex64 ``frames`` as one run and the
    # hop between frames in floats (_run): what the compiled kernels read.
    if frames.dtype != np.complex64 or frames.ndim != 2 or frames.strides[1] != frames.itemsize:
        return None
    return _run(frames.view(np.float32))


#: Most samples the compiled kernels give FFTW at once: they run a plan
#: of this many (a batch of :func:`~pyrf_blocks.numerics.fft.batches`
#: is a whole number of them) and square and combine its output before
#: the next.  16 Ki complex64 samples are 128 KiB in and 128 KiB out,
#: which stay in a 512 KiB second-level cache (AMD's Zen 3) between the
#: window multiply, the FFT and ``|X|²``; with 64 Ki (1 MiB) a 64×1024
#: chunk took 4–6 % longer (paired runs on the 2-core AMD EPYC).  The
#: smaller plan is used only where it gives the bits of the batch's own
#: plan (:func:`_fused_plan`).
FUSED_BATCH_SAMPLES = 16 * 1024


def _fused_plan(plan):
    # The plan the compiled kernels run for frames of ``plan``'s batch: one
    # of FUSED_BATCH_SAMPLES where it gives the same bits, row for row, as
    # ``plan`` itself (what the steps taken apart run), else ``plan``.
    # Chosen once per plan.  FFTW measures the two plans apart (or
    # estimates one), and a measurement on a busy machine may pick another
    # algorithm for the one than for the other, which rounds differently:
    # seen for 256-point transforms, a measured 64-row plan against the
    # estimated 128-row one, after a suite run beside a CPU hog.
    found = plan.fused
    if found is None:
        rows = fft.batch_rows(plan.size, FUSED_BATCH_SAMPLES)
        found = plan
        if plan.rows > rows:
            smaller = fft.plan(rows, plan.size, True)
            if _same_bits(plan, smaller):
                found = smaller
        plan.fused = found
    return found


def _same_bits(plan, smaller):
    # Whether ``smaller`` transforms random frames to the bits ``plan``
    # gives them (two algorithms round a random input differently), each
    # plan as compiled code runs it (its raw plan, the same algorithm).
    frames = np.random.default_rng(0).standard_normal(
        (plan.rows, 2 * plan.size), dtype=np.float32).view(np.complex64)
    plan.input[...] = frames
    whole = plan.execute().copy()
    for first in range(0, plan.rows, smaller.rows):
        smaller.input[...] = frames[first:first + smaller.rows]
        if smaller.execute().tobytes() != whole[first:first + smaller.rows].tobytes():
            return False
    return True


#: Arrays a compiled call over a group takes (a tuple of them, its slots
#: past the group's size filled with the first): one machine code for every
#: group size, compiled (or loaded from numba's cache) once, not once per
#: size — a group's size varies with the turns of the reactor.
GROUP_SLOTS = 8


def _slots(arrays, first):
    # ``arrays[first:first + GROUP_SLOTS]`` as a tuple of GROUP_SLOTS, and
    # how many of them are real.
    part = tuple(arrays[first:first + GROUP_SLOTS])
    count = len(part)
    return part + (part[0],) * (GROUP_SLOTS - count), count


def window_fft_extremes_into(chunks, values, plan, outs, combine, calibration=None):
    """
    :func:`window_fft_extreme_into` for several chunks, in one compiled
    call per :data:`GROUP_SLOTS` of them (each releases the GIL once for
    them all): ``chunks`` a sequence of C-contiguous complex64 frame
    arrays whose rows are whole batches of ``plan``, each chunk's extreme
    written into the row of its C-contiguous float32 ``(1, bins)`` array
    in the sequence ``outs``, then, with ``calibration`` (the last four
    arguments of :func:`dbm_into`), turned to dB as :func:`dbm_into`
    does.  The same bits as the calls one by one.  ``None`` where it
    cannot run (as :func:`window_fft_extreme_into`); else an int8 array:
    what :func:`power_extreme_into` returned for each chunk (0: it met a
    NaN, and that row is to be computed by the caller's other route).
    """
    if not plan.raw or backend() != "numba" or chunks[0].dtype != np.complex64:
        return None
    if not (_fused or _fused_kernel()):
        return None
    largest = _largest(combine, "window_fft_extremes_into")
    calibrate = calibration is not None
    offset, doubled, first_doubled, last_doubled = calibration or (0.0, 0.0, 0, 0)
    found = np.empty(len(chunks), np.int8)
    rows = np.array([len(chunk) for chunk in chunks], np.intp)
    runs = [chunk.reshape(-1).view(np.float32) for chunk in chunks]
    values = _interleaved(values)
    plan = _fused_plan(plan)
    input = plan.input.view(np.float32)
    for first in range(0, len(chunks), GROUP_SLOTS):
        part, count = _slots(runs, first)
        held, _ = _slots(outs, first)
        _fused_group(part, count, input.shape[1], rows[first:], values, plan.raw, input,
                     plan.output, held, found[first:], largest, calibrate, _float32(offset),
                     _float32(doubled), first_doubled, last_doubled)
    return found


def dbm_into(power, out, offset, doubled=0.0, first=0, last=0):
    """
    ``out = 10·log10(power) + offset``, and ``doubled`` added over the
    columns ``first`` to ``last`` (exclusive) of the last axis, in one
    compiled pass: float32 ``power`` and ``out`` of one shape, C-contiguous
    (``out`` may be ``power``), ``offset`` and ``doubled`` taken as
    float32.  The level is computed in float64 and rounded once to float32
    (:mod:`~pyrf_blocks.numerics.dbm_kernel`): within 1 float32 step of
    the exact level rounded to float32 (and within 5e-16 dB of it where the
    level is within 2e-9 dB of 0 dB, its float32 steps finer than float64's
    rounding); never lower for a greater power.  Every calibration of this
    process with numba's kernels takes it.  A zero power is ``-inf``
    without a warning, a negative power or NaN is NaN, ``+inf`` is
    ``+inf``.  Return ``out``, or ``None`` where it cannot run (numpy's
    kernels in use, or arrays not as said): the caller then takes numpy's
    steps.
    """
    if (backend() != "numba" or power.dtype != _FLOAT32 or out.dtype != _FLOAT32
            or power.shape != out.shape or not power.flags.c_contiguous
            or not out.flags.c_contiguous):
        return None
    rows = (power, out)
    if power.ndim != 2:
        bins = power.shape[-1] if power.ndim else 1
        rows = (power.reshape(-1, bins), out.reshape(-1, bins))
    (_compiled or _numba_kernels())[3](*rows, _float32(offset), _float32(doubled), first, last)
    return out


def _largest(combine, caller):
    # True for numpy.maximum, False for numpy.minimum: the flag the
    # compiled extremes take.
    if combine is np.maximum:
        return True
    if combine is np.minimum:
        return False
    raise ValueError(f"{caller}: combine must be numpy.maximum or numpy.minimum, "
                     f"got {combine!r}")


def _float32(value):
    return value if type(value) is np.float32 else np.float32(value)
