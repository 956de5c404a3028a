"""
The spectrum chain's kernels: numba's and numpy's window multiply and
``|X|²`` agree with plain numpy within float32 rounding, for complex and
real frames, contiguous or overlapping; the backend is chosen as
documented.
"""

import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from pyrf_blocks.numerics import kernels
from pyrf_blocks.numerics.spectral import frame_extreme, frame_spectra, window


@pytest.fixture(params=kernels.BACKENDS)
def kernel_backend(request):
    """
    Each kernel backend in turn (numba skipped where missing); the default
    is restored after.
    """
    if request.param == "numba":
        pytest.importorskip("numba")
    kernels.set_backend(request.param)
    yield request.param
    kernels.set_backend()


def _samples(count, complex_input, seed=0):
    rng = np.random.default_rng(seed)
    if complex_input:
        return rng.standard_normal(2 * count, dtype=np.float32).view(np.complex64)
    return rng.standard_normal(count, dtype=np.float32)


@pytest.mark.parametrize("complex_input", [True, False])
def test_window_into_is_the_broadcast_multiply(kernel_backend, complex_input):
    """Frames times a window equal numpy's broadcast multiply exactly (finite samples)."""
    frames = _samples(37 * 256, complex_input).reshape(37, 256)
    values = window("hann", 256, shift=complex_input)
    out = np.empty_like(frames)
    assert kernels.window_into(frames, values, out) is out
    assert_array_equal(out, frames * values)


def test_both_backends_window_complex_frames_with_the_same_bits():
    """Complex samples become (a·w, b·w) on numba's kernels and numpy's alike, bit for bit: ±0, ±inf and NaN too."""
    pytest.importorskip("numba")
    frames = _samples(9 * 256, True).reshape(9, 256)
    frames[1, :6] = [np.complex64(complex(np.inf, 1)), np.complex64(complex(-2, -np.inf)),
                     np.complex64(complex(np.nan, 0)), np.complex64(complex(-0.0, 0.0)),
                     np.complex64(complex(3, -0.0)), np.complex64(complex(1e-45, -1e38))]
    values = window("hann", 256, shift=True)  # (its first value is 0: inf times 0)
    outs = []
    try:
        for name in kernels.BACKENDS:
            kernels.set_backend(name)
            with np.errstate(invalid="ignore"):  # (inf times 0, on purpose)
                outs.append(kernels.window_into(frames, values, np.empty_like(frames)))
    finally:
        kernels.set_backend()
    numba_out, numpy_out = outs
    assert numba_out.tobytes() == numpy_out.tobytes()
    with np.errstate(invalid="ignore"):
        pairs = frames.view(np.float32) * np.repeat(values, 2)
    assert numba_out.view(np.float32).tobytes() == pairs.tobytes()


def test_window_into_takes_overlapping_frames(kernel_backend):
    """Frames that are a strided view (overlap) are windowed as their copy would be."""
    samples = _samples(4096, True)
    frames = np.lib.stride_tricks.sliding_window_view(samples, 256)[::192]
    values = window("flattop", 256)
    out = np.empty(frames.shape, np.complex64)
    kernels.window_into(frames, values, out)
    assert_array_equal(out, np.ascontiguousarray(frames) * values)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 70), hop=st.integers(1, 90), rows=st.integers(1, 9),
       complex_input=st.booleans(), offset=st.integers(0, 3))
def test_strided_frames_are_windowed_as_their_copy_bit_for_bit(size, hop, rows, complex_input,
                                                              offset):
    """Frames hop samples apart (overlapping, adjacent or with gaps, from any offset) give the bits of their contiguous copy on both backends."""
    samples = _samples(offset + (rows - 1) * hop + size, complex_input)[offset:]
    step = samples.itemsize
    frames = np.lib.stride_tricks.as_strided(samples, (rows, size), (hop * step, step),
                                             writeable=False)
    values = np.linspace(-1, 1, size, dtype=np.float32)
    outs = []
    try:
        for name in kernels.BACKENDS:
            if name == "numba" and not kernels._numba_available():
                continue
            kernels.set_backend(name)
            for given_frames in (frames, np.ascontiguousarray(frames)):
                out = np.empty(frames.shape, frames.dtype)
                kernels.window_into(given_frames, values, out)
                outs.append(out.tobytes())
    finally:
        kernels.set_backend()
    assert len(set(outs)) == 1
    copy = np.ascontiguousarray(frames)
    expected = (copy.view(np.float32) * np.repeat(values, 2) if complex_input
                else copy * values)  # ((a·w, b·w) for a + bi)
    assert outs[0] == expected.tobytes()


