"""
What one hop between blocks costs: a chain of pass-through blocks in one
reactor, against the same calls made in a bare loop, in the same run.

    python benchmarks/hops.py [--chunks N] [--hops K] [--trials T]

A source plays tiny chunks (16 samples, so no array work counts) into a
collector, first directly and then through K blocks whose compute emits
each chunk again (a new chunk, as any processing block makes).  The
difference divided by K is the framework's cost per hop: emit (the chunk,
its checks, the output's counters), the edge, the input port, compute's
call.  The baseline is a bare loop calling K plain functions per chunk that
each build a tuple of the chunk's fields, the least a hop can do in Python.
The last line is the headline: µs per hop and the ratio baseline / graph
per hop.
"""

import argparse
import time

import numpy as np
from twisted.internet import defer, task

from pyrf_blocks import Graph, collector
from pyrf_blocks.block import Block
from pyrf_blocks.interfaces import ISampleProducer
from pyrf_blocks.testing import array_source


class pass_through(Block):
    """Emits every chunk again: one hop."""

    type_name = "pass_through"
    requires = (ISampleProducer,)

    def output_kind(self):
        return self.inputs[0].kind

    def compute(self, chunk):
        self.emit(chunk.data, chunk.start, chunk.end, chunk.rate, chunk.meta)


@defer.inlineCallbacks
def graph_time(reactor, arrays, repeats, hops):
    graph = Graph(reactor)
    block = array_source(arrays, rate=1e6, repeat=repeats, graph=graph)
    for _ in range(hops):
        block = pass_through(block)
    sink = collector(block, keep=1)
    start = time.perf_counter()
    yield graph.done()
    elapsed = time.perf_counter() - start
    assert sink.chunks[-1].seq == repeats * len(arrays) - 1
    return elapsed


def bare_time(arrays, repeats, hops):
    """K plain calls per chunk, each making a tuple of the chunk's fields."""
    def step(data, start, end, rate, meta):
        return (data, start, end, rate, meta)

    start = time.perf_counter()
    for _ in range(repeats):
        for position, data in enumerate(arrays):
            item = (data, position * 16_000, position * 16_000 + 16_000, 1e6, {})
            for _ in range(hops):
                item = step(*item)
    return time.perf_counter() - start


@defer.inlineCallbacks
def main(reactor, chunks, hops, trials):
    arrays = [np.zeros(16, np.complex64) for _ in range(8)]
    repeats = max(1, chunks // len(arrays))
    count = repeats * len(arrays)
    yield graph_time(reactor, arrays, 10, hops)  # warm up
    direct, chained, bare = [], [], []
    for _ in range(trials):
        direct.append((yield graph_time(reactor, arrays, repeats, 0)))
        chained.append((yield graph_time(reactor, arrays, repeats, hops)))
        bare.append(bare_time(arrays, repeats, hops))
    per_chunk = min(direct) / count * 1e6
    per_hop = (min(chained) - min(direct)) / count / hops * 1e6
    bare_hop = min(bare) / count / hops * 1e6
    print(f"source -> collector: {per_chunk:.2f} us per chunk")
    print(f"{hops} pass-through blocks: {min(chained) / count * 1e6:.2f} us per chunk")
    print(f"bare loop: {bare_hop:.3f} us per call")
    print(f"hops: {per_hop:.2f} us per hop, bare call {bare_hop:.3f} us, "
          f"ratio {bare_hop / per_hop:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=40_000)
    parser.add_argument("--hops", type=int, default=4)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    task.react(main, (args.chunks, args.hops, args.trials))
