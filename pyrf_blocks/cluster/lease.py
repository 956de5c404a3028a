"""
A lease kept alive while its holder lives: the heartbeat of a worker's
membership and of a manager's leadership.

It is renewed every third of its ttl, so two renewals may fail (a slow
etcd, a short pause) before it expires.  When a renewal finds it expired,
``lost`` fires and the holder must act as one that owns nothing: its keys
are already gone, and the fencing revision stops its late writes.

**Off the hot path.**  On etcd (a coordinator with ``keepalive_blocking``)
the renewals are made by a thread of their own, with a blocking HTTP
request, so a reactor busy with a long chunk, or slow to get the CPU on
a loaded machine, does not starve them: the request, etcd's answer and its
parsing no longer wait for reactor turns.  The reactor only has to show
that it still turns: a call every sixth of the ttl notes the time, and
the thread stops renewing (and lets the lease lapse) once the reactor has
not turned for a whole ttl — a hung process must still lose its
computations, as a dead one does.  So a holder keeps its lease through any
reactor stall shorter than about 1.15 ttl (renewed on the reactor, a stall
of two thirds of the ttl could lose it), while SIGSTOP, a crash or a cut
network lose it within the ttl, as before.  Clocks that are not reactors
(``task.Clock`` in tests) and coordinators without a blocking keepalive
renew on the reactor, as before.
"""

import threading
import time

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
    :param in_thread: renew in a thread of its own (the default where the
        coordinator and clock allow it), or on the reactor (``False``).
    """

    def __init__(self, coordinator, clock, ttl, who, in_thread=None):
        self._coordinator, self._clock, self.ttl, self.who = coordinator, clock, ttl, who
        self.id = None
        self.lost = defer.Deferred()
        self.renewals = 0
        #: Wall-clock time of the last renewal (or grant) that succeeded.
        self.renewed_at = None
        self._loop = None
        self._thread = None
        self._stopped = threading.Event()
        self._turned_at = time.monotonic()
        self._hung = False
        self._in_thread = in_thread

    async def grant(self):
        """Take the lease and start renewing it; return its id."""
        self.id = await self._coordinator.grant(self.ttl)
        self.renewed_at = self._clock.seconds()
        blocking = getattr(self._coordinator, "keepalive_blocking", None)
        in_thread = (blocking is not None and hasattr(self._clock, "callFromThread")
                     and self._in_thread is not False)
        # On the reactor: the renewal itself, or only the proof that it turns.
        self._loop = task.LoopingCall(self._turned if in_thread else self._renew)
        self._loop.clock = self._clock
        self._loop.start(self.ttl / (6.0 if in_thread else 3.0), now=in_thread)
        if in_thread:
            self._thread = threading.Thread(target=self._renewing, args=(blocking,),
                                            name=f"lease of {self.who}", daemon=True)
            self._thread.start()
        return self.id

    # On the reactor.

    def _renew(self):
        d = self._coordinator.keepalive(self.id)
        return d.addCallbacks(self._renewed, self._failed)

    def _renewed(self, left):
        self.renewals += 1
        if left > 0:
            self.renewed_at = self._clock.seconds()
        else:
            self._lose("expired")

    def _failed(self, failure):
        # A missed renewal is not yet a lost lease: the next may succeed.
        log.warn("{who}: lease renewal failed: {why}", who=self.who,
                 why=failure.getErrorMessage())

    def _turned(self):
        self._turned_at = time.monotonic()
        if self._hung:
            self._hung = False
            log.warn("{who}: the reactor turns again; renewing the lease", who=self.who)

    # In the renewal thread.

    def _renewing(self, keepalive):
        interval = self.ttl / 3.0
        stopped = self._stopped
        due = time.monotonic() + interval
        while not stopped.wait(max(0.0, due - time.monotonic())):
            # Every third of the ttl; a slow answer (a loaded machine, a busy
            # etcd) delays the next renewal rather than failing this one.
            due = time.monotonic() + interval
            stalled = time.monotonic() - self._turned_at
            if stalled > self.ttl:
                if not self._hung:
                    self._hung = True
                    log.warn("{who}: the reactor has not turned for {stalled:.1f} s (ttl "
                             "{ttl:g} s): not renewing the lease", who=self.who,
                             stalled=stalled, ttl=self.ttl)
                continue
            try:
                left = keepalive(self.id, timeout=self.ttl)
            except Exception as error:
                log.warn("{who}: lease renewal failed: {why}", who=self.who, why=error)
                continue
            if stopped.is_set():
                return
            self.renewals += 1
            if left > 0:
                self.renewed_at = self._clock.seconds()
            else:
                self._clock.callFromThread(self._lose, "expired")
                return

    # Either way.

    def _lose(self, why):
        self._stop_loop()
        if not self.lost.called:
            log.warn("{who}: lease {lease} {why}", who=self.who, lease=self.id, why=why)
            self.lost.callback(why)

    def _stop_loop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._stopped.set()

    async def release(self):
        """Stop renewing and revoke the lease (its keys go at once)."""
        self._stop_loop()
        if self.id is not None and not self.lost.called:
            try:
                await self._coordinator.revoke(self.id)
            finally:
                self.lost.callback("released")
