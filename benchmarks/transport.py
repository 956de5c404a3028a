"""
Cross-process edges: throughput, latency and the split seed chain.

    python benchmarks/transport.py [--quick] [--trials N]

1. Throughput of one cross-process edge (a worker subprocess serving a
   source of ready-made chunks, read here by a ``remote_block``) for 64 KiB,
   1 MiB and 8 MiB chunks, with the samples through shared memory (the
   default on one host) and in the HTTP bodies, against a raw TCP socket
   between two processes measured in the same run (best of ``--trials``
   runs of each).
2. Latency from emit (in the worker) to delivery (here) for 1 KiB chunks
   at 10 k chunks/s: p50 and p99, against the same source and sink in one
   reactor.
3. The seed's two instrument -> FFT -> calibrate chains split over two
   child processes against one reactor: MSa/s of IQ through both chains
   and CPU-seconds per MSa of every process of the layout (the second is
   what to compare on a loaded machine).  The seed's layout: instruments
   (simulated, so their noise is computed) in the parent, each FFT ->
   calibrate chain in its child; the edges between them over shared memory
   ("split", the default on one host) and over HTTP bodies ("split-http");
   and, not the seed's layout, the instruments in the children too
   ("children"); and each chain whole in a one-reactor process of its
   own, the two at once, nothing crossing ("pair": what two cores give
   this work with no transport, the ceiling of any split).  With the seed's light chains (FFT-1024) and with heavy
   ones (the same blocks, FFT frames overlapping by 7/8).

The last line is the headline: the heavy chains split over two processes
(the seed's layout, over shared memory) in MSa/s and their ratio to one
reactor, with the ratio of "pair" beside it (on a busy host the two
cores' ceiling falls, and every split with it); the line before it, the
edge's throughput for 1 MiB chunks in GB/s and its ratio to raw TCP.
"""

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zope.interface import implementer  # noqa: E402

from pyrf_blocks.block import Block, PolledSource, Sink  # noqa: E402
from pyrf_blocks.interfaces import IChunkProducer, ISpectrumProducer  # noqa: E402
from pyrf_blocks.registry import register  # noqa: E402
from pyrf_blocks.timebase import sample_time  # noqa: E402


@register
class bench_source(PolledSource):
    """
    Emits ``count`` chunks of one ready-made array of ``nbytes`` bytes
    (complex64), optionally paced at ``rate`` chunks per second; each
    chunk's meta carries the wall-clock time it was emitted.
    """

    type_name = "bench_source"
    kind = "iq"

    def __init__(self, nbytes=1 << 20, count=100, rate=None, **kwargs):
        self.array = np.ones(max(nbytes // 8, 1), np.complex64)
        self.array.flags.writeable = False
        self.count = count
        self.rate = rate
        super().__init__(paced=rate is not None, **kwargs)

    def reset(self):
        self.sent = 0

    def next_chunk(self):
        if self.sent >= self.count:
            return None
        samples = len(self.array)
        rate = (self.rate or 1000.0) * samples
        start = sample_time(0, self.sent * samples, rate)
        self.sent += 1
        end = sample_time(0, self.sent * samples, rate)
        return self.array, start, end, rate, {"emitted": time.time()}


class timing_sink(Sink):
    """
    Counts bytes and records each chunk's delay since it was emitted.
    """

    type_name = "timing_sink"
    requires = (IChunkProducer,)

    def reset(self):
        self.nbytes = 0
        self.delays = []
        self.first = self.last = None

    def compute(self, chunk):
        now = time.time()
        self.first = self.first or now
        self.last = now
        self.nbytes += chunk.data.nbytes
        self.delays.append(now - chunk.meta["emitted"])


@register
class ready_iq(PolledSource):
    """
    The seed's simulated instrument with nothing computed: ``count``
    chunks of 16 Ki IQ samples with its meta and times, each copied from a
    ready-made array into a buffer the block takes (:meth:`Block.buffer`:
    lent by a shared-memory stream reading it, as the instrument's are).
    """

    type_name = "ready_iq"
    kind = "iq"
    RATE = 7812500.0

    def __init__(self, count=1000, samples=16384, **kwargs):
        self.count = count
        self.ready = np.full(samples, 0.01 + 0.02j, np.complex64)
        self.meta = {"center_frequency": 2.4e9, "sample_rate": self.RATE,
                     "reference_level": 0.0, "instrument": "ready_iq"}
        super().__init__(paced=False, **kwargs)

    def reset(self):
        self.sent = 0

    def next_chunk(self):
        if self.sent >= self.count:
            return None
        samples = len(self.ready)
        out = self.buffer((samples,), np.complex64)
        out[...] = self.ready
        start = sample_time(0, self.sent * samples, self.RATE)
        self.sent += 1
        return out, start, sample_time(0, self.sent * samples, self.RATE), self.RATE, self.meta


@register
@implementer(ISpectrumProducer)
class ready_spectra(Block):
    """
    An FFT -> calibrate chain with nothing computed: for each IQ chunk,
    its frames' rows (``hop`` samples apart) of 1 024 float32 levels,
    filled with one value in a buffer the block takes (lent by a
    shared-memory stream reading it, as the calibration's are), after
    spinning for ``busy`` seconds of CPU per row (so that a child is as
    busy as the seed's, whose kernels take about 8 µs per row on the
    2-core AMD EPYC, and its chunks queue up as they do there).
    """

    type_name = "ready_spectra"
    kind = "spectrum"
    requires = (IChunkProducer,)

    def __init__(self, source=None, hop=1024, busy=0.0, **kwargs):
        self.hop = hop
        self.busy = busy
        super().__init__(source, **kwargs)

    def compute(self, chunk):
        rows = len(chunk.data) // self.hop
        until = time.thread_time() + self.busy * rows
        while time.thread_time() < until:
            pass
        levels = self.buffer((rows, 1024), np.float32)
        levels.fill(-90.0)
        self.emit(levels, chunk.start, chunk.end, chunk.rate / self.hop, chunk.meta)


def environment():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))


