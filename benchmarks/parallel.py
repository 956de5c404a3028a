"""
Ordered parallel compute: the spectrum chain with its FFT and calibration
on a 2-thread pool against the same chain serially, in the same run.

    python benchmarks/parallel.py [--seconds S] [--trials N] [--workers W] [--batch B]
                                  [--no-caller-runs] [--processes] [--bound]

Chain: IQ (64 Ki-sample chunks) -> Hann -> FFT-1024 -> |X|² -> dB -> max
hold, the graph optimised (the hold calibrates its held row).  The pool
takes the FFT's calls in groups of ``--batch`` (``ThreadPool(batch=)``):
the chunks and their size are the serial run's, only the hand-off to the
threads is paid once per group; the serial run has no hand-off to pay.  The
reactor's thread is one of the ``--workers`` (``ThreadPool(caller_runs=True)``:
it runs queued tasks while the FFT waits on its results, and the pool starts
one thread fewer); ``--no-caller-runs`` starts ``--workers`` threads beside
it.  Every
measurement is a fresh process; the configurations alternate, ``--trials``
times each, and the median is reported as MSa/s and MSa/s per CPU-second
(user + sys from ``getrusage``), and so is each trial's own ratio (its
runs were back to back: on a host whose speed drifts, the medians may pair
a fast serial run with a slow parallel one).  The output of every run is
hashed: the parallel runs must give the serial chunks exactly.  The last line is the
headline: the parallel MSa/s and its ratio to the serial one (with
``--bound``, also the bound's ratio and the threads' share of it).

Where a loaded machine makes the ratio meaningless, figures still say
whether the parallel path can scale: the CPU per chunk of the reactor's
thread (the graph, and with caller-runs the tasks it ran) and of the pool's
threads, their sum against the serial run's (the most the cores could give at
that cost, were the overlap perfect), and a GIL-free check: the FFT task of a chunk run on 1 thread, on 2
threads at once and in 2 processes at once, as tasks per second (2 threads
that serialised on the GIL would do no more than 1; 2 processes share
nothing) and as CPU per task.  Each thread's voluntary context switches
per chunk ("sleeps") count how often it waited: for the GIL, for work or
for results.

``--bound`` adds, interleaved with the others, what the machine itself
allows: ``--workers`` fresh processes each running the whole chain
serially on its share of the chunks, started together (their samples
over the span from the first start to the last end).  The threads can
come no nearer 2x than that.
"""

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from together import run_together  # (beside this script)

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 64 * 1024
FFT_SIZE = 1024
RATE = 125e6


