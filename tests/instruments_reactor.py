"""
A fresh, real reactor per test, for tests that cross real loopback sockets.

The global reactor cannot be restarted; a new ``SelectReactor`` (never
installed) can run once per test, with the graph and the emulator given it
explicitly, as every block takes its reactor by injection.
"""

from twisted.internet import defer
from twisted.internet.selectreactor import SelectReactor
from twisted.python.failure import Failure


def new_reactor():
    return SelectReactor()


def run_until(reactor, deferred, timeout=20.0):
    """
    Run ``reactor`` until ``deferred`` fires; return its result or raise
    its exception.  Fails if it has not fired after ``timeout`` seconds.
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
    for reader in list(reactor.getReaders()) + list(reactor.getWriters()):
        if reader is not reactor.waker:
            reader.connectionLost(Failure(ConnectionError("test over")))
    reactor.waker.connectionLost(None)
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def wait_for(reactor, predicate, interval=0.005):
    """
    A Deferred that fires once ``predicate()`` is true (polled on the
    reactor; ``run_until``'s timeout bounds the wait).
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


def start_emulator(reactor, **settings):
    """
    An emulator on free loopback ports; returns it (ports in ``.ports``).
    """
    from pyrf_blocks.instruments.emulator import InstrumentEmulator

    emulator = InstrumentEmulator(reactor, **settings)
    emulator.listen("127.0.0.1", 0, 0, 0)
    return emulator
