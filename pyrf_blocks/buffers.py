"""
Buffer reuse: a block's output arrays come from a pool of its own and go
back to it once nothing holds them any more.

A chunk is immutable once emitted, and any consumer may keep it (a
collector keeps every chunk, a synchroniser keeps rows until the other
inputs catch up, an edge queues chunks while its consumer is paused): an
array can only be written again when no chunk, view or queue refers to it.
Python already counts those references, so the pool asks it: an array is
free when the pool's own references are the only ones left (a view of it,
``chunk.data[3:]``, refers to it too, as does a ``memoryview``).  Nothing
has to be returned by hand, and a consumer that keeps a chunk simply keeps
its buffer out of the pool.

A chunk makes its array read-only; the pool makes it writeable again
when it hands it out, which is sound because nothing else can see it
then.  Only arrays the pool made are reused, so it bounds itself: it remembers at
most ``limit`` arrays per shape, and forgets the oldest (leaving it to its
holders) beyond that.
"""

import sys

import numpy as np

__all__ = ["BufferPool"]


def _scan(arrays, free):
    """
    ``(index of the first free array or None, fewest references seen)``:
    the one loop that tests arrays, whose own references (the list's, the
    loop's, the call's argument) are the baseline ``free``.
    """
    fewest = None
    for index, array in enumerate(arrays):
        count = sys.getrefcount(array)
        if count <= free:
            return index, count
        if fewest is None or count < fewest:
            fewest = count
    return None, fewest


#: References the scan sees on an array that nothing else holds, measured
#: with the scan itself on an array only a list holds (Python versions
#: differ in what a loop keeps).
_FREE = _scan([np.empty(1)], -1)[1]


def _only_references(arrays):
    # BufferPool.take's test of a pool's only array, written the same way:
    # a local name for the list's one item.
    array = arrays[0]
    return sys.getrefcount(array)


#: References that test sees on an array that nothing else holds.
_FREE_ONLY = _only_references([np.empty(1)])


class BufferPool:
    """
    Arrays for a block's outputs, reused once nothing holds them.

    :param limit: most arrays remembered per shape and dtype.
    :param allocate: ``allocate(shape, dtype)`` makes a new array
        (``numpy.empty`` by default; shared memory for process pools).
    """

    def __init__(self, limit=16, allocate=np.empty):
        self.limit = limit
        self._allocate = allocate
        self._arrays = {}
        # (shape, dtype, list) of the last take: a block takes the same
        # ones chunk after chunk, and comparing a shape costs less than
        # hashing the key.
        self._last = (None, None, None)
        #: Arrays handed out again, and arrays made.
        self.reused = self.made = 0

    def take(self, shape, dtype=np.float32):
        """
        An array of ``shape`` and ``dtype`` that nothing else holds: one
        made before if any is free, else a new one.  Its contents are
        undefined.
        """
        last_shape, last_dtype, arrays = self._last
        if dtype is not last_dtype or shape != last_shape:
            key = (shape, dtype)
            arrays = self._arrays.get(key)
            if arrays is None:
                arrays = self._arrays[key] = []
            self._last = (shape, dtype, arrays)
        if len(arrays) == 1:
            # The common case, a chunk let go before the next is made: the
            # pool's only array, tested without the scan's loop.
            array = arrays[0]
            if sys.getrefcount(array) <= _FREE_ONLY:
                self.reused += 1
                array.setflags(True)  # emitting it made it read-only (write=True)
                return array
        index = _scan(arrays, _FREE)[0]
        if index is not None:
            self.reused += 1
            array = arrays.pop(index)
            arrays.append(array)  # most recently lent last: the oldest are tested first
            array.setflags(True)  # emitting it made it read-only (write=True)
            return array
        array = self._allocate(shape, dtype)
        self.made += 1
        arrays.append(array)
        if len(arrays) > self.limit:
            del arrays[0]
        return array

    def clear(self):
        """
        Forget every array (their holders keep theirs).
        """
        self._arrays.clear()
        self._last = (None, None, None)
