"""
A real worker (``pyrf-blocks worker`` on loopback) refuses bad block
parameters with a 400 naming the parameter, creates nothing, and keeps
serving; ``pyrf-blocks validate`` runs the same checks on a file.
"""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from net_real import ROOT, RealWorker, environment
from pyrf_blocks.testing import poll_until

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def worker():
    worker = RealWorker()
    # A worker loads its numerics in a thread once listening (numba and
    # pyFFTW: its resident size grows from about 64 to 128 MB within 0.3 s
    # on an idle host, longer on a busy one): sizes compared below start
    # once that is over, not while a request races it.
    poll_until(lambda: _steady_rss(worker.process.pid), 30, "the worker's preload to end")
    yield worker
    worker.stop()


def _vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _steady_rss(pid, readings=5, interval=0.1):
    """True if the resident size of ``pid`` did not move over ``readings`` readings."""
    sizes = set()
    for _ in range(readings):
        sizes.add(_vm_rss_kib(pid))
        time.sleep(interval)
    return len(sizes) == 1


@pytest.mark.parametrize("params, parameter", [
    ('{"count": "abc"}', "count"),
    ('{"noise_floor": "x"}', "noise_floor"),
    ('{"samples_per_packet": 1e13}', "samples_per_packet"),
    ('{"sample_rate": Infinity}', "sample_rate"),
    ('{"sample_rate": NaN}', "sample_rate"),
    ('{"sample_rate": -1}', "sample_rate"),
])
def test_worker_refuses_bad_parameters_naming_them(worker, params, parameter):
    """Each bad value answers 400 naming the parameter; no block is created and /health stays ok."""
    body = f'{{"type": "simulated_instrument", "name": "bad", "params": {params}}}'.encode()
    status, _, answer = worker.call("POST", "/blocks", body=body,
                                    headers={"Content-Type": "application/json"})
    assert status == 400, answer
    assert f"{parameter}: " in json.loads(answer)["error"]
    assert worker.json("GET", "/blocks")["blocks"] == []
    assert worker.json("GET", "/health")["status"] == "ok"


def test_worker_refuses_a_huge_fft_before_allocating(worker):
    """fft_block size 2**40 answers 400 and the worker's resident size does not grow."""
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": "src"}, expect=201)
    before = _vm_rss_kib(worker.process.pid)
    status, _, answer = worker.call("POST", "/blocks", {
        "type": "fft_block", "name": "fft", "inputs": ["src"], "params": {"size": 2 ** 40}})
    assert status == 400, answer
    assert "size: must be at most" in json.loads(answer)["error"]
    assert _vm_rss_kib(worker.process.pid) - before < 5 << 10
    assert [b["name"] for b in worker.json("GET", "/blocks")["blocks"]] == ["src"]
    worker.json("DELETE", "/blocks/src")


def test_worker_validate_reports_every_parameter_error_with_line_and_column(tmp_path):
    """pyrf-blocks validate (a real process) reports size -5, an unknown window and a negative rate, each at its line, and exits 1."""
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        blocks:
          wsa:
            type: simulated_instrument
            params: {sample_rate: -7.8MHz}
          fft:
            type: fft_block
            inputs: [wsa]
            params: {size: -5, window: nope}
          out: {type: collector, inputs: [fft]}
    """))
    done = subprocess.run([sys.executable, "-m", "pyrf_blocks.cli", "validate", str(path)],
                          cwd=ROOT, env=environment(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"{path}:5:27: block 'wsa' (simulated_instrument): "
                               "sample_rate: must be at least 1000"), lines
    assert lines[1].startswith(f"{path}:9:20: block 'fft' (fft_block): size: must be "
                               "at least 8, got -5"), lines
    assert lines[2].startswith(f"{path}:9:32: block 'fft' (fft_block): window: unknown "
                               "window 'nope'"), lines
    assert lines[3] == f"{path}: 3 problems"
    assert "valid" not in done.stdout
