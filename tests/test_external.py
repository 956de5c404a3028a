"""
External calculations (seed 001): consistent hashing of variables over
nodes, and the external_calculation block against real services (the
example service in its own processes), including a node killed mid-stream.
"""

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from pyrf_blocks import Chunk, Graph
from pyrf_blocks.blocks.external import external_calculation
from pyrf_blocks.cluster.hashring import HashRing
from pyrf_blocks.interfaces import IRecordsProducer, IStateful
from pyrf_blocks.testing import array_source, assert_provides, new_reactor, recording_sink

ROOT = Path(__file__).resolve().parents[1]


@given(st.lists(st.text(min_size=1, max_size=8), min_size=2, max_size=6, unique=True),
       st.lists(st.text(max_size=10), min_size=1, max_size=50))
@settings(max_examples=100, deadline=None)
def test_removing_a_node_moves_only_its_keys(nodes, keys):
    """Keys of the other nodes stay put when one node goes."""
    ring = HashRing(nodes)
    before = {k: ring.node_for(k) for k in keys}
    ring.remove(nodes[0])
    for key, node in before.items():
        if node != nodes[0]:
            assert ring.node_for(key) == node
        else:
            assert ring.node_for(key) != nodes[0]


def test_without_skips_down_nodes_and_all_down_raises():
    """node_for skips nodes given as down; none left is a LookupError."""
    ring = HashRing(["a", "b"])
    first = ring.node_for("v")
    assert ring.node_for("v", without={first}) != first
    with pytest.raises(LookupError, match="every node is down"):
        ring.node_for("v", without={"a", "b"})


def test_keys_spread_over_nodes():
    """With 64 points per node, 3 nodes each get between 20 % and 47 % of 3000 keys."""
    ring = HashRing(["n1", "n2", "n3"])
    counts = {}
    for i in range(3000):
        node = ring.node_for(f"var{i}")
        counts[node] = counts.get(node, 0) + 1
    assert all(600 <= c <= 1400 for c in counts.values()), counts


@pytest.fixture
def services(tmp_path):
    """Two example services in their own processes: {url: process}."""
    started = {}
    for _ in range(2):
        process = subprocess.Popen([sys.executable, str(ROOT / "examples" / "external_mean.py")],
                                   stdout=subprocess.PIPE, text=True)
        line = process.stdout.readline()
        assert line.startswith("listening on "), line
        started[line.split()[-1]] = process
    yield started
    for process in started.values():
        process.kill()
        process.wait()


def record_chunks(values, per_chunk):
    chunks = []
    for i in range(0, len(values), per_chunk):
        part = values[i:i + per_chunk]
        times = np.arange(i, i + len(part), dtype=np.int64) * 1_000_000
        chunks.append(Chunk.records(times, part, int(times[0]), int(times[-1]) + 1))
    return chunks


def test_running_mean_survives_a_killed_node(services):
    """The node serving the variable is SIGKILLed mid-stream: every running mean is still right."""
    values = np.arange(1.0, 401.0)
    graph = Graph(new_reactor())
    source = array_source(record_chunks(values, 10), kind="records", graph=graph)
    block = external_calculation(source, services=list(services), variable="v",
                                 state_every=4, timeout=2.0, graph=graph)
    assert_provides(IRecordsProducer, block)
    assert_provides(IStateful, block)
    sink = recording_sink(block, graph=graph)
    node = HashRing(list(services)).node_for("v")

    def kill_after_ten(chunk):
        if len(sink.chunks) == 10:
            services[node].send_signal(signal.SIGKILL)
    original = sink.compute
    sink.compute = lambda chunk: (original(chunk), kill_after_ten(chunk))
    graph.run()
    results = np.concatenate([c.data for c in sink.chunks])
    expected = np.cumsum(values)[9::10] / np.arange(10, 401, 10)
    assert_allclose(results, expected)
    assert block.rebuilds >= 2  # the first node, then the other after the kill


def test_a_service_answering_nonsense_fails_the_block_clearly(tmp_path):
    """A result that is not a number fails the graph naming the block and the value."""
    graph = Graph(new_reactor())
    with pytest.raises(ValueError, match="http"):
        external_calculation(array_source([np.zeros(1)], kind="real", rate=1.0, graph=graph),
                             services=["ftp://x"], variable="v", graph=graph)


WORKER_TOKEN = "calc-token-0123456789"


@pytest.fixture
def workers(tmp_path):
    """Three ``pyrf-blocks worker`` processes on loopback with a token: {url: process}."""
    import os

    env = dict(os.environ, PYRF_BLOCKS_TOKEN=WORKER_TOKEN, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    processes, started = [], {}
    try:
        for _ in range(3):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "pyrf_blocks.cli", "worker", "--listen",
                 "tcp:0:interface=127.0.0.1"], stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, env=env))
        for process in processes:
            line = process.stdout.readline()
            assert line.startswith("listening on "), line
            started[line.split()[-1]] = process
        yield started
    finally:
        for process in processes:
            process.kill()
            process.wait()


@pytest.mark.chaos
def test_our_workers_serve_seed_001_through_a_killed_owner(workers):
    """A ring of real workers; the one owning the variable is SIGKILLed mid-stream: every result equals the uninterrupted computation."""
    from pyrf_blocks.calculations import CALCULATIONS

    calculation = "integral"  # depends on the row before each chunk: the hardest to rebuild
    values = np.sin(np.arange(400) / 7.0) * 5 + 10
    chunks = record_chunks(values, 10)
    services = [f"{url}/calculations/{calculation}" for url in workers]
    graph = Graph(new_reactor())
    source = array_source(chunks, kind="records", graph=graph)
    block = external_calculation(source, services=services, variable="energy:phase1",
                                 state_every=4, timeout=2.0, token=WORKER_TOKEN, graph=graph)
    sink = recording_sink(block, graph=graph)
    owner = HashRing(services).node_for("energy:phase1")
    victim = workers[owner.rsplit("/calculations/", 1)[0]]

    def kill_after_ten(chunk):
        if len(sink.chunks) == 10:
            victim.send_signal(signal.SIGKILL)
    original = sink.compute
    sink.compute = lambda chunk: (original(chunk), kill_after_ten(chunk))
    graph.run()

    state, expected = None, []
    for chunk in chunks:
        args = {"times": chunk.times.tolist(), "values": chunk.data.tolist()}
        state, result = CALCULATIONS[calculation].run(state, args["times"], args["values"])
        expected.append(result)
    results = np.concatenate([c.data for c in sink.chunks])
    assert victim.poll() is not None
    assert results.tolist() == expected  # exactly: the same steps in the same order
    assert block.rebuilds >= 2  # the owner at first, then the next node after the kill
