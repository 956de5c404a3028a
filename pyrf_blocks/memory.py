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
"""

import ctypes

__all__ = ["keep_freed_memory"]

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
