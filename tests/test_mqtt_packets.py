"""
The MQTT packets of our subscriber (sources/mqtt_packets.py) as bytes,
checked against the layouts of the MQTT 3.1.1 and 5 specifications, and a
byte stream cut into packets however it is split; the source gives up on
a server that accepts the connection but never answers.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrf_blocks.errors import MQTTError
from pyrf_blocks.sources import mqtt_packets as packets


def _publish(topic, payload, mid=0, qos=1, dup=False, properties=None):
    """
    A PUBLISH as a broker sends it (``properties``: MQTT 5 property bytes).
    """
    body = len(topic).to_bytes(2, "big") + topic.encode()
    if qos:
        body += mid.to_bytes(2, "big")
    if properties is not None:
        body += bytes([len(properties)]) + properties
    body += payload
    return packets._packet(packets.PUBLISH << 4 | qos << 1 | (8 if dup else 0), body)


def test_connect_packets_follow_the_specification():
    """CONNECT continues a session: clean flag off; MQTT 5 adds session expiry and receive maximum."""
    assert packets.connect("c1", "3.1.1", keepalive=30) == (
        b"\x10\x0e" b"\x00\x04MQTT" b"\x04" b"\x00" b"\x00\x1e" b"\x00\x02c1")
    assert packets.connect("c1", "5", keepalive=30, receive_maximum=20000) == (
        b"\x10\x17" b"\x00\x04MQTT" b"\x05" b"\x00" b"\x00\x1e"
        b"\x08" b"\x11\xff\xff\xff\xff" b"\x21\x4e\x20" b"\x00\x02c1")
    with_login = packets.connect("c", "3.1.1", username="u", password="p")
    assert with_login[9] == 0xC0 and with_login.endswith(b"\x00\x01c\x00\x01u\x00\x01p")


def test_subscribe_unsubscribe_and_puback_bytes():
    """SUBSCRIBE asks QoS 1 per topic, UNSUBSCRIBE names topics (MQTT 5: empty properties), PUBACKs join."""
    assert packets.subscribe(7, ["a/b", "c"], "3.1.1") == (
        b"\x82\x0c\x00\x07" b"\x00\x03a/b\x01" b"\x00\x01c\x01")
    assert packets.subscribe(7, ["c"], "5") == b"\x82\x07\x00\x07\x00\x00\x01c\x01"
    assert packets.unsubscribe(8, ["c"], "5") == b"\xa2\x06\x00\x08\x00\x00\x01c"
    assert packets.puback([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"


def test_answers_are_read():
    """CONNACK gives session present and code; SUBACK its packet id and codes, skipping MQTT 5 properties."""
    assert packets.connack(b"\x01\x00") == (True, 0)
    assert packets.connack(b"\x00\x87\x00", "5") == (False, 0x87)
    assert packets.suback(b"\x00\x05\x01\x80", "3.1.1") == (5, b"\x01\x80")
    assert packets.suback(b"\x00\x05\x03\x1f\x00\x00\x01", "5") == (5, b"\x01")


STREAM = [
    _publish("plant/1", b"21.5", mid=1),
    _publish("plant/2", b"x" * 300, mid=2, dup=True),  # a two-byte length
    _publish("plant/1", b"", qos=0),
    b"\xd0\x00",  # PINGRESP
    _publish("plant/3", b"y" * 20000, mid=65535),  # a three-byte length
]
PROPERTIES = b"\x01\x01\x23\x00\x05"  # payload format indicator, topic alias (ignored)


def _expected():
    return [(packets.PUBLISH, "plant/1", b"21.5", 1, 2),
            (packets.PUBLISH, "plant/2", b"x" * 300, 2, 10),
            (packets.PUBLISH, "plant/1", b"", 0, 0),
            (packets.PINGRESP, 0, b""),
            (packets.PUBLISH, "plant/3", b"y" * 20000, 65535, 2)]


def _stream(version):
    if version == "3.1.1":
        return b"".join(STREAM)
    return b"".join([
        _publish("plant/1", b"21.5", mid=1, properties=PROPERTIES),
        _publish("plant/2", b"x" * 300, mid=2, dup=True, properties=b""),
        _publish("plant/1", b"", qos=0, properties=PROPERTIES),
        b"\xd0\x00",
        _publish("plant/3", b"y" * 20000, mid=65535, properties=b""),
    ])


@pytest.mark.parametrize("version", ["3.1.1", "5"])
@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=20500), max_size=12))
def test_a_stream_cut_anywhere_gives_the_same_packets(version, cuts):
    """However the bytes are split between reads, the same packets come out, in order."""
    stream = _stream(version)
    reader = packets.PacketReader(version)
    found = []
    start = 0
    for cut in sorted(set(c for c in cuts if c < len(stream))) + [len(stream)]:
        found += reader.feed(stream[start:cut])
        start = cut
    assert found == _expected()


def test_malformed_packets_raise():
    """A length of five bytes, or a PUBLISH whose topic overruns it, is an MQTTError."""
    with pytest.raises(MQTTError, match="four bytes"):
        packets.PacketReader("3.1.1").feed(b"\x30\xff\xff\xff\xff\x01")
    with pytest.raises(MQTTError, match="overrun"):
        packets.PacketReader("3.1.1").feed(b"\x32\x04\x00\x09ab" + b"\x40\x02\x00\x01")


def test_a_server_that_never_answers_is_left_and_tried_again():
    """A server that accepts TCP but sends no CONNACK is dropped after connect_timeout, and connected to again."""
    from twisted.internet import defer
    from twisted.internet.protocol import Factory, Protocol

    from pyrf_blocks.sources.mqtt import MQTTSource
    from pyrf_blocks.testing import new_reactor, run_until, wait_for

    reactor = new_reactor()
    received = []

    class Silent(Protocol):
        def dataReceived(self, data):
            received.append(data)

    port = reactor.listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")
    source = MQTTSource(reactor, port=port.getHost().port, client_id="silent",
                        connect_timeout=0.2, protocol="3.1.1")
    source.backoff.delay_of = lambda failures: 0.05

    @defer.inlineCallbacks
    def scenario():
        source.start()
        yield wait_for(reactor, lambda: source.stats["connections"] >= 2, 0.02)
        yield source.stop()
        yield port.stopListening()

    run_until(reactor, scenario(), timeout=10)
    assert not source.connected
    assert received[0].startswith(packets.connect("silent", "3.1.1"))
