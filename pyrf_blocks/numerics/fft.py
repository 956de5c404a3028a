"""
FFT plans: FFTW through pyFFTW when it is installed (the ``fftw`` extra),
scipy's pocketfft otherwise.

A plan transforms a batch of ``rows`` frames of ``size`` samples: the caller
writes the (windowed) frames into :attr:`Plan.input` and calls
:meth:`Plan.execute`, which returns the spectra (complex64, ``size`` bins
for complex input, ``size // 2 + 1`` for real input).  :func:`batches`
covers any number of frames with plans of a few fixed batch sizes (64, 32,
16 ... 1 rows for 1024-point FFTs: at most 64 Ki samples each, so a batch
stays in cache), which keeps the number of shapes to plan small whatever
the chunking.

Measured on the 2-core machine (2026-11-30), a 64×1024 complex64 batch:
pocketfft about 360–390 MSa/s, FFTW (``FFTW_MEASURE``) 900–1 000 MSa/s;
``FFTW_PATIENT`` was no faster and took 1.2 s to plan instead of 0.07 s.

FFTW plans are made once per shape and thread (the full batch measured,
``FFTW_MEASURE``, the smaller ones estimated) (a plan's buffers are its
own, so threads of a pool never share one) and FFTW's *wisdom* is kept
between runs in :func:`wisdom_path`, so later processes plan instantly.
Processes plan one at a time (a lock file next to the wisdom), each from
the file's latest wisdom: every process on a machine then transforms a
shape with the algorithm measured first for it, and gives the same bits.
(Processes on different machines, or after the file is deleted, may
measure differently and differ in float32 rounding.)
Set ``PYRF_BLOCKS_FFT=pocketfft`` in the environment, or call
:func:`set_backend`, to use pocketfft even where pyFFTW is installed.
"""

import contextlib
import importlib
import os
import sys
import threading

import msgpack
import numpy as np
from twisted.logger import Logger

from .backends import BackendChoice

__all__ = ["Plan", "backend", "set_backend", "plan", "batches", "batch_rows", "wisdom_path",
           "library_path", "BACKENDS", "BATCH_SAMPLES"]

log = Logger()

#: The FFT implementations, preferred first.
BACKENDS = ("fftw", "pocketfft")
#: Most samples in one batch: 64 Ki complex64 samples, 512 KiB in and
#: 512 KiB out, planned once and used again without allocation.  The
#: window multiply, the FFT and ``|X|²`` are three calls per batch where
#: they are made one by one; the compiled kernels that make them in one
#: call run FFTW on smaller parts of a batch, which stay in a core's
#: second-level cache (:data:`~pyrf_blocks.numerics.kernels.FUSED_BATCH_SAMPLES`).
BATCH_SAMPLES = 64 * 1024

_threads = threading.local()
#: FFTW's planner, and so every plan made or destroyed, one thread at a
#: time (re-entrant: a plan collected while this thread plans is destroyed
#: under it).
_wisdom_lock = threading.RLock()
_import_lock = threading.Lock()
#: Whether the wisdom file was read (a corrupt one is reported once).
_wisdom_loaded = False


def _fftw_available():
    try:
        _pyfftw()
    except ImportError:
        return False
    return True


#: What pyFFTW's package imports for interfaces that are not used here,
#: refused while it imports (see :func:`_pyfftw`).
_UNUSED_BY_PYFFTW = ("dask", "scipy.fftpack")


def _pyfftw():
    """
    pyFFTW, imported without dask or scipy's FFTs.  Its package imports
    ``pyfftw.interfaces``, which imports ``dask.array`` wherever dask is
    installed and ``scipy.fftpack`` (so ``scipy.fft``) wherever scipy is,
    for interfaces that are not used here: 0.21 s of CPU for dask in every
    process that plans an FFT (measured 2026-11-30: importing pyFFTW after
    ``pyrf_blocks`` and ``scipy.signal`` took 0.22 s, and 0.007 s without
    dask), and 0.3-0.45 s for scipy's (measured 2026-12-01, scipy 1.17,
    in a worker that had not imported scipy.signal).  So both are refused
    while pyFFTW imports (``pyfftw.interfaces.dask_fft``, ``scipy_fft`` and
    ``scipy_fftpack`` are then absent until imported by name), unless this
    process has imported them already; later imports of them work as
    usual.
    """
    # Under a lock: a plan made in another thread meanwhile waits for the
    # whole import (not a module half imported), and the modules are
    # refused once.
    with _import_lock:
        blocked = [] if "pyfftw" in sys.modules else [
            name for name in _UNUSED_BY_PYFFTW if name not in sys.modules]
        for name in blocked:
            sys.modules[name] = None  # import NAME... raises ImportError
        try:
            return importlib.import_module("pyfftw")
        finally:
            for name in blocked:
                if sys.modules.get(name, False) is None:
                    del sys.modules[name]


