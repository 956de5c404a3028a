"""
Synchronisation of a block's inputs (strax's rule).

Inputs may arrive cut in any way.  Before a block with several inputs
computes, the :class:`Synchronizer` re-cuts its buffered chunks to common
time ranges: every group it returns holds one piece per input, all covering
the same span of device time.  Inputs of the same rate line up sample by
sample; inputs of different rates line up by containment (each piece holds
the rows that start inside the group's range).  Records line up by
containment too, and their pieces cover exactly the group's range: a
records chunk without rows still says that nothing happened in its range.
Pieces are views into the original arrays, never copies.

An input that runs ahead of the others is paused (:class:`InputsAhead`),
so that the synchroniser never buffers more than one edge's worth of it.
"""

from collections import deque

import numpy as np

from .timebase import rounding_apart

__all__ = ["InputsAhead", "Synchronizer", "concat_chunks", "slice_chunk", "take_aligned"]


def slice_chunk(chunk, begin, stop):
    """
    The rows ``begin:stop`` of ``chunk`` as a chunk of their own (a view).

    A piece covers from its first row's time to the next piece's first
    row's time; the first piece starts at the chunk's ``start`` and the
    last ends at its ``end``, so the pieces of a chunk tile its range.
    Records are cut only between rows of different times (a chunk's range
    is half-open, so rows of one time cannot end one piece and begin the
    next): a cut between two rows of the same time raises ``ValueError``.
    """
    times = chunk.times
    if times is None:
        return chunk.replace(
            data=chunk.data[begin:stop],
            start=chunk.time_of(begin),
            end=chunk.end if stop >= len(chunk.data) else chunk.time_of(stop),
        )
    rows = len(times)
    begin = min(max(begin, 0), rows)
    stop = min(max(stop, begin), rows)
    for cut in (begin, stop):
        if 0 < cut < rows and times[cut - 1] == times[cut]:
            raise ValueError(f"slice_chunk: cannot cut records between rows {cut - 1} and "
                             f"{cut}: both are at {times[cut]} ns")
    return chunk.replace(
        data=chunk.data[begin:stop], times=times[begin:stop],
        start=chunk.start if begin == 0 else chunk.time_of(begin),
        end=chunk.end if stop == rows else chunk.time_of(stop),
    )


def concat_chunks(chunks):
    """
    Join consecutive chunks of one stream into one chunk (a copy): the
    inverse of cutting a chunk with :func:`slice_chunk`.

    Each chunk must start where the one before it ended, and all must have
    the same kind, rate, meta, dtype and row shape; the result has the
    first chunk's ``seq`` and ``meta``.  Sampled rows are then timed from
    the result's start.

    :raise ValueError: no chunks, or chunks that do not follow each other.
    """
    chunks = list(chunks)
    if not chunks:
        raise ValueError("concat_chunks: no chunks to join")
    first = chunks[0]
    for number, (previous, chunk) in enumerate(zip(chunks, chunks[1:]), 1):
        if chunk.start != previous.end:
            raise ValueError(f"concat_chunks: chunk {number} starts at {chunk.start} ns, "
                             f"not where chunk {number - 1} ended ({previous.end} ns)")
        if (chunk.kind != first.kind or chunk.rate != first.rate
                or (chunk.times is None) != (first.times is None)):
            raise ValueError(f"concat_chunks: chunk {number} is {chunk.kind} at "
                             f"{chunk.rate} /s, chunk 0 {first.kind} at {first.rate} /s")
        if chunk.data.dtype != first.data.dtype or chunk.data.shape[1:] != first.data.shape[1:]:
            raise ValueError(f"concat_chunks: chunk {number} holds {chunk.data.dtype}"
                             f"{list(chunk.data.shape[1:])} rows, chunk 0 "
                             f"{first.data.dtype}{list(first.data.shape[1:])}")
        if chunk.meta is not first.meta and chunk.meta != first.meta:
            raise ValueError(f"concat_chunks: chunk {number}'s meta differs from chunk 0's")
    if len(chunks) == 1:
        return first
    return first.replace(
        data=np.concatenate([chunk.data for chunk in chunks]),
        times=None if first.times is None else np.concatenate([c.times for c in chunks]),
        end=chunks[-1].end,
    )


