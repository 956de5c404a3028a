"""
A store's calls off the reactor thread.

Every call of an :class:`~pyrf_blocks.interfaces.IStore` blocks on disk or
on a server, so :class:`ThreadedStore` runs them on a thread pool of its
own with Twisted's ``deferToThreadPool`` and answers with Deferreds.  The
pool has one thread: writes reach the database in the order they were
asked for, and a SQLite connection is only ever used by one thread.
(``twisted.enterprise.adbapi`` would do the same for plain DB-API calls;
a store is more than a connection — blobs, COPY — so it gets the pool.)
"""

from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

__all__ = ["ThreadedStore", "InlineStore"]


class _DeferredStore:
    """
    The store's methods as Deferreds, each through :meth:`call`, which a
    subclass defines (where the call runs).
    """

    def __init__(self, store):
        self.store = store

    def __repr__(self):
        return f"<{type(self).__name__} {self.store!r}>"

    def _function(self, method):
        return method if callable(method) else getattr(self.store, method)

    def write(self, batch):
        return self.call("write", batch)

    def query(self, *args, **kwargs):
        return self.call("query", *args, **kwargs)

    def cleanup(self, *args, **kwargs):
        return self.call("cleanup", *args, **kwargs)


class ThreadedStore(_DeferredStore):
    """
    ``store``'s methods as Deferreds, run on one thread.  :meth:`close`
    stops the thread (also at reactor shutdown).

    :param reactor: the reactor the answers are delivered in.
    """

    def __init__(self, store, reactor):
        super().__init__(store)
        self.reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=f"store {store!r}")
        self._pool.start()
        self._shutdown = reactor.addSystemEventTrigger("during", "shutdown", self._stop)

    def call(self, method, *args, **kwargs):
        """
        ``store.method(*args, **kwargs)`` on the store's thread: a Deferred.
        ``method`` is a name, or a function to call there.
        """
        return deferToThreadPool(self.reactor, self._pool, self._function(method),
                                 *args, **kwargs)

    def _stop(self):
        if self._pool.started:
            self._pool.stop()

    def close(self):
        """
        Close the store on its thread, then stop the thread: a Deferred.
        """
        done = self.call("close")

        def stopped(result):
            self.reactor.removeSystemEventTrigger(self._shutdown)
            self._stop()
            return result

        return done.addBoth(stopped)


class InlineStore(_DeferredStore):
    """
    ``store``'s calls at once, on the caller's thread, answered with fired
    Deferreds: the same face as :class:`ThreadedStore` for tests that run
    on a ``task.Clock``.
    """

    def call(self, method, *args, **kwargs):
        from twisted.internet.defer import maybeDeferred

        return maybeDeferred(self._function(method), *args, **kwargs)

    def close(self):
        return self.call("close")