#: Which FFT this process uses (:mod:`pyrf_blocks.numerics.backends`).
choice = BackendChoice("FFT backend", BACKENDS, "PYRF_BLOCKS_FFT", {
    "fftw": (lambda: _fftw_available(),
             "the FFT backend 'fftw' needs pyFFTW: pip install 'pyrf_blocks[fftw]'")})


def backend():
    """
    The backend in use: ``"fftw"`` when pyFFTW is importable (and not
    refused by ``PYRF_BLOCKS_FFT=pocketfft`` or :func:`set_backend`),
    ``"pocketfft"`` otherwise.
    """
    return choice.chosen or choice.get()


def set_backend(name=None):
    """
    Use the FFT backend ``name`` (``"fftw"`` or ``"pocketfft"``), or the
    best available when ``None``; return the one now in use.  Raises
    ``ValueError`` for an unknown name and ``ImportError`` for ``"fftw"``
    without pyFFTW.
    """
    name = choice.set(name)
    _threads.__dict__.clear()  # this thread's plans; other threads re-check
    return name


def wisdom_path():
    """
    Where FFTW's wisdom is kept: ``$XDG_CACHE_HOME/pyrf_blocks/fftw-wisdom``
    (``~/.cache/pyrf_blocks/fftw-wisdom`` by default).  Deleting it only
    makes the next process plan again.
    """
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "pyrf_blocks", "fftw-wisdom")


def _load_wisdom(pyfftw):
    # The file's wisdom becomes this process's: before every plan, under the
    # file's lock, so a plan uses whatever any process on this machine
    # measured first for its shape.  What the process knew before is
    # forgotten first: wisdom it measured elsewhere (under another cache
    # directory, or after pyfftw.forget_wisdom) would otherwise win over
    # the file's for the same sub-problems, go into the file at the next
    # save, and replace the entries that other processes planned with
    # (measured: 2 of 218 entries replaced, so a process started after
    # that planned differently from one started before).  Plans already
    # made keep their algorithms.  Plans are made once per shape and
    # thread, so reading a few KiB each time costs nothing that matters.
    global _wisdom_loaded
    path = wisdom_path()
    first = not _wisdom_loaded
    _wisdom_loaded = True
    try:
        with open(path, "rb") as stream:
            wisdom = msgpack.unpackb(stream.read())
        if not (isinstance(wisdom, list) and len(wisdom) == 3
                and all(isinstance(part, bytes) for part in wisdom)):
            raise ValueError("not FFTW's wisdom (three byte strings)")
        pyfftw.forget_wisdom()
        pyfftw.import_wisdom(tuple(wisdom))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError, msgpack.UnpackException) as error:
        if first:
            log.warn("FFTW wisdom in {path} not used: {error}", path=path, error=error)


