"""
Show a cluster: its leading manager, its workers, which computation each
runs (with the assignment revision that fences its writes), how far each
computation's outputs lag the wall clock (read from its worker's
``/metrics``; the token, where a worker needs one, from
``PYRF_BLOCKS_TOKEN``) and, given the store, how old and large each
computation's last snapshot is.

Example:

  pyrf-blocks status --cluster http://127.0.0.1:2379 --store pyrf-cluster.sqlite
"""

import sys
import time

from .options import add_cluster_arguments

HELP = "show a cluster's manager, workers and computations"


def add_arguments(parser):
    add_cluster_arguments(parser)
    parser.add_argument("--store", default=None, metavar="FILE",
                        help="the workers' store (SQLite file or postgresql:// URL), to "
                             "show snapshot ages and sizes")


def table(rows, header):
    """Rows of text as aligned columns under ``header``."""
    rows = [header] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


def lags(address, token=None, timeout=3.0):
    """
    ``{computation: seconds}`` from the worker at ``address``: for each of
    its computations, the largest lag (wall clock minus device time) of
    its outputs, as its ``/metrics`` serves them; ``{}`` when the worker
    does not answer.
    """
    import re
    import urllib.request

    request = urllib.request.Request(address.rstrip("/") + "/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            text = answer.read().decode()
    except (OSError, ValueError):
        return {}
    found = {}
    for labels, value in re.findall(r'^pyrf_block_lag_seconds\{([^}]*)\} (\S+)$', text, re.M):
        graph = re.search(r'(?:^|,)graph="([^"]*)"', labels)
        if graph:
            found[graph[1]] = max(found.get(graph[1], float("-inf")), float(value))
    return found


def _seconds(value):
    return "-" if value is None else f"{value:.1f} s"


async def read_cluster(coordinator, prefix="/pyrf/"):
    """``(leader, {worker: registration}, {computation: Assignment}, [computation])``."""
    from ..cluster.assignment import Assignments
    from ..cluster.election import leader
    from ..cluster.membership import members

    kvs, _ = await coordinator.range(prefix + "computations/")
    names = [kv.key[len(prefix) + len("computations/"):] for kv in kvs]
    assignments, _ = await Assignments(coordinator, prefix).read()
    return (await leader(coordinator, prefix), await members(coordinator, prefix),
            assignments, names)


def run(args):
    from twisted.internet import defer, task

    from ..cluster import coordinator as coordinator_for
    from ..cluster.store import open_cluster_store

    try:
        if args.cluster == "memory:":
            raise ValueError("give the etcd URL of the cluster")
        snapshots = open_cluster_store(args.store).snapshot_info() if args.store else {}
    except (ValueError, OSError) as error:
        print(f"pyrf-blocks status: {error}", file=sys.stderr)
        return 2
    outcome = []

    async def main(reactor):
        coordinator = coordinator_for(args.cluster, reactor, ca=args.cluster_ca)
        try:
            outcome.append(await read_cluster(coordinator))
        except Exception as error:  # unreachable, refused: reported below in one line
            outcome.append(error)
        finally:
            await coordinator.close()
    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)), [])
    except SystemExit:
        pass
    if isinstance(outcome[0], Exception):
        print(f"pyrf-blocks status: {outcome[0]}", file=sys.stderr)
        return 1
    leader, workers, assignments, names = outcome[0]
    import os

    from ..net.placement import TOKEN_VARIABLE
    token = os.environ.get(TOKEN_VARIABLE)
    lag = {}
    for worker, registration in workers.items():
        if registration.get("address"):
            lag[worker] = lags(registration["address"], token)
    now = time.time()
    print(f"manager: {leader or '(none leading)'}")
    print(table([[w, reg.get("address", ""), sum(1 for a in assignments.values()
                                                  if a.worker == w)]
                 for w, reg in sorted(workers.items())], ["WORKER", "ADDRESS", "RUNS"]))
    rows = []
    for name in sorted(set(names) | set(assignments)):
        held = assignments.get(name)
        snap = snapshots.get(name)
        rows.append([name, held.worker if held else "(unassigned)",
                     held.revision if held else "-",
                     _seconds(lag.get(held.worker, {}).get(name) if held else None),
                     f"{now - snap[1]:.1f} s" if snap else "-",
                     f"{snap[2]} B" if snap else "-"])
    print(table(rows, ["COMPUTATION", "WORKER", "REVISION", "LAG", "SNAPSHOT AGE", "STATE"]))
    return 0
