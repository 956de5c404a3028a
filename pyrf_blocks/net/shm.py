"""
Shared memory for the samples of a stream between two processes of one
host.

A stream whose reader is on the same host may carry its chunks' arrays
through shared memory instead of the HTTP body: each array lies in a
:class:`Ring` (an anonymous ``memfd`` of the producing process, mode 0600)
and the answer to a poll carries, in its place, where it lies (``"x":
[offset, nbytes]`` in the chunk's map, see :mod:`pyrf_blocks.chunk`).  The
long-polled stream stays the control channel: the same cursor, ``seq``,
headers, policies and backpressure, and a reader that did not ask for
shared memory (another host, another user, an older client) gets the
arrays in the body as before.

Neither side copies the samples:

- the reader's chunk holds a read-only view into the ring
  (:meth:`RingReader.read`); the slot is released when the last view of it
  is gone (the view's owner is collected), and the reader then writes the
  newest ``seq`` up to which every chunk it delivered is released into
  the ring's header page (the only part it maps writable).  The producer
  reuses a slot only once its ``seq`` is released there: nothing is
  overwritten while a consumer holds it.
- the producer's block may write its output straight into the ring
  (:meth:`Ring.lend`, offered to the block by its stream through
  :meth:`~pyrf_blocks.block.Block.lend_buffers`); emitting it then places
  it without a copy (:meth:`Ring.put`).  Slots are also held while the
  producing process still refers to them.

A ring that is full (a consumer keeps chunks, a collector say) refuses new
arrays, which then travel in the HTTP body; the stream holds its block
for a while first (see :mod:`.stream`): slower, never lost, never
overwritten, and never a stall of a graph whose consumer keeps everything.
Measured on the seed's split (``benchmarks/transport.py``): copying each
484 KiB spectrum in and out of the ring cost about 60 µs each way.

Negotiation: the request that opens a stream says ``"shm": true`` (the
reader is on this host, it thinks, and can map memory); a worker that can
(``memfd_create``, a loopback client, a lossless ``block`` stream) answers
with ``"shm": {"pid", "fd", "size", "nonce"}``.  The reader opens
``/proc/{pid}/fd/{fd}`` -- which only a process of the same user (or
root) may do -- and checks that the ring starts with the ``nonce`` of the
answer, proving it mapped that stream's ring and not something else of
the same numbers (another PID namespace, a reused descriptor, a ring of
another layout).  Then, and only then, it polls with ``shm=2`` (each
chunk in the ring as a short head, :class:`~pyrf_blocks.chunk.RingHead`:
a few dozen bytes, the meta only where it changes) or ``shm=1`` (as its
msgpack map with ``x``); a poll without it gets the arrays in the body,
and acknowledging chunks that way releases their slots.  Anything that
fails falls back to HTTP, logged once.

Nothing is named in ``/dev/shm`` or on any file system: the memory goes
when the last process holding it closes it or dies, SIGKILL included.
"""

import math
import mmap
import os
import secrets
import sys
import threading
from collections import deque
from ipaddress import ip_address
from urllib.parse import urlsplit

import numpy as np

__all__ = ["Ring", "RingReader", "available", "is_loopback_url", "RING_SIZE",
           "ENVIRONMENT_SWITCH"]

#: Bytes of samples one stream's ring holds (it is filled lazily: pages
#: are only taken as chunks first reach them).
RING_SIZE = 40 << 20
#: Bytes before the first array: one page, the magic, the ring's nonce and
#: the reader's released ``seq`` (the page the reader maps writable).
_HEADER = mmap.PAGESIZE
_MAGIC = b"pyrf-blocks ring v2\0"
_NONCE_BYTES = 16
#: Where the reader writes the newest ``seq`` released (little-endian int64).
_RELEASED = 64
#: Arrays start on this boundary (a cache line, and SIMD-friendly).
_ALIGN = 64


#: Set to ``0`` in the environment, shared memory is neither offered nor
#: asked for (every array travels in the HTTP body): for comparison, or
#: where mapping another process's memory is not wanted.
ENVIRONMENT_SWITCH = "PYRF_BLOCKS_SHM"


