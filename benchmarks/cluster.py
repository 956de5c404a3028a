"""
Cluster recovery, rebalancing and coordination load, with real processes on
a real etcd (Debian's etcd-server) on loopback.

    python benchmarks/cluster.py [--ttl SECONDS] [--sizes 1KiB,1MiB,100MiB]

1. Recovery: one computation (a paced simulated analyzer -> a block holding
   a state of the given size -> result_store) on two workers; the owner is
   SIGKILLed; the figure is the time from the kill to the first new result
   row written by the other worker, against the lease ttl measured in the
   same run (a dead worker is noticed only when its lease lapses: ttl is the
   floor, the rest is reassignment, loading the snapshot and restoring).
2. Rebalancing on join: four computations on two workers; a third worker
   joins; the time from its "joined" line until a computation moved to it
   writes results, and how many moved (the rule: about 1/n).
3. Coordination load at rest: etcd's own request counters over 10 s with
   three idle workers and a manager: requests per second per worker.
4. An edge between computations (examples/cluster_power.yaml and
   examples/cluster_power_stats.yaml, the consumer reading the producer's
   cluster_output across workers): the consumer's worker is SIGKILLed, then
   the producer's; each figure is the time from the kill to the consumer's
   next new result row, against the ttl and against recovery 1 (1 KiB)
   measured in the same run.

The last line is the headline: recovery time for 1 MiB of state, in seconds,
and its ratio to the ttl.
"""

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyrf_blocks.pipeline.units import parse_quantity  # noqa: E402
from pyrf_blocks.testing import poll_until  # noqa: E402
from pyrf_blocks.testing.servers import EtcdServer  # noqa: E402

PIPELINE = """\
version: 1
blocks:
  wsa:
    type: simulated_instrument
    params: {{seed: {seed}, paced: true, sample_rate: 51200, samples_per_packet: 256,
             packets_per_block: 4}}
  hold:
    type: ballast
    inputs: [wsa]
    params: {{state_bytes: {state}}}
  out:
    type: result_store
    inputs: [hold]
"""


def env():
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])
    return environ


