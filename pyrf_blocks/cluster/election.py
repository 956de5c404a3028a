"""
Leader election on the coordinator, etcd's own recipe: the leader is the
candidate whose key ``{prefix}leader`` exists under its kept lease; a
transaction creates the key only if it is absent, and the others watch it
and try again when it goes (the leader resigned, or its lease expired).

A leader that dies costs the others at most its lease's ttl.  A campaign
that fails (the coordinator slow or unreachable a moment) is tried again
after a backoff, until the candidate leads or resigns.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger, LogLevel

from ..backoff import Backoff
from ..errors import CoordinatorError
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
        self._retries = Backoff(clock, 10 ** 9, 0.1, 2.0, level=LogLevel.warn)

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
            follower = self._follower = Follower(self._coordinator, self._clock, self.key,
                                                 self._changed)
            try:
                await follower.start()
            except BaseException:
                follower.stop()  # (its first read failed: the next try follows afresh)
                if self._follower is follower:
                    self._follower = None
                raise
            if self.key not in follower.revisions:  # it went before the read
                await self._try(lease)

    def _changed(self, events):
        if any(e.kind == "delete" and e.kv.key == self.key for e in events):
            self._stand(self._try, self.lease.id)

    def _lost(self, why):
        was_leading, self.leading = self.leading, False
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        if was_leading:
            self._on_deposed(why)
        self._stand(self.campaign)

    def _stand(self, attempt, *args):
        """
        ``attempt(*args)``: a campaign, or a try for the key under the
        lease held.  One that fails is tried again after a backoff (a
        failure logged and forgotten left a candidate that never led).
        """
        if self.leading or self._resigned:
            return
        d = defer.ensureDeferred(attempt(*args))
        d.addCallbacks(lambda _: self._retries.succeeded(), self._stand_failed)

    def _stand_failed(self, failure):
        if self._resigned:
            return
        if not failure.check(CoordinatorError):
            log.failure("{c}: campaign failed", failure, c=self.candidate)
        self._retries.retry(f"{self.candidate}: campaign", failure.getErrorMessage(),
                            self._stand_again)

    def _stand_again(self):
        lease = self.lease
        if lease is None or lease.id is None:  # (never granted)
            self._stand(self.campaign)
        elif not lease.lost.called:
            self._stand(self._try, lease.id)
        # Else the lease was lost since, and _lost stood again.

    async def resign(self):
        """Stop leading (or waiting to)."""
        self._resigned = True
        self._retries.cancel()
        if self._follower is not None:
            self._follower.stop()
        if self.lease is not None:
            await self.lease.release()
        if self.leading:
            self.leading = False
            self._on_deposed("resigned")
