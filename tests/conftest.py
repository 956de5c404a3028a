"""
Shared test set-up: Qt renders offscreen, the package is compiled once for
the child processes, what the session loaded is left out of the garbage
collector's walks, and no test leaves the default graph changed for the
next; a graph on a ``task.Clock``, the log events of a test, the rules
chain optimisation applied, and the two-output block of ``net_blocks`` for
the tests that place it.
"""

import compileall
import gc
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The suite starts several hundred Python processes (workers, commands,
# examples, doc pages).  Where bytecode is not written
# (PYTHONDONTWRITEBYTECODE, common in containers), each of them compiled
# the package from source again: 0.3 s of CPU per process here.  The
# package is compiled once instead, into its __pycache__ (ignored by git):
# 0.4 s, then only what changed.  Python reads bytecode whether or not it
# writes it.  A checkout that cannot be written to is left as it is.
if os.environ.get("PYTHONDONTWRITEBYTECODE"):
    compileall.compile_dir(Path(__file__).resolve().parents[1] / "pyrf_blocks", quiet=2)


# What is loaded once (pytest, the test modules and all they import) stays
# until the session ends, yet each full collection of the cyclic garbage
# collector walks it again, and the interpreter's exit does so several
# times over (1.9 s after a session that had loaded Qt, numba, dask and
# scipy, measured).  It is moved out of the collector's generations once
# collected, and what is alive at the end, once the session is over; what
# the tests make is collected as before.
def pytest_collection_finish(session):
    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    gc.freeze()


@pytest.fixture
def fusions_made(monkeypatch):
    """
    The rules each chain optimisation applied while the test runs: a
    sorted list per call of ``Graph.optimise`` (``Graph.run(optimise=True)``
    calls it), in order.
    """
    from pyrf_blocks.graph import Graph

    made = []
    optimise = Graph.optimise

    def counted(graph):
        fusions = optimise(graph)
        made.append(sorted(fusion.rule for fusion in fusions))
        return fusions

    monkeypatch.setattr(Graph, "optimise", counted)
    return made


@pytest.fixture
def clock():
    """
    A ``task.Clock`` the test advances by hand.
    """
    from twisted.internet.task import Clock

    return Clock()


@pytest.fixture
def graph(clock):
    """
    A graph whose reactor is :func:`clock`.
    """
    from pyrf_blocks import Graph

    return Graph(clock)


@pytest.fixture
def logged():
    """
    Every log event emitted during the test, in order.
    """
    from twisted.logger import globalLogPublisher

    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest.fixture
def tee_power(monkeypatch):
    """
    The two-output block of ``net_blocks``, registered for one test only.
    """
    from pyrf_blocks import registry

    monkeypatch.setattr(registry, "_TYPES", dict(registry._TYPES))
    import net_blocks  # registers it (into the copy) when first imported

    registry.register(net_blocks.tee_power)
    return net_blocks.tee_power
