"""
What one poll of a stream costs its reader: a lossy reader (``remote_policy
"latest"``, as ``pyrf-blocks view`` reads a worker) of a fast block polls
again as soon as each answer ends, so its CPU goes to the polls.

    python benchmarks/polls.py [--seconds S] [--trials N]

A worker subprocess serves a source of 8 KiB chunks at 2 000 chunks/s; a
``remote_block`` here reads it with the client ``graph``'s remote blocks use
(:class:`~pyrf_blocks.net.connections.WorkerClient`) and, as the baseline in
the same run, with treq's own ``HTTPClient`` over the same agent.  Each run
reports polls per second and µs of this process's CPU per poll (the
reader's side only); the best of ``--trials`` runs of each, alternated.
The last line is the headline: µs of CPU per poll and the ratio to treq's
road.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.transport import environment, start_worker, timing_sink  # noqa: E402

RATE = 2000


async def read(reactor, url, name, seconds, plain):
    """
    ``(polls/s, µs of CPU per poll, chunks received)`` of one lossy reader
    of a new fast source on the worker, over ``seconds``.
    """
    import treq
    from treq.client import HTTPClient

    from pyrf_blocks.graph import Graph
    from pyrf_blocks.net import remote_block
    from pyrf_blocks.net.client import http_client

    count = int(RATE * seconds)
    response = await treq.post(url + "/blocks", json={
        "type": "bench_source", "name": name,
        "params": {"nbytes": 8192, "count": count, "rate": RATE}})
    assert response.code == 201, await response.text()
    graph = Graph(reactor)
    client = http_client(graph)
    if plain:
        client = HTTPClient(client._agent)
    polls = [0]
    get = client.get

    def counted(*args, **kwargs):
        polls[0] += 1
        return get(*args, **kwargs)
    client.get = counted
    sink = timing_sink(remote_block(f"{url}/blocks/{name}", "iq", graph=graph, client=client,
                                      remote_policy="latest"), graph=graph)
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    await graph.done()
    elapsed = time.perf_counter() - started
    spent = resource.getrusage(resource.RUSAGE_SELF)
    spent = spent.ru_utime + spent.ru_stime - cpu.ru_utime - cpu.ru_stime
    return polls[0] / elapsed, spent / polls[0] * 1e6, len(sink.delays)


def main():
    parser = argparse.ArgumentParser(description="CPU per poll of a lossy stream reader")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="seconds the source emits in each run (default 3)")
    parser.add_argument("--trials", type=int, default=3,
                        help="runs of each client, alternated; the best is reported (default 3)")
    args = parser.parse_args()
    if not 0.5 <= args.seconds <= 60 or args.trials < 1:
        parser.error("--seconds must be between 0.5 and 60, --trials at least 1")
    os.environ.update(environment())
    from twisted.internet import defer, reactor

    results = {False: [], True: []}

    async def runs():
        worker, url = start_worker()
        try:
            for trial in range(args.trials):
                for plain in (False, True):
                    results[plain].append(await read(reactor, url, f"p{trial}{plain:d}",
                                                     args.seconds, plain))
        finally:
            worker.terminate()
            worker.wait()
    outcome = []
    d = defer.ensureDeferred(runs())
    d.addBoth(outcome.append).addBoth(lambda _: reactor.stop())
    reactor.run()
    if outcome and hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    best = {plain: min(runs, key=lambda run: run[1]) for plain, runs in results.items()}
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for plain, label in ((True, "treq's HTTPClient"), (False, "WorkerClient")):
        rate, cost, chunks = best[plain]
        print(f"  {label:>17}: {rate:6.0f} polls/s, {cost:5.0f} µs of CPU per poll, "
              f"{chunks} of {int(RATE * args.seconds)} chunks received")
    ours, theirs = best[False][1], best[True][1]
    print(f"a lossy reader's poll: {ours:.0f} µs of CPU ({ours / theirs:.2f} x treq's road, "
          f"{theirs:.0f} µs)")


if __name__ == "__main__":
    main()
