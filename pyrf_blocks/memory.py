"""
Keeping freed memory for the next chunk.

A stream allocates and frees buffers of the same few sizes at a high
rate: an array per chunk, its encoding, the bytes read from a socket.  By
default glibc gives every block above 128 KiB back to the kernel when it
is freed (``mmap``/``munmap``) and trims the top of its heap as soon as
128 KiB there are free, so the next buffer of the same size is new memory
again and every page of it faults on first touch.  On the machines we
measure, decoding a 1 MiB chunk took 1.3 ms that way and 0.2 ms when the
freed memory was kept for reuse.

:func:`keep_freed_memory` tells the C allocator to keep it.  It tunes
the whole process, so only entry points call it, never a constructor or a
block: :meth:`Graph.run <pyrf_blocks.graph.Graph.run>` and the
``pyrf-blocks worker`` command (every child of ``process()`` is one).  A
program that runs the reactor itself and moves streams calls it once at
start-up (``benchmarks/transport.py`` does).  The cost is that a process's
resident size stays at its peak instead of shrinking when a burst is over.

A long-running worker pays that cost: its clients come and go, and a
burst of them left it at its peak for good (83 MB to 693 MB, measured by
an outside test of 300 short clients).  :func:`release_freed_memory`
(``malloc_trim``) hands what is free back to the kernel at a moment when
little is moving; the worker calls it after it has closed streams or
removed blocks (see :meth:`Worker.reclaim
<pyrf_blocks.net.worker.Worker.reclaim>`), so it keeps the fast reuse
while streams flow and returns to near its baseline after the load
(``benchmarks/worker_memory.py`` measures both ways).
"""

import ctypes
import gc

__all__ = ["keep_freed_memory", "release_freed_memory"]

#: ``mallopt`` parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks smaller than this come from the heap and are reused once freed
#: (glibc's largest allowed value on 64-bit systems).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap is given back beyond this much.
TRIM_THRESHOLD = 256 << 20

_kept = None


def keep_freed_memory():
    """
    Ask the C allocator to reuse freed buffers rather than return them to
    the kernel (glibc only; elsewhere nothing happens).  True when it took
    effect.  Idempotent.
    """
    global _kept
    if _kept is None:
        _kept = _set_thresholds()
    return _kept


def _c_library():
    # The symbols of this process, the C library's among them: unlike
    # ctypes.util.find_library("c"), this forks no /sbin/ldconfig.
    return ctypes.CDLL(None)


def _set_thresholds():
    try:
        mallopt = _c_library().mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_freed_memory():
    """
    Give the memory the C allocator holds free back to the kernel now
    (glibc's ``malloc_trim(0)``; elsewhere nothing happens).  True when
    some was released.

    Python's garbage is collected first: objects in reference cycles (a
    closed stream's Deferreds and failures, with the chunks their frames
    hold) are otherwise freed only at a later collection, after the trim,
    and their memory stays with the allocator until the next one.  (A
    worker after 40 short clients kept 21 MB of their 48–52 MB this way,
    14 MB with the collection first: ``tests/chaos/test_worker_reclaim.py``.)
    The collection is a full one: about 80 ms in a process that has loaded
    numba's kernels (130 000 objects, 2-core AMD EPYC), so call this where
    a pause of that order is acceptable, as a worker's sweep after clients
    left.
    """
    gc.collect()
    try:
        trim = _c_library().malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    return bool(trim(0))
