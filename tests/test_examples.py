"""
Every script in examples/ runs to completion headless and says something.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Arguments that make each example quit by itself quickly.
ARGUMENTS = {
    "peak_table.py": ["--duration", "1"],
}
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name):
    """The example exits 0 and prints its result."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name),
                             *ARGUMENTS.get(name, [])], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()
