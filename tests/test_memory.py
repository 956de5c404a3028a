"""
Keeping freed memory for reuse (pyrf_blocks.memory).
"""

import ctypes.util
import subprocess
import sys

import pytest

from pyrf_blocks import memory


@pytest.mark.skipif(not (ctypes.util.find_library("c") or "").startswith("libc.so"),
                    reason="mallopt is glibc's")
def test_glibc_is_asked_to_keep_freed_memory_once():
    """On glibc the thresholds are set (True), and asking again changes nothing."""
    code = ("from pyrf_blocks import memory; "
            "print(memory.keep_freed_memory(), memory.keep_freed_memory())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["True", "True"]


def test_without_mallopt_nothing_happens(monkeypatch):
    """Where the C library has no mallopt, the call says so with False and does not fail."""
    monkeypatch.setattr(memory, "_kept", None)
    monkeypatch.setattr(memory, "_c_library", lambda: object())  # a library without mallopt
    assert memory.keep_freed_memory() is False
    monkeypatch.setattr(memory, "_kept", None)


def test_running_a_graph_keeps_freed_memory():
    """Graph.run asks for it: it is an entry point, as the worker command is."""
    code = ("from twisted.internet.task import Clock\n"
            "from pyrf_blocks import memory\n"
            "from pyrf_blocks.graph import Graph\n"
            "from pyrf_blocks.testing import array_source, recording_sink\n"
            "import numpy as np\n"
            "graph = Graph()\n"
            "recording_sink(array_source([np.ones(4)], graph=graph))\n"
            "assert memory._kept is None\n"
            "graph.run()\n"
            "print(memory._kept)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("True", "False")


def test_the_worker_command_keeps_freed_memory():
    """`pyrf-blocks worker` asks for it before it serves (its reactor stubbed to return)."""
    code = ("from twisted.internet import reactor\n"
            "reactor.run = lambda *a, **k: None\n"
            "from pyrf_blocks import memory\n"
            "from pyrf_blocks.cli import main\n"
            "assert memory._kept is None\n"
            "main(['worker', '--listen', 'tcp:0:interface=127.0.0.1'])\n"
            "print(memory._kept)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] in ("True", "False")


def test_streams_and_remote_blocks_leave_malloc_alone(monkeypatch):
    """Opening a served stream and starting a remote block tune nothing process-wide."""
    import numpy as np
    from pyrf_blocks.net import remote_block
    from pyrf_blocks.testing import WORKER_URL, WorkerPair, array_source, recording_sink

    calls = []
    monkeypatch.setattr(memory, "_kept", None)
    monkeypatch.setattr(memory, "_set_thresholds", lambda: calls.append(1) or True)
    pair = WorkerPair()
    array_source([np.ones(4, np.complex64)] * 3, graph=pair.server, name="src")
    sink = recording_sink(remote_block(WORKER_URL + "/blocks/src", "iq", client=pair.http,
                                       graph=pair.client))
    assert pair.run() is None and len(sink.chunks) == 3  # (through a served stream)
    assert calls == [] and memory._kept is None


def test_keeping_freed_memory_starts_no_process():
    """Setting the allocator forks nothing (find_library("c") would run /sbin/ldconfig)."""
    code = ("import os, subprocess\n"
            "calls = []\n"
            "real = subprocess.Popen.__init__\n"
            "def spy(self, *a, **k):\n"
            "    calls.append(a)\n"
            "    return real(self, *a, **k)\n"
            "subprocess.Popen.__init__ = spy\n"
            "from pyrf_blocks import memory\n"
            "print(memory.keep_freed_memory(), len(calls))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split()[1] == "0"
