"""
Helpers for the tests that run a cluster of real processes: the command
line of a worker or manager, and the results they stored.
"""

import sqlite3
import subprocess
import sys

from net_real import environment

__all__ = ["command", "rows", "start_workers", "PRODUCER", "CONSUMER", "REFERENCE"]

# A producer computation (V, I -> power -> cluster_output) and a consumer
# reading it (cluster_input -> 200 ms windows and a running average ->
# result_store), and the same analysis in one graph for reference.
# str.format fields: count, paced; retained (PRODUCER); store (the others).
_SOURCES = """\
  V:
    type: waveform_source
    params: {{amplitude: 325, harmonics: [[3, 0.03]], noise: 0.5, seed: 1,
             sample_rate: 5000, samples_per_chunk: 100, count: {count}, paced: {paced},
             start_time: 1774742400000000000}}
  I:
    type: waveform_source
    params: {{amplitude: 7, phase: -30, noise: 0.01, seed: 2,
             sample_rate: 5000, samples_per_chunk: 100, count: {count}, paced: {paced},
             start_time: 1774742400000000000}}
  P: {{type: power_block, inputs: [V, I]}}
"""
PRODUCER = "version: 1\nblocks:\n" + _SOURCES + """\
  power_out: {{type: cluster_output, inputs: [P], params: {{max_retained: {retained}}}}}
"""
_ANALYSIS = """\
  windows:
    type: window_block
    inputs: [P]
    params: {{every: 200ms, stats: [mean, max, count]}}
  mean: {{type: average, inputs: [P]}}
  windows_out: {{type: result_store, inputs: [windows], params: {{{store}}}}}
  mean_out: {{type: result_store, inputs: ["mean:running"], params: {{{store}}}}}
"""
CONSUMER = """\
version: 1
blocks:
  P: {{type: cluster_input, params: {{computation: power, output: power_out}}}}
""" + _ANALYSIS
REFERENCE = "version: 1\nblocks:\n" + _SOURCES + _ANALYSIS



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