def available():
    """
    Whether this process can make and map rings (Linux's
    ``memfd_create``), and :data:`ENVIRONMENT_SWITCH` does not say ``0``.
    """
    return (hasattr(os, "memfd_create") and sys.platform.startswith("linux")
            and os.environ.get(ENVIRONMENT_SWITCH, "1") != "0")


def is_loopback_url(url):
    """
    Whether ``url`` names a host that can only be this one.
    """
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _aligned(n):
    return (n + _ALIGN - 1) & ~(_ALIGN - 1)


class _View:
    """
    The owner of the arrays of one slot (numpy's ``base`` of each of them
    and of every view made from them): when it is collected, nothing in
    this process refers to the slot any more, and ``release(key)`` says so
    (from whichever thread dropped the last view).
    """

    __slots__ = ("__array_interface__", "_memory", "_release", "_key")

    def __init__(self, memory, address, shape, dtype, readonly, release, key):
        self.__array_interface__ = {"shape": shape, "typestr": dtype.str,
                                    "data": (address, readonly), "version": 3}
        #: The mapping, kept while any view of it exists.
        self._memory = memory
        self._release = release
        self._key = key

    def __del__(self):
        self._release(self._key)


class _Slot:
    __slots__ = ("offset", "size", "nbytes", "seq", "local")

    def __init__(self, offset, size, nbytes, seq, local):
        self.offset, self.size, self.nbytes, self.seq = offset, size, nbytes, seq
        #: An array of this process still refers to it (a lent buffer).
        self.local = local


def _owner(array):
    """
    The object that owns ``array``'s memory (numpy keeps some views'
    arrays as their ``base``).
    """
    owner = array.base
    while type(owner) is np.ndarray:
        owner = owner.base
    return owner


def _release_local(slot):
    slot.local = False