def test_power_into_is_the_squared_magnitude(kernel_backend):
    """|X|² matches numpy's abs squared within float32 rounding, zero stays zero."""
    spectra = _samples(64 * 1024, True).reshape(64, 1024)
    spectra[3, 5] = 0
    out = np.empty(spectra.shape, np.float32)
    assert kernels.power_into(spectra, out) is out
    assert_allclose(out, np.abs(spectra.astype(np.complex128)) ** 2, rtol=1e-6)
    assert out[3, 5] == 0


@pytest.mark.parametrize("complex_input", [True, False])
def test_both_backends_give_the_same_spectra(complex_input):
    """frame_spectra with numba's kernels and with numpy's agree within float32 rounding."""
    pytest.importorskip("numba")
    frames = _samples(130 * 1024, complex_input).reshape(130, 1024)
    values = window("hann", 1024, shift=complex_input)
    try:
        kernels.set_backend("numba")
        compiled = frame_spectra(frames, values, complex_input)
        kernels.set_backend("numpy")
        plain = frame_spectra(frames, values, complex_input)
    finally:
        kernels.set_backend()
    assert_allclose(compiled, plain, rtol=1e-5, atol=1e-7 * plain.max())


def test_numba_is_the_default_and_the_environment_forces_numpy(monkeypatch):
    """numba's kernels where numba is installed, unless PYRF_BLOCKS_KERNELS=numpy."""
    pytest.importorskip("numba")
    monkeypatch.setattr(kernels.choice, "chosen", None)
    monkeypatch.delenv("PYRF_BLOCKS_KERNELS", raising=False)
    try:
        assert kernels.backend() == "numba"
        monkeypatch.setattr(kernels.choice, "chosen", None)
        monkeypatch.setenv("PYRF_BLOCKS_KERNELS", "numpy")
        assert kernels.backend() == "numpy"
        monkeypatch.setattr(kernels.choice, "chosen", None)
        monkeypatch.setenv("PYRF_BLOCKS_KERNELS", "numba")
        assert kernels.backend() == "numba"
    finally:
        kernels.set_backend()


def test_an_unknown_backend_is_refused():
    """set_backend names the unknown kernels and the choices."""
    with pytest.raises(ValueError, match="unknown kernels 'fortran'.*numba, numpy"):
        kernels.set_backend("fortran")


def test_numba_refused_without_numba(monkeypatch):
    """Asking for numba where it is missing says how to install it."""
    monkeypatch.setattr(kernels.choice, "chosen", kernels.choice.chosen)  # restored after the test
    monkeypatch.setattr(kernels, "_numba_available", lambda: False)
    with pytest.raises(ImportError, match=r"pyrf_blocks\[numba\]"):
        kernels.set_backend("numba")
    assert kernels.set_backend() == "numpy"


@pytest.mark.parametrize("combine", [np.maximum, np.minimum])
def test_power_extreme_into_is_power_then_reduce_bit_for_bit(combine):
    """The one-pass |X|² extreme gives the bits of power_into then combine.reduce, also when continued."""
    pytest.importorskip("numba")
    spectra = _samples(100 * 512, True).reshape(100, 512)
    spectra[7, 3] = 0
    spectra[9, 4] = np.complex64(np.inf)
    kernels.set_backend("numba")
    try:
        powers = kernels.power_into(spectra, np.empty(spectra.shape, np.float32))
        out = np.empty(512, np.float32)
        zero = 2 if combine is np.minimum else 1  # (the minimum of column 3 is 0)
        assert kernels.power_extreme_into(spectra, out, combine) == zero
        assert out.tobytes() == combine.reduce(powers, axis=0).tobytes()
        assert kernels.power_extreme_into(spectra[:40], out, combine) == zero
        assert kernels.power_extreme_into(spectra[40:], out, combine, start=False) == zero
        assert out.tobytes() == combine.reduce(powers, axis=0).tobytes()
    finally:
        kernels.set_backend()


