"""
Leader election on the coordinator, etcd's own recipe: the leader is the
candidate whose key ``{prefix}leader`` exists under its kept lease; a
transaction creates the key only if it is absent, and the others watch it
and try again when it goes (the leader resigned, or its lease expired).

A leader that dies costs the others at most its lease's ttl.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger

from .follow import Follower
from .kv import Compare, Put
from .lease import KeptLease

__all__ = ["Election", "leader"]

log = Logger()


async def leader(coordinator, prefix="/pyrf/"):
    """The name of the current leader, or None."""
    kvs, _ = await coordinator.range(prefix + "leader")
    kvs = [kv for kv in kvs if kv.key == prefix + "leader"]
    return json.loads(kvs[0].value)["candidate"] if kvs else None


class Election:
    """
    :param coordinator: an :class:`~pyrf_blocks.interfaces.ICoordinator`.
    :param clock: ``IReactorTime``.
    :param candidate: this candidate's name.
    :param on_elected: called (no arguments) when it becomes leader.
    :param on_deposed: called with the reason when it stops being leader.
    """

    def __init__(self, coordinator, clock, candidate, on_elected, on_deposed,
                 ttl=5, prefix="/pyrf/"):
        self._coordinator, self._clock = coordinator, clock
        self.candidate, self.ttl = candidate, ttl
        self.key = prefix + "leader"
        self._on_elected, self._on_deposed = on_elected, on_deposed
        self.leading = False
        self.lease = None
        self._follower = None
        self._resigned = False

    async def campaign(self):
        """Stand; returns once this candidate leads or waits for its turn."""
        self.lease = KeptLease(self._coordinator, self._clock, self.ttl, self.candidate)
        lease = await self.lease.grant()
        self.lease.lost.addCallback(self._lost)
        await self._try(lease)

    async def _try(self, lease):
        value = json.dumps({"candidate": self.candidate}).encode()
        won, _ = await self._coordinator.txn(
            [Compare(self.key, "create", 0)], [Put(self.key, value, lease)])
        if won:
            self.leading = True
            log.info("{candidate} leads", candidate=self.candidate)
            self._on_elected()
            return
        if self._follower is None:
            # Followed, not only watched: a watch etcd ends is taken up again.
            self._follower = Follower(self._coordinator, self._clock, self.key, self._changed)
            await self._follower.start()
            if self.key not in self._follower.revisions:  # it went before the read
                await self._try(lease)

    def _changed(self, events):
        if self.leading or self._resigned:
            return
        if any(e.kind == "delete" and e.kv.key == self.key for e in events):
            d = defer.ensureDeferred(self._try(self.lease.id))
            d.addErrback(lambda f: log.failure("{c}: campaign failed", f, c=self.candidate))

    def _lost(self, why):
        was_leading, self.leading = self.leading, False
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        if was_leading:
            self._on_deposed(why)
        if not self._resigned:
            d = defer.ensureDeferred(self.campaign())
            d.addErrback(lambda f: log.failure("{c}: campaign failed", f, c=self.candidate))

    async def resign(self):
        """Stop leading (or waiting to)."""
        self._resigned = True
        if self._follower is not None:
            self._follower.stop()
        if self.lease is not None:
            await self.lease.release()
        if self.leading:
            self.leading = False
            self._on_deposed("resigned")
