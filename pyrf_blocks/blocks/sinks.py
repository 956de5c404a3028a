"""
Sinks for scripts and tests: a collector and a printer.
"""

import sys

import numpy as np

from ..registry import register
from ..block import Sink
from ..interfaces import IChunkProducer

__all__ = ["collector", "printer", "format_chunk", "format_peaks"]


@register
class collector(Sink):
    """
    Keeps every chunk it receives (or only the newest ``keep``).

    ``chunks`` is the list; :meth:`data` concatenates their arrays;
    :meth:`wait` returns a Deferred that fires with the list at
    end-of-stream.

    :param keep: chunks kept, the newest; ``None`` keeps them all.
    """

    type_name = "collector"
    requires = (IChunkProducer,)
    param_units = {"keep": "count"}

    def __init__(self, producer, keep=None, **kwargs):
        self.keep = keep
        self.chunks = []
        super().__init__(producer, **kwargs)

    def compute(self, chunk):
        self.chunks.append(chunk)
        if self.keep is not None and len(self.chunks) > self.keep:
            del self.chunks[0]

    def data(self):
        """
        All received arrays joined along the time axis.
        """
        if not self.chunks:
            raise ValueError(f"collector {self.name!r} has received nothing")
        return np.concatenate([c.data for c in self.chunks])

    def wait(self):
        return self.wait_finished().addCallback(lambda _: self.chunks)


def format_peaks(chunk):
    """
    A peak table (kind ``peaks``) as text lines: MHz and level.
    """
    units = chunk.meta.get("units") or ""
    lines = []
    for rank, (frequency, level) in enumerate(chunk.data[-1], 1):
        if np.isnan(frequency):
            break
        lines.append(f"  {rank:2d}  {frequency / 1e6:14.6f} MHz  {level:9.2f} {units}")
    return "\n".join(lines)


def format_chunk(chunk):
    """
    One line describing a chunk; peak tables as a table.
    """
    head = (f"{chunk.kind} #{chunk.seq} [{chunk.start / 1e9:.6f} s, "
            f"{chunk.end / 1e9:.6f} s) {chunk.data.dtype}{list(chunk.data.shape)}")
    if chunk.kind == "peaks":
        return head + "\n" + format_peaks(chunk)
    if chunk.kind == "scalar":
        values = ", ".join(f"{v:.4g}" for v in chunk.data)
        return f"{head}: {values} {chunk.meta.get('units', '')}".rstrip()
    return head


@register
class printer(Sink):
    """
    Writes a line per chunk (``format``: a function of the chunk) to
    ``stream``, at most one every ``interval`` seconds of device time.

    :param stream: a text file; standard output by default.
    :param format: function of a chunk returning its line.
    :param interval: least device time between two lines, seconds.
    """

    type_name = "printer"
    requires = (IChunkProducer,)
    param_units = {"interval": "s"}
    python_only_params = ("stream", "format")

    def __init__(self, producer, stream=None, format=format_chunk, interval=0.0, **kwargs):
        self.stream = stream or sys.stdout
        self.format = format
        self.interval = interval
        self.interval_ns = int(interval * 1e9)
        super().__init__(producer, **kwargs)

    def reset(self):
        self._last = None

    def compute(self, chunk):
        if self._last is not None and chunk.end - self._last < self.interval_ns:
            return
        self._last = chunk.end
        print(self.format(chunk), file=self.stream, flush=True)
