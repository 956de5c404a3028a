"""
An emulated ThinkRF analyzer: the SCPI subset on one TCP port, the VRT
stream on another, and answers to discovery broadcasts on UDP.

The signal (tones at absolute RF frequencies, harmonics of the first one,
white noise) comes from :func:`pyrf_blocks.numerics.signals.signal_samples`,
is quantised to I14Q14 and sent in VRT data packets stamped with device
time, after receiver, digitizer and extension context packets.  The data
stream is an ``IPushProducer`` registered on its TCP transport: when the
client stops reading, the emulator stops generating.
"""

import math
from fractions import Fraction

import numpy as np
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from zope.interface import implementer

from ..defaults import MODEL, NOISE_FLOOR
from ..numerics.signals import signal_samples
from . import vrt
from .discovery import decode_query, encode_response
from .models import DATA_PORT, DISCOVERY_PORT, SCPI_PORT, model_of

__all__ = ["InstrumentEmulator", "normalise_header"]

log = Logger()

# Long forms of the mnemonics the emulator knows, by short form.
_LONG_FORMS = {
    "FREQ": "FREQUENCY", "CENT": "CENTER", "SENS": "SENSE", "DEC": "DECIMATION",
    "TRAC": "TRACE", "BLOC": "BLOCK", "PACK": "PACKETS", "STR": "STREAM",
    "STAR": "START", "SYST": "SYSTEM", "REQ": "REQUEST", "INP": "INPUT",
    "REFL": "REFLEVEL", "FLUS": "FLUSH", "ABOR": "ABORT", "ERR": "ERROR",
    "LOCK": "LOCK", "HAVE": "HAVE", "STOP": "STOP", "SPP": "SPP", "DATA": "DATA",
}
_SHORT_FORMS = {long: short for short, long in _LONG_FORMS.items()}
#: Reference levels the emulator takes (``INP:REFL`` and its default), dBm.
REFERENCE_LEVELS = (-100.0, 50.0)


def normalise_header(header):
    """
    A SCPI command header in short upper-case form without the optional
    ``SENSE`` root: ``":sense:decimation?"`` → ``"DEC?"``.
    """
    query = header.endswith("?")
    words = []
    for word in header.rstrip("?").lstrip(":").upper().split(":"):
        words.append(_SHORT_FORMS.get(word, word))
    if words and words[0] == "SENS" and len(words) > 1:
        words = words[1:]
    return ":".join(words) + ("?" if query else "")


class _CommandError(ValueError):
    """
    A command the emulator refuses: SCPI error code and message, as
    ``:SYSTEM:ERROR?`` reports them.
    """

    def __init__(self, code, message):
        super().__init__(f'{code},"{message}"')


@implementer(IPushProducer)
class _DataStream:
    """
    The VRT stream of one data connection: generates packets while
    streaming, as fast as the transport takes them or at device-time pace.
    """

    #: Packets written per reactor turn.
    burst = 8

    def __init__(self, emulator, transport):
        self.emulator = emulator
        self.transport = transport
        self.paused = False
        self.pauses = 0
        self.streaming = False
        self.block_packets = 0
        self._call = None
        self._counts = {}
        self._origin = None
        #: The emulator's settings version this stream last described.
        self.version = None
        transport.registerProducer(self, True)

    def pauseProducing(self):
        self.paused = True
        self.pauses += 1
        self._cancel()

    def resumeProducing(self):
        self.paused = False
        self._origin = None
        self._schedule(0)

    def stopProducing(self):
        self.streaming = False
        self._cancel()

    def start(self, packets=None):
        """
        Stream without end (``packets=None``) or send ``packets`` packets.
        """
        self.streaming = packets is None
        self.block_packets = packets or 0
        self._origin = None
        self.send_context()
        self._schedule(0)

    def stop(self):
        self.streaming = False
        self.block_packets = 0
        self._cancel()

    def _cancel(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self, delay):
        if (self.streaming or self.block_packets) and not self.paused:
            if self._call is None or not self._call.active():
                self._call = self.emulator.reactor.callLater(delay, self._tick)

    def _count(self, stream_id):
        count = self._counts.get(stream_id, 0)
        self._counts[stream_id] = (count + 1) % 16
        return count

    def send_context(self):
        emulator = self.emulator
        seconds, picoseconds = vrt.timestamp_of_ns(emulator.time_ns())
        stamp = dict(integer_seconds=seconds, fractional=picoseconds)
        rate = emulator.sample_rate
        packets = [
            vrt.build_context_packet(vrt.STREAM_RECEIVER, {
                "rf_frequency": emulator.center_frequency, "gain": (0.0, 0.0)},
                count=self._count(vrt.STREAM_RECEIVER), **stamp),
            vrt.build_context_packet(vrt.STREAM_DIGITIZER, {
                "bandwidth": rate * 0.8, "rf_offset": 0.0,
                "reference_level": emulator.reference_level, "sample_rate": rate},
                count=self._count(vrt.STREAM_DIGITIZER), **stamp),
            vrt.build_context_packet(vrt.STREAM_EXTENSION, {
                "stream_id": vrt.STREAM_I14Q14}, count=self._count(vrt.STREAM_EXTENSION),
                **stamp),
        ]
        self.transport.write(b"".join(packets))

    def _tick(self):
        self._call = None
        emulator = self.emulator
        reactor = emulator.reactor
        for _ in range(self.burst):
            if self.paused or not (self.streaming or self.block_packets):
                return
            if emulator.settings_changed(self):
                self.send_context()
            time_ns = emulator.time_ns()
            packet = emulator.next_packet(self._count(vrt.STREAM_I14Q14))
            self.transport.write(packet)
            if self.block_packets:
                self.block_packets -= 1
            if emulator.paced:
                if self._origin is None:
                    self._origin = (reactor.seconds(), time_ns)
                wall, device = self._origin
                delay = wall + (emulator.time_ns() - device) / 1e9 - reactor.seconds()
                if delay > 0:
                    self._schedule(delay)
                    return
        self._schedule(0)


