"""
The consuming side of a stream that crosses a boundary.

A :class:`remote_block` stands, in this graph, for a block that runs in
another process or on another host.  It provides the same producer
interface as the remote block, so local blocks consume it as they would
the block itself.  While it has consumers it opens a stream on the worker
and long-polls it, asking each answer to linger: chunks are decoded and
emitted as their bytes arrive, while the worker goes on adding new ones to
the same answer.  The ``after`` cursor of each poll is the
acknowledgement, so a poll cut by a lost connection is repeated with
nothing lost or repeated.  When it is paused (its consumers are full) it
stops reading, the connection and then the worker's backlog fill, and the
remote producer pauses in turn.

Chunks are re-emitted with their own ``seq`` (:meth:`Block.forward`), so a
chunk has the seq its producing output gave it however many processes it
crossed, and a gap anywhere on the way is a gap here.

Three things keep a flaky connection from losing or mixing data silently:
the request that opens the stream carries a random ``key``, so that when
its answer is lost the retried request gets the same stream, not a second
one starting later; every poll names the stream's ``instance``, so that a
worker started again on the same port, serving another stream under the
same id, refuses it (410) and the graph fails saying so; and an answer
that delivered chunks before it was cut counts as progress, not as one
more failure in a row (the retries are for a worker that does not answer,
not for one whose connection breaks now and then).
"""

import collections
import hashlib
import json
import secrets
import time

from twisted.internet import defer, error, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..backoff import Backoff, RetrySetting
from ..chunk import ChunkStreamDecoder
from ..block import MAIN, Block
from ..edge import check_policy
from ..errors import ChunkDecodeError, RemoteError, WorkerUnreachable
from ..interfaces import KIND_INTERFACES
from . import shm
from .wire import read_stream_headers

# Nothing of twisted.web, treq or OpenSSL is imported here at import time:
# `import pyrf_blocks` loads this module (placed blocks build on
# remote_block), and only a block that streams needs them.

__all__ = ["remote_block", "http_client", "auth_headers", "read_json"]

log = Logger()

#: Longest a remote block delivers the chunks of an answer in one turn of
#: the reactor, seconds: the rest wait for the next turn, so that what the
#: consumers emitted meanwhile (the answers of this process's own streams,
#: which carry what the other process waits for) goes out between them.
#: (One turn per answer held a child of the seed's split computing 128
#: chunks, some 55 ms, before the first of their spectra left it.  With
#: 2 ms, a child of the heavy split wrote each chunk's spectra alone, one
#: answer write and one send per chunk: 10 ms let it join five or so, for
#: about 20 µs less CPU per chunk in the child and as much in the parent
#: reading them.)
DELIVERY_SLICE = 0.010


def http_client(graph, ca=None):
    """
    The treq client that ``graph``'s remote blocks and places use to reach
    workers that ``ca`` trusts: one persistent connection pool per graph
    and trust, kept in the graph's ``http_clients``, so that consecutive
    polls reuse their connection (see :mod:`.connections`).

    :param ca: the certificates an ``https://`` worker's certificate must
        be signed by, as :func:`.tls.read_ca` takes them; the system's
        certificate authorities by default.  A certificate that does not
        verify fails the request with a :class:`~pyrf_blocks.errors.TLSError`.
    """
    from .connections import new_client
    from .tls import read_ca, trust_key

    pem = read_ca(ca)
    key = trust_key(pem)
    client = graph.http_clients.get(key)
    if client is None:
        client = graph.http_clients[key] = new_client(graph.reactor, pem)
    return client


def auth_headers(token):
    """
    The ``Authorization`` header for ``token`` (none without a token).
    """
    return {b"Authorization": [b"Bearer " + token.encode("ascii")]} if token else {}


def failure_text(failure):
    """
    What went wrong, in words, for a log line or an error: the failure's
    message; for twisted.web's failures that wrap others (``ResponseFailed``:
    a connection lost mid-answer, say), theirs, each once, instead of the
    list's repr.
    """
    reasons = getattr(failure.value, "reasons", None)
    if reasons:
        texts = (failure_text(reason) if isinstance(reason, Failure) else str(reason)
                 for reason in reasons)
        return "; ".join(dict.fromkeys(text for text in texts if text))
    return failure.getErrorMessage() or failure.type.__name__


