"""
The chunk, the unit of data, and its wire encoding.

A chunk is a numpy array plus the half-open range of device time it covers
(integer nanoseconds), its rate, a gap-free sequence number and metadata.
Records (kind ``"records"``) are irregular: instead of a rate they carry
the device time of every row (``times``).
On the wire a chunk is one msgpack map whose array travels as a raw buffer:
packed from a ``memoryview`` of the array and read back with
``np.frombuffer``, so neither side copies the samples more than msgpack
itself must.
"""

import copy
import functools
import struct
import warnings

import msgpack
import numpy as np

from .errors import ChunkDecodeError
from .timebase import NS_PER_SECOND, sample_index, sample_time

__all__ = ["Chunk", "RECORDS", "chunk_packer", "encode_chunk", "encode_chunk_shared",
           "encode_chunks", "decode_chunk", "decode_chunks", "ChunkStreamDecoder",
           "RingHead", "MetaPacker", "SHORT_HEAD", "MAX_SHORT_META"]

#: Kind of irregular, time-stamped values: one device time per row.
RECORDS = "records"

#: Kinds of numpy dtype that may cross the wire: bool, signed and unsigned
#: integers, floats and complex numbers.  Never objects.
_WIRE_DTYPE_KINDS = frozenset("biufc")
#: The same as text, for ``in`` tests on a dtype's one-letter kind.
_NUMBERS = "biufc"
_KEYS = frozenset("kseqrmd")
#: Keys of a records chunk: those of any chunk, and its times.
_RECORD_KEYS = _KEYS | {"t"}
#: A chunk whose array lies in shared memory (see :mod:`pyrf_blocks.net.shm`).
_SHARED_KEYS = _KEYS | {"x"}
#: Largest body a decoder accepts in one piece (1 GiB).
MAX_ENCODED_SIZE = 1 << 30
#: Bounds of a structured record dtype (fields, and characters of a name).
_MAX_FIELDS = 256
_MAX_FIELD_NAME = 64
#: The dtype of records' times (compared by identity first: it is cheaper).
_INT64 = np.dtype(np.int64)
#: The dtype slot of a records chunk's ``d`` whose rows are str or bytes.
_OBJECT_ROWS = "O"


