"""
The chaos section: fault and fuzz tests against real processes (marked
``chaos``; ``.ci/run`` runs them with the rest).  One real worker serves
the stream tests of a session.

When a test fails, the report shows the last lines of its processes'
logs: every ``*.log`` under the test's ``tmp_path`` (workers, managers,
etcd), and what each :class:`~net_real.RealWorker` that ran during the
test wrote to stderr, so that a flake seen once can be read afterwards
(``tmp_path`` itself is removed a few sessions later).  A test that
passes shows nothing.
"""

import pytest

from net_real import RealWorker

#: Lines of each log shown with a failure.
TAIL_LINES = 60


@pytest.fixture(scope="session")
def stream_worker():
    """
    A ``pyrf-blocks worker`` subprocess on loopback for the stream tests.
    """
    worker = RealWorker()
    yield worker
    worker.stop()


#: Where each test's first worker is in ``RealWorker.started``.
_FIRST_WORKER = pytest.StashKey[int]()


@pytest.fixture(autouse=True)
def _workers_of_the_test(request):
    request.node.stash[_FIRST_WORKER] = len(RealWorker.started)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name, text in _process_logs(item):
        report.sections.append((f"log of {name} (last {TAIL_LINES} lines)", _tail(text)))


def _process_logs(item):
    """``(name, text)`` of each process log of the test ``item``."""
    funcargs = getattr(item, "funcargs", {})
    tmp_path = funcargs.get("tmp_path")
    if tmp_path is not None and tmp_path.exists():
        for path in sorted(tmp_path.rglob("*.log")):
            yield str(path), path.read_text("utf-8", "replace")
    workers = [value for value in funcargs.values() if isinstance(value, RealWorker)]
    workers += [worker for worker in RealWorker.started[item.stash.get(_FIRST_WORKER, 0):]
                if worker not in workers]
    for worker in workers:
        yield f"worker {worker.url} (pid {worker.process.pid}) stderr", worker.stderr()


def _tail(text):
    lines = text.splitlines()
    kept = lines[-TAIL_LINES:]
    skipped = f"[{len(lines) - len(kept)} earlier lines]\n" if len(lines) > len(kept) else ""
    return skipped + "\n".join(kept) if kept else "(empty)"
