"""
The chunk, the unit of data, and its wire encoding.

A chunk is a numpy array plus the half-open range of device time it covers
(integer nanoseconds), its rate, a gap-free sequence number and metadata.
On the wire a chunk is one msgpack map whose array travels as a raw buffer:
packed from a ``memoryview`` of the array and read back with
``np.frombuffer``, so neither side copies the samples more than msgpack
itself must.
"""

import msgpack
import numpy as np

__all__ = ["Chunk", "ChunkDecodeError", "encode_chunk", "encode_chunks",
           "decode_chunk", "decode_chunks", "ChunkStreamDecoder"]

NS_PER_SECOND = 1_000_000_000

#: Kinds of numpy dtype that may cross the wire: bool, signed and unsigned
#: integers, floats and complex numbers.  Never objects.
_WIRE_DTYPE_KINDS = frozenset("biufc")
_KEYS = frozenset("kseqrmd")
#: Largest body a decoder accepts in one piece (1 GiB).
MAX_ENCODED_SIZE = 1 << 30


class ChunkDecodeError(ValueError):
    """
    Bytes that do not hold a well-formed chunk.
    """


class Chunk:
    """
    An immutable piece of a stream.

    :param kind: what the chunk holds: ``"iq"``, ``"real"``, ``"spectrum"``,
        ``"scalar"``, ``"peaks"``...
    :param data: numpy array; axis 0 is time (samples, or frames of a
        spectrum batch).  It is made read-only.
    :param start: device time of the first sample, integer ns.
    :param end: device time just after the last sample, integer ns.
    :param rate: samples (or frames) per second along axis 0.
    :param seq: position in the producer's stream, gap-free from 0.
    :param meta: mapping of metadata (centre frequency, units...).
    """

    __slots__ = ("kind", "data", "start", "end", "rate", "seq", "meta")

    def __init__(self, kind, data, start, end, rate, seq=0, meta=None):
        if data.flags.writeable:
            data.flags.writeable = False
        self.kind = kind
        self.data = data
        self.start = int(start)
        self.end = int(end)
        self.rate = float(rate)
        self.seq = int(seq)
        self.meta = {} if meta is None else meta

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return (f"<Chunk {self.kind} seq={self.seq} {self.data.dtype}"
                f"{list(self.data.shape)} [{self.start}, {self.end}) ns>")

    def __eq__(self, other):
        if not isinstance(other, Chunk):
            return NotImplemented
        return (self.kind == other.kind and self.start == other.start
                and self.end == other.end and self.rate == other.rate
                and self.seq == other.seq and self.meta == other.meta
                and self.data.dtype == other.data.dtype
                and np.array_equal(self.data, other.data))

    __hash__ = None

    @property
    def nbytes(self):
        return self.data.nbytes

    @property
    def duration(self):
        """
        Length of the covered time range, in seconds.
        """
        return (self.end - self.start) / NS_PER_SECOND

    def replace(self, **changes):
        """
        A new chunk with some fields changed.
        """
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Chunk(**fields)

    def time_of(self, index):
        """
        Device time (ns) of row ``index`` of the data.
        """
        return self.start + round(index * NS_PER_SECOND / self.rate)

    def index_at(self, time_ns):
        """
        Number of rows that start before ``time_ns``, clipped to the chunk.
        """
        rows = round((time_ns - self.start) * self.rate / NS_PER_SECOND)
        return min(max(rows, 0), len(self.data))


def _pack_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        raise TypeError("numpy arrays may appear only as a chunk's data, "
                        "not inside its meta")
    raise TypeError(f"cannot encode {type(value).__name__} in a chunk")


def _array_fields(array):
    array = np.ascontiguousarray(array)
    if array.dtype.kind not in _WIRE_DTYPE_KINDS:
        raise TypeError(f"cannot encode arrays of dtype {array.dtype}")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    buffer = memoryview(array).cast("B") if array.size else b""
    return [array.dtype.str, list(array.shape), buffer]


def encode_chunk(chunk, packer=None):
    """
    Encode one chunk as msgpack bytes.
    """
    packer = packer or msgpack.Packer(default=_pack_default)
    return packer.pack({
        "k": chunk.kind, "s": chunk.start, "e": chunk.end, "q": chunk.seq,
        "r": chunk.rate, "m": chunk.meta, "d": _array_fields(chunk.data),
    })