# 1. Raw TCP between two processes.

_SENDER = """
import socket, sys
size, total = int(sys.argv[2]), int(sys.argv[3])
block = bytearray(size)
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as sock:
    sent = 0
    while sent < total:
        sock.sendall(block)
        sent += size
"""


def raw_tcp(nbytes, total):
    """
    GB/s of one TCP connection from a child process into this one.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sender = subprocess.Popen([sys.executable, "-c", _SENDER, str(port), str(nbytes), str(total)])
    connection, _ = listener.accept()
    buffer = bytearray(4 << 20)
    view = memoryview(buffer)
    received = 0
    started = time.perf_counter()
    while received < total:
        n = connection.recv_into(view)
        if not n:
            break
        received += n
    elapsed = time.perf_counter() - started
    connection.close()
    listener.close()
    sender.wait()
    return received / elapsed / 1e9


# 2 and 3 run in a reactor: a worker subprocess, read by remote_block.

def start_worker():
    worker = subprocess.Popen(
        [sys.executable, "-m", "pyrf_blocks.cli", "worker", "--listen",
         "tcp:0:interface=127.0.0.1", "--import", "benchmarks.transport"],
        cwd=ROOT, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = worker.stdout.readline().decode().strip()
    return worker, line.removeprefix("listening on ")


async def edge_run(reactor, url, name, shared_memory=True, **params):
    """
    Create a bench_source on the worker and read it here to its end (its
    samples through shared memory, or in the HTTP bodies).
    """
    import treq

    from pyrf_blocks.graph import Graph
    from pyrf_blocks.net import remote_block

    response = await treq.post(url + "/blocks", json={"type": "bench_source", "name": name,
                                                      "params": params})
    assert response.code == 201, await response.text()
    graph = Graph(reactor)
    sink = timing_sink(remote_block(f"{url}/blocks/{name}", "iq", graph=graph,
                                    shared_memory=shared_memory))
    await graph.done()
    return sink


async def local_run(reactor, **params):
    from pyrf_blocks.graph import Graph

    graph = Graph(reactor)
    sink = timing_sink(bench_source(graph=graph, **params))
    await graph.done()
    return sink


def percentiles_ms(delays, warmup=200):
    delays = np.array(delays[warmup:]) * 1e3
    return np.percentile(delays, 50), np.percentile(delays, 99)


async def reactor_part(reactor, args, results):
    worker, url = start_worker()
    try:
        scale = 0.25 if args.quick else 1.0
        for trial in range(args.trials):
            for label, nbytes, count in (("64 KiB", 64 << 10, 4000), ("1 MiB", 1 << 20, 1000),
                                         ("8 MiB", 8 << 20, 160)):
                count = int(count * scale)
                for key, shared in (("edge", True), ("edge_http", False)):
                    sink = await edge_run(reactor, url, f"tp{nbytes}-{trial}-{key}",
                                          shared_memory=shared, nbytes=nbytes, count=count)
                    rate = sink.nbytes / (sink.last - sink.first) / 1e9
                    results[key][label] = max(rate, results[key].get(label, 0.0))
        count = int(10000 * scale * 0.5)
        sink = await edge_run(reactor, url, "latency", nbytes=1024, count=count, rate=10000)
        results["latency"] = percentiles_ms(sink.delays)
        sink = await local_run(reactor, nbytes=1024, count=count, rate=10000)
        results["latency_local"] = percentiles_ms(sink.delays)
    finally:
        worker.terminate()
        worker.wait()


# 3. The seed chain, run by a fresh interpreter per mode.
#
# The seed's layout: both instruments (simulated: their noise is made
# here) and the display's inputs in the parent; each FFT -> calibrate chain
# in a child process of its own.  "single" runs every block in one reactor.
# The light chains are the seed's (FFT-1024, no overlap); the heavy ones
# are the same blocks with FFT frames overlapping by 7/8 (eight times the
# FFT work and eight times the spectra per chunk), so that the children's
# work outweighs the instruments'.

_CHAIN = """
import os, resource, sys, time
from pyrf_blocks import (Graph, WSA4000, calibrate_block, collector, fft_block, process,
                         set_default_graph)
