"""
Tests for the ``pyrf-blocks`` command line, run as a real subprocess.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pyrf_blocks.cli", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_demo_prints_the_simulated_tones():
    """The demo finds both simulated tones at their frequencies (MHz) and levels (dBm)."""
    result = cli("demo", "--duration", "0.5", "--fast")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "peaks after" in lines[0]
    first, second = lines[2].split(), lines[3].split()
    assert float(first[1]) == pytest.approx(2401.0, abs=0.008)
    assert float(first[3]) == pytest.approx(-20.0, abs=0.5)
    assert float(second[1]) == pytest.approx(2397.5, abs=0.008)
    assert float(second[3]) == pytest.approx(-45.0, abs=0.5)


def test_demo_options_change_the_signal():
    """--center-mhz and --tone move the reported peak."""
    result = cli("demo", "--duration", "0.2", "--fast", "--center-mhz", "915",
                 "--tone", "0.5", "-33", "--peaks", "1")
    assert result.returncode == 0, result.stderr
    peak = result.stdout.splitlines()[2].split()
    assert float(peak[1]) == pytest.approx(915.5, abs=0.008)
    assert float(peak[3]) == pytest.approx(-33.0, abs=0.5)


def test_help_explains_every_demo_option():
    """--help documents each option of the demo."""
    result = cli("demo", "--help")
    assert result.returncode == 0
    for option in ("--duration", "--center-mhz", "--rate-msps", "--tone", "--fft-size",
                   "--window", "--peaks", "--seed", "--fast"):
        assert option in result.stdout


@pytest.mark.parametrize("args, reason", [
    (["demo", "--fft-size", "0"], "the FFT size must be a whole number of at least 8"),
    (["demo", "--fft-size", "3"], "the FFT size must be a whole number of at least 8"),
    (["demo", "--window", "kaiser"], "'kaiser:8.6'"),
    (["demo", "--duration", "soon"], "is not a number"),
    (["demo", "--window", "squiggle"], "get_window"),
    (["demo", "--bogus"], "unrecognized arguments"),
    (["nosuchcommand"], "invalid choice"),
])
def test_bad_option_exits_2_with_one_line(args, reason):
    """A bad option or value exits 2 with a one-line reason and no traceback."""
    result = cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0]
    assert "Traceback" not in result.stderr
