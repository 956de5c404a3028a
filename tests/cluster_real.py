"""
Helpers for the tests that run a cluster of real processes: the command
line of a worker or manager, and the results they stored.
"""

import sqlite3
import subprocess
import sys

from net_real import environment

__all__ = ["command", "rows", "start_workers"]


def command(*args, log):
    """``pyrf-blocks ARGS...`` in a subprocess, its output to ``log``."""
    return subprocess.Popen([sys.executable, "-m", "pyrf_blocks.cli", *args],
                            stdout=log, stderr=subprocess.STDOUT, env=environment())


def rows(path, computation):
    """``{(block, key): value}`` of a computation's results in a SQLite ClusterStore."""
    with sqlite3.connect(path, timeout=30) as db:
        return {(block, key): value for block, key, value in db.execute(
            "SELECT block, key, value FROM results WHERE computation = ?",
            (computation,)).fetchall()}


def start_workers(etcd, store, logs, names):
    """
    ``{name: process}``: a ``pyrf-blocks worker`` per name on loopback,
    joined to ``etcd`` with a 2 s lease and snapshots every 0.2 s into the
    SQLite ClusterStore ``store``, each logging to ``logs/NAME.log``.
    """
    return {name: command("worker", "--listen", "tcp:0:interface=127.0.0.1",
                          "--cluster", etcd.url, "--name", name, "--store", str(store),
                          "--ttl", "2", "--snapshot-interval", "0.2",
                          log=open(logs / f"{name}.log", "w"))
            for name in names}
