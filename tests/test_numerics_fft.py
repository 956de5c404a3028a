"""
FFT plans: FFTW (pyFFTW) and pocketfft give the same spectra within float32
rounding, pocketfft is used when FFTW is refused or missing, plans are made
once per shape and thread, and FFTW's wisdom is kept between runs.
"""

import os
import subprocess
import sys
import threading

import msgpack
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from pyrf_blocks.numerics import fft
from pyrf_blocks.numerics.spectral import frame_spectra, overlapping_frames, window


@pytest.fixture
def use_backend():
    """
    Switch the FFT backend for one test; the default is restored after.
    """
    yield fft.set_backend
    fft.set_backend(None)


def _frames(rows, size, complex_input, seed=0):
    rng = np.random.default_rng(seed)
    if complex_input:
        return rng.standard_normal((rows, 2 * size), dtype=np.float32).view(np.complex64)
    return rng.standard_normal((rows, size), dtype=np.float32)


@pytest.mark.parametrize("complex_input", [True, False])
@pytest.mark.parametrize("rows", [1, 37, 64, 130])
def test_fftw_and_pocketfft_give_the_same_spectra(use_backend, complex_input, rows):
    """Both backends give the same powers within float32 rounding, for any number of rows."""
    pytest.importorskip("pyfftw")
    frames = _frames(rows, 1024, complex_input)
    values = window("hann", 1024, shift=complex_input)
    use_backend("fftw")
    with_fftw = frame_spectra(frames, values, complex_input)
    use_backend("pocketfft")
    with_pocketfft = frame_spectra(frames, values, complex_input)
    expected = np.abs(np.fft.fft(frames * values) if complex_input
                      else np.fft.rfft(frames * values)) ** 2
    scale = expected.max()
    assert with_fftw.shape == with_pocketfft.shape == expected.shape
    assert_allclose(with_fftw, expected, rtol=1e-4, atol=1e-6 * scale)
    assert_allclose(with_pocketfft, expected, rtol=1e-4, atol=1e-6 * scale)
    assert_allclose(with_fftw, with_pocketfft, rtol=1e-4, atol=1e-6 * scale)


@pytest.mark.parametrize("name", fft.BACKENDS)
def test_an_impulse_has_a_flat_spectrum(use_backend, name):
    """On either backend, a unit impulse reads power 1 in every bin."""
    if name == "fftw":
        pytest.importorskip("pyfftw")
    use_backend(name)
    frames = np.zeros((3, 256), np.complex64)
    frames[:, 0] = 1
    assert_allclose(frame_spectra(frames, np.ones(256, np.float32), True), 1.0, rtol=1e-6)


def test_the_environment_forces_pocketfft(monkeypatch, use_backend):
    """PYRF_BLOCKS_FFT=pocketfft chooses pocketfft even where pyFFTW is installed."""
    monkeypatch.setenv("PYRF_BLOCKS_FFT", "pocketfft")
    monkeypatch.setattr(fft.choice, "chosen", None)
    assert fft.backend() == "pocketfft"
    assert fft.plan(4, 64, True).backend == "pocketfft"


def test_pocketfft_is_the_fallback_without_pyfftw(monkeypatch, use_backend):
    """Without pyFFTW the default is pocketfft, and asking for FFTW says what to install."""
    monkeypatch.setattr(fft, "_fftw_available", lambda: False)
    assert use_backend(None) == "pocketfft"
    with pytest.raises(ImportError, match=r"pyrf_blocks\[fftw\]"):
        use_backend("fftw")
    with pytest.raises(ValueError, match="unknown FFT backend 'mkl'"):
        use_backend("mkl")


@pytest.mark.parametrize("size", [1024, 100, 1 << 17])
def test_batches_cover_every_row_with_few_shapes(size):
    """Batches cover 0..300 rows exactly, in order, with at most log2 + 1 plan shapes."""
    shapes = set()
    for rows in range(301):
        covered = 0
        for first, plan in fft.batches(rows, size, True):
            assert first == covered and plan.size == size
            covered += plan.rows
            shapes.add(plan.rows)
        assert covered == rows
    assert len(shapes) <= fft.batch_rows(size).bit_length()
    assert fft.batch_rows(size) * size <= max(fft.BATCH_SAMPLES, size)


def test_a_plan_is_made_once_per_shape_and_thread():
    """The same thread gets the same plan back; another thread gets its own."""
    first = fft.plan(8, 128, True)
    assert fft.plan(8, 128, True) is first
    other = []
    thread = threading.Thread(target=lambda: other.append(fft.plan(8, 128, True)))
    thread.start()
    thread.join()
    assert other[0] is not first


