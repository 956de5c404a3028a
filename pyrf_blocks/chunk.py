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

__all__ = ["Chunk", "ChunkDecodeError", "chunk_packer", "encode_chunk", "encode_chunks",
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


def _wire_array(array):
    """
    ``array`` as it travels: C-contiguous and little-endian, of a numeric
    dtype.
    """
    array = np.ascontiguousarray(array)
    if array.dtype.kind not in _WIRE_DTYPE_KINDS:
        raise TypeError(f"cannot encode arrays of dtype {array.dtype}")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def _bin_header(length):
    if length < 0x100:
        return b"\xc4" + length.to_bytes(1, "big")
    if length < 0x10000:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


def chunk_packer():
    """
    A msgpack packer for :func:`encode_chunk`, to reuse for many chunks.
    """
    return msgpack.Packer(default=_pack_default)


def encode_chunk(chunk, packer=None, seq=None):
    """
    Encode one chunk as msgpack bytes, its array's buffer last; ``seq``
    replaces the chunk's own.

    The samples are copied once, straight from the array into the result:
    the map is packed with an empty buffer in its place (``c4 00``, the
    last two bytes), whose header is then replaced by the real one.
    """
    packer = packer or chunk_packer()
    array = _wire_array(chunk.data)
    head = packer.pack({
        "k": chunk.kind, "s": chunk.start, "e": chunk.end,
        "q": chunk.seq if seq is None else seq,
        "r": chunk.rate, "m": chunk.meta,
        "d": [array.dtype.str, list(array.shape), b""],
    })
    if not array.size:
        return head
    return b"".join((head[:-2], _bin_header(array.nbytes), memoryview(array).cast("B")))


def encode_chunks(chunks):
    """
    Encode several chunks back to back: the body of one stream response.
    """
    packer = chunk_packer()
    return b"".join(encode_chunk(chunk, packer) for chunk in chunks)


def _fail(reason):
    raise ChunkDecodeError(f"malformed chunk: {reason}")


#: Dtypes already parsed from their wire text (only the valid ones).
_DTYPES = {}


def _wire_dtype(text):
    dtype = _DTYPES.get(text)
    if dtype is not None:
        return dtype
    if type(text) is not str or len(text) > 8:
        _fail("dtype must be a short string")
    try:
        dtype = np.dtype(text)
    except TypeError:
        _fail(f"unknown dtype {text!r}")
    if dtype.kind not in _WIRE_DTYPE_KINDS or dtype.fields is not None:
        _fail(f"dtype {text!r} is not a plain numeric type")
    if len(_DTYPES) < 256:
        _DTYPES[text] = dtype
    return dtype


def _array_layout(dtype_text, shape, nbytes):
    """
    The dtype and element count of an array sent as ``[dtype_text, shape,
    <nbytes of buffer>]``; :class:`ChunkDecodeError` unless they agree.
    """
    dtype = _wire_dtype(dtype_text)
    if type(shape) is not list or len(shape) > 8:
        _fail("shape must be a list of at most 8 non-negative integers")
    count = 1
    for n in shape:
        if type(n) is not int or n < 0:
            _fail("shape must be a list of at most 8 non-negative integers")
        count *= n
    if count * dtype.itemsize != nbytes:
        _fail(f"buffer holds {nbytes} bytes, shape {shape} of "
              f"{dtype_text} needs {count * dtype.itemsize}")
    return dtype, count


def _decode_array(fields):
    if not isinstance(fields, list) or len(fields) != 3:
        _fail("'d' must be [dtype, shape, buffer]")
    dtype_text, shape, buffer = fields
    if not isinstance(buffer, bytes):
        _fail("array buffer must be msgpack bin")
    dtype, count = _array_layout(dtype_text, shape, len(buffer))
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def _check_fields(obj):
    if type(obj) is not dict or obj.keys() != _KEYS:
        _fail(f"expected a map with keys {sorted(_KEYS)}")
    kind, start, end, seq, rate, meta = (
        obj["k"], obj["s"], obj["e"], obj["q"], obj["r"], obj["m"])
    if type(kind) is not str or not kind:
        _fail("kind must be a non-empty string")
    if type(start) is not int or type(end) is not int or end < start:
        _fail("start and end must be integers with start <= end")
    if type(seq) is not int or seq < 0:
        _fail("seq must be a non-negative integer")
    if type(rate) not in (float, int) or not rate > 0:
        _fail("rate must be a positive number")
    if type(meta) is not dict or bytes in set(map(type, meta)):
        _fail("meta must be a map with string keys")


def _chunk(fields, data):
    return Chunk(fields["k"], data, fields["s"], fields["e"], fields["r"],
                 fields["q"], fields["m"])


def _chunk_from_map(obj):
    _check_fields(obj)
    return _chunk(obj, _decode_array(obj["d"]))


def _unpacker(max_size):
    return msgpack.Unpacker(raw=False, strict_map_key=True,
                            max_buffer_size=max_size)


_UNPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException)
#: Bytes of a chunk first looked at for its head (meta is rarely longer).
_HEAD_PROBE = 4096
_BIN_LENGTH_BYTES = {0xc4: 1, 0xc5: 2, 0xc6: 4}
#: What :func:`_parse_head` says of a chunk that must be read whole.
_WHOLE = object()