def _records_between(chunk, time_ns):
    """
    A records chunk cut at ``time_ns``: the part before it and the part
    from it on, each covering its side of the chunk's range.
    """
    rows = chunk.index_at(time_ns)
    before = chunk.replace(data=chunk.data[:rows], times=chunk.times[:rows], end=time_ns)
    after = chunk.replace(data=chunk.data[rows:], times=chunk.times[rows:], start=time_ns)
    return before, after


def _rest_from(chunk, rows, time_ns):
    """
    The rows of sampled ``chunk`` from ``rows`` on, cut there because the
    group's range starts or ends at ``time_ns``.

    When that is a rounding apart from the first row's time counted from
    the chunk's own start (another input's boundary, the same instant
    rounded from another chunk's start: a period of fractional
    nanoseconds), the rest starts exactly at ``time_ns``, so that the
    pieces of one group cover one range and this input's pieces tile time.
    A cut further from a row (inside a sample: at a gap in records, at
    another rate's boundary) leaves the rest at its first row's time.
    """
    rest = slice_chunk(chunk, rows, len(chunk.data))
    if rest.start != time_ns and rounding_apart(rest.start, time_ns, chunk.rate):
        rest = rest.replace(start=time_ns)
    return rest


def _boundary_before(chunk, time_ns):
    """
    The latest time, not after ``time_ns``, at which sampled ``chunk`` can
    be cut: the start of one of its rows, or its end.
    """
    if time_ns >= chunk.end:
        return chunk.end
    rows = chunk.index_at(time_ns)
    if rows and chunk.time_of(rows) > time_ns:
        rows -= 1
    return chunk.time_of(rows)


def _reach(buffer):
    """
    How far the records buffered for one input cover device time without a
    gap or a change of meta (so that they can be joined into one piece),
    and whether a buffered chunk stops them there (so that waiting for
    more would not help).
    """
    head = buffer[0]
    reach = head.end
    for chunk in list(buffer)[1:]:
        if chunk.start != reach or (chunk.meta is not head.meta and chunk.meta != head.meta):
            return reach, True
        reach = chunk.end
    return reach, False


def take_aligned(queues, groups):
    """
    The synchroniser's common case, inputs cut alike: while the first
    items of all ``queues`` (deques, one per input, of anything with a
    ``start`` and an ``end``) cover one range, take them out together and
    append them to ``groups`` as one group (a tuple, one item per input),
    which is what the general rule would hand out.  Return True once a
    queue is empty, False when the first items cover different ranges.
    """
    while all(queues):
        first = queues[0][0]
        start, end = first.start, first.end
        for queue in queues:
            head = queue[0]
            if head.start != start or head.end != end:
                return False
        groups.append(tuple(map(deque.popleft, queues)))
    return True


class InputsAhead:
    """
    The inputs of a block that run ahead of the others, paused so that the
    block never holds more than ``bound`` chunks of one of them.

    An input is paused when what the block holds of it reaches the bound.
    While groups are taken it is resumed once half of that is gone (as an
    edge releases its producer), rather than paused and resumed again for
    every chunk the others bring; when an input brought no group, as soon
    as it is below the bound (what it holds may not be enough for one).

    :param bound: the most chunks held of one input (its edge's ``maxsize``).
    :param depth: ``depth(index)``, the chunks held of input ``index``.
    :param producer: ``producer(index)``, the ``IPushProducer`` that feeds
        input ``index`` (its edge, or a fused feeder block), or None.
    """

    __slots__ = ("bound", "depth", "producer", "paused")

    def __init__(self, bound, depth, producer):
        self.bound = bound
        self.depth = depth
        self.producer = producer
        #: The indexes of the inputs paused here.
        self.paused = set()

    def added(self, index, taken):
        """
        Input ``index`` brought a chunk (the only way a depth grows), and
        groups were computed (``taken``) or not: resume the inputs now low
        enough, and pause this one if it reached the bound.
        """
        paused = self.paused
        if paused:
            low = self.bound // 2 if taken else self.bound - 1
            for other in tuple(paused):
                if self.depth(other) <= low:
                    paused.discard(other)
                    producer = self.producer(other)
                    if producer is not None:
                        producer.resumeProducing()
        if index not in paused and self.depth(index) >= self.bound:
            producer = self.producer(index)
            if producer is not None:
                paused.add(index)
                producer.pauseProducing()

    def release(self):
        """
        Resume every paused input (one input ended: it brings nothing
        more, so waiting for it would hold the others for ever).
        """
        paused = self.paused
        while paused:
            producer = self.producer(paused.pop())
            if producer is not None:
                producer.resumeProducing()


