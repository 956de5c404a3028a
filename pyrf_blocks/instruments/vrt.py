"""
The VITA-49 (VRT) subset that ThinkRF analyzers speak: packets as bytes.

Pure functions and small classes, no I/O: :func:`build_data_packet` and
:func:`build_context_packet` make packets, :func:`parse_packet` reads one,
and :class:`VRTStreamParser` cuts a TCP byte stream, split anywhere, into
packets, counting and skipping what is not a packet.  Payloads decode to
numpy in one vectorised step (:func:`decode_payload`).

Layout of a packet (32-bit big-endian words)::

    header | stream ID | class ID (2, if C) | TSI (1, if TSI kind) |
    TSF (2, if TSF kind) | payload or context fields | trailer (1, if T)

Header word: packet type (bits 31-28), C = class ID present (27), T =
trailer present (26, data packets only), TSI kind (23-22), TSF kind (21-20),
packet count modulo 16 (19-16), packet size in words (15-0).
"""

import functools
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import VRTError

__all__ = [
    "Trailer", "DataPacket", "ContextPacket",
    "build_data_packet", "build_context_packet", "parse_packet",
    "decode_payload", "decode_payloads", "encode_payload", "samples_in",
    "VRTStreamParser", "DataRun",
    "IF_DATA", "IF_DATA_NO_ID", "CONTEXT", "EXTENSION_CONTEXT",
    "STREAM_RECEIVER", "STREAM_DIGITIZER", "STREAM_EXTENSION",
    "STREAM_I14Q14", "STREAM_I14", "STREAM_I24", "PAYLOAD_FORMATS",
    "THINKRF_STREAMS", "FULL_SCALE", "timestamp_ns", "timestamp_of_ns",
]

# Packet types (header bits 31-28).
IF_DATA_NO_ID = 0
IF_DATA = 1
CONTEXT = 4
EXTENSION_CONTEXT = 5
_PACKET_TYPES = frozenset((IF_DATA_NO_ID, IF_DATA, CONTEXT, EXTENSION_CONTEXT))

# ThinkRF stream identifiers.
STREAM_RECEIVER = 0x90000001
STREAM_DIGITIZER = 0x90000002
STREAM_I14Q14 = 0x90000003
STREAM_EXTENSION = 0x90000004
STREAM_I14 = 0x90000005
STREAM_I24 = 0x90000006
THINKRF_STREAMS = frozenset((STREAM_RECEIVER, STREAM_DIGITIZER, STREAM_I14Q14,
                             STREAM_EXTENSION, STREAM_I14, STREAM_I24))

#: Payload format of each IF data stream.
PAYLOAD_FORMATS = {STREAM_I14Q14: "I14Q14", STREAM_I14: "I14", STREAM_I24: "I24"}
#: Integer value of a full-scale sample, per format (samples decode to
#: fractions of full scale).
FULL_SCALE = {"I14Q14": 2 ** 13, "I14": 2 ** 13, "I24": 2 ** 23}

#: Largest packet the size field can state, in 32-bit words.
MAX_PACKET_WORDS = 0xFFFF

# Context indicator bits (CIF0) of the fields we read, in packet order
# (highest bit first), with their width in words and their codec.
_CHANGE = 1 << 31
_CONTEXT_FIELDS = (
    (1 << 30, "reference_point", 1),
    (1 << 29, "bandwidth", 2),
    (1 << 27, "rf_frequency", 2),
    (1 << 26, "rf_offset", 2),
    (1 << 24, "reference_level", 1),
    (1 << 23, "gain", 1),
    (1 << 21, "sample_rate", 2),
    (1 << 18, "temperature", 1),
)
# ThinkRF extension context: indicator bits of its own.
_EXTENSION_FIELDS = (
    (1 << 1, "stream_id", 1),
    (1 << 0, "sweep_id", 1),
)
_FRACTION_20 = float(1 << 20)
_FRACTION_7 = float(1 << 7)

# Trailer: enable bit (31-20) and indicator bit (19-8) of each indicator.
_TRAILER_BITS = (
    ("valid_data", 30),
    ("reference_lock", 29),
    ("spectral_inversion", 26),
    ("over_range", 25),
    ("sample_loss", 24),
)

_WORD = struct.Struct(">I")
_TWO_WORDS = struct.Struct(">II")
_QUAD = struct.Struct(">Q")


def _indicator(bit):
    def read(self):
        word = self.word
        return bool(word >> (bit - 12) & 1) if word >> bit & 1 else None
    return property(read, doc=f"Indicator of enable bit {bit}: True, False or None.")


class Trailer:
    """
    The trailer's state and event indicators.  Each is ``True``/``False``
    when its enable bit is set, ``None`` when the instrument did not say.
    Build one from its word, or from indicators by name.
    """

    __slots__ = ("word",)

    def __init__(self, word=0, **indicators):
        for name, bit in _TRAILER_BITS:
            value = indicators.pop(name, None)
            if value is not None:
                word |= 1 << bit
                word = word | (1 << (bit - 12)) if value else word & ~(1 << (bit - 12))
        if indicators:
            raise TypeError(f"unknown trailer indicator(s): {', '.join(indicators)}")
        self.word = word

    valid_data = _indicator(30)
    reference_lock = _indicator(29)
    spectral_inversion = _indicator(26)
    over_range = _indicator(25)
    sample_loss = _indicator(24)

    def __eq__(self, other):
        return isinstance(other, Trailer) and other.word == self.word

    def __repr__(self):
        said = ", ".join(f"{name}={getattr(self, name)}" for name, _ in _TRAILER_BITS
                         if getattr(self, name) is not None)
        return f"Trailer({said})"


