"""
Helpers for testing graphs and blocks, ours and users' own.

* :class:`array_source` plays given arrays (or chunks) as a stream;
* :class:`recording_sink` records chunks and checks the stream's order;
* :func:`assert_provides` verifies a block against an interface;
* :func:`run_clock` drives a ``task.Clock`` until a graph is done.
"""

import numpy as np
from zope.interface import implementer
from zope.interface.verify import verifyObject

from .blocks.sinks import collector
from .chunk import Chunk
from .block import PolledSource
from .interfaces import KIND_INTERFACES

__all__ = ["array_source", "recording_sink", "assert_provides", "run_clock",
           "split_array"]


def assert_provides(interface, obj):
    """
    Fail unless ``obj`` provides ``interface`` with every method and
    attribute it declares (``zope.interface.verify.verifyObject``).
    """
    assert interface.providedBy(obj), f"{obj!r} does not provide {interface.__name__}"
    verifyObject(interface, obj)


def split_array(array, sizes):
    """
    Cut ``array`` along axis 0 into pieces of the given sizes (the last
    piece takes the rest).
    """
    pieces, start = [], 0
    for size in sizes:
        if start >= len(array):
            break
        pieces.append(array[start:start + size])
        start += size
    if start < len(array):
        pieces.append(array[start:])
    return pieces


class array_source(PolledSource):
    """
    Plays a list of arrays as consecutive chunks of ``kind`` at ``rate``.

    :param arrays: arrays (axis 0 is time) or ready-made :class:`Chunk`
        objects, which are replayed with their own times and meta.
    :param repeat: play the list this many times (``None``: forever).
    :param paced: keep to device time; by default as fast as consumers
        take chunks.
    """

    type_name = "array_source"

    def __init__(self, arrays, kind="iq", rate=1e6, start_time=0, meta=None,
                 repeat=1, paced=False, **kwargs):
        self._arrays = list(arrays)
        self._kind = kind
        if kind not in KIND_INTERFACES:
            raise ValueError(f"array_source: unknown kind {kind!r}; known: "
                             f"{', '.join(KIND_INTERFACES)}")
        self.sample_rate = float(rate)
        self.start_time = int(start_time)
        self.source_meta = dict(meta or {})
        self.repeat = repeat
        super().__init__(paced=paced, **kwargs)

    def output_kind(self):
        return self._kind

    def reset(self):
        self._position = 0
        self._samples = 0
        self._played = 0

    def next_chunk(self):
        if self._position == len(self._arrays):
            self._played += 1
            if not self._arrays or (self.repeat is not None and self._played >= self.repeat):
                return None
            self._position = 0
        item = self._arrays[self._position]
        self._position += 1
        if isinstance(item, Chunk):
            return item.data, item.start, item.end, item.rate, item.meta
        rate = self.sample_rate
        start = self.start_time + round(self._samples * 1e9 / rate)
        self._samples += len(item)
        end = self.start_time + round(self._samples * 1e9 / rate)
        return np.asarray(item), start, end, rate, self.source_meta


class recording_sink(collector):
    """
    A collector that also checks what a consumer may rely on: ``seq`` is
    gap-free from 0 and time ranges follow each other without overlap.
    Violations are listed in ``problems``.
    """

    type_name = "recording_sink"

    def reset(self):
        self.problems = []
        self._next_seq = None
        self._last_end = None

    def compute(self, chunk):
        if self._next_seq is not None and chunk.seq != self._next_seq:
            self.problems.append(f"seq {chunk.seq} after {self._next_seq - 1}")
        if self._last_end is not None and chunk.start < self._last_end:
            self.problems.append(f"chunk {chunk.seq} starts at {chunk.start} "
                                 f"before the previous end {self._last_end}")
        self._next_seq = chunk.seq + 1
        self._last_end = chunk.end
        super().compute(chunk)


def run_clock(clock, graph, step=0.001, limit=100000):
    """
    Advance ``clock`` in ``step`` seconds until ``graph`` is done; return
    the outcome of :meth:`Graph.done` (``None`` or the failure).
    """
    outcome = []
    graph.done().addBoth(outcome.append)
    for _ in range(limit):
        if outcome:
            return outcome[0]
        clock.advance(step)
    raise AssertionError(f"graph not done after {limit} steps of {step} s")
