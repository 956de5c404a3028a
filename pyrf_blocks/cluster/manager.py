"""
The manager: publishes the cluster's computations and, while it leads,
keeps every computation on exactly one live worker.

Several managers may run; an :class:`~pyrf_blocks.cluster.election.Election`
picks the one that acts.  The leader reconciles whenever membership or
assignments change: it computes :func:`~pyrf_blocks.cluster.assignment.rebalance`
and writes only the differences, each with a transaction that fails if the
assignment changed since it was read (a deposed leader's late writes then
do nothing).  A reconciliation that fails (etcd slow to answer, or out of
reach a moment) is tried again after a backoff, and so is the start of a
leadership (publishing the computations, following members and
assignments): the change that called for it (a worker gone) may be the
last one for a long time, and a dead worker's computations would stay
where they are until the next.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger, LogLevel

from ..backoff import Backoff
from ..errors import CoordinatorError

from .assignment import Assignments, rebalance
from .election import Election
from .follow import Follower
from .membership import members

__all__ = ["Manager"]

log = Logger()


class Manager:
    """
    :param coordinator: an :class:`~pyrf_blocks.interfaces.ICoordinator`.
    :param clock: ``IReactorTime``.
    :param name: this manager's name, unique among managers.
    :param computations: ``{name: spec}``: what to run; a spec is JSON data
        that tells a worker what to build (a pipeline file's blocks).
    """

    def __init__(self, coordinator, clock, name, computations, ttl=5, prefix="/pyrf/"):
        for computation in computations:
            if "/" in computation or not computation:
                raise ValueError(f"a computation name is non-empty and has no '/': {computation!r}")
        self._coordinator, self._clock = coordinator, clock
        self.name, self.prefix = name, prefix
        self.computations = dict(computations)
        self._assignments = Assignments(coordinator, prefix)
        self.election = Election(coordinator, clock, name, self._elected, self._deposed,
                                 ttl=ttl, prefix=prefix)
        self._followers = []
        self._pending = None
        self._running = None
        self._retries = Backoff(clock, 10 ** 9, 0.1, 2.0, level=LogLevel.warn)
        #: How many assignments this manager wrote, and how many moved an
        #: assigned computation from one worker to another.
        self.assigned = 0
        self.moved = 0

    async def start(self):
        """Stand for election; act while leading."""
        await self.election.campaign()

    async def stop(self):
        self._retries.cancel()
        await self.election.resign()

    def _elected(self):
        d = defer.ensureDeferred(self._lead())
        d.addCallbacks(self._succeeded, self._lead_failed)

    def _lead_failed(self, failure):
        # A leader that follows nothing would never reconcile: start again.
        for follower in self._followers:
            follower.stop()
        del self._followers[:]
        self._failed("start leading", failure, self._elected)

    async def _lead(self):
        for computation, spec in sorted(self.computations.items()):
            await self._coordinator.put(
                f"{self.prefix}computations/{computation}", json.dumps(spec).encode())
        for prefix in (self.prefix + "members/", self._assignments.prefix):
            follower = Follower(self._coordinator, self._clock, prefix, self._changed)
            self._followers.append(follower)
            await follower.start()
        self._changed(())

    def _deposed(self, why):
        self._retries.cancel()
        for follower in self._followers:
            follower.stop()
        del self._followers[:]
        log.warn("{name}: no longer leads ({why})", name=self.name, why=why)

    def _changed(self, events):
        # Coalesce bursts of events into one reconciliation at a time.
        if self._pending is None or self._pending.called:
            self._pending = self._clock.callLater(0.05, self._reconcile_soon)

    def _reconcile_soon(self):
        if self._running is not None:
            self._running.addBoth(lambda _: self._changed(()))
            return
        self._running = defer.ensureDeferred(self.reconcile())
        self._running.addCallbacks(self._succeeded, self._reconcile_failed)

        def done(result):
            self._running = None
            return result
        self._running.addBoth(done)

    def _succeeded(self, _):
        self._retries.succeeded()

    def _reconcile_failed(self, failure):
        self._failed("reconcile", failure, self._changed, ())

    def _failed(self, what, failure, again, *args):
        """``what`` failed: ``again(*args)`` after a backoff, while this manager leads."""
        if not failure.check(CoordinatorError):
            log.failure("{name}: {what} failed", failure, name=self.name, what=what)
        if self.election.leading:
            self._retries.retry(f"{self.name}: {what}", failure.getErrorMessage(), again, *args)

    async def reconcile(self):
        """Write the assignments that differ from the rebalanced ones."""
        if not self.election.leading:
            return
        live = await members(self._coordinator, self.prefix)
        current, _ = await self._assignments.read()
        owners = {c: (current[c].worker if c in current else None) for c in self.computations}
        target = rebalance(owners, live)
        for computation, worker in sorted(target.items()):
            held = current.get(computation)
            if held is not None and held.worker == worker:
                continue
            moved = await self._assignments.move(
                computation, worker, held.revision if held else 0)
            if moved is not None:
                self.assigned += 1
                if held is not None and held.worker in live:
                    self.moved += 1
                log.info("{name}: {computation} -> {worker} (revision {revision})",
                         name=self.name, computation=computation, worker=worker,
                         revision=moved.revision)
        for computation, held in sorted(current.items()):
            if computation not in self.computations or (not live and held.worker not in live):
                await self._assignments.drop(computation, held.revision)
