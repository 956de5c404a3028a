"""
Shared memory for the samples of a stream between two processes of one
host.

A stream whose reader is on the same host may carry its chunks' arrays
through shared memory instead of the HTTP body: the producing side copies
each array, once, into a :class:`Ring` (an anonymous ``memfd`` of its own,
mode 0600) and the answer to a poll carries, in its place, where it lies
(``"x": [offset, nbytes]`` in the chunk's map, see
:mod:`pyrf_blocks.chunk`).  The reader maps the ring read-only
(:class:`RingReader`) and copies each array out as it decodes its chunk,
before its next poll acknowledges it; the producer reuses a chunk's bytes
only once they are acknowledged.  The long-polled stream stays the control
channel: the same cursor, ``seq``, headers, policies and backpressure, and
a reader that did not ask for shared memory (another host, another user,
an older client) gets the arrays in the body as before.

Negotiation: the request that opens a stream says ``"shm": true`` (the
reader is on this host, it thinks, and can map memory); a worker that can
(``memfd_create``, a loopback client, a lossless ``block`` stream) answers
with ``"shm": {"pid", "fd", "size", "nonce"}``.  The reader opens
``/proc/{pid}/fd/{fd}`` -- which only a process of the same user (or
root) may do -- and checks that the ring starts with the ``nonce`` of the
answer, proving it mapped that stream's ring and not something else of
the same numbers (another PID namespace, a reused descriptor).  Then, and
only then, it polls with ``shm=1``; a poll without it gets the arrays in
the body.  Anything that fails falls back to HTTP, logged once.

Nothing is named in ``/dev/shm`` or on any file system: the memory goes
when the last process holding it closes it or dies, SIGKILL included.
"""

import mmap
import os
import secrets
import sys
from collections import deque
from ipaddress import ip_address
from urllib.parse import urlsplit

import numpy as np

__all__ = ["Ring", "RingReader", "available", "is_loopback_url", "RING_SIZE",
           "ENVIRONMENT_SWITCH"]

#: Bytes of samples one stream's ring holds (it is filled lazily: pages
#: are only taken as chunks first reach them).
RING_SIZE = 32 << 20
#: Bytes before the first array: the magic and the ring's nonce.
_HEADER = 64
_MAGIC = b"pyrf-blocks ring v1\0"
_NONCE_BYTES = 16
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


class Ring:
    """
    The producing side: an anonymous shared memory of ``size`` bytes of
    arrays, allocated first in, first out (chunks leave a stream's backlog
    in ``seq`` order, acknowledged or closed).

    :meth:`put` copies an array in and returns its slot, or ``None`` when
    it does not fit now (the caller then sends it in the body).
    :meth:`free` gives back the oldest slot.
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
        self._view = memoryview(self._map)
        #: Slots in use, oldest first: ``(offset, nbytes)``.
        self._slots = deque()
        #: Where the next slot would start.
        self._tail = _HEADER
        self.used = 0
        self.closed = False

    def __repr__(self):
        return f"<Ring fd {self.fd}, {self.used} of {self.size} bytes used>"

    def describe(self):
        """
        What a reader needs to map this ring, as the stream's answer says it.
        """
        return {"pid": os.getpid(), "fd": self.fd, "size": self.size,
                "nonce": self.nonce.hex()}

    def _place(self, nbytes):
        """
        Where ``nbytes`` fit after the newest slot without touching the
        oldest, or ``None``.
        """
        end = _HEADER + self.size
        if not self._slots:
            return _HEADER if _HEADER + nbytes <= end else None
        head = self._slots[0][0]
        tail = self._tail
        if tail > head:  # in use: [head, tail)
            if tail + nbytes <= end:
                return tail
            return _HEADER if _HEADER + nbytes <= head else None
        return tail if tail + nbytes <= head else None  # in use: [head, end), [start, tail)

    def put(self, array):
        """
        Copy ``array`` (C-contiguous) into the ring: its ``(offset,
        nbytes)``, or ``None`` if there is no room for it now.
        """
        if self.closed:
            return None
        nbytes = array.nbytes
        offset = self._place(_aligned(max(nbytes, 1)))
        if offset is None:
            return None
        self._view[offset:offset + nbytes] = memoryview(array).cast("B")
        self._slots.append((offset, nbytes))
        self._tail = offset + _aligned(max(nbytes, 1))
        self.used += _aligned(max(nbytes, 1))
        return offset, nbytes

    def free(self, slot):
        """
        Give back ``slot``, which must be the oldest one in use.
        """
        if not self._slots:
            return
        oldest = self._slots.popleft()
        if oldest != slot:
            raise AssertionError(f"ring slots freed out of order: {slot} before {oldest}")
        self.used -= _aligned(max(slot[1], 1))
        if not self._slots:
            self._tail = _HEADER

    def close(self):
        """
        Let the memory go (it stays while a reader still maps it).
        """
        if self.closed:
            return
        self.closed = True
        self._slots.clear()
        self._view.release()
        self._map.close()
        os.close(self.fd)


class RingReader:
    """
    The reading side: a stream's ring mapped read-only.

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
        handle = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if os.fstat(handle).st_size != _HEADER + size:
                raise ValueError(f"/proc/{pid}/fd/{fd} is not the ring announced "
                                 "(its size differs)")
            self._map = mmap.mmap(handle, _HEADER + size, prot=mmap.PROT_READ)
        finally:
            os.close(handle)
        head = self._map[:len(_MAGIC) + _NONCE_BYTES]
        if head != _MAGIC + nonce:
            self._map.close()
            raise ValueError(f"/proc/{pid}/fd/{fd} is not the ring announced "
                             "(its nonce differs)")
        self.size = size
        self._view = memoryview(self._map)
        self.closed = False

    def read(self, offset, nbytes, dtype, count):
        """
        A new array of ``count`` items of ``dtype`` copied from the slot
        ``(offset, nbytes)``; ``ValueError`` if the slot lies outside the
        ring or does not hold such an array.
        """
        if (type(offset) is not int or type(nbytes) is not int or offset < _HEADER
                or nbytes < 0 or offset + nbytes > _HEADER + self.size):
            raise ValueError(f"slot [{offset!r}, {nbytes!r}] lies outside the ring")
        if count * dtype.itemsize != nbytes:
            raise ValueError(f"slot of {nbytes} bytes does not hold {count} x {dtype}")
        array = np.empty(count, dtype)
        if nbytes:
            memoryview(array).cast("B")[:] = self._view[offset:offset + nbytes]
        return array

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._view.release()
        self._map.close()
