"""
Lease renewals under a busy reactor, on a real etcd (Debian's etcd-server)
on loopback.

    python benchmarks/lease.py [--ttl SECONDS] [--turn SECONDS] [--seconds SECONDS]

A lease of ``--ttl`` s is kept by :class:`~pyrf_blocks.cluster.lease.KeptLease`
while its reactor runs pure-Python work in turns of ``--turn`` s (a long
chunk; a starved process looks the same from inside) for ``--seconds`` s.
Two ways, in the same run: renewed on the reactor (the baseline, as before)
and renewed in a thread of its own (the default now).  For each: the longest
gap between two successful renewals, the renewals made, and whether the
lease was lost.  The last line is the headline: the longest gap with the
renewal thread, against the ttl and against the baseline's.
"""

import argparse
import tempfile
import threading
import time
from pathlib import Path

from twisted.internet import defer

from pyrf_blocks.cluster import coordinator as coordinator_for
from pyrf_blocks.cluster.lease import KeptLease
from pyrf_blocks.testing import new_reactor, run_until
from pyrf_blocks.testing.servers import EtcdServer


def busy(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(1000))


def keep(url, ttl, turn, seconds, in_thread):
    """``(longest gap between renewals, renewals, lost)`` for one way."""
    reactor = new_reactor()
    store = coordinator_for(url, reactor)
    gaps, stop = [0.0], threading.Event()

    def watch(lease):
        last, seen = time.time(), lease.renewed_at
        while not stop.wait(0.02):
            if lease.renewed_at != seen:
                now = time.time()
                gaps[0] = max(gaps[0], now - last)
                last, seen = now, lease.renewed_at
        gaps[0] = max(gaps[0], time.time() - last)

    async def run():
        lease = KeptLease(store, reactor, ttl, "benchmark", in_thread=in_thread)
        await lease.grant()
        watcher = threading.Thread(target=watch, args=(lease,), daemon=True)
        watcher.start()
        started = time.monotonic()
        try:
            while time.monotonic() - started < seconds and not lease.lost.called:
                busy(turn)
                d = defer.Deferred()
                reactor.callLater(0.01, d.callback, None)  # one short turn between chunks
                await d
            return lease.renewals, lease.lost.called
        finally:
            stop.set()
            watcher.join()
            lease._stop_loop()
            await store.close()
    renewals, lost = run_until(reactor, defer.ensureDeferred(run()), timeout=seconds + 30)
    return gaps[0], renewals, lost


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ttl", type=float, default=2.0, help="lease ttl, s (default 2)")
    parser.add_argument("--turn", type=float, default=1.5,
                        help="length of one reactor turn, s (default 1.5)")
    parser.add_argument("--seconds", type=float, default=12.0,
                        help="how long each way runs, s (default 12)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(Path(tmp)) as etcd:
        results = {}
        for label, in_thread in (("on the reactor (baseline)", False),
                                 ("in a thread (default)", True)):
            gap, renewals, lost = keep(etcd.url, args.ttl, args.turn, args.seconds, in_thread)
            results[in_thread] = gap
            print(f"renewed {label}: longest gap {gap:.2f} s ({gap / args.ttl:.2f}x ttl), "
                  f"{renewals} renewals, lease {'LOST' if lost else 'kept'}", flush=True)
    print(f"longest renewal gap with {args.turn:g} s reactor turns: {results[True]:.2f} s "
          f"in a thread = {results[True] / args.ttl:.2f}x the ttl of {args.ttl:g} s, "
          f"{results[True] / results[False]:.2f}x the baseline's {results[False]:.2f} s")


if __name__ == "__main__":
    main()
