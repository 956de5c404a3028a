"""
The producing side of a stream that crosses a boundary.

A :class:`ServedStream` is the consumer of one block on behalf of one remote
reader.  It keeps every chunk the reader has not acknowledged yet and
answers long polls (``GET /streams/{id}?after={seq}&wait={s}``): a poll is
held until chunks newer than ``after`` exist, then every waiting chunk goes
in one answer (up to a byte limit), or ``204`` when ``wait`` runs out.
With ``linger={s}`` the answer of a ``block`` stream stays open after
those chunks and carries each new chunk the moment the block emits it,
until half the reader's window is in flight, ``linger`` seconds have
passed or the stream ends; the reader's next poll acknowledges it.  Chunks go out one at a time as the
connection drains, so a slow network holds them here, where the policy
applies: under ``block`` a full backlog pauses the block, so a slow reader
slows the producer across the process boundary; under ``drop_oldest`` and
``latest`` the oldest unsent chunks are dropped and counted.

Chunks keep the ``seq`` their output gave them: a stream opened while the
block is at seq 1000 starts there, and a cursor names the same chunk on
any worker serving that output.  The backlog's seqs need not be
consecutive (a relay of a lossy stream forwards its gaps), so a cursor is
looked up by bisection.

Each stream draws a random :attr:`~ServedStream.instance` when it is
opened and says it in every answer (``X-Pyrf-Stream-Instance``); a poll
that names another instance (``?instance=``) is refused with ``410`` before
it acknowledges anything, so a reader that outlived its worker never reads,
or discards, the stream of whoever opened the same id on the new one.

A stream that nobody has polled yet holds its block paused (under
``block``) for at most :data:`FIRST_POLL_TIMEOUT` seconds: a reader polls
at once when its ``POST`` is answered, and one that lost that answer and
never came back must not stall the block's other consumers for the whole
:data:`IDLE_TIMEOUT`.  (A reader that retries the ``POST`` with the same
``key`` gets this stream, not a new one: see :mod:`.worker`.)
"""

import bisect
import re
import secrets
from collections import deque
from operator import attrgetter

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from ..chunk import ChunkStreamDecoder, MetaPacker, RingHead, chunk_packer, encode_chunk
from ..edge import check_policy
from ..errors import HTTPError
from ..interfaces import IChunkConsumer, IOutput
from . import shm
from .replies import error_reply
from .wire import CONTENT_TYPE, INSTANCE, stream_headers