def measure(mode, workers, chunks, batch=1, together=False, caller_runs=True):
    """
    One measurement, in this (fresh) process: a JSON line on stdout.  With
    ``together``, once warm it prints ``ready`` and waits for a line on
    stdin before it starts (several processes then run at once).
    """
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from pyrf_blocks import Graph, calibrate_block, fft_block, max_hold
    from pyrf_blocks.block import Sink
    from pyrf_blocks.interfaces import IChunkProducer
    from pyrf_blocks.memory import keep_freed_memory
    from pyrf_blocks.parallel import ProcessPool, ThreadPool
    from pyrf_blocks.testing import array_source

    class hashing_sink(Sink):
        type_name = "hashing_sink"
        requires = (IChunkProducer,)

        def reset(self):
            self.digest = hashlib.sha256()
            self.count = 0

        def compute(self, chunk):
            self.digest.update(chunk.data.tobytes())
            self.digest.update(repr((chunk.start, chunk.end, chunk.seq)).encode())
            self.count += 1

    keep_freed_memory()
    rng = np.random.default_rng(0)
    arrays = [(rng.standard_normal(2 * CHUNK, dtype=np.float32) * 0.1).view(np.complex64)
              for _ in range(8)]
    pool = {"serial": lambda: None, "threads": lambda: ThreadPool(
                workers, batch=batch, caller_runs=caller_runs),
            "processes": lambda: ProcessPool(workers, batch=batch),
            "processes_shm": lambda: ProcessPool(workers, batch=batch)}[mode]()
    if mode == "processes_shm":
        # The source's arrays made in the pool's shared memory (as a source
        # writing into its Block.buffer() does on a process pool): no call
        # copies its input.
        arrays = [_shared_copy(pool, array) for array in arrays]

    def run(repeat):
        graph = Graph(parallel=pool)
        source = array_source(arrays, rate=RATE, repeat=repeat, graph=graph,
                              meta={"center_frequency": 2.4e9, "reference_level": 0.0})
        sink = hashing_sink(max_hold(calibrate_block(fft_block(source, size=FFT_SIZE))))
        graph.run(optimise=True)
        return sink

    # plans, pools and caches warm (in every process of a process pool:
    # each compiles its kernels and plans its FFTs on its first call)
    run(2 if mode in ("serial", "threads") else max(2, 2 * workers * batch // len(arrays)))
    if together:
        print("ready", flush=True)
        sys.stdin.readline()
    threads_before, switches_before = _thread_cpu(), _switches()
    workers_before = _processes_cpu(pool)
    before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    sink = run(chunks // len(arrays))
    elapsed = time.perf_counter() - start
    threads_after, switches_after = _thread_cpu(), _switches()
    # A process pool's workers are the forkserver's children, not ours:
    # their CPU is read from /proc.
    workers_cpu = _processes_cpu(pool) - workers_before
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if pool is not None:
        pool.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += ((children.ru_utime - children_before.ru_utime)
            + (children.ru_stime - children_before.ru_stime)) + workers_cpu
    samples = sink.count * CHUNK
    # CPU per chunk of the reactor's thread (the graph, holding the GIL but
    # for the kernels it runs itself) and of the pool's threads.
    split = {"reactor": 0.0, "pool": 0.0}
    # and their voluntary context switches per chunk (a thread that waits
    # for the GIL, or for work, sleeps: each sleep is one).
    switches = {"reactor": 0.0, "pool": 0.0}
    for name, seconds in threads_after.items():
        part = "pool" if name.startswith("pyrf-compute") else (
            "reactor" if "reactor" in name else None)
        if part:
            split[part] += (seconds - threads_before.get(name, 0.0)) / sink.count * 1e6
            switches[part] += ((switches_after.get(name, 0) - switches_before.get(name, 0))
                               / sink.count)
    print(json.dumps({"mode": mode, "msa": samples / elapsed / 1e6, "cpu": cpu,
                      "started": start, "ended": start + elapsed, "samples": samples,
                      "reactor_us": split["reactor"], "pool_us": split["pool"],
                      "reactor_switches": switches["reactor"],
                      "pool_switches": switches["pool"],
                      "workers_us": workers_cpu / sink.count * 1e6,
                      "msa_per_cpu": samples / cpu / 1e6, "digest": sink.digest.hexdigest(),
                      "chunks": sink.count}))


def _paired(results, mode, baseline):
    """The ratios of ``mode``'s MSa/s to ``baseline``'s trial by trial, sorted."""
    return sorted(run["msa"] / base["msa"]
                  for run, base in zip(results[mode], results[baseline]))


def _shared_copy(pool, array):
    """``array`` copied into ``pool``'s shared memory."""
    import numpy as np

    copy = pool.allocate(array.shape, array.dtype)
    np.copyto(copy, array)
    return copy


def _processes_cpu(pool):
    """CPU seconds of a process pool's workers so far (0 for other pools)."""
    total = 0.0
    for pid in getattr(pool, "pids", ()):
        try:
            with open(f"/proc/{pid}/schedstat") as stream:
                total += int(stream.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            pass
    return total


def _switches():
    """Voluntary context switches of each live thread, by name (Linux; else {})."""
    import threading

    found = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/status") as stream:
                for line in stream:
                    if line.startswith("voluntary_ctxt_switches"):
                        found[thread.name] = int(line.split()[1])
        except (OSError, AttributeError, TypeError):
            pass
    return found


def _thread_cpu():
    """CPU seconds of each live thread, by name."""
    import threading

    seconds = {}
    for thread in threading.enumerate():
        try:
            seconds[thread.name] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, AttributeError, TypeError):
            pass
    return seconds


def kernel_check(tasks):
    """
    The GIL-free check, in this (fresh) process: the FFT task of a 64 Ki
    chunk (window, FFT, |X|², per-bin maximum: what a pool's thread runs)
    run ``tasks`` times on 1 thread, then shared by 2 threads of this
    process and by 2 processes at once.  Tasks per second: threads that
    serialised on the GIL would do no more together than 1 thread, where
    processes, which share nothing, do twice as many on 2 idle cores.  CPU
    per task: what sharing the GIL costs in hand-offs.  A JSON line.
    """
    sys.path.insert(0, str(ROOT))
    import multiprocessing
    import threading

    import numpy as np

    from pyrf_blocks.numerics.spectral import frame_extreme, window

    rng = np.random.default_rng(0)
    arrays = [(rng.standard_normal(2 * CHUNK, dtype=np.float32) * 0.1).view(np.complex64)
              .reshape(-1, FFT_SIZE) for _ in range(8)]
    values = window("hann", FFT_SIZE, shift=True)

    def work(count, results, ready):
        out = np.empty((1, FFT_SIZE), np.float32)
        for index in range(8):  # this thread's plans made, caches warm
            frame_extreme(arrays[index], values, True, np.maximum, out)
        ready.wait()
        started, cpu = time.perf_counter(), time.thread_time()
        for index in range(count):
            frame_extreme(arrays[index % 8], values, True, np.maximum, out)
        results.append((started, time.perf_counter(), time.thread_time() - cpu))

    def figures(results):
        wall = max(end for _, end, _ in results) - min(start for start, _, _ in results)
        return tasks / wall, sum(cpu for _, _, cpu in results) / tasks * 1e6

    def threads(count):
        results, ready = [], threading.Barrier(count)
        running = [threading.Thread(target=work, args=(tasks // count, results, ready))
                   for _ in range(count)]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join()
        return figures(results)

    def processes(count):
        context = multiprocessing.get_context("fork")
        queue, ready = context.Queue(), context.Barrier(count)

        def child():
            results = []
            work(tasks // count, results, ready)
            queue.put(results[0])

        running = [context.Process(target=child) for _ in range(count)]
        for process in running:
            process.start()
        results = [queue.get() for _ in running]
        for process in running:
            process.join()
        return figures(results)

    found = {"one_thread": [], "two_threads": [], "two_processes": []}
    for _ in range(3):
        found["one_thread"].append(threads(1))
        found["two_threads"].append(threads(2))
        found["two_processes"].append(processes(2))
    print(json.dumps({name: [statistics.median(rate for rate, _ in runs),
                             statistics.median(cpu for _, cpu in runs),
                             [rate for rate, _ in runs]]
                      for name, runs in found.items()}))


def _together(workers, chunks, env):
    """
    The bound the machine sets: ``workers`` fresh processes, each running
    the whole chain serially on its share of the chunks, started at once
    (each warms up, then all are told to go).  Their samples over the span
    from the first start to the last end, and their summed CPU per chunk.
    """
    share = max(8, chunks // workers // 8 * 8)
    found = run_together(
        [[sys.executable, __file__, "--measure", "serial", "1", str(share), "1", "together",
          "own"]] * workers, env)
    samples = sum(r["samples"] for r in found)
    span = max(r["ended"] for r in found) - min(r["started"] for r in found)
    cpu = sum(r["cpu"] for r in found)
    chunks_done = sum(r["chunks"] for r in found)
    return {"mode": "bound", "msa": samples / span / 1e6, "msa_per_cpu": samples / cpu / 1e6,
            "reactor_us": sum(r["reactor_us"] * r["chunks"] for r in found) / chunks_done,
            "pool_us": 0.0, "reactor_switches": sum(r["reactor_switches"] for r in found)}


def _spread(figures):
    """The lowest and highest of a GIL-free check's samples (tasks per second)."""
    return f"{min(figures[2]):.0f}-{max(figures[2]):.0f}"


def _chunks_for(seconds, env):
    """
    How many chunks the serial chain runs in about ``seconds`` on this
    machine, from a short serial measurement in a fresh process (a multiple
    of 8, at least 16).  The runs then last long enough that starting and
    ending a graph (a few milliseconds, the same for every mode) weighs
    little on the parallel one, the shortest.
    """
    output = subprocess.run(
        [sys.executable, __file__, "--measure", "serial", "1", "256", "1", "alone", "own"],
        check=True, capture_output=True, text=True, env=env).stdout
    rate = json.loads(output.strip().splitlines()[-1])["msa"] * 1e6
    return max(16, int(seconds * rate / CHUNK) // 8 * 8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="approximate seconds of each serial measurement (the chunk "
                        "count is set from a short serial run first; the parallel runs "
                        "take the same chunks)")
    parser.add_argument("--trials", type=int, default=5, help="measurements per configuration")
    parser.add_argument("--workers", type=int, default=2, help="threads (or processes)")
    parser.add_argument("--batch", type=int, default=8,
                        help="calls per task on the thread pool (ThreadPool(batch=)), "
                        "and per request to a process of the process pool")
    parser.add_argument("--no-caller-runs", action="store_true",
                        help="start --workers threads beside the reactor's, which then "
                        "runs no task (ThreadPool(caller_runs=False))")
    parser.add_argument("--processes", action="store_true",
                        help="also measure a process pool of --workers")
    parser.add_argument("--bound", action="store_true",
                        help="also measure the machine's bound: --workers serial processes, "
                        "each running the whole chain on its share of the chunks, at once")
    parser.add_argument("--measure", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--kernel-check", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], int(args.measure[1]), int(args.measure[2]),
                int(args.measure[3]), args.measure[4] == "together",
                args.measure[5] == "caller")
        return
    if args.kernel_check:
        kernel_check(args.kernel_check)
        return
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    chunks = _chunks_for(args.seconds, env)
    modes = ["serial", "threads"] + (["processes", "processes_shm"] if args.processes else [])
    results = {mode: [] for mode in modes}
    if args.bound:
        modes.append("bound")
        results["bound"] = []
    for trial in range(args.trials):
        for mode in modes:
            if mode == "bound":
                results[mode].append(_together(args.workers, chunks, env))
                continue
            output = subprocess.run(
                [sys.executable, __file__, "--measure", mode, str(args.workers), str(chunks),
                 str(args.batch), "alone", "own" if args.no_caller_runs else "caller"],
                check=True, capture_output=True, text=True, env=env).stdout
            results[mode].append(json.loads(output.strip().splitlines()[-1]))
    digests = {r["digest"] for mode, runs in results.items() if mode != "bound" for r in runs}
    identical = len(digests) == 1
    print(f"{chunks} chunks of {CHUNK // 1024} Ki samples, {args.trials} trials each, "
          f"median; cores: {os.cpu_count()}; machine shared with other work")
    serial = statistics.median(r["msa"] for r in results["serial"])
    for mode, runs in results.items():
        msa = statistics.median(r["msa"] for r in runs)
        per_cpu = statistics.median(r["msa_per_cpu"] for r in runs)
        reactor = statistics.median(r["reactor_us"] for r in runs)
        pool = statistics.median(r["pool_us"] for r in runs)
        label = {"serial": "serial", "processes": f"processes x{args.workers}",
                 "processes_shm": f"procs x{args.workers} shm",
                 "threads": f"threads x{args.workers} b{args.batch}"
                            + ("" if args.no_caller_runs else " cr"),
                 "bound": f"{args.workers} serial procs"}[mode]
        print(f"{label:17s} {msa:7.1f} MSa/s  {per_cpu:7.1f} MSa/s per CPU-second  "
              f"ratio to serial {msa / serial:.2f}  (CPU per chunk: reactor thread "
              f"{reactor:.0f} us, pool threads {pool:.0f} us; sleeps per chunk "
              f"{statistics.median(r.get('reactor_switches', 0) for r in runs):.2f} + "
              f"{statistics.median(r.get('pool_switches', 0) for r in runs):.2f})")
    print(f"output identical in every run: {identical}")
    serial_us = statistics.median(r["reactor_us"] + r["pool_us"] for r in results["serial"])
    for mode, label in (("processes", "array source"), ("processes_shm", "shm source")):
        if mode not in results:
            continue
        runs = results[mode]
        parts = [statistics.median(r[key] for r in runs)
                 for key in ("reactor_us", "pool_us", "workers_us")]
        total = statistics.median(r["reactor_us"] + r["pool_us"] + r["workers_us"] for r in runs)
        print(f"process pool, {label}: CPU per chunk: reactor thread {parts[0]:.0f} us, "
              f"result reader {parts[1]:.0f} us, worker processes {parts[2]:.0f} us; "
              f"{total:.0f} us in all against serial's {serial_us:.0f} us "
              f"({args.workers} cores at that cost allow at most "
              f"{args.workers * serial_us / total:.2f}x)")
    serial_cpu = statistics.median(r["reactor_us"] + r["pool_us"] for r in results["serial"])
    threads_cpu = statistics.median(r["reactor_us"] + r["pool_us"] for r in results["threads"])
    print(f"CPU per chunk, all threads (less load-sensitive than the ratio): serial "
          f"{serial_cpu:.0f} us, threads {threads_cpu:.0f} us ({threads_cpu / serial_cpu:.2f}x); "
          f"{args.workers} cores at that cost allow at most "
          f"{args.workers * serial_cpu / threads_cpu:.2f}x with perfect overlap")
    check = json.loads(subprocess.run(
        [sys.executable, __file__, "--kernel-check", "300"], check=True, capture_output=True,
        text=True, env=env).stdout.strip().splitlines()[-1])
    one, two_threads, two_processes = (check[name] for name in ("one_thread", "two_threads",
                                                                 "two_processes"))
    print(f"GIL-free check, the FFT task of a chunk: 1 thread {one[0]:.0f} tasks/s "
          f"({one[1]:.0f} us CPU each); 2 threads at once {two_threads[0] / one[0]:.2f}x that "
          f"({two_threads[1]:.0f} us); 2 processes at once {two_processes[0] / one[0]:.2f}x "
          f"({two_processes[1]:.0f} us); each the median of 3 samples, which spread "
          f"{_spread(one)}, {_spread(two_threads)} and {_spread(two_processes)} tasks/s")
    if args.bound:
        bound = statistics.median(r["msa"] for r in results["bound"])
        threads = statistics.median(r["msa"] for r in results["threads"])
        print(f"bound: {args.workers} serial processes at once reach {bound / serial:.2f}x "
              f"one; the threads reach {threads / bound:.2f} of that")
    # Each trial ran its configurations back to back: their ratios within
    # one trial compare runs a few seconds apart, where the medians above
    # may pair a serial run and a parallel run from different moments of
    # a host whose speed changes from one minute to the next.
    paired = _paired(results, "threads", "serial")
    print(f"each trial's own ratio, threads to serial: median {statistics.median(paired):.2f} "
          f"[{paired[0]:.2f}-{paired[-1]:.2f}]" + (
              "" if not args.bound else
              f"; threads to the bound of the same trial: median "
              f"{statistics.median(_paired(results, 'threads', 'bound')):.2f}"))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    threads = statistics.median(r["msa"] for r in results["threads"])
    caller = ("" if args.no_caller_runs
              else f", the reactor's one of them: {args.workers - 1} in the pool")
    bound = ""
    if args.bound:
        # (what the machine allowed in the same trials: the ratio above
        # follows it on a shared host)
        bound = (f"; the machine's bound in the same trials "
                 f"{statistics.median(r['msa'] for r in results['bound']) / serial:.2f}x, "
                 f"the threads at {statistics.median(_paired(results, 'threads', 'bound')):.2f} "
                 "of it (trials' median)")
    print(f"parallel {args.workers} threads (batch {args.batch}{caller}): {threads:.1f} MSa/s, "
          f"{threads / serial:.2f}x serial ({serial:.1f} MSa/s), identical output: "
          f"{identical}{bound}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