class _DataProtocol(protocol.Protocol):
    def connectionMade(self):
        emulator = self.factory.emulator
        self.stream = _DataStream(emulator, self.transport)
        emulator.data_streams.append(self.stream)
        if emulator.streaming:
            emulator.start_stream(self.stream)

    def dataReceived(self, data):
        pass  # the data port carries nothing from the client

    def connectionLost(self, reason):
        self.stream.stop()
        streams = self.factory.emulator.data_streams
        if self.stream in streams:
            streams.remove(self.stream)


class _SCPIProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 4096

    def lineReceived(self, line):
        emulator = self.factory.emulator
        text = line.decode("ascii", "replace").strip()
        for part in filter(None, (p.strip() for p in text.split(";"))):
            header, _, argument = part.partition(" ")
            try:
                reply = emulator.execute(self, normalise_header(header), argument.strip())
            except _CommandError as error:
                emulator.errors.append(str(error))
                del emulator.errors[:-16]
                continue
            if reply is not None:
                self.transport.write(reply.encode("ascii") + b"\n")

    def lineLengthExceeded(self, line):
        self.factory.emulator.errors.append('-223,"Too much data"')
        self.transport.loseConnection()

    def connectionLost(self, reason):
        emulator = self.factory.emulator
        if emulator.lock_holder is self:
            # The client that owned the acquisition is gone: so is its stream.
            emulator.lock_holder = None
            emulator._stop(self, "")


class _DiscoveryProtocol(protocol.DatagramProtocol):
    def __init__(self, emulator):
        self.emulator = emulator

    def datagramReceived(self, datagram, address):
        if decode_query(datagram) is None:
            return  # not a discovery query: ignore, as an analyzer does
        emulator = self.emulator
        self.transport.write(encode_response(emulator.model.name, emulator.serial,
                                             emulator.firmware), address)


def _check_signal(model, center_frequency, reference_level, tones, harmonics, noise_floor,
                  seed):
    # InstrumentEmulator's settings, each in the range a client could set
    # it in (or, for the signal, a finite number): ValueError naming it.
    model.check(center_frequency=center_frequency)
    low, high = REFERENCE_LEVELS
    if not low <= reference_level <= high:
        raise ValueError(f"reference level {reference_level:g} dBm is outside "
                         f"{low:g}..{high:g} dBm")
    for frequency, level in tones:
        if not (math.isfinite(frequency) and frequency >= 0 and math.isfinite(level)):
            raise ValueError(f"tone ({frequency:g} Hz, {level:g} dBm): the frequency must "
                             "be at least 0 and both finite")
    for order, dbc in harmonics:
        if not (order == int(order) and 2 <= order <= 1000 and math.isfinite(dbc)):
            raise ValueError(f"harmonic ({order:g}, {dbc:g} dBc): the order must be a whole "
                             "number from 2 to 1000 and the level finite")
    if noise_floor is not None and not -300 <= noise_floor <= 100:
        raise ValueError(f"noise floor {noise_floor:g} dBm/Hz is outside -300..100 dBm/Hz")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a whole number at least 0, got {seed!r}")


