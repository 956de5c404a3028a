"""
MQTT topics as a records source of a block graph, acknowledged only once
their effect is durable.

:class:`mqtt_source` subscribes (one client connection,
:class:`~pyrf_blocks.sources.mqtt.MQTTSource`, QoS 1 on a persistent
session) and emits the messages of each reactor turn as one records chunk,
every message at a device time from one strictly increasing clock.  It
keeps each message's acknowledgement, in time order, and gives it only
when the *durable watermark* (:mod:`pyrf_blocks.durable`) has passed the
message's time: every durable sink downstream has committed the effect of
the rows before it.

**After a restart.**  With its rows, each durable sink stores, in the same
transaction, the source's *marks*: the packet id, time and a hash of topic
and payload of every message not yet acknowledged (and of those
acknowledged in the last ``ack_grace`` seconds, whose acknowledgement may
not have left the process), beside the device time its rows cover.  The restarted source reads them back before it
connects; a message the broker delivers again gets its first time, so
rows keyed by time (``n_records``, ``time_window``, ``last_value``) are
written over, not twice.  One that every durable sink had already
committed (before the least of their stored times) is acknowledged at
once and not emitted again; a sink leaves out the rows before its own
stored time, so a window computed again from part of its rows does not
overwrite the stored one.  The first chunk starts at that least time.
"""

import json
import time as _time
from collections import Counter, deque
from types import SimpleNamespace
from urllib.parse import urlsplit

import numpy as np
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from ..block import Source
from ..interfaces import IAcknowledgingSource
from ..params import Param
from ..registry import register

__all__ = ["mqtt_source", "parse_broker"]

log = Logger()

DECODINGS = ("number", "text", "bytes", "json")


def parse_broker(url):
    """
    ``(host, port)`` of ``mqtt://HOST:PORT``, ``mqtt://HOST`` (port 1883)
    or ``HOST:PORT``; ValueError saying how to write it.
    """
    text = url if "://" in url else f"mqtt://{url}"
    parts = urlsplit(text)
    try:
        port = parts.port or (1883 if "://" in url else None)
    except ValueError:
        port = None
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname or port is None or \
            parts.path not in ("", "/"):
        raise ValueError(f"{url!r} is not a broker address; write HOST:PORT or "
                         "mqtt://HOST:PORT, such as 127.0.0.1:1883")
    return parts.hostname, port


def _check_broker(url):
    parse_broker(url)
    return url


def _check_topics(topics):
    topics = [topics] if isinstance(topics, str) else list(topics)
    if not topics:
        raise ValueError("name at least one topic")
    for topic in topics:
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"topic {topic!r} is not a topic name")
        if "+" in topic or "#" in topic:
            raise ValueError(f"topic {topic!r}: wildcards are not supported; name each "
                             "topic")
    return topics