def test_power_extreme_into_declines_nan_and_numpy():
    """A NaN power, or numpy's kernels, leave the extreme to the caller's unfused route (False)."""
    spectra = _samples(8 * 64, True).reshape(8, 64)
    out = np.empty(64, np.float32)
    kernels.set_backend("numpy")
    try:
        assert not kernels.power_extreme_into(spectra, out, np.maximum)
        if kernels._numba_available():
            kernels.set_backend("numba")
            spectra[5, 6] = np.complex64(complex(np.nan, 1.0))
            assert not kernels.power_extreme_into(spectra, out, np.maximum)
    finally:
        kernels.set_backend()


@pytest.mark.parametrize("complex_input", [True, False])
@pytest.mark.parametrize("rows", [1, 64, 100, 130])
def test_frame_extreme_is_the_reduce_of_frame_spectra(kernel_backend, complex_input, rows):
    """frame_extreme's row is the bits of combine.reduce over frame_spectra, NaN frames too."""
    frames = _samples(rows * 256, complex_input).reshape(rows, 256)
    values = window("hann", 256, shift=complex_input)
    bins = 256 if complex_input else 129
    for combine in (np.maximum, np.minimum):
        out = np.empty((1, bins), np.float32)
        frame_extreme(frames, values, complex_input, combine, out)
        expected = combine.reduce(frame_spectra(frames, values, complex_input), axis=0)
        assert out.tobytes() == expected.tobytes()
    for bad in (np.inf, np.nan):  # (an infinite sample, then a NaN besides)
        frames[rows // 2, 3] = bad
        for combine in (np.maximum, np.minimum):
            out = np.empty((1, bins), np.float32)
            frame_extreme(frames, values, complex_input, combine, out)
            expected = combine.reduce(frame_spectra(frames, values, complex_input), axis=0)
            assert out.tobytes() == expected.tobytes()


@pytest.mark.filterwarnings("error")
def test_calibrated_extreme_is_the_calibrated_reduce_and_never_warns(kernel_backend):
    """calibrated_extreme gives power_to_dbm of the reduce bit for bit; a zero extreme is -inf dBm without a warning."""
    from pyrf_blocks.numerics.spectral import calibrated_extreme, power_to_dbm

    frames = _samples(64 * 256, True).reshape(64, 256)
    frames[5] = 0  # a silent frame: its powers, and so the minimum, are 0
    values = window("hann", 256, shift=True)
    for combine in (np.maximum, np.minimum):
        out = np.empty((1, 256), np.float32)
        calibrated_extreme(frames, values, True, combine, out, 120.5, -3.0)
        expected = power_to_dbm(combine.reduce(frame_spectra(frames, values, True), axis=0),
                                120.5, -3.0)
        assert out[0].tobytes() == expected.tobytes()
        assert np.isneginf(out).all() == (combine is np.minimum)


@pytest.mark.parametrize("combine", [np.maximum, np.minimum])
def test_window_fft_extreme_into_is_the_three_steps_bit_for_bit(combine):
    """One compiled call (window, FFTW, extreme) gives the bits of the three steps taken apart."""
    pytest.importorskip("numba")
    from pyrf_blocks.numerics import fft

    if fft.backend() != "fftw":
        pytest.skip("needs pyFFTW")
    kernels.set_backend("numba")
    try:
        samples = _samples(64 * 1024 + 512, True)
        values = window("hann", 1024, shift=True)
        contiguous = samples[:64 * 1024].reshape(64, 1024)
        overlapping = np.lib.stride_tricks.sliding_window_view(samples, 1024)[::512][:64]
        for rows in (64, 8):  # a measured plan and an estimated one
            plan = fft.plan(rows, 1024, True, measure=rows == 64)
            assert plan.raw
            for frames in (contiguous[:rows], overlapping[:rows]):
                kernels.window_into(frames, values, plan.input)
                expected = np.empty(1024, np.float32)
                assert kernels.power_extreme_into(plan.execute(), expected, combine) == 1
                out = np.empty(1024, np.float32)
                assert kernels.window_fft_extreme_into(frames, values, plan, out, combine) == 1
                assert out.tobytes() == expected.tobytes()
        kernels.set_backend("numpy")
        assert kernels.window_fft_extreme_into(contiguous, values, plan, out, combine) is None
    finally:
        kernels.set_backend()


@pytest.mark.parametrize("combine", [np.maximum, np.minimum])
def test_window_fft_extremes_into_is_each_chunk_alone_bit_for_bit(combine):
    """Several chunks in one compiled call give each chunk's row of the call made alone, bit for bit, and its calibration that of dbm_into; a NaN chunk says so."""
    pytest.importorskip("numba")
    from pyrf_blocks.numerics import fft

    if fft.backend() != "fftw":
        pytest.skip("needs pyFFTW")
    kernels.set_backend("numba")

    def outs(count):
        return [np.full((1, 1024), 7, np.float32) for _ in range(count)]

    try:
        values = window("hann", 1024, shift=True)
        plan = fft.plan(64, 1024, True)
        chunks = tuple(_samples(rows * 1024, True, seed).reshape(rows, 1024)
                       for seed, rows in enumerate((64, 128, 64)))
        chunks[2][70 % 64, 9] = np.nan
        calibration = (-57.25, 6.0206, 1, 512)
        alone = []
        for index in (0, 1):
            row = np.empty(1024, np.float32)
            for first in range(0, len(chunks[index]), 64):
                assert kernels.window_fft_extreme_into(chunks[index][first:first + 64], values,
                                                       plan, row, combine, first == 0) == 1
            alone.append(row)
        plain, calibrated = outs(3), outs(3)
        found = kernels.window_fft_extremes_into(chunks, values, plan, plain, combine)
        assert found.tolist() == [1, 1, 0]
        found = kernels.window_fft_extremes_into(chunks, values, plan, calibrated, combine,
                                                 calibration)
        assert found.tolist() == [1, 1, 0]
        for index in (0, 1):
            assert plain[index][0].tobytes() == alone[index].tobytes()
            expected = kernels.dbm_into(alone[index], np.empty(1024, np.float32), *calibration)
            assert calibrated[index][0].tobytes() == expected.tobytes()
        # Groups of any size: one machine code (a new one per size would be
        # compiled, or loaded, while a stream runs).
        signatures = len(kernels._fused_group.signatures)
        for count in (1, 5, 11):
            rows = outs(count)
            found = kernels.window_fft_extremes_into([chunks[0]] * count, values, plan, rows,
                                                     combine)
            assert found.tolist() == [1] * count
            assert all(row[0].tobytes() == alone[0].tobytes() for row in rows)
        assert len(kernels._fused_group.signatures) == signatures
        kernels.set_backend("numpy")
        assert kernels.window_fft_extremes_into(chunks, values, plan, outs(3), combine) is None
    finally:
        kernels.set_backend()


@pytest.mark.parametrize("combine", [np.maximum, np.minimum])
def test_window_fft_extreme_dbm_into_is_the_two_calls_bit_for_bit(combine, monkeypatch):
    """One compiled call for a chunk's calibrated extreme gives the bits of window_fft_extreme_into then dbm_into, for contiguous, overlapping, one-frame and several-batch chunks; calibrated_extreme takes it; a NaN, a row of the wrong shape and numpy's kernels say so."""
    pytest.importorskip("numba")
    from pyrf_blocks.numerics import fft, spectral

    if fft.backend() != "fftw":
        pytest.skip("needs pyFFTW")
    kernels.set_backend("numba")
    try:
        samples = _samples(128 * 1024 + 512, True, 3)
        samples[7 * 1024:8 * 1024] = 0  # a silent frame: the minimum is -inf dBm
        values = window("hann", 1024, shift=True)
        calibration = (-57.25, 6.0206, 1, 512)
        contiguous = samples[:128 * 1024].reshape(128, 1024)
        overlapping = np.lib.stride_tricks.sliding_window_view(samples, 1024)[::512][:64]
        for frames in (contiguous[:64], contiguous, overlapping, contiguous[8:9]):
            plan = fft.batches(len(frames), 1024, True)[0][1]
            expected = np.empty(1024, np.float32)
            for first in range(0, len(frames), plan.rows):
                assert kernels.window_fft_extreme_into(frames[first:first + plan.rows], values,
                                                       plan, expected, combine, first == 0)
            kernels.dbm_into(expected, expected, *calibration)
            out = np.full((1, 1024), 7, np.float32)
            assert kernels.window_fft_extreme_dbm_into(frames, values, plan, out, combine,
                                                       calibration) in (1, 2)
            assert out[0].tobytes() == expected.tobytes()
            silent = bool((np.abs(frames).max(axis=1) == 0).any())  # (frame 7 among them)
            assert np.isneginf(out).all() == (silent and combine is np.minimum)
        plan = fft.plan(64, 1024, True)
        assert kernels.window_fft_extreme_dbm_into(contiguous[:64], values, plan,
                                                   np.empty(1024, np.float32), combine,
                                                   calibration) is None
        assert kernels.window_fft_extreme_dbm_into(contiguous[:96], values, plan,
                                                   out, combine, calibration) is None
        nan = contiguous[:64].copy()
        nan[3, 5] = np.nan
        assert kernels.window_fft_extreme_dbm_into(nan, values, plan, out, combine,
                                                   calibration) == 0
        # calibrated_extreme runs it, in one call, and a NaN chunk takes the
        # steps apart (numpy's NaN, as before).
        steps = spectral._extreme
        monkeypatch.setattr(spectral, "_extreme", None)
        row = np.empty((1, 1024), np.float32)
        spectral.calibrated_extreme(contiguous, values, True, combine, row, 900.0, 3.0)
        monkeypatch.setattr(spectral, "_extreme", steps)
        alone = np.empty((1, 1024), np.float32)
        steps(contiguous, values, True, combine, alone)
        expected = spectral.power_to_dbm(alone, 900.0, 3.0)
        assert row.tobytes() == expected.tobytes()
        spectral.calibrated_extreme(nan, values, True, combine, row, 900.0, 3.0)
        expected = spectral.power_to_dbm(
            combine.reduce(frame_spectra(nan, values, True), axis=0), 900.0, 3.0)
        assert row[0].tobytes() == expected.tobytes()
        kernels.set_backend("numpy")
        assert kernels.window_fft_extreme_dbm_into(contiguous[:64], values, plan, out,
                                                   combine, calibration) is None
    finally:
        kernels.set_backend()


def test_the_compiled_kernels_run_a_smaller_plan_only_where_it_gives_the_same_bits(monkeypatch):
    """A batch's frames go through a plan of FUSED_BATCH_SAMPLES only where it transforms them to the bits of the batch's own plan; else through the batch's plan; the choice is made once per plan."""
    from pyrf_blocks.numerics import fft

    class Plan:
        fused = None
        size = 1024

        def __init__(self, rows, rounding=0.0):
            self.rows, self.rounding = rows, rounding
            self.input = np.empty((rows, 1024), np.complex64)
            self.runs = 0

        def execute(self):  # an FFT stand-in, rounding its own way
            self.runs += 1
            return self.input * np.complex64(2) + np.complex64(self.rounding)

    for rounding, chosen in ((0.0, "smaller"), (1e-6, "batch")):
        batch, smaller = Plan(64), Plan(16, rounding)
        monkeypatch.setattr(fft, "plan", lambda rows, size, complex_input: smaller)
        expected = smaller if chosen == "smaller" else batch
        assert kernels._fused_plan(batch) is expected
        runs = batch.runs, smaller.runs
        assert kernels._fused_plan(batch) is expected
        assert (batch.runs, smaller.runs) == runs  # (checked once)
    small = Plan(8)
    assert kernels._fused_plan(small) is small and small.runs == 0


def _steps_apart(a, b):
    """How many float32 steps lie between the finite float32 arrays a and b."""
    def ordered(values):
        bits = values.view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    return np.abs(ordered(a) - ordered(b))


#: Whether numpy's long double is wider than float64 (x87's 80 bits on x86-64 Linux).
_WIDE = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant


def _exact_levels(power, offset, doubled=0.0, first=0, last=0):
    """
    10·log10(power) + offset, + doubled over the columns first to last, in
    the widest float numpy has here (x87's 80 bits on x86-64 Linux, else
    float64), rounded to float32: the exact level within float32's reach,
    also where the level is near 0 dB and float64's own rounding would
    count.
    """
    wide = np.longdouble if _WIDE else np.float64
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = 10 * np.log10(power.astype(wide)) + wide(np.float32(offset))
    levels[..., first:last] += wide(np.float32(doubled))
    return levels.astype(np.float32)


def test_dbm_into_is_the_float64_level_rounded_to_float32():
    """dbm_into gives 10·log10, + offset and + doubled over a span of columns within 1 float32 step of the float64 level rounded to float32, -inf for zero without a warning; it declines numpy's kernels and arrays it cannot take."""
    pytest.importorskip("numba")
    kernels.set_backend("numba")
    try:
        rng = np.random.default_rng(4)
        power = (rng.standard_normal((3, 1024), dtype=np.float32) ** 2
                 * np.float32(10.0) ** rng.integers(-12, 6, (3, 1024)).astype(np.float32))
        power[1, 7] = 0
        with np.errstate(divide="ignore"):
            expected = 10 * np.log10(power.astype(np.float64)) + np.float64(np.float32(-57.25))
        expected[:, 1:512] += np.float64(np.float32(6.0206))
        expected = expected.astype(np.float32)
        out = np.empty_like(power)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert kernels.dbm_into(power, out, -57.25, 6.0206, 1, 512) is out
        assert np.isneginf(out[1, 7])
        finite = np.isfinite(expected)
        assert _steps_apart(out[finite], expected[finite]).max() <= 1
        assert kernels.dbm_into(power, power, -57.25) is power  # (in place)
        assert kernels.dbm_into(power[:, ::2], out[:, ::2], 0.0) is None
        assert kernels.dbm_into(power.astype(np.float64), out, 0.0) is None
        kernels.set_backend("numpy")
        assert kernels.dbm_into(power, out, 0.0) is None
    finally:
        kernels.set_backend()


#: float32 bit patterns at the edges of the logarithm's reduction: the least
#: subnormal, the largest, the least normal, √½ and √2 each side, 1, the
#: largest finite, +inf, a NaN, -0 and a negative.
EDGES = [0x00000001, 0x007FFFFF, 0x00800000, 0x3F3504F3, 0x3F3504F4, 0x3FB504F3, 0x3FB504F4,
         0x3F800000, 0x7F7FFFFF, 0x7F800000, 0x7FC00000, 0x80000000, 0xBF800000]


@settings(max_examples=300, deadline=None)
@given(bits=st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=40),
       offset=st.floats(-300, 300, width=32), doubled=st.floats(0, 20, width=32),
       span=st.tuples(st.integers(0, 41), st.integers(0, 41)))
