"""
MQTT in: one client connection for every topic the loaded pipelines name.

**How paho runs in the reactor.**  paho-mqtt 2 can be driven by an outside
event loop instead of its own thread: it tells us when its socket opens
and closes and when it has something to write (``on_socket_open``,
``on_socket_register_write``...), and we call ``loop_read``,
``loop_write`` and, every second, ``loop_misc`` (keep-alive).
:class:`MQTTSource` registers the socket with the reactor as a reader
(and a writer while paho has bytes to send), so every callback, every
pipeline stage and every acknowledgement runs on the reactor thread:
no locks, no hand-over between threads.  (``connect`` itself blocks for
the TCP handshake, bounded by ``connect_timeout``.)

**Nothing acknowledged before it is durable.**  The session is MQTT 5
with a clean start of False and a session that outlives a disconnection,
QoS 1, and paho's manual acknowledgement: a message is acknowledged only
when the batch holding its rows has been written (see
:class:`~pyrf_blocks.sensors.buffering.Buffer`).  A process killed before
that leaves the message unacknowledged, and the broker delivers it again
(with the DUP flag) when the client comes back.  The client's *receive
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

from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from ..backoff import Backoff

__all__ = ["MQTTSource"]

log = Logger()

#: Most packets read in one turn of the reactor before others get theirs.
READ_BURST = 1000


@implementer(IReadDescriptor, IWriteDescriptor)
class _PahoSocket:
    """
    paho's socket as the reactor sees it.
    """

    def __init__(self, source, sock):
        self.source = source
        self.sock = sock

    def fileno(self):
        try:
            return self.sock.fileno()
        except OSError:
            return -1

    def logPrefix(self):
        return "mqtt"

    def doRead(self):
        self.source._read()

    def doWrite(self):
        self.source.client.loop_write()

    def connectionLost(self, reason):
        self.source._socket_closed(self)


class MQTTSource:
    """
    One MQTT client on ``reactor``: messages of the routed topics go to
    their receivers' ``receive(topic, time, payload, ack, mark)``.

    :param reactor: the reactor (reader/writer registration, time).
    :param host, port: the broker.
    :param client_id: the session's name; a restarted process with the same
        id continues the session (and gets what it did not acknowledge).
    :param cursors: ``{key: value}`` stored by earlier runs
        (``store.cursors(source.cursor_prefix)``), to recognise redeliveries.
    :param receive_maximum: unacknowledged messages the broker may send.
    :param protocol: ``"5"`` (the default), or ``"3.1.1"``: paho decodes
        MQTT 3.1.1 packets in about half the CPU time (no properties), but
        3.1.1 has no receive maximum: the broker's own in-flight limit
        (mosquitto's ``max_inflight_messages``, 20 by default) must then
        be at least every pipeline's ``max_items``, or batches fill only
        at their ``accumulation_time``.
    :param qos: the subscriptions' QoS, 1 (the default) or 0 (at most
        once: nothing to acknowledge).
    :param one_clock: give every topic's messages times from one strictly
        increasing clock (one stream of records, as the ``mqtt_source``
        block emits), rather than one per topic.
    """

    def __init__(self, reactor, host="127.0.0.1", port=1883, client_id="pyrf-blocks",
                 cursors=None, receive_maximum=10000, keepalive=30, connect_timeout=5.0,
                 username=None, password=None, protocol="5", qos=1, one_clock=False):
        import paho.mqtt.client as mqtt
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes

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
        self.keepalive = keepalive
        if protocol not in ("5", "3.1.1"):
            raise ValueError(f"MQTTSource: protocol {protocol!r}; 5 or 3.1.1")
        self.protocol = protocol
        if qos not in (0, 1):
            raise ValueError(f"MQTTSource: qos {qos!r}; 0 or 1")
        self.qos = qos
        self._one_clock = one_clock
        if protocol == "5":
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=mqtt.MQTTv5, manual_ack=True)
        else:
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=mqtt.MQTTv311, clean_session=False,
                                      manual_ack=True)
        self.client.connect_timeout = connect_timeout
        if username is not None:
            self.client.username_pw_set(username, password)
        self._properties = Properties(PacketTypes.CONNECT)
        self._properties.SessionExpiryInterval = 0xFFFFFFFF
        self._properties.ReceiveMaximum = receive_maximum
        self.client.on_socket_open = self._socket_open
        self.client.on_socket_close = self._socket_close
        self.client.on_socket_register_write = self._register_write
        self.client.on_socket_unregister_write = self._unregister_write
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_message = self._message
        self._descriptor = None
        self._routes = {}
        self._subscribed = set()
        self._last_time = {}
        self._misc = LoopingCall(self.client.loop_misc)
        self._misc.clock = reactor
        self._stopping = False
        self._read_count = 0
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

    def _sync_subscriptions(self):
        wanted = set(self._routes)
        new = sorted(wanted - self._subscribed)
        gone = sorted(self._subscribed - wanted)
        if new:
            self.client.subscribe([(topic, self.qos) for topic in new])
        if gone:
            self.client.unsubscribe(gone)
        self._subscribed = wanted

    # Connection.

    def start(self):
        """
        Connect (and keep reconnecting with backoff).
        """
        self._stopping = False
        self._misc.start(1.0, now=False)
        self._connect()

    def _connect(self):
        if self._stopping:
            return
        try:
            if self.stats["connections"]:
                self.client.reconnect()
            else:
                if self.protocol == "5":
                    self.client.connect(self.host, self.port, self.keepalive,
                                        clean_start=False, properties=self._properties)
                else:
                    self.client.connect(self.host, self.port, self.keepalive)
        except OSError as error:
            self.backoff.retry(repr(self), f"connecting failed: {error}", self._connect)
            return
        self.stats["connections"] += 1

    def stop(self):
        """
        Disconnect; unacknowledged messages stay with the broker's session.
        """
        self._stopping = True
        self.backoff.cancel()
        if self._misc.running:
            self._misc.stop()
        if self._descriptor is not None:
            self.client.disconnect()
            self.client.loop_write()
            self._drop_descriptor()

    def _connected(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("{source}: the broker refused the connection: {reason}",
                      source=self, reason=str(reason_code))
            return
        self.connected = True
        self.backoff.succeeded()
        if not flags.session_present:
            self._subscribed = set()
        self._sync_subscriptions()

    def _disconnected(self, client, userdata, flags, reason_code, properties):
        self.connected = False
        if not self._stopping:
            self.backoff.retry(repr(self), f"disconnected: {reason_code}", self._connect)

    def _socket_open(self, client, userdata, sock):
        self._descriptor = _PahoSocket(self, sock)
        self.reactor.addReader(self._descriptor)

    def _socket_close(self, client, userdata, sock):
        self._drop_descriptor()

    def _drop_descriptor(self):
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            self.reactor.removeReader(descriptor)
            self.reactor.removeWriter(descriptor)

    def _socket_closed(self, descriptor):
        if descriptor is self._descriptor:
            self._drop_descriptor()

    def _register_write(self, client, userdata, sock):
        if self._descriptor is not None:
            self.reactor.addWriter(self._descriptor)

    def _unregister_write(self, client, userdata, sock):
        if self._descriptor is not None:
            self.reactor.removeWriter(self._descriptor)

    def _read(self):
        # paho reads one packet per loop_read: read on while messages come.
        for _ in range(READ_BURST):
            before = self._read_count
            if self.client.loop_read() or self._descriptor is None:
                return
            if self._read_count == before:
                return

    # Messages.

    def _message(self, client, userdata, message):
        self._read_count += 1
        self.stats["messages"] += 1
        topic = message.topic
        receiver = self._routes.get(topic)
        mid, payload = message.mid, message.payload
        if receiver is None:
            # A topic just unrouted: acknowledged, as nobody keeps it now.
            self.stats["unrouted"] += 1
            client.ack(mid, message.qos)
            return
        digest = zlib.crc32(payload, zlib.crc32(topic.encode()))
        time = None
        if message.dup:
            self.stats["duplicates"] += 1
            held = self._cursors.get(mid)
            if held is not None:
                first, _, held_digest = held.partition(" ")
                if int(held_digest) == digest:
                    time = int(first)
                    self.stats["replays"] += 1
        if time is None:
            time = _time.time_ns()
            clock = None if self._one_clock else topic
            last = self._last_time.get(clock)
            if last is not None and time <= last:
                time = last + 1
            self._last_time[clock] = time
        value = f"{time} {digest}"
        self._cursors[mid] = value
        qos = message.qos

        def ack():
            if self._descriptor is not None:
                client.ack(mid, qos)

        receiver.receive(topic, time, payload, ack if qos else None,
                         (self.cursor_prefix, f"{mid} {value}"))
