"""
Few transactions, nothing acknowledged early: the buffering stage.

A :class:`Buffer` gathers the rows of many messages into one
:class:`~pyrf_blocks.storage.rows.Batch` and writes it when it holds
``max_items`` messages or its oldest message has waited
``accumulation_time`` seconds.  Only when the write has returned (the rows
are durable) are the messages acknowledged, in order.  While the store is
unreachable the batch is kept and written again with backoff, and new
messages join it; what bounds it is the source: an MQTT broker sends at
most its client's *receive maximum* of unacknowledged messages, so a
buffer waiting for its store stops the flow at the broker, where the
messages wait durably.
"""

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..backoff import Backoff
from ..errors import StoreUnavailable
from ..storage.rows import Batch

__all__ = ["Buffer"]

log = Logger()

#: Rows of marks per buffer (see :meth:`Buffer.mark`).
MARK_SLOTS = 8


class Buffer:
    """
    Rows waiting to be written, and the acknowledgements waiting for them.

    :param store: a :class:`~pyrf_blocks.storage.ThreadedStore` (or
        :class:`~pyrf_blocks.storage.InlineStore`).
    :param clock: ``IReactorTime``.
    :param max_items: messages per batch (1–2048 in a pipeline file).
    :param accumulation_time: seconds the oldest message may wait.
    :param before_write: callables ``(batch, now_ns)`` that add what they
        hold back (a policy's partial aggregates) just before a write.
    :param name: who the log lines name.
    """

    def __init__(self, store, clock, max_items=1024, accumulation_time=60.0,
                 before_write=(), name="buffer"):
        self.store = store
        self.clock = clock
        self.max_items = max_items
        self.accumulation_time = accumulation_time
        self.before_write = list(before_write)
        self.name = name
        self.batch = Batch()
        self._acks = []
        self._messages = 0
        self._marks = {}
        self._slot = 0
        self._timer = None
        self._writing = None
        self.backoff = Backoff(clock, retries=10 ** 9, initial=0.5, maximum=30.0)
        #: Messages written and acknowledged; batches written; failed writes.
        self.stats = {"messages": 0, "batches": 0, "failures": 0}

    def __repr__(self):
        return f"<Buffer {self.name} {self._messages} message(s) waiting>"

    @property
    def waiting(self):
        """
        Messages handled but not yet durable.
        """
        return self._messages + (self._writing[1] if self._writing else 0)

    def mark(self, prefix, text):
        """
        Store ``text`` with the batch of the current message, under a
        cursor key starting with ``prefix``: the marks of one batch are one
        row, ``"<write time> <text>;<text>..."``, in one of
        :data:`MARK_SLOTS` rows per buffer used in turn, so a source finds
        the marks of its last few batches (what a crash may have left
        unacknowledged) without a row per message.
        """
        self._marks.setdefault(prefix, []).append(text)

    def added(self, ack=None):
        """
        One message's rows are in :attr:`batch`; ``ack()`` is called once
        they are durable.
        """
        self._messages += 1
        if ack is not None:
            self._acks.append(ack)
        if self.backoff.pending:
            return  # the store is away: the retry writes this too
        if self._messages >= self.max_items:
            # While a write is in progress, its end writes what came meanwhile
            # (asking here again, for every message, chained a flush each).
            if self._writing is None:
                self.flush()
        elif self._timer is None:
            self._timer = self.clock.callLater(self.accumulation_time, self._due)

    def _due(self):
        self._timer = None
        self.flush()

    def flush(self):
        """
        Write what is waiting now (after a write in progress); a Deferred
        that fires when this attempt has ended: written and acknowledged,
        or failed and scheduled again.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._writing is not None:
            return self._writing[0].addCallback(lambda _: self.flush())
        self.backoff.cancel()
        now = int(self.clock.seconds() * 1e9)
        for hook in self.before_write:
            hook(self.batch, now)
        for prefix, texts in self._marks.items():
            key = f"{prefix}{self.name}:{self._slot}"
            self.batch.cursors[key] = f"{now} " + ";".join(texts)
        if self._marks:
            self._slot = (self._slot + 1) % MARK_SLOTS
            self._marks = {}
        batch, acks, messages = self.batch, self._acks, self._messages
        if not messages and not len(batch):
            done = Deferred()
            done.callback(None)
            return done
        self.batch, self._acks, self._messages = Batch(), [], 0
        writing = self.store.call(_write, self.store.store, batch)
        self._writing = (writing, messages)
        result = Deferred()

        def written(_):
            self._writing = None
            self.backoff.succeeded()
            self.stats["messages"] += messages
            self.stats["batches"] += 1
            for ack in acks:
                ack()
            if self._messages >= self.max_items:
                self.flush()
            result.callback(None)

        def failed(failure):
            self._writing = None
            self.stats["failures"] += 1
            # Put it back in front of what arrived meanwhile, and try again.
            batch.extend(self.batch)
            self.batch = batch
            self._acks = acks + self._acks
            self._messages += messages
            why = failure.getErrorMessage()
            if not failure.check(StoreUnavailable):
                log.failure("{name}: writing a batch failed", failure, name=self.name)
            self.backoff.retry(self.name, f"store unavailable: {why}", self.flush)
            result.callback(None)

        writing.addCallbacks(written, failed)
        return result


def _write(store, batch):
    """
    On the store's thread: write the batch; then make the videos whose
    windows are over from their stored frames, and write them.
    """
    import dataclasses

    from ..storage.rows import BadPayload, Batch

    pending = [video for video in batch.video if hasattr(video, "made")]
    if not pending:
        store.write(batch)
        return
    store.write(dataclasses.replace(
        batch, video=[video for video in batch.video if not hasattr(video, "made")]))
    videos = Batch()
    for video in pending:
        try:
            videos.video.append(video.made(store))
        except Exception as error:  # ffmpeg missing or failing: counted, never fatal
            videos.bad_payloads.append(BadPayload(video.topic, video.window[0], "video",
                                                  f"making the video failed: {error}"))
    store.write(videos)