async def read_json(response, what):
    """
    The JSON body of a successful answer; :class:`RemoteError` naming
    ``what`` and the worker's message for any other.
    """
    body = await response.content()
    try:
        value = json.loads(body) if body else None
    except ValueError:
        value = None
    if not 200 <= response.code < 300:
        message = value.get("error") if isinstance(value, dict) else None
        raise RemoteError(f"{what}: HTTP {response.code}: "
                          f"{message or body[:200].decode('utf-8', 'replace')}")
    return value


class _AnswerReader(protocol.Protocol):
    """
    Decodes an answer's body as it arrives and hands each chunk to its
    ``remote_block`` at once; ``finished`` fires when the body is complete.

    A lingering answer may pause between chunks, but never much longer
    than the linger time it was asked for: silence beyond that (while this
    side is reading) is a dead connection, and the answer fails.
    """

    def __init__(self, block, finished):
        self.block = block
        self.finished = finished
        self.decoder = ChunkStreamDecoder(ring=block._ring)
        self.reactor = block.graph.reactor
        self.limit = block.linger + block.wait + 30
        self.paused = False
        self.heard = self.reactor.seconds()
        self.watch = None

    def connectionMade(self):
        self.watch = self.reactor.callLater(self.limit, self._check_silence)

    def dataReceived(self, data):
        self.heard = self.reactor.seconds()
        try:
            chunks = self.decoder.feed(data)
        except ChunkDecodeError:
            self._abort(Failure())
            return
        if chunks:
            self.block._arrived(chunks, self)

    def connectionLost(self, reason):
        from twisted.web.client import ResponseDone
        from twisted.web.http import PotentialDataLoss

        self._unwatch()
        if self.finished.called:
            return
        if not reason.check(ResponseDone, PotentialDataLoss):
            self.finished.errback(reason)
            return
        try:
            self.decoder.close()
        except ChunkDecodeError:
            self.finished.errback()
            return
        self.finished.callback(None)

    def pause(self):
        self.paused = True
        self.transport.pauseProducing()

    def resume(self):
        self.paused = False
        self.heard = self.reactor.seconds()
        self.transport.resumeProducing()

    def abort(self):
        self._unwatch()
        if self.transport is not None:
            self.transport.stopProducing()

    def _abort(self, failure):
        self.abort()
        if not self.finished.called:
            self.finished.errback(failure)

    def _check_silence(self):
        silent = self.reactor.seconds() - self.heard
        if self.paused or silent < self.limit:
            self.watch = self.reactor.callLater(
                self.limit - (0 if self.paused else silent), self._check_silence)
            return
        self.watch = None
        self._abort(Failure(error.TimeoutError(
            f"{self.block.stream_url} went silent for {silent:.0f} s in the middle "
            f"of an answer")))

    def _unwatch(self):
        if self.watch is not None and self.watch.active():
            self.watch.cancel()
        self.watch = None


def is_loopback(url):
    """
    Whether ``url`` names this host (see :func:`.shm.is_loopback_url`).
    """
    return url is not None and shm.is_loopback_url(url)