split, count, overlap = sys.argv[1] not in ("single", "solo"), int(sys.argv[2]), int(sys.argv[3])
# "seed": the seed's chains; "bare:S": the crossing alone (ready_iq ->
# ready_spectra, the same chunks and spectra, S s of CPU spent per row).
bare = sys.argv[4].startswith("bare:")
# "solo": only chain argv[5], every block in this reactor (two of them run
# at once make the "pair" layout).
only = int(sys.argv[5]) if sys.argv[1] == "solo" else None
marks = ([], [])
class timed(collector):
    def __init__(self, chain, *args, **kwargs):
        self.marks = marks[chain]
        super().__init__(*args, **kwargs)
    def compute(self, chunk):
        self.marks.append((time.perf_counter(), len(chunk.data)))
graph = Graph()
set_default_graph(graph)
places = [process(imports=["benchmarks.transport"] if bare else ()) if split else None
          for _ in range(2)]
chains = []
for n, (place, tone) in enumerate(zip(places, [(1e6, -20.0), (-2.5e6, -35.0)])):
    if only is not None and n != only:
        continue
    if bare:
        from benchmarks.transport import ready_iq, ready_spectra
        chains.append(ready_spectra(ready_iq(count=count), hop=1024 - overlap,
                                    busy=float(sys.argv[4][len("bare:"):]),
                                    proc=place))
        continue
    # "children": the instruments (their simulated noise) run in the
    # children too -- not the seed's layout, for comparison.
    wsa = WSA4000("sim", seed=n + 1, tones=[tone], count=count, paced=False,
                  proc=place if sys.argv[1] == "children" else None)
    chains.append(calibrate_block(fft_block(wsa, overlap=overlap, proc=place), proc=place))