def test_fftw_wisdom_is_kept_in_the_cache_directory(monkeypatch, tmp_path, use_backend):
    """Planning a new shape writes FFTW's wisdom under $XDG_CACHE_HOME, which a new process loads."""
    pyfftw = pytest.importorskip("pyfftw")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(fft, "_wisdom_loaded", False)
    use_backend("fftw")
    path = tmp_path / "pyrf_blocks" / "fftw-wisdom"
    assert fft.wisdom_path() == str(path)
    pyfftw.forget_wisdom()
    fft.plan(3, 520, True)  # a shape nothing else plans
    stored = path.read_bytes()
    wisdom = msgpack.unpackb(stored)
    assert len(wisdom) == 3 and wisdom[1]  # (double, single, long double); ours is single
    # A new process (no other thread of this one planning meanwhile) loads it.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, pyfftw\n"
         "from pyrf_blocks.numerics import fft\n"
         "fft._load_wisdom(pyfftw)\n"
         "sys.stdout.buffer.write(pyfftw.export_wisdom()[1])"],
        capture_output=True, timeout=120, check=True,
        env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path)))
    assert path.read_bytes() == stored, "the file changed while the child read it"
    # The same entries; FFTW may export them in another order after an import.
    assert sorted(loaded.stdout.splitlines()) == sorted(wisdom[1].splitlines())
    assert b"fftwf_" in loaded.stdout


def test_a_plan_takes_the_files_wisdom_and_nothing_it_measured_elsewhere(monkeypatch, tmp_path,
                                                                         use_backend):
    """Before planning, a process's wisdom becomes the file's: what it measured under another cache directory is forgotten, so it never replaces the file's entries when it saves."""
    pyfftw = pytest.importorskip("pyfftw")
    use_backend("fftw")
    shared, elsewhere = tmp_path / "shared", tmp_path / "elsewhere"
    # The machine's file, written by another process.
    subprocess.run([sys.executable, "-c", "from pyrf_blocks.numerics import fft\n"
                    "fft.set_backend('fftw')\nfft.plan(5, 96, True)"],
                   capture_output=True, timeout=120, check=True,
                   env=dict(os.environ, XDG_CACHE_HOME=str(shared)))
    path = shared / "pyrf_blocks" / "fftw-wisdom"
    kept = msgpack.unpackb(path.read_bytes())
    # This process measures a shape away from it...
    monkeypatch.setenv("XDG_CACHE_HOME", str(elsewhere))
    pyfftw.forget_wisdom()
    fft.plan(3, 520, True)
    assert pyfftw.export_wisdom()[1]
    # ...then plans with the machine's file: its wisdom is the file's.
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
    fft._load_wisdom(pyfftw)
    assert sorted(pyfftw.export_wisdom()[1].splitlines()) == sorted(kept[1].splitlines())
    fft.plan(4, 130, True)  # a new shape: measured, and the file gains it
    saved = set(msgpack.unpackb(path.read_bytes())[1].splitlines())
    assert set(kept[1].splitlines()) < saved


def test_an_estimated_plan_takes_no_wisdom(use_backend, tmp_path):
    """A shape estimated after the same shape was measured (FFTW's estimate would take that wisdom) gives the bits of an estimate in a process with no wisdom at all; a plan asked for measured and estimated is two plans."""
    pytest.importorskip("pyfftw")
    use_backend("fftw")
    estimate = ("import hashlib, sys\n"
                "import numpy as np\n"
                "from pyrf_blocks.numerics import fft\n"
                "fft.set_backend('fftw')\n"
                "frames = np.random.default_rng(5).standard_normal((64, 512), np.float32)\n"
                "plan = fft.Plan(64, 256, True, measure=False)\n"
                "if len(sys.argv) > 1:\n"
                "    fft.Plan(64, 256, True, measure=True)\n"
                "    plan = fft.Plan(64, 256, True, measure=False)\n"
                "plan.input[...] = frames.view(np.complex64)\n"
                "print(hashlib.sha256(plan.execute().tobytes()).hexdigest())\n")

    def digest(*args, cache):
        return subprocess.run([sys.executable, "-c", estimate, *args], capture_output=True,
                              text=True, timeout=120, check=True,
                              env=dict(os.environ, XDG_CACHE_HOME=str(cache))).stdout
    # Without any wisdom, and after measuring with this machine's wisdom file.
    assert digest("after", cache=os.path.dirname(os.path.dirname(fft.wisdom_path()))) == \
        digest(cache=tmp_path)
    assert fft.plan(64, 256, True, measure=False) is not fft.plan(64, 256, True)


