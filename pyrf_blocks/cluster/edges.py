"""
Edges between computations: one computation's output read by another, on
whichever workers they run, with recovery as exact as inside one.

A producer's pipeline file ends the stream it shares in a
:class:`cluster_output` sink; a consumer's file starts from a
:class:`cluster_input` source naming that computation and block:

.. code-block:: yaml

    # in power.yaml (the computation "power")
    power_out: {type: cluster_output, inputs: [P]}
    # in stats.yaml
    P: {type: cluster_input, params: {computation: power, output: power_out}}

The ``cluster_output`` keeps every chunk after the lowest ``seq`` that its
consumers have *acknowledged* (:class:`Retention`), and a consumer
acknowledges ``seq`` N only once a snapshot of its own that covers N is
durable in the fenced store.  So the stream's cursor is "acknowledged up to
the consumer's last snapshot", and whichever side dies:

* **the consumer** restarts on another worker from its last snapshot,
  whose cursor is at or after its acknowledgement: the producer still
  holds every chunk after it, and serves them again;
* **the producer** restarts from its own last snapshot, which holds its
  retained chunks (it is a consistent cut: everything its blocks emitted
  has reached the ``cluster_output``), and its sources regenerate the
  chunks after the cut with the same ``seq``; a consumer that already had
  some of them skips them by ``seq``.

The consumer finds the producer through the coordinator: the worker that
the assignment names, at the address it registered
(:class:`Directory`, which watches both and interrupts a read when the
producer moves).  Every read names the assignment revision it expects, and
a worker serves a computation only at its own revision and while its lease
is fresh, so a paused worker that lost the computation does not go on
serving it as if it were its own.

Retention is bounded (``max_retained`` chunks, ``max_retained_bytes``):
when a consumer falls that far behind, the producer is paused — never a
chunk dropped — with a warning naming the consumers it waits for, and the
``pyrf_cluster_output_*`` metrics say how much is retained and up to where
each consumer acknowledged.
"""

import json
from collections import deque
from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from ..backoff import Backoff
from ..block import MAIN, Sink
from ..chunk import chunk_packer, encode_chunk
from ..errors import HTTPError, RemoteError
from ..interfaces import IChunkProducer, IStateful, KIND_INTERFACES
from ..net.client import auth_headers, read_json, remote_block
from ..net.replies import error_reply
from ..net.wire import CONTENT_TYPE, read_stream_headers, stream_headers
from ..params import Param
from ..registry import register

__all__ = ["cluster_output", "cluster_input", "Retention", "Directory", "Owner", "Served",
           "EdgeCollector", "consumers_of", "MAX_RETAINED", "MAX_RETAINED_BYTES"]

log = Logger()

#: Chunks a cluster_output keeps, by default, before it pauses its producer.
MAX_RETAINED = 4096
#: Bytes (encoded) a cluster_output keeps, by default, before it pauses.
MAX_RETAINED_BYTES = 64 << 20
#: An answer stops adding chunks once it holds this many bytes.
MAX_ANSWER_BYTES = 8 << 20
#: Header of every answer: the assignment revision it was served under.
REVISION = b"X-Pyrf-Revision"
#: Header of the answer to a consumer's first read with ``start``: the
#: cursor it starts after (what was skipped at its request).
STARTS_AFTER = b"X-Pyrf-Starts-After"
#: Where a :class:`cluster_input` that has read nothing yet starts.
STARTS = ("all", "earliest", "latest")


def consumer_id(computation, block):
    """How a producer names one reader: ``computation/block``."""
    return f"{computation}/{block}"


def consumers_of(specs, producer):
    """
    ``{cluster_output block: [consumer id, ...]}`` of computation
    ``producer``: every ``cluster_input`` of the pipelines ``specs``
    (``{computation: pipeline text}``) that reads it.
    """
    import yaml

    found = {}
    for computation, text in sorted(specs.items()):
        try:
            blocks = (yaml.safe_load(text) or {}).get("blocks") or {}
        except yaml.YAMLError:
            continue  # checked by the manager; not a reader of anything
        for name, block in blocks.items():
            if not isinstance(block, dict) or block.get("type") != "cluster_input":
                continue
            params = block.get("params") or {}
            if params.get("computation") == producer:
                found.setdefault(params.get("output"), []).append(
                    consumer_id(computation, name))
    return found