class Chunk:
    """
    An immutable piece of a stream.

    :param kind: what the chunk holds: ``"iq"``, ``"real"``, ``"spectrum"``,
        ``"scalar"``, ``"peaks"``, ``"records"``...
    :param data: numpy array; axis 0 is time (samples, frames of a
        spectrum batch, or records).  It is made read-only.
    :param start: device time of the first sample, integer ns.
    :param end: device time just after the last sample, integer ns.
    :param rate: samples (or frames) per second along axis 0, > 0; 0.0 for
        records, which are irregular.
    :param seq: position in the producer's stream, gap-free from 0.
    :param meta: mapping of metadata (centre frequency, units...).
    :param times: ``None`` for sampled kinds.  For records (and only
        records), the device time (int64 ns) of each row, sorted
        non-decreasing, inside ``[start, end)``; it is made read-only.
        Here only its shape and bounds are checked (a glance, whatever
        the size): build records with :meth:`Chunk.records`, which checks
        everything.
    """

    __slots__ = ("kind", "data", "start", "end", "rate", "seq", "meta", "times")

    def __init__(self, kind, data, start, end, rate, seq=0, meta=None, times=None):
        # Read-only, by the cheapest call: ``data.flags.writeable = False``
        # goes through a flags object that calls this method by name.
        data.setflags(False)
        # int() and float() cost a call even on an int or a float: only
        # other types (numpy scalars, a float start) are converted.
        if start.__class__ is not int:
            start = int(start)
        if end.__class__ is not int:
            end = int(end)
        if rate.__class__ is not float:
            rate = float(rate)
        if seq.__class__ is not int:
            seq = int(seq)
        self.kind = kind
        self.data = data
        self.start = start
        self.end = end
        self.rate = rate
        self.seq = seq
        self.meta = {} if meta is None else meta
        if times is None:
            if kind == RECORDS:
                raise ValueError("a records chunk needs times (build it with Chunk.records)")
            if not rate > 0:
                raise ValueError(f"a {kind!r} chunk needs a rate > 0, got {rate!r}")
        else:
            if kind != RECORDS:
                raise ValueError(f"only records carry times, not {kind!r} chunks")
            _check_times_layout(times, len(data), start, end, rate)
            times.setflags(False)
        self.times = times

    @classmethod
    def records(cls, times, values, start=None, end=None, seq=0, meta=None):
        """
        A chunk of records (kind ``"records"``): irregular, time-stamped values.

        :param times: device time of each row, integer ns, sorted
            non-decreasing (any sequence of integers).
        :param values: one row per time: numbers (any numeric dtype, 1-D or
            ``(n, k)``), a structured array whose fields are all numeric
            (e.g. ``[("voltage", "<f8"), ("current", "<f8")]``), or text and
            bytes (``str`` and ``bytes`` rows, mixed if need be).
        :param start: first device time the chunk covers (default: the
            first row's time).
        :param end: device time up to which the stream is complete (a
            watermark, default: just after the last row).  Both are needed
            when there are no rows: an empty chunk just advances time.
        :raise ValueError: one line saying what is wrong.

        The arrays are not copied where they already have the right dtype;
        they are made read-only.
        """
        times, first, last = _record_times(times)
        values = _record_values(values)
        if len(values) != len(times):
            raise ValueError(f"records: {len(times)} times but {len(values)} rows of values")
        if first is not None:
            start = first if start is None else int(start)
            end = last + 1 if end is None else int(end)
        elif start is None or end is None:
            raise ValueError("records: a chunk without rows needs an explicit start and end")
        else:
            start, end = int(start), int(end)
        if end < start:
            raise ValueError(f"records: end {end} ns is before start {start} ns")
        if first is not None and not start <= first <= last < end:
            raise ValueError(_OUTSIDE.format(first=first, last=last, start=start, end=end))
        # Everything __init__ would check is checked: fill the slots
        # directly (a block emits a chunk of records per input chunk).
        chunk = cls.__new__(cls)
        values.setflags(write=False)
        times.setflags(write=False)
        chunk.kind, chunk.data, chunk.times, chunk.rate = RECORDS, values, times, 0.0
        chunk.start, chunk.end, chunk.seq = start, end, int(seq)
        chunk.meta = {} if meta is None else meta
        return chunk

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        times = self.times
        if times is None:
            rows = ""
        elif len(times):
            rows = f" at {times[0]}..{times[-1]}"
        else:
            rows = " empty"
        return (f"<Chunk {self.kind} seq={self.seq} {self.data.dtype}"
                f"{list(self.data.shape)}{rows} [{self.start}, {self.end}) ns>")

    def __eq__(self, other):
        if not isinstance(other, Chunk):
            return NotImplemented
        return (self.kind == other.kind and self.start == other.start
                and self.end == other.end and self.rate == other.rate
                and self.seq == other.seq and self.meta == other.meta
                and self.data.dtype == other.data.dtype
                and np.array_equal(self.data, other.data)
                and (self.times is None) == (other.times is None)
                and (self.times is None or np.array_equal(self.times, other.times)))

    __hash__ = None

    @property
    def nbytes(self):
        """
        Bytes of data (of text and bytes rows: their total length, roughly
        what they take on the wire), and of the times of records.
        """
        data = self.data
        if self.times is None:
            return data.nbytes  # sampled kinds are numeric: the common case first
        size = sum(map(len, data)) if data.dtype.kind == "O" else data.nbytes
        return size + self.times.nbytes

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
        if changes.keys() <= {"seq", "meta"}:
            # Numbering or meta only: nothing the constructor checks changes.
            chunk = Chunk.__new__(Chunk)
            chunk.kind, chunk.data, chunk.times = self.kind, self.data, self.times
            chunk.start, chunk.end, chunk.rate = self.start, self.end, self.rate
            chunk.seq = int(changes.get("seq", self.seq))
            meta = changes.get("meta", self.meta)
            chunk.meta = {} if meta is None else meta
            return chunk
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Chunk(**fields)

    def time_of(self, index):
        """
        Device time (ns) of row ``index`` of the data; ``index == len(self)``
        gives the time just after the last row (for records: ``end``).
        """
        times = self.times
        if times is None:
            return sample_time(self.start, index, self.rate)
        if index == len(times):
            return self.end
        if not 0 <= index < len(times):
            raise IndexError(f"row {index} of a chunk of {len(times)} records")
        return int(times[index])

    def index_at(self, time_ns):
        """
        Number of rows that start before ``time_ns``, clipped to the chunk.
        """
        if self.times is not None:
            return int(np.searchsorted(self.times, time_ns, side="left"))
        rows = sample_index(self.start, time_ns, self.rate)
        return min(max(rows, 0), len(self.data))


def _check_times_layout(times, rows, start, end, rate):
    """
    What :class:`Chunk` checks of a records chunk's times: shape, dtype and
    bounds, none of which costs more than a glance.
    """
    if not isinstance(times, np.ndarray) or times.ndim != 1 or (
            times.dtype is not _INT64 and times.dtype != _INT64):
        raise ValueError("records: times must be a 1-D int64 numpy array (ns)")
    if len(times) != rows:
        raise ValueError(f"records: {len(times)} times but {rows} rows of values")
    if rate != 0:
        raise ValueError(f"records are irregular: their rate must be 0.0, got {rate!r}")
    if end < start:
        raise ValueError(f"records: end {end} ns is before start {start} ns")
    if rows and not start <= int(times[0]) <= int(times[-1]) < end:
        raise ValueError(_OUTSIDE.format(first=times[0], last=times[-1], start=start, end=end))