class Synchronizer:
    """
    Buffers the chunks of ``count`` inputs and hands out aligned groups.

    Sampled inputs can be cut only between samples, records anywhere: when
    records are among the inputs, groups end where the sampled inputs can
    be cut, and each records piece covers its group's range exactly
    (joining the buffered records chunks it spans, a small copy).
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

    @property
    def holding(self):
        """
        True while any input has a chunk buffered (waiting for the others').
        """
        return any(self._buffers)

    def add(self, index, chunk):
        """
        Buffer ``chunk`` for input ``index``; return the list of groups
        (tuples of chunks, one per input) that are now complete.
        """
        if len(chunk.data) or (chunk.times is not None and chunk.end > chunk.start):
            self._buffers[index].append(chunk)
        groups = []
        buffers = self._buffers
        while not take_aligned(buffers, groups):
            sampled = [buffer for buffer in buffers if buffer[0].times is None]
            records = [buffer for buffer in buffers if buffer[0].times is not None]
            start = max(buffer[0].start for buffer in buffers)
            for buffer in sampled:
                self._trim_before(buffer, start)
            if not all(sampled):
                break
            if sampled and records:
                start = max(buffer[0].start for buffer in sampled)
            for buffer in records:
                self._trim_records_before(buffer, start)
            if not all(records):
                break
            if not records:
                end = min(buffer[0].end for buffer in buffers)
            elif not sampled:
                end = min(buffer[0].end for buffer in records)
            else:
                end = min(buffer[0].end for buffer in sampled)
                reach, stopped = min(_reach(buffer) for buffer in records)
                if reach < end:
                    end = min(_boundary_before(buffer[0], reach) for buffer in sampled)
                    if end <= start:
                        if not stopped:
                            break  # the records do not yet cover a whole sample
                        # A gap or a change of meta in the records inside a
                        # sample: cut there, the samples to the nearest row.
                        end = reach
            groups.append(tuple(
                self._take_until(buffer, end) if buffer[0].times is None
                else self._take_records_until(buffer, end) for buffer in buffers))
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
                buffer[0] = _rest_from(head, rows, time_ns)
                return

    def _trim_records_before(self, buffer, time_ns):
        while buffer:
            head = buffer[0]
            if head.start >= time_ns:
                return
            if head.end <= time_ns:
                self.unaligned_rows += len(head.data)
                buffer.popleft()
                continue
            dropped, buffer[0] = _records_between(head, time_ns)
            self.unaligned_rows += len(dropped.data)
            return

    @staticmethod
    def _take_until(buffer, time_ns):
        head = buffer[0]
        rows = head.index_at(time_ns)
        if rows >= len(head.data):
            return buffer.popleft()
        buffer[0] = _rest_from(head, rows, time_ns)
        piece = slice_chunk(head, 0, rows)
        return piece.replace(end=time_ns)

    @staticmethod
    def _take_records_until(buffer, time_ns):
        pieces = []
        while buffer and buffer[0].end <= time_ns:
            pieces.append(buffer.popleft())
        if buffer and buffer[0].start < time_ns:
            piece, buffer[0] = _records_between(buffer[0], time_ns)
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else concat_chunks(pieces)