sinks = [timed(n if only is None else only, c, keep=1) for n, c in enumerate(chains)]
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    each = [usage.ru_utime + usage.ru_stime]
    for place in places:
        if place is not None and place.pid:
            with open(f"/proc/{place.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            each.append((int(fields[11]) + int(fields[12])) / tick)
    return each
samples = []
from twisted.internet import task
sampler = task.LoopingCall(lambda: samples.append((time.perf_counter(), cpu())))
graph.reactor.callWhenRunning(sampler.start, 0.05)
graph.run()
marks = [chain for chain in marks if chain]
# Steady state: from when both chains have delivered their first 320
# chunks (start-up, FFT planning, the first chain's head start, and the
# 256 chunks a stream may let its source run ahead while its reader starts,
# left out) to when the first one ends.
warm = min(320, count // 2)
begin = max(chain[warm][0] for chain in marks)
end = min(chain[-1][0] for chain in marks)
if end <= begin:  # (one chain was done before the other got going)
    begin = min(chain[warm][0] for chain in marks)
    end = max(chain[-1][0] for chain in marks)
frames = sum(n for chain in marks for when, n in chain if begin < when <= end)
msa = frames * (1024 - overlap) / 1e6
def cpu_at(when):
    return min(samples, key=lambda sample: abs(sample[0] - when))[1]
spent = [b - a for a, b in zip(cpu_at(begin), cpu_at(end))]
print(msa / (end - begin), sum(spent) / msa, end - begin, *(x / msa for x in spent))
if only is not None:
    print("window", begin + time.time() - time.perf_counter(),
          end + time.time() - time.perf_counter(), msa, *spent)
"""


def chain_rate(mode, count, overlap=0, chain="seed"):
    """
    ``(MSa/s, CPU-seconds per MSa, seconds measured, CPU-seconds per MSa
    of the parent, of each child...)`` of IQ through both seed chains
    (``chain="bare:S"``: both crossings alone, :class:`ready_iq` ->
    :class:`ready_spectra` spending ``S`` seconds of CPU per row) while
    both deliver spectra; CPU of every process of the layout.
    """
    env = environment()
    if mode == "pair":
        return _pair_rate(env, count, overlap, chain)
    if mode == "split-http":
        env["PYRF_BLOCKS_SHM"] = "0"
    out = subprocess.run([sys.executable, "-c", _CHAIN, mode, str(count), str(overlap), chain],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the {mode} seed chains failed:\n{out.stderr}")
    return tuple(map(float, out.stdout.strip().splitlines()[-1].split()))


def _pair_rate(env, count, overlap, chain):
    """
    The "pair" layout: each chain whole (instrument, FFT, calibrate and
    sink) in a one-reactor process of its own, the two at once and
    nothing crossing between them -- what this machine's two cores give
    this work with no transport at all, the ceiling of any split.  Rated
    over the time both ran, from the later start to the earlier end.
    """
    runs = [subprocess.Popen([sys.executable, "-c", _CHAIN, "solo", str(count), str(overlap),
                              chain, str(n)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for n in range(2)]
    windows = []
    for run in runs:
        out, err = run.communicate()
        if run.returncode:
            raise SystemExit(f"the solo seed chain failed:\n{err}")
        windows.append(tuple(map(float, out.strip().splitlines()[-1].split()[1:])))
    begin, end = max(w[0] for w in windows), min(w[1] for w in windows)
    # Each process's rate applies to the overlap of the two windows.
    rates = [w[2] / (w[1] - w[0]) for w in windows]
    costs = [w[3] / w[2] for w in windows]
    msa = sum(rates)
    return (msa, sum(r * c for r, c in zip(rates, costs)) / msa, end - begin, *costs)


#: MSa in one chunk of the simulated instruments (16 Ki samples).
CHUNK_MSA = 16384 / 1e6

#: How the seed chains are run: every block in one reactor; the seed's
#: layout over shared memory, and over HTTP bodies (``PYRF_BLOCKS_SHM=0``);
#: the instruments placed in the children too (not the seed's layout);
#: and each chain whole in a process of its own, nothing crossing ("pair":
#: the ceiling of two cores for this work).
MODES = ("single", "split", "split-http", "children", "pair")


def chains(count, trials):
    """
    ``{(chain, mode): [(MSa/s, CPU-s per MSa, seconds)...]}``, the modes
    of each chain interleaved, ``trials`` times.
    """
    results = {}
    for _ in range(trials):
        for chain, overlap, chunks in (("light", 0, count), ("heavy", 896, count * 2 // 3)):
            for mode in MODES:
                results.setdefault((chain, mode), []).append(
                    chain_rate(mode, chunks, overlap))
    return results


def run_reactor_part(args, results):
    from twisted.internet import defer, reactor

    from pyrf_blocks.memory import keep_freed_memory

    # This script runs the reactor itself, not through Graph.run: it is the
    # entry point that tunes malloc for the streams it reads.
    keep_freed_memory()
    outcome = []

    def go():
        d = defer.ensureDeferred(reactor_part(reactor, args, results))
        d.addBoth(outcome.append).addBoth(lambda _: reactor.stop())
    reactor.callWhenRunning(go)
    reactor.run()
    if outcome and hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()


def _median(runs):
    """
    The run of median rate among ``runs``.
    """
    return sorted(runs)[len(runs) // 2]


def main():
    parser = argparse.ArgumentParser(description="cross-process edge benchmarks")
    parser.add_argument("--quick", action="store_true", help="a quarter of the work")
    parser.add_argument("--trials", type=int, default=3,
                        help="throughput runs per size and method; the best of each is "
                             "reported (default 3: the machines are shared and noisy)")
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0
    sizes = (("64 KiB", 64 << 10), ("1 MiB", 1 << 20), ("8 MiB", 8 << 20))
    tcp = {label: max(raw_tcp(nbytes, int((2 << 30) * scale)) for _ in range(args.trials))
           for label, nbytes in sizes}
    results = {"edge": {}, "edge_http": {}}
    run_reactor_part(args, results)
    seed = chains(1200 if args.quick else 3200, max(1, min(args.trials, 3)))

    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("throughput of one cross-process edge (remote_block reading a worker on loopback; "
          "samples through shared memory, or in the HTTP bodies):")
    for label, _ in sizes:
        edge, http = results["edge"][label], results["edge_http"][label]
        print(f"  {label:>6} chunks: edge {edge:6.3f} GB/s (HTTP bodies {http:6.3f}), "
              f"raw TCP {tcp[label]:6.3f} GB/s, ratio {edge / tcp[label]:.3f}")
    p50, p99 = results["latency"]
    l50, l99 = results["latency_local"]
    print(f"latency emit -> delivery, 1 KiB chunks at 10 k/s: p50 {p50:.3f} ms, "
          f"p99 {p99:.3f} ms across processes; one reactor p50 {l50:.3f} ms, p99 {l99:.3f} ms")
    print("the seed's layout (instruments here, each FFT -> calibrate chain in a child), "
          "median of the trials:")
    for chain in ("light", "heavy"):
        single = _median(seed[(chain, "single")])
        for mode in MODES:
            rate, cost, seconds, *each = _median(seed[(chain, mode)])
            where = "" if len(each) < 2 else " = " + " + ".join(f"{x:.3f}" for x in each)
            print(f"  {chain} chains, {mode:>10}: {rate:6.1f} MSa/s, {cost:6.3f} CPU-s/MSa"
                  f"{where} ({seconds:.1f} s measured), {rate / single[0]:.2f} x one reactor")
            if len(each) >= 2 and mode != "pair":
                # µs of CPU per 16 Ki-sample chunk: the parent's per chunk
                # of either chain, each child's per chunk of its own.
                parent, *children = (x * CHUNK_MSA * 1e6 for x in each)
                print(f"  {'':>{len(chain) + 20}}CPU per chunk: parent {parent:.0f} µs, "
                      f"children {', '.join(f'{2 * x:.0f}' for x in children)} µs")
    edge, raw = results["edge"]["1 MiB"], tcp["1 MiB"]
    print(f"cross-process edge (shared memory), 1 MiB chunks: {edge:.3f} GB/s "
          f"({edge / raw:.3f} x raw TCP {raw:.3f} GB/s)")
    single, split = _median(seed[("heavy", "single")]), _median(seed[("heavy", "split")])
    # What two processes sharing nothing reached in the same run: the most
    # any split could (a busy host lowers it, and the split with it).
    pair = _median(seed[("heavy", "pair")])
    print(f"seed's layout split over 2 processes (shared memory), heavy chains: "
          f"{split[0]:.1f} MSa/s, {split[0] / single[0]:.2f} x one reactor ({single[0]:.1f}); "
          f"CPU {split[1]:.3f} vs {single[1]:.3f} CPU-s/MSa; the two cores' ceiling (pair) "
          f"{pair[0] / single[0]:.2f} x (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
