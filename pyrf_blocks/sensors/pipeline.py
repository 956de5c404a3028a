"""
One sensor pipeline: the stages of the seed, in order, for the messages of
its topics.

A message (topic, time, payload) goes through the active period, the
filters, the transformations of its value type and every accumulation
policy, which add rows to the pipeline's :class:`~.buffering.Buffer`.  A
bad payload becomes a ``bad_payloads`` row (topic, time, reason); a value
the filters drop is counted in :attr:`SensorPipeline.dropped`.  Either way
the message is acknowledged only with the batch it belongs to, once that
is durable.
"""

from collections import Counter

from twisted.logger import Logger

from ..errors import PayloadRejected
from ..storage.rows import BadPayload, Reading
from .buffering import Buffer
from .filters import Filters
from .period import ActivePeriod

__all__ = ["SensorPipeline"]

log = Logger()


class SensorPipeline:
    """
    :param name: how logs and errors name it (its file, usually).
    :param topics: the MQTT topics (or topic filters) it handles.
    :param filters: a :class:`~.filters.Filters` (its ``kind`` is the
        pipeline's value type).
    :param transforms: transformations, applied in order to values of
        their type.
    :param policies: accumulation policies, each given every value.
    :param period: an :class:`~.period.ActivePeriod` (default permanent).
    :param max_items: messages per batch; ``accumulation_time``: seconds
        the oldest may wait (see :class:`~.buffering.Buffer`).
    """

    def __init__(self, name, topics, filters=None, transforms=(), policies=(),
                 period=None, max_items=1024, accumulation_time=60.0):
        self.name = name
        self.topics = tuple(topics)
        self.filters = Filters() if filters is None else filters
        self.kind = self.filters.kind
        self.transforms = [t for t in transforms if t.kind == self.kind]
        self.policies = list(policies)
        self.period = ActivePeriod() if period is None else period
        self.max_items = max_items
        self.accumulation_time = accumulation_time
        self.buffer = None
        #: The stages as a file wrote them (plain data), or None (made in
        #: Python): what ``graph_to_yaml`` writes back.
        self.spec = None
        self._held = None
        #: Good values left out, by reason (``inactive``, ``whitelist``, ``rate``...).
        self.dropped = Counter()
        #: Bad payloads, by reason, since start.
        self.bad = Counter()

    def __repr__(self):
        return f"<SensorPipeline {self.name} {', '.join(self.topics)}>"

    def start(self, store, clock):
        """
        Write through ``store`` (a ThreadedStore or InlineStore) on ``clock``.
        """
        self.buffer = Buffer(store, clock, self.max_items, self.accumulation_time,
                             before_write=[p.flush for p in self.policies],
                             name=f"sensor pipeline {self.name}")
        return self.buffer

    def hold(self):
        """
        Keep the messages received from now on aside, unprocessed, until
        :meth:`release` (while a pipeline it replaces writes its last
        batch and this one restores its state).
        """
        if self._held is None:
            self._held = []

    def release(self):
        """
        Process the messages held since :meth:`hold`, in order.
        """
        held, self._held = self._held, None
        for message in held or ():
            self.receive(*message)

    def restore(self, store):
        """
        Continue from what ``store`` (an IStore; blocking) holds: each
        policy's open window of each topic.
        """
        for policy in self.policies:
            if hasattr(policy, "restore"):
                for topic in self.topics:
                    policy.restore(store, topic)

    def get_state(self):
        """
        What the stages remember between messages (the filters' and each
        policy's) and the counts, msgpack-encodable; not the rows waiting
        in the buffer, which a caller lets become durable first.
        """
        return {"filters": self.filters.get_state(),
                "policies": [p.get_state() if hasattr(p, "get_state") else None
                             for p in self.policies],
                "dropped": dict(self.dropped), "bad": dict(self.bad)}

    def set_state(self, state):
        """Remember again what :meth:`get_state` returned (the same stages)."""
        if len(state["policies"]) != len(self.policies):
            raise ValueError(f"sensor pipeline {self.name}: a state of "
                             f"{len(state['policies'])} policies for {len(self.policies)}")
        self.filters.set_state(state["filters"])
        for policy, saved in zip(self.policies, state["policies"]):
            if saved is not None:
                policy.set_state(saved)
        self.dropped, self.bad = Counter(state["dropped"]), Counter(state["bad"])

    def receive(self, topic, time, payload, ack=None, mark=None):
        """
        Handle one message: ``payload`` bytes of ``topic`` at ``time`` (ns,
        strictly increasing per topic); ``ack()`` is called once its effect
        is durable; ``mark`` (prefix, text) is stored with it (see
        :meth:`.Buffer.mark`).
        """
        if self._held is not None:
            self._held.append((topic, time, payload, ack, mark))
            return
        batch = self.buffer.batch
        if mark is not None:
            self.buffer.mark(*mark)
        if not self.period.active(time):
            self.dropped["inactive"] += 1
        else:
            try:
                value, reason = self.filters.check(topic, time, payload)
                if reason is not None:
                    self.dropped[reason] += 1
                else:
                    for transform in self.transforms:
                        value = transform.apply(value, topic, time)
                    reading = Reading(topic, time, self.kind, value)
                    for policy in self.policies:
                        policy.take(reading, batch)
            except PayloadRejected as rejected:
                self.bad[rejected.reason] += 1
                batch.bad_payloads.append(BadPayload(topic, time, rejected.reason,
                                                     rejected.detail))
            except Exception as error:  # a stage's own bug must not stop the others
                log.failure("sensor pipeline {name}: a message of {topic} failed",
                            name=self.name, topic=topic)
                self.bad["error"] += 1
                batch.bad_payloads.append(BadPayload(topic, time, "error",
                                                     f"{type(error).__name__}: {error}"))
        self.buffer.added(ack)

    def flush(self):
        """
        Write what waits now: a Deferred (see :meth:`.Buffer.flush`).
        """
        return self.buffer.flush()

    def retention(self):
        """
        ``{topic: count}`` that cleanup keeps in ``n_records``.
        """
        counts = [p.count for p in self.policies if p.table == "n_records"]
        return {topic: max(counts) for topic in self.topics} if counts else {}
