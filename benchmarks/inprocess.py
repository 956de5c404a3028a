"""
Throughput of IQ -> fft(1024, hann) -> calibrate -> max hold in one reactor,
against the same numpy/scipy functions called in a bare loop, in the same run.

    python benchmarks/inprocess.py [--seconds S] [--run]

For 64 Ki-sample and 4 Ki-sample chunks it prints both rates (MSa/s), their
ratio and the framework's overhead per chunk (µs); the last line is the
headline: the 64 Ki-sample ratio and graph rate.  The ratio is that of
the fastest bare loop to the fastest graph; the median of each trial's own
ratio (its bare loop and graph ran back to back) and their spread follow
it, less sensitive to the machine's speed changing between trials.  The graph is optimised
only with the fusions that keep the bare loop's kernels in its order
(``SAME_KERNELS``: the FFT calibrates its spectra in place, see
:class:`~pyrf_blocks.optimise.CalibrationOfSpectra`); the unfused graph
is measured in the same trials and printed too.  By default the graphs run
in one ``task.react`` reactor in the main thread; with --run each trial is a
``Graph.run()`` of the global reactor, which runs in a thread of its own
(:mod:`pyrf_blocks.reactor_thread`), again and again in one process.
"""

import argparse
import statistics
import time
from functools import partial

import numpy as np
from twisted.internet import defer, task

from pyrf_blocks import Graph, calibrate_block, collector, fft_block, max_hold
from pyrf_blocks.optimise import CalibrationOfSpectra, optimise
from pyrf_blocks.numerics.holds import running_extreme
from pyrf_blocks.numerics.spectral import frame_spectra, power_to_dbm, window, window_gains
from pyrf_blocks.testing import array_source

FFT_SIZE = 1024
RATE = 125e6
#: The fusions the graph gets: those that call the bare loop's kernels
#: (frame_spectra, power_to_dbm, running_extreme) in its order.  A hold
#: fused with its calibration (hold_of_calibration) would take one
#: logarithm per chunk instead of one per frame: other arithmetic.
SAME_KERNELS = (CalibrationOfSpectra(),)


def make_chunks(chunk_size, distinct=8):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(2 * chunk_size, dtype=np.float32) * 0.1).view(np.complex64)
            for _ in range(distinct)]


def bare_loop(chunks, repeats):
    """The chain's arithmetic with no framework: the baseline."""
    shifted = window("hann", FFT_SIZE, shift=True)
    window_sum = window_gains("hann", FFT_SIZE)[0] * FFT_SIZE
    hold = None
    start = time.perf_counter()
    for _ in range(repeats):
        for samples in chunks:
            power = frame_spectra(samples.reshape(-1, FFT_SIZE), shifted, True)
            dbm = power_to_dbm(power, window_sum, 0.0)
            hold = running_extreme(dbm, hold)
            output = hold[np.newaxis].copy()  # what max_hold emits  # noqa: F841
    return time.perf_counter() - start


def build(graph, chunks, repeats, fuse=True):
    """The chain in ``graph``, free-running; ``(graph, its collector)``."""
    source = array_source(chunks, rate=RATE, repeat=repeats, graph=graph,
                          meta={"center_frequency": 2.4e9, "reference_level": 0.0})
    sink = collector(max_hold(calibrate_block(fft_block(source, size=FFT_SIZE))), keep=1)
    if fuse:
        assert [fusion.rule for fusion in optimise(graph, SAME_KERNELS)] == [
            "calibration_of_spectra"]
    return graph, sink


@defer.inlineCallbacks
def graph_run(reactor, chunks, repeats, fuse=True):
    """The same chain as blocks in one reactor, free-running."""
    graph, sink = build(Graph(reactor), chunks, repeats, fuse)
    start = time.perf_counter()
    yield graph.done()
    elapsed = time.perf_counter() - start
    assert sink.chunks[-1].seq == repeats * len(chunks) - 1
    return elapsed


