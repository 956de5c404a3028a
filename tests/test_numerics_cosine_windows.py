"""
The common FFT windows are computed without scipy.signal, bit for bit as
``scipy.signal.get_window(name, size, fftbins=True)`` computes them; every
other window, and every name scipy refuses, still goes to scipy, with the
same messages.  A process that makes a spectrum with them imports no
scipy.signal.
"""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings, strategies as st

from pyrf_blocks.numerics import spectral
from pyrf_blocks.numerics.cosine_windows import COSINE_WINDOWS, periodic_window
from pyrf_blocks.testing import modules_loaded

#: Every name the project computes itself, aliases included.
NAMES = sorted(COSINE_WINDOWS)

#: Sizes worth naming: 1 and 2 (scipy's special cases), odd and even,
#: powers of two and their neighbours, the FFT sizes the project uses.
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 127, 128, 1000, 1023, 1024, 1025,
         2048, 4096, 16384, 65536, 65537]


def assert_same_bits(ours, theirs, what=""):
    """Equal arrays, dtype and bytes alike (so -0.0 against 0.0 counts too)."""
    assert ours.dtype == theirs.dtype == np.float64, what
    np.testing.assert_array_equal(ours, theirs, err_msg=what)
    assert ours.tobytes() == theirs.tobytes(), what


def test_the_names_are_scipys_own():
    """Each name computed here is one scipy.signal.get_window takes (hann, han, rect, ...)."""
    for name in NAMES:
        scipy.signal.get_window(name, 8)
    assert {"hann", "hamming", "blackman", "blackmanharris", "nuttall", "flattop", "boxcar",
            "rectangular", "rect", "ones", "box"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_window_is_scipys_bit_for_bit(name):
    """Every name, at each of the sizes named, gives scipy's float64 values bit for bit."""
    for size in SIZES:
        assert_same_bits(periodic_window(name, size), scipy.signal.get_window(name, size),
                         f"{name} of {size} points")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NAMES), st.integers(1, 70_000))
def test_any_size_is_scipys_bit_for_bit(name, size):
    """Any name at any size from 1 to 70 000 gives scipy's values bit for bit."""
    assert_same_bits(periodic_window(name, size), scipy.signal.get_window(name, size),
                     f"{name} of {size} points")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(NAMES), st.integers(1, 5000), st.booleans())
def test_the_float32_window_is_scipys_rounded(name, size, shift):
    """spectral.window (float32, the fftshift folded in) is scipy's window rounded and signed."""
    expected = scipy.signal.get_window(name, size).astype(np.float32)
    if shift:
        expected[1::2] *= -1
    np.testing.assert_array_equal(spectral.window(name, size, shift), expected)


@pytest.mark.parametrize("name", ["kaiser", "tukey", "hann_symmetric", "hann_periodic",
                                  "triang", "nosuch", ("hann",), ("kaiser", 8.6), 8.6])
def test_other_windows_are_left_to_scipy(name):
    """Names with parameters, scipy's suffixes, tuples, numbers and unknown names are not computed here."""
    assert periodic_window(name, 64) is None


@pytest.mark.parametrize("size", [0, -1, 2.0])
def test_sizes_scipy_refuses_are_left_to_it(size):
    """A size of 0, a negative one or a float is not computed here: scipy refuses it."""
    assert periodic_window("hann", size) is None


@pytest.mark.parametrize("name, size", [("kaiser:8.6", 100), (("tukey", 0.25), 64),
                                        ("hann_symmetric", 33), ("triang", 20)])
def test_scipy_still_computes_the_others(name, size):
    """A window not computed here is still scipy's (kaiser:8.6, a tuple, a suffixed name)."""
    expected = scipy.signal.get_window(spectral.window_spec(name), size).astype(np.float32)
    np.testing.assert_array_equal(spectral.window(name, size), expected)


def test_unknown_names_keep_scipys_messages():
    """An unknown name and a window missing its parameter are refused as before."""
    with pytest.raises(ValueError) as unknown:
        spectral.window("squiggle", 16)
    assert str(unknown.value) == ("unknown window 'squiggle': Invalid window name 'squiggle' in "
                                  "parameter window='squiggle'!")
    with pytest.raises(ValueError, match=r"window 'kaiser' needs its parameter\(s\) after a colon"):
        spectral.window("kaiser", 16)


@pytest.mark.parametrize("name", ["kaiser:1e308", "gaussian:0", "chebwin:1e308"])
def test_a_window_that_is_not_numbers_is_refused(name, recwarn):
    """Parameters out of a window's range (NaN values, a sum of 0, scipy's OverflowError) are a ValueError naming the window, with no warning; they gave NaN spectra (or a traceback) before."""
    with pytest.raises(ValueError, match=r"window \('(kaiser|gaussian|chebwin)'"):
        spectral.window(name, 64)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_spectrum_with_the_default_window_imports_no_scipy_signal():
    """A fresh process that checks, computes and uses the default window for a spectrum loads no scipy.signal."""
    code = ("import numpy as np\n"
            "from pyrf_blocks import defaults\n"
            "from pyrf_blocks.commands.options import window_name\n"
            "from pyrf_blocks.numerics import spectral\n"
            "window_name(defaults.WINDOW)\n"
            "values = spectral.window(defaults.WINDOW, 1024, shift=True)\n"
            "spectral.frame_spectra(np.ones((4, 1024), np.complex64), values, True)\n")
    assert modules_loaded(code, ("scipy.signal",)) == []