@contextlib.contextmanager
def _wisdom_file_lock():
    # Processes plan one at a time on a machine: between reading the wisdom
    # and writing it back no other process measures the same shape.
    # FFTW_MEASURE times candidate algorithms, and two processes measuring
    # one shape at once may pick different ones, which round differently:
    # the same input would give different bits in different processes
    # (measured: 2 of 3 fresh processes disagreed on a 64x1024 batch).
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = wisdom_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        stream = open(path + ".lock", "a+b")
    except OSError:
        yield
        return
    with stream:
        fcntl.flock(stream, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(stream, fcntl.LOCK_UN)


def _save_wisdom(pyfftw):
    path = wisdom_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{os.getpid()}.{threading.get_ident()}"
        with open(temporary, "wb") as stream:
            stream.write(msgpack.packb(list(pyfftw.export_wisdom())))
        os.replace(temporary, path)  # readers see the old file or the new one
    except OSError as error:
        log.warn("FFTW wisdom not kept in {path}: {error}", path=path, error=error)


class Plan:
    """
    The FFT of ``rows`` frames of ``size`` samples, complex (full FFT) or
    real (one-sided).  Write the frames into :attr:`input`, then call
    :meth:`execute`.  A plan belongs to the thread that made it.
    """

    #: The address of FFTW's own plan of the batch, for compiled code
    #: (:func:`~pyrf_blocks.numerics.kernels.window_fft_extreme_into`):
    #: complex input on the FFTW backend, the same algorithm as
    #: :meth:`execute`'s; else 0.
    raw = 0
    #: The plan compiled code runs this batch with, once chosen
    #: (:mod:`~pyrf_blocks.numerics.kernels`: a smaller one that gives the
    #: same bits, or this one).
    fused = None

    def __init__(self, rows, size, complex_input, measure=True):
        self.rows, self.size, self.complex_input = rows, size, complex_input
        self.backend = backend()
        dtype = np.complex64 if complex_input else np.float32
        bins = size if complex_input else size // 2 + 1
        if self.backend == "fftw":
            pyfftw = _pyfftw()
            with _wisdom_lock, _wisdom_file_lock():
                if measure:
                    _load_wisdom(pyfftw)
                else:
                    # An estimate from the problem alone.  FFTW's estimate
                    # takes wisdom where some covers the problem (measured:
                    # a 64-row 256-point estimate gave other bits once the
                    # same shape had been measured), and a process's wisdom
                    # grows as plans are measured: the same shape estimated
                    # earlier, or in another process, would round otherwise.
                    # The next measured plan loads the file again.
                    pyfftw.forget_wisdom()
                #: The frames to transform, written by the caller.
                self.input = pyfftw.empty_aligned((rows, size), dtype)
                self._output = pyfftw.empty_aligned((rows, bins), np.complex64)
                before = pyfftw.export_wisdom() if measure else None
                planner = "FFTW_MEASURE" if measure else "FFTW_ESTIMATE"
                self._fftw = pyfftw.FFTW(self.input, self._output, axes=(-1,),
                                         flags=(planner, "FFTW_DESTROY_INPUT"), threads=1)
                if measure and pyfftw.export_wisdom() != before:
                    _save_wisdom(pyfftw)
                if complex_input:
                    self.raw = _raw_plan(rows, size, self.input, self._output, measure)
        else:
            import scipy.fft  # imported when first needed: half a second
            self._scipy_fft = scipy.fft.fft if complex_input else scipy.fft.rfft
            self.input = np.empty((rows, size), dtype)

    @property
    def output(self):
        """
        Where :meth:`execute` writes on the FFTW backend (``None`` on
        pocketfft's).
        """
        return self._output if self.backend == "fftw" else None

    def __del__(self):
        raw, self.raw = self.raw, 0
        library, lock = _library, _wisdom_lock
        if raw and library and lock is not None:  # (None at interpreter exit)
            with lock:
                library.fftwf_destroy_plan(raw)

    def execute(self):
        """
        Transform :attr:`input` (which may be overwritten); return the
        complex64 spectra ``(rows, bins)``, valid until the next call.
        """
        if self.backend == "fftw":
            self._fftw.execute()
            return self._output
        return self._scipy_fft(self.input, axis=-1, overwrite_x=True, workers=1)


def plan(rows, size, complex_input, measure=True):
    """
    This thread's :class:`Plan` for ``rows`` frames of ``size`` samples,
    made on first use; with ``measure`` FFTW times candidate algorithms
    (``FFTW_MEASURE``), else it estimates (``FFTW_ESTIMATE``: no time).
    A measured and an estimated plan of one shape are two plans, each the
    same algorithm in every thread and process of the machine (measured:
    the first measurement's, kept in the wisdom file; estimated: from the
    problem alone, without wisdom), whichever was asked for first.
    """
    key = (rows, size, complex_input, measure, backend())
    plans = _threads.__dict__
    found = plans.get(key)
    if found is None:
        found = plans[key] = Plan(rows, size, complex_input, measure)
    return found


def batch_rows(size, samples=None):
    """
    Rows of the largest batch for frames of ``size`` samples: the largest
    power of two with at most ``samples`` samples (:data:`BATCH_SAMPLES`
    by default; at least 1).
    """
    rows = max(1, (samples or BATCH_SAMPLES) // size)
    return 1 << (rows.bit_length() - 1)


def batches(rows, size, complex_input):
    """
    ``(first row, plan)`` pairs covering ``rows`` frames with this
    thread's plans: full batches of :func:`batch_rows`, then one plan per
    set bit of what is left (so at most a handful of shapes are ever
    planned for a frame size).  Only the full batch, which carries the
    bulk of a steady stream, is measured; the smaller ones are estimated,
    so a new chunking costs no planning time (measuring each of them took
    seconds on a loaded 2-core machine).  The list is kept per thread, as
    the plans are: a stream's chunks mostly have the same number of rows.
    """
    key = ("batches", rows, size, complex_input, backend())
    cached = _threads.__dict__
    found = cached.get(key)
    if found is None:
        found = cached[key] = tuple(_batches(rows, size, complex_input))
    return found


def _batches(rows, size, complex_input):
    largest = batch_rows(size)
    first = 0
    while rows - first >= largest:
        yield first, plan(largest, size, complex_input)
        first += largest
    step = largest >> 1
    while first < rows:
        if rows - first >= step:
            yield first, plan(step, size, complex_input, measure=False)
            first += step
        step >>= 1


# FFTW's plan of a batch as compiled code runs it: the window multiply, the
# FFT and |X|² in one call that releases the GIL once
# (kernels.window_fft_extreme_into), not three.  Made from the wisdom the
# pyFFTW plan of the same batch left: the same algorithm, so the same bits.

_FFTW_FORWARD = -1
_FFTW_MEASURE = 0
_FFTW_DESTROY_INPUT = 1
_FFTW_ESTIMATE = 1 << 6
_FFTW_WISDOM_ONLY = 1 << 21
_library = None


def library_path():
    """
    The path of the single-precision FFTW library pyFFTW runs in this
    process (read from ``/proc/self/maps``: the very library whose wisdom
    and plans pyFFTW uses), or ``None`` where it cannot be told.
    """
    pyfftw = sys.modules.get("pyfftw")
    if pyfftw is None:
        return None
    found = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(None, 5)[-1].strip()
                name = os.path.basename(path)
                if name.startswith("libfftw3f") and not name.startswith(
                        ("libfftw3f_omp", "libfftw3f_threads", "libfftw3f_mpi")):
                    found.add(path)
    except OSError:
        return None
    if len(found) > 1:
        # Several copies loaded (another package brought its own): the one
        # that pyFFTW's wheel carries next to it, else none (no guessing).
        home = os.path.dirname(os.path.dirname(os.path.abspath(pyfftw.__file__)))
        found = {path for path in found if path.startswith(home + os.sep)}
    return found.pop() if len(found) == 1 else None


def _fftw_library():
    global _library
    if _library is None:
        import ctypes

        path = library_path()
        library = ctypes.CDLL(path) if path else False
        if library:
            library.fftwf_plan_many_dft.restype = ctypes.c_void_p
            library.fftwf_plan_many_dft.argtypes = [
                ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                ctypes.c_int, ctypes.c_uint]
            library.fftwf_destroy_plan.restype = None
            library.fftwf_destroy_plan.argtypes = [ctypes.c_void_p]
        _library = library
    return _library


def _raw_plan(rows, size, input, output, measure):
    # Under the planner's lock (FFTW's planner is not thread-safe).  A
    # measured plan is taken from wisdom only: pyFFTW has just planned (or
    # found) this very problem, so the wisdom holds its algorithm; an
    # estimated one is the same estimate.  0 where it cannot be made.
    import ctypes

    library = _fftw_library()
    if not library:
        return 0
    flags = _FFTW_DESTROY_INPUT | (_FFTW_MEASURE | _FFTW_WISDOM_ONLY if measure
                                   else _FFTW_ESTIMATE)
    n = (ctypes.c_int * 1)(size)
    return library.fftwf_plan_many_dft(1, n, rows, input.ctypes.data, None, 1, size,
                                       output.ctypes.data, None, 1, size, _FFTW_FORWARD,
                                       flags) or 0
