"""
Synchronisation of a block's inputs (strax's rule).

Inputs may arrive cut in any way.  Before a block with several inputs
computes, the :class:`Synchronizer` re-cuts its buffered chunks to common
time ranges: every group it returns holds one piece per input, all covering
the same span of device time.  Inputs of the same rate line up sample by
sample; inputs of different rates line up by containment (each piece holds
the rows that start inside the group's range).  Pieces are views into the
original arrays, never copies.
"""

from collections import deque

__all__ = ["Synchronizer", "slice_chunk"]


def slice_chunk(chunk, begin, stop):
    """
    The rows ``begin:stop`` of ``chunk`` as a chunk of their own (a view).
    """
    return chunk.replace(
        data=chunk.data[begin:stop],
        start=chunk.time_of(begin),
        end=chunk.end if stop >= len(chunk.data) else chunk.time_of(stop),
    )


class Synchronizer:
    """
    Buffers the chunks of ``count`` inputs and hands out aligned groups.
    """

    def __init__(self, count):
        self._buffers = [deque() for _ in range(count)]
        #: Rows dropped because they lay before the other inputs' start.
        self.unaligned_rows = 0

    def depth(self, index):
        """
        Number of chunks buffered for input ``index``.
        """
        return len(self._buffers[index])

    def add(self, index, chunk):
        """
        Buffer ``chunk`` for input ``index``; return the list of groups
        (tuples of chunks, one per input) that are now complete.
        """
        if len(chunk.data):
            self._buffers[index].append(chunk)
        groups = []
        buffers = self._buffers
        while all(buffers):
            start = max(buffer[0].start for buffer in buffers)
            for buffer in buffers:
                self._trim_before(buffer, start)
            if not all(buffers):
                break
            end = min(buffer[0].end for buffer in buffers)
            groups.append(tuple(self._take_until(buffer, end) for buffer in buffers))
        return groups

    def _trim_before(self, buffer, time_ns):
        while buffer:
            head = buffer[0]
            rows = head.index_at(time_ns)
            if rows == 0:
                return
            self.unaligned_rows += rows
            if rows >= len(head.data):
                buffer.popleft()
            else:
                buffer[0] = slice_chunk(head, rows, len(head.data))
                return

    @staticmethod
    def _take_until(buffer, time_ns):
        head = buffer[0]
        rows = head.index_at(time_ns)
        if rows >= len(head.data):
            return buffer.popleft()
        buffer[0] = slice_chunk(head, rows, len(head.data))
        piece = slice_chunk(head, 0, rows)
        return piece.replace(end=time_ns)
