"""
The spectrum chain's kernels: numba's and numpy's window multiply and
``|X|²`` agree with plain numpy within float32 rounding, for complex and
real frames, contiguous or overlapping; the backend is chosen as
documented.
"""

import warnings

import numpy as np
import pytest
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


def test_window_into_takes_overlapping_frames(kernel_backend):
    """Frames that are a strided view (overlap) are windowed as their copy would be."""
    samples = _samples(4096, True)
    frames = np.lib.stride_tricks.sliding_window_view(samples, 256)[::192]
    values = window("flattop", 256)
    out = np.empty(frames.shape, np.complex64)
    kernels.window_into(frames, values, out)
    assert_array_equal(out, np.ascontiguousarray(frames) * values)


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
    frames[rows // 2, 3] = np.nan
    out = np.empty((1, bins), np.float32)
    frame_extreme(frames, values, complex_input, np.maximum, out)
    expected = np.maximum.reduce(frame_spectra(frames, values, complex_input), axis=0)
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


def test_dbm_into_is_numpys_steps_in_float32():
    """dbm_into gives 10·log10, + offset and + doubled over a span of columns as numpy's float32 steps do (to the bit where numpy's log10 is the C library's), -inf for zero without a warning; it declines numpy's kernels and arrays it cannot take."""
    pytest.importorskip("numba")
    kernels.set_backend("numba")
    try:
        rng = np.random.default_rng(4)
        power = (rng.standard_normal((3, 1024), dtype=np.float32) ** 2
                 * np.float32(10.0) ** rng.integers(-12, 6, (3, 1024)).astype(np.float32))
        power[1, 7] = 0
        with np.errstate(divide="ignore"):
            expected = np.log10(power)
        expected *= 10.0
        expected += np.float32(-57.25)
        expected[:, 1:512] += np.float32(6.0206)
        out = np.empty_like(power)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert kernels.dbm_into(power, out, -57.25, 6.0206, 1, 512) is out
        assert np.isneginf(out[1, 7])
        # the C library's log10f and numpy's SIMD one (where numpy has it)
        # may differ in the last bit: within 1 float32 step of a level
        assert_allclose(out, expected, rtol=2e-7, atol=2e-5)
        assert kernels.dbm_into(power, power, -57.25) is power  # (in place)
        assert kernels.dbm_into(power[:, ::2], out[:, ::2], 0.0) is None
        assert kernels.dbm_into(power.astype(np.float64), out, 0.0) is None
        kernels.set_backend("numpy")
        assert kernels.dbm_into(power, out, 0.0) is None
    finally:
        kernels.set_backend()


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