class InstrumentEmulator:
    """
    An emulated analyzer.

    :param reactor: the reactor to listen and time the stream with.
    :param model: ``"WSA4000"``, ``"WSA5000"`` or ``"R5500"``.
    :param tones: ``[(frequency_hz, level_dbm), ...]`` at absolute RF
        frequencies; only those inside the captured band appear.
    :param harmonics: ``[(order, level_dbc), ...]`` of the first tone, at
        ``order × frequency``.
    :param noise_floor: noise density, dBm/Hz (``None``: none).
    :param reference_level: dBm of a full-scale tone (``INP:REFL``).
    :param paced: stream at device-time pace (a real analyzer), or as fast
        as the client reads.
    :param start_time: device time of the first sample, ns (default: the
        reactor's clock).
    """

    def __init__(self, reactor, model=MODEL, serial="EMU000001", firmware="1.0.0",
                 center_frequency=2.4e9, reference_level=0.0, tones=((2.401e9, -20.0),),
                 harmonics=(), noise_floor=NOISE_FLOOR, seed=0, paced=True, start_time=None):
        self.reactor = reactor
        self.model = model_of(model)
        _check_signal(self.model, center_frequency, reference_level, tones, harmonics,
                      noise_floor, seed)
        self.serial = serial
        self.firmware = firmware
        self.tones = tuple((float(f), float(level)) for f, level in tones)
        self.harmonics = tuple((int(order), float(dbc)) for order, dbc in harmonics)
        self.noise_floor = noise_floor
        self.seed = seed
        self.paced = paced
        self.start_time = start_time
        self.defaults = {"center_frequency": float(center_frequency),
                         "reference_level": float(reference_level)}
        self.errors = []
        self.lock_holder = None
        self.data_streams = []
        self.listening = {}
        self._rng = np.random.default_rng(seed)
        self._time = None
        self.reset()

    # Instrument state.

    def reset(self):
        """
        ``*RST``: default settings; streaming stops.
        """
        self.center_frequency = self.defaults["center_frequency"]
        self.reference_level = self.defaults["reference_level"]
        self.decimation = 1
        self.samples_per_packet = 1024
        self.packets_per_block = 1
        self.streaming = False
        for stream in getattr(self, "data_streams", ()):
            stream.stop()
        self._rebase()

    @property
    def sample_rate(self):
        return self.model.full_rate / self.decimation

    def _rebase(self):
        # Device time continues from where it is; sample count restarts.
        if self._time is None:
            start = self.start_time
            self._time = int(self.reactor.seconds() * 1e9) if start is None else int(start)
        else:
            self._time = self.time_ns()
        self._epoch_ps = self._time * 1000
        self._index = 0
        self._ps_per_sample = Fraction(10 ** 12) / Fraction(self.sample_rate)
        self._version = getattr(self, "_version", 0) + 1

    def time_ns(self):
        """
        Device time of the next sample, ns.
        """
        return (self._epoch_ps + round(self._index * self._ps_per_sample)) // 1000

    def settings_changed(self, stream):
        """
        True once per stream after each change of settings.
        """
        seen = stream.version
        stream.version = self._version
        return seen is not None and seen != self._version

    def _signal(self, count):
        rate, center = self.sample_rate, self.center_frequency
        tones = list(self.tones)
        if tones and self.harmonics:
            frequency, level = tones[0]
            tones += [(order * frequency, level + dbc) for order, dbc in self.harmonics]
        # signal_samples leaves out what lies outside the captured band.
        offsets = [(f - center, level) for f, level in tones]
        return signal_samples(self._index, count, rate, offsets, (), self.noise_floor,
                              self.reference_level, self._rng)

    def next_packet(self, count):
        """
        The next IF data packet (I14Q14) as bytes.
        """
        spp = self.samples_per_packet
        picoseconds = self._epoch_ps + round(self._index * self._ps_per_sample)
        seconds, fractional = divmod(picoseconds, 10 ** 12)
        samples = self._signal(spp)
        peak = np.max(np.abs(samples.view(np.float32))) if spp else 0.0
        trailer = vrt.Trailer(valid_data=True, reference_lock=True,
                              over_range=bool(peak >= 1.0), sample_loss=False)
        self._index += spp
        return vrt.build_data_packet(vrt.encode_payload(samples), vrt.STREAM_I14Q14, count,
                                     seconds, fractional, trailer)

    # SCPI.

    def execute(self, client, header, argument):
        """
        Run one SCPI command or query; return the reply text or ``None``.
        """
        handler = self._COMMANDS.get(header)
        if handler is None:
            raise _CommandError(-113, f"Undefined header; {header}")
        return handler(self, client, argument)

    def _need_lock(self, client):
        if self.lock_holder not in (None, client):
            raise _CommandError(-200, "Execution error; acquisition lock held by another client")

    def _number(self, argument, kind=float):
        try:
            return kind(argument.split()[0])
        except (ValueError, IndexError):
            raise _CommandError(-104, f"Data type error; {argument!r} is not a number") from None

    def _set(self, client, name, value, **check):
        self._need_lock(client)
        try:
            self.model.check(**check)
        except ValueError as error:
            raise _CommandError(-222, f"Data out of range; {error}") from None
        setattr(self, name, value)
        self._rebase()

    def _idn(self, client, argument):
        return f"ThinkRF,{self.model.name},{self.serial},{self.firmware}"

    def _rst(self, client, argument):
        self._need_lock(client)
        self.reset()

    def _lock_request(self, client, argument):
        if self.lock_holder in (None, client):
            self.lock_holder = client
            return "1"
        return "0"

    def _lock_have(self, client, argument):
        return "1" if self.lock_holder is client else "0"

    def _set_frequency(self, client, argument):
        value = self._number(argument)
        self._set(client, "center_frequency", value, center_frequency=value)

    def _set_decimation(self, client, argument):
        value = self._number(argument, int)
        self._set(client, "decimation", value, decimation=value)

    def _set_spp(self, client, argument):
        value = self._number(argument, int)
        self._set(client, "samples_per_packet", value, samples_per_packet=value)

    def _set_packets(self, client, argument):
        value = self._number(argument, int)
        if not 1 <= value <= 1_000_000:
            raise _CommandError(-222, f"Data out of range; packets per block {value}")
        self._need_lock(client)
        self.packets_per_block = value

    def _set_reference(self, client, argument):
        value = self._number(argument)
        low, high = REFERENCE_LEVELS
        if not low <= value <= high:
            raise _CommandError(-222, f"Data out of range; reference level {value} dBm")
        self._set(client, "reference_level", value)

    def _start(self, client, argument):
        self._need_lock(client)
        # A data connection made just before this command may not have
        # been accepted yet: it starts streaming when it is.
        self.streaming = True
        for stream in self.data_streams:
            self.start_stream(stream)

    def start_stream(self, stream, packets=None):
        stream.version = self._version
        stream.start(packets)

    def _block(self, client, argument):
        self._need_lock(client)
        if not self.data_streams:
            raise _CommandError(-200, "Execution error; no data connection on the data port")
        for stream in self.data_streams:
            self.start_stream(stream, self.packets_per_block)

    def _stop(self, client, argument):
        self.streaming = False
        for stream in self.data_streams:
            stream.stop()

    def _error(self, client, argument):
        return self.errors.pop(0) if self.errors else '0,"No error"'

    _COMMANDS = {
        "*IDN?": _idn,
        "*RST": _rst,
        "SYST:LOCK:REQ?": _lock_request,
        "SYST:LOCK:HAVE?": _lock_have,
        "SYST:ERR?": _error,
        "SYST:ABOR": _stop,
        "SYST:FLUS": lambda self, client, argument: None,
        "FREQ:CENT": _set_frequency,
        "FREQ:CENT?": lambda self, client, argument: f"{self.center_frequency:.0f}",
        "DEC": _set_decimation,
        "DEC?": lambda self, client, argument: str(self.decimation),
        "TRAC:SPP": _set_spp,
        "TRAC:SPP?": lambda self, client, argument: str(self.samples_per_packet),
        "TRAC:BLOC:PACK": _set_packets,
        "TRAC:BLOC:PACK?": lambda self, client, argument: str(self.packets_per_block),
        "TRAC:BLOC:DATA?": _block,
        "TRAC:STR:STAR": _start,
        "TRAC:STR:STOP": _stop,
        "INP:REFL": _set_reference,
        "INP:REFL?": lambda self, client, argument: f"{self.reference_level:g}",
    }

    # Network.

    def listen(self, interface="127.0.0.1", scpi_port=SCPI_PORT, data_port=DATA_PORT,
               discovery_port=DISCOVERY_PORT):
        """
        Listen on the three ports (0: any free port; ``None``: not at all);
        return ``{"scpi": port, "data": port, "discovery": port}`` as bound.
        """
        scpi = protocol.ServerFactory.forProtocol(_SCPIProtocol)
        scpi.emulator = self
        data = protocol.ServerFactory.forProtocol(_DataProtocol)
        data.emulator = self
        if scpi_port is not None:
            self.listening["scpi"] = self.reactor.listenTCP(scpi_port, scpi, interface=interface)
        if data_port is not None:
            self.listening["data"] = self.reactor.listenTCP(data_port, data, interface=interface)
        if discovery_port is not None:
            self.listening["discovery"] = self.reactor.listenUDP(
                discovery_port, _DiscoveryProtocol(self), interface=interface)
        return self.ports

    @property
    def ports(self):
        return {name: port.getHost().port for name, port in self.listening.items()}

    def stop(self):
        """
        Stop listening and streaming; returns a Deferred that fires when
        the ports are closed.
        """
        for stream in self.data_streams:
            stream.stop()
            stream.transport.loseConnection()
        listening, self.listening = self.listening, {}
        return defer.gatherResults([defer.maybeDeferred(port.stopListening)
                                    for port in listening.values()])