class Retention:
    """
    The chunks of one ``cluster_output`` that some consumer has not
    acknowledged yet, encoded as on the wire, with each consumer's
    acknowledgement; and the long polls that read them.

    :param label: how messages name it.
    :param kind: kind of its chunks.
    :param clock: ``IReactorTime`` that times held polls out.
    """

    def __init__(self, label, kind, clock, max_chunks=MAX_RETAINED,
                 max_bytes=MAX_RETAINED_BYTES):
        self.label, self.kind, self.clock = label, kind, clock
        self.max_chunks, self.max_bytes = max_chunks, max_bytes
        self.entries = deque()  # (seq, encoded bytes)
        self.bytes = 0
        #: ``{consumer: highest seq it acknowledged}`` (-1: none yet).
        self.acked = {}
        #: Every seq up to this one is dropped (acknowledged by every consumer).
        self.trimmed = -1
        #: Seq of the newest chunk kept (-1: none yet).
        self.newest = -1
        self.ended = False
        #: Why it serves no more (moved away), or None.
        self.closed = None
        self._polls = []
        self.on_release = None

    # The producer's side.

    def add(self, seq, encoded):
        if seq <= self.newest:
            return  # a chunk it has (regenerated after a restore)
        self.newest = seq
        if self.acked and seq > min(self.acked.values()):
            self.entries.append((seq, encoded))
            self.bytes += len(encoded)
        else:
            self.trimmed = max(self.trimmed, seq)
        self._answer_polls()

    def end(self):
        self.ended = True
        self._answer_polls()

    @property
    def full(self):
        return len(self.entries) >= self.max_chunks or self.bytes >= self.max_bytes

    @property
    def below_half(self):
        return len(self.entries) <= self.max_chunks // 2 and self.bytes <= self.max_bytes // 2

    def expect(self, consumers):
        """
        Consumers whose acknowledgement it waits for (kept if known): from
        now on it keeps every chunk until each has acknowledged it.  What
        it dropped before a consumer was known is gone (see :meth:`poll`).
        """
        for consumer in consumers:
            self.acked.setdefault(consumer, -1)

    def register(self, consumer, acknowledged):
        """
        A consumer it did not know reads it (declared in a spec it has not
        seen yet): keep what comes after ``acknowledged`` for it too.
        """
        if consumer not in self.acked:
            self.acked[consumer] = max(acknowledged, -1)

    def forget(self, computation):
        """
        The consumers of ``computation`` left the cluster (its spec was
        deleted): wait for them no more.
        """
        for consumer in [c for c in self.acked if c.startswith(f"{computation}/")]:
            del self.acked[consumer]
        if self.acked:
            self.acknowledge(next(iter(self.acked)), -1)  # drop what the others have

    def acknowledge(self, consumer, seq):
        """
        ``consumer`` has a durable snapshot covering ``seq``: drop what
        every consumer has acknowledged.
        """
        if consumer not in self.acked:
            return  # not one it keeps chunks for (see expect)
        if seq > self.acked[consumer]:
            self.acked[consumer] = seq
        floor = min(self.acked.values())
        entries = self.entries
        while entries and entries[0][0] <= floor:
            self.bytes -= len(entries.popleft()[1])
        self.trimmed = max(self.trimmed, min(floor, self.newest))
        if self.on_release is not None and self.below_half:
            self.on_release()

    def waiting_for(self):
        """The consumers whose acknowledgement holds the oldest chunk."""
        floor = min(self.acked.values(), default=-1)
        return sorted(c for c, seq in self.acked.items() if seq == floor)

    def state(self):
        return {"kind": self.kind, "entries": [list(e) for e in self.entries],
                "acked": dict(self.acked), "trimmed": self.trimmed,
                "newest": self.newest, "ended": self.ended}

    def restore(self, state):
        self.entries = deque((int(seq), bytes(data)) for seq, data in state["entries"])
        self.bytes = sum(len(data) for _, data in self.entries)
        self.acked = {str(c): int(s) for c, s in state["acked"].items()}
        self.trimmed, self.newest = int(state["trimmed"]), int(state["newest"])
        self.ended = bool(state["ended"])

    # The consumers' side.

    def poll(self, request, after, wait, revision, consumer=None, start="all"):
        """
        Answer a read: the chunks newer than ``after`` (up to
        :data:`MAX_ANSWER_BYTES`), held up to ``wait`` seconds until there
        are some; ``204`` when none came, saying whether the stream ended.
        ``410`` for a cursor older than what was dropped — unless the
        consumer has read nothing yet (``after`` -1) and asked to
        ``start`` at the ``earliest`` chunk kept or the ``latest`` (the
        next one made); the answer then says where it starts
        (:data:`STARTS_AFTER`).
        """
        from twisted.web.server import NOT_DONE_YET

        request.setHeader(REVISION, b"%d" % revision)
        if self.closed is not None:
            return error_reply(request, 409, self.closed)
        if after == -1 and start != "all":
            after = self.trimmed if start == "earliest" else max(self.newest, self.trimmed)
            request.setHeader(STARTS_AFTER, b"%d" % after)
            if consumer is not None:
                self.register(consumer, after)
        if after < self.trimmed:
            if after == -1:
                return error_reply(request, 410, (
                    f"{self.label} dropped seqs up to {self.trimmed} before "
                    f"{consumer or 'this consumer'} read it (declared after the producer "
                    "started, or read by nobody then); give its cluster_input start: "
                    "earliest (from the oldest chunk kept) or start: latest (from the "
                    "next one)"))
            return error_reply(request, 410, (
                f"{self.label}: seqs up to {self.trimmed} were acknowledged by every "
                f"known consumer ({', '.join(sorted(self.acked)) or 'none'}) and "
                f"dropped; a read after {after} cannot be served"))
        if self._newer(after) or self.ended or wait == 0:
            self._send(request, after)
            return NOT_DONE_YET
        poll = [request, after, None]
        poll[2] = self.clock.callLater(wait, self._timed_out, poll)
        self._polls.append(poll)
        request.notifyFinish().addErrback(lambda _: self._forget(poll))
        return NOT_DONE_YET

    def close(self, why):
        """Serve no more: every held poll is answered 409 ``why``."""
        self.closed = why
        polls, self._polls = self._polls, []
        for request, _, timer in polls:
            timer.cancel()
            request.write(error_reply(request, 409, why))
            request.finish()

    def _newer(self, after):
        return bool(self.entries) and self.entries[-1][0] > after

    def _forget(self, poll):
        if poll in self._polls:
            self._polls.remove(poll)
            poll[2].cancel()

    def _timed_out(self, poll):
        if poll in self._polls:
            self._polls.remove(poll)
            self._send(poll[0], poll[1])

    def _answer_polls(self):
        keep = []
        for poll in self._polls:
            request, after, timer = poll
            if self._newer(after) or self.ended:
                timer.cancel()
                self._send(request, after)
            else:
                keep.append(poll)
        self._polls = keep

    def _send(self, request, after):
        pieces, size, first, last = [], 0, None, None
        for seq, data in self.entries:
            if seq <= after:
                continue
            if pieces and size + len(data) > MAX_ANSWER_BYTES:
                break
            pieces.append(data)
            size += len(data)
            first = seq if first is None else first
            last = seq
        ended = self.ended and (last is None or last == self.entries[-1][0])
        for name, value in stream_headers(self.kind, first, last, 0, ended).items():
            request.setHeader(name, value)
        if not pieces:
            request.setResponseCode(204)
        else:
            request.setHeader(b"content-type", CONTENT_TYPE)
            request.setHeader(b"content-length", b"%d" % size)
            request.write(b"".join(pieces))
        request.finish()


