"""
An edge between two computations survives the death of either end: real
worker processes on a real etcd run a producer (V, I → power →
cluster_output) and a consumer (cluster_input → 200 ms windows and a
running average → result_store) on different workers; the consumer's
worker is SIGKILLed mid-stream, then the producer's.  The stored results
must equal one uninterrupted graph's, byte for byte: none lost, none
duplicated, none different.
"""

import signal
import subprocess
import time

import pytest

from pyrf_blocks.chunk import decode_chunk
from pyrf_blocks.cluster.edges import MAX_RETAINED
from pyrf_blocks.graph import Graph
from pyrf_blocks.pipeline import build, check_text
from pyrf_blocks.testing import poll_until
from pyrf_blocks.testing.servers import EtcdServer

from cluster_real import CONSUMER, PRODUCER, REFERENCE, command, rows, start_workers

pytestmark = pytest.mark.chaos

CHUNKS = 350  # 20 ms of device time each: 7 s, paced


def test_an_edge_between_computations_survives_killing_either_end(tmp_path):
    """SIGKILL the consumer's worker, then the producer's: results equal one graph's, 0 lost, 0 duplicated."""
    reference = tmp_path / "reference.sqlite"
    build(check_text(REFERENCE.format(count=CHUNKS, paced="false",
                                      store=f"path: {reference}, computation: stats")),
          Graph()).run()
    expected = rows(reference, "stats")
    assert len(expected) > CHUNKS
    (tmp_path / "power.yaml").write_text(PRODUCER.format(count=CHUNKS, paced="true", retained=MAX_RETAINED))
    (tmp_path / "stats.yaml").write_text(CONSUMER.format(store=""))

    store = tmp_path / "cluster.sqlite"
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = {}
    with EtcdServer(tmp_path) as etcd:
        try:
            processes.update(start_workers(etcd, store, logs, ("w1", "w2", "w3")))
            processes["m1"] = command(
                "manager", "--cluster", etcd.url, "--name", "m1", "--ttl", "2",
                str(tmp_path / "power.yaml"), str(tmp_path / "stats.yaml"),
                log=open(logs / "m1.log", "w"))
            # Both assigned, on two different workers (the third idle).
            layout = poll_until(lambda: (lambda o: o if len(o) == 2 and len(set(o.values())) == 2
                                         else None)(etcd.owners()), 30,
                                "the two computations on two workers")
            stored = lambda: len(rows(store, "stats"))  # noqa: E731

            # 1. SIGKILL the consumer's worker once results flow.
            poll_until(lambda: stored() > 40, 30, "the consumer to store results")
            consumer_worker = layout["stats"]
            processes[consumer_worker].send_signal(signal.SIGKILL)
            killed_at, before = time.monotonic(), stored()
            poll_until(lambda: etcd.owners().get("stats") not in (None, consumer_worker),
                       20, "the consumer to move off the killed worker")
            poll_until(lambda: stored() > before, 20, "the consumer's results to flow again")
            consumer_recovery = time.monotonic() - killed_at

            # 2. SIGKILL the producer's worker, mid-stream still.
            producer_worker = etcd.owners()["power"]
            before = stored()
            assert before < len(expected) - 100, "the stream ended before the second kill"
            processes[producer_worker].send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            poll_until(lambda: etcd.owners().get("power") not in (None, producer_worker),
                       20, "the producer to move off the killed worker")
            poll_until(lambda: stored() > before + 5, 20, "results to flow again")
            producer_recovery = time.monotonic() - killed_at
            print("layout", layout, "then", etcd.owners())

            poll_until(lambda: stored() >= len(expected), 60, "the consumer to finish")
            time.sleep(0.5)
            got = rows(store, "stats")
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
            for process in processes.values():
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    lost = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    different = sorted(k for k in got if k in expected and got[k] != expected[k])
    report = (f"lost {len(lost)}, duplicated {len(extra)}, different {len(different)}; "
              f"results flowed again {consumer_recovery:.2f} s after the consumer's worker "
              f"died, {producer_recovery:.2f} s after the producer's")
    print(report)
    assert not lost and not extra, report + f"; lost {lost[:5]}, extra {extra[:5]}"
    if different:
        key = different[0]
        raise AssertionError(f"{report}; first difference {key}: "
                             f"{decode_chunk(expected[key])!r} != {decode_chunk(got[key])!r}")
