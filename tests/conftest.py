"""
Shared test set-up: Qt renders offscreen, and no test leaves the default
graph changed for the next; a graph on a ``task.Clock``, the log events of
a test, and the two-output block of ``net_blocks`` for the tests that
place it.
"""

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


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