@register(remote=False)
@implementer(IAcknowledgingSource)
class mqtt_source(Source):
    """
    The messages of ``topics`` on the MQTT broker ``broker`` as records:
    one row per message at the device time it arrived (ns, one strictly
    increasing clock for all the topics), its payload decoded by
    ``decode``:

    * ``number``: the payload's text as a float (``"21.5"``);
    * ``text``: the payload as UTF-8 text;
    * ``bytes``: the payload as it is;
    * ``json``: a JSON object whose ``fields`` are numbers: one numeric
      field per name (``{"t": 21.5, "rh": 40}``).

    A payload that does not decode is counted in :attr:`bad` by reason and
    gives no row.  Each topic of a source is one stream: give each topic
    its own source (and ``client_id``) to keep them apart.

    With ``qos`` 1 (the default) a message is acknowledged only once its
    effect is durable in every durable sink downstream (``sensor_store``),
    or, for other sinks, once taken; see :mod:`pyrf_blocks.blocks.mqtt`.
    The session (``client_id``) outlives the process: a restarted graph
    with the same ``client_id`` gets what it did not acknowledge.

    :param receive_maximum: unacknowledged messages the broker may send
        (MQTT 5): what waits in the graph is bounded by it.
    :param ack_grace: seconds an acknowledged message's mark is still
        stored (its acknowledgement may be lost with the process).
    :param protocol: ``"5"`` or ``"3.1.1"``.
    """

    type_name = "mqtt_source"
    kind = "records"
    param_rules = {
        "broker": Param(types=(str,), check=_check_broker),
        "topics": Param(types=(str, list), check=_check_topics),
        "qos": Param(choices=(0, 1)),
        "client_id": Param(types=(str,)),
        "decode": Param(choices=DECODINGS),
        "fields": Param(types=(list,), nullable=True),
        "receive_maximum": Param("count", minimum=1, maximum=65535),
        "ack_grace": Param("s", minimum=0),
        "protocol": Param(choices=("5", "3.1.1")),
    }

    def __init__(self, broker="mqtt://127.0.0.1:1883", topics=(), qos=1,
                 client_id="pyrf-blocks-graph", decode="number", fields=None,
                 receive_maximum=1000, ack_grace=2.0, protocol="5", **kwargs):
        what = f"mqtt_source {kwargs.get('name') or ''}".strip()
        try:
            self.host, self.port = parse_broker(broker)
            topics = _check_topics(topics)
        except ValueError as error:
            raise ValueError(f"{what}: {error}") from None
        if decode not in DECODINGS:
            raise ValueError(f"{what}: decode {decode!r}; one of {', '.join(DECODINGS)}")
        if decode == "json" and not fields:
            raise ValueError(f"{what}: decode json needs fields: the names of the "
                             "numbers to take from each object")
        if fields and decode != "json":
            raise ValueError(f"{what}: fields are for decode json, not {decode}")
        self.broker = broker
        self.topics = topics
        self.qos = qos
        self.client_id = client_id
        self.decode = decode
        self.fields = list(fields) if fields else None
        self.receive_maximum = receive_maximum
        self.ack_grace = float(ack_grace)
        self.protocol = str(protocol)
        #: The client, once started (its ``stats``: messages, duplicates...).
        self.client = None
        #: Payloads that gave no row, by reason.
        self.bad = Counter()
        #: Messages acknowledged; received again and already durable
        #: (acknowledged at once); received again while still in the graph.
        self.stats = Counter()
        super().__init__(**kwargs)
        self.meta = {"quantity": "mqtt", "topics": list(self.topics)}
        if self.fields:
            self._dtype = np.dtype([(name, "<f8") for name in self.fields])

    # Runtime hooks.

    def reset(self):
        self._rows = []          # (time, value or None) of this reactor turn
        self._emit_call = None
        self._next_start = None  # the next chunk's start: the last one's end
        self._unacked = deque()  # (time, ack or None, mid, mark text)
        self._in_graph = set()   # mids emitted and not yet acknowledged
        self._recent = deque()   # (acknowledged at, mid, mark text)
        self._resume = None
        self._running = False
        self._ack_loop = None
        self._replays_seen = 0
        self._draining = False
        self._emitted_at = 0.0

    def on_start(self):
        self._running = True
        # The sinks are made after their sources: read what they stored
        # once the graph is built.
        self.graph.reactor.callLater(0, self._begin)

    @defer.inlineCallbacks
    def _begin(self):
        from ..durable import durable_sinks
        from ..sources.mqtt import MQTTSource

        if not self._running:
            return
        prefix = f"mqtt:{self.client_id}:"
        cursors, throughs = {}, []
        try:
            for sink in durable_sinks(self):
                marks = yield sink.stored_cursors(prefix)
                for key, value in marks.items():
                    if value.partition(" ")[2]:  # a row of no marks holds nothing
                        cursors[key] = value
                throughs.append((yield sink.stored_through()))
        except Exception:
            self.graph.fail(self, _failure())
            return
        if throughs and None not in throughs:
            self._resume = min(throughs)
            self._next_start = self._resume
        if not self._running:
            return
        self._replays_seen = 0
        self.client = MQTTSource(self.graph.reactor, self.host, self.port, self.client_id,
                                 cursors=cursors, receive_maximum=self.receive_maximum,
                                 protocol=self.protocol, qos=self.qos, one_clock=True)
        self.client.set_routes({topic: SimpleNamespace(receive=self._message)
                                for topic in self.topics})
        self.client.start()
        # Sinks that keep nothing durable (a viewer) say nothing when they
        # have taken rows: look again now and then.
        self._ack_loop = LoopingCall(self._tick)
        self._ack_loop.clock = self.graph.reactor
        self._ack_loop.start(0.2, now=False)

    def on_stop(self):
        self._running = False
        if self._ack_loop is not None and self._ack_loop.running:
            self._ack_loop.stop()
        if self._emit_call is not None and self._emit_call.active():
            self._emit_call.cancel()
        self._emit_call = None
        if self.client is not None and not self._draining:
            # What is not acknowledged stays with the broker's session.
            self.client.stop()

    def stopProducing(self):
        """
        End the stream (the graph stops): what arrived is emitted, and the
        connection stays until every sink has finished, so that what the
        sinks commit meanwhile is acknowledged; later messages are left to
        the broker.  The graph is not done (:meth:`Graph.done
        <pyrf_blocks.graph.Graph.done>`) before those acknowledgements have
        left and the connection is closed (:meth:`Graph.add_cleanup
        <pyrf_blocks.graph.Graph.add_cleanup>`): a process that ends as
        soon as its graph is done (``pyrf-blocks run`` stopped by a signal)
        leaves the broker nothing acknowledged to deliver again.
        """
        self._emit()
        self._draining = self.client is not None
        if self._draining:
            # Before the stream ends: the sinks may finish within it.
            client = self.client
            finished = defer.DeferredList([sink.wait_finished() for sink in self.graph.sinks])
            self.graph.add_cleanup(finished.addCallback(self._drained, client))
            # A failed graph is done at once: close the connection anyway.
            self.graph.done().addErrback(lambda _: client.stop())
        super().stopProducing()

    def _drained(self, result, client):
        self._acknowledge()  # the last blocks have finished: all they took is done
        return client.stop()  # fires once the PUBACKs and DISCONNECT have been written

    def on_resume(self):
        if self._rows:
            self._schedule()

    # Messages in.

    def _message(self, topic, time, payload, ack, mark):
        if not self._running:
            return  # the stream has ended: left unacknowledged, for the next run
        mid = int(mark[1].partition(" ")[0])
        # The client counts a message it recognises as delivered before.
        replayed = self.client.stats["replays"] != self._replays_seen
        self._replays_seen = self.client.stats["replays"]
        if replayed and self._resume is not None and time < self._resume:
            # Committed by every durable sink before the restart.
            self.stats["durable_already"] += 1
            if ack is not None:
                ack()
            return
        if replayed and mid in self._in_graph:
            self.stats["in_graph_already"] += 1  # its first delivery will be acknowledged
            return
        last = self._next_start if not self._rows else self._rows[-1][0] + 1
        if last is not None and time < last:
            if replayed:
                # Delivered again out of order: a new time (it may be stored twice).
                self.stats["out_of_order"] += 1
                log.warn("{block}: a message of {topic} delivered again out of order "
                         "takes a new time", block=self.label, topic=topic)
            time = last  # (a new one: the wall clock went back past an idle chunk)
        self._rows.append((time, self._decoded(payload)))
        if ack is not None:  # QoS 1: acknowledged once durable
            digest = mark[1].split(" ")[2]
            self._unacked.append((time, ack, mid, f"{mid} {time} {digest}"))
            self._in_graph.add(mid)
        self._schedule()

    def _decoded(self, payload):
        try:
            if self.decode == "bytes":
                return bytes(payload)
            if self.decode == "text":
                return payload.decode("utf-8")
            if self.decode == "number":
                return float(payload)
            obj = json.loads(payload)
            return tuple(float(obj[name]) for name in self.fields)
        except UnicodeDecodeError:
            self.bad["encoding"] += 1
        except (ValueError, TypeError, KeyError, AttributeError):
            self.bad[self.decode] += 1
        return None

    def _schedule(self):
        if self._emit_call is None and self._running:
            self._emit_call = self.graph.reactor.callLater(0, self._emit)

    def _tick(self):
        """
        Every 0.2 s: acknowledge what sinks that say nothing have taken;
        and while messages wait for their acknowledgement with none
        arriving, say once a second that the stream is complete up to now
        (an empty chunk), so that a window waiting for time to pass closes.
        """
        self._acknowledge()
        reactor = self.graph.reactor
        if (self._unacked and not self._rows and self._running and not self.paused
                and self._next_start is not None
                and reactor.seconds() - self._emitted_at >= 1.0):
            now = _time.time_ns()
            if now > self._next_start:
                self._emitted_at = reactor.seconds()
                self.emit_records([], self._empty(), self._next_start, now, self.meta)
                self._next_start = now
                self._acknowledge()

    def _empty(self):
        return np.zeros(0, self._dtype if self.fields else np.float64)

    def _emit(self):
        self._emit_call = None
        self._emitted_at = self.graph.reactor.seconds()
        if not self._rows or (self.paused and self._running):
            return
        rows, self._rows = self._rows, []
        good = [(time, value) for time, value in rows if value is not None]
        times = [time for time, _ in good]
        if self.decode == "number":
            values = np.array([value for _, value in good], np.float64)
        elif self.decode == "json":
            values = np.array([value for _, value in good], self._dtype)
        else:
            values = [value for _, value in good] or self._empty()
        start = rows[0][0] if self._next_start is None else min(self._next_start, rows[0][0])
        end = rows[-1][0] + 1
        self._next_start = end
        self.emit_records(times, values, start, end, self.meta)
        self._acknowledge()

    def summary(self):
        """
        One line on what came and what was acknowledged (``pyrf-blocks
        run`` prints it at the end).
        """
        client = self.client.stats if self.client is not None else {}
        stats = self.stats
        again = client.get("replays", 0) - stats["durable_already"] - stats["in_graph_already"]
        return (f"{client.get('messages', 0)} message(s), {stats['acknowledged']} "
                f"acknowledged; {client.get('duplicates', 0)} delivered again, of which "
                f"{stats['durable_already']} durable already, {stats['in_graph_already']} "
                f"still in the graph, {again} written again at their first time; "
                f"{stats['out_of_order']} out of order; {sum(self.bad.values())} bad "
                "payload(s)")

    # Acknowledgement.

    def durable_advanced(self):
        self._acknowledge()

    def _acknowledge(self):
        from ..durable import watermark

        through = watermark(self)
        unacked = self._unacked
        if through is not None:
            now = self.graph.reactor.seconds()
            while unacked and unacked[0][0] < through:
                _, ack, mid, text = unacked.popleft()
                self._in_graph.discard(mid)
                ack()
                self.stats["acknowledged"] += 1
                self._recent.append((now, mid, text))
        horizon = self.graph.reactor.seconds() - self.ack_grace
        recent = self._recent
        while recent and recent[0][0] < horizon:
            recent.popleft()

    def durable_marks(self, sink, taken):
        entries = {mid: text for _, mid, text in self._recent}
        for time, _, mid, text in self._unacked:
            if time >= taken:
                break
            entries[mid] = text
        now = int(self.graph.reactor.seconds() * 1e9)
        return {f"mqtt:{self.client_id}:{sink.name}": f"{now} " + ";".join(entries.values())}


def _failure():
    from twisted.python.failure import Failure

    return Failure()
