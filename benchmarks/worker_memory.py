"""
A worker's memory under many short clients: RSS before, at the peak and
after the load, for three ways of handling freed memory.

    python benchmarks/worker_memory.py [--clients N] [--wave N]

Each run starts ``pyrf-blocks worker --lease 1`` on loopback, measures its
resident size (``VmRSS``) after one client has come and gone, then runs ``--clients`` short
clients, ``--wave`` at a time: each creates a free-running simulated
instrument (100 chunks of 128 KiB), opens its stream and reads a few
answers; half then delete their stream and block, half vanish (the
worker's lease removes what they left).  The peak is the worker's
``VmHWM``; "after" is its RSS once the lease has reclaimed everything and
a sweep has run.

Modes:

- ``keep``: what workers did before: freed memory is kept for reuse
  (``memory.keep_freed_memory``) and never handed back;
- ``keep+release``: kept while streams flow, handed back
  (``memory.release_freed_memory``) after the worker closed streams or
  removed blocks (what workers do now);
- ``default``: glibc's own thresholds, nothing kept.

The last line is the headline: RSS after the load over RSS before it, now
and with freed memory kept.
"""

import argparse
import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from pyrf_blocks.testing import poll_until

ROOT = Path(__file__).resolve().parents[1]

LAUNCH = """
import sys
import pyrf_blocks.memory as memory
mode = sys.argv[1]
if mode == "keep":
    memory.release_freed_memory = lambda: False
elif mode == "default":
    memory.keep_freed_memory = lambda: False
from pyrf_blocks.cli import main
sys.exit(main(sys.argv[2:]))
"""

SOURCE = {"paced": False, "samples_per_packet": 1024, "packets_per_block": 16,
          "count": 100}


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def call(port, method, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data,
                           headers={"Content-Type": "application/json"} if data else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def client(port, number, polite):
    name = f"c{number}"
    status, _ = call(port, "POST", "/blocks", {"type": "simulated_instrument",
                                               "name": name, "params": SOURCE})
    assert status == 201, status
    status, answer = call(port, "POST", f"/blocks/{name}/streams", {})
    assert status == 201, status
    ident = json.loads(answer)["id"]
    after = -1
    for _ in range(3):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", f"/streams/{ident}?after={after}&wait=5")
        response = connection.getresponse()
        response.read()
        last = response.getheader("X-Pyrf-Last-Seq")
        connection.close()
        if last is not None:
            after = int(last)
    if polite:
        call(port, "DELETE", f"/streams/{ident}")
        call(port, "DELETE", f"/blocks/{name}")


def run(mode, clients, wave):
    worker = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, mode, "worker", "--listen",
         "tcp:0:interface=127.0.0.1", "--lease", "1", "--log-level", "error"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = worker.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        # One client first, so that the baseline includes the modules and
        # caches any use of the worker loads.
        client(port, "warm-up", True)
        time.sleep(0.6)
        before = status_kib(worker.pid, "VmRSS")
        started = time.monotonic()
        for first in range(0, clients, wave):
            threads = [threading.Thread(target=client, args=(port, n, n % 2 == 0))
                       for n in range(first, min(first + wave, clients))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        elapsed = time.monotonic() - started
        poll_until(lambda: not json.loads(call(port, "GET", "/health")[1])["blocks"], 30,
                   "the lease to reclaim every block", interval=0.25)
        time.sleep(0.6)  # one more sweep, after the last removal
        peak = status_kib(worker.pid, "VmHWM")
        after = status_kib(worker.pid, "VmRSS")
    finally:
        worker.terminate()
        worker.wait(10)
    return before / 1024, peak / 1024, after / 1024, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--wave", type=int, default=20)
    args = parser.parse_args()
    results = {}
    for mode in ("keep", "keep+release", "default"):
        before, peak, after, elapsed = results[mode] = run(mode, args.clients, args.wave)
        print(f"{mode:>13}: RSS before {before:6.1f} MB, peak {peak:6.1f} MB, after "
              f"{after:6.1f} MB (after/before {after / before:4.2f}); {args.clients} "
              f"clients in {elapsed:.1f} s")
    kept, now = results["keep"], results["keep+release"]
    print(f"worker RSS after {args.clients} short clients: {now[2]:.0f} MB = "
          f"{now[2] / now[0]:.2f} x its baseline (keeping freed memory: {kept[2]:.0f} MB = "
          f"{kept[2] / kept[0]:.2f} x)")


if __name__ == "__main__":
    main()
