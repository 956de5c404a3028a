"""
Sinks for scripts and tests: a collector and a printer.
"""

import sys

import numpy as np

from ..registry import register
from ..block import Sink
from ..interfaces import IChunkProducer
from ..numerics.decibels import amplitude_to_db, power_to_db
from ..numerics.peaks import peak_frequency

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


def _seconds(ns):
    return f"{ns / 1e9:.6f} s"


def format_peaks(chunk):
    """
    A peak table (kind ``peaks``) as text lines: MHz and level, strongest
    first (the last table of the chunk).
    """
    units = chunk.meta.get("units") or ""
    lines = []
    for rank, (frequency, level) in enumerate(chunk.data[-1], 1):
        if np.isnan(frequency):
            break
        lines.append(f"  {rank:2d}  {frequency / 1e6:14.6f} MHz  {level:9.2f} {units}".rstrip())
    return "\n".join(lines) or "  no peaks (none rises above the threshold and excursion)"


def _spectrum_text(chunk):
    meta = chunk.meta
    levels = np.asarray(chunk.data[-1], dtype=np.float64)
    head = f"spectrum at {_seconds(chunk.time_of(len(chunk.data) - 1))}"
    if not levels.size or not np.isfinite(levels).any() or "bin_width" not in meta:
        return head
    units = meta.get("units") or ""
    if units == "power":  # fft_block's linear power, before calibration
        levels, units = power_to_db(levels + 1e-300), "dB (uncalibrated)"
    index = int(np.nanargmax(np.where(np.isfinite(levels), levels, -np.inf)))
    frequency = peak_frequency(levels, index, meta.get("start_frequency", 0.0),
                               meta["bin_width"])
    text = f"{head}: peak {frequency / 1e6:.6f} MHz at {levels[index]:.2f} {units}".rstrip()
    if "rbw" in meta:
        text += f" (RBW {meta['rbw'] / 1e3:.2f} kHz)"
    return text


def _samples_text(chunk):
    data = np.asarray(chunk.data)
    rms = np.sqrt(np.mean(np.abs(data) ** 2)) if data.size else 0.0
    level = amplitude_to_db(rms) if rms > 0 else -np.inf
    return (f"{chunk.kind} {_seconds(chunk.start)} to {_seconds(chunk.end)}: "
            f"{len(data)} samples at {chunk.rate / 1e6:.6g} MSa/s, RMS {level:.2f} dBFS")


def _value_text(value, unit):
    if isinstance(value, (bytes, np.bytes_)):
        return f"{len(value)} bytes"
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g} {unit}".rstrip()
    return f"{value} {unit}".rstrip()


def _records_text(chunk):
    units = chunk.meta.get("units") or ""
    values = chunk.data
    lines = []
    for row, time in enumerate(chunk.times):
        value = values[row]
        if values.dtype.names:
            unit_of = units if isinstance(units, dict) else {}
            text = ", ".join(f"{name}={_value_text(value[name], unit_of.get(name, ''))}"
                             for name in values.dtype.names)
        elif np.ndim(value):
            text = ", ".join(_value_text(v, units if isinstance(units, str) else "")
                             for v in value)
        else:
            text = _value_text(value, units if isinstance(units, str) else "")
        lines.append(f"record at {_seconds(time)}: {text}")
    return "\n".join(lines) or f"no records up to {_seconds(chunk.end)}"


def format_chunk(chunk):
    """
    What a person reads in a chunk: the peak frequency and level of a
    spectrum (its last frame), a peak table as a table, values with their
    units for scalars and records, RMS level for samples.  (The
    :class:`printer` puts the name of the block in front.)
    """
    kind = chunk.kind
    if kind == "peaks":
        return (f"peak table at {_seconds(chunk.time_of(len(chunk.data) - 1))}:\n"
                + format_peaks(chunk))
    if kind == "spectrum":
        return _spectrum_text(chunk)
    if kind == "records":
        return _records_text(chunk)
    if kind in ("iq", "real"):
        return _samples_text(chunk)
    if kind == "scalar":
        units = chunk.meta.get("units") or ""
        values = ", ".join(f"{v:.4g}" for v in np.ravel(chunk.data))
        quantity = chunk.meta.get("quantity") or "value"
        return f"{quantity} at {_seconds(chunk.start)}: {values} {units}".rstrip()
    return (f"{kind} {_seconds(chunk.start)} to {_seconds(chunk.end)}: "
            f"{len(chunk.data)} rows")


@register
class printer(Sink):
    """
    Writes a line per chunk to ``stream``, at most one every ``interval``
    seconds of device time: the name of the block it reads, then
    ``format(chunk)`` (:func:`format_chunk`: peak frequency and level of a
    spectrum, values with units...), so that two chains printing to one
    terminal can be told apart.

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
        print(f"{self.inputs[0].name}: {self.format(chunk)}", file=self.stream, flush=True)