_OUTSIDE = ("records: row times {first}..{last} ns are not all inside the chunk's range "
            "[{start}, {end}) ns")


def _record_times(times):
    """
    ``times`` as a 1-D int64 array, sorted, and its first and last time
    (Python ints; None and None without rows), or ValueError.
    """
    if type(times) is np.ndarray and times.dtype is _INT64 and times.ndim == 1:
        array = times  # the common case: checked for order only
    else:
        array = _integer_times(times)
        if array is None:
            return np.zeros(0, np.int64), None, None
    if not len(array):
        return array, None, None
    if len(array) <= 32:  # a few rows: cheaper in Python than in numpy calls
        listed = array.tolist()
        unsorted = listed != sorted(listed)
        first, last = listed[0], listed[-1]
    else:
        unsorted = bool(np.less(array[1:], array[:-1]).any())
        first, last = int(array[0]), int(array[-1])
    if unsorted:
        row = int(np.flatnonzero(array[1:] < array[:-1])[0]) + 1
        raise ValueError(f"records: times must be sorted (non-decreasing): row {row} "
                         f"at {array[row]} ns comes after {array[row - 1]} ns")
    return array, first, last


def _integer_times(times):
    """
    ``times`` as a 1-D int64 array (None: no rows), or ValueError.
    """
    array = np.asarray(times)
    if array.size == 0 and array.ndim == 1:
        return None
    if array.ndim != 1:
        raise ValueError(f"records: times must be 1-D, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"records: times must be integer nanoseconds, got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.dtype.itemsize == 8 and array.max() > np.iinfo(np.int64).max:
        raise ValueError("records: times beyond the int64 range of nanoseconds")
    return array.astype(np.int64, copy=False)


def _record_values(values):
    """
    ``values`` as an array that records may hold, or ValueError.
    """
    if type(values) is np.ndarray and values.dtype.kind in _NUMBERS and 0 < values.ndim <= 2:
        return values  # the common case: numbers, one or k per row
    if isinstance(values, np.ndarray):
        array = values
    elif isinstance(values, (list, tuple)) and any(isinstance(v, (str, bytes)) for v in values):
        # Built by hand: numpy would turn numbers among text into text, and
        # strip the trailing NULs of bytes.
        array = np.empty(len(values), object)
        for row, value in enumerate(values):
            array[row] = value
    else:
        try:
            array = np.asarray(values)
        except ValueError as error:
            raise ValueError(f"records: values do not form an array: {error}") from None
    if array.ndim == 0:
        raise ValueError("records: values must have one row per time, got a scalar")
    kind = array.dtype.kind
    if kind in "US":
        array = array.astype(object)
        kind = "O"
    if kind == "O":
        if array.ndim != 1:
            raise ValueError(f"records: text or bytes rows must be 1-D, got shape {array.shape}")
        for row, value in enumerate(array):
            if not isinstance(value, (str, bytes)):
                raise ValueError(f"records: row {row} is of type {type(value).__name__}, "
                                 "not str or bytes (numbers go in a numeric array)")
    elif array.dtype.fields is not None:
        if array.ndim != 1:
            raise ValueError(f"records: structured values must be 1-D, got shape {array.shape}")
        problem = _structured_problem(array.dtype)
        if problem:
            raise ValueError(f"records: {problem}")
    elif kind in _WIRE_DTYPE_KINDS:
        if array.ndim > 2:
            raise ValueError(f"records: numeric values must be 1-D or (rows, k), "
                             f"got shape {array.shape}")
    else:
        raise ValueError(f"records: values of dtype {array.dtype} cannot be records; "
                         "use numbers, numeric fields, str or bytes")
    return array


@functools.lru_cache(maxsize=256)
def _structured_problem(dtype):
    """
    What makes ``dtype`` unfit for records' named fields, or None
    (remembered per dtype: a stream's chunks share one).
    """
    names = dtype.names
    if not names or len(names) > _MAX_FIELDS:
        return f"a structured dtype needs 1 to {_MAX_FIELDS} fields, got {len(names or ())}"
    if len(dtype.fields) != len(names):
        return "fields with titles are not supported"
    for name in names:
        if not 0 < len(name) <= _MAX_FIELD_NAME:
            return f"field names must have 1 to {_MAX_FIELD_NAME} characters, got {name!r}"
        field = dtype.fields[name][0]
        if field.kind not in _WIRE_DTYPE_KINDS or field.fields is not None or field.shape:
            return f"field {name!r} has dtype {field}; fields must be plain numbers"
    return None


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
    if chunk.times is not None:
        return _encode_records(chunk, packer, seq)
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


def encode_chunk_shared(chunk, put, packer=None):
    """
    Encode one sampled chunk with its array placed elsewhere: ``put(array)``
    copies the wire array somewhere both sides can read (a shared-memory
    ring) and returns its ``(offset, nbytes)`` there, or ``None`` when it
    cannot take it.  The map then says ``"x": [offset, nbytes]`` and its
    ``d`` buffer is empty.  Returns ``(bytes, slot)``, or ``None`` (records,
    or ``put`` refused) when the chunk must travel whole
    (:func:`encode_chunk`).
    """
    head = RingHead.place(chunk, put)
    if head is None:
        return None
    return head.map(packer or chunk_packer()), head.slot


#: The first byte of a *short head*: a chunk whose array lies in a
#: shared-memory ring, for a reader that polls with ``shm=2``.  msgpack
#: never uses this byte, so no chunk's map starts with it, and the two
#: forms may follow each other in one body.
SHORT_HEAD = 0xc1
#: A short head's fixed part, little-endian: the marker, its flags, the
#: array's number of axes and the length of its dtype's text; start, end,
#: seq, rate, and the array's ``offset`` and ``nbytes`` in the ring.  Then
#: the dtype's text (ASCII), the shape (one int64 per axis), the kind (its
#: length in one byte, then UTF-8), and with :data:`_WITH_META` the meta
#: (its length as a uint32, then a msgpack map).
_SHORT = struct.Struct("<4Bqqqdqq")
_META_LENGTH = struct.Struct("<I")
#: Flag: the meta follows.  Without it the chunk has the meta of the chunk
#: before it in the same answer.
_WITH_META = 1
#: Most axes of an array that travels (as in a map's ``d``).
_MAX_AXES = 8
#: Largest meta a short head carries (packed): a chunk with a larger one
#: travels as its map, so that a reader never gathers a head of more than
#: this from many pieces.
MAX_SHORT_META = 1 << 20


class RingHead:
    """
    What a reader needs of a sampled chunk whose array lies in a
    shared-memory ring (see :mod:`pyrf_blocks.net.shm`), all but the array,
    in the two forms it travels in: the chunk's msgpack map with ``x``
    (:meth:`map`, for readers that poll with ``shm=1``) and the short head
    (:meth:`short`, ``shm=2``), whose meta may be left to the chunk before
    it.  :meth:`place` puts a chunk's array in the ring and makes its head.
    """

    __slots__ = ("slot", "_fields", "_short", "_map")

    def __init__(self, chunk, array, slot):
        #: ``(offset, nbytes)`` of the array in the ring.
        self.slot = slot
        dtype, shape = array.dtype, array.shape
        self._fields = (chunk.kind, chunk.start, chunk.end, chunk.seq, chunk.rate,
                        chunk.meta, dtype, shape)
        layout = _short_layout(chunk.kind, dtype, shape)
        self._short = None if layout is None else (
            _SHORT.pack(SHORT_HEAD, 0, len(shape), layout[0], chunk.start, chunk.end,
                        chunk.seq, chunk.rate, slot[0], slot[1]) + layout[1])
        self._map = None

    @classmethod
    def place(cls, chunk, put):
        """
        The head of sampled ``chunk`` once ``put(array)`` placed its wire
        array (returning its ``(offset, nbytes)``); ``None`` for records,
        or when ``put`` returned ``None``.
        """
        if chunk.times is not None:
            return None
        array = _wire_array(chunk.data)
        slot = put(array)
        return None if slot is None else cls(chunk, array, slot)

    def map(self, packer):
        """
        The chunk's msgpack map, with ``"x": [offset, nbytes]`` and an empty
        ``d`` buffer.
        """
        if self._map is None:
            kind, start, end, seq, rate, meta, dtype, shape = self._fields
            self._map = packer.pack({"k": kind, "s": start, "e": end, "q": seq, "r": rate,
                                     "m": meta, "x": list(self.slot),
                                     "d": [dtype.str, list(shape), b""]})
        return self._map

    def short(self, meta=None):
        """
        The short head, carrying ``meta`` (the chunk's meta as msgpack
        bytes, :class:`MetaPacker`) or, when ``None``, none: then the
        reader takes the meta of the chunk before it in the answer.
        ``None`` where the chunk has no short form (a kind over 255 bytes,
        more than 8 axes, a meta over :data:`MAX_SHORT_META`).
        """
        head = self._short
        if head is None or meta is None:
            return head
        if len(meta) > MAX_SHORT_META:
            return None
        return b"".join((head[:1], bytes((_WITH_META,)), head[2:],
                         _META_LENGTH.pack(len(meta)), meta))


@functools.lru_cache(maxsize=256)
def _short_layout(kind, dtype, shape):
    # (the dtype text's length, the bytes after a short head's fixed part
    # but for its meta) of chunks of ``kind`` holding ``dtype`` x ``shape``
    # arrays; None where they have no short form.  The same for a stream's
    # every chunk, so made once.
    kind, text = kind.encode("utf-8"), dtype.str.encode("ascii")
    if len(kind) > 255 or not 1 <= len(shape) <= _MAX_AXES:
        return None
    return len(text), b"".join((text, struct.pack(f"<{len(shape)}q", *shape),
                                bytes((len(kind),)), kind))


@functools.lru_cache(maxsize=256)
def _short_fields(width, axes, layout):
    # (kind, dtype, shape, nbytes) that a short head's bytes after its
    # fixed part say (``layout``: a ``width``-byte dtype text, ``axes``
    # int64s of shape, the kind's length and text), checked; the same for
    # a stream's every chunk, so read once.
    try:
        dtype_text = layout[:width].decode("ascii")
        kind = layout[width + 8 * axes + 1:].decode("utf-8")
    except UnicodeDecodeError:
        _fail("a short head's kind or dtype is not text")
    if not kind:
        _fail("kind must be a non-empty string")
    shape = struct.unpack_from(f"<{axes}q", layout, width)
    dtype, count = _array_layout(dtype_text, list(shape))
    return kind, dtype, shape, count * dtype.itemsize


class MetaPacker:
    """
    The meta of a stream's chunks as msgpack bytes, packed again only when
    it changes: :meth:`key` gives ``(key, bytes)``, the same ``key`` for
    equal metas in a row, so that a writer can tell when a chunk's meta is
    the one its reader already has.
    """

    def __init__(self, packer=None):
        self._packer = packer or chunk_packer()
        self._meta = self._bytes = None
        self._key = 0

    def key(self, meta):
        # Compared with a copy, not by identity: a block may change a dict
        # it emitted before and emit it again.
        if self._bytes is None or meta != self._meta:
            self._bytes = self._packer.pack(meta)
            self._meta = copy.deepcopy(meta)
            self._key += 1
        return self._key, self._bytes


def _raw(array):
    return memoryview(array).cast("B") if array.size else b""


def _little_endian(dtype):
    return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype


def _encode_records(chunk, packer, seq):
    """
    A records chunk as one msgpack map: its times a raw ``<i8`` buffer under
    ``t``; its values under ``d`` as ``[dtype, shape, buffer]`` (numbers),
    ``[[[name, dtype]...], shape, buffer]`` (numeric fields, packed) or
    ``["O", [n], [str or bin...]]`` (text and bytes).
    """
    data = chunk.data
    if data.dtype.kind == "O":
        rows = data.tolist()
        for row, value in enumerate(rows):
            if not isinstance(value, (str, bytes)):
                raise TypeError(f"cannot encode record row {row}: of type "
                                f"{type(value).__name__}, not str or bytes")
        values = [_OBJECT_ROWS, [len(rows)], rows]
    elif data.dtype.fields is not None:
        problem = _structured_problem(data.dtype)
        if problem:
            raise TypeError(f"cannot encode records: {problem}")
        fields = data.dtype.fields
        wire = np.dtype([(name, _little_endian(fields[name][0])) for name in data.dtype.names])
        array = np.ascontiguousarray(data.astype(wire, copy=False))
        values = [[[name, wire.fields[name][0].str] for name in wire.names],
                  list(array.shape), _raw(array)]
    else:
        array = _wire_array(data)
        values = [array.dtype.str, list(array.shape), _raw(array)]
    times = np.ascontiguousarray(chunk.times, dtype="<i8")
    return packer.pack({
        "k": chunk.kind, "s": chunk.start, "e": chunk.end,
        "q": chunk.seq if seq is None else seq,
        "r": chunk.rate, "m": chunk.meta, "t": _raw(times), "d": values,
    })


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
    if type(text) is not str or len(text) > 8:
        _fail("dtype must be a short string")
    dtype = _DTYPES.get(text)
    if dtype is not None:
        return dtype
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated aliases: refused below anyway
            dtype = np.dtype(text)
    except Exception:  # numpy's parser raises TypeError, ValueError, even SyntaxError
        _fail(f"unknown dtype {text!r}")
    if dtype.kind not in _WIRE_DTYPE_KINDS or dtype.fields is not None:
        _fail(f"dtype {text!r} is not a plain numeric type")
    if len(_DTYPES) < 256:
        _DTYPES[text] = dtype
    return dtype


def _array_layout(dtype_text, shape, nbytes=None):
    """
    The dtype and element count of an array sent as ``[dtype_text, shape,
    <nbytes of buffer>]``; :class:`ChunkDecodeError` unless they agree
    (``nbytes`` None: only the dtype and shape are checked).
    """
    dtype = _wire_dtype(dtype_text)
    if type(shape) is not list or len(shape) > 8:
        _fail("shape must be a list of at most 8 non-negative integers")
    count = 1
    for n in shape:
        if type(n) is not int or n < 0:
            _fail("shape must be a list of at most 8 non-negative integers")
        count *= n
    if nbytes is not None:
        _check_nbytes(nbytes, count * dtype.itemsize, shape, dtype_text)
    return dtype, count


def _check_nbytes(nbytes, needed, shape, dtype_text):
    if nbytes != needed:
        _fail(f"buffer holds {nbytes} bytes, shape {list(shape)} of {dtype_text} "
              f"needs {needed}")


def _decode_array(fields):
    if not isinstance(fields, list) or len(fields) != 3:
        _fail("'d' must be [dtype, shape, buffer]")
    dtype_text, shape, buffer = fields
    if not isinstance(buffer, bytes):
        _fail("array buffer must be msgpack bin")
    dtype, count = _array_layout(dtype_text, shape, len(buffer))
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def _check_fields(obj):
    if type(obj) is not dict or (obj.keys() != _KEYS and obj.keys() != _RECORD_KEYS
                                 and obj.keys() != _SHARED_KEYS):
        _fail(f"expected a map with keys {sorted(_KEYS)} (and 't' for records)")
    kind, start, end, seq, rate, meta = (
        obj["k"], obj["s"], obj["e"], obj["q"], obj["r"], obj["m"])
    if type(kind) is not str or not kind:
        _fail("kind must be a non-empty string")
    if type(start) is not int or type(end) is not int or end < start:
        _fail("start and end must be integers with start <= end")
    if type(seq) is not int or seq < 0:
        _fail("seq must be a non-negative integer")
    if "t" in obj:
        if kind != RECORDS:
            _fail(f"only records carry times ('t'), not {kind!r} chunks")
        if type(rate) not in (float, int) or rate != 0:
            _fail("records are irregular: their rate must be 0")
    elif kind == RECORDS:
        _fail("a records chunk needs its times ('t')")
    elif type(rate) not in (float, int) or not rate > 0:
        _fail("rate must be a positive number")
    _check_meta(meta)


def _check_meta(meta):
    if type(meta) is not dict or bytes in set(map(type, meta)):
        _fail("meta must be a map with string keys")


def _chunk(fields, data):
    return Chunk(fields["k"], data, fields["s"], fields["e"], fields["r"],
                 fields["q"], fields["m"])


def _chunk_from_map(obj, ring=None):
    _check_fields(obj)
    if "t" in obj:
        return _records_from_map(obj)
    if "x" in obj:
        return _chunk(obj, _shared_array(obj, ring))
    return _chunk(obj, _decode_array(obj["d"]))


def _shared_array(obj, ring):
    """
    The array of a chunk encoded by :func:`encode_chunk_shared`, copied out
    of ``ring`` (a :class:`~pyrf_blocks.net.shm.RingReader`).
    """
    if ring is None:
        _fail("its array is in shared memory ('x'), but this stream did not ask for it")
    slot, fields = obj["x"], obj["d"]
    if (type(slot) is not list or len(slot) != 2 or type(fields) is not list
            or len(fields) != 3 or fields[2] != b""):
        _fail("'x' must be [offset, nbytes] with 'd' as [dtype, shape, empty buffer]")
    dtype, count = _array_layout(fields[0], fields[1], slot[1] if type(slot[1]) is int else -1)
    try:
        return ring.read(slot[0], slot[1], dtype, count).reshape(fields[1])
    except ValueError as error:
        _fail(str(error))


def _wire_fields(layout):
    """
    The structured dtype sent as ``[[name, dtype]...]``: plain numeric
    fields, packed; :class:`ChunkDecodeError` for anything else.
    """
    if not 1 <= len(layout) <= _MAX_FIELDS:
        _fail(f"a structured dtype needs 1 to {_MAX_FIELDS} fields")
    fields = []
    for item in layout:
        if type(item) is not list or len(item) != 2:
            _fail("each field must be [name, dtype]")
        name, text = item
        if type(name) is not str or not 0 < len(name) <= _MAX_FIELD_NAME:
            _fail(f"field names must be strings of 1 to {_MAX_FIELD_NAME} characters")
        fields.append((name, _wire_dtype(text)))
    if len({name for name, _ in fields}) != len(fields):
        _fail("field names must be unique")
    try:
        dtype = np.dtype(fields)
    except (TypeError, ValueError) as error:
        _fail(f"bad structured dtype: {error}")
    if dtype.itemsize != sum(field.itemsize for _, field in fields):
        _fail("structured fields must be packed")
    return dtype


def _decode_record_values(fields):
    if not isinstance(fields, list) or len(fields) != 3:
        _fail("'d' must be [dtype, shape, buffer]")
    layout, shape, buffer = fields
    if layout == _OBJECT_ROWS:
        if type(buffer) is not list or shape != [len(buffer)]:
            _fail("text and bytes rows must be [\"O\", [n], [n rows]]")
        for row, value in enumerate(buffer):
            if type(value) is not str and type(value) is not bytes:
                _fail(f"record row {row} is neither str nor bin")
        values = np.empty(len(buffer), object)
        values[:] = buffer
        return values
    if type(layout) is list:
        dtype = _wire_fields(layout)
        if not isinstance(buffer, bytes):
            _fail("array buffer must be msgpack bin")
        if (type(shape) is not list or len(shape) != 1 or type(shape[0]) is not int
                or shape[0] < 0 or shape[0] * dtype.itemsize != len(buffer)):
            _fail(f"buffer holds {len(buffer)} bytes, not rows of {dtype.itemsize} bytes")
        return np.frombuffer(buffer, dtype, count=shape[0])
    values = _decode_array(fields)
    if not 1 <= values.ndim <= 2:
        _fail("numeric records must be 1-D or (rows, k)")
    return values


def _records_from_map(obj):
    buffer = obj["t"]
    if not isinstance(buffer, bytes) or len(buffer) % 8:
        _fail("'t' must be msgpack bin of int64 times")
    times = np.frombuffer(buffer, "<i8").astype(np.int64, copy=False)
    values = _decode_record_values(obj["d"])
    if len(values) != len(times):
        _fail(f"{len(times)} times but {len(values)} rows of values")
    start, end = obj["s"], obj["e"]
    if len(times):
        if np.any(times[1:] < times[:-1]):
            _fail("record times are not sorted")
        if not start <= int(times[0]) or not int(times[-1]) < end:
            _fail(f"record times outside the chunk's range [{start}, {end})")
    try:
        return Chunk(obj["k"], values, start, end, 0.0, obj["q"], obj["m"], times)
    except ValueError as error:
        _fail(str(error))


def _unpacker(max_size):
    return msgpack.Unpacker(raw=False, strict_map_key=True,
                            max_buffer_size=max_size)


_UNPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException)
#: Bytes of a chunk first looked at for its head (meta is rarely longer).
_HEAD_PROBE = 4096
_BIN_LENGTH_BYTES = {0xc4: 1, 0xc5: 2, 0xc6: 4}
#: What :func:`_parse_head` says of a chunk that must be read whole.
_WHOLE = object()
#: Largest piece fed at once to the unpacker of a chunk read whole.
_WHOLE_STEP = 1 << 20


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
            if key == "t" or key == "x":
                return _WHOLE  # records and shared-memory chunks are read whole
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
    it, so a large array is copied once however it was split.  A large
    chunk whose array is not its last item (records, or another encoder's
    key order) is unpacked as its pieces arrive by one unpacker, which
    resumes where it stopped, so it too costs time in proportion to its
    size however it was split.
    """

    def __init__(self, max_size=MAX_ENCODED_SIZE, ring=None):
        self._max_size = max_size
        #: Where chunks encoded by :func:`encode_chunk_shared` keep their
        #: arrays (a :class:`~pyrf_blocks.net.shm.RingReader`), if the
        #: stream asked for shared memory.
        self.ring = ring
        #: The start of a chunk too short yet to say what it is.
        self._carry = bytearray()
        self._head = None
        self._array = self._target = None
        self._filled = 0
        #: The unpacker of a chunk read whole, and the bytes fed to it.
        self._whole = None
        self._whole_fed = 0
        #: The meta of the last chunk decoded: a short head without its own
        #: has this one.
        self._meta = None

    def feed(self, data):
        view = memoryview(data).cast("B")
        if self._carry:
            view = memoryview(self._carry + view)
            self._carry = bytearray()
        chunks = []
        position, size = 0, len(view)
        while position < size:
            if self._whole is not None:
                position = self._feed_whole(view, position, chunks)
            elif self._head is None:
                position = self._read(view, position, chunks)
            else:
                position = self._fill(view, position, chunks)
        if chunks:
            self._meta = chunks[-1].meta
        return chunks

    @property
    def pending(self):
        """
        Number of bytes fed that do not yet form a whole chunk.
        """
        head = self._head.size if self._head is not None else 0
        return len(self._carry) + head + self._filled + self._whole_fed

    def close(self):
        if self.pending:
            _fail("truncated: the stream ended inside a chunk")

    def _read(self, view, position, chunks):
        if view[position] == SHORT_HEAD:
            return self._read_short(view, position, chunks)
        rest = view[position:]
        unpacker = _unpacker(max(self._max_size, len(rest)))
        fed = used = 0
        short = False
        # Feed the unpacker a probe at a time, and stop as soon as it holds
        # a probe's worth of one unfinished chunk: that one is large, and
        # is read from its head instead of being copied here too.  Stop
        # too where a short head follows.
        while not short and fed < len(rest) and fed - used < _HEAD_PROBE:
            unpacker.feed(rest[fed:fed + _HEAD_PROBE])
            fed = min(fed + _HEAD_PROBE, len(rest))
            try:
                while used >= fed or rest[used] != SHORT_HEAD:
                    obj = unpacker.unpack()
                    chunks.append(_chunk_from_map(obj, self.ring))
                    used = unpacker.tell()
                short = True
            except msgpack.OutOfData:
                pass
            except ChunkDecodeError:
                raise
            except _UNPACK_ERRORS as error:
                _unpack_error(error)
        if short:
            return position + used
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
            if head is _WHOLE or len(rest) > _HEAD_PROBE:
                self._whole = _unpacker(self._max_size)
                return self._feed_whole(view, position + used, chunks)
        if len(rest) > self._max_size:
            _fail("a chunk exceeds the size limit")
        self._carry = bytearray(rest)
        return len(view)

    def _read_short(self, view, position, chunks):
        """
        Decode the short heads from ``position`` on (see :class:`RingHead`),
        up to the first chunk of another form; carry an unfinished one.
        """
        ring, size = self.ring, len(view)
        if ring is None:
            _fail("a short head (its array in shared memory), but this stream did not ask "
                  "for shared memory")
        meta = chunks[-1].meta if chunks else self._meta
        while position < size and view[position] == SHORT_HEAD:
            fixed = position + _SHORT.size
            if fixed > size:
                break
            (_, flags, axes, width, start, end, seq, rate, offset,
             nbytes) = _SHORT.unpack_from(view, position)
            if flags & ~_WITH_META or not 1 <= axes <= _MAX_AXES or not 1 <= width <= 8:
                _fail(f"short head with flags {flags}, {axes} axes, a {width}-byte dtype")
            kind_at = fixed + width + 8 * axes
            if kind_at >= size:
                break
            kind_end = kind_at + 1 + view[kind_at]
            after = kind_end + (_META_LENGTH.size if flags else 0)
            if after > size:
                break
            kind, dtype, shape, expected = _short_fields(width, axes,
                                                         bytes(view[fixed:kind_end]))
            if end < start or seq < 0:
                _fail("start and end must be integers with start <= end, seq non-negative")
            _check_nbytes(nbytes, expected, shape, dtype.str)
            if flags:
                length = _META_LENGTH.unpack_from(view, kind_end)[0]
                if length > MAX_SHORT_META:
                    _fail(f"a short head's meta of {length} bytes (at most {MAX_SHORT_META})")
                if after + length > size:
                    break
                try:
                    meta = msgpack.unpackb(view[after:after + length], raw=False,
                                           strict_map_key=True)
                except _UNPACK_ERRORS as error:
                    _unpack_error(error)
                _check_meta(meta)
                after += length
            elif meta is None:
                _fail("a short head takes the meta of the chunk before it, but none came "
                      "before it")
            try:
                chunks.append(Chunk(kind, ring.read(offset, nbytes, dtype, shape=shape),
                                    start, end, rate, seq, meta))
            except ValueError as error:
                _fail(str(error))
            position = after
        if position < size and view[position] == SHORT_HEAD:
            if size - position > self._max_size:
                _fail("a chunk exceeds the size limit")
            self._carry = bytearray(view[position:])
            return size
        return position

    def _feed_whole(self, view, position, chunks):
        """
        Feed the chunk being read whole, a growing step at a time (so a
        small chunk followed by much else is not copied with it), until it
        is complete or ``view`` is used up.
        """
        unpacker = self._whole
        step = max(2 * _HEAD_PROBE, self._whole_fed)
        while position < len(view):
            piece = view[position:position + step]
            try:
                unpacker.feed(piece)
            except msgpack.BufferFull:
                _fail("a chunk exceeds the size limit")
            before, self._whole_fed = self._whole_fed, self._whole_fed + len(piece)
            try:
                obj = unpacker.unpack()
            except msgpack.OutOfData:
                position += len(piece)
                step = min(2 * step, _WHOLE_STEP)
                continue
            except _UNPACK_ERRORS as error:
                _unpack_error(error)
            self._whole, self._whole_fed = None, 0
            try:
                chunks.append(_chunk_from_map(obj, self.ring))
            except ChunkDecodeError:
                raise
            except _UNPACK_ERRORS as error:
                _unpack_error(error)
            return position + unpacker.tell() - before
        return position

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
