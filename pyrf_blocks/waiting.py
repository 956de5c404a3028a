"""
Waiting for something to happen: the one way Deferreds are handed out to
callers who wait.

Every place that lets callers wait — a graph being done or failing, a sink
finishing, a stream being opened, a child worker listening — hands each
caller its own Deferred, so that no caller can consume or alter what the
others receive, and a caller that cancels its Deferred only stops its own
waiting.
"""

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["Waiters", "Outcome"]


class Waiters:
    """
    Callers waiting for the next occurrence of an event.

    :meth:`wait` gives each its own Deferred; :meth:`fire` settles all of
    them (the next :meth:`wait` waits for the next occurrence).  Cancelling a
    waiter's Deferred removes it, and fails it with ``CancelledError``.
    """

    def __init__(self):
        self._waiting = []

    def __len__(self):
        return len(self._waiting)

    def wait(self):
        waiter = defer.Deferred(self._waiting.remove)
        self._waiting.append(waiter)
        return waiter

    def fire(self, result=None):
        """
        Settle every waiter with ``result``: a value, or a Failure to errback.
        """
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)


_PENDING = object()


class Outcome:
    """
    A result set once, that any number of callers wait for: each
    :meth:`wait` before or after :meth:`set` gets its own Deferred.
    """

    def __init__(self):
        self._result = _PENDING
        self._waiters = Waiters()

    @property
    def settled(self):
        return self._result is not _PENDING

    def wait(self):
        if self._result is _PENDING:
            return self._waiters.wait()
        if isinstance(self._result, Failure):
            return defer.fail(self._result)
        return defer.succeed(self._result)

    def set(self, result):
        """
        Settle with ``result`` (a value or a Failure); return it, or None for
        a Failure (so that a Deferred chain ending here handles it).
        """
        self._result = result
        self._waiters.fire(result)
        return None if isinstance(result, Failure) else result