@example(bits=EDGES, offset=-57.25, doubled=6.0206, span=(1, 7))
def test_dbm_into_is_within_one_step_of_the_exact_level_for_any_float32(bits, offset, doubled,
                                                                       span):
    """For any float32 power — normal, subnormal, ±0, ±inf, NaN — dbm_into's level is within 1 float32 step of the exact one, -inf for ±0, NaN for a negative power or NaN, +inf for +inf, without a warning."""
    pytest.importorskip("numba")
    power = np.array(bits, np.uint32).view(np.float32).reshape(1, -1)
    first, last = span
    kernels.set_backend("numba")
    try:
        out = np.empty_like(power)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            kernels.dbm_into(power, out, offset, doubled, first, last)
    finally:
        kernels.set_backend()
    exact = _exact_levels(power, offset, doubled, first, last)
    positive = (power > 0) & np.isfinite(power)
    assert _steps_apart(out[positive], exact[positive]).max(initial=0) <= 1
    assert np.isneginf(out[power == 0]).all()
    assert np.isnan(out[np.isnan(power) | (power < 0)]).all()
    assert np.isposinf(out[np.isposinf(power)]).all()


@pytest.mark.skipif(not _WIDE, reason="needs a long double wider than float64 for the exact level")
@settings(max_examples=200, deadline=None)
@given(bits=st.integers(0x00000009, 0x7F7FFFF6), doubled=st.booleans())
def test_dbm_into_is_exact_where_the_level_cancels_the_offset(bits, doubled):
    """Where the offset cancels the level (a result near 0 dB, its float32 steps tiny) dbm_into is still within 1 float32 step of the exact level, or within 5e-16 dB of it below 2e-9 dB (float64's own rounding there): 10·log10(2)·k and the offset add exactly."""
    pytest.importorskip("numba")
    power = (np.arange(bits - 8, bits + 9, dtype=np.uint32)).view(np.float32).reshape(1, -1)
    level = _exact_levels(power[:, 8:9], 0.0)[0, 0]
    offset, extra = (-level, np.float32(0.0)) if not doubled else (-level / 2, -level / 2)
    kernels.set_backend("numba")
    try:
        out = kernels.dbm_into(power, np.empty_like(power), offset, extra, 0, 17)
    finally:
        kernels.set_backend()
    exact = _exact_levels(power, offset, extra, 0, 17)
    close = _steps_apart(out, exact) <= 1
    wide = (10 * np.log10(power.astype(np.longdouble)) + np.longdouble(np.float32(offset))
            + np.longdouble(np.float32(extra)))
    tiny = (np.abs(wide) < 2e-9) & (np.abs(out - wide) <= 5e-16)
    assert (close | tiny).all()


