"""
Fake blocks for tests: sources that play given arrays or that the test
drives by hand, and sinks that record what arrives, check its order and
take it as slowly as the test likes.

They use only the public hooks of :mod:`pyrf_blocks.block` (``compute``,
``reset``, ``on_start``, ``on_stop``, ``on_pause``, ``on_resume``,
``emit``, ``end``, ``paused``, ``input_edges``), as a user's own block does.
"""

import numpy as np
from zope.interface.verify import verifyObject

from ..block import PolledSource, Source
from ..blocks.sinks import collector
from ..chunk import Chunk
from ..interfaces import KIND_INTERFACES
from ..timebase import sample_time

__all__ = ["array_source", "manual_source", "recording_sink", "slow_sink",
           "assert_provides", "split_array"]


def assert_provides(interface, obj):
    """
    Fail unless ``obj`` provides ``interface`` with every method and
    attribute it declares.

    Parameters
    ----------
    interface : zope.interface.Interface
        The contract, e.g. ``IIQProducer`` or ``ISink``.
    obj : object
        A block, an output, an edge...

    Raises
    ------
    AssertionError
        If ``obj`` does not declare ``interface``.
    zope.interface.exceptions.Invalid
        If it declares it but lacks a method or attribute of it
        (``zope.interface.verify.verifyObject``).
    """
    assert interface.providedBy(obj), f"{obj!r} does not provide {interface.__name__}"
    verifyObject(interface, obj)


