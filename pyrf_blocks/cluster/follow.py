"""
The keys under a prefix, followed: read once, then watched, and read again
whenever the coordinator ends the watch.

etcd ends a watch when it restarts, when the connection to it breaks, and
when the revision the watch should start from was compacted away; a watcher
that only watched would then never hear of a change again (a worker would
miss the producer it waits for, a producer the consumer added after it).  A
:class:`Follower` reads the prefix again after each end and hands the
callback the *difference* from what it had delivered: a put for each key
that is new or changed, a delete for each key that is gone.  So every change
reaches the callback once, the same as through an unbroken watch, except
that changes made and undone while it was not watching are not seen at all
(a key put and deleted again in that time).
"""

from twisted.internet import defer
from twisted.logger import Logger, LogLevel

from ..backoff import Backoff
from .kv import Event, KeyValue

__all__ = ["Follower"]

log = Logger()


class Follower:
    """
    :param coordinator: an :class:`~pyrf_blocks.interfaces.ICoordinator`.
    :param clock: ``IReactorTime`` that times the retries of a read that
        failed (etcd still down).
    :param prefix: the keys followed.
    :param callback: called with each list of
        :class:`~pyrf_blocks.cluster.kv.Event`: first the keys there are
        (as puts), then every change.
    """

    def __init__(self, coordinator, clock, prefix, callback):
        self._coordinator, self._clock = coordinator, clock
        self.prefix, self._callback = prefix, callback
        #: ``{key: mod_revision}`` of the keys delivered and not deleted since.
        self.revisions = {}
        #: How many times it read the prefix again after the watch ended.
        self.resumed = 0
        self._watch = None
        self._started = None
        self._stopped = False
        self._backoff = Backoff(clock, 10 ** 9, 0.1, 2.0, level=LogLevel.warn)

    def __repr__(self):
        return f"<Follower of {self.prefix!r}>"

    def start(self):
        """
        A Deferred that fires once the keys there are have been delivered
        and the watch is set; it fails if that first read fails (later ones
        are retried until they work).
        """
        if self._started is None:
            self._started = defer.ensureDeferred(self._read_and_watch())
        return self._started

    def stop(self):
        """Follow no more."""
        self._stopped = True
        self._backoff.cancel()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    async def _read_and_watch(self):
        kvs, revision = await self._coordinator.range(self.prefix)
        if self._stopped:
            return
        self._deliver(self._difference(kvs, revision))
        watch = await self._coordinator.watch(self.prefix, self._events,
                                              start_revision=revision + 1)
        if self._stopped:
            watch.cancel()
            return
        self._watch = watch
        watch.ended.addCallback(self._ended, watch)

    def _difference(self, kvs, revision):
        present = {kv.key for kv in kvs}
        events = [Event("delete", KeyValue(key, b"", 0, revision))
                  for key in sorted(set(self.revisions) - present)]
        events.extend(Event("put", kv) for kv in sorted(kvs, key=lambda kv: kv.mod_revision)
                      if self.revisions.get(kv.key) != kv.mod_revision)
        return events

    def _events(self, events):
        self._deliver(list(events))

    def _deliver(self, events):
        for event in events:
            if event.kind == "put":
                self.revisions[event.kv.key] = event.kv.mod_revision
            else:
                self.revisions.pop(event.kv.key, None)
        if events:
            self._callback(events)

    def _ended(self, why, watch):
        if self._stopped or watch is not self._watch:
            return
        self._watch = None
        log.info("{follower}: the watch ended ({why}); reading again", follower=self, why=why)
        self._resume()

    def _resume(self):
        if self._stopped:
            return
        d = defer.ensureDeferred(self._read_and_watch())
        d.addCallbacks(self._resumed, self._failed)

    def _resumed(self, _):
        self.resumed += 1
        self._backoff.succeeded()

    def _failed(self, failure):
        if not self._stopped:
            self._backoff.retry(repr(self), failure.getErrorMessage(), self._resume)
