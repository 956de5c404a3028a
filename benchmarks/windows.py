"""
Mean over 1-minute device-time windows of a 1 kHz record stream, through
``window_block`` in a graph, against a bare ``np.add.reduceat`` over the
same rows in the same run.

    python benchmarks/windows.py [--rows N] [--chunk ROWS ...]

The rows are float64 records, one per millisecond of device time, made
(and checked by ``Chunk.records``) before the clock starts.  For each
chunk size it prints the graph's rate (rows per second of CPU time of this
process, which runs everything in one thread: one core, and a figure that
other programs on a shared machine disturb less than wall time) and its
ratio to the baseline: the minute
boundaries located with ``np.searchsorted`` and the means computed with
one ``np.add.reduceat`` over all rows at once, the least numpy can do.
A second baseline takes the same chunks one by one in a bare numpy loop
(``reduceat`` per chunk, partial sums carried in a dict), as a block
would see them without the framework.
The framework's result is checked against the baseline's
(``assert_allclose``: the block sums exactly, by fixed sub-blocks, so the
last bits may differ from ``reduceat``'s).  The last line is the headline:
the largest chunk size's rate and ratio.
"""

import argparse
import time

import numpy as np
from numpy.testing import assert_allclose
from twisted.internet.task import Clock

from pyrf_blocks import Graph, collector, window_block
from pyrf_blocks.chunk import Chunk
from pyrf_blocks.testing import array_source, run_clock

MINUTE = 60 * 10 ** 9
PERIOD = 10 ** 6  # 1 kHz: one row per millisecond


def make_chunks(times, values, chunk_rows):
    chunks = []
    for first in range(0, len(times), chunk_rows):
        stop = min(first + chunk_rows, len(times))
        end = int(times[stop]) if stop < len(times) else int(times[-1]) + PERIOD
        chunks.append(Chunk.records(times[first:stop], values[first:stop],
                                    int(times[first]), end))
    return chunks


def bare(times, values):
    """Means per minute with numpy alone; (seconds, means)."""
    start = time.process_time()
    bounds = np.arange(times[0] - times[0] % MINUTE, times[-1] + 1, MINUTE)
    edges = np.searchsorted(times, bounds)
    sums = np.add.reduceat(values, edges)
    counts = np.diff(np.append(edges, len(values)))
    means = sums / counts
    return time.process_time() - start, means


def bare_loop(chunks):
    """
    Means per minute with numpy, chunk by chunk as they would arrive
    (``np.add.reduceat`` per chunk, partial sums carried in a dict), no
    framework; (seconds, means).
    """
    start = time.process_time()
    sums, counts = {}, {}
    for chunk in chunks:
        times, values = chunk.times, chunk.data
        first = int(times[0]) - int(times[0]) % MINUTE
        bounds = np.arange(first, int(times[-1]) + 1, MINUTE)
        edges = np.searchsorted(times, bounds)
        parts = np.add.reduceat(values, edges)
        sizes = np.diff(np.append(edges, len(values)))
        for minute, part, size in zip(bounds.tolist(), parts.tolist(), sizes.tolist()):
            if size:
                sums[minute] = sums.get(minute, 0.0) + part
                counts[minute] = counts.get(minute, 0) + size
    means = np.array([sums[m] / counts[m] for m in sorted(sums)])
    return time.process_time() - start, means


def through_graph(chunks):
    """The same means from window_block in a graph; (seconds, means)."""
    graph = Graph(Clock())
    source = array_source(chunks, kind="records", graph=graph)
    sink = collector(window_block(source, every="1m", stats=("mean",)))
    start = time.process_time()
    assert run_clock(graph.reactor, graph) is None
    elapsed = time.process_time() - start
    means = np.concatenate([c.data["mean"] for c in sink.chunks])
    return elapsed, means


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, nargs="+", default=[1000, 65536, 1 << 20])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    times = np.arange(args.rows, dtype=np.int64) * PERIOD + 1_780_000_000 * 10 ** 9
    values = rng.standard_normal(args.rows)
    base_time, expected = min((bare(times, values) for _ in range(args.repeat)),
                              key=lambda r: r[0])
    base_rate = args.rows / base_time
    print(f"{args.rows} rows at 1 kHz, {len(expected)} one-minute windows")
    print(f"bare np.add.reduceat:   {base_rate / 1e6:9.1f} M rows/s")
    headline = None
    for chunk_rows in sorted(args.chunk):
        chunks = make_chunks(times, values, chunk_rows)
        elapsed, means = min((through_graph(chunks) for _ in range(args.repeat)),
                             key=lambda r: r[0])
        assert_allclose(means, expected, rtol=1e-9)
        loop_time, loop_means = min((bare_loop(chunks) for _ in range(args.repeat)),
                                    key=lambda r: r[0])
        assert_allclose(loop_means, expected, rtol=1e-9)
        rate = args.rows / elapsed
        ratio = rate / base_rate
        print(f"window_block, {chunk_rows:8d}-row chunks: {rate / 1e6:9.1f} M rows/s "
              f"({ratio:.2f}x bare, {elapsed / len(chunks) * 1e6:.0f} us per chunk; "
              f"{loop_time / elapsed:.2f}x a bare per-chunk numpy loop, "
              f"{args.rows / loop_time / 1e6:.0f} M rows/s)")
        headline = (chunk_rows, rate, ratio)
    chunk_rows, rate, ratio = headline
    print(f"headline: window_block mean over 1-minute windows, {chunk_rows}-row chunks: "
          f"{rate / 1e6:.1f} M rows/s, {ratio:.2f}x bare np.add.reduceat")


if __name__ == "__main__":
    main()
