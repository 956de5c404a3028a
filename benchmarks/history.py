"""
Replay on Dask (history at scale): 8 recordings through one pipeline
(pyrf_blocks.replay, as ``pyrf-blocks replay REC... PIPELINE --dask``) on a
LocalCluster of 1 and of 2 worker processes, in the same run.

    python benchmarks/history.py [--samples N] [--trials N] [--workers 1,2] [--bound]

The recordings (cf32, ``--samples`` each, in a temporary folder) run
through sigmf_source -> FFT-1024 (Hann, half overlap) -> calibrate -> max
hold -> collector(keep=1), each graph optimised as replay optimises it
(the hold takes the FFT's extreme and calibrates it).  Each measurement is
a fresh process that starts its cluster, warms every worker on one
recording (pinned to it), then
warms this process (its first check of a recording: imports, the YAML
parsed once), then times the 8 (the timed region is one
``replay(PIPELINE, paths, client=client)``: the check of every recording
in this process, the tasks, and fetching their results); the
worker counts alternate, ``--trials`` times each, median reported (MSa/s
of recorded samples).  Every run's results are hashed and must equal a
serial run's.  The last line is the headline: MSa/s on the largest
cluster and its scaling against one worker.  The default recordings are
8 Mi samples (64 MiB): 4 Mi until replay optimised its graphs, which
halved a graph's time; doubled so that a measurement lasts as long as it
did and Dask's latency per run (10-20 ms to start the first task and
fetch the last result, on the 2-core machine) weighs no more than before.

``--bound`` adds, interleaved with the clusters, what the machine itself
allows: as many plain processes as the largest cluster has workers (no
Dask), each replaying its share of the recordings one after another with
``replay_one``, started together once each has replayed one recording to
warm up; and one such process replaying them all.  Their ratio (samples
over the span from the first start to the last end) is what this machine
gives the work in the same minutes with no scheduler at all: on a shared
host two busy processes slow each other.  (Dask's own ratio may pass it:
the overhead its one worker pays per task is shared by two.)
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from together import run_together  # (beside this script)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PIPELINE = """
version: 1
blocks:
  recording: {type: sigmf_source, params: {path: unset}}
  fft: {type: fft_block, inputs: [recording], params: {size: 1024, overlap: 512}}
  dbm: {type: calibrate_block, inputs: [fft]}
  hold: {type: max_hold, inputs: [dbm]}
  last: {type: collector, inputs: [hold], params: {keep: 1}}
