"""
Running a graph in a test: on a ``task.Clock`` (most tests), or on a fresh
real reactor for the few that must cross real loopback sockets.

The global reactor cannot be restarted, so a test that needs real sockets
makes its own ``SelectReactor`` (never installed) with :func:`new_reactor`
and gives it to the graph and to whatever listens; every block takes its
reactor by injection.
"""

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["run_clock", "new_reactor", "run_until", "wait_for", "poll_until", "start_emulator",
           "modules_loaded"]


def run_clock(clock, graph, step=0.001, limit=100000):
    """
    Advance ``clock`` until ``graph`` is done.

    Parameters
    ----------
    clock : twisted.internet.task.Clock
        The graph's reactor.
    graph : Graph
        A graph with at least one sink.
    step : float
        Seconds per advance.
    limit : int
        Most advances before giving up.

    Returns
    -------
    None or twisted.python.failure.Failure
        The outcome of :meth:`Graph.done`: ``None`` when every sink has
        seen end-of-stream, the failure when a block raised.

    Raises
    ------
    AssertionError
        If the graph is not done after ``limit`` steps.
    """
    outcome = []
    graph.done().addBoth(outcome.append)
    for _ in range(limit):
        if outcome:
            return outcome[0]
        clock.advance(step)
    raise AssertionError(f"graph not done after {limit} steps of {step} s")


def new_reactor():
    """
    A fresh reactor for one test, never installed as the global one.

    Returns
    -------
    twisted.internet.selectreactor.SelectReactor
        Run it once, with :func:`run_until`.
    """
    from twisted.internet.selectreactor import SelectReactor

    return SelectReactor()


def run_until(reactor, deferred, timeout=20.0):
    """
    Run ``reactor`` until ``deferred`` fires, then close what is still
    connected to it (the reactor can run only once).

    Parameters
    ----------
    reactor : twisted.internet.selectreactor.SelectReactor
        A reactor from :func:`new_reactor` that has not run yet.
    deferred : twisted.internet.defer.Deferred or object
        What to wait for; a plain value counts as fired.
    timeout : float
        Seconds of wall-clock time before giving up.

    Returns
    -------
    object
        The result of ``deferred``.

    Raises
    ------
    Exception
        The exception ``deferred`` failed with, or ``AssertionError`` if it
        has not fired after ``timeout`` seconds.
    """
    outcome = []

    def finished(result):
        outcome.append(result)
        reactor.callLater(0, reactor.stop)
        return None

    def too_late():
        if not outcome:
            outcome.append(Failure(AssertionError(f"not done after {timeout} s")))
            reactor.stop()

    deferred = defer.maybeDeferred(lambda: deferred)
    deferred.addBoth(finished)
    if not outcome:
        timer = reactor.callLater(timeout, too_late)
        reactor.run(installSignalHandlers=False)
        if timer.active():
            timer.cancel()
    # Close what is still open (a listening port, a connection) and the
    # reactor's own waker, so a test leaks no file descriptors.
    for selectable in reactor.removeAll():
        selectable.connectionLost(Failure(ConnectionError("test over")))
    if reactor.waker is not None:
        reactor.waker.connectionLost(None)
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def wait_for(reactor, predicate, interval=0.005):
    """
    A Deferred that fires once ``predicate()`` is true.

    Parameters
    ----------
    reactor : IReactorTime
        Polls ``predicate`` on it (a real reactor or a ``task.Clock``).
    predicate : callable
        Returns true once the wait is over.
    interval : float
        Seconds between polls.

    Returns
    -------
    twisted.internet.defer.Deferred
        Fires with ``None``; it never fails, so bound the wait with
        :func:`run_until`'s timeout.
    """
    done = defer.Deferred()

    def poll():
        if done.called:
            return
        if predicate():
            done.callback(None)
        else:
            reactor.callLater(interval, poll)

    reactor.callLater(0, poll)
    return done


def poll_until(predicate, timeout, what, interval=0.05):
    """
    Call ``predicate()`` every ``interval`` seconds of wall-clock time until
    it returns something true, and return that: for watching real processes
    from outside any reactor (a cluster's layout, rows in a store).

    :raises TimeoutError: after ``timeout`` seconds, naming ``what``.
    """
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def start_emulator(reactor, **settings):
    """
    An instrument emulator listening on free loopback ports, to test a
    source or a client against real sockets.

    Parameters
    ----------
    reactor : IReactorTCP and IReactorTime
        Usually from :func:`new_reactor`.
    **settings
        Settings of :class:`~pyrf_blocks.instruments.emulator.InstrumentEmulator`
        (its tones, noise floor, sample rate...).

    Returns
    -------
    InstrumentEmulator
        Listening; its ports are in ``.ports``.
    """
    from ..instruments.emulator import InstrumentEmulator

    emulator = InstrumentEmulator(reactor, **settings)
    emulator.listen("127.0.0.1", 0, 0, 0)
    return emulator


def modules_loaded(code, modules, timeout=60):
    """
    Which of ``modules`` a fresh Python interpreter has imported once it
    has run ``code``: for tests that an import, a block or a command stays
    light (loads no scipy.signal, no pipeline parser...).

    Parameters
    ----------
    code : str
        Python source run first (its own output is not read; an assert in
        it fails the call).
    modules : sequence of str
        Names as in ``sys.modules``.
    timeout : float
        Seconds the interpreter may take.

    Returns
    -------
    list of str
        Those of ``modules`` imported, in the order given.
    """
    import subprocess
    import sys
    from pathlib import Path

    probe = (f"{code}\nimport sys as _sys\n"
             f"print('\\n' + ' '.join(m for m in {tuple(modules)!r} if m in _sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[-1].split()
