"""
One result that any number of callers wait for.
"""

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["Outcome"]

_PENDING = object()


class Outcome:
    """
    A result set once; :meth:`wait` gives each caller its own Deferred, so
    no caller can consume or alter what the others receive.
    """

    def __init__(self):
        self._result = _PENDING
        self._waiters = []

    @property
    def settled(self):
        return self._result is not _PENDING

    def wait(self):
        if self._result is _PENDING:
            waiter = defer.Deferred()
            self._waiters.append(waiter)
            return waiter
        if isinstance(self._result, Failure):
            return defer.fail(self._result)
        return defer.succeed(self._result)

    def set(self, result):
        """
        Settle with ``result`` (a value or a Failure); return it.
        """
        self._result = result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        return None if isinstance(result, Failure) else result
