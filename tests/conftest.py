"""
Shared test set-up: Qt renders offscreen, and no test leaves the default
graph changed for the next; the two-output block of ``net_blocks`` for the
tests that place it.
"""

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


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
