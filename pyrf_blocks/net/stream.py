"""
The producing side of a stream that crosses a boundary.

A :class:`ServedStream` is the consumer of one block on behalf of one remote
reader.  It keeps every chunk the reader has not acknowledged yet and
answers long polls (``GET /streams/{id}?after={seq}&wait={s}``): a poll is
held until chunks newer than ``after`` exist, then every waiting chunk goes
in one answer (up to a byte limit), or ``204`` when ``wait`` runs out.
Under the ``block`` policy a full backlog pauses the block, so a slow
reader slows the producer across the process boundary; under
``drop_oldest`` and ``latest`` the oldest unsent chunks are dropped and
counted.
"""

from collections import deque

from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from ..chunk import encode_chunk
from ..graph import check_policy
from ..interfaces import IChunkConsumer
from .replies import HTTPError, error_reply
from .wire import CONTENT_TYPE, stream_headers

__all__ = ["ServedStream", "poll_arguments", "MAX_WAIT", "DEFAULT_WAIT",
           "MAX_BATCH_BYTES"]

log = Logger()

#: Longest a poll may be held, seconds.
MAX_WAIT = 60.0
#: How long a poll is held when the reader does not say.
DEFAULT_WAIT = 20.0
#: An answer stops adding chunks once it holds this many bytes (it always
#: carries at least one).
MAX_BATCH_BYTES = 16 << 20
#: A stream nobody has polled for this long (beyond its last poll's wait)
#: is closed, so a reader that vanished does not hold its block forever.
IDLE_TIMEOUT = 120.0
#: Most unacknowledged chunks a reader may ask a stream to keep.
MAX_MAXSIZE = 1024
#: Under ``block``, a backlog of this many bytes of samples also pauses the
#: block, however few chunks it holds: small chunks get a deep window (many
#: per answer), large ones a bounded memory.
MAX_BACKLOG_BYTES = 32 << 20
#: Chunks the edge between the block and the stream may hold while paused.
_EDGE_MAXSIZE = 2


def _argument(request, name, convert, default):
    values = request.args.get(name.encode())
    if not values:
        return default
    text = values[-1].decode("ascii", "replace")
    try:
        return convert(text)
    except ValueError:
        raise HTTPError(400, f"query parameter {name}={text!r} is not "
                             f"{'an integer' if convert is int else 'a number'}") from None


def poll_arguments(request):
    """
    The ``after`` cursor and ``wait`` time of a poll; 400 when malformed.
    """
    after = _argument(request, "after", int, -1)
    wait = _argument(request, "wait", float, DEFAULT_WAIT)
    if after < -1:
        raise HTTPError(400, f"after={after} must be -1 (nothing read yet) or a seq")
    if not 0 <= wait <= MAX_WAIT:
        raise HTTPError(400, f"wait={wait!r} must be between 0 and {MAX_WAIT:g} seconds")
    return after, wait


class _Entry:
    __slots__ = ("seq", "chunk", "encoded", "nbytes")

    def __init__(self, seq, chunk):
        self.seq = seq
        self.chunk = chunk
        self.encoded = None
        self.nbytes = chunk.data.nbytes

    def encode(self):
        if self.encoded is None:
            chunk = self.chunk
            if chunk.seq != self.seq:
                chunk = chunk.replace(seq=self.seq)
            self.encoded = encode_chunk(chunk)
            self.chunk = None  # the bytes are all that is needed from now on
        return self.encoded


