"""
Finding analyzers on the network: a UDP broadcast on port 18331 that every
ThinkRF analyzer answers with its model, serial number and firmware.

Query: two big-endian 32-bit words, the query code ``0x93315555`` and the
protocol version 2.  Answer: the answer code ``0x93316666``, the version,
then the model (16 bytes), serial (16 bytes) and firmware (20 bytes), each
ASCII padded with NUL bytes.
"""

import struct

from twisted.internet import defer, error, protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ..errors import InstrumentConnectionError
from .models import DISCOVERY_PORT

__all__ = ["Analyzer", "discover", "encode_query", "decode_query",
           "encode_response", "decode_response", "BROADCAST"]

log = Logger()

BROADCAST = "255.255.255.255"
_QUERY_CODE = 0x93315555
_RESPONSE_CODE = 0x93316666
_VERSION = 2
_QUERY = struct.Struct(">LL")
_RESPONSE = struct.Struct(">LL16s16s20s")


class Analyzer:
    """
    One analyzer that answered: ``host``, ``model``, ``serial``, ``firmware``.
    """

    __slots__ = ("host", "model", "serial", "firmware")

    def __init__(self, host, model, serial, firmware):
        self.host, self.model, self.serial, self.firmware = host, model, serial, firmware

    def __eq__(self, other):
        return isinstance(other, Analyzer) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return (self.host, self.model, self.serial, self.firmware)

    def __repr__(self):
        return f"Analyzer({self.host!r}, {self.model!r}, {self.serial!r}, {self.firmware!r})"


def encode_query():
    return _QUERY.pack(_QUERY_CODE, _VERSION)


def decode_query(datagram):
    """
    The protocol version of a discovery query, or ``None`` if the datagram
    is not one.
    """
    if len(datagram) != _QUERY.size:
        return None
    code, version = _QUERY.unpack(datagram)
    return version if code == _QUERY_CODE else None


def _text(value):
    return value.split(b"\0", 1)[0].decode("ascii", "replace")


def encode_response(model, serial, firmware):
    return _RESPONSE.pack(_RESPONSE_CODE, _VERSION, model.encode("ascii")[:16],
                          serial.encode("ascii")[:16], firmware.encode("ascii")[:20])


def decode_response(datagram, host):
    """
    The :class:`Analyzer` described by a discovery answer, or ``None`` if
    the datagram is not one.
    """
    if len(datagram) != _RESPONSE.size:
        return None
    code, version, model, serial, firmware = _RESPONSE.unpack(datagram)
    if code != _RESPONSE_CODE:
        return None
    return Analyzer(host, _text(model), _text(serial), _text(firmware))


class _DiscoveryClient(protocol.DatagramProtocol):
    def __init__(self, address, port):
        self.address = address
        self.port = port
        self.found = []
        self.ignored = 0

    def startProtocol(self):
        self.transport.setBroadcastAllowed(True)

    def send_query(self):
        self.transport.write(encode_query(), (self.address, self.port))

    def datagramReceived(self, datagram, address):
        analyzer = decode_response(datagram, address[0])
        if analyzer is None:
            self.ignored += 1
        elif analyzer not in self.found:
            self.found.append(analyzer)


def discover(reactor, address=BROADCAST, port=DISCOVERY_PORT, wait=1.0, interface=""):
    """
    Send one discovery query to ``address`` (an IPv4 address or a host
    name) and collect answers for ``wait`` seconds.  Returns a Deferred
    firing with a list of :class:`Analyzer`, in the order they answered, or
    failing with :class:`~pyrf_blocks.errors.InstrumentConnectionError`
    naming ``address`` when it cannot be resolved or the query cannot be
    sent there.
    """
    return defer.ensureDeferred(_discover(reactor, address, port, wait, interface))


async def _discover(reactor, address, port, wait, interface):
    try:
        host = await reactor.resolve(address)
    except error.DNSLookupError:
        raise InstrumentConnectionError(
            f"cannot send a discovery query to {address!r}: no IPv4 address has "
            "that name") from None
    client = _DiscoveryClient(host, port)
    listening = reactor.listenUDP(0, client, interface=interface)
    try:
        client.send_query()
    except OSError as reason:  # (Twisted's own errors are OSErrors too)
        await defer.maybeDeferred(listening.stopListening)
        raise InstrumentConnectionError(
            f"cannot send a discovery query to {address}:{port}: {reason}") from None
    await deferLater(reactor, wait)
    if client.ignored:
        log.info("discovery: ignored {count} datagram(s) that were not answers",
                 count=client.ignored)
    await defer.maybeDeferred(listening.stopListening)
    return list(client.found)