def encode_chunks(chunks):
    """
    Encode several chunks back to back: the body of one stream response.
    """
    packer = msgpack.Packer(default=_pack_default)
    return b"".join(encode_chunk(chunk, packer) for chunk in chunks)


def _fail(reason):
    raise ChunkDecodeError(f"malformed chunk: {reason}")


def _decode_array(fields):
    if not isinstance(fields, list) or len(fields) != 3:
        _fail("'d' must be [dtype, shape, buffer]")
    dtype_text, shape, buffer = fields
    if not isinstance(dtype_text, str) or len(dtype_text) > 8:
        _fail("dtype must be a short string")
    try:
        dtype = np.dtype(dtype_text)
    except TypeError:
        _fail(f"unknown dtype {dtype_text!r}")
    if dtype.kind not in _WIRE_DTYPE_KINDS or dtype.fields is not None:
        _fail(f"dtype {dtype_text!r} is not a plain numeric type")
    if (not isinstance(shape, list) or len(shape) > 8
            or not all(type(n) is int and n >= 0 for n in shape)):
        _fail("shape must be a list of at most 8 non-negative integers")
    if not isinstance(buffer, bytes):
        _fail("array buffer must be msgpack bin")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(buffer):
        _fail(f"buffer holds {len(buffer)} bytes, shape {shape} of "
              f"{dtype_text} needs {count * dtype.itemsize}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _chunk_from_map(obj):
    if not isinstance(obj, dict) or obj.keys() != _KEYS:
        _fail(f"expected a map with keys {sorted(_KEYS)}")
    kind, start, end, seq, rate, meta = (obj[k] for k in "kseqrm")
    if not isinstance(kind, str) or not kind:
        _fail("kind must be a non-empty string")
    if type(start) is not int or type(end) is not int or end < start:
        _fail("start and end must be integers with start <= end")
    if type(seq) is not int or seq < 0:
        _fail("seq must be a non-negative integer")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
        _fail("rate must be a positive number")
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        _fail("meta must be a map with string keys")
    return Chunk(kind, _decode_array(obj["d"]), start, end, rate, seq, meta)


def _unpacker(max_size):
    return msgpack.Unpacker(raw=False, strict_map_key=True,
                            max_buffer_size=max_size)


class ChunkStreamDecoder:
    """
    Decode chunks from bytes that arrive in pieces split anywhere.

    ``feed(data)`` returns the chunks completed so far; ``close()`` raises
    :class:`ChunkDecodeError` if a chunk was left unfinished.
    """

    def __init__(self, max_size=MAX_ENCODED_SIZE):
        self._unpacker = _unpacker(max_size)
        self._fed = 0
        self._complete = 0

    def feed(self, data):
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            _fail("a chunk exceeds the size limit")
        self._fed += len(data)
        chunks = []
        try:
            for obj in self._unpacker:
                chunks.append(_chunk_from_map(obj))
                self._complete = self._unpacker.tell()
        except ChunkDecodeError:
            raise
        except (ValueError, TypeError, msgpack.UnpackException) as error:
            _fail(f"{type(error).__name__}: {error}".rstrip(": "))
        return chunks

    @property
    def pending(self):
        """
        Number of bytes fed that do not yet form a whole chunk.
        """
        return self._fed - self._complete

    def close(self):
        if self.pending:
            _fail("truncated: the stream ended inside a chunk")


def decode_chunks(data, max_size=MAX_ENCODED_SIZE):
    """
    Decode a body of back-to-back chunks; raise :class:`ChunkDecodeError`
    if anything is malformed or truncated.
    """
    decoder = ChunkStreamDecoder(max_size=max(max_size, len(data)))
    chunks = decoder.feed(data)
    decoder.close()
    return chunks


def decode_chunk(data):
    """
    Decode exactly one chunk.
    """
    chunks = decode_chunks(data)
    if len(chunks) != 1:
        _fail(f"expected one chunk, found {len(chunks)}")
    return chunks[0]
