"""
A lease kept alive while its holder lives: the heartbeat of a worker's
membership and of a manager's leadership.

It is renewed every third of its ttl, so two renewals may fail (a slow
etcd, a short pause) before it expires.  When a renewal finds it expired,
``lost`` fires and the holder must act as one that owns nothing: its keys
are already gone, and the fencing revision stops its late writes.
"""

from twisted.internet import defer, task
from twisted.logger import Logger

__all__ = ["KeptLease"]

log = Logger()


class KeptLease:
    """
    :param coordinator: an :class:`~pyrf_blocks.interfaces.ICoordinator`.
    :param clock: ``IReactorTime`` that paces the renewals.
    :param ttl: seconds the lease lives without a renewal.
    :param who: how log lines name the holder.
    """

    def __init__(self, coordinator, clock, ttl, who):
        self._coordinator, self._clock, self.ttl, self.who = coordinator, clock, ttl, who
        self.id = None
        self.lost = defer.Deferred()
        self.renewals = 0
        #: Wall-clock time of the last renewal (or grant) that succeeded.
        self.renewed_at = None
        self._loop = None

    async def grant(self):
        """Take the lease and start renewing it; return its id."""
        self.id = await self._coordinator.grant(self.ttl)
        self.renewed_at = self._clock.seconds()
        self._loop = task.LoopingCall(self._renew)
        self._loop.clock = self._clock
        self._loop.start(self.ttl / 3.0, now=False)
        return self.id

    def _renew(self):
        d = self._coordinator.keepalive(self.id)

        def renewed(left):
            self.renewals += 1
            if left > 0:
                self.renewed_at = self._clock.seconds()
            if left <= 0:
                self._lose("expired")

        def failed(failure):
            # A missed renewal is not yet a lost lease: the next may succeed.
            log.warn("{who}: lease renewal failed: {why}", who=self.who,
                     why=failure.getErrorMessage())
        return d.addCallbacks(renewed, failed)

    def _lose(self, why):
        self._stop_loop()
        if not self.lost.called:
            log.warn("{who}: lease {lease} {why}", who=self.who, lease=self.id, why=why)
            self.lost.callback(why)

    def _stop_loop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    async def release(self):
        """Stop renewing and revoke the lease (its keys go at once)."""
        self._stop_loop()
        if self.id is not None and not self.lost.called:
            try:
                await self._coordinator.revoke(self.id)
            finally:
                self.lost.callback("released")