class remote_block(Block):
    """
    A block of another process, consumed here through a long-polled stream.

    :param url: the block's URL on its worker, ``http://host:port/blocks/NAME``.
    :param kind: kind of the chunks it produces.
    :param output: which of the remote block's outputs to read (``"late"``...);
        its main one by default.  It is this block's main output.
    :param inputs: producers of this graph that feed the remote block
        (when it was placed from here); checked like a local block's.
    :param token: the worker's bearer token, if it has one.
    :param ca: for an ``https://`` worker whose certificate is not signed by
        a CA of the system: the CA certificate(s) to trust, a PEM file's
        path or PEM ``bytes`` (see :mod:`.tls`).
    :param client: treq-like HTTP client (``treq.testing.StubTreq`` in
        tests); the graph's persistent pool by default (see
        :func:`http_client`).
    :param remote_policy: policy of the stream on the worker: ``block``
        (lossless, the default), ``drop_oldest`` or ``latest``.
    :param remote_maxsize: most unacknowledged chunks the worker keeps;
        under ``block`` it also stops at 32 MiB of samples, so the default
        is a deep window for small chunks and bounded memory for large
        ones.
    :param wait: longest a poll is held by the worker, seconds.
    :param linger: longest the worker keeps an answer open to add chunks
        as they come, seconds (0: an answer carries only the chunks
        already waiting, and each new one needs a poll).
    :param retries: failed attempts in a row (with backoff from
        ``backoff`` doubling up to ``max_backoff`` seconds) before the
        graph fails naming the worker; an answer cut after it delivered
        chunks starts the count again.  ``retries``, ``backoff`` and
        ``max_backoff`` may be set while the block streams: the next
        failure counts with them.
    :param connect_attempts: ``None`` (the default): ``retries`` count
        from the first attempt, for a worker that may still be starting.
        A number: the attempts to open the stream tried again before the
        worker was first reached in this run (0: the first refused
        connection, unknown name or timeout fails the graph, naming the
        worker); ``retries`` count once the stream has opened, for a
        worker lost after it was reached.
    :param shared_memory: for a worker on this host (a loopback URL) and a
        ``block`` stream: ask for the arrays through shared memory (see
        :mod:`.shm`); where the worker cannot, or this process cannot map
        it, they come in the body as from any other host.
    """

    type_name = "remote_block"
    #: Inputs given here (a block placed from this graph) are read by the
    #: worker, not by this stand-in.
    local_inputs = False
    # Set while the block streams (it started when a sink connected), they
    # take effect at the next failure.
    retries = RetrySetting("retries")
    backoff = RetrySetting("initial")
    max_backoff = RetrySetting("maximum")

    def __init__(self, url, kind, *, output=MAIN, inputs=(), token=None, ca=None,
                 client=None, remote_policy="block", remote_maxsize=256, wait=20.0,
                 linger=20.0, retries=8, backoff=0.1, max_backoff=2.0,
                 connect_attempts=None, shared_memory=True, **kwargs):
        if kind not in KIND_INTERFACES:
            raise ValueError(f"remote_block {url!r}: unknown kind {kind!r}; "
                             f"known: {', '.join(KIND_INTERFACES)}")
        if not isinstance(output, str) or not output:
            raise ValueError(f"remote_block {url!r}: output must be an output name, "
                             f"got {output!r}")
        #: The output of the remote block that this block reads.
        self.remote_output = output
        self.url = self.worker_url = None
        if url is not None:
            self.set_url(url)
        self._kind = kind
        self.token = token
        from .tls import read_ca  # OpenSSL: loaded by the first remote block
        try:
            self.ca = read_ca(ca)
        except ValueError as error:
            raise ValueError(f"remote_block {url!r}: {error}") from None
        self._client = client
        self.remote_policy = remote_policy
        self.remote_maxsize = check_policy(remote_policy, remote_maxsize)
        self.wait = wait
        self.linger = linger
        self._backoff = None
        self.connect_attempts = connect_attempts
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.shared_memory = shared_memory
        #: The stream's shared-memory ring, mapped (``None``: arrays come
        #: in the body).
        self._ring = None
        #: Chunks missing from the sequence received (drops, as seen here).
        self.dropped = 0
        #: Chunks the worker reports it dropped from this stream.
        self.remote_dropped = 0
        self.stream_url = None
        #: The instance of the stream read (see :mod:`.wire`), once opened.
        self.instance = None
        self._open_key = None
        self._running = False
        self._busy = None
        self._undelivered = collections.deque()
        self._delivering = False
        #: The next turn's delivery, when a turn's slice ran out.
        self._next_slice = None
        self._reader = None
        #: Graph.stop came while the stream was being opened.
        self._stop_when_open = False
        #: Why the last attempt to open the stream failed, until one works.
        self._unreached = None
        super().__init__(*inputs, **kwargs)

    def __repr__(self):
        return f"<{self.type_name} {self.name!r} at {self.source}>"

    @property
    def source(self):
        """
        What this block reads, as messages name it: the remote block's URL,
        and its output unless it is the main one.
        """
        if self.remote_output == MAIN:
            return self.url
        return f"{self.url} output {self.remote_output!r}"

    def set_url(self, url):
        """
        Where the block is: ``http://host:port/blocks/NAME``.
        """
        self.url = url.rstrip("/")
        self.worker_url = self.url.split("/blocks/")[0]

    def output_kind(self):
        return self._kind

    def where(self):
        """
        The worker, as error messages name it.
        """
        return self.worker_url

    @property
    def client(self):
        if self._client is None:
            self._client = http_client(self.graph, ca=self.ca)
        return self._client

    # Lazy connection: stream while something here consumes this block.

    def on_start(self):
        self._running = True
        self._cursor = -1
        self._meta = None
        self._open_key = None
        self._backoff = Backoff(self.graph.reactor, self.retries, self.backoff, self.max_backoff,
                                first_retries=self.connect_attempts)
        self._stop_when_open = False
        self._unreached = None
        self._undelivered.clear()
        self._step()

    def on_stop(self):
        self._halt()
        self._close_stream()

    def halt(self):
        """
        Stop reading the stream without ending it (the graph failed): the
        poll in flight and any retry are cancelled, and the worker's stream
        is closed.
        """
        self.on_stop()

    def stopProducing(self):
        """
        End this stream here (``Graph.stop``): consumers see end-of-stream
        after what they already have, and the worker's stream is closed.

        Stopped while its stream could not be opened yet (the worker not
        reached, or refusing), it fails the graph instead, naming the
        worker and the last error: a run that got nothing from a worker it
        could not reach has failed, whether or not its retries were spent.
        """
        if self._running and self.stream_url is None and self._unreached is not None:
            self._give_up(Failure(WorkerUnreachable(
                f"{self.type_name} {self.name!r}: worker {self.where()} was not reached "
                f"before the graph stopped ({self._unreached})")))
            return
        self.on_stop()
        self.end()

    def stop_once_open(self):
        """
        ``Graph.stop`` for a block whose stream ends where it starts (a
        placed block, see :mod:`.placement`): call :meth:`stream_stopped`
        as soon as the stream is open.  While an attempt to open it is in
        flight (the block being created on its worker, which starts its
        sources there only when the stream opens), that attempt settles
        first, and one that fails is not retried: the stream then ends here
        at once, as it does when no attempt is in flight, having carried
        nothing.
        """
        if self.stream_url is not None:
            self.stream_stopped()
        elif self._busy is not None and self._running:
            self._stop_when_open = True
        else:
            remote_block.stopProducing(self)

    def stream_stopped(self):
        """
        Extension point of :meth:`stop_once_open`: end the open stream;
        here, at once (see :meth:`stopProducing`).
        """
        remote_block.stopProducing(self)

    def _halt(self):
        self._running = False
        if self._next_slice is not None:
            if self._next_slice.active():
                self._next_slice.cancel()
            self._next_slice = None
        if self._backoff is not None:
            self._backoff.cancel()
        if self._busy is not None:
            busy, self._busy = self._busy, None
            busy.cancel()

    def on_pause(self):
        """
        Consumers are full: the rest of the answer waits in the connection,
        then in the worker's backlog.
        """

    def on_resume(self):
        self._deliver()
        self._read_on()

    def _read_on(self):
        """
        Read the answer on, or poll again, once everything is delivered.
        """
        if self.paused or self._undelivered:
            return
        if self._reader is not None:
            self._reader.resume()
        self._step()

    def _close_stream(self):
        url, self.stream_url = self.stream_url, None
        self._unmap()
        if url is not None:
            self.graph.add_cleanup(self.discard_stream(url))

    def discard_stream(self, url):
        """
        Close the stream at ``url`` on the worker; a Deferred firing (with
        ``None``, whatever the answer) once it is done.
        """
        d = self.client.delete(url, headers=auth_headers(self.token),
                               reactor=self.graph.reactor, timeout=10)
        d.addCallback(lambda response: response.content())
        d.addCallbacks(lambda _: None, lambda failure: log.debug(
            "{block}: closing {url} failed: {error}", block=self, url=url,
            error=failure_text(failure)))
        return d

    def release_remote(self):
        """
        The stream has ended here: close it on the worker.  A Deferred
        (that the graph's :meth:`~pyrf_blocks.graph.Graph.done` waits for).
        """
        url, self.stream_url = self.stream_url, None
        self._unmap()
        return self.discard_stream(url) if url is not None else defer.succeed(None)

    # The polling loop: one request at a time.

    def prepare(self):
        """
        Whatever must exist on the worker before a stream can be opened
        (a placed block creates itself there); a Deferred.
        """
        return defer.succeed(None)

    def _step(self):
        if (not self._running or self._busy is not None or self.paused
                or self._undelivered or self.ended or self.graph.failure is not None):
            return
        if self.stream_url is None:
            action = self._open_stream()
        else:
            action = self._poll()
        self._busy = defer.ensureDeferred(action)
        self._busy.addCallbacks(self._stepped, self._step_failed)

    def _stepped(self, _):
        self._busy = None
        self._backoff.succeeded()
        if self.stream_url is not None:
            self._unreached = None
            self._backoff.reach()  # (from now on a failure is a worker lost)
        if self._stop_when_open and self.stream_url is not None:
            self._stop_when_open = False
            self.stream_stopped()
        self._step()

    async def _open_stream(self):
        await self.prepare()
        if self._open_key is None:
            # Kept until the stream is open: a retry after a lost answer
            # gets the stream the lost answer named.
            self._open_key = secrets.token_urlsafe(18)
        answer = await self.open_stream()
        if answer.get("kind") != self.kind:
            raise RemoteError(f"{self.source} produces {answer.get('kind')!r} chunks, "
                              f"not {self.kind!r}")
        self.stream_url = self.worker_url + answer["path"]
        self.instance = answer.get("instance")
        self._open_key = None
        self._map(answer.get("shm"))

    def wants_shared_memory(self):
        """
        Whether to ask the worker for the arrays through shared memory.
        """
        return (self.shared_memory and self.remote_policy == "block" and shm.available()
                and is_loopback(self.url))

    def _map(self, description):
        """
        Map the ring the worker offered, if it did; fall back to the body
        (logged) if this process cannot.
        """
        self._unmap()
        if description is None:
            return
        try:
            self._ring = shm.RingReader(description)
        except (OSError, ValueError) as error:
            log.info("{block}: cannot map the shared memory of {url} ({error}); its "
                     "arrays come in the answers' bodies", block=self, url=self.stream_url,
                     error=error)

    def _unmap(self):
        ring, self._ring = self._ring, None
        if ring is not None:
            ring.close()

    @property
    def open_key(self):
        """
        The key of the request opening this block's stream, while it is
        being opened (see :mod:`.worker`).
        """
        return self._open_key

    def open_stream(self):
        """
        Open the stream this block reads on the worker: a Deferred firing
        with the worker's answer (``{"id", "kind", "path", "instance"...}``).
        """
        d = defer.ensureDeferred(self.request_streams([self.remote_output],
                                                      key=self._open_key))
        return d.addCallback(lambda answers: answers[0])

    @staticmethod
    def joint_key(keys):
        """
        One key for a request that opens the streams of several stand-ins
        together, the same whenever the same stand-ins retry it.
        """
        keys = sorted(key for key in keys if key)
        if not keys:
            return None
        return hashlib.sha256("|".join(keys).encode("ascii")).hexdigest()[:32]

    async def request_streams(self, outputs, key=None):
        """
        Open streams of the remote block's ``outputs`` in one request (so
        that they start together); the worker's answers, in order.  With
        ``key``, a retry of a request whose answer was lost gets the
        streams that request opened.
        """
        spec = {"policy": self.remote_policy, "maxsize": self.remote_maxsize}
        if self.wants_shared_memory():
            spec["shm"] = True
        if key is not None:
            spec["key"] = key
        if len(outputs) > 1:
            spec["outputs"] = outputs
        elif outputs[0] != MAIN:
            spec["output"] = outputs[0]  # (older workers know only main)
        response = await self.client.post(
            self.url + "/streams", headers=auth_headers(self.token), json=spec,
            reactor=self.graph.reactor, timeout=30)
        what = self.source if outputs == [self.remote_output] else (
            f"{self.url} outputs {', '.join(map(repr, outputs))}")
        answer = await read_json(response, f"opening a stream of {what}")
        return answer["streams"] if len(outputs) > 1 else [answer]

    async def _poll(self):
        params = {"after": str(self._cursor), "wait": f"{self.wait:g}",
                  "linger": f"{self.linger:g}"}
        if self.instance is not None:
            params["instance"] = self.instance
        if self._ring is not None:
            # Short heads (a worker older than them reads it as no ring,
            # and sends the arrays in the body).
            params["shm"] = "2"
        response = await self.client.get(
            self.stream_url, headers=auth_headers(self.token), params=params,
            reactor=self.graph.reactor, timeout=self.wait + 30, unbuffered=True)
        if response.code not in (200, 204):
            await read_json(response, f"stream {self.stream_url}")
        headers = read_stream_headers(response.headers)
        if self.instance is not None and headers.instance not in (None, self.instance):
            raise RemoteError(f"{self.stream_url} answered as stream instance "
                              f"{headers.instance}, not {self.instance}, the one opened: "
                              "it is another stream (its worker was started again)")
        self.remote_dropped = headers.dropped
        if self._cursor == -1 and headers.start_seq is not None:
            # A stream opened mid-way: what the block emitted before it is
            # not missing here, but drops from its first chunk on are.
            self._cursor = headers.start_seq - 1
        if response.code == 200:
            await self._read_answer(response)
        if headers.ended and self._running and not self._undelivered:
            self._running = False
            # Before the end: the graph is done once the worker is tidied.
            self.graph.add_cleanup(self.release_remote())
            self.end()

    def _read_answer(self, response):
        finished = defer.Deferred(lambda _: reader.abort())
        reader = self._reader = _AnswerReader(self, finished)

        def done(result):
            self._reader = None
            return result
        response.deliverBody(reader)
        return finished.addBoth(done)

    def _arrived(self, chunks, reader):
        """
        Chunks decoded from an answer: emit them, and stop reading while
        the consumers are full.
        """
        if not self._running:
            return
        if chunks[-1].seq > self._cursor:
            # Progress: an answer cut after this is not one more failure
            # in a row of a worker that does not answer.
            self._backoff.succeeded()
        next_seq = self.outputs[MAIN].next_seq
        for chunk in chunks:
            if chunk.kind != self.kind:
                reader._abort(Failure(ChunkDecodeError(
                    f"{self.stream_url} sent a {chunk.kind!r} chunk in a "
                    f"{self.kind!r} stream")))
                return
            if self._cursor < chunk.seq < next_seq:
                reader._abort(Failure(RemoteError(
                    f"{self.stream_url} sent seq {chunk.seq}, but this graph already "
                    f"had seq {next_seq - 1} of {self.source}: its numbering went "
                    "back (the block was made anew, or its worker restarted)")))
                return
        self._undelivered.extend(chunks)
        self._deliver()
        if self._undelivered:
            reader.pause()

    def _deliver(self):
        if self._delivering:
            return  # resumed by a consumer of the chunk being emitted
        self._delivering = True
        try:
            self._deliver_in_order()
        finally:
            self._delivering = False

    def _next_turn(self):
        self._next_slice = None
        self.on_resume()

    def _deliver_in_order(self):
        undelivered = self._undelivered
        deadline = None
        while undelivered and not self.paused and self._running:
            if deadline is None:
                deadline = time.perf_counter() + DELIVERY_SLICE
            elif time.perf_counter() >= deadline:
                # The rest in the next turn (the answer's reader stays
                # paused, and no poll goes out, until all are delivered).
                if self._next_slice is None:
                    self._next_slice = self.graph.reactor.callLater(0, self._next_turn)
                return
            chunk = undelivered.popleft()
            if chunk.seq <= self._cursor:
                continue  # already delivered: an answer repeated after a cut
            if chunk.seq > self._cursor + 1:
                self.dropped += chunk.seq - self._cursor - 1
            self._cursor = chunk.seq
            if self._ring is not None:
                # From now on its slot is released when the chunk is let go.
                self._ring.delivered(chunk.data, chunk.seq)
            if chunk.meta is not self._meta and chunk.meta == self._meta:
                # The same object as before, as in one process, so that
                # blocks that cache on the meta's identity keep their cache
                # (the chunks of an answer of short heads share one already).
                chunk.meta = self._meta
            self._meta = chunk.meta
            self.forward(chunk)

    def _step_failed(self, failure):
        self._busy = None
        if not self._running:
            return None
        if failure.check(RemoteError, ChunkDecodeError):
            self._give_up(failure)
            return None
        error = failure_text(failure)
        if self.stream_url is None:
            self._unreached = error
        if self._stop_when_open:  # stopped while opening: nothing to retry for
            self._stop_when_open = False
            remote_block.stopProducing(self)
            return None
        backoff = self._backoff
        if not backoff.retry(self, f"worker {self.where()} failed: {error}", self._step):
            if backoff.connecting:
                why = f"cannot reach the worker {self.where()}: {error}"
                if backoff.failures > 1:
                    why += (f"; gave up after {backoff.failures - 1} connection attempt(s) "
                            f"over {backoff.elapsed:.1f} s")
            else:
                why = (f"worker {self.where()} did not answer after {backoff.failures} "
                       f"attempts over {backoff.elapsed:.1f} s ({error})")
            self._give_up(Failure(WorkerUnreachable(f"{self.label}: {why}")))
        return None

    def _give_up(self, failure):
        self._halt()
        self._unmap()  # (a worker that died leaves its ring to this mapping alone)
        self.graph.fail(self, failure)