def split_array(array, sizes):
    """
    Cut ``array`` along axis 0 into pieces of the given sizes, for tests
    whose output must not depend on how the input was cut.

    Parameters
    ----------
    array : numpy.ndarray
        Axis 0 is time.
    sizes : iterable of int
        Lengths of the pieces, in order; the last piece takes the rest,
        and sizes beyond the end of ``array`` are ignored.

    Returns
    -------
    list of numpy.ndarray
        Views of ``array`` that concatenate back to it.
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


def _check_kind(type_name, kind):
    if kind not in KIND_INTERFACES:
        raise ValueError(f"{type_name}: unknown kind {kind!r}; known: "
                         f"{', '.join(KIND_INTERFACES)}")


class array_source(PolledSource):
    """
    Plays a list of arrays as consecutive chunks of ``kind`` at ``rate``,
    then ends its stream.

    Chunk times follow each other exactly: chunk *n* starts where chunk
    *n - 1* ended, counted in samples from ``start_time``.

    Parameters
    ----------
    arrays : list of numpy.ndarray or Chunk
        Arrays (axis 0 is time), or ready-made :class:`~pyrf_blocks.chunk.Chunk`
        objects, which are replayed with their own times, rate and meta.
    kind : str
        Kind of the chunks (``"iq"``, ``"real"``, ``"spectrum"``...).
    rate : float
        Rows per second, Hz.
    start_time : int
        Device time of the first row, ns.
    meta : dict, optional
        Meta of every chunk made from an array (``{"units": "dBm"}``...).
    repeat : int or None
        Play the list this many times; ``None`` plays it forever.
    paced : bool
        Keep to device time on the graph's reactor; by default chunks go
        as fast as the consumers take them.
    **kwargs
        ``name=``, ``graph=`` and the other options of every block.
    """

    type_name = "array_source"

    def __init__(self, arrays, kind="iq", rate=1e6, start_time=0, meta=None,
                 repeat=1, paced=False, **kwargs):
        _check_kind(self.type_name, kind)
        self._arrays = [item if isinstance(item, Chunk) else np.asarray(item) for item in arrays]
        self._kind = kind
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
        self._end = self.start_time  # where the next chunk starts
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
            return item
        start = self._end
        self._samples += len(item)
        end = self._end = sample_time(self.start_time, self._samples, self.sample_rate)
        return item, start, end, self.sample_rate, self.source_meta


class manual_source(Source):
    """
    A source the test drives by hand: each :meth:`push` emits one chunk at
    once, :meth:`finish` ends the stream.

    Samples are numbered: by default the *k*-th sample pushed has the value
    *k*, so ``np.arange(source.samples)`` is what a lossless consumer
    must have received, in order.  Chunk times follow each other exactly
    at ``rate``.  The source does not stop emitting when its consumers are
    full: the test reads :attr:`paused` (or :attr:`events`) to see
    backpressure arrive, and decides whether to push more.

    Parameters
    ----------
    kind : str
        Kind of the chunks.
    rate : float
        Samples (rows) per second, Hz.
    meta : dict, optional
        Meta of every chunk; ``{"center_frequency": 1e9}`` by default, so
        that spectral blocks accept it.
    **kwargs
        ``name=``, ``graph=`` and the other options of every block.

    Attributes
    ----------
    samples : int
        Samples (rows) pushed so far.
    events : list of str
        The hooks the runtime called, in order: ``"start"`` when a consumer
        connects, ``"pause"`` and ``"resume"`` as consumers fill up and
        drain, ``"stop"`` when the last one leaves, the graph stops or fails.
    """

    type_name = "manual_source"

    def __init__(self, kind="iq", rate=1e6, meta=None, **kwargs):
        _check_kind(self.type_name, kind)
        self._kind = kind
        self.rate = float(rate)
        self.meta = {"center_frequency": 1e9} if meta is None else dict(meta)
        self.samples = 0
        self.events = []
        super().__init__(**kwargs)

    def output_kind(self):
        return self._kind

    def push(self, n=4, dtype=np.complex64, data=None):
        """
        Emit one chunk now.

        Parameters
        ----------
        n : int
            Samples in the chunk, numbered on from the previous one.
        dtype : numpy.dtype
            Their type.
        data : numpy.ndarray, optional
            Emit this array instead (axis 0 is time; ``n`` and ``dtype``
            are then ignored).

        Returns
        -------
        Chunk
            The chunk emitted, as the consumers receive it.
        """
        first = self.samples
        if data is None:
            data = np.arange(first, first + n).astype(dtype)
        self.samples += len(data)
        return self.emit(data, sample_time(0, first, self.rate),
                         sample_time(0, self.samples, self.rate), self.rate, self.meta)

    def finish(self):
        """
        End the stream: consumers see end-of-stream after what they already
        have.
        """
        self.end()

    def on_start(self):
        self.events.append("start")

    def on_stop(self):
        self.events.append("stop")

    def on_pause(self):
        self.events.append("pause")

    def on_resume(self):
        self.events.append("resume")


class recording_sink(collector):
    """
    A :class:`~pyrf_blocks.blocks.sinks.collector` that also checks what a
    consumer may rely on: ``seq`` gap-free from the first chunk on, and time
    ranges that follow each other without overlap.

    Parameters
    ----------
    producer : IChunkProducer
        What it records.
    keep : int, optional
        Chunks kept, the newest; all by default.
    **kwargs
        ``policy=``, ``maxsize=`` of its input edge, ``name=``...

    Attributes
    ----------
    chunks : list of Chunk
        What arrived, in order (see :meth:`data`).
    problems : list of str
        One line per violation seen since the sink last connected; empty
        for a well-behaved stream.
    finished : bool
        True once the stream has ended.
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


class slow_sink(recording_sink):
    """
    A consumer slower than its producer: after each chunk it pauses its
    input, which resumes after ``delay`` seconds of the graph's reactor, or,
    without ``delay``, when the test calls :meth:`next`.

    Use it to prove backpressure: under the ``block`` policy the producer
    upstream is paused and nothing is lost; under ``drop_oldest`` and
    ``latest`` the edge counts what it drops.  It records and checks
    the stream like :class:`recording_sink`.

    Parameters
    ----------
    producer : IChunkProducer
        What it consumes.
    delay : float, optional
        Seconds (of the graph's reactor or ``task.Clock``) it takes for
        each chunk; ``None`` waits for :meth:`next`.
    **kwargs
        ``policy=``, ``maxsize=`` of its input edge, ``keep=``, ``name=``...
    """

    type_name = "slow_sink"

    def __init__(self, producer, delay=None, **kwargs):
        self.delay = delay
        super().__init__(producer, **kwargs)

    def compute(self, chunk):
        super().compute(chunk)
        for edge in self.input_edges:
            if edge is not None:
                edge.pauseProducing()
        if self.delay is not None:
            self.graph.reactor.callLater(self.delay, self.next)

    def next(self):
        """
        Take the next chunk: resume the input paused after the last one.
        """
        for edge in self.input_edges:
            if edge is not None:
                edge.resumeProducing()
