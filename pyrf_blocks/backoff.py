"""
Trying again after a failure, a little later each time.

One mechanism for everything that reconnects: a stream from a worker
(:class:`~pyrf_blocks.net.client.remote_block`), a placed sink following
its worker, an instrument's connection
(:class:`~pyrf_blocks.instruments.wsa.thinkrf_analyzer`).  The delays are
Twisted's ``backoffPolicy`` (the one ``ClientService`` uses) without
jitter: ``initial`` seconds, doubled after each failure in a row, at most
``maximum``.  After ``retries`` retries in a row the next failure gives
up, and the caller fails with an error of its own that says how many
attempts were made over how long.  A success starts the count again, and
so does progress (a stream's answer cut after it delivered chunks:
:meth:`Backoff.succeeded` is called when they arrive).

Every retry is logged with who retries, why, which retry of how many, and
the delay.

A connection that was never made may be given its own count
(``first_retries``): until the caller says the thing was reached
(:meth:`Backoff.reach`), failures count against it, and from then on
against ``retries``.  An analyzer or a worker that cannot be reached at
all then fails at once (``first_retries=0``), while one lost after it
streamed is tried again.

The settings are read at each failure: an object that keeps its own
``retries`` and delays as :class:`RetrySetting` attributes can change them
while it retries, and the change takes effect at the next failure.
"""

from twisted.logger import Logger, LogLevel

__all__ = ["Backoff", "RetrySetting"]

log = Logger()


def _no_jitter():
    return 0.0


class Backoff:
    """
    Failures in a row of one thing, and when to try it again.

    :param clock: ``IReactorTime`` that schedules the retries (a
        ``task.Clock`` in tests).
    :param retries: retries after failures in a row before giving up
        (0: the first failure gives up).
    :param initial: seconds before the first retry.
    :param maximum: longest delay between two attempts, seconds.
    :param level: ``LogLevel`` of the line logged for each retry.
    :param first_retries: retries allowed before the thing was first
        reached (:meth:`reach`); ``None``: ``retries`` from the start.
    """

    def __init__(self, clock, retries, initial, maximum, level=LogLevel.error,
                 first_retries=None):
        # Imported here, not by `import pyrf_blocks`: twisted.application
        # costs 0.2 s, and only something that has started connecting needs it.
        from twisted.application.internet import backoffPolicy

        self.clock = clock
        #: The settings, read at each failure (they may change meanwhile).
        self.retries, self.initial, self.maximum = retries, initial, maximum
        self.level = level
        self.first_retries = first_retries
        #: Whether the thing was reached in this run (:meth:`reach`).
        self.reached = False
        self._policy = backoffPolicy
        #: Failed attempts in a row.
        self.failures = 0
        #: When the first of them failed (``clock.seconds()``).
        self.first_failure = None
        self._call = None

    def __repr__(self):
        return f"<Backoff {self.failures} failure(s) in a row, {self.allowed} retries allowed>"

    @property
    def connecting(self):
        """
        Whether failures count against ``first_retries``: it was given and
        the thing was not reached yet.
        """
        return self.first_retries is not None and not self.reached

    @property
    def allowed(self):
        """
        The retries allowed now: ``first_retries`` while :attr:`connecting`,
        else ``retries``.
        """
        return self.first_retries if self.connecting else self.retries

    def reach(self):
        """
        The thing was reached: from now on a failure is one lost, and
        ``retries`` count.
        """
        self.reached = True

    @property
    def elapsed(self):
        """
        Seconds since the first of the failures in a row (0 without one).
        """
        if not self.failures:
            return 0.0
        return self.clock.seconds() - self.first_failure

    def delay_of(self, failures):
        """
        Seconds before the attempt after ``failures`` failures in a row and
        one more.
        """
        policy = self._policy(self.initial, self.maximum, factor=2.0, jitter=_no_jitter)
        return policy(failures)

    @property
    def pending(self):
        """
        Whether a retry is scheduled by :meth:`retry`.
        """
        return self._call is not None and self._call.active()

    def succeeded(self):
        """
        An attempt worked: the next failure is the first of a new row.
        """
        self.failures = 0

    def failed(self, who, why):
        """
        Count a failed attempt; the delay before the next one, in seconds,
        logged naming ``who`` and ``why``; ``None`` once the retries are
        spent (nothing is logged then: the caller fails, saying so).
        """
        self.failures += 1
        if self.failures == 1:
            self.first_failure = self.clock.seconds()
        allowed = self.allowed
        if self.failures > allowed:
            return None
        delay = self.delay_of(self.failures - 1)
        log.emit(self.level, "{who}: {why}; retry {n} of {retries} in {delay:.2f} s",
                 who=who, why=why, n=self.failures, retries=allowed, delay=delay)
        return delay

    def retry(self, who, why, call, *args):
        """
        Count a failed attempt and schedule ``call(*args)`` after its delay
        (see :meth:`failed`); False, with nothing scheduled, once the
        retries are spent.
        """
        delay = self.failed(who, why)
        if delay is None:
            return False
        self.cancel()
        self._call = self.clock.callLater(delay, self._due, call, args)
        return True

    def sleep(self, who, why):
        """
        Count a failed attempt; a Deferred that fires after its delay (see
        :meth:`failed`; cancelling it stops the wait), or ``None`` once the
        retries are spent.
        """
        from twisted.internet.task import deferLater

        delay = self.failed(who, why)
        if delay is None:
            return None
        return deferLater(self.clock, delay, lambda: None)

    def cancel(self):
        """
        Forget a retry scheduled by :meth:`retry`.
        """
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _due(self, call, args):
        self._call = None
        call(*args)


class RetrySetting:
    """
    An attribute of an object that retries with a :class:`Backoff` kept in
    its attribute ``backoff`` (``None`` while it does not retry): the
    object's own value, and also the Backoff's ``setting`` (``"retries"``,
    ``"initial"`` or ``"maximum"``) once that exists, so that a value set
    while it retries takes effect at the next failure, as one set before.
    For example ``retries = RetrySetting("retries")`` in a class body.
    """

    def __init__(self, setting, backoff="_backoff"):
        self.setting = setting
        self.backoff = backoff
        self.name = None

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        try:
            return instance.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, instance, value):
        instance.__dict__[self.name] = value
        running = getattr(instance, self.backoff, None)
        if running is not None:
            setattr(running, self.setting, value)