def graph_run_blocking(chunks, repeats, fuse=True):
    """The same chain through Graph.run() on the global reactor, in its own thread."""
    graph, sink = build(Graph(), chunks, repeats, fuse)
    start = time.perf_counter()
    graph.run()
    elapsed = time.perf_counter() - start
    assert sink.chunks[-1].seq == repeats * len(chunks) - 1
    return elapsed


@defer.inlineCallbacks
def measure(run_graph, chunk_size, seconds, trials):
    chunks = make_chunks(chunk_size)
    bare_loop(chunks, 1)  # warm caches (windows, FFT plans)
    probe = bare_loop(chunks, 2)
    repeats = max(1, int(seconds / (probe / 2) / trials))
    bare, graph, unfused = [], [], []
    for _ in range(trials):
        bare.append(bare_loop(chunks, repeats))
        graph.append((yield run_graph(chunks, repeats)))
        unfused.append((yield run_graph(chunks, repeats, False)))
    count = repeats * len(chunks)
    samples = count * chunk_size
    # The fastest trial is the least disturbed by other work on a shared machine.
    bare_time, graph_time, unfused_time = min(bare), min(graph), min(unfused)
    # Each trial's bare loop and graph ran one after the other: the ratio
    # of each such pair is less disturbed by the machine's speed changing
    # from trial to trial (here by a third within a minute) than the
    # ratio of two minima taken from different trials.
    paired = sorted(b / g for b, g in zip(bare, graph))
    result = {
        "chunk": chunk_size,
        "bare": samples / bare_time / 1e6,
        "graph": samples / graph_time / 1e6,
        "ratio": bare_time / graph_time,
        "paired": statistics.median(paired),
        "paired_spread": (paired[0], paired[-1]),
        "unfused_ratio": bare_time / unfused_time,
        "overhead_us": (graph_time - bare_time) / count * 1e6,
        "chunks": count,
    }
    print(f"{chunk_size // 1024:3d} Ki-sample chunks x {count}: bare loop "
          f"{result['bare']:7.1f} MSa/s, graph {result['graph']:7.1f} MSa/s, "
          f"ratio {result['ratio']:.3f}, overhead {result['overhead_us']:.1f} us/chunk; "
          f"unfused graph {samples / unfused_time / 1e6:7.1f} MSa/s, ratio "
          f"{result['unfused_ratio']:.3f}, overhead "
          f"{(unfused_time - bare_time) / count * 1e6:.1f} us/chunk; median of the "
          f"{len(paired)} trials' ratios {result['paired']:.3f} "
          f"[{paired[0]:.3f}-{paired[-1]:.3f}]", flush=True)
    return result


@defer.inlineCallbacks
def main(reactor, seconds, trials):
    """Graphs in a ``task.react`` reactor (``reactor``), or through Graph.run() (None)."""
    run_graph = graph_run_blocking if reactor is None else partial(graph_run, reactor)
    small = yield measure(run_graph, 4 * 1024, seconds, trials)
    large = yield measure(run_graph, 64 * 1024, seconds, trials)
    print(f"per-chunk overhead: {small['overhead_us']:.1f} us at 4 Ki samples, "
          f"{large['overhead_us']:.1f} us at 64 Ki samples (streamz anchor: 3.2 us/element)")
    low, high = large["paired_spread"]
    print(f"inprocess 64 Ki-sample chunks: graph {large['graph']:.1f} MSa/s, "
          f"bare loop {large['bare']:.1f} MSa/s, ratio {large['ratio']:.3f} (median of the "
          f"trials' own ratios {large['paired']:.3f}, {low:.3f}-{high:.3f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="approximate seconds per configuration and method")
    parser.add_argument("--trials", type=int, default=5,
                        help="alternating trials; the fastest of each is reported")
    parser.add_argument("--run", action="store_true",
                        help="each trial a Graph.run() of the global reactor (in its thread)")
    args = parser.parse_args()
    if args.run:
        main(None, args.seconds, args.trials)  # synchronous: Graph.run() waits
    else:
        task.react(main, (args.seconds, args.trials))