class Ring:
    """
    The producing side: an anonymous shared memory of ``size`` bytes of
    arrays, allocated first in, first out.

    A slot is reused once nothing in this process refers to it and the
    reader has released its ``seq`` (or acknowledged it without mapping
    the ring, :meth:`acknowledged`).

    :meth:`put` places an array (copied in, unless it is a buffer the ring
    lent) and returns its slot, or ``None`` when it does not fit now (the
    caller then sends it in the body); :meth:`lend` hands out an array in
    the ring for a block to write its output into.
    """

    def __init__(self, size=RING_SIZE, name="pyrf-blocks-stream"):
        self.size = _aligned(size)
        self.nonce = secrets.token_bytes(_NONCE_BYTES)
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            os.fchmod(self.fd, 0o600)
            os.ftruncate(self.fd, _HEADER + self.size)
            self._map = mmap.mmap(self.fd, _HEADER + self.size)
        except BaseException:
            os.close(self.fd)
            raise
        self._map[:len(_MAGIC)] = _MAGIC
        self._map[len(_MAGIC):len(_MAGIC) + _NONCE_BYTES] = self.nonce
        self._bytes = np.frombuffer(self._map, np.uint8)
        self._address = self._bytes.ctypes.data
        #: What the reader released: every chunk up to this seq.
        self._released = self._bytes[_RELEASED:_RELEASED + 8].view(np.int64)
        self._released[0] = -1
        #: Acknowledged by a reader that does not map the ring.
        self._acknowledged = -1
        #: Slots in use, oldest first.
        self._slots = deque()
        #: Where the next slot would start.
        self._tail = _HEADER
        self.used = 0
        #: Arrays placed without a copy (lent, then emitted).
        self.adopted = 0
        self.closed = False

    def __repr__(self):
        return f"<Ring fd {self.fd}, {self.used} of {self.size} bytes used>"

    def describe(self):
        """
        What a reader needs to map this ring, as the stream's answer says it.
        """
        return {"pid": os.getpid(), "fd": self.fd, "size": self.size,
                "nonce": self.nonce.hex()}

    @property
    def released(self):
        """
        The newest ``seq`` up to which the reader released every chunk it
        delivered (as its next poll would acknowledge them), or
        acknowledged them without mapping the ring.
        """
        return max(int(self._released[0]), self._acknowledged)

    def acknowledged(self, seq):
        """
        The reader acknowledged ``seq`` without mapping the ring: the slots
        up to it are free as far as it is concerned.
        """
        if seq > self._acknowledged:
            self._acknowledged = seq

    def reclaim(self):
        """
        Free the oldest slots that nothing holds any more.
        """
        slots = self._slots
        released = None
        while slots:
            slot = slots[0]
            if slot.local:
                break
            if slot.seq is not None:
                if released is None:
                    released = self.released
                if slot.seq > released:
                    break
            slots.popleft()
            self.used -= slot.size
        if not slots:
            self._tail = _HEADER

    def _place(self, size):
        """
        Where ``size`` bytes fit after the newest slot without touching the
        oldest, or ``None``.
        """
        end = _HEADER + self.size
        if self._slots:
            self.reclaim()
        if not self._slots:
            return _HEADER if _HEADER + size <= end else None
        head = self._slots[0].offset
        tail = self._tail
        if tail > head:  # in use: [head, tail)
            if tail + size <= end:
                return tail
            return _HEADER if _HEADER + size <= head else None
        return tail if tail + size <= head else None  # in use: [head, end), [start, tail)

    def _take(self, nbytes, seq, local):
        size = _aligned(max(nbytes, 1))
        offset = self._place(size)
        if offset is None:
            return None
        slot = _Slot(offset, size, nbytes, seq, local)
        self._slots.append(slot)
        self._tail = offset + size
        self.used += size
        return slot

    def lend(self, shape, dtype):
        """
        A writable array of ``shape`` and ``dtype`` in the ring, for a
        block to write a chunk's data into (then :meth:`put` places it
        without a copy), or ``None`` when the ring has no room now.  Its
        slot is held while any view of it exists here, and once emitted
        until the reader releases it.
        """
        dtype = np.dtype(dtype)
        if self.closed or dtype.kind not in "biufc" or dtype.byteorder == ">":
            return None
        shape = tuple(shape)
        slot = self._take(math.prod(shape) * dtype.itemsize, None, True)
        if slot is None:
            return None
        return np.asarray(_View(self._bytes, self._address + slot.offset, shape, dtype,
                                False, _release_local, slot))

    def put(self, array, seq):
        """
        Place ``array`` (C-contiguous), chunk ``seq``'s data: its
        ``(offset, nbytes)``, or ``None`` if there is no room for it now.
        An array :meth:`lend` gave is placed where it is; any other is
        copied in.
        """
        if self.closed:
            return None
        nbytes = array.nbytes
        owner = _owner(array)
        if type(owner) is _View and owner._memory is self._bytes:
            slot = owner._key
            # A C-contiguous view of the lent array as large as it is the
            # whole of it (where it starts need not be asked of numpy,
            # which costs more than the rest of this).
            if slot.seq is None and nbytes == slot.nbytes:
                slot.seq = seq
                self.adopted += 1
                return slot.offset, nbytes
        slot = self._take(nbytes, seq, False)
        if slot is None:
            return None
        self._bytes[slot.offset:slot.offset + nbytes] = array.reshape(-1).view(np.uint8)
        return slot.offset, nbytes

    def read(self, offset, nbytes, dtype, count):
        """
        A copy of the array of ``count`` items of ``dtype`` in the slot
        ``(offset, nbytes)`` (for a reader that gets it in the body).
        """
        return self._bytes[offset:offset + nbytes].view(dtype).copy()

    def close(self):
        """
        Let the memory go (it stays while a reader maps it, or an array
        lent here is still referred to).
        """
        if self.closed:
            return
        self.closed = True
        self._slots.clear()
        os.close(self.fd)
        self._released = self._bytes = None
        try:
            self._map.close()
        except BufferError:
            pass  # lent arrays still see it: it goes with the last of them
        self._map = None


