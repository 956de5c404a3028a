"""
Nothing one client makes outlives it on a real worker: a script that ends
normally deletes its streams and blocks; what vanished clients left is
removed after the worker's lease, and the worker's memory returns near
its baseline.
"""

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from net_real import ROOT, RealWorker, environment

pytestmark = pytest.mark.chaos

WAIT = 2


def _status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _short_client(worker, number, polite):
    name = f"short{number}"
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": name, "params": {
        "paced": False, "samples_per_packet": 1024, "packets_per_block": 16, "count": 100}},
        expect=201)
    ident = worker.json("POST", f"/blocks/{name}/streams", {}, expect=201)["id"]
    # A stream is closed once unpolled for the lease beyond its last poll's
    # wait, so a vanished client's goes WAIT + 1 s after its poll: the wait
    # is the poll's bound on the first chunk (which comes in milliseconds),
    # not the fault.
    status, _, _ = worker.call("GET", f"/streams/{ident}?after=-1&wait={WAIT}")
    assert status == 200
    if polite:
        worker.json("DELETE", f"/streams/{ident}")
        worker.json("DELETE", f"/blocks/{name}")


def test_worker_reclaims_what_vanished_clients_left_and_its_memory(tmp_path):
    """40 short clients (half vanish): after the lease (1 s) nothing is left and most of the RSS growth is handed back."""
    worker = RealWorker(args=("--lease", "1"))
    try:
        _short_client(worker, "warm-up", True)
        time.sleep(0.6)
        before = _status_kib(worker.process.pid, "VmRSS")
        for wave in range(4):
            threads = [threading.Thread(target=_short_client, args=(worker, n, n % 2 == 0))
                       for n in range(wave * 10, wave * 10 + 10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert len(worker.json("GET", "/blocks")["blocks"]) == 20  # those that vanished
        deadline = time.monotonic() + 10
        while worker.json("GET", "/health")["blocks"] or worker.json("GET", "/streams")["streams"]:
            assert time.monotonic() < deadline, worker.json("GET", "/health")
            time.sleep(0.1)
        time.sleep(0.6)  # a sweep after the last removal hands memory back
        peak = _status_kib(worker.process.pid, "VmHWM")
        after = _status_kib(worker.process.pid, "VmRSS")
        assert peak - before > 20 << 10, (before, peak)
        assert after - before < (peak - before) / 2, (before, peak, after)
        assert worker.json("GET", "/health")["status"] == "ok"
    finally:
        worker.stop()


SCRIPT = textwrap.dedent("""\
    import sys
    from pyrf_blocks import collector, fft_block, process, run, simulated_instrument
    place = process(sys.argv[1])
    wsa = simulated_instrument(paced=False, count=20, proc=place)
    spectra = collector(fft_block(wsa, size=256, proc=place))
    run()
    print(len(spectra.chunks))
""")


def test_worker_script_that_ends_normally_leaves_nothing_on_the_worker():
    """A script placing a source and an FFT on a worker (real processes) leaves no block and no stream once run() returns."""
    worker = RealWorker()
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT, worker.url], cwd=ROOT,
                              env=environment(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-3000:]
        assert int(done.stdout.split()[-1]) > 0
        assert worker.json("GET", "/blocks")["blocks"] == []
        assert worker.json("GET", "/streams")["streams"] == []
        created = [line for line in worker.stderr().splitlines() if "created " in line]
        assert len(created) == 2, created
    finally:
        worker.stop()
