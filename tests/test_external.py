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
