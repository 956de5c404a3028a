"""
One way of choosing an implementation, for the FFT and the kernels alike:
the first whose package imports, unless the environment or set_backend
names one; unknown names and missing packages refused saying what to do.
"""

import pytest

from pyrf_blocks.numerics import fft, kernels
from pyrf_blocks.numerics.backends import BackendChoice, importable


def _choice(available):
    return BackendChoice("widgets", ("fast", "plain"), "PYRF_TEST_WIDGETS",
                         {"fast": (lambda: available[0], "install fast")})


def test_the_first_available_is_chosen_unless_the_environment_names_one(monkeypatch):
    """The preferred implementation when its package imports, the last otherwise; the variable overrides, read once."""
    monkeypatch.delenv("PYRF_TEST_WIDGETS", raising=False)
    available = [True]
    assert _choice(available).get() == "fast"
    available[0] = False
    assert _choice(available).get() == "plain"
    available[0] = True
    monkeypatch.setenv("PYRF_TEST_WIDGETS", " Plain ")
    choice = _choice(available)
    assert choice.get() == "plain"
    monkeypatch.setenv("PYRF_TEST_WIDGETS", "fast")
    assert choice.get() == "plain"  # chosen once per process
    assert choice.set() == "fast" and choice.get() == "fast"


def test_unknown_and_missing_implementations_are_refused():
    """An unknown name is refused with the choices, a missing package with its message; the choice stays."""
    available = [False]
    choice = _choice(available)
    assert choice.set("plain") == "plain"
    with pytest.raises(ValueError, match="unknown widgets 'slow'; use one of fast, plain"):
        choice.set("slow")
    with pytest.raises(ImportError, match="install fast"):
        choice.set("fast")
    assert choice.chosen == "plain"


def test_the_fft_and_the_kernels_choose_the_same_way():
    """fft and kernels each choose through a BackendChoice with their own variable and probe."""
    assert isinstance(fft.choice, BackendChoice) and isinstance(kernels.choice, BackendChoice)
    assert (fft.choice.variable, kernels.choice.variable) == ("PYRF_BLOCKS_FFT",
                                                              "PYRF_BLOCKS_KERNELS")
    assert fft.choice.names == fft.BACKENDS and kernels.choice.names == kernels.BACKENDS
    assert fft.backend() == fft.choice.chosen and kernels.backend() == kernels.choice.chosen


def test_importable_imports():
    """importable is True for a module that imports and False for one that does not."""
    assert importable("json") and not importable("pyrf_blocks_no_such_module")
