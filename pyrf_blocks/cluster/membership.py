"""
A worker in the cluster: registered under a kept lease (its heartbeat), and
told by a watch which computations it owns (a
:class:`~pyrf_blocks.cluster.follow.Follower`, so that a watch etcd ends is
taken up again).

The member does not run computations itself: it calls ``on_assigned(
assignment)`` and ``on_revoked(computation)`` so that the worker process can
start and stop the blocks.  When its lease is lost it revokes everything it
held, at once, and rejoins under a new lease; whatever it writes in between
is refused by the fence.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger

from .assignment import Assignments
from .follow import Follower
from .kv import Compare, Put
from .lease import KeptLease

__all__ = ["Member", "members"]

log = Logger()


async def members(coordinator, prefix="/pyrf/"):
    """``{worker: registration dict}`` of the live members."""
    kvs, _ = await coordinator.range(prefix + "members/")
    return {kv.key[len(prefix) + len("members/"):]: json.loads(kv.value) for kv in kvs}


class Member:
    """
    :param coordinator: an :class:`~pyrf_blocks.interfaces.ICoordinator`.
    :param clock: ``IReactorTime``.
    :param worker: this worker's name, unique in the cluster.
    :param address: where others reach it (its URL).
    :param on_assigned: called with each :class:`Assignment` it gains.
    :param on_revoked: called with each computation name it loses.
    :param ttl: seconds of silence after which it counts as gone.
    """

    def __init__(self, coordinator, clock, worker, address, on_assigned, on_revoked,
                 ttl=5, prefix="/pyrf/"):
        if "/" in worker or not worker:
            raise ValueError(f"a worker name is non-empty and has no '/': {worker!r}")
        self._coordinator, self._clock = coordinator, clock
        self.worker, self.address, self.ttl, self.prefix = worker, address, ttl, prefix
        self._on_assigned, self._on_revoked = on_assigned, on_revoked
        self._assignments = Assignments(coordinator, prefix)
        self.owned = {}  # computation -> Assignment
        self.lease = None
        self._follower = None
        self._stopping = False

    @property
    def key(self):
        return f"{self.prefix}members/{self.worker}"

    async def join(self):
        """Register and start following assignments."""
        self.lease = KeptLease(self._coordinator, self._clock, self.ttl, self.worker)
        lease = await self.lease.grant()
        self.lease.lost.addCallback(self._lost)
        registered, _ = await self._coordinator.txn(
            [Compare(self.key, "create", 0)],
            [Put(self.key, json.dumps({"address": self.address}).encode(), lease)])
        if not registered:
            self._stopping = True
            await self.lease.release()
            raise ValueError(f"a worker named {self.worker!r} is already in the cluster "
                             f"(choose another --name, or wait {self.ttl:g} s for a dead "
                             f"one's lease to lapse)")
        # Followed, not only watched: a watch etcd ends is taken up again.
        self._follower = Follower(self._coordinator, self._clock, self._assignments.prefix,
                               self._events)
        await self._follower.start()

    def _events(self, events):
        for event in events:
            if event.kind == "put":
                self._seen(self._assignments.parse(event.kv))
            else:
                self._gone(event.kv.key[len(self._assignments.prefix):])

    def _seen(self, assignment):
        if assignment.worker == self.worker:
            held = self.owned.get(assignment.computation)
            if held is None or held.revision < assignment.revision:
                self.owned[assignment.computation] = assignment
                self._on_assigned(assignment)
        else:
            self._gone(assignment.computation)

    def _gone(self, computation):
        if self.owned.pop(computation, None) is not None:
            self._on_revoked(computation)

    def _lost(self, why):
        if self._stopping:
            return
        for computation in sorted(self.owned):
            self._gone(computation)
        if self._follower is not None:
            self._follower.stop()
        log.warn("{worker}: membership lost ({why}); joining again", worker=self.worker, why=why)
        d = defer.ensureDeferred(self.join())
        d.addErrback(lambda f: log.failure("{worker}: could not rejoin", f, worker=self.worker))

    async def leave(self):
        """Give up every computation and leave the cluster."""
        self._stopping = True
        if self._follower is not None:
            self._follower.stop()
        for computation in sorted(self.owned):
            self._gone(computation)
        if self.lease is not None:
            await self.lease.release()