@implementer(IStateful)
@register
class cluster_output(Sink):
    """
    Shares its input with other computations of the cluster: they read it
    with a :class:`cluster_input` naming this computation and this block.
    It keeps every chunk until each of those consumers has acknowledged it
    (a snapshot of theirs covering it is durable), and its state — part of
    the computation's snapshots — holds them, so a new owner serves them
    again.

    :param max_retained: most chunks kept; at the limit the producer is
        paused until consumers acknowledge more (nothing is dropped).
    :param max_retained_bytes: most bytes kept (encoded), likewise.
    """

    type_name = "cluster_output"
    requires = (IChunkProducer,)
    param_rules = {"max_retained": Param("count", minimum=1),
                   "max_retained_bytes": Param("count", minimum=1)}

    def __init__(self, producer, max_retained=MAX_RETAINED,
                 max_retained_bytes=MAX_RETAINED_BYTES, **kwargs):
        self.max_retained, self.max_retained_bytes = max_retained, max_retained_bytes
        self.retention = None
        #: True while the producer is paused because retention is full.
        self.stalled = False
        #: How many times it was.
        self.stalls = 0
        self._packer = chunk_packer()
        super().__init__(producer, **kwargs)

    def reset(self):
        if self.retention is None:
            self.retention = Retention(self.label, self.inputs[0].kind, self.graph.reactor,
                                       self.max_retained, self.max_retained_bytes)
            self.retention.on_release = self._released

    def compute(self, chunk):
        context = getattr(self.graph, "cluster", None)
        if context is not None and not context.active:
            return  # moved away: what is flushed while stopping is no result
        self.retention.add(chunk.seq, encode_chunk(chunk, self._packer))
        if self.retention.full and not self.stalled:
            self.stalled = True
            self.stalls += 1
            log.warn("{block}: {chunks} chunks ({size} bytes) retained, the limit; pausing "
                     "until {consumers} acknowledge (their snapshots cover) more than seq "
                     "{seq}", block=self.label, chunks=len(self.retention.entries),
                     size=self.retention.bytes, consumers=", ".join(
                         self.retention.waiting_for()) or "its consumers",
                     seq=min(self.retention.acked.values(), default=-1))
            for edge in self.input_edges:
                if edge is not None:
                    edge.pauseProducing()

    def _released(self):
        if self.stalled:
            self.stalled = False
            for edge in self.input_edges:
                if edge is not None:
                    edge.resumeProducing()

    def end(self):
        if self.retention is not None:
            self.retention.end()
        super().end()

    def get_state(self):
        return {"retention": self.retention.state()}

    def set_state(self, state):
        self.retention.restore(state["retention"])