@implementer(IChunkConsumer)
class ServedStream:
    """
    One block's output, kept for one remote reader until acknowledged.

    :param stream_id: the ``{id}`` of the stream's URL.
    :param block: the producing block; the stream subscribes at once.
    :param clock: ``IReactorTime`` that times held polls out.
    :param policy: ``"block"``, ``"drop_oldest"`` or ``"latest"``.
    :param maxsize: most unacknowledged chunks kept (at most
        :data:`MAX_MAXSIZE`).  Under ``block`` the block is also paused
        while the backlog holds ``max_backlog_bytes`` of samples.
    :param on_close: called when the stream closes itself, its reader
        having been silent for :data:`IDLE_TIMEOUT` seconds.

    Chunks are numbered from 0 in the order the stream received them; a
    gap in the numbers is a drop.
    """

    def __init__(self, stream_id, block, clock, policy="block", maxsize=None,
                 max_batch_bytes=MAX_BATCH_BYTES, on_close=None,
                 max_backlog_bytes=MAX_BACKLOG_BYTES):
        self.id = stream_id
        self.block = block
        self.kind = block.kind
        self.clock = clock
        self.policy = policy
        self.maxsize = check_policy(policy, maxsize)
        if self.maxsize > MAX_MAXSIZE:
            raise ValueError(f"maxsize must be at most {MAX_MAXSIZE}, got {maxsize!r}")
        self.max_batch_bytes = max_batch_bytes
        self.max_backlog_bytes = max_backlog_bytes
        self._backlog_bytes = 0
        self.ended = False
        self.closed = False
        self.error = None
        self.dropped = 0
        self.chunks_out = self.bytes_out = 0
        self.acknowledged = -1
        self._backlog = deque()
        self._next_seq = 0
        self._sent_upto = -1
        self._holding = False
        self._polls = []
        self._on_close = on_close
        self._idle = None
        self._expect_poll(0)
        self.edge = None
        block.subscribe(self, "block", _EDGE_MAXSIZE)

    def __repr__(self):
        return f"<ServedStream {self.id} of {self.block!r} {self.policy}/{self.maxsize}>"

    @property
    def stats(self):
        return {"id": self.id, "block": self.block.name, "kind": self.kind,
                "policy": self.policy, "maxsize": self.maxsize,
                "backlog": len(self._backlog), "backlog_bytes": self._backlog_bytes,
                "next_seq": self._next_seq,
                "acknowledged": self.acknowledged, "chunks_out": self.chunks_out,
                "bytes_out": self.bytes_out, "dropped": self.dropped,
                "paused": self._holding, "ended": self.ended,
                "waiting_polls": len(self._polls)}

    # IChunkConsumer: the block's edge feeds the stream.

    def registerProducer(self, producer, streaming):
        self.edge = producer

    def unregisterProducer(self):
        self.edge = None

    def write(self, chunk):
        backlog = self._backlog
        entry = _Entry(self._next_seq, chunk)
        backlog.append(entry)
        self._backlog_bytes += entry.nbytes
        self._next_seq += 1
        if self.policy == "block":
            # Every chunk will be sent: encode it now, while the reader is
            # busy with the previous answer, not when its poll arrives.
            entry.encode()
            full = (len(backlog) >= self.maxsize
                    or self._backlog_bytes >= self.max_backlog_bytes)
            if full and not self._holding and self.edge:
                self._holding = True
                self.edge.pauseProducing()
        else:
            while len(backlog) > self.maxsize:
                dropped = backlog.popleft()
                self._backlog_bytes -= dropped.nbytes
                if dropped.seq > self._sent_upto:
                    self.dropped += 1
        self._answer_polls()

    def end_of_stream(self):
        self.ended = True
        self._answer_polls()

    # The reader's side.

    def poll(self, request, after, wait):
        """
        Answer a ``GET`` of the stream: acknowledge up to ``after``, then
        send what is newer, or hold the request up to ``wait`` seconds.
        """
        if self.error is not None:
            return error_reply(request, 500, self.error)
        if self.closed:
            return error_reply(request, 410, f"stream {self.id} is closed")
        if after >= self._next_seq:
            return error_reply(request, 400, f"after={after} is beyond the newest "
                                             f"chunk of stream {self.id} "
                                             f"({self._next_seq - 1})")
        if after < self.acknowledged and self.policy == "block":
            return error_reply(request, 409, f"after={after}: stream {self.id} "
                                             f"was acknowledged up to "
                                             f"{self.acknowledged} already")
        self._acknowledge(after)
        self._expect_poll(wait)
        if self._newer(after) or self.ended or wait == 0:
            self._send(request, after)
            return NOT_DONE_YET
        poll = [request, after, None]
        poll[2] = self.clock.callLater(wait, self._timed_out, poll)
        self._polls.append(poll)
        request.notifyFinish().addErrback(lambda _: self._forget(poll))
        return NOT_DONE_YET

    def close(self):
        """
        The reader is done: unsubscribe from the block and refuse later polls.
        """
        if self.closed:
            return
        self.closed = True
        self._backlog_bytes = 0
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._backlog.clear()
        if self.edge is not None:
            self.block.unsubscribe(self.edge)
        for request, _, timer in self._take_polls():
            timer.cancel()
            request.write(error_reply(request, 410, f"stream {self.id} is closed"))
            request.finish()

    def fail(self, message):
        """
        The producing graph failed: every poll from now on gets ``message``.
        """
        self.error = message
        for request, _, timer in self._take_polls():
            timer.cancel()
            request.write(error_reply(request, 500, message))
            request.finish()

    def _expect_poll(self, wait):
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = self.clock.callLater(wait + IDLE_TIMEOUT, self._abandoned)

    def _abandoned(self):
        if self._polls:
            self._expect_poll(0)
            return
        log.warn("{stream}: no poll for {idle:g} s; closing it", stream=self,
                 idle=IDLE_TIMEOUT)
        self.close()
        if self._on_close is not None:
            self._on_close(self)

    def _acknowledge(self, after):
        backlog = self._backlog
        while backlog and backlog[0].seq <= after:
            self._backlog_bytes -= backlog.popleft().nbytes
        if after > self.acknowledged:
            self.acknowledged = after
        if (self._holding and len(backlog) <= self.maxsize // 2
                and self._backlog_bytes <= self.max_backlog_bytes // 2):
            self._holding = False
            if self.edge is not None:
                self.edge.resumeProducing()

    def _newer(self, after):
        return bool(self._backlog) and self._backlog[-1].seq > after

    def _take_polls(self):
        polls, self._polls = self._polls, []
        return polls

    def _forget(self, poll):
        if poll in self._polls:
            self._polls.remove(poll)
            poll[2].cancel()

    def _timed_out(self, poll):
        if poll in self._polls:
            self._polls.remove(poll)
            self._send(poll[0], poll[1])

    def _answer_polls(self):
        for request, after, timer in self._take_polls():
            timer.cancel()
            self._send(request, after)

    def _send(self, request, after):
        pieces, size = [], 0
        for entry in self._backlog:
            if entry.seq <= after:
                continue
            piece = entry.encode()
            if pieces and size + len(piece) > self.max_batch_bytes:
                break
            pieces.append((entry.seq, piece))
            size += len(piece)
        last = pieces[-1][0] if pieces else None
        ended = self.ended and (last is None or last == self._next_seq - 1)
        headers = stream_headers(self.kind, pieces[0][0] if pieces else None,
                                 last, self.dropped, ended)
        for name, value in headers.items():
            request.setHeader(name, value)
        if not pieces:
            request.setResponseCode(204)
            request.finish()
            return
        request.setHeader(b"content-type", CONTENT_TYPE)
        request.setHeader(b"content-length", b"%d" % size)
        for _, piece in pieces:
            request.write(piece)
        request.finish()
        self._sent_upto = max(self._sent_upto, last)
        self.chunks_out += len(pieces)
        self.bytes_out += size