class _Head:
    """
    A chunk's fields, parsed from the bytes before its array's buffer.
    """

    __slots__ = ("fields", "dtype", "count", "shape", "size", "nbytes")

    def __init__(self, fields, dtype, count, shape, size, nbytes):
        self.fields, self.dtype, self.count, self.shape = fields, dtype, count, shape
        #: Bytes from the chunk's first to its buffer's first.
        self.size = size
        #: Bytes of the buffer.
        self.nbytes = nbytes


def _unpack_error(error):
    _fail(f"{type(error).__name__}: {error}".rstrip(": "))


def _parse_head(buffer, max_size):
    """
    The :class:`_Head` of the chunk at the start of ``buffer``; None when
    more bytes are needed; ``_WHOLE`` when the chunk's buffer is not its
    last item, so the chunk must be read whole.
    """
    unpacker = _unpacker(max(max_size, len(buffer)))
    unpacker.feed(buffer)
    try:
        count = unpacker.read_map_header()
        fields = {}
        for index in range(count):
            key = unpacker.unpack()
            if key != "d" or index != count - 1:
                fields[key] = unpacker.unpack()
                continue
            if unpacker.read_array_header() != 3:
                return _WHOLE
            dtype_text, shape = unpacker.unpack(), unpacker.unpack()
            at = unpacker.tell()
            if at >= len(buffer):
                return None
            width = _BIN_LENGTH_BYTES.get(buffer[at])
            if width is None:
                return _WHOLE
            if at + 1 + width > len(buffer):
                return None
            nbytes = int.from_bytes(buffer[at + 1:at + 1 + width], "big")
            fields["d"] = None
            _check_fields(fields)
            if nbytes > max_size:
                _fail(f"a {nbytes}-byte array exceeds the size limit")
            dtype, elements = _array_layout(dtype_text, shape, nbytes)
            return _Head(fields, dtype, elements, shape, at + 1 + width, nbytes)
        return _WHOLE
    except msgpack.OutOfData:
        return None
    except ChunkDecodeError:
        raise
    except _UNPACK_ERRORS as error:
        _unpack_error(error)



class ChunkStreamDecoder:
    """
    Decode chunks from bytes that arrive in pieces split anywhere.

    ``feed(data)`` returns the chunks completed so far; ``close()`` raises
    :class:`ChunkDecodeError` if a chunk was left unfinished.

    Chunks that arrive whole are unpacked in one call.  A chunk still
    arriving is read from its head on: its array is made at once, in its
    own aligned memory, and each piece's samples are copied straight into
    it, so a large array is copied once however it was split.
    """

    def __init__(self, max_size=MAX_ENCODED_SIZE):
        self._max_size = max_size
        #: The start of a chunk too short yet to say what it is.
        self._carry = bytearray()
        self._head = None
        self._array = self._target = None
        self._filled = 0

    def feed(self, data):
        view = memoryview(data).cast("B")
        if self._carry:
            view = memoryview(self._carry + view)
            self._carry = bytearray()
        chunks = []
        position, size = 0, len(view)
        while position < size:
            if self._head is None:
                position = self._read(view, position, chunks)
            else:
                position = self._fill(view, position, chunks)
        return chunks

    @property
    def pending(self):
        """
        Number of bytes fed that do not yet form a whole chunk.
        """
        head = self._head.size if self._head is not None else 0
        return len(self._carry) + head + self._filled

    def close(self):
        if self.pending:
            _fail("truncated: the stream ended inside a chunk")

    def _read(self, view, position, chunks):
        rest = view[position:]
        unpacker = _unpacker(max(self._max_size, len(rest)))
        fed = used = 0
        # Feed the unpacker a probe at a time, and stop as soon as it holds
        # a probe's worth of one unfinished chunk: that one is large, and
        # is read from its head instead of being copied here too.
        while fed < len(rest) and fed - used < _HEAD_PROBE:
            unpacker.feed(rest[fed:fed + _HEAD_PROBE])
            fed = min(fed + _HEAD_PROBE, len(rest))
            try:
                while True:
                    obj = unpacker.unpack()
                    chunks.append(_chunk_from_map(obj))
                    used = unpacker.tell()
            except msgpack.OutOfData:
                pass
            except ChunkDecodeError:
                raise
            except _UNPACK_ERRORS as error:
                _unpack_error(error)
        rest = rest[used:]
        if rest:
            head = _parse_head(rest[:_HEAD_PROBE], self._max_size)
            if head is None and len(rest) > _HEAD_PROBE:
                head = _parse_head(rest, self._max_size)
            if isinstance(head, _Head):
                self._head = head
                self._array = np.empty(head.count, head.dtype)
                self._target = memoryview(self._array).cast("B")
                return position + used + head.size
        if len(rest) > self._max_size:
            _fail("a chunk exceeds the size limit")
        self._carry = bytearray(rest)
        return len(view)

    def _fill(self, view, position, chunks):
        head = self._head
        taken = min(head.nbytes - self._filled, len(view) - position)
        self._target[self._filled:self._filled + taken] = view[position:position + taken]
        self._filled += taken
        if self._filled == head.nbytes:
            chunks.append(_chunk(head.fields, self._array.reshape(head.shape)))
            self._head = self._array = self._target = None
            self._filled = 0
        return position + taken


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
