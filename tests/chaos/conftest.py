"""
The chaos section: fault and fuzz tests against real processes (marked
``chaos``; ``.ci/run`` runs them with the rest).  One real worker serves
the stream tests of a session.
"""

import pytest


@pytest.fixture(scope="session")
def stream_worker():
    """
    A ``pyrf-blocks worker`` subprocess on loopback for the stream tests.
    """
    from net_real import RealWorker

    worker = RealWorker()
    yield worker
    worker.stop()