def test_unreadable_wisdom_is_reported_and_ignored(monkeypatch, tmp_path, use_backend, logged):
    """A corrupt wisdom file is logged once and planning goes on without it."""
    pytest.importorskip("pyfftw")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(fft, "_wisdom_loaded", False)
    (tmp_path / "pyrf_blocks").mkdir()
    (tmp_path / "pyrf_blocks" / "fftw-wisdom").write_bytes(b"\xc1 not msgpack")
    use_backend("fftw")
    # (a full batch, whose plan is measured: estimates read no wisdom)
    frames = _frames(fft.batch_rows(64), 64, True)
    assert frame_spectra(frames, np.ones(64, np.float32), True).shape == (len(frames), 64)
    assert any("not used" in str(event.get("log_format")) for event in logged)


_PLAN_AND_HASH = """
import hashlib, sys
import numpy as np
from pyrf_blocks.numerics import fft
from pyrf_blocks.numerics.spectral import frame_spectra
fft.set_backend("fftw")
frames = np.random.default_rng(0).standard_normal((64, 2048), dtype=np.float32).view(np.complex64)
sys.stdout.write(hashlib.sha1(frame_spectra(frames, np.ones(1024, np.float32), True)
                              .tobytes()).hexdigest())
"""


def test_processes_planning_at_once_give_the_same_bits(tmp_path):
    """Processes that plan one shape at the same time, with no wisdom yet, transform it alike, bit for bit."""
    pytest.importorskip("pyfftw")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    children = [subprocess.Popen([sys.executable, "-c", _PLAN_AND_HASH], env=env,
                                 stdout=subprocess.PIPE) for _ in range(3)]
    digests = {child.communicate(timeout=120)[0] for child in children}
    assert all(child.returncode == 0 for child in children)
    assert len(digests) == 1


_PLAN_WITHOUT_DASK = """
import sys
import numpy as np
from pyrf_blocks.numerics import fft
from pyrf_blocks.numerics.spectral import frame_spectra
fft.set_backend("fftw")
frames = np.zeros((2, 64), np.complex64)
frames[:, 0] = 1
flat = bool(np.allclose(frame_spectra(frames, np.ones(64, np.float32), True), 1.0))
without = "dask" not in sys.modules
import dask.array  # still importable afterwards
print(flat, without, dask.array.ones(3).sum().compute())
"""


def test_fftw_plans_without_importing_dask():
    """A process that plans FFTs does not import dask (pyFFTW's interfaces would: 0.2-0.4 s), and can import it later."""
    pytest.importorskip("pyfftw")
    pytest.importorskip("dask.array")
    result = subprocess.run([sys.executable, "-c", _PLAN_WITHOUT_DASK], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "3.0"]


_PLAN_WITHOUT_SCIPY_FFT = """
import sys
import numpy as np
from pyrf_blocks.numerics import fft
from pyrf_blocks.numerics.spectral import frame_spectra
fft.set_backend("fftw")
frames = np.zeros((2, 64), np.complex64)
frames[:, 0] = 1
flat = bool(np.allclose(frame_spectra(frames, np.ones(64, np.float32), True), 1.0))
without = not {"scipy.fft", "scipy.fftpack"} & set(sys.modules)
import pyfftw.interfaces.scipy_fft, scipy.fftpack  # still importable afterwards
print(flat, without, pyfftw.interfaces.scipy_fft.fft(np.ones(4))[0].real,
      scipy.fftpack.fft(np.ones(4))[0].real)
"""


def test_fftw_plans_without_importing_scipys_ffts():
    """A process that plans FFTs with FFTW does not import scipy.fft (pyFFTW's interfaces would: 0.3-0.45 s), and can import them later."""
    pytest.importorskip("pyfftw")
    result = subprocess.run([sys.executable, "-c", _PLAN_WITHOUT_SCIPY_FFT], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "4.0", "4.0"]


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 3000), size=st.integers(1, 300), hop=st.integers(1, 400),
       contiguous=st.booleans())
def test_overlapping_frames_are_numpys_sliding_window(length, size, hop, contiguous):
    """overlapping_frames is sliding_window_view(samples, size)[::hop] cut to count rows: read-only, sharing the samples, strided input too."""
    assume(size <= length)
    base = np.arange(2 * length, dtype=np.float32).view(np.complex64)
    samples = base if contiguous else np.arange(4 * length, dtype=np.float32).view(
        np.complex64)[::2]
    count = (length - size) // hop + 1
    frames = overlapping_frames(samples, size, hop, count)
    expected = np.lib.stride_tricks.sliding_window_view(samples, size)[:count * hop:hop]
    assert frames.shape == (count, size) and not frames.flags.writeable
    assert_array_equal(frames, expected)
    assert np.shares_memory(frames, samples)