@dataclass(frozen=True)
class Owner:
    """Where a computation runs: its worker, that worker's URL, the revision."""

    worker: str
    address: str
    revision: int


class Directory:
    """
    Who runs each computation, and where each worker is: the assignments
    and members of the coordinator, followed (read again whenever the
    coordinator ends a watch: :class:`~pyrf_blocks.cluster.follow.Follower`).

    :param coordinator: an :class:`~pyrf_blocks.interfaces.ICoordinator`.
    :param clock: ``IReactorTime`` that times retries after a lost watch.
    """

    def __init__(self, coordinator, clock, prefix="/pyrf/"):
        from .follow import Follower

        self.prefix = prefix
        self.assignments = {}  # computation -> (worker, revision)
        self.addresses = {}  # worker -> URL
        self._waiters = []
        self._followers = {}
        self._started = None
        self._following = [
            Follower(coordinator, clock, prefix + kind,
                     lambda events, kind=kind: self._events(kind, events))
            for kind in ("assign/", "members/")]

    def start(self):
        """A Deferred that fires once it knows the current layout (once)."""
        if self._started is None:
            self._started = defer.ensureDeferred(self._start())
        return self._started

    async def _start(self):
        for follower in self._following:
            await follower.start()

    def stop(self):
        for follower in self._following:
            follower.stop()

    def _put(self, kind, kv):
        name = kv.key[len(self.prefix) + len(kind):]
        value = json.loads(kv.value)
        if kind == "assign/":
            self.assignments[name] = (value["worker"], kv.mod_revision)
        else:
            self.addresses[name] = value["address"]

    def _events(self, kind, events):
        for event in events:
            if event.kind == "put":
                self._put(kind, event.kv)
            else:
                name = event.kv.key[len(self.prefix) + len(kind):]
                (self.assignments if kind == "assign/" else self.addresses).pop(name, None)
        waiters, self._waiters = self._waiters, []
        for computation, d in waiters:
            owner = self.owner_now(computation)
            if owner is None:
                self._waiters.append((computation, d))
            else:
                d.callback(owner)
        for computation, callbacks in list(self._followers.items()):
            owner = self.owner_now(computation)
            for callback in list(callbacks):
                callback(owner)

    def owner_now(self, computation):
        """The :class:`Owner` of ``computation``, or None (unassigned, or its worker gone)."""
        entry = self.assignments.get(computation)
        if entry is None or entry[0] not in self.addresses:
            return None
        return Owner(entry[0], self.addresses[entry[0]], entry[1])

    def owner(self, computation):
        """A Deferred firing with the :class:`Owner` once there is one."""
        owner = self.owner_now(computation)
        if owner is not None:
            return defer.succeed(owner)
        def cancel(d):
            if (computation, d) in self._waiters:
                self._waiters.remove((computation, d))
        d = defer.Deferred(cancel)
        self._waiters.append((computation, d))
        return d

    def follow(self, computation, callback):
        """
        Call ``callback(owner or None)`` after each change seen; return a
        function that stops it.
        """
        callbacks = self._followers.setdefault(computation, [])
        callbacks.append(callback)

        def stop():
            if callback in callbacks:
                callbacks.remove(callback)
        return stop