class Cluster:
    def __init__(self, directory, etcd, ttl):
        self.directory, self.etcd, self.ttl = directory, etcd, ttl
        self.store = directory / "cluster.sqlite"
        self.processes = {}

    def worker(self, name, snapshot_interval):
        log = open(self.directory / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "pyrf_blocks.cli", "worker", "--import", "cluster_blocks",
             "--listen", "tcp:0:interface=127.0.0.1", "--cluster", self.etcd.url,
             "--name", name, "--store", str(self.store), "--ttl", str(self.ttl),
             "--snapshot-interval", str(snapshot_interval), "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT, env=env())

    def manager(self, files):
        log = open(self.directory / "manager.log", "w")
        self.processes["manager"] = subprocess.Popen(
            [sys.executable, "-m", "pyrf_blocks.cli", "manager", "--import", "cluster_blocks",
             "--cluster", self.etcd.url,
             "--ttl", str(self.ttl), "--log-level", "warn", *map(str, files)],
            stdout=log, stderr=subprocess.STDOUT, env=env())

    def joined(self, name):
        return f"worker {name}: joined" in (self.directory / f"{name}.log").read_text()

    def owners(self):
        return self.etcd.owners()

    def rows(self, computation):
        if not self.store.exists():
            return 0
        with sqlite3.connect(self.store, timeout=30) as db:
            try:
                return db.execute("SELECT count(*) FROM results WHERE computation = ?",
                                  (computation,)).fetchone()[0]
            except sqlite3.OperationalError:
                return 0

    def snapshots(self, computation):
        if not self.store.exists():
            return 0
        with sqlite3.connect(self.store, timeout=30) as db:
            try:
                row = db.execute("SELECT revision FROM snapshots WHERE computation = ?",
                                 (computation,)).fetchone()
            except sqlite3.OperationalError:
                return 0
        return row is not None

    def close(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait(predicate, timeout, what):
    return poll_until(predicate, timeout, what, interval=0.02)


def write_pipelines(directory, count, state):
    files = []
    for i in range(count):
        path = directory / f"c{i}.yaml"
        path.write_text(PIPELINE.format(seed=i + 1, state=state))
        files.append(path)
    return files


def recovery(state_bytes, ttl):
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(Path(tmp)) as etcd:
        directory = Path(tmp)
        cluster = Cluster(directory, etcd, ttl)
        try:
            interval = max(0.5, state_bytes / 200e6)
            for name in ("w1", "w2"):
                cluster.worker(name, interval)
            wait(lambda: cluster.joined("w1") and cluster.joined("w2"), 30, "workers to join")
            cluster.manager(write_pipelines(directory, 1, state_bytes))
            owner = wait(lambda: cluster.owners().get("c0"), 30, "an owner")
            wait(lambda: cluster.snapshots("c0") and cluster.rows("c0") > 10, 60,
                 "a snapshot and results")
            cluster.processes[owner].send_signal(signal.SIGKILL)
            killed, rows = time.monotonic(), cluster.rows("c0")
            wait(lambda: cluster.rows("c0") > rows, 120, "results after the kill")
            return time.monotonic() - killed
        except TimeoutError:
            for log in sorted(directory.glob("[mw]*.log")):
                print(f"--- {log.name}", log.read_text()[-2000:], file=sys.stderr)
            raise
        finally:
            cluster.close()


def rebalance(ttl):
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(Path(tmp)) as etcd:
        directory = Path(tmp)
        cluster = Cluster(directory, etcd, ttl)
        try:
            for name in ("w1", "w2"):
                cluster.worker(name, 0.5)
            wait(lambda: cluster.joined("w1") and cluster.joined("w2"), 30, "workers to join")
            cluster.manager(write_pipelines(directory, 4, 1024))
            wait(lambda: len(cluster.owners()) == 4 and all(
                cluster.rows(f"c{i}") > 5 for i in range(4)), 60, "four computations running")
            before = cluster.owners()
            cluster.worker("w3", 0.5)
            wait(lambda: cluster.joined("w3"), 30, "w3 to join")
            joined = time.monotonic()
            moved = wait(lambda: [c for c, w in cluster.owners().items() if w == "w3"], 30,
                         "a computation to move to w3")
            rows = {c: cluster.rows(c) for c in moved}
            wait(lambda: all(cluster.rows(c) > rows[c] + 2 for c in moved), 60,
                 "moved computations to write results")
            took = time.monotonic() - joined
            after = cluster.owners()
            return took, sum(1 for c in before if before[c] != after[c]), len(before)
        finally:
            cluster.close()


def grpc_requests(url):
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    return sum(float(m) for m in re.findall(r'^grpc_server_started_total\{[^}]*\} (\S+)$',
                                             text, re.M))


def rest_load(ttl, seconds=10.0):
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(Path(tmp)) as etcd:
        directory = Path(tmp)
        cluster = Cluster(directory, etcd, ttl)
        try:
            for name in ("w1", "w2", "w3"):
                cluster.worker(name, 1.0)
            wait(lambda: all(cluster.joined(w) for w in ("w1", "w2", "w3")), 30, "workers")
            time.sleep(2 * ttl)
            first = grpc_requests(etcd.url)
            time.sleep(seconds)
            return (grpc_requests(etcd.url) - first) / seconds / 3
        finally:
            cluster.close()


def edge_recovery(ttl):
    """Seconds from SIGKILL to new consumer results: its own worker's, then the producer's."""
    producer, consumer = "cluster_power", "cluster_power_stats"
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(Path(tmp)) as etcd:
        directory = Path(tmp)
        cluster = Cluster(directory, etcd, ttl)
        try:
            for name in ("w1", "w2", "w3"):
                cluster.worker(name, 0.5)
            wait(lambda: all(cluster.joined(w) for w in ("w1", "w2", "w3")), 30, "workers")
            cluster.manager([ROOT / "examples" / f"{producer}.yaml",
                             ROOT / "examples" / f"{consumer}.yaml"])
            wait(lambda: len(set(cluster.owners().values())) == 2, 30, "two owners")
            wait(lambda: cluster.snapshots(consumer) and cluster.rows(consumer) > 10, 60,
                 "consumer snapshots and results")
            times = []
            for victim in (consumer, producer):
                owner = cluster.owners()[victim]
                cluster.processes[owner].send_signal(signal.SIGKILL)
                killed, rows = time.monotonic(), cluster.rows(consumer)
                wait(lambda: cluster.rows(consumer) > rows, 120, "results after the kill")
                times.append(time.monotonic() - killed)
                wait(lambda: cluster.owners().get(victim) != owner, 30, "the move")
                wait(lambda: cluster.snapshots(victim), 30, "a snapshot after the move")
                time.sleep(2 * ttl)
            return times
        except TimeoutError:
            for log in sorted(directory.glob("[mw]*.log")):
                print(f"--- {log.name}", log.read_text()[-2000:], file=sys.stderr)
            raise
        finally:
            cluster.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ttl", type=float, default=2.0, help="lease ttl, s (default 2)")
    parser.add_argument("--sizes", default="1KiB,1MiB,100MiB",
                        help="state sizes to recover (default 1KiB,1MiB,100MiB)")
    args = parser.parse_args()
    ttl = args.ttl
    results = {}
    for text in args.sizes.split(","):
        size = int(parse_quantity(text.removesuffix("B"), "count"))
        results[text] = recovery(size, ttl)
        print(f"recovery, state {text:>7}: {results[text]:6.2f} s after SIGKILL "
              f"(ttl {ttl:g} s; {results[text] / ttl:.2f}x ttl)", flush=True)
    took, moved, total = rebalance(ttl)
    print(f"rebalance on join: a third worker runs its share {took:.2f} s after joining; "
          f"{moved} of {total} computations moved (rule: {total // 3} or {-(-total // 3)})",
          flush=True)
    rate = rest_load(ttl)
    print(f"coordination at rest: {rate:.2f} etcd requests/s per worker "
          f"(lease renewals every ttl/3 = {3 / ttl:.2f}/s)", flush=True)
    consumer, producer = edge_recovery(ttl)
    alone = next(iter(results.values()))
    print(f"edge between computations: consumer results again {consumer:.2f} s after its "
          f"worker's SIGKILL ({consumer / ttl:.2f}x ttl, {consumer / alone:.2f}x a lone "
          f"computation's {alone:.2f} s), {producer:.2f} s after the producer's "
          f"({producer / ttl:.2f}x ttl)", flush=True)
    headline = results.get("1MiB", next(iter(results.values())))
    print(f"recovery with 1 MiB of state: {headline:.2f} s, {headline / ttl:.2f}x the lease ttl "
          f"of {ttl:g} s")


if __name__ == "__main__":
    main()
