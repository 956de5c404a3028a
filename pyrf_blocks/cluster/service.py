"""
The long-running sides of a cluster, as the commands start them: a worker
that joins and runs what it is assigned (``pyrf-blocks worker --cluster``),
and a manager (``pyrf-blocks manager``).
"""

import os
from pathlib import Path

from twisted.logger import Logger

from . import coordinator as coordinator_for
from .manager import Manager
from .membership import Member
from .runner import Runner
from .store import open_cluster_store

__all__ = ["join_as_worker", "start_manager", "computations_from_files"]

log = Logger()


def _check_url(url):
    if url == "memory:":
        raise ValueError("the in-process coordinator ('memory:') lives in one process; "
                         "give the etcd URL that every worker and manager can reach")
    coordinator_for(url, None)  # checks the form


async def join_as_worker(reactor, url, name, address, store_path, ttl=5.0,
                         snapshot_interval=1.0, prefix="/pyrf/", ca=None, worker=None):
    """
    Join the cluster at ``url`` as ``name`` (reached at ``address``) and
    run the computations the manager assigns; return ``(member, runner)``.
    Given the :class:`~pyrf_blocks.net.worker.Worker`, its ``/metrics``
    report the computations too, and it serves their ``cluster_output``
    blocks to other workers (with its token, which they share).
    """
    _check_url(url)
    store = open_cluster_store(store_path)
    coordinator = coordinator_for(url, reactor, ca=ca)
    runner = Runner(reactor, coordinator, store, prefix=prefix,
                    snapshot_interval=snapshot_interval,
                    token=None if worker is None else worker.token)
    member = Member(coordinator, reactor, name, address, runner.assigned, runner.revoked,
                    ttl=ttl, prefix=prefix)
    runner.member = member
    if worker is not None:
        # Other computations read this one's cluster_outputs here.
        worker.computations = runner.served
    await member.join()
    runner.start()
    if worker is not None:
        from ..metrics import GraphCollector, WorkerCollector
        from .edges import EdgeCollector

        worker.collectors += [GraphCollector(runner.graphs),
                              WorkerCollector(member, runner, reactor),
                              EdgeCollector(runner)]
    log.info("{name}: joined the cluster at {url}", name=name, url=url)
    return member, runner


def computations_from_files(paths):
    """
    ``{name: spec}`` for pipeline files: each file is one computation, named
    after the file (its stem), checked completely first.

    :raises PipelineError: for a file with problems.
    :raises ValueError: for two files with one name.
    """
    from ..pipeline import check_file

    computations = {}
    for path in map(Path, paths):
        check_file(path)  # every problem, at its line, before anything runs
        name = path.stem
        if name in computations:
            raise ValueError(f"two pipeline files are named {name!r}: computations need "
                             f"distinct file names")
        computations[name] = {"pipeline": path.read_text(encoding="utf-8"),
                              "file": os.fspath(path)}
    return computations


async def start_manager(reactor, url, name, computations, ttl=5.0, prefix="/pyrf/", ca=None):
    """Stand as manager ``name`` of the cluster at ``url``; return the Manager."""
    _check_url(url)
    manager = Manager(coordinator_for(url, reactor, ca=ca), reactor, name, computations,
                      ttl=ttl, prefix=prefix)
    await manager.start()
    return manager