def timestamp_ns(integer_seconds, fractional):
    """
    Device time in integer ns from a UTC/GPS integer timestamp and a
    real-time (picosecond) fractional timestamp.
    """
    return (integer_seconds or 0) * 1_000_000_000 + (fractional or 0) // 1000


def timestamp_of_ns(ns):
    """
    ``(integer_seconds, picoseconds)`` of a device time in ns.
    """
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return seconds, rest * 1000


class _Packet:
    __slots__ = ("packet_type", "stream_id", "count", "class_id", "tsi_kind",
                 "tsf_kind", "integer_seconds", "fractional")

    @property
    def time_ns(self):
        """
        Device time of the packet, ns (real-time TSF; else whole seconds).
        """
        fractional = self.fractional if self.tsf_kind == 2 else 0
        return timestamp_ns(self.integer_seconds, fractional)


class DataPacket(_Packet):
    """
    An IF data packet: ``payload`` is a read-only buffer of the payload
    words; ``trailer`` a :class:`Trailer` or ``None``.
    """

    __slots__ = ("payload", "trailer")
    is_data = True

    @property
    def format(self):
        return PAYLOAD_FORMATS.get(self.stream_id, "I14Q14")

    def samples(self):
        """
        The payload as fractions of full scale (complex64 for I14Q14,
        float32 for I14 and I24).
        """
        return decode_payload(self.payload, self.format)

    def __repr__(self):
        return (f"<DataPacket stream 0x{self.stream_id or 0:08x} #{self.count} "
                f"t={self.integer_seconds}.{self.fractional or 0:012d} "
                f"{len(self.payload)} bytes>")