class _Moved(Exception):
    """The producer is not (or no longer) served where we read it: look again."""


@implementer(IStateful)
@register
class cluster_input(remote_block):
    """
    Reads the :class:`cluster_output` ``output`` of the computation
    ``computation``, wherever it runs in the cluster.  Its state is how far
    it has read: a snapshot of the computation covering a chunk
    acknowledges it to the producer, which keeps everything newer.

    :param computation: the producing computation (its pipeline file's
        name).
    :param output: the ``cluster_output`` block there.
    :param kind: kind of the chunks it carries (``real`` by default).
    :param wait: longest a read is held by the producer, seconds.
    :param start: where it starts when it has read nothing yet (no
        snapshot of its computation says otherwise).  ``all`` (the
        default): from the producer's first chunk; if the producer has
        already dropped some — this consumer was added to the cluster after
        the producer started — it fails saying so, nothing skipped
        silently.  ``earliest``: from the oldest chunk the producer still
        keeps.  ``latest``: from the next chunk the producer makes.  Once
        it has read, every chunk after its cursor is kept for it.
    """

    type_name = "cluster_input"
    param_rules = {"kind": Param(choices=tuple(KIND_INTERFACES)),
                   "start": Param(choices=STARTS)}

    def __init__(self, computation="", output="", kind="real", wait=5.0, start="all", *,
                 name=None, graph=None, policy="block", maxsize=None):
        if not computation or not output:
            raise ValueError(f"cluster_input: computation and output are required "
                             f"(got {computation!r}, {output!r})")
        if start not in STARTS:
            raise ValueError(f"cluster_input {name or ''}: start {start!r}; one of "
                             f"{', '.join(STARTS)}")
        self.computation, self.output_block = computation, output
        self.start = start
        #: The assignment revision of the producer it reads (None: unknown).
        self.revision = None
        #: Highest seq acknowledged to the producer.
        self.acknowledged = -1
        self._start_cursor = -1
        self._unfollow = None
        super().__init__(None, kind, wait=wait, linger=0.0, retries=10 ** 9, backoff=0.05,
                         max_backoff=1.0, name=name, graph=graph, policy=policy,
                         maxsize=maxsize)

    @property
    def source(self):
        return f"computation {self.computation!r} output {self.output_block!r}"

    @property
    def consumer(self):
        return consumer_id(self.graph.cluster.computation, self.name)

    def where(self):
        return self.worker_url or f"(the worker of {self.computation!r})"

    def reset(self):
        self._start_cursor = -1

    def get_state(self):
        return {"cursor": self._cursor if self.active else self._start_cursor}

    def set_state(self, state):
        self._start_cursor = self._cursor = int(state["cursor"])
        self.outputs[MAIN].next_seq = self._cursor + 1

    def on_start(self):
        if getattr(self.graph, "cluster", None) is None:
            self.graph.reactor.callLater(0, self._give_up, Failure(RuntimeError(
                f"{self.label} reads another computation of a cluster: it runs only in a "
                f"computation that a cluster worker was assigned (pyrf-blocks worker "
                f"--cluster)")))
            return
        self.directory = self.graph.cluster.directory
        self.token = self.graph.cluster.token
        self._running = True
        self._cursor = self._start_cursor
        self._meta = None
        self._backoff = Backoff(self.graph.reactor, self.retries, self.backoff,
                                self.max_backoff, level=LogLevel.info)
        self._undelivered.clear()
        self._unfollow = self.directory.follow(self.computation, self._owner_changed)
        # Not in this turn: a snapshot restored right after the build sets the cursor.
        self.graph.reactor.callLater(0, self._step)

    def on_stop(self):
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
        self._halt()
        self.stream_url = None

    def stopProducing(self):
        self.on_stop()
        self.end()

    def _owner_changed(self, owner):
        if owner is not None and owner.revision == self.revision:
            return
        self.stream_url = None
        if self._busy is not None:
            self._busy.cancel()  # a read of a worker that no longer runs it

    async def _open_stream(self):
        owner = await self.directory.owner(self.computation)
        self.revision = owner.revision
        self.worker_url = owner.address
        self.url = (f"{owner.address}/computations/{self.computation}/outputs/"
                    f"{self.output_block}")
        self.stream_url = self.url

    async def _poll(self):
        url = self.stream_url
        params = {"after": str(self._cursor), "wait": f"{self.wait:g}",
                  "consumer": self.consumer, "revision": str(self.revision),
                  "ack": str(self.acknowledged)}
        if self._cursor == -1 and self.start != "all":
            params["start"] = self.start
        response = await self.client.get(url, headers=auth_headers(self.token), params=params,
                                         reactor=self.graph.reactor, timeout=self.wait + 10,
                                         unbuffered=True)
        if response.code not in (200, 204):
            try:
                await read_json(response, f"reading {self.source} at {url}")
            except RemoteError as error:
                if response.code == 410:
                    raise
                raise _Moved(str(error)) from None
        starts = response.headers.getRawHeaders(STARTS_AFTER)
        if starts and self._cursor == -1:
            self._cursor = int(starts[-1])
            self.outputs[MAIN].next_seq = self._cursor + 1
            if self._cursor >= 0:
                log.info("{block}: starts after seq {seq} of {source} (start: {start})",
                         block=self.label, seq=self._cursor, source=self.source,
                         start=self.start)
        headers = read_stream_headers(response.headers)
        if headers.kind != self.kind:
            raise RemoteError(f"{self.source} carries {headers.kind!r} chunks, not "
                              f"{self.kind!r} (give cluster_input kind: {headers.kind})")
        if response.code == 200:
            await self._read_answer(response)
        if headers.ended and self._running and not self._undelivered:
            self._running = False
            self.end()

    def _deliver_in_order(self):
        undelivered = self._undelivered
        while undelivered and not self.paused and self._running:
            chunk = undelivered[0]
            if chunk.seq <= self._cursor:
                undelivered.popleft()
                continue  # had it: served again after a move
            if chunk.seq > self._cursor + 1:
                self._give_up(Failure(RemoteError(
                    f"{self.label}: {self.source} sent seq {chunk.seq} after "
                    f"{self._cursor}: seqs were lost")))
                return
            undelivered.popleft()
            self._cursor = chunk.seq
            if chunk.meta == self._meta:
                chunk.meta = self._meta
            self._meta = chunk.meta
            self.forward(chunk)

    def _step_failed(self, failure):
        self.stream_url = None  # look the producer up again
        if failure.check(defer.CancelledError):
            failure = Failure(_Moved(f"{self.source} moved"))
        return super()._step_failed(failure)

    def snapshot_saved(self, entry):
        """
        A snapshot of this computation with this block's state ``entry``
        is durable: acknowledge its cursor to the producer.
        """
        seq = entry.get("state", {}).get("cursor", -1)
        if seq <= self.acknowledged:
            return
        self.acknowledged = seq
        if self.url is None or not self.active:
            return  # the next read carries it
        d = self.client.post(self.url + "/ack", headers=auth_headers(self.token),
                             json={"consumer": self.consumer, "seq": seq},
                             reactor=self.graph.reactor, timeout=10)
        d.addCallback(lambda response: response.content())
        d.addErrback(lambda f: log.debug("{block}: acknowledging {seq} failed: {why}",
                                         block=self.label, seq=seq,
                                         why=f.getErrorMessage()))


