"""
Throughput of a converter's efficiency, per mains cycle, at 1 MSa/s per
channel: V_in, I_in, V_out, I_out → P_in = V_in·I_in and P_out = V_out·I_out
(power_block) → the mean of each 50 Hz cycle, the active power
(cycle_rms with statistic="mean") → efficiency = P_out / P_in
(efficiency_block), in one reactor, against a bare numpy loop doing the
same arithmetic with the same functions on the same chunks, in the same run.
The graph is optimised as ``Graph.run(optimise=True)`` and ``pyrf-blocks
run`` do (chain optimisation, :mod:`pyrf_blocks.optimise`): each
``cycle_rms`` then multiplies V and I itself (``cycles_of_power``) and
hands its rows to the efficiency block without records chunks
(``pointwise_of_cycles``); the graph written is the same.  ``--no-optimise`` measures it as built.

    python benchmarks/kpi.py [--seconds S] [--trials N] [--chunk SAMPLES] [--no-optimise]

It prints both rates in MSa/s per channel (four channels flow at once),
their ratio and the framework's overhead per chunk; the last line is the
headline.  Times are CPU time of this process (everything runs in one
thread), which other programs on a shared machine disturb less than wall
time.
"""

import argparse
import time

import numpy as np
from twisted.internet import defer, task

from pyrf_blocks import Graph, collector, cycle_rms, efficiency_block, power_block
from pyrf_blocks.memory import keep_freed_memory
from pyrf_blocks.numerics.cycles import segment_sums
from pyrf_blocks.testing import array_source

RATE = 1e6
MAINS = 50.0
PER_CYCLE = int(RATE / MAINS)


def make_channels(chunk_size, count):
    """V_in, I_in, V_out, I_out as ``count`` float32 chunks each."""
    n = np.arange(chunk_size * count)
    phase = 2 * np.pi * MAINS * n / RATE
    rng = np.random.default_rng(0)
    noise = [rng.standard_normal(len(n)).astype(np.float32) * 0.01 for _ in range(4)]
    channels = [325 * np.sin(phase), 10 * np.sin(phase - 0.2),
                48 * np.ones_like(phase), 60 * np.ones_like(phase)]
    return [[piece.astype(np.float32) for piece in np.split(c.astype(np.float32) + e, count)]
            for c, e in zip(channels, noise)]


def bare_loop(channels, repeats):
    """The chain's arithmetic without the framework: the baseline."""
    v_in, i_in, v_out, i_out = channels
    start = time.process_time()
    done = 0
    carry, carried = None, 0  # the sums of the cycle in progress (None: none yet)
    efficiency = None
    for _ in range(repeats):
        for a, b, c, d in zip(v_in, i_in, v_out, i_out):
            p_in = np.multiply(a, b)
            p_out = np.multiply(c, d)
            first = -(-done // PER_CYCLE) * PER_CYCLE - done
            bounds = np.arange(first, len(a), PER_CYCLE)
            edges = np.concatenate(([0], bounds, [len(a)]))
            sums = np.stack([segment_sums(p_in, edges), segment_sums(p_out, edges)])
            counts = np.diff(edges)
            if len(bounds):
                if carry is None:  # samples before the first boundary: no whole cycle
                    cycles, cycle_counts = sums[:, 1:-1], counts[1:-1]
                else:
                    cycles, cycle_counts = sums[:, :-1].copy(), counts[:-1].copy()
                    cycles[:, 0] += carry
                    cycle_counts[0] += carried
                if cycle_counts.size:
                    means = cycles / cycle_counts
                    efficiency = means[1] / means[0] * 100
                carry, carried = sums[:, -1], counts[-1]
            elif carry is not None:
                carry, carried = carry + sums[:, 0], carried + counts[0]
            done += len(a)
    elapsed = time.process_time() - start
    return elapsed, efficiency


def build(graph, channels, repeats):
    """The chain in ``graph``, free-running; its collector."""
    v_in, i_in, v_out, i_out = (array_source(chunks, kind="real", rate=RATE, repeat=repeats,
                                             graph=graph, meta={"units": units})
                                for chunks, units in zip(channels, "VAVA"))
    p_in = cycle_rms(power_block(v_in, i_in), MAINS, statistic="mean")
    p_out = cycle_rms(power_block(v_out, i_out), MAINS, statistic="mean")
    return collector(efficiency_block(p_out, p_in))


@defer.inlineCallbacks
def graph_run(reactor, channels, repeats, optimise=True):
    graph = Graph(reactor)
    sink = build(graph, channels, repeats)
    if optimise:
        graph.optimise()
    start = time.process_time()
    yield graph.done()
    elapsed = time.process_time() - start
    return elapsed, sink.data(), graph.fusions


@defer.inlineCallbacks
def main(reactor, seconds, trials, chunk_size, optimise):
    count = max(1, int(round(2 * RATE / chunk_size)))
    channels = make_channels(chunk_size, count)
    bare_loop(channels, 1)
    probe, _ = bare_loop(channels, 1)
    repeats = max(1, int(seconds / probe / trials))
    bare, graph = [], []
    for _ in range(trials):
        elapsed, bare_efficiency = bare_loop(channels, repeats)
        bare.append(elapsed)
        elapsed, graph_efficiency, graph_fusions = yield graph_run(reactor, channels, repeats,
                                                                   optimise)
        graph.append(elapsed)
    expected = 48 * 60 / (325 * 10 / 2 * np.cos(0.2)) * 100
    assert np.allclose(graph_efficiency[-len(bare_efficiency):], bare_efficiency, rtol=1e-6)
    samples = repeats * count * chunk_size
    bare_time, graph_time = min(bare), min(graph)
    bare_rate, graph_rate = samples / bare_time / 1e6, samples / graph_time / 1e6
    ratio = bare_time / graph_time
    overhead = (graph_time - bare_time) / (repeats * count) * 1e6
    print(f"{chunk_size}-sample chunks x {repeats * count} per channel, 4 channels: "
          f"bare loop {bare_rate:.1f} MSa/s, graph {graph_rate:.1f} MSa/s per channel, "
          f"overhead {overhead:.0f} us per chunk of 4 channels; efficiency "
          f"{np.median(graph_efficiency):.2f} % (expected {expected:.2f} %)")
    fusions = ", ".join(sorted({f.rule for f in graph_fusions})) or "none"
    print(f"chain optimisation: {fusions}")
    print(f"kpi P=V*I -> per-cycle mean -> efficiency at {chunk_size}-sample chunks: "
          f"graph {graph_rate:.1f} MSa/s per channel, bare numpy {bare_rate:.1f} MSa/s, "
          f"ratio {ratio:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="approximate seconds per method")
    parser.add_argument("--trials", type=int, default=3,
                        help="alternating trials; the fastest of each is reported")
    parser.add_argument("--chunk", type=int, default=65536, help="samples per chunk")
    parser.add_argument("--no-optimise", dest="optimise", action="store_false",
                        help="run the graph as built, without chain optimisation")
    args = parser.parse_args()
    # What Graph.run() does for a program; task.react here does not.
    keep_freed_memory()
    task.react(main, (args.seconds, args.trials, args.chunk, args.optimise))
