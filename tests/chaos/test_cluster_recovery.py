"""
A cluster of real processes on a real etcd recovers exactly: three workers
and two managers run stateful computations (the power of V and I in
device-time windows and its running average, which depend on everything
seen, fed by sources whose position is state too); a worker is
SIGKILLed, another SIGSTOPped past its lease and then resumed (it must be
fenced, not double-write), the leading manager is SIGKILLed, and a fourth
worker joins (it takes one computation; nothing else moves).  Every
computation's stored results must then equal an uninterrupted run's: none
lost, none different.
"""

import signal
import subprocess
import time

import pytest

from pyrf_blocks.chunk import decode_chunk
from pyrf_blocks.testing import poll_until
from pyrf_blocks.testing.servers import EtcdServer

from cluster_real import command, rows, start_workers

pytestmark = pytest.mark.chaos

CHUNKS = 300  # 20 ms of device time each: 6 s per computation, paced
TEMPLATE = """\
version: 1
description: power of a converter's input, in windows and on average
blocks:
  V:
    type: waveform_source
    params: {{amplitude: 325, harmonics: [[3, 0.03]], noise: 0.5, seed: {seed},
             sample_rate: 5000, samples_per_chunk: 100, count: {count}, paced: {paced},
             start_time: 1774742400000000000}}
  I:
    type: waveform_source
    params: {{amplitude: {amps}, phase: -30, noise: 0.01, seed: {seed2},
             sample_rate: 5000, samples_per_chunk: 100, count: {count}, paced: {paced},
             start_time: 1774742400000000000}}
  P: {{type: power_block, inputs: [V, I]}}
  windows:
    type: window_block
    inputs: [P]
    params: {{every: 200ms, stats: [mean, max, count]}}
  mean: {{type: average, inputs: [P]}}
  windows_out:
    type: result_store
    inputs: [windows]
    params: {{{params}}}
  mean_out:
    type: result_store
    inputs: ["mean:running"]
    params: {{{params}}}
"""


def leader(etcd_url):
    out = subprocess.run(["etcdctl", "--endpoints", etcd_url, "get", "/pyrf/leader",
                          "--print-value-only"], capture_output=True, text=True,
                         timeout=10).stdout
    return out.strip()


def test_cluster_recovers_exactly_after_kill_stop_and_manager_death(tmp_path):
    """SIGKILL a worker, SIGSTOP another past its lease, kill the leader: outputs equal the uninterrupted run."""
    from pyrf_blocks.graph import Graph
    from pyrf_blocks.pipeline import build, check_text

    names = [f"comp{i}" for i in range(4)]
    reference = tmp_path / "reference.sqlite"
    for i, name in enumerate(names):
        values = dict(seed=i + 1, seed2=i + 11, count=CHUNKS, amps=5 + i)
        text = TEMPLATE.format(paced="false", params=f"path: {reference}, computation: {name}",
                               **values)
        build(check_text(text), Graph()).run()
        (tmp_path / f"{name}.yaml").write_text(TEMPLATE.format(paced="true", params="",
                                                               **values))
    expected = {name: rows(reference, name) for name in names}
    total = len(expected[names[0]])
    assert total > CHUNKS and all(len(expected[n]) == total for n in names)

    store = tmp_path / "cluster.sqlite"
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = {}
    with EtcdServer(tmp_path) as etcd:
        try:
            processes.update(start_workers(etcd, store, logs, ("w1", "w2", "w3")))
            for manager in ("m1", "m2"):
                processes[manager] = command(
                    "manager", "--cluster", etcd.url, "--name", manager, "--ttl", "2",
                    *[str(tmp_path / f"{n}.yaml") for n in names],
                    log=open(logs / f"{manager}.log", "w"))
                time.sleep(0.3)
            layout = poll_until(lambda: (lambda o: o if len(o) == 4 and len(set(o.values())) == 3
                                         else None)(etcd.owners()), 30,
                                "the four computations spread over three workers")

            # 1. SIGKILL the worker that runs comp0, once it has made progress.
            poll_until(lambda: len(rows(store, "comp0")) > 20, 30, "comp0 to make progress")
            victim = layout["comp0"]
            processes[victim].send_signal(signal.SIGKILL)
            killed_at, before = time.monotonic(), len(rows(store, "comp0"))
            poll_until(lambda: etcd.owners().get("comp0") not in (None, victim), 20,
                       "comp0 to move off the killed worker")
            poll_until(lambda: len(rows(store, "comp0")) > before, 20, "comp0 to flow again")
            recovery = time.monotonic() - killed_at
            print("layout", layout, "victim", victim, "before", before,
                  "owner now", etcd.owners())

            # 2. SIGSTOP another worker past its lease, then let it go on.
            paused = next(w for w in ("w1", "w2", "w3")
                          if w != victim and w in etcd.owners().values())
            processes[paused].send_signal(signal.SIGSTOP)
            poll_until(lambda: paused not in etcd.owners().values(), 20,
                       f"{paused}'s computations to move while it is stopped")
            time.sleep(0.5)
            processes[paused].send_signal(signal.SIGCONT)

            # 3. SIGKILL the leading manager; the other leads.
            first = leader(etcd.url)
            leading = "m1" if '"m1"' in first else "m2"
            processes[leading].send_signal(signal.SIGKILL)
            poll_until(lambda: leader(etcd.url) and leader(etcd.url) != first, 15,
                       "the other manager to lead")

            # 4. A fourth worker joins: it takes its share, and only that moves.
            # Live now: the paused worker (it joined again) and the untouched one.
            settled = poll_until(lambda: (lambda o: o if sorted(
                list(o.values()).count(w) for w in set(o.values())) == [2, 2] else None)(
                etcd.owners()), 30, "two live workers holding two computations each")
            processes.update(start_workers(etcd, store, logs, ("w4",)))
            joined = poll_until(lambda: (lambda o: o if "w4" in o.values() else None)(
                etcd.owners()), 20, "w4 to take a computation")
            moved = sorted(c for c in names if settled[c] != joined[c])

            poll_until(lambda: all(len(rows(store, n)) == total for n in names), 60,
                       "every computation to finish")
            time.sleep(1.0)  # writes still in flight from a fenced worker would show now
            got = {name: rows(store, name) for name in names}
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGCONT)
                    process.terminate()
            for process in processes.values():
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    lost = {n: sorted(set(expected[n]) - set(got[n])) for n in names}
    different = {n: sorted(k for k in got[n] if got[n][k] != expected[n].get(k)) for n in names}
    report = (f"lost {sum(map(len, lost.values()))}, different "
              f"{sum(map(len, different.values()))}, recovery after SIGKILL {recovery:.2f} s, "
              f"moved on join {moved}")
    print(report)
    assert not any(lost.values()), report + f"; lost seqs {lost}"
    assert len(moved) == 1 and joined[moved[0]] == "w4", report
    if any(different.values()):
        name = next(n for n in names if different[n])
        key = different[name][0]
        a, b = decode_chunk(expected[name][key]), decode_chunk(got[name][key])
        raise AssertionError(f"{report}; first difference {name} {key}: "
                             f"{a!r} != {b!r}")
    fenced = "".join((logs / f"{paused}.log").read_text().splitlines(True))
    assert "Fenced" in fenced or "lease" in fenced, f"{paused} did not notice it lost its lease"
