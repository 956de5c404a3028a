"""
A state restored into a block before it is connected (a snapshot put back
into a freshly made block, before its consumers are) survives the reset
that connecting does: the block goes on exactly where the saved one was.
"""

import msgpack
import numpy as np
import pytest
from twisted.internet.task import Clock

from pyrf_blocks import Graph, average, collector, cycle_rms, moving_max, window_block
from pyrf_blocks.chunk import Chunk
from pyrf_blocks.testing import array_source, run_clock

RATE = 1000.0


def sampled_chunks():
    """1.5 s of a 50 Hz sine at 1 kHz in 15 real chunks, timed from 0."""
    samples = np.sin(2 * np.pi * 50 * np.arange(1500) / RATE) + 0.1
    return [Chunk("real", piece, int(i * 1e8), int((i + 1) * 1e8), RATE, meta={"units": "V"})
            for i, piece in enumerate(np.split(samples, 15))]


def records_chunks():
    """3 s of one row per 10 ms, in 15 records chunks."""
    times = np.arange(300, dtype=np.int64) * 10_000_000
    values = np.cos(np.arange(300) / 7.0)
    return [Chunk.records(times[i * 20:(i + 1) * 20], values[i * 20:(i + 1) * 20],
                          int(i * 2e8), int((i + 1) * 2e8)) for i in range(15)]


MAKERS = {
    "window_block": (records_chunks, "records",
                     lambda source: window_block(source, every="500ms", stats=("mean", "max"))),
    "average": (records_chunks, "records", average),
    "moving_max": (records_chunks, "records", lambda source: moving_max(source, over="1s")),
    "cycle_rms": (sampled_chunks, "real", cycle_rms),
}


def rows(sink):
    return [(c.start, c.end, c.data.tobytes()) for c in sink.chunks if len(c.data)]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_state_set_before_connection_is_applied_when_the_block_connects(name):
    """Half the stream, get_state; a new block, set_state, then its consumer: the rest as one run."""
    make_chunks, kind, make = MAKERS[name]
    chunks = make_chunks()
    whole = Graph(Clock())
    expected = collector(make(array_source(chunks, kind=kind, rate=RATE, graph=whole)))
    assert run_clock(whole.reactor, whole) is None

    first = Graph(Clock())
    block = make(array_source(chunks[:7], kind=kind, rate=RATE, graph=first))
    before = collector(block)
    for chunk in chunks[:7]:
        block.compute(chunk)  # as the first half would have arrived
    state = msgpack.unpackb(msgpack.packb(block.get_state()), strict_map_key=False)

    second = Graph(Clock())
    restored = make(array_source(chunks[7:], kind=kind, rate=RATE, graph=second))
    assert not restored.active
    restored.set_state(state)        # before the block is connected...
    after = collector(restored)      # ...which resets it, then applies the state
    assert run_clock(second.reactor, second) is None
    assert rows(before) + rows(after) == rows(expected)
