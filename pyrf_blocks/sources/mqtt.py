"""
MQTT in: one client connection for every topic the loaded pipelines name.

**A Twisted protocol, not paho's loop.**  The connection is a Twisted
TCP connection to the broker, and :mod:`.mqtt_packets` makes and cuts the
packets: every read of up to 64 KiB is cut into packets in one loop, and
the acknowledgements of a written batch leave in one write.  paho-mqtt 2
driven from the reactor (this module's first version) read each packet
with three ``recv`` calls and built several objects per message; on this
VM it took 25 µs (MQTT 3.1.1) to 45 µs (MQTT 5) of CPU per message, more
than the whole pipeline behind it (``benchmarks/sensor.py``).  Only what
a QoS 1 subscriber needs is spoken: CONNECT with a persistent session,
SUBSCRIBE, UNSUBSCRIBE, PUBLISH in, PUBACK out, PINGREQ; every callback,
pipeline stage and acknowledgement runs on the reactor thread.

**Nothing acknowledged before it is durable.**  The session is MQTT 5
with a clean start of False and a session that outlives a disconnection
(or MQTT 3.1.1 with a clean session of False), and QoS 1: a message is
acknowledged only when the batch holding its rows has been written (see
:class:`~pyrf_blocks.sensors.buffering.Buffer`), and only on the
connection that brought it.  A process killed before that, or a
connection lost, leaves the message unacknowledged, and the broker
delivers it again (with the DUP flag) on the next connection.  The client's *receive
maximum* bounds how many unacknowledged messages the broker sends, which
bounds what waits in memory when the store is away.

**Exactly once in the store.**  Each message gets a time (ns) when it
first arrives, strictly increasing per topic, and rows are keyed by
(topic, time).  The batch also stores, as marks (one cursor row per
batch, :meth:`~pyrf_blocks.sensors.buffering.Buffer.mark`), each packet
id with its message's time and a hash of topic and payload.  A redelivered message (DUP set) whose
packet id, topic and payload match the stored cursor gets its first
time again, so writing it again changes nothing, and an aggregation that
counted it skips it.  (Packet ids are reused only after acknowledgement,
so a matching cursor is either this message, or an acknowledged one with
the very same topic and payload under the same packet id — the one case
where a redelivery would be taken for a replay.)

**Subscriptions follow the pipelines.**  :meth:`MQTTSource.set_routes`
subscribes to new topics and unsubscribes from dropped ones on the open
connection; a reconnection without a session subscribes to them all.
Reconnection waits with :class:`~pyrf_blocks.backoff.Backoff`.
"""


import time as _time
import zlib

from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..backoff import Backoff
from ..errors import MQTTError
from . import mqtt_packets as packets

__all__ = ["MQTTSource"]

log = Logger()


class _Connection(Protocol):
    """
    One TCP connection to the broker: bytes in are cut into packets for
    the source; PUBACKs asked for are sent together at the end of the
    reactor's turn.  Once it is lost or closing, nothing more is sent: an
    acknowledgement for it is dropped, and the broker delivers the message
    again on the next connection.
    """

    def __init__(self, source):
        self.source = source
        self.reader = packets.PacketReader(source.protocol)
        self.open = False
        self._acks = []
        self._flush = None

    def connectionMade(self):
        self.open = True
        self.source._connection_made(self)

    def dataReceived(self, data):
        try:
            found = self.reader.feed(data)
        except MQTTError as error:
            log.error("{source}: {error}; reconnecting", source=self.source, error=error)
            self.close(abort=True)
            return
        self.source._packets(self, found)

    def connectionLost(self, reason):
        self.open = False
        self._acks = []
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        self._flush = None
        self.source._connection_lost(self, reason)

    def send(self, data):
        if self.open:
            self.transport.write(data)

    def ack(self, mid):
        """
        Acknowledge the PUBLISH ``mid`` (with the others of this turn).
        """
        if not self.open:
            return
        self._acks.append(mid)
        if self._flush is None:
            self._flush = self.source.reactor.callLater(0, self.flush_acks)

    def flush_acks(self):
        """
        Send the PUBACKs asked for since the last time, in one write.
        """
        flush, self._flush = self._flush, None
        if flush is not None and flush.active():
            flush.cancel()  # called before its turn: by close
        acks, self._acks = self._acks, []
        if acks and self.open:
            self.transport.write(packets.puback(acks))

    def close(self, abort=False):
        """
        Send what is due and DISCONNECT, then close (``abort``: at once).
        """
        if not self.open:
            return
        if abort:
            self.open = False
            self.transport.abortConnection()
            return
        self.flush_acks()
        self.transport.write(packets.DISCONNECT_PACKET)
        self.open = False
        self.transport.loseConnection()


class _Ack:
    """
    The acknowledgement of one message on the connection that brought it.
    """

    __slots__ = ("connection", "mid")

    def __init__(self, connection, mid):
        self.connection, self.mid = connection, mid

    def __call__(self):
        self.connection.ack(self.mid)