@settings(max_examples=200, deadline=None)
@given(bits=st.lists(st.integers(0, 0x7F800000), min_size=2, max_size=40),
       offset=st.floats(-300, 300, width=32))
def test_dbm_into_never_decreases_with_the_power(bits, offset):
    """Greater power never reads a lower level (0 to +inf), so the maximum of levels is the level of the maximum: what fusing a hold with its calibration relies on."""
    pytest.importorskip("numba")
    power = np.sort(np.array(bits, np.uint32).view(np.float32)).reshape(1, -1)
    kernels.set_backend("numba")
    try:
        levels = kernels.dbm_into(power, np.empty_like(power), offset)
        shuffled = power[:, ::-1].copy()
        peak = kernels.dbm_into(np.maximum.reduce(shuffled, axis=1, keepdims=True),
                                np.empty((1, 1), np.float32), offset)
    finally:
        kernels.set_backend()
    assert (levels[:, 1:] >= levels[:, :-1]).all()
    assert peak[0, 0].tobytes() == np.maximum.reduce(levels, axis=1)[0].tobytes()


@pytest.mark.parametrize("reference", [0.0, -10.0, 17.5])
def test_a_full_scale_tone_reads_the_reference_level(kernel_backend, reference):
    """A full-scale on-bin tone reads the reference level within 1e-5 dB, complex (hann) and real (boxcar, its one-sided bin doubled)."""
    from pyrf_blocks.numerics.signals import tone_samples
    from pyrf_blocks.numerics.spectral import power_to_dbm, window_gains

    size = 1024
    samples = tone_samples(0, size, float(size), 100.0, 1.0)
    window_sum = window_gains("hann", size)[0] * size
    spectra = frame_spectra(samples[np.newaxis], window("hann", size, shift=True), True)
    dbm = power_to_dbm(spectra, window_sum, reference)
    assert_allclose(dbm[0, size // 2 + 100], reference, atol=1e-5)
    samples = tone_samples(0, size, float(size), 100.0, 1.0, complex_output=False)
    spectra = frame_spectra(samples[np.newaxis], window("boxcar", size), False)
    dbm = power_to_dbm(spectra, float(size), reference, real_fft_size=size)
    assert_allclose(dbm[0, 100], reference, atol=1e-5)


def test_every_compiled_kernel_is_loaded_from_numbas_cache():
    """A second process loads each compiled kernel (element-wise, calibration, and the fused ones with FFTW) from numba's cache instead of compiling it again (a second or more each, and another copy in the cache every time)."""
    pytest.importorskip("numba")
    import subprocess
    import sys
    from pathlib import Path

    probe = ("import numpy as np\n"
             "from pyrf_blocks.numerics import fft, kernels\n"
             "from pyrf_blocks.numerics.spectral import calibrated_extreme, window\n"
             "kernels.set_backend('numba')\n"
             "frames = np.ones((64, 256), np.complex64)\n"
             "values = window('hann', 256)\n"
             "kernels.window_into(frames, values, np.empty_like(frames))\n"
             "overlapping = np.lib.stride_tricks.sliding_window_view(frames[0], 128)[::64]\n"
             "kernels.window_into(overlapping, values[:128], np.empty((3, 128), np.complex64))\n"
             "kernels.power_into(frames, np.empty((64, 256), np.float32))\n"
             "kernels.power_extreme_into(frames, np.empty(256, np.float32), np.maximum)\n"
             "calls = [(frames, values, True, np.maximum, np.empty((1, 256), np.float32),\n"
             "          100.0, 0.0)] * 2\n"
             "calibrated_extreme(*calls[0])\n"
             "calibrated_extreme.group(calls)\n"
             "kernels.dbm_into(np.ones((1, 256), np.float32), np.empty((1, 256), np.float32), 0.0)\n"
             "kernels.window_fft_extreme_into(frames, values, fft.plan(64, 256, True),\n"
             "                                np.empty(256, np.float32), np.maximum)\n"
             "compiled = list(kernels._numba_kernels())\n"
             "if fft.backend() == 'fftw':\n"
             "    compiled += [kernels._fused, kernels._fused_dbm, kernels._fused_group]\n"
             "for kernel in compiled:\n"
             "    stats = kernel.stats\n"
             "    print(kernel.__name__, sum(stats.cache_hits.values()),\n"
             "          sum(stats.cache_misses.values()))\n")
    root = Path(kernels.__file__).resolve().parents[2]

    def loaded():
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             cwd=root, timeout=120)
        assert out.returncode == 0, out.stderr
        return [line.split() for line in out.stdout.splitlines()]

    loaded()  # (compiles what the cache lacks)
    found = loaded()
    assert len(found) >= 4
    assert [misses for _, _, misses in found] == ["0"] * len(found), found
    assert all(int(hits) >= 1 for _, hits, _ in found), found


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("calibrated", [False, True])
def test_a_group_of_extreme_calls_is_the_calls_one_by_one(kernel_backend, calibrated):
    """frame_extreme.group and calibrated_extreme.group give each call's row bit for bit: alike IQ calls, a NaN chunk, a zero extreme, and calls too unlike to group."""
    from pyrf_blocks.numerics import fft, spectral
    from pyrf_blocks.numerics.spectral import calibrated_extreme

    function = calibrated_extreme if calibrated else frame_extreme
    values = window("hann", 1024, shift=True)
    terms = (750.0, -3.0, None) if calibrated else ()

    def calls(frames_list, combine=np.maximum):
        return [(frames, values, True, combine, np.full((1, 1024), 7, np.float32)) + terms
                for frames in frames_list]

    alike = [_samples(64 * 1024, True, seed).reshape(64, 1024) for seed in range(5)]
    alike[1][3, 4] = np.nan
    alike[2][:] = 0  # every extreme 0: -inf dBm, without a warning
    unlike = alike[:2] + [_samples(32 * 1024, True, 9).reshape(32, 1024)]
    overlapping = [np.lib.stride_tricks.sliding_window_view(_samples(33 * 1024, True, 3),
                                                            1024)[::512][:64]] * 2
    for group, combine in ((alike, np.maximum), (alike, np.minimum), (unlike, np.maximum),
                           (overlapping, np.maximum)):
        expected = [function(*args).copy() for args in calls(group, combine)]
        together = calls(group, combine)
        got = function.group(together)
        assert [row is args[4] for row, args in zip(got, together)] == [True] * len(group)
        for row, want in zip(got, expected):
            assert row.tobytes() == want.tobytes()
    # (alike calls take the one compiled call where it exists)
    compiled = kernel_backend == "numba" and fft.backend() == "fftw"
    assert (spectral._extremes(calls(alike)) is not None) == compiled
