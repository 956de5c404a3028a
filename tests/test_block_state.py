"""
State (IStateful) of the blocks that keep memory across chunks: captured
after any input chunk, msgpack round-tripped and restored into a fresh
block fed the rest, the outputs equal the uninterrupted run's.
"""

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import Chunk, Graph, average, average_block, cycle_rms, max_hold
from pyrf_blocks.blocks.dsp import decimate_block, fft_block
from pyrf_blocks.blocks.measure import thd_block
from pyrf_blocks.blocks.sensors import sensor_filter, sensor_store
from pyrf_blocks.interfaces import IStateful
from pyrf_blocks.storage import MemoryStore
from pyrf_blocks.testing import (array_source, assert_provides, recording_sink, run_clock,
                                 split_array)

RATE = 51200.0
START = 1_774_742_400_000_000_000


def sampled_chunks(kind, samples, sizes, meta):
    """``samples`` cut at ``sizes`` as chunks that follow each other exactly."""
    chunks, done = [], 0
    for piece in split_array(samples, sizes):
        start = START + round(done * 1e9 / RATE)
        done += len(piece)
        chunks.append(Chunk(kind, piece, start, START + round(done * 1e9 / RATE), RATE,
                            meta=dict(meta)))
    return chunks


def run(make, chunks, kind, state=None, capture_after=None):
    """
    The output chunks of ``make(source, graph)`` fed ``chunks`` (a fresh
    block, given ``state`` first), and, after input chunk ``capture_after``,
    its state (through msgpack) and the next seq of its output.
    """
    clock = Clock()
    graph = Graph(clock)
    block = make(array_source(chunks, kind=kind, graph=graph), graph)
    assert_provides(IStateful, block)
    if state is not None:
        block.set_state(state)
    captured = []
    if capture_after is not None:
        compute, seen = block.compute, []

        def counting(chunk):
            compute(chunk)
            seen.append(chunk)
            if len(seen) == capture_after:
                packed = msgpack.packb(block.get_state(), use_bin_type=True)
                captured.append((msgpack.unpackb(packed, raw=False),
                                 block.output().next_seq))
        block.compute = counting
    sink = recording_sink(block, graph=graph)
    assert run_clock(clock, graph) is None
    return sink.chunks, captured


def assert_goes_on_exactly(make, chunks, kind, cut):
    cut = cut % len(chunks) or 1
    whole, [(state, seq)] = run(make, chunks, kind, capture_after=cut)
    rest, _ = run(make, chunks[cut:], kind, state=state)
    expected = [c for c in whole if c.seq >= seq]
    assert len(rest) == len(expected)
    for a, b in zip(expected, rest):
        assert (a.start, a.end, a.rate) == (b.start, b.end, b.rate)
        assert a.meta == b.meta
        if a.kind == "records":
            assert_array_equal(a.times, b.times)
        assert_array_equal(a.data, b.data)


sizes = st.lists(st.integers(1, 300), min_size=2, max_size=12)


@given(sizes=sizes, overlap=st.sampled_from([0, 5, 15]), cut=st.integers(1, 12))
@settings(max_examples=25, deadline=None)
def test_fft_block_goes_on_from_its_state(sizes, overlap, cut):
    """fft_block's held samples, frame count and time base: restored after any chunk, the same spectra."""
    rng = np.random.default_rng(1)
    samples = (rng.normal(size=1500) + 1j * rng.normal(size=1500)).astype(np.complex64)
    chunks = sampled_chunks("iq", samples, sizes, {"center_frequency": 1e6, "tones": ((1, 2),)})
    assert_goes_on_exactly(lambda source, graph: fft_block(source, size=16, overlap=overlap,
                                                           graph=graph),
                           chunks, "iq", cut)


@given(sizes=sizes, cut=st.integers(1, 12))
@settings(max_examples=25, deadline=None)
def test_decimate_block_goes_on_from_its_state(sizes, cut):
    """decimate_block's filter delay line and sample count: restored after any chunk, the same output."""
    samples = np.sin(np.arange(1500) / 5.0).astype(np.float32)
    chunks = sampled_chunks("real", samples, sizes, {"units": "V"})
    assert_goes_on_exactly(lambda source, graph: decimate_block(source, factor=3, graph=graph),
                           chunks, "real", cut)


@given(sizes=sizes, cut=st.integers(1, 12))
@settings(max_examples=25, deadline=None)
def test_thd_block_goes_on_from_its_state(sizes, cut):
    """thd_block's partly filled window: restored after any chunk, the same THD values and times."""
    t = np.arange(1500) / RATE
    samples = (np.sin(2 * np.pi * 800 * t) + 0.05 * np.sin(2 * np.pi * 1600 * t)).astype(
        np.float64)
    chunks = sampled_chunks("real", samples, sizes, {})
    assert_goes_on_exactly(lambda source, graph: thd_block(source, size=128, graph=graph),
                           chunks, "real", cut)


def records(values, first):
    times = START + (np.arange(len(values)) + first) * 250_000_000
    return Chunk.records(times, np.asarray(values, dtype=float), end=int(times[-1]) + 1)


def record_chunks(values, sizes):
    chunks, first = [], 0
    for piece in split_array(np.asarray(values, dtype=float), sizes):
        chunks.append(records(piece, first))
        first += len(piece)
    return chunks


values_lists = st.lists(st.sampled_from([1.0, 2.0, 3.0, 150.0]), min_size=4, max_size=60)


@given(values=values_lists, sizes=st.lists(st.integers(1, 10), min_size=2, max_size=12),
       cut=st.integers(1, 12))