class MQTTSource:
    """
    One MQTT client on ``reactor``: messages of the routed topics go to
    their receivers' ``receive(topic, time, payload, ack, mark)``.

    :param reactor: the reactor (TCP connections, time).
    :param host, port: the broker.
    :param client_id: the session's name; a restarted process with the same
        id continues the session (and gets what it did not acknowledge).
    :param cursors: ``{key: value}`` stored by earlier runs
        (``store.cursors(source.cursor_prefix)``), to recognise redeliveries.
    :param receive_maximum: unacknowledged messages the broker may send
        (MQTT 5; 1–65535).
    :param keepalive: seconds between pings; a broker silent for one
        more interval after a ping is taken for gone, and the connection
        is made again.
    :param connect_timeout: seconds to wait for the TCP connection, then
        for the broker's CONNACK, before trying again.
    :param protocol: ``"5"`` (the default), or ``"3.1.1"``, which has no
        receive maximum: the broker's own in-flight limit (mosquitto's
        ``max_inflight_messages``, 20 by default) must then be at least
        every pipeline's ``max_items``, or batches fill only at their
        ``accumulation_time``.
    :param qos: the subscriptions' QoS, 1 (the default) or 0 (at most
        once: nothing to acknowledge).
    :param one_clock: give every topic's messages times from one strictly
        increasing clock (one stream of records, as the ``mqtt_source``
        block emits), rather than one per topic.
    """

    def __init__(self, reactor, host="127.0.0.1", port=1883, client_id="pyrf-blocks",
                 cursors=None, receive_maximum=10000, keepalive=30, connect_timeout=5.0,
                 username=None, password=None, protocol="5", qos=1, one_clock=False):
        self.reactor = reactor
        self.host, self.port = host, port
        self.client_id = client_id
        self.cursor_prefix = f"mqtt:{client_id}:"
        self._cursors = {}
        marked = []
        for key, value in (cursors or {}).items():
            if key.startswith(self.cursor_prefix):
                written, _, entries = value.partition(" ")
                marked.append((int(written), entries))
        for _, entries in sorted(marked):  # a later batch's packet id wins
            for entry in entries.split(";"):
                mid, _, rest = entry.partition(" ")
                self._cursors[int(mid)] = rest
        if protocol not in packets.VERSIONS:
            raise ValueError(f"MQTTSource: protocol {protocol!r}; 5 or 3.1.1")
        self.protocol = protocol
        if qos not in (0, 1):
            raise ValueError(f"MQTTSource: qos {qos!r}; 0 or 1")
        self.qos = qos
        self._one_clock = one_clock
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self._connect_packet = packets.connect(
            client_id, protocol, keepalive, clean=False,
            receive_maximum=receive_maximum if protocol == "5" else None,
            username=username, password=password)
        self._connection = None
        self._connecting = None
        self._routes = {}
        self._subscribed = set()
        self._last_time = {}
        self._next_mid = 0
        self._ping = LoopingCall(self._keepalive)
        self._ping.clock = reactor
        self._pinged = False
        self._connack_due = None
        self._stopping = False
        self._closed = None
        self.connected = False
        self.backoff = Backoff(reactor, retries=10 ** 9, initial=0.5, maximum=30.0)
        #: Messages received, redelivered (DUP) and recognised as replays.
        self.stats = {"messages": 0, "duplicates": 0, "replays": 0, "unrouted": 0,
                      "connections": 0}

    def __repr__(self):
        return f"<MQTTSource {self.client_id} at {self.host}:{self.port}>"

    # Routes.

    def set_routes(self, routes):
        """
        ``{topic: receiver}``: subscribe to the topics not yet subscribed,
        unsubscribe from those gone, on the same connection.
        """
        self._routes = dict(routes)
        if self.connected:
            self._sync_subscriptions()

    def _mid(self):
        self._next_mid = self._next_mid % 0xFFFF + 1
        return self._next_mid

    def _sync_subscriptions(self):
        wanted = set(self._routes)
        new = sorted(wanted - self._subscribed)
        gone = sorted(self._subscribed - wanted)
        if new:
            self._connection.send(packets.subscribe(self._mid(), new, self.protocol,
                                                    self.qos))
        if gone:
            self._connection.send(packets.unsubscribe(self._mid(), gone, self.protocol))
        self._subscribed = wanted

    # Connection.

    def start(self):
        """
        Connect (and keep reconnecting with backoff).
        """
        self._stopping = False
        self._connect()

    def _connect(self):
        from twisted.internet.endpoints import HostnameEndpoint, connectProtocol

        if self._stopping or self._connecting is not None or self._connection is not None:
            return
        endpoint = HostnameEndpoint(self.reactor, self.host, self.port,
                                    timeout=self.connect_timeout)
        self._connecting = connectProtocol(endpoint, _Connection(self))

        def failed(failure):
            self._connecting = None
            if not self._stopping:
                self.backoff.retry(repr(self), f"connecting failed: {failure.getErrorMessage()}",
                                   self._connect)

        self._connecting.addCallbacks(lambda _: setattr(self, "_connecting", None), failed)

    def stop(self):
        """
        Disconnect; unacknowledged messages stay with the broker's session.
        A Deferred that fires once the connection is closed.
        """
        from twisted.internet.defer import Deferred, succeed

        self._stopping = True
        self.backoff.cancel()
        if self._ping.running:
            self._ping.stop()
        if self._connecting is not None:
            self._connecting.cancel()
        connection = self._connection
        if connection is None:
            return succeed(None)
        if self._closed is None:
            self._closed = Deferred()
        closed = self._closed
        connection.close()
        return closed

    def _connection_made(self, connection):
        self._connection = connection
        self.stats["connections"] += 1
        self._pinged = False
        connection.transport.setTcpNoDelay(True)
        connection.send(self._connect_packet)
        self._connack_due = self.reactor.callLater(self.connect_timeout, self._no_connack,
                                                   connection)

    def _no_connack(self, connection):
        self._connack_due = None
        log.warn("{source}: no CONNACK in {seconds} s; connecting again", source=self,
                 seconds=self.connect_timeout)
        connection.close(abort=True)

    def _cancel_connack_due(self):
        due, self._connack_due = self._connack_due, None
        if due is not None and due.active():
            due.cancel()

    def _connection_lost(self, connection, reason):
        if connection is not self._connection:
            return
        self._connection = None
        self._cancel_connack_due()
        was_connected, self.connected = self.connected, False
        if self._ping.running:
            self._ping.stop()
        closed, self._closed = self._closed, None
        if closed is not None:
            closed.callback(None)
        if not self._stopping:
            why = "disconnected" if was_connected else "connection closed before CONNACK"
            self.backoff.retry(repr(self), f"{why}: {reason.getErrorMessage()}", self._connect)

    def _keepalive(self):
        connection = self._connection
        if connection is None:
            return
        if self._pinged:
            log.warn("{source}: no answer to a ping in {seconds} s; reconnecting",
                     source=self, seconds=self.keepalive)
            connection.close(abort=True)
            return
        self._pinged = True
        connection.send(packets.PINGREQ_PACKET)

    # Packets.

    def _control(self, connection, kind, flags, body):
        if kind == packets.CONNACK:
            self._cancel_connack_due()
            session_present, code = packets.connack(body, self.protocol)
            if code:
                log.error("{source}: the broker refused the connection (code {code:#x})",
                          source=self, code=code)
                connection.close(abort=True)
                return
            self.connected = True
            self.backoff.succeeded()
            if not session_present:
                self._subscribed = set()
            self._sync_subscriptions()
            if self.keepalive:
                self._ping.start(self.keepalive, now=False)
        elif kind in (packets.SUBACK, packets.UNSUBACK):
            mid, codes = packets.suback(body, self.protocol)
            refused = [code for code in codes if code >= 0x80]
            if refused:
                log.error("{source}: the broker refused a subscription change {mid} "
                          "(codes {codes})", source=self, mid=mid,
                          codes=", ".join(f"{c:#x}" for c in refused))
        elif kind == packets.DISCONNECT:
            log.warn("{source}: the broker disconnects (reason {reason})", source=self,
                     reason=f"{body[0]:#x}" if body else "none")
        elif kind != packets.PINGRESP:
            log.warn("{source}: unexpected MQTT packet type {kind}; ignored",
                     source=self, kind=kind)

    def _packets(self, connection, found):
        self._pinged = False
        stats = self.stats
        routes = self._routes
        cursors = self._cursors
        last_time = self._last_time
        prefix = self.cursor_prefix
        one_clock = self._one_clock
        for packet in found:
            if packet[0] != packets.PUBLISH:
                self._control(connection, *packet)
                continue
            _, topic, payload, mid, flags = packet
            stats["messages"] += 1
            receiver = routes.get(topic)
            qos = flags & 0x06
            if receiver is None:
                # A topic just unrouted: acknowledged, as nobody keeps it now.
                stats["unrouted"] += 1
                if qos:
                    connection.ack(mid)
                continue
            digest = zlib.crc32(payload, zlib.crc32(topic.encode()))
            time = None
            if flags & 0x08:
                stats["duplicates"] += 1
                held = cursors.get(mid)
                if held is not None:
                    first, _, held_digest = held.partition(" ")
                    if int(held_digest) == digest:
                        time = int(first)
                        stats["replays"] += 1
            if time is None:
                time = _time.time_ns()
                clock = None if one_clock else topic
                last = last_time.get(clock)
                if last is not None and time <= last:
                    time = last + 1
                last_time[clock] = time
            value = f"{time} {digest}"
            cursors[mid] = value
            receiver.receive(topic, time, payload, _Ack(connection, mid) if qos else None,
                             (prefix, f"{mid} {value}"))

