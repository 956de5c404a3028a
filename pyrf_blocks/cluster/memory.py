"""
The in-process coordinator: etcd's key-value model (revisions, leases,
transactions, prefix watches) in one Python process, for a cluster that
lives on one machine and for tests.

It is deliberately no more than etcd's semantics for the operations
:class:`~pyrf_blocks.interfaces.ICoordinator` names, so that membership,
assignment, election and fencing behave the same on both backends.  Leases
expire on the clock it is given (a ``task.Clock`` in unit tests).
"""

from twisted.internet import defer
from zope.interface import implementer

from ..interfaces import ICoordinator
from .kv import Delete, Event, KeyValue, Put

__all__ = ["InProcessCoordinator"]


class _Watch:
    def __init__(self, owner, prefix, callback):
        self._owner, self.prefix, self.callback = owner, prefix, callback
        self.ended = defer.Deferred()
        self._cancelled = False

    def cancel(self):
        self._cancelled = True
        if self in self._owner._watches:
            self._owner._watches.remove(self)

    def _end(self, why):
        if not self._cancelled:
            self.ended.callback(why)


@implementer(ICoordinator)
class InProcessCoordinator:
    """
    :param clock: ``IReactorTime`` that expires leases.
    """

    def __init__(self, clock):
        self._clock = clock
        self._keys = {}
        self._history = []  # every Event, for watches from a past revision
        self._revision = 1
        self._leases = {}  # id -> [ttl, expiry call]
        self._next_lease = 1
        self._watches = []
        self._deliveries = []
        self._delivering = False

    @property
    def revision(self):
        """The store's current revision."""
        return self._revision

    # Leases.

    def grant(self, ttl):
        if ttl <= 0:
            raise ValueError(f"a lease needs a ttl above 0 seconds, not {ttl!r}")
        lease, self._next_lease = self._next_lease, self._next_lease + 1
        self._leases[lease] = [ttl, self._clock.callLater(ttl, self._expire, lease)]
        return defer.succeed(lease)

    def keepalive(self, lease):
        entry = self._leases.get(lease)
        if entry is None:
            return defer.succeed(0)
        entry[1].reset(entry[0])
        return defer.succeed(entry[0])

    def revoke(self, lease):
        entry = self._leases.get(lease)
        if entry is not None:
            entry[1].cancel()
            self._expire(lease)
        return defer.succeed(None)

    def _expire(self, lease):
        del self._leases[lease]
        gone = [key for key, kv in self._keys.items() if kv.lease == lease]
        if gone:
            self._apply([Delete(key) for key in gone])

    # Keys.

    def range(self, prefix):
        kvs = [self._keys[key] for key in sorted(self._keys) if key.startswith(prefix)]
        return defer.succeed((kvs, self._revision))

    def put(self, key, value, lease=0):
        return defer.succeed(self._apply([Put(key, value, lease)]))

    def delete(self, key):
        return defer.succeed(self._apply([Delete(key)]))

    def txn(self, compare, success, failure=()):
        succeeded = all(c.holds(self._keys.get(c.key)) for c in compare)
        revision = self._apply(list(success if succeeded else failure))
        return defer.succeed((succeeded, revision))

    def _apply(self, operations):
        """Apply ``operations`` as one revision (none if nothing changes)."""
        for op in operations:
            if isinstance(op, Put) and op.lease and op.lease not in self._leases:
                raise KeyError(f"lease {op.lease} does not exist (expired or revoked)")
        events = []
        revision = self._revision + 1
        for op in operations:
            if isinstance(op, Put):
                old = self._keys.get(op.key)
                created = old.create_revision if old is not None else revision
                kv = KeyValue(op.key, bytes(op.value), created, revision, op.lease)
                self._keys[op.key] = kv
                events.append(Event("put", kv))
            elif op.key in self._keys:
                del self._keys[op.key]
                events.append(Event("delete", KeyValue(op.key, b"", 0, revision)))
        if events:
            self._revision = revision
            self._history.extend(events)
            self._deliver(events)
        return self._revision

    # Watches.

    def watch(self, prefix, callback, start_revision=0):
        watch = _Watch(self, prefix, callback)
        self._watches.append(watch)
        if start_revision:
            past = [e for e in self._history
                    if e.kv.mod_revision >= start_revision and e.kv.key.startswith(prefix)]
            if past:
                self._deliveries.append((watch, past))
                self._drain()
        return defer.succeed(watch)

    def _deliver(self, events):
        for watch in list(self._watches):
            mine = [e for e in events if e.kv.key.startswith(watch.prefix)]
            if mine:
                self._deliveries.append((watch, mine))
        self._drain()

    def _drain(self):
        # A callback that writes must not see its own events before the
        # ones already queued: deliver in order, never re-entrantly.
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._deliveries:
                watch, events = self._deliveries.pop(0)
                if watch in self._watches:
                    watch.callback(events)
        finally:
            self._delivering = False

    def end_watches(self, why):
        """
        End every watch as etcd does when it restarts or the connection to
        it breaks: each stops at once, and its ``ended`` fires with ``why``
        on the clock's next turn (as the news of a closed connection
        comes, later).
        """
        watches, self._watches = self._watches, []
        for watch in watches:
            self._clock.callLater(0, watch._end, why)

    def close(self):
        del self._watches[:]
        return defer.succeed(None)