class Served:
    """
    What a worker serves of the computations it runs: the runner's
    ``/computations/...`` routes.
    """

    def __init__(self, runner):
        self.runner = runner

    def route(self, request, method, path):
        from ..net.replies import json_reply
        from ..net.stream import poll_arguments

        match path:
            case [computation, "outputs", block] if method == "GET":
                retention, revision = self._retention(computation, block, request)
                after, wait, _ = poll_arguments(request)
                consumer = _text_argument(request, "consumer")
                ack = _int_argument(request, "ack")
                start = _text_argument(request, "start") or "all"
                if start not in STARTS:
                    raise HTTPError(400, f"start={start!r}; one of {', '.join(STARTS)}")
                if consumer is not None and ack is not None:
                    if after >= retention.trimmed:  # it reads what is kept: keep on for it
                        retention.register(consumer, ack)
                    retention.acknowledge(consumer, ack)
                return retention.poll(request, after, wait, revision, consumer, start)
            case [computation, "outputs", block, "ack"] if method == "POST":
                retention, _ = self._retention(computation, block, request)
                try:
                    body = json.loads(request.content.read() or b"{}")
                except ValueError:
                    body = None
                consumer, seq = ((body.get("consumer"), body.get("seq"))
                                 if isinstance(body, dict) else (None, None))
                if not isinstance(consumer, str) or not isinstance(seq, int):
                    raise HTTPError(400, "an acknowledgement is {\"consumer\": name, "
                                         "\"seq\": integer}")
                retention.acknowledge(consumer, seq)
                return json_reply(request, {"acknowledged": seq})
        raise HTTPError(404, f"no such resource: /computations/{'/'.join(path)}")

    def _retention(self, computation, block, request):
        runner = self.runner
        served = runner.serving(computation)
        if served is None:
            raise HTTPError(404, f"computation {computation!r} does not run on this worker")
        revision, retentions = served
        expected = _int_argument(request, "revision")
        if expected is not None and expected != revision:
            raise HTTPError(409, f"computation {computation!r} runs here at revision "
                                 f"{revision}, not {expected}")
        stale = runner.lease_stale()
        if stale is not None:
            raise HTTPError(503, f"computation {computation!r}: {stale}; not serving it "
                                 f"until the lease is renewed")
        retention = retentions.get(block)
        if retention is None:
            raise HTTPError(404, f"computation {computation!r} has no cluster_output "
                                 f"{block!r}")
        return retention, revision


