"""
Buffer reuse: a block's output arrays are reused only once nothing holds
them — never while a consumer keeps a chunk, a view of its data, or a
queue holds it — and reuse changes no output.
"""

import numpy as np
from numpy.testing import assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import Graph, calibrate_block, collector, fft_block
from pyrf_blocks.block import Sink
from pyrf_blocks.buffers import BufferPool
from pyrf_blocks.interfaces import IChunkProducer
from pyrf_blocks.testing import array_source, run_clock


def test_an_array_is_reused_only_when_nothing_holds_it():
    """The pool hands an array out again once dropped, never while it or a view of it is held."""
    pool = BufferPool()
    first = pool.take((4, 8))
    address = first.ctypes.data
    held = pool.take((4, 8))
    assert held.ctypes.data != address  # `first` is still held
    del first
    again = pool.take((4, 8))
    assert again.ctypes.data == address and pool.reused == 1
    view = again[1:]
    del again
    assert pool.take((4, 8)).ctypes.data not in (address, held.ctypes.data)
    assert view.base is not None and pool.made == 3
    assert pool.take((4, 8), np.complex64).dtype == np.complex64


def test_the_pool_forgets_beyond_its_limit():
    """Beyond `limit` arrays of a shape the oldest is forgotten, not reused while held."""
    pool = BufferPool(limit=2)
    kept = [pool.take((3,)) for _ in range(4)]
    assert pool.made == 4 and len(pool._arrays[((3,), np.float32)]) == 2
    kept[0][:] = 7.0
    del kept[2:]
    fresh = pool.take((3,))
    assert all(fresh is not array for array in kept) and (kept[0] == 7.0).all()


class _view_keeper(Sink):
    """Keeps a view of every chunk's data, not the chunk."""

    type_name = "view_keeper"
    requires = (IChunkProducer,)

    def reset(self):
        self.views = []

    def compute(self, chunk):
        self.views.append(chunk.data[1:])


def _chain(graph, arrays):
    source = array_source(arrays, rate=1e6, graph=graph,
                          meta={"center_frequency": 0.0, "reference_level": 0.0})
    return calibrate_block(fft_block(source, size=64))


def _signal(chunks, size=1024):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(2 * size, dtype=np.float32).view(np.complex64)
            for _ in range(chunks)]


def _expected(arrays):
    clock = Clock()
    graph = Graph(clock)
    sink = collector(_chain(graph, arrays))
    assert run_clock(clock, graph) is None
    return [chunk.data.copy() for chunk in sink.chunks]


def test_a_consumer_that_keeps_chunks_keeps_their_memory():
    """Chunks a collector keeps never share memory, and their data stay what was emitted."""
    arrays = _signal(12)
    expected = _expected(arrays)
    clock = Clock()
    graph = Graph(clock)
    calibrate = _chain(graph, arrays)
    keeper = collector(calibrate)
    views = _view_keeper(calibrate)
    assert run_clock(clock, graph) is None
    datas = [chunk.data for chunk in keeper.chunks]
    for index, data in enumerate(datas):
        assert_array_equal(data, expected[index])
        assert_array_equal(views.views[index], expected[index][1:])
        assert not any(np.shares_memory(data, other) for other in datas[index + 1:])


def test_buffers_come_back_when_consumers_let_go():
    """With a consumer that keeps only the newest chunk, the blocks reuse their buffers and emit the same data."""
    arrays = _signal(12)
    expected = _expected(arrays)
    clock = Clock()
    graph = Graph(clock)
    calibrate = _chain(graph, arrays)
    seen = []
    keeper = collector(calibrate, keep=1)
    original = keeper.compute
    keeper.compute = lambda chunk: (seen.append(chunk.data.copy()), original(chunk))
    assert run_clock(clock, graph) is None
    for got, want in zip(seen, expected, strict=True):
        assert_array_equal(got, want)
    fft = calibrate.inputs[0]
    assert fft._buffers.reused >= 8 and calibrate._buffers.reused >= 8
    assert fft._buffers.made <= 3 and calibrate._buffers.made <= 3