@dataclass(slots=True, eq=False, repr=False)
class DataRun:
    """
    Consecutive IF data packets of one stream with the same layout and
    size, as they lay in one piece of the stream
    (``VRTStreamParser.feed(data, runs=True)``).

    Its fields are numpy arrays viewing the received bytes and its
    payloads one strided 2-D view, so a run of any length costs a few numpy
    calls: per-packet Python work is what limits small packets.
    """

    buffer: object
    offset: int
    packets: int
    size: int
    header: object
    stream_id: int
    is_data = True

    def __len__(self):
        return self.packets

    def __repr__(self):
        return (f"<DataRun stream 0x{self.stream_id or 0:08x} {self.packets} packets "
                f"of {self.size} bytes>")

    def _field(self, at, dtype):
        if at < 0:
            return None
        return np.ndarray((self.packets,), dtype, self.buffer, self.offset + at, (self.size,))

    @property
    def format(self):
        return PAYLOAD_FORMATS.get(self.stream_id, "I14Q14")

    @property
    def counts(self):
        """
        Packet count fields (0-15), one per packet.
        """
        return (self._field(0, ">u4") >> 16) & 0xF

    @property
    def integer_seconds(self):
        return self._field(_offsets(self.header >> 20)[2], ">u4")

    @property
    def fractional(self):
        return self._field(_offsets(self.header >> 20)[3], ">u8")

    @property
    def trailers(self):
        """
        Trailer words (uint32), or ``None`` without trailers.
        """
        if not self.header >> 26 & 1:
            return None
        return self._field(self.size - 4, ">u4")

    @property
    def time_ns(self):
        """
        Device time of each packet, int64 ns (see :attr:`DataPacket.time_ns`).
        """
        seconds = self.integer_seconds
        ns = (np.zeros(self.packets, np.int64) if seconds is None
              else seconds.astype(np.int64) * 1_000_000_000)
        if self.header >> 20 & 3 == 2:
            ns += (self.fractional // 1000).astype(np.int64)
        return ns

    @property
    def payload_bytes(self):
        start = _offsets(self.header >> 20)[4]
        return self.size - start - 4 * (self.header >> 26 & 1)

    @property
    def samples_per_packet(self):
        return samples_in(self.payload_bytes, self.format)

    def split(self, count):
        """
        ``(first count packets, the rest)``; either may be ``None``.
        """
        if count <= 0:
            return None, self
        if count >= self.packets:
            return self, None
        head = DataRun(self.buffer, self.offset, count, self.size, self.header, self.stream_id)
        tail = DataRun(self.buffer, self.offset + count * self.size, self.packets - count,
                       self.size, self.header, self.stream_id)
        return head, tail

    def samples(self, out=None):
        """
        Every packet's samples, in order, as one array (``out`` if given).
        """
        format = self.format
        raw_dtype = _RAW_DTYPES[format]
        width = self.payload_bytes // raw_dtype.itemsize
        raw = np.ndarray((self.packets, width), raw_dtype, self.buffer,
                         self.offset + _offsets(self.header >> 20)[4],
                         (self.size, raw_dtype.itemsize))
        out = _output(self.packets * self.samples_per_packet, format, out)
        _decode_raw(raw, format, out.view(np.float32).reshape(self.packets, width))
        return out

    def unpack(self):
        """
        The run as a list of :class:`DataPacket`.
        """
        return [parse_packet(self.buffer, self.offset + index * self.size)
                for index in range(self.packets)]


class ContextPacket(_Packet):
    """
    A context or extension-context packet; ``fields`` maps field names
    (``rf_frequency`` Hz, ``reference_level`` dBm, ``bandwidth`` Hz,
    ``sweep_id``...) to values.  ``unsupported`` holds indicator bits this
    codec cannot read (fields after the first such bit are not decoded).
    """

    __slots__ = ("indicators", "fields", "unsupported")
    is_data = False

    def __repr__(self):
        return (f"<ContextPacket type {self.packet_type} stream "
                f"0x{self.stream_id:08x} #{self.count} {self.fields}>")


# Payload codecs.

#: numpy dtype of one stored integer, per format.
_RAW_DTYPES = {"I14Q14": np.dtype(">i2"), "I14": np.dtype(">i2"), "I24": np.dtype(">i4")}


def _check_format(format):
    if format not in _RAW_DTYPES:
        raise VRTError(f"unsupported payload format {format!r}; "
                       f"use one of {', '.join(_RAW_DTYPES)}")


def samples_in(payload_bytes, format="I14Q14"):
    """
    How many samples a payload of ``payload_bytes`` holds.
    """
    return payload_bytes // (2 if format == "I14" else 4)


def _decode_raw(raw, format, out):
    # ``raw``: the stored integers (any shape, strides allowed); ``out``:
    # float32 of the same shape.  Converting (with the byte swap) in one
    # pass and scaling in place in another measured faster than one
    # mixed-dtype multiply.
    scale = np.float32(1.0 / FULL_SCALE[format])
    if format == "I24":
        # Sign-extend the 24 bits held in the low part of each word.
        np.multiply(np.left_shift(raw, 8, dtype=np.int32) >> 8, scale, out=out)
        return
    out[...] = raw
    out *= scale


def _output(count, format, out):
    dtype = np.complex64 if format == "I14Q14" else np.float32
    if out is None:
        return np.empty(count, dtype)
    if out.dtype != dtype or out.shape != (count,):
        raise ValueError(f"out must be {dtype.__name__}[{count}], got {out.dtype}{list(out.shape)}")
    return out


def decode_payload(payload, format="I14Q14", out=None):
    """
    Decode payload bytes to numpy, as fractions of full scale.

    I14Q14: each word holds I then Q, big-endian int16 → complex64.
    I14: two big-endian int16 samples per word → float32.  I24: one
    big-endian 32-bit word per sample, 24 significant bits → float32.
    ``out`` (optional) receives the samples.
    """
    _check_format(format)
    raw = np.frombuffer(payload, _RAW_DTYPES[format])
    out = _output(samples_in(raw.nbytes, format), format, out)
    _decode_raw(raw, format, out.view(np.float32))
    return out


def decode_payloads(payloads, format="I14Q14"):
    """
    Decode several payloads (of one format) into one array.
    """
    counts = [samples_in(len(payload), format) for payload in payloads]
    out = _output(sum(counts), format, None)
    position = 0
    for payload, count in zip(payloads, counts):
        decode_payload(payload, format, out[position:position + count])
        position += count
    return out


def encode_payload(samples, format="I14Q14"):
    """
    Encode fractions of full scale as payload bytes (rounded and clipped
    to the format's integer range); the inverse of :func:`decode_payload`.
    """
    scale = FULL_SCALE.get(format)
    if scale is None:
        raise VRTError(f"unsupported payload format {format!r}")
    samples = np.asarray(samples)
    if format == "I14Q14":
        values = np.ascontiguousarray(samples, np.complex64).view(np.float32)
    else:
        values = np.asarray(samples, np.float64)
    ints = np.clip(np.rint(values * scale), -scale, scale - 1)
    if format == "I24":
        return (ints.astype(np.int64) & 0xFFFFFF).astype(">u4").tobytes()
    data = ints.astype(">i2").tobytes()
    if format == "I14" and len(data) % 4:
        data += b"\0\0"
    return data


# Building packets.

def _header(packet_type, words, count, class_id, trailer, tsi_kind, tsf_kind):
    if words > MAX_PACKET_WORDS:
        raise VRTError(f"packet of {words} words exceeds the {MAX_PACKET_WORDS}-word "
                       "limit of the size field")
    return ((packet_type & 0xF) << 28 | (class_id is not None) << 27
            | bool(trailer) << 26 | (tsi_kind & 3) << 22 | (tsf_kind & 3) << 20
            | (count & 0xF) << 16 | words)


def _prologue(stream_id, class_id, tsi_kind, tsf_kind, integer_seconds, fractional):
    parts = []
    if stream_id is not None:
        parts.append(_WORD.pack(stream_id))
    if class_id is not None:
        oui, information_class, packet_class = class_id
        parts.append(_TWO_WORDS.pack(oui & 0xFFFFFF,
                                     (information_class & 0xFFFF) << 16 | packet_class & 0xFFFF))
    if tsi_kind:
        parts.append(_WORD.pack(integer_seconds))
    if tsf_kind:
        parts.append(_QUAD.pack(fractional))
    return b"".join(parts)


def build_data_packet(payload, stream_id=STREAM_I14Q14, count=0, integer_seconds=0,
                      fractional=0, trailer=None, class_id=None, tsi_kind=1,
                      tsf_kind=2):
    """
    An IF data packet as bytes.

    :param payload: payload bytes, a whole number of 32-bit words.
    :param stream_id: ``None`` for a packet without stream ID (type 0).
    :param trailer: a :class:`Trailer` (or its word), or ``None`` for no
        trailer.
    :param class_id: ``(oui, information_class, packet_class)`` or ``None``.
    :param tsi_kind: 0 none, 1 UTC, 2 GPS, 3 other.
    :param tsf_kind: 0 none, 1 sample count, 2 real time (ps), 3 free-running.
    """
    if len(payload) % 4:
        raise VRTError(f"payload of {len(payload)} bytes is not whole 32-bit words")
    prologue = _prologue(stream_id, class_id, tsi_kind, tsf_kind, integer_seconds, fractional)
    tail = b""
    if trailer is not None:
        tail = _WORD.pack(trailer.word if isinstance(trailer, Trailer) else trailer)
    words = 1 + (len(prologue) + len(payload) + len(tail)) // 4
    packet_type = IF_DATA if stream_id is not None else IF_DATA_NO_ID
    header = _header(packet_type, words, count, class_id, trailer is not None,
                     tsi_kind, tsf_kind)
    return b"".join((_WORD.pack(header), prologue, payload, tail))


def _encode_field(name, value):
    if name in ("bandwidth", "rf_frequency", "rf_offset", "sample_rate"):
        return struct.pack(">q", round(value * _FRACTION_20))
    if name == "reference_level":
        return struct.pack(">hh", 0, round(value * _FRACTION_7))
    if name == "gain":
        stage1, stage2 = value
        return struct.pack(">hh", round(stage2 * _FRACTION_7), round(stage1 * _FRACTION_7))
    if name == "temperature":
        return struct.pack(">hh", 0, round(value * 64.0))
    return _WORD.pack(value)


def _decode_field(name, data, offset):
    if name in ("bandwidth", "rf_frequency", "rf_offset", "sample_rate"):
        return struct.unpack_from(">q", data, offset)[0] / _FRACTION_20
    if name == "reference_level":
        return struct.unpack_from(">h", data, offset + 2)[0] / _FRACTION_7
    if name == "gain":
        stage2, stage1 = struct.unpack_from(">hh", data, offset)
        return (stage1 / _FRACTION_7, stage2 / _FRACTION_7)
    if name == "temperature":
        return struct.unpack_from(">h", data, offset + 2)[0] / 64.0
    return _WORD.unpack_from(data, offset)[0]


def build_context_packet(stream_id, fields, count=0, integer_seconds=0, fractional=0,
                         packet_type=None, class_id=None, tsi_kind=1, tsf_kind=2,
                         changed=True):
    """
    A context packet as bytes.  ``fields`` maps field names to values:
    receiver context ``rf_frequency`` (Hz), ``gain`` (``(stage1, stage2)``
    dB), ``reference_point``, ``temperature`` (°C); digitizer context
    ``bandwidth`` (Hz), ``rf_offset`` (Hz), ``reference_level`` (dBm),
    ``sample_rate`` (Hz).  ``sweep_id`` or ``stream_id`` make a ThinkRF
    extension context packet (type 5).
    """
    table = _CONTEXT_FIELDS
    if packet_type is None:
        packet_type = (EXTENSION_CONTEXT if set(fields) & {"sweep_id", "stream_id"}
                       else CONTEXT)
    if packet_type == EXTENSION_CONTEXT:
        table = _EXTENSION_FIELDS
    known = {name for _, name, _ in table}
    unknown = set(fields) - known
    if unknown:
        raise VRTError(f"cannot put field(s) {', '.join(sorted(unknown))} in a "
                       f"type {packet_type} context packet")
    indicators = _CHANGE if changed and packet_type == CONTEXT else 0
    body = []
    for bit, name, _ in table:
        if name in fields:
            indicators |= bit
            body.append(_encode_field(name, fields[name]))
    prologue = _prologue(stream_id, class_id, tsi_kind, tsf_kind, integer_seconds, fractional)
    content = b"".join((prologue, _WORD.pack(indicators), *body))
    header = _header(packet_type, 1 + len(content) // 4, count, class_id, False,
                     tsi_kind, tsf_kind)
    return _WORD.pack(header) + content


# Parsing.

def _prologue_words(header):
    packet_type = header >> 28
    words = 1 + (packet_type != IF_DATA_NO_ID) + 2 * (header >> 27 & 1)
    words += (header >> 22 & 3 != 0) + 2 * (header >> 20 & 3 != 0)
    if packet_type in (CONTEXT, EXTENSION_CONTEXT):
        words += 1  # the indicator field
    elif header >> 26 & 1:
        words += 1  # the trailer
    return words


@functools.lru_cache(maxsize=4096)
def _check_header(header, max_words):
    """
    Why ``header`` cannot start a packet, or ``None``.  (Cached: a stream
    repeats a handful of header words.)
    """
    packet_type = header >> 28
    if packet_type not in _PACKET_TYPES:
        return f"unsupported packet type {packet_type}"
    size = header & 0xFFFF
    if packet_type in (CONTEXT, EXTENSION_CONTEXT) and header >> 25 & 1:
        return "reserved header bit 25 set"
    if size < _prologue_words(header):
        return f"size {size} words is less than its header fields need"
    if size > max_words:
        return f"oversized packet: {size} words, limit {max_words}"
    return None


@functools.lru_cache(maxsize=256)
def _layout(flags):
    """
    How the words after the header are laid out for the header bits
    31-20 (type, C, T, TSI and TSF kinds): a Struct reading them all at
    once and the position of each field in its result (-1: absent).
    """
    header = flags << 20
    packet_type = header >> 28
    form, positions = ">", {}
    for name, present, code in (("stream_id", packet_type != IF_DATA_NO_ID, "I"),
                                ("class_id", header >> 27 & 1, "II"),
                                ("tsi", header >> 22 & 3, "I"),
                                ("tsf", header >> 20 & 3, "Q")):
        if present:
            positions[name] = len(form) - 1
            form += code
    layout = struct.Struct(form)
    return (layout, positions.get("stream_id", -1), positions.get("class_id", -1),
            positions.get("tsi", -1), positions.get("tsf", -1))


@functools.lru_cache(maxsize=256)
def _offsets(flags):
    """
    Byte offsets, from the start of a packet with header bits 31-20
    ``flags``, of its stream ID, class ID, TSI, TSF and payload (-1:
    absent).
    """
    header = flags << 20
    position, found = 4, []
    for present, words in ((header >> 28 != IF_DATA_NO_ID, 1), (header >> 27 & 1, 2),
                           (header >> 22 & 3, 1), (header >> 20 & 3, 2)):
        found.append(position if present else -1)
        position += 4 * words if present else 0
    return (*found, position)


def parse_packet(data, offset=0, header=None):
    """
    Read the packet at ``data[offset:]`` (which must hold all of it);
    return a :class:`DataPacket` or :class:`ContextPacket`.  Raises
    :class:`VRTError` for malformed bytes.
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    if header is None:
        if len(view) - offset < 4:
            raise VRTError("truncated packet: fewer than 4 bytes")
        header = _WORD.unpack_from(view, offset)[0]
        problem = _check_header(header, MAX_PACKET_WORDS)
        if problem:
            raise VRTError(problem)
    size = (header & 0xFFFF) * 4
    if len(view) - offset < size:
        raise VRTError(f"truncated packet: {len(view) - offset} of {size} bytes")
    packet_type = header >> 28
    is_data = packet_type <= IF_DATA
    packet = DataPacket() if is_data else ContextPacket()
    packet.packet_type = packet_type
    packet.count = header >> 16 & 0xF
    packet.tsi_kind = header >> 22 & 3
    packet.tsf_kind = header >> 20 & 3
    layout, at_stream, at_class, at_tsi, at_tsf = _layout(header >> 20)
    values = layout.unpack_from(view, offset + 4)
    packet.stream_id = values[at_stream] if at_stream >= 0 else None
    if at_class >= 0:
        oui, codes = values[at_class], values[at_class + 1]
        packet.class_id = (oui & 0xFFFFFF, codes >> 16, codes & 0xFFFF)
    else:
        packet.class_id = None
    packet.integer_seconds = values[at_tsi] if at_tsi >= 0 else None
    packet.fractional = values[at_tsf] if at_tsf >= 0 else None
    position = offset + 4 + layout.size
    end = offset + size
    if is_data:
        if header >> 26 & 1:
            end -= 4
            packet.trailer = Trailer(_WORD.unpack_from(view, end)[0])
        else:
            packet.trailer = None
        packet.payload = view[position:end]
        return packet
    indicators = packet.indicators = _WORD.unpack_from(view, position)[0]
    position += 4
    table = _CONTEXT_FIELDS if packet_type == CONTEXT else _EXTENSION_FIELDS
    known_bits = _CHANGE if packet_type == CONTEXT else 0
    fields = packet.fields = {}
    unsupported = indicators & ~(known_bits | sum(bit for bit, _, _ in table))
    packet.unsupported = unsupported
    for bit, name, words in table:
        if unsupported and unsupported >= bit * 2:
            break  # an unknown field of unknown size lies before this one
        if indicators & bit:
            if position + 4 * words > end:
                raise VRTError(f"context packet 0x{packet.stream_id:08x} is truncated: "
                               f"field {name} lies past its {size}-byte size")
            fields[name] = _decode_field(name, view, position)
            position += 4 * words
    return packet


def _stamp(view, position, header):
    """
    The timestamp of the packet at ``position`` as one integer (integer
    seconds × 10¹² + fractional), for comparing packets of one stream.
    """
    _, _, at_tsi, at_tsf, _ = _offsets(header >> 20)
    seconds = _WORD.unpack_from(view, position + at_tsi)[0] if at_tsi >= 0 else 0
    fraction = _QUAD.unpack_from(view, position + at_tsf)[0] if at_tsf >= 0 else 0
    return seconds * 10 ** 12 + fraction


def _plausible_trailer(word):
    """
    Whether a trailer word sets no indicator without its enable bit.
    """
    return (word >> 8 & 0xFFF) & ~(word >> 20) & 0xFFF == 0


class VRTStreamParser:
    """
    Cuts a byte stream, fed in pieces split anywhere, into packets.

    Bytes that cannot start a packet (unknown type, impossible or
    oversized size, unexpected stream ID) are skipped one at a time until
    a plausible header is found again; each run of skipped bytes counts
    once in ``stats["resyncs"]`` and its length in ``stats["garbage_bytes"]``.
    :meth:`feed` never raises on bad input: problems are appended to
    ``problems`` (the most recent few) and counted.

    With ``stream_ids`` the parser also knows each stream's sequence: the
    packet count (modulo 16) it expects next, and the size of its data
    packets.  A header that passes every check of its own may still be
    junk: a bare header or a truncated packet (whose stated size swallows
    the packet after it), a size field gone wrong, a corrupted copy of a
    packet.  So a packet is accepted only when its place in the stream
    agrees with what follows it:

    - in sequence (the count expected, the header of the stream's packets
      but for the count, a data packet's timestamp one step after the
      last; or the first packet of its stream): accepted,
      unless the packet after it repeats its count (a copy with a damaged
      prologue, then the real one), or a packet of the same header starts
      inside it and is itself followed by a packet (a bare or truncated
      header whose size swallowed the real one);
    - out of sequence: accepted only once the
      bytes after it start a plausible packet that does not itself carry
      the count expected (that would make this one an intruder rather than
      the first after a gap); until those bytes arrive it is held.

    A packet refused so counts in ``stats["rejected"]`` and its bytes are
    skipped as garbage, so that the real packets it overlapped are found
    again; no sample of it is returned.  Count gaps that are accepted (the
    instrument itself lost packets) count in ``stats["count_gaps"]``.

    :param max_words: largest packet accepted, in words; larger ones count
        as ``oversized``.
    :param stream_ids: stream IDs accepted (``None``: any); packets
        without a stream ID are then refused too, and sequences are
        checked (above).  This makes resynchronisation on garbage much
        more reliable.
    :param max_garbage: bytes skipped in a row after which
        :attr:`lost_sync` becomes true (the caller should drop the
        connection).
    """

    #: How many problem messages are kept.
    keep_problems = 20

    def __init__(self, max_words=MAX_PACKET_WORDS, stream_ids=None, max_garbage=1 << 20):
        self.max_words = max_words
        self.stream_ids = None if stream_ids is None else frozenset(stream_ids)
        self.max_garbage = max_garbage
        self.stats = {"packets": 0, "data_packets": 0, "context_packets": 0,
                      "bytes": 0, "garbage_bytes": 0, "resyncs": 0,
                      "oversized": 0, "malformed": 0, "truncated": 0,
                      "rejected": 0, "count_gaps": 0}
        self.problems = []
        #: Per stream ID: the packet count expected next, and the size in
        #: bytes of its data packets (checked with ``stream_ids`` only).
        self._next_count = {}
        self._sizes = {}
        self._headers = {}
        #: Per data stream ID: (timestamp of its last packet, the step
        #: between two, the last difference seen).
        self._times = {}
        self._parts = []
        self._have = 0
        self._need = self._complete = 4
        self._skipping = 0

    @property
    def lost_sync(self):
        """
        True while more than ``max_garbage`` bytes were skipped in a row.
        """
        return self._skipping > self.max_garbage

    @property
    def buffered(self):
        """
        Bytes held back, waiting for the rest of a packet.
        """
        return self._have

    def _problem(self, message):
        self.problems.append(message)
        del self.problems[:-self.keep_problems]

    def feed(self, data, runs=False):
        """
        Add bytes; return the list of packets completed by them.

        Complete packets inside ``data`` are parsed where they lie (their
        payloads are views of ``data``); only a packet split between two
        pieces is copied, once.  With ``runs``, consecutive data packets of
        one stream, layout and size come as one :class:`DataRun`.
        """
        if not data:
            return []
        packets = []
        if self._have:
            # Complete the held-back packet (or header) with as few bytes
            # as it needs, then go on in ``data`` itself.
            take = max(self._need - self._have, 0)
            self._parts.append(data[:take])
            self._have += min(take, len(data))
            if self._have < min(self._need, self._complete):
                return packets
            # (A packet is complete once it is all there, even while the
            # bytes that would vouch for it have not come: when nothing
            # more has come, it may be the last one sent so far.)
            head = b"".join(self._parts)
            self._parts, self._have = [], 0
            used = self._parse(head, packets, 0, runs, final=take >= len(data))
            left = len(head) - used
            if left <= min(take, len(data)):
                # What is left came from ``data`` (the bytes that vouched
                # for the held packet, say): go on from there, uncopied.
                offset = min(take, len(data)) - left
            else:  # garbage shifted the packet boundaries
                data, offset = head[used:] + bytes(data[take:]), 0
        else:
            offset = 0
        if not isinstance(data, bytes):
            data = bytes(data)
        used = self._parse(data, packets, offset, runs)
        if used < len(data):
            rest = memoryview(data)[used:]
            self._parts = [rest]
            self._have = len(rest)
        return packets

    def _parse(self, buffer, packets, start=0, runs=False, final=True):
        view = memoryview(buffer)
        total = len(buffer)
        position = start
        unpack = _WORD.unpack_from
        stats = self.stats
        stream_ids = self.stream_ids
        max_words = self.max_words
        self._need = self._complete = 4
        while total - position >= 4:
            header = unpack(view, position)[0]
            problem = _check_header(header, MAX_PACKET_WORDS)
            if problem is None:
                size = (header & 0xFFFF) * 4
                if (header & 0xFFFF) > max_words:
                    problem = f"oversized packet: {header & 0xFFFF} words, limit {max_words}"
                    stats["oversized"] += 1
                elif stream_ids is not None and header >> 28 == IF_DATA_NO_ID:
                    problem = "data packet without a stream ID"
                elif (stream_ids is not None and total - position >= 8
                      and unpack(view, position + 4)[0] not in stream_ids):
                    problem = f"unexpected stream ID 0x{unpack(view, position + 4)[0]:08x}"
            if problem is None and stream_ids is not None:
                if total - position < 8:
                    self._need = self._complete = 8
                    break
                problem, need = self._judge(buffer, view, position, header, size, total,
                                            final)
                if need:
                    self._need = abs(need)
                    self._complete = size if need > 0 else 0
                    break
                if problem is not None:
                    stats["rejected"] += 1
            if problem is not None:
                if not self._skipping:
                    stats["resyncs"] += 1
                    self._problem(f"bad packet header at stream byte "
                                  f"{stats['bytes'] + position - start}: {problem}; "
                                  "resynchronising")
                self._skipping += 1
                stats["garbage_bytes"] += 1
                position += 1
                continue
            if total - position < size:
                self._need = self._complete = size
                break
            self._skipping = 0
            if runs and header >> 28 <= IF_DATA and total - position >= 2 * size:
                count = self._run_length(buffer, position, header, size, total)
                if stream_ids is not None:
                    # Each packet of the run is vouched for by the next; the
                    # last one is judged on its own, by what follows it.
                    count -= 1
                    if count > 1:
                        self._accepted(header, unpack(view, position + 4)[0], size,
                                       count, view, position)
                if count > 1:
                    stream_id = (None if header >> 28 == IF_DATA_NO_ID
                                 else unpack(view, position + 4)[0])
                    packets.append(DataRun(buffer, position, count, size, header, stream_id))
                    stats["packets"] += count
                    stats["data_packets"] += count
                    position += count * size
                    continue
            if stream_ids is not None:
                self._accepted(header, unpack(view, position + 4)[0], size, 1, view,
                               position)
            try:
                packet = parse_packet(view, position, header)
            except VRTError as error:
                stats["malformed"] += 1
                self._problem(str(error))
            else:
                packets.append(packet)
                stats["packets"] += 1
                if packet.is_data:
                    stats["data_packets"] += 1
                else:
                    stats["context_packets"] += 1
            position += size
        stats["bytes"] += position - start
        return position

    def _run_length(self, buffer, position, header, size, total):
        """
        How many packets from ``position`` share ``header`` (but for the
        count field) and the stream ID (and, checking sequences, whose
        counts follow each other).
        """
        available = (total - position) // size
        headers = np.ndarray((available,), ">u4", buffer, position, (size,))
        same = (headers & 0xFFF0FFFF) == (header & 0xFFF0FFFF)
        if header >> 28 != IF_DATA_NO_ID:
            stream_ids = np.ndarray((available,), ">u4", buffer, position + 4, (size,))
            same &= stream_ids == stream_ids[0]
        if self.stream_ids is not None:
            counts = (headers >> 16) & 0xF
            same &= counts == (counts[0] + np.arange(available)) % 16
        return available if same.all() else int(same.argmin())

    def _plausible(self, view, position, total):
        """
        ``(header, stream ID)`` of the packet that the 8 bytes at
        ``position`` could start, ``None`` if they cannot, or ``False``
        while fewer than 8 bytes are there.
        """
        if total - position < 8:
            return False
        header, stream_id = _TWO_WORDS.unpack_from(view, position)
        if (_check_header(header, MAX_PACKET_WORDS) is not None
                or header & 0xFFFF > self.max_words or stream_id not in self.stream_ids):
            return None
        return header, stream_id

    def _judge(self, buffer, view, position, header, size, total, final):
        """
        ``(why the packet at position is junk or None, bytes needed to
        decide or 0)``: see the class's docstring.  (Needed bytes are
        negative when the packet is to be judged again with every piece.)  ``final``: the buffer
        ends where the bytes received so far end.
        """
        stream_id = _WORD.unpack_from(view, position + 4)[0]
        prologue = _offsets(header >> 20)[4]
        if total - position < prologue:
            return None, prologue
        count = header >> 16 & 0xF
        expected = self._next_count.get(stream_id)
        is_data = header >> 28 <= IF_DATA
        learned = self._sizes.get(stream_id) if is_data else None
        last = self._headers.get(stream_id)
        # In sequence: the count expected, and the layout and size of the
        # stream's packets so far (only the count may change).
        in_sequence = ((expected is None or count == expected)
                       and (last is None or (header ^ last) & 0xFFF0FFFF == 0)
                       and (not is_data or self._on_time(view, position, header, stream_id)))
        # The packet the stream expects next, starting inside this one,
        # proves this one junk (a bare, truncated or swollen header).
        if self._expected_inside(buffer, position, size, total):
            return (f"packet of stream 0x{stream_id:08x} overlaps the next one (a bare, "
                    "truncated or damaged header)"), 0
        after = self._plausible(view, position + size, total)
        if after is False:
            if in_sequence and final and position + size <= total:
                return None, 0  # the end of what was sent so far: the usual case
            # Held until the bytes after it come; out of sequence, it is
            # judged again as each piece comes (the packet the stream
            # expects may turn up inside it long before its stated end).
            return None, size + 8 if in_sequence else -(size + 8)
        if in_sequence:
            if after is not None and after[1] == stream_id and after[0] >> 16 & 0xF == count:
                # Two packets of one count: the first is a damaged copy of
                # the second when all but their prologues are the same;
                # else the second is the intruder (judged next).
                if total < position + 2 * size:
                    return None, -2 * size
                body = _offsets(header >> 20)[4]
                if buffer[position + body:position + size] == \
                        buffer[position + size + body:position + 2 * size]:
                    return (f"packet of stream 0x{stream_id:08x} repeats count {count} of "
                            "the packet after it (a damaged copy)"), 0
            if (after is None and is_data and header >> 26 & 1
                    and not _plausible_trailer(_WORD.unpack_from(view, position + size - 4)[0])):
                return (f"packet of stream 0x{stream_id:08x} is followed by no packet and "
                        "ends in no trailer"), 0
            return None, 0
        if after is None:
            why = "size" if expected is not None and count == expected else "count"
            return (f"packet of stream 0x{stream_id:08x} out of sequence ({why}) and not "
                    "followed by a packet"), 0
        if (expected is not None and after[1] == stream_id
                and after[0] >> 16 & 0xF == expected
                and (learned is None or (after[0] & 0xFFFF) * 4 == learned)):
            return (f"packet of stream 0x{stream_id:08x} out of sequence (count {count}, "
                    f"expected {expected}): the packet after it continues the stream"), 0
        return None, 0

    def _expected_inside(self, buffer, position, size, total):
        """
        Whether the packet that a stream expects next (its header and
        stream ID, eight bytes that a payload holds by chance about never)
        starts inside the ``size`` bytes from ``position``.
        """
        end = min(position + size + 7, total)  # (starting inside)
        for stream_id, last in self._headers.items():
            expected = last & 0xFFF0FFFF | self._next_count[stream_id] << 16
            if buffer.find(_TWO_WORDS.pack(expected, stream_id), position + 1, end) >= 0:
                return True
        return False

    def _accepted(self, header, stream_id, size, packets, view, position):
        """
        Note ``packets`` packets of ``stream_id`` from ``header`` at
        ``position`` on.
        """
        count = header >> 16 & 0xF
        expected = self._next_count.get(stream_id)
        if expected is not None and count != expected:
            self.stats["count_gaps"] += 1
        self._next_count[stream_id] = (count + packets) % 16
        self._headers[stream_id] = header
        if header >> 28 <= IF_DATA:
            self._sizes[stream_id] = size
            last = _stamp(view, position + (packets - 1) * size, header)
            if packets > 1:
                step = seen = last - _stamp(view, position + (packets - 2) * size, header)
            else:
                # The step is learnt from two equal differences in a row,
                # so that one jump (the instrument lost samples) is not
                # taken for the step of the packets after it.
                before, step, diff = self._times.get(stream_id, (None, None, None))
                seen = None if before is None else last - before
                if seen is not None and seen == diff:
                    step = seen
            self._times[stream_id] = (last, step, seen)

    def _on_time(self, view, position, header, stream_id):
        """
        Whether the data packet at ``position`` is stamped one step after
        the last of its stream (True while the step is not known yet).
        """
        last, step, _ = self._times.get(stream_id, (None, None, None))
        return step is None or _stamp(view, position, header) == last + step

    def close(self):
        """
        The stream has ended: count what is left as a truncated packet.
        Returns the problem message, or ``None`` if nothing was left.
        """
        if not self._have:
            return None
        message = f"stream ended inside a packet: {self._have} bytes left over"
        self.stats["truncated"] += 1
        self._problem(message)
        self._parts, self._have, self._need = [], 0, 4
        return message