__all__ = ["ServedStream", "poll_arguments", "seconds_argument", "instance_argument",
           "shm_argument", "MAX_WAIT", "DEFAULT_WAIT", "MAX_BATCH_BYTES", "FIRST_POLL_TIMEOUT"]

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
#: A stream never polled since it was opened is closed after this many
#: seconds (its reader lost the answer to its ``POST`` and did not retry).
FIRST_POLL_TIMEOUT = 20.0
#: Most unacknowledged chunks a reader may ask a stream to keep.
MAX_MAXSIZE = 1024
#: Under ``block``, a backlog of this many bytes of samples also pauses the
#: block, however few chunks it holds: small chunks get a deep window (many
#: per answer), large ones a bounded memory.
MAX_BACKLOG_BYTES = 32 << 20
#: A lingering answer is given only while fewer bytes than this wait.
LINGER_BELOW = 256 << 10
#: When a chunk finds its ring full (the reader has not released enough of
#: it), a stream sends that chunk in the body and holds its block, looking
#: again this often, seconds, until half the ring is free.  After
#: :data:`RING_PATIENCE` it lets the block go on, chunks going in the body
#: until the ring has drained (a consumer that keeps its chunks, a
#: collector say, must not stall the stream).  (Holding the block earlier,
#: to keep the chunks cycling through a few MiB still in the caches, cost
#: more on the seed's split than it saved.)
RING_CHECK = 0.001
RING_PATIENCE = 0.25
#: A block held for a full window looks at what its reader released in
#: the ring :data:`RING_CHECK` s after it was held, and again
#: :data:`RING_CHECK` s later; then, while the reader releases chunks, about
#: halfway to when it should have released enough for the block to go on,
#: and while it releases none, twice as long as the last time; never later
#: than this, seconds.  (Looking every millisecond woke the seed split's
#: parent, whose instruments wait for their children most of the time,
#: some 300 times per 1000 chunks, each time on a core a child was
#: computing on.)
RELEASE_CHECK_MAX = 0.008
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
    The ``after`` cursor, ``wait`` and ``linger`` times of a poll; 400 when
    malformed.
    """
    after = _argument(request, "after", int, -1)
    if after < -1:
        raise HTTPError(400, f"after={after} must be -1 (nothing read yet) or a seq")
    return after, seconds_argument(request, "wait", DEFAULT_WAIT), \
        seconds_argument(request, "linger", 0.0)


_INSTANCE = re.compile(r"[0-9a-f]{1,64}\Z")


def instance_argument(request):
    """
    The stream instance a poll names (``?instance=``), or ``None``; 400
    when malformed.
    """
    values = request.args.get(b"instance")
    if not values:
        return None
    text = values[-1].decode("ascii", "replace")
    if not _INSTANCE.match(text):
        raise HTTPError(400, f"instance={text!r} is not a stream instance "
                             "(hexadecimal, as X-Pyrf-Stream-Instance gives it)")
    return text


def shm_argument(request):
    """
    How a poll's reader maps the stream's ring (``?shm=``): 0, it does
    not (the default); 1, chunks there come as maps with ``x``; 2, as
    short heads.  400 for anything else.
    """
    values = request.args.get(b"shm")
    if not values:
        return 0
    if values[-1] not in (b"0", b"1", b"2"):
        raise HTTPError(400, f"shm={values[-1].decode('ascii', 'replace')!r} must be 0, 1 "
                             "(arrays in the ring, heads as maps) or 2 (short heads)")
    return int(values[-1])


def seconds_argument(request, name, default):
    """
    A time in seconds given as ``?{name}=``, up to :data:`MAX_WAIT`; 400
    when malformed or out of range.
    """
    value = _argument(request, name, float, default)
    if not 0 <= value <= MAX_WAIT:
        raise HTTPError(400, f"{name}={value!r} must be between 0 and {MAX_WAIT:g} seconds")
    return value


class _Entry:
    __slots__ = ("seq", "chunk", "encoded", "nbytes", "head", "meta", "ring", "count", "upto")

    def __init__(self, chunk):
        self.seq = chunk.seq
        self.chunk = chunk
        self.encoded = None
        self.nbytes = chunk.data.nbytes
        #: Chunks, and bytes of samples, the stream kept up to this one
        #: (set by the stream): the window in flight is a difference.
        self.count = self.upto = 0
        #: The chunk's head (:class:`~pyrf_blocks.chunk.RingHead`) when its
        #: array is in the stream's ring, that ring, and ``(key, bytes)`` of
        #: its meta (:class:`~pyrf_blocks.chunk.MetaPacker`).
        self.head = self.ring = self.meta = None

    def share(self, ring, metas):
        """
        Place the chunk's array in ``ring`` (copied, unless the ring lent
        it) and make its head; False if the ring has no room for it now
        (or it is records).
        """
        seq = self.seq
        head = RingHead.place(self.chunk, lambda array: ring.put(array, seq))
        if head is None:
            return False
        self.meta = metas.key(self.chunk.meta)
        # The ring holds the array now: a buffer it lent is free for the
        # reader to release as soon as the block lets it go.
        self.head, self.chunk, self.ring = head, None, ring
        return True

    def encode(self, packer, shared=0, meta=None):
        """
        The chunk's bytes for an answer: with its array in the ring when the
        reader maps it and the ring holds it (``shared``: 1, its head a map;
        2, a short head, without its meta when ``meta`` -- the key of the
        meta of the chunk before it in the answer -- is the chunk's), else
        whole.
        """
        head = self.head
        if shared and head is not None:
            if shared == 2:
                key, packed = self.meta
                short = head.short(None if key == meta else packed)
                if short is not None:
                    return short
            return head.map(packer)
        if self.encoded is None:
            chunk = self.chunk
            if chunk is None:  # shared, for a reader that asks for the body
                decoder = ChunkStreamDecoder(ring=self.ring)
                chunk = decoder.feed(head.map(packer))[0]
            self.encoded = encode_chunk(chunk, packer)
            self.chunk = None  # the bytes are all that is needed from now on
        return self.encoded

    def meta_key(self, shared):
        """
        What :meth:`encode` takes as ``meta`` for the chunk after this one
        in an answer (``None``: it carries its meta).
        """
        return self.meta[0] if shared and self.head is not None else None


#: A lingering answer joins chunks smaller than this that are waiting
#: together into one write (bigger ones are written as they are, uncopied).
_JOIN_BELOW = 64 << 10
_SEQ = attrgetter("seq")


@implementer(IPushProducer)
class _Answer:
    """
    One ``200`` answer being written: chunks go into the request one at a
    time, the next when the connection has taken the last (the request
    pauses and resumes this producer), so the samples are never queued
    twice.

    A planned answer carries a fixed list of chunks, announced with a
    ``Content-Length``; a lingering one (``plan`` None) takes each chunk
    from the stream's backlog as it comes, until :meth:`end`.
    """

    def __init__(self, stream, request, after, plan=None, shared=False):
        self.stream = stream
        self.request = request
        self.after = after
        self.plan = plan
        #: The reader maps the stream's ring: arrays that are there stay
        #: there (1: their heads are maps; 2: short heads).
        self.shared = shared
        #: The key of the meta of the last chunk written (see _Entry.encode).
        self.meta = None
        self.paused = False
        self.ending = False
        self.finished = False
        self.chunks = self.bytes = 0
        #: Bytes of samples it carried, in the body or in the ring.
        self.samples = 0
        self.timer = self.wakeup = None
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._gone)

    def wake(self):
        """
        Chunks are waiting: write them on the next turn of the reactor,
        together with those emitted in the same turn.
        """
        if self.wakeup is None and not self.finished:
            self.wakeup = self.stream.clock.callLater(0, self.pump)

    def pump(self):
        """
        Write what the connection can take now.
        """
        if self.wakeup is not None:
            if self.wakeup.active():
                self.wakeup.cancel()  # called directly: this does it
            self.wakeup = None
        while not self.paused and not self.finished:
            if self.plan is not None:
                if not self.plan:
                    self.end()
                    return
                self._write(self.plan.popleft())
                continue
            if self.ending or not self._write_waiting():
                if self.ending or self.stream.ended:
                    self.end()
                return

    def _write_waiting(self):
        """
        Write the chunks waiting in the stream's backlog: several small
        ones in one piece, a large one alone.  False when none was waiting.
        """
        stream = self.stream
        pieces, size = [], 0
        entry = stream._first_after(self.after)
        shared = self.shared
        while entry is not None:
            piece = entry.encode(stream.packer, shared, self.meta)
            if pieces and size + len(piece) > _JOIN_BELOW:
                break
            pieces.append(piece)
            size += len(piece)
            self.meta = entry.meta_key(shared)
            stream._sent(entry.seq, len(piece), shared and entry.head is not None)
            self.after = entry.seq
            self.chunks += 1
            self.samples += entry.nbytes
            if stream._answer_is_full(self, entry, size):
                self.ending = True
                break
            entry = stream._first_after(self.after)
        if not pieces:
            return False
        self._write(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        return True

    def _write(self, piece):
        self.bytes += len(piece)
        self.request.write(piece)

    def end(self):
        """
        Finish the answer once what it already took is written.
        """
        if self.finished:
            return
        self.ending = True
        if self.paused and self.plan:
            return
        self._close()
        self.request.unregisterProducer()
        self.request.finish()

    def _close(self):
        self.finished = True
        for call in (self.timer, self.wakeup):
            if call is not None and call.active():
                call.cancel()
        self.stream._answer_closed(self)

    def _gone(self, _):
        if not self.finished:
            self._close()

    # IPushProducer: the connection's flow control.

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.pump()

    def stopProducing(self):
        if not self.finished:
            self._close()


@implementer(IChunkConsumer)
class ServedStream:
    """
    One block's output, kept for one remote reader until acknowledged.

    :param stream_id: the ``{id}`` of the stream's URL.
    :param producer: the output read (``block.output(name)``), or a block
        for its main output; the stream subscribes at once.
    :param clock: ``IReactorTime`` that times held polls out.
    :param policy: ``"block"``, ``"drop_oldest"`` or ``"latest"``.
    :param maxsize: most unacknowledged chunks kept (at most
        :data:`MAX_MAXSIZE`).  Under ``block`` the block is also paused
        while the backlog holds ``max_backlog_bytes`` of samples.
    :param on_close: called when the stream closes itself, its reader
        having been silent for ``idle_timeout`` seconds
        (:data:`IDLE_TIMEOUT` by default; or having never polled, for
        ``first_poll_timeout`` seconds).
    :param first_poll_timeout: seconds a stream waits for its first poll.
    :param shared: keep the arrays in a shared-memory ring too (see
        :mod:`.shm`), for a reader on this host that maps it; only a
        ``block`` stream does, where ``memfd_create`` exists.  What such a
        reader released in the ring is acknowledged without its next poll:
        a block held for a full window goes on once half of it is released.

    Chunks keep their output's ``seq``: the first one is wherever the
    output was when the stream was opened (:attr:`start_seq`), and a gap
    is a drop, here or upstream of a relay.
    """

    def __init__(self, stream_id, producer, clock, policy="block", maxsize=None,
                 max_batch_bytes=MAX_BATCH_BYTES, on_close=None,
                 max_backlog_bytes=MAX_BACKLOG_BYTES, idle_timeout=IDLE_TIMEOUT,
                 first_poll_timeout=FIRST_POLL_TIMEOUT, shared=False):
        self.id = stream_id
        self.idle_timeout = idle_timeout
        #: Random, this stream's alone: its id may name another stream on
        #: a worker started again.
        self.instance = secrets.token_hex(8)
        #: The output read, and its block.
        self.output = producer if IOutput.providedBy(producer) else producer.output()
        self.block = self.output.block
        self.kind = self.output.kind
        self.clock = clock
        self.policy = policy
        self.maxsize = check_policy(policy, maxsize)
        if self.maxsize > MAX_MAXSIZE:
            raise ValueError(f"maxsize must be at most {MAX_MAXSIZE}, got {maxsize!r}")
        self.max_batch_bytes = max_batch_bytes
        self.max_backlog_bytes = max_backlog_bytes
        self._backlog_bytes = 0
        #: Chunks, and bytes of samples, ever kept, and acknowledged (see
        #: :attr:`_Entry.count`).
        self._kept = self._kept_bytes = 0
        self._acknowledged_count = self._acknowledged_bytes = 0
        self.ended = False
        self.closed = False
        self.error = None
        self.dropped = 0
        self.chunks_out = self.bytes_out = 0
        self.acknowledged = -1
        #: ``seq`` of the first chunk received (None until then).
        self.start_seq = None
        self._backlog = deque()
        #: The shared-memory ring of the arrays (``None``: they travel in
        #: the body), and how many chunks went through it.
        self.ring = None
        self.chunks_shared = 0
        #: A chunk found the ring full since the last acknowledgement that
        #: freed some of it: a lingering answer then ends, so that the
        #: reader acknowledges (a ring smaller than the window in bytes, or
        #: one too fragmented for the next chunk, would otherwise hold the
        #: block until the answer's linger time is up).
        self._ring_full = False
        if shared and policy == "block" and shm.available():
            try:
                # Room for the window, and for chunks a consumer still holds.
                self.ring = shm.Ring(min(shm.RING_SIZE, max(max_backlog_bytes * 5 // 4,
                                                            1 << 20)))
            except OSError as error:
                log.warn("{stream}: no shared memory ({error}); arrays go in the body",
                         stream=stream_id, error=error)
        self.packer = chunk_packer()
        #: The chunks' meta packed once per change, for short heads.
        self.metas = MetaPacker(self.packer)
        #: ``seq`` of the newest chunk received.
        self._newest = -1
        self._sent_upto = -1
        self._holding = False
        #: The block is held until the reader releases part of the ring:
        #: since when (None: it is not), and the timer that looks again.
        self._ring_wait = self._ring_timer = None
        #: Looks at what the reader released while the block is held: the
        #: timer, its delay, and how many looks since the block was held.
        self._release_timer = None
        self._release_delay = RING_CHECK
        self._release_looks = 0
        #: Whether a full ring no longer holds the block (the reader keeps
        #: its chunks), until it has drained.
        self._ring_waived = False
        self._polls = []
        self._answer = None
        self._on_close = on_close
        self.polled = False
        self._idle = self.clock.callLater(first_poll_timeout, self._abandoned)
        self.edge = None
        self.output.subscribe(self, "block", _EDGE_MAXSIZE)
        if self.ring is not None and self.output is self.block.output():
            # The block may write its output straight into the ring.
            self.block.lend_buffers(self.ring.lend)

    def __repr__(self):
        return f"<ServedStream {self.id} of {self.output!r} {self.policy}/{self.maxsize}>"

    @property
    def stats(self):
        self._acknowledge_released(False)  # (what the reader said in the ring)
        return {"id": self.id, "instance": self.instance, "block": self.block.name,
                "output": self.output.output_name, "kind": self.kind,
                "policy": self.policy, "maxsize": self.maxsize,
                "backlog": len(self._backlog), "backlog_bytes": self._backlog_bytes,
                "start_seq": self.start_seq, "next_seq": self._newest + 1,
                "acknowledged": self.acknowledged, "chunks_out": self.chunks_out,
                "bytes_out": self.bytes_out, "dropped": self.dropped,
                "paused": self._holding, "ended": self.ended,
                "shared": self.ring is not None, "chunks_shared": self.chunks_shared,
                "waiting_polls": len(self._polls),
                "answering": self._answer is not None}

    # IChunkConsumer: the block's edge feeds the stream.

    def registerProducer(self, producer, streaming):
        self.edge = producer

    def unregisterProducer(self):
        self.edge = None

    def write(self, chunk):
        backlog = self._backlog
        entry = _Entry(chunk)
        if self.start_seq is None:
            self.start_seq = entry.seq
        self._newest = entry.seq
        if entry.seq <= self.acknowledged:
            return  # the reader has it: its cursor came from elsewhere
        backlog.append(entry)
        self._backlog_bytes += entry.nbytes
        self._kept += 1
        self._kept_bytes += entry.nbytes
        entry.count, entry.upto = self._kept, self._kept_bytes
        if self.policy == "block":
            # Every chunk will be sent: encode it now, while the reader is
            # busy with the previous answer, not when its poll arrives.
            ring_full = self.ring is not None and not entry.share(self.ring, self.metas)
            if ring_full:
                # The ring is full (the reader holds its chunks, or this
                # process the buffers it lent): this chunk goes in the
                # body, the block waits (_wait_for_ring), and a lingering
                # answer ends at its next chunk (_answer_is_full).
                self._ring_full = True
            if entry.head is None:
                entry.encode(self.packer)
            full = self._backlog_full()
            if full and self.ring is not None:
                # What the reader released since its last poll is
                # acknowledged already: the window may not be full at all
                # (the reader need not poll again for its block to go on).
                self._acknowledge_released(False)
                full = self._backlog_full()
            full = full or (ring_full and self._wait_for_ring())
            if full and not self._holding and self.edge:
                self._holding = True
                self.edge.pauseProducing()
                if self.ring is not None and self._ring_wait is None:
                    self._watch_released()
        else:
            while len(backlog) > self.maxsize:
                dropped = backlog.popleft()
                self._backlog_bytes -= dropped.nbytes
                if dropped.seq > self._sent_upto:
                    self.dropped += 1
        if self._answer is not None:
            self._answer.wake()
        else:
            self._answer_polls()

    def end_of_stream(self):
        self.ended = True
        if self._answer is not None:
            self._answer.wake()
        self._answer_polls()

    # The reader's side.

    def poll(self, request, after, wait, linger=0.0, instance=None, shared=False):
        """
        Answer a ``GET`` of the stream: acknowledge up to ``after``, then
        send what is newer, or hold the request up to ``wait`` seconds;
        with ``linger``, keep sending new chunks in the same answer up to
        ``linger`` seconds.

        ``after`` is a seq of the block's output.  Older than the stream's
        start (a reader resuming here from another worker or stream), it
        is answered with what the stream holds, and the answer says how
        many chunks it never held (``X-Pyrf-Missed``).  Newer than
        anything the output emitted, it names a chunk that does not exist:
        400, once the stream has received a chunk (until then the poll is
        held: a relay's output learns where it is from its first chunk).

        ``instance``, when given, must be this stream's: a reader of
        another stream of the same id (its worker was started again) gets
        410, and acknowledges nothing here.

        ``shared``: the reader maps this stream's ring, so the arrays that
        are there are not copied into the answer: their heads are maps
        (``?shm=1``, 1) or short heads (``?shm=2``, 2; see
        :class:`~pyrf_blocks.chunk.RingHead`).
        """
        request.setHeader(INSTANCE, self.instance.encode("ascii"))
        if instance is not None and instance != self.instance:
            return error_reply(request, 410, f"stream {self.id} is not the stream you "
                                             f"opened: it is instance {self.instance}, "
                                             f"yours was {instance} (its worker was "
                                             "started again, or the id was reused)")
        self.polled = True
        if self.error is not None:
            return error_reply(request, 500, self.error)
        if self.closed:
            return error_reply(request, 410, f"stream {self.id} is closed")
        self._acknowledge_released()
        newest = max(self._newest, self.output.next_seq - 1)
        if after > newest and self.start_seq is not None:
            return error_reply(request, 400, f"after={after} is beyond the newest "
                                             f"chunk of stream {self.id} ({newest})")
        if after < self.acknowledged and self.policy == "block":
            return error_reply(request, 409, f"after={after}: stream {self.id} "
                                             f"was acknowledged up to "
                                             f"{self.acknowledged} already")
        if self._answer is not None:
            # The reader polls again, so the answer it had is lost to it.
            self._answer.end()
        shared = shared if self.ring is not None else 0
        self._acknowledge(after, shared)
        self._expect_poll(wait)
        if self._newer(after) or self.ended or wait == 0:
            self._send(request, after, linger, shared)
            return NOT_DONE_YET
        poll = [request, after, linger, None, shared]
        poll[3] = self.clock.callLater(wait, self._timed_out, poll)
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
        if self._answer is not None:
            self._answer.end()
        self._backlog.clear()
        for timer in (self._ring_timer, self._release_timer):
            if timer is not None and timer.active():
                timer.cancel()
        if self.ring is not None:
            self.block.unlend_buffers(self.ring.lend)
            self.ring.close()
        if self.edge is not None:
            self.block.unsubscribe(self.edge)
        for request, _, _, timer, _ in self._take_polls():
            timer.cancel()
            request.write(error_reply(request, 410, f"stream {self.id} is closed"))
            request.finish()

    def fail(self, message):
        """
        The producing graph failed: every poll from now on gets ``message``.
        """
        self.error = message
        if self._answer is not None:
            self._answer.end()
        for request, _, _, timer, _ in self._take_polls():
            timer.cancel()
            request.write(error_reply(request, 500, message))
            request.finish()

    def _expect_poll(self, wait):
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = self.clock.callLater(wait + self.idle_timeout, self._abandoned)

    def _abandoned(self):
        if self._polls or self._answer is not None:
            self._expect_poll(0)
            return
        if self.polled:
            log.warn("{stream}: no poll for {idle:g} s; closing it", stream=self,
                     idle=self.idle_timeout)
        else:
            log.warn("{stream}: never polled since it was opened; closing it, so "
                     "that it holds {block} no longer", stream=self, block=self.block.label)
        self.close()
        if self._on_close is not None:
            self._on_close(self)

    def _acknowledge(self, after, shared=False, release=True):
        backlog = self._backlog
        entry = None
        while backlog and backlog[0].seq <= after:
            entry = backlog.popleft()
            self._backlog_bytes -= entry.nbytes
        if entry is not None:
            self._acknowledged_count, self._acknowledged_bytes = entry.count, entry.upto
        if self.ring is not None:
            # The reader releases the slots of what it delivered itself,
            # when its consumers let the chunks go; one that does not map
            # the ring is done with them once it acknowledges them.
            if not shared:
                self.ring.acknowledged(after)
            self._ring_full = False
        if after > self.acknowledged:
            self.acknowledged = after
        if release:
            self._release()

    def _acknowledge_released(self, release=True):
        """
        What the reader released in the ring it had delivered, so its next
        poll would acknowledge it: acknowledged now (its slots may be
        reused from now on, so nobody may read those chunks again).
        """
        if self.ring is None:
            return
        released = min(self.ring.released, self._sent_upto)
        if released > self.acknowledged:
            self._acknowledge(released, True, release)

    def _backlog_full(self):
        return (len(self._backlog) >= self.maxsize
                or self._backlog_bytes >= self.max_backlog_bytes)

    def _watch_released(self):
        """
        While the block is held for a full window, look at what the reader
        released in the ring (see :data:`RELEASE_CHECK_MAX` for when), and
        let the block go on as soon as that frees half the window, without
        waiting for the reader's next poll.
        """
        if self._release_timer is None or not self._release_timer.active():
            self._release_delay = RING_CHECK
            self._release_looks = 0
            self._release_timer = self.clock.callLater(RING_CHECK, self._check_released)

    def _check_released(self):
        self._release_timer = None
        if self.closed or self.ring is None or not self._holding:
            return
        count, nbytes = self._acknowledged_count, self._acknowledged_bytes
        self._acknowledge_released()
        if not self._holding or self._ring_wait is not None:
            return
        self._release_looks += 1
        released = self._acknowledged_count - count
        delay = self._release_delay
        if released:
            # At the pace of the last delay, how many more delays until the
            # block may go on: look again halfway there.
            ahead = (len(self._backlog) - self.maxsize // 2) / released
            excess = self._backlog_bytes - self.max_backlog_bytes // 2
            if excess > 0:
                ahead = max(ahead, excess / max(self._acknowledged_bytes - nbytes, 1))
            delay *= ahead / 2
        elif self._release_looks >= 2:
            delay *= 2
        self._release_delay = delay = min(max(delay, RING_CHECK), RELEASE_CHECK_MAX)
        self._release_timer = self.clock.callLater(delay, self._check_released)

    def _wait_for_ring(self):
        """
        Hold the block until the reader has released half the ring
        (:meth:`_check_ring` looks every :data:`RING_CHECK` s); False when
        it was waived.
        """
        if self._ring_waived or self.closed:
            return False
        if self._ring_wait is None:
            self._ring_wait = self.clock.seconds()
            self._ring_timer = self.clock.callLater(RING_CHECK, self._check_ring)
        return True

    def _check_ring(self):
        self._ring_timer = None
        ring = self.ring
        if self.closed or ring is None:
            return
        self._acknowledge_released(False)
        ring.reclaim()
        if ring.used <= ring.size // 2:
            self._ring_wait = None
            self._ring_waived = False
        elif self._ring_waived:
            self._ring_timer = self.clock.callLater(RING_PATIENCE, self._check_ring)
            return
        elif self.clock.seconds() - self._ring_wait >= RING_PATIENCE:
            # The reader keeps its chunks: let the block go on (the body).
            self._ring_waived = True
            self._ring_wait = None
            self._ring_timer = self.clock.callLater(RING_PATIENCE, self._check_ring)
        else:
            self._ring_timer = self.clock.callLater(RING_CHECK, self._check_ring)
            return
        self._release()

    def _release(self):
        if self._ring_wait is not None:
            return
        if (self._holding and len(self._backlog) <= self.maxsize // 2
                and self._backlog_bytes <= self.max_backlog_bytes // 2):
            self._holding = False
            if self.edge is not None:
                self.edge.resumeProducing()

    def _newer(self, after):
        return bool(self._backlog) and self._backlog[-1].seq > after

    def _first_after(self, seq):
        """
        The oldest kept chunk newer than ``seq``, if any.  The backlog's
        seqs grow but may skip (a relay forwards the gaps of a lossy
        stream): the guess of consecutive seqs is checked, then bisected.
        """
        backlog = self._backlog
        if not backlog or backlog[-1].seq <= seq:
            return None
        index = seq + 1 - backlog[0].seq
        if index <= 0:
            return backlog[0]
        if index < len(backlog) and backlog[index].seq == seq + 1:
            return backlog[index]
        return backlog[bisect.bisect_right(backlog, seq, key=_SEQ)]

    def _missed(self, after):
        """
        Chunks newer than ``after`` that this stream never held: those
        before its first, when the cursor is older than that.
        """
        if after < 0 or self.start_seq is None:
            return 0
        return max(self.start_seq - 1 - after, 0)

    def _take_polls(self):
        polls, self._polls = self._polls, []
        return polls

    def _forget(self, poll):
        if poll in self._polls:
            self._polls.remove(poll)
            poll[3].cancel()

    def _timed_out(self, poll):
        if poll in self._polls:
            self._polls.remove(poll)
            self._send(poll[0], poll[1], 0.0, poll[4])

    def _answer_polls(self):
        for request, after, linger, timer, shared in self._take_polls():
            timer.cancel()
            self._send(request, after, linger, shared)

    def _send(self, request, after, linger, shared=False):
        first = self._first_after(after)
        # Only a lossless stream lingers: a lossy one answers with what is
        # waiting, so that what it keeps for a slow reader is the newest,
        # not chunks queued in the connection's buffers.  And only while
        # little is waiting: a backlog is sent as one planned answer, whose
        # body (with a Content-Length, not chunked) the reader's HTTP
        # client passes on without copying it.
        # (Arrays in shared memory leave only their heads in the body.)
        lingering = (linger > 0 and not self.ended and self.policy == "block"
                     and (shared or self._waiting_bytes(after) < LINGER_BELOW))
        plan, size, last, meta = deque(), 0, None, None
        if first is not None and not lingering:
            for entry in self._backlog:
                if entry.seq <= after:
                    continue
                piece = entry.encode(self.packer, shared, meta)
                if plan and size + len(piece) > self.max_batch_bytes:
                    break
                plan.append(piece)
                size += len(piece)
                last = entry.seq
                meta = entry.meta_key(shared)
                self._sent(entry.seq, len(piece), shared and entry.head is not None)
        first_seq = None if first is None else first.seq
        ended = self.ended and (first is None or last == self._newest)
        for name, value in stream_headers(self.kind, first_seq, last, self.dropped,
                                          ended, self.start_seq,
                                          self._missed(after), self.instance).items():
            request.setHeader(name, value)
        if first is None:
            request.setResponseCode(204)
            request.finish()
            return
        request.setHeader(b"content-type", CONTENT_TYPE)
        if not lingering:
            request.setHeader(b"content-length", b"%d" % size)
            _Answer(self, request, after, plan, shared).pump()
            return
        answer = self._answer = _Answer(self, request, after, shared=shared)
        answer.timer = self.clock.callLater(linger, answer.end)
        answer.pump()

    def _waiting_bytes(self, after):
        waiting = self._backlog_bytes
        for entry in self._backlog:
            if entry.seq > after:
                break
            waiting -= entry.nbytes
        return waiting

    def _sent(self, seq, nbytes, shared=False):
        if seq > self._sent_upto:
            self._sent_upto = seq
        self.chunks_out += 1
        self.bytes_out += nbytes
        self.chunks_shared += shared

    def _answer_is_full(self, answer, entry, pending=0):
        """
        Whether a lingering answer should end so that the reader
        acknowledges it: it carried the byte limit, or (under ``block``)
        half the reader's window is in flight (in chunks, or in bytes of
        samples, whether they went in the body or in the ring: the block is
        held back at the whole window, so an answer ends, and the reader's
        next poll frees room, before that), or a chunk found the ring full.
        ``entry``: the chunk it took last; ``pending``: bytes it took that
        are not written yet.

        A reader that maps the ring acknowledges what it released there
        without a poll, so its answer counts in flight only what it has
        not released yet: one that lets its chunks go reads on in the same
        answer (one poll for many windows), one that keeps them gets its
        answer ended as any other.
        """
        carried = answer.bytes + pending
        if carried >= self.max_batch_bytes or self._ring_full:
            return True
        if self.policy != "block":
            return False
        if answer.shared:
            self._acknowledge_released(False)
            return (entry.count - self._acknowledged_count >= max(self.maxsize // 2, 1)
                    or entry.upto - self._acknowledged_bytes >= self.max_backlog_bytes // 2)
        return (answer.chunks >= max(self.maxsize // 2, 1)
                or max(carried, answer.samples) >= self.max_backlog_bytes // 2)

    def _answer_closed(self, answer):
        if self._answer is answer:
            self._answer = None
            self._expect_poll(0)
