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
    "peak_table.py": (["--duration", "1"], r"2401\.499\d+ MHz\s+-25\.\d+ dBm"),
    "seed_single_process.py": (["--duration", "1"], r"strongest bin: 2400\.99\d+ MHz at -20\.\d+ dBm"),
    "live_spectrum.py": (["--duration", "1"], r"\d+ frames drawn"),
    "multi_spectrum.py": (["--duration", "1"], r"\d+ frames drawn"),
    "thd_power.py": ([], r"THD of the voltage: 5\.00\d %"),
}
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))


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