"""


def make_recordings(folder, count, samples):
    import numpy as np

    paths = []
    for index in range(count):
        rng = np.random.default_rng(index)
        data = (rng.standard_normal(2 * samples, dtype=np.float32) * 0.01).view(np.complex64)
        data += np.exp(2j * np.pi * (0.01 * (index + 1)) * np.arange(samples)).astype(np.complex64)
        path = os.path.join(folder, f"rec{index}")
        data.tofile(path + ".sigmf-data")
        with open(path + ".sigmf-meta", "w", encoding="utf-8") as stream:
            json.dump({"global": {"core:datatype": "cf32_le", "core:sample_rate": 1e7,
                                  "core:version": "1.0.0"},
                       "captures": [{"core:sample_start": 0, "core:frequency": 1e9}],
                       "annotations": []}, stream)
        paths.append(path)
    return paths


def digest(results):
    hasher = hashlib.sha256()
    for result in results:
        hasher.update(result.recording.encode())
        for name in sorted(result.sinks):
            for chunk in result.sinks[name]:
                hasher.update(chunk.data.tobytes())
                hasher.update(repr((chunk.start, chunk.end, chunk.seq)).encode())
    return hasher.hexdigest()


def _cpu():
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(workers, paths):
    """One measurement in this fresh process: a JSON line."""
    from dask.distributed import Client

    from pyrf_blocks.replay import check_recordings, local_cluster, replay, replay_one

    # The cluster replay --dask starts (pyrf_blocks.replay.local_cluster).
    cluster = local_cluster(workers)
    client = Client(cluster)
    try:
        # Warm every worker (imports, FFTW plans, compiled kernels): one
        # recording pinned to each, so none is left cold by the scheduler.
        addresses = list(client.scheduler_info()["workers"])
        client.gather([client.submit(replay_one, PIPELINE, paths[0], workers=[address],
                                     allow_other_workers=False, pure=False)
                       for address in addresses])
        # And warm this process as the workers are: its first check of a
        # recording imports the pipeline modules, parses the YAML and
        # builds the blocks' parameter models (25-65 ms, once per
        # process), which would otherwise be timed as a serial part of the
        # 1- and 2-worker runs alike.  The timed replay still checks every
        # recording here.
        check_recordings(PIPELINE, paths[:1])
        samples = sum(os.path.getsize(p + ".sigmf-data") // 8 for p in paths)
        workers_before = client.run(_cpu)
        here_before = _cpu()
        start = time.perf_counter()
        results = replay(PIPELINE, paths, client=client)
        elapsed = time.perf_counter() - start
        here = _cpu() - here_before
        workers_after = client.run(_cpu)
        worker_cpu = sum(workers_after[a] - workers_before[a] for a in workers_after)
    finally:
        client.close()
        cluster.close()
    print(json.dumps({"workers": workers, "msa": samples / elapsed / 1e6,
                      "client_cpu": here, "worker_cpu": worker_cpu,
                      "digest": digest(results)}))


def replay_share(paths):
    """
    One process of the bound, in this fresh process: warm up on the first
    recording, say ``ready``, wait for ``go``, replay ``paths`` one after
    another, print a JSON line (its start, end, samples, and each result's
    digest).
    """
    from pyrf_blocks.replay import replay_one

    replay_one(PIPELINE, paths[0])
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("history bound: expected 'go'")
    started = time.time()
    results = [replay_one(PIPELINE, path) for path in paths]
    ended = time.time()
    print(json.dumps({"started": started, "ended": ended,
                      "samples": sum(result.samples for result in results),
                      "digests": [digest([result]) for result in results]}))


def bound(processes, paths, env):
    """
    The machine's bound: ``processes`` fresh processes, each replaying its
    share of ``paths`` (dealt out in turn), started together.  MSa/s over
    the span from the first start to the last end, and the digests of the
    recordings, in the order of ``paths``.
    """
    shares = [share for share in (paths[index::processes] for index in range(processes))
              if share]
    found = run_together([[sys.executable, __file__, "--replay-share", *share]
                          for share in shares], env)
    span = max(r["ended"] for r in found) - min(r["started"] for r in found)
    digests = [None] * len(paths)
    for index, result in enumerate(found):
        digests[index::processes] = result["digests"]
    return {"msa": sum(r["samples"] for r in found) / span / 1e6, "digests": digests}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8 << 20,
                        help="samples per recording (default 8 Mi: 64 MiB of cf32)")
    parser.add_argument("--recordings", type=int, default=8)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="cluster sizes, comma-separated")
    parser.add_argument("--bound", action="store_true",
                        help="also measure the machine's bound: plain processes (no Dask) "
                             "replaying their shares at once, against one replaying all")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--replay-share", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(int(args.measure[0]), args.measure[1:])
        return
    if args.replay_share:
        replay_share(args.replay_share)
        return
    sizes = [int(n) for n in args.workers.split(",")]
    if args.bound and sizes[0] == sizes[-1]:
        parser.error("--bound compares the first and the last of --workers: give two sizes")
    folder = tempfile.mkdtemp(prefix="pyrf-history-bench-")
    try:
        paths = make_recordings(folder, args.recordings, args.samples)
        from pyrf_blocks.replay import replay

        serial_results = replay(PIPELINE, paths)
        serial = digest(serial_results)
        each = [digest([result]) for result in serial_results]
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        runs = {n: [] for n in sizes}
        bounds = {n: [] for n in (sizes[0], sizes[-1])} if args.bound else {}
        for _ in range(args.trials):
            for n in sizes:
                out = subprocess.run([sys.executable, __file__, "--measure", str(n), *paths],
                                     check=True, capture_output=True, text=True, env=env).stdout
                runs[n].append(json.loads(out.strip().splitlines()[-1]))
            for n in bounds:
                bounds[n].append(bound(n, paths, env))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    identical = (all(r["digest"] == serial for rs in runs.values() for r in rs)
                 and all(r["digests"] == each for rs in bounds.values() for r in rs))
    print(f"{args.recordings} recordings of {args.samples / 2**20:g} Mi samples, "
          f"{args.trials} trials each, median; cores: {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f} (machine shared)")
    base = statistics.median(r["msa"] for r in runs[sizes[0]])
    for n in sizes:
        msa = statistics.median(r["msa"] for r in runs[n])
        client_cpu = statistics.median(r["client_cpu"] for r in runs[n])
        worker_cpu = statistics.median(r["worker_cpu"] for r in runs[n])
        print(f"{n:3d} worker{'s' * (n != 1)}: {msa:7.1f} MSa/s, {msa / base:.2f}x "
              f"{sizes[0]} worker{'s' * (sizes[0] != 1)}; CPU in the timed region: "
              f"workers {worker_cpu:.2f} s, client and scheduler {client_cpu:.2f} s")
    top = statistics.median(r["msa"] for r in runs[sizes[-1]])
    ceiling = ""
    if bounds:
        low, high = (statistics.median(r["msa"] for r in bounds[n]) for n in bounds)
        print(f"bound (no Dask): {sizes[-1]} plain processes replaying their shares at once "
              f"{high:.1f} MSa/s, one replaying all {low:.1f} MSa/s: {high / low:.2f}x "
              f"(Dask's {sizes[-1]} workers reach {top / high:.2f} of the first, its "
              f"{sizes[0]} worker{'s' * (sizes[0] != 1)} {base / low:.2f} of the second)")
        ceiling = f"; the machine's bound in the same trials {high / low:.2f}x"
    print(f"results identical to the serial run in every measurement: {identical}")
    print(f"replay on Dask: {top:.1f} MSa/s on {sizes[-1]} workers, "
          f"{top / base:.2f}x {sizes[0]} worker{'s' * (sizes[0] != 1)}, identical: "
          f"{identical}{ceiling}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