def _text_argument(request, name):
    values = request.args.get(name.encode())
    return values[-1].decode("utf-8", "replace") if values else None


def _int_argument(request, name):
    text = _text_argument(request, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise HTTPError(400, f"query parameter {name}={text!r} is not an integer") from None


class EdgeCollector:
    """
    Prometheus metrics of the edges between computations on one worker:
    what each ``cluster_output`` retains and up to where each of its
    consumers acknowledged, whether it is stalled on them; how far each
    ``cluster_input`` has read and acknowledged.
    """

    def __init__(self, runner):
        self._runner = runner

    def collect(self):
        from ..metrics import _families

        Counter, Gauge = _families()
        out = ["computation", "output"]
        chunks = Gauge("pyrf_cluster_output_retained_chunks",
                       "Chunks kept until every consumer acknowledges them", labels=out)
        size = Gauge("pyrf_cluster_output_retained_bytes",
                     "Bytes kept until every consumer acknowledges them", labels=out)
        acked = Gauge("pyrf_cluster_output_acknowledged_seq",
                      "Highest seq a consumer acknowledged (its snapshot covers it)",
                      labels=out + ["consumer"])
        stalled = Gauge("pyrf_cluster_output_stalled",
                        "1 while retention is full and the producer paused", labels=out)
        stalls = Counter("pyrf_cluster_output_stalls",
                         "Times retention filled up and paused the producer", labels=out)
        read = Gauge("pyrf_cluster_input_seq", "Last seq read from the producer",
                     labels=["computation", "input"])
        sent = Gauge("pyrf_cluster_input_acknowledged_seq",
                     "Last seq acknowledged to the producer", labels=["computation", "input"])
        runner = self._runner
        for name in sorted(set(runner.running) | set(runner.finished_outputs)):
            served = runner.serving(name)
            for block, retention in sorted((served or (0, {}))[1].items()):
                chunks.add_metric([name, block], len(retention.entries))
                size.add_metric([name, block], retention.bytes)
                for consumer, seq in sorted(retention.acked.items()):
                    acked.add_metric([name, block, consumer], seq)
            running = runner.running.get(name)
            for block in list(running.graph.blocks.values()) if running else ():
                if isinstance(block, cluster_output):
                    stalled.add_metric([name, block.name], int(block.stalled))
                    stalls.add_metric([name, block.name], block.stalls)
                elif isinstance(block, cluster_input) and block.active:
                    read.add_metric([name, block.name], block._cursor)
                    sent.add_metric([name, block.name], block.acknowledged)
        yield from (chunks, size, acked, stalled, stalls, read, sent)
