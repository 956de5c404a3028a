"""
``pyrf-blocks status`` on a real cluster (etcd on loopback, a worker and a
manager in their own processes): the table names the manager, the worker,
its computation with the assignment revision, the lag its worker's
/metrics reports and the snapshot in the store; an unreachable cluster is
one line and exit 1.
"""

import re
import subprocess
import sys
import time

import pytest

from pyrf_blocks.testing import poll_until
from pyrf_blocks.testing.servers import EtcdServer, free_port

from cluster_real import command, start_workers
from net_real import environment

PIPELINE = """\
version: 1
blocks:
  V:
    type: waveform_source
    params: {{amplitude: 1, sample_rate: 5000, samples_per_chunk: 100, count: 100000,
             paced: true, start_time: {start}}}
  mean: {{type: average, inputs: [V]}}
  out: {{type: result_store, inputs: ["mean:running"]}}
"""


def status(*args):
    return subprocess.run([sys.executable, "-m", "pyrf_blocks.cli", "status", *args],
                          capture_output=True, text=True, timeout=60, env=environment())


@pytest.mark.timeout(120)
def test_status_shows_who_runs_what_with_its_lag_and_snapshot(tmp_path):
    """The table: manager, worker and address, computation, revision, a lag in seconds, snapshot age and size."""
    # Device time from now on, paced: the outputs lag the wall clock by little.
    (tmp_path / "live.yaml").write_text(PIPELINE.format(start=time.time_ns()))
    store = tmp_path / "cluster.sqlite"
    logs = tmp_path / "logs"
    logs.mkdir()
    with EtcdServer(tmp_path) as etcd:
        processes = start_workers(etcd, store, logs, ("w1",))
        processes["m1"] = command("manager", "--cluster", etcd.url, "--name", "m1",
                                  "--ttl", "2", str(tmp_path / "live.yaml"),
                                  log=open(logs / "m1.log", "w"))
        try:
            def shown():
                out = status("--cluster", etcd.url, "--store", str(store))
                row = re.search(r"^live\s+w1\s+(\d+)\s+(-?\d+\.\d) s\s+(\d+\.\d) s\s+(\d+) B$",
                                out.stdout, re.M)
                return (out, row) if out.returncode == 0 and row else None

            out, row = poll_until(shown, 60, "status to show the computation running")
        finally:
            for process in processes.values():
                process.kill()
                process.wait()
    assert "manager: m1" in out.stdout
    assert re.search(r"^w1\s+http://127\.0\.0\.1:\d+\s+1$", out.stdout, re.M), out.stdout
    revision, lag, age, size = row.groups()
    assert int(revision) > 0 and int(size) > 0
    assert -1.0 < float(lag) < 10.0, out.stdout


def test_status_of_an_unreachable_cluster_is_one_line():
    """Nothing listens on the etcd URL: one line naming it on stderr, exit 1, no traceback."""
    url = f"http://127.0.0.1:{free_port()}"
    out = status("--cluster", url)
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and url in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