@settings(max_examples=25, deadline=None)
def test_sensor_filter_goes_on_from_its_state(values, sizes, cut):
    """sensor_filter's rate limiter (last kept time) and uniqueness (last hash): restored after any chunk, the same rows kept."""
    chunks = record_chunks(values, sizes)

    def make(source, graph):
        return sensor_filter(source, maximum=100.0, max_rate=0.6, unique=True, graph=graph)
    assert_goes_on_exactly(make, chunks, "records", cut)
    whole, [(state, _)] = run(make, chunks, "records", capture_after=len(chunks))
    assert state["version"] == 1 and set(state["dropped"]) <= {"max", "rate", "unique"}


POLICIES = """\
version: 1
pipeline:
  filters: {type_input_value: number, type_value_threshold: max, max: 100}
  processing_policy:
    - {type: last_value, min_interval: 0.6}
    - {type: n_records, count_records: 1000}
    - {type: aggregation, window_size: 1m}
  save_buffering: {max_items: 3, accumulation_time: 1s}
"""


@given(values=values_lists, sizes=st.lists(st.integers(1, 10), min_size=2, max_size=12),
       cut=st.integers(1, 12))
@settings(max_examples=20, deadline=None)
def test_sensor_store_goes_on_from_its_state(tmp_path_factory, values, sizes, cut):
    """sensor_store's last-value interval, aggregation windows and counts: restored once the rows before the cut are durable, the store ends as the uninterrupted run's."""
    path = tmp_path_factory.mktemp("policies") / "pipeline.yaml"
    path.write_text(POLICIES)
    chunks = record_chunks(values, sizes)
    cut = cut % len(chunks) or 1

    def store_of(parts, state=None):
        store = MemoryStore()
        blocks = []
        for part in parts:
            clock = Clock()
            graph = Graph(clock)
            sink = sensor_store(array_source(part, kind="records", graph=graph), store,
                                "kpi/thd", pipeline=str(path), threaded=False, graph=graph)
            assert_provides(IStateful, sink)
            if state is not None:
                sink.set_state(state)
            assert run_clock(clock, graph) is None
            assert not sink.holding  # every row durable: a consistent cut
            state = msgpack.unpackb(msgpack.packb(sink.get_state(), use_bin_type=True),
                                    raw=False)
            blocks.append(sink)
        return store, blocks

    whole, [one] = store_of([chunks])
    parts, [_, last] = store_of([chunks[:cut], chunks[cut:]])
    for table in ("last_value", "n_records", "aggregation"):
        assert parts.query("kpi/thd", table) == whole.query("kpi/thd", table), table
    assert last.pipeline.dropped == one.pipeline.dropped


@pytest.mark.parametrize("make, kind", [
    (lambda p: fft_block(p, size=16, name="b"), "iq"),
    (lambda p: decimate_block(p, factor=2, name="b"), "real"),
    (lambda p: thd_block(p, size=64, name="b"), "real"),
    (lambda p: cycle_rms(p, name="b"), "real"),
    (lambda p: average(p, name="b"), "real"),
    (lambda p: max_hold(p, name="b"), "spectrum"),
    (lambda p: average_block(p, name="b"), "spectrum"),
    (lambda p: sensor_filter(p, name="b"), "records"),
])
def test_a_state_of_another_version_is_refused(graph, make, kind):
    """set_state of a state with another version raises, naming the block and both versions."""
    block = make(array_source([], kind=kind, graph=graph))
    assert_provides(IStateful, block)
    block.reset()  # (what connecting does first)
    state = block.get_state()
    assert state["version"] == 1
    with pytest.raises(ValueError, match=r"'b': a state of version 2; this block reads version 1"):
        block.set_state(dict(state, version=2))


@given(chunk_size=st.integers(1, 400), cut=st.integers(1, 20))
@settings(max_examples=10, deadline=None)
def test_sigmf_source_goes_on_from_its_state(tmp_path_factory, chunk_size, cut):
    """sigmf_source's capture, position and time base: restored after any chunk, the same chunks on (a retune makes two captures)."""
    from pyrf_blocks.blocks.recording import record_block, sigmf_source

    path = tmp_path_factory.mktemp("sigmf") / "rec"
    clock = Clock()
    graph = Graph(clock)
    samples = (np.arange(1200, dtype=np.float32) / 2000).astype(np.complex64)
    chunks = [Chunk("iq", samples[:500], START, START + 500_000, 1e6,
                    meta={"center_frequency": 1e9, "reference_level": 0.0}),
              Chunk("iq", samples[500:], START + 900_000, START + 1_600_000, 1e6,
                    meta={"center_frequency": 2e9, "reference_level": 0.0})]
    record_block(array_source(chunks, kind="iq", graph=graph), str(path), graph=graph)
    assert run_clock(clock, graph) is None

    def replay(state=None):
        clock = Clock()
        graph = Graph(clock)
        source = sigmf_source(str(path), chunk_size=chunk_size, graph=graph)
        assert_provides(IStateful, source)
        if state is not None:
            source.set_state(state)
        states = []
        sink = recording_sink(source, graph=graph)
        original = sink.compute
        sink.compute = lambda chunk: (original(chunk), states.append(
            msgpack.unpackb(msgpack.packb(source.get_state()), raw=False)))
        assert run_clock(clock, graph) is None
        return sink.chunks, states

    whole, states = replay()
    at = cut % len(whole)
    rest, _ = replay(states[at])
    assert len(rest) == len(whole) - at - 1
    for a, b in zip(whole[at + 1:], rest):
        assert (a.start, a.end, a.meta) == (b.start, b.end, b.meta)
        assert_array_equal(a.data, b.data)