class RingReader:
    """
    The reading side: a stream's ring mapped read-only, and its header
    page writable (where this side says what it released).

    :param description: the ``shm`` field of the worker's answer.
    :raises OSError: if the ring cannot be mapped (another host or user,
        no ``/proc``...).
    :raises ValueError: if what was mapped is not the ring announced.
    """

    def __init__(self, description):
        try:
            pid, fd = int(description["pid"]), int(description["fd"])
            size = int(description["size"])
            nonce = bytes.fromhex(description["nonce"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"malformed shared-memory description {description!r}") from None
        if not (0 < size <= 1 << 40 and len(nonce) == _NONCE_BYTES):
            raise ValueError(f"malformed shared-memory description {description!r}")
        handle = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
        try:
            if os.fstat(handle).st_size != _HEADER + size:
                raise ValueError(f"/proc/{pid}/fd/{fd} is not the ring announced "
                                 "(its size differs)")
            header = mmap.mmap(handle, _HEADER)
            try:
                if header[:len(_MAGIC) + _NONCE_BYTES] != _MAGIC + nonce:
                    raise ValueError(f"/proc/{pid}/fd/{fd} is not the ring announced "
                                     "(its nonce differs)")
                data = mmap.mmap(handle, size, prot=mmap.PROT_READ, offset=_HEADER)
            except BaseException:
                header.close()
                raise
        finally:
            os.close(handle)
        self.size = size
        self._header = header
        self._released = np.frombuffer(header, np.int64, 1, _RELEASED)
        self._map = data
        self._bytes = np.frombuffer(data, np.uint8)
        self._address = self._bytes.ctypes.data - _HEADER
        #: Chunks delivered and not yet released, oldest first:
        #: ``[seq, released]``.
        self._held = deque()
        self._lock = threading.Lock()
        self.closed = False

    def read(self, offset, nbytes, dtype, count=None, shape=None):
        """
        A read-only array of ``count`` items of ``dtype`` (or of that
        ``shape``): a view of the slot ``(offset, nbytes)``, not a copy;
        ``ValueError`` if the slot lies outside the ring or does not hold
        such an array.  Once its chunk is :meth:`delivered`, the slot is
        released when the last view of it is gone.
        """
        if (type(offset) is not int or type(nbytes) is not int or offset < _HEADER
                or nbytes < 0 or offset + nbytes > _HEADER + self.size):
            raise ValueError(f"slot [{offset!r}, {nbytes!r}] lies outside the ring")
        shape = (count,) if shape is None else tuple(shape)
        if math.prod(shape) * dtype.itemsize != nbytes:
            raise ValueError(f"slot of {nbytes} bytes does not hold {shape} x {dtype}")
        if self.closed:
            raise ValueError("the stream's ring is closed")
        return np.asarray(_View(self._bytes, self._address + offset, shape, dtype,
                                True, self._release, [None, False]))

    def delivered(self, array, seq):
        """
        ``array`` (a chunk's data, from :meth:`read`) is delivered as chunk
        ``seq``: from now on, when no view of it is left, its slot is
        released.  (A chunk decoded but never delivered, a repeat of one
        delivered already, releases nothing.)  Chunks are delivered in
        ``seq`` order.
        """
        owner = _owner(array)
        if type(owner) is not _View or owner._memory is not self._bytes:
            return
        entry = owner._key
        entry[0] = seq
        with self._lock:
            self._held.append(entry)

    def _release(self, entry):
        if entry[0] is None:
            return
        with self._lock:
            entry[1] = True
            held = self._held
            released = None
            while held and held[0][1]:
                released = held.popleft()[0]
            if released is not None and not self.closed:
                self._released[0] = released

    def close(self):
        """
        Unmap the ring (views still held keep their pages until they go).
        """
        if self.closed:
            return
        with self._lock:
            self.closed = True
            self._released = None
        self._header.close()
        self._bytes = None
        try:
            self._map.close()
        except BufferError:
            pass  # views still held: the pages go with the last of them
