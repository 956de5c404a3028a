"""
Every script in examples/ runs to completion headless, quits by itself and
prints what it should.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Arguments that make each example quit by itself quickly, and a pattern
#: its output must match.
EXPECTED = {
    # Peak frequencies are interpolated between bins: within 0.001 MHz of the tone.
    "peak_table.py": (["--duration", "1"], r"2401\.(499|500)\d+ MHz\s+-25\.\d+ dBm"),
    # A max hold over a second of spectra: the noise (-130 dBm/Hz) may lift
    # the -20 dBm tone's bin by a few hundredths of a dB.
    "seed_single_process.py": (["--duration", "1"],
                               r"strongest bin: 2400\.99\d+ MHz at -(20\.\d+|19\.9\d) dBm"),
    "live_spectrum.py": (["--duration", "1"], r"\d+ frames drawn"),
    "multi_spectrum.py": (["--duration", "1"], r"\d+ frames drawn"),
    "thd_power.py": ([], r"THD of the voltage: 5\.00\d %"),
    "power_converter.py": ([], r"THD of I_in at 50 % load: 9\.4\d %[\s\S]*"
                               r"CEC-weighted efficiency: nan %, 1 point\(s\) missing: \[30\.0\]"
                               r"[\s\S]*history = live: True"),
    "seed_multiprocess.py": (["--chunks", "8"],
                             r"display: instrument 1: \d+ chunks[\s\S]*"
                             # -130 dBm/Hz of noise (the default) moves the level by 0.02 dB
                             r"chain 1: 128 spectra, strongest bin \+(0\.99\d|1\.00\d) MHz at -(20\.\d+|19\.9\d) dBm\n"
                             r"chain 2: 128 spectra, strongest bin -2\.50\d MHz at -(3[56]\.\d+|34\.9\d) dBm"),
}
#: Not scripts to run on their own: a helper that the wire-format docs' curl
#: example (examples/read_stream.sh) calls, tested by tests/test_net_processes.py,
#: and a service that serves until stopped, tested by tests/test_external.py.
HELPERS = {"decode_stream_body.py", "external_mean.py"}
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py") if p.name not in HELPERS)


def test_every_example_has_an_expectation():
    """No example goes untested: each one is listed with its expected output."""
    assert set(EXAMPLES) <= set(EXPECTED)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name):
    """The example exits 0 and prints its result."""
    arguments, pattern = EXPECTED.get(name, ([], r"\S"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), *arguments],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(pattern, result.stdout), result.stdout[-3000:]
