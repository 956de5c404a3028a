"""
The stages of a sensor pipeline as blocks over records streams, so a
block graph's records (an instrument's KPIs, a replayed log) are filtered,
transformed and kept the way MQTT topics are:

* :class:`sensor_filter`: the filters stage (value type, white/black list,
  thresholds, rate, uniqueness, size); rows it cannot take are counted;
* :class:`sensor_transform`: the transformations of one value type;
* :class:`sensor_store`: the policies and buffering of a sensor pipeline
  file, into a store.

Each row is handled as the payload an MQTT message would carry: a number's
text, a text's UTF-8, bytes as they are.
"""

from collections import Counter

import numpy as np
from zope.interface import implementer

from ..block import Block, Sink
from ..errors import PayloadRejected
from ..interfaces import IRecordsProducer, IStateful
from ..registry import register
from ..state import check_version

__all__ = ["sensor_filter", "sensor_transform", "sensor_store"]


def _payload(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return repr(float(value)).encode()


def _emit_rows(block, chunk, times, values, kind):
    if kind == "number":
        values = np.asarray(values, dtype=float)
    block.emit_records(times, values, chunk.start, chunk.end, chunk.meta)


@register
@implementer(IStateful)
class sensor_filter(Block):
    """
    Keeps the rows of a records stream that the filters stage keeps (see
    :class:`~pyrf_blocks.sensors.filters.Filters` for each parameter); a
    row it cannot take (``bad``) or leaves out (``dropped``) is counted by
    reason.  ``max_rate`` is in seconds of device time.
    """

    type_name = "sensor_filter"
    kind = "records"
    requires = (IRecordsProducer,)
    param_units = {"max_rate": "s", "max_size": "count"}

    def __init__(self, producer, value_type="number", whitelist=None, blacklist=None,
                 minimum=None, maximum=None, max_rate=None, unique=False, max_size=None,
                 **kwargs):
        from ..sensors.filters import Filters

        self.filters = Filters(value_type, whitelist, blacklist, minimum, maximum, max_rate,
                               unique, max_size)
        #: Rows left out, by reason; rows that were bad payloads, by reason.
        self.dropped = Counter()
        self.bad = Counter()
        super().__init__(producer, **kwargs)

    # IStateful: the rate filter's last kept time and the uniqueness
    # filter's last hash, per topic, and the counts.

    def get_state(self):
        return {"version": 1, "filters": self.filters.get_state(),
                "dropped": dict(self.dropped), "bad": dict(self.bad)}

    def set_state(self, state):
        check_version(self, state, 1)
        self.filters.set_state(state["filters"])
        self.dropped, self.bad = Counter(state["dropped"]), Counter(state["bad"])

    def compute(self, chunk):
        check = self.filters.check
        times, values = [], []
        for time, value in zip(chunk.times.tolist(), chunk.data.tolist()):
            try:
                kept, reason = check(self.name, time, _payload(value))
            except PayloadRejected as rejected:
                self.bad[rejected.reason] += 1
                continue
            if reason is not None:
                self.dropped[reason] += 1
                continue
            times.append(time)
            values.append(kept)
        _emit_rows(self, chunk, times, values, self.filters.kind)


@register
class sensor_transform(Block):
    """
    Transforms each row of a records stream of ``value_type``: numbers
    (``formula`` of ``value`` and ``time`` with its ``timeout`` in seconds,
    ``coefficient``, ``decimal_point``), images (``size`` as (width,
    height), ``dpi``, ``clip`` as (x, y, width, height), ``image_format``)
    or files (``compression``, ``level``, ``wbits``); see
    :mod:`pyrf_blocks.sensors.transforms`.  A row that fails is counted in
    ``bad`` and left out.
    """

    type_name = "sensor_transform"
    kind = "records"
    requires = (IRecordsProducer,)
    param_units = {"timeout": "s"}

    def __init__(self, producer, value_type="number", coefficient=None, decimal_point=None,
                 size=None, dpi=None, clip=None, image_format=None, compression=None,
                 level=6, wbits=15, formula=None, timeout=0.05, **kwargs):
        from ..sensors.transforms import FileTransform, ImageTransform, NumericTransform

        if value_type == "number":
            self.transform = NumericTransform(coefficient, decimal_point, formula, timeout)
        elif value_type == "image":
            self.transform = ImageTransform(tuple(size) if size else None, dpi,
                                            tuple(clip) if clip else None, image_format)
        elif value_type in ("file", "binary"):
            self.transform = FileTransform(compression or "tgz", level, wbits)
        else:
            raise ValueError(f"sensor_transform: value_type {value_type!r}; one of number, "
                             "image, file")
        self.value_type = self.transform.kind
        self.bad = Counter()
        super().__init__(producer, **kwargs)

    def compute(self, chunk):
        apply = self.transform.apply
        times, values = [], []
        for time, value in zip(chunk.times.tolist(), chunk.data.tolist()):
            try:
                values.append(apply(value, self.name, time))
            except PayloadRejected as rejected:
                self.bad[rejected.reason] += 1
                continue
            times.append(time)
        _emit_rows(self, chunk, times, values, self.value_type)


@register(remote=False)
@implementer(IStateful)
class sensor_store(Sink):
    """
    Keeps the rows of a records stream under ``topic`` in ``store``,
    through the stages of the sensor pipeline ``pipeline`` (its ``topics``
    are ignored: the rows are ``topic``'s) or, without one, every row in
    ``n_records``.  ``pipeline`` is a
    :class:`~pyrf_blocks.sensors.pipeline.SensorPipeline`, the path of a
    sensor pipeline file, or, in a pipeline file, the name of a sensor
    pipeline written under ``pipelines`` in the same file.  Numbers, text and bytes rows are the
    payloads the pipeline's filters read; a row's time is its device time.

    The sink finishes once the last batch is durable.  While more than
    ``max_waiting`` rows wait for the store, the input is paused.

    :param store: an :class:`~pyrf_blocks.interfaces.IStore`, or a URL for
        :func:`~pyrf_blocks.storage.open_store` (``sqlite:PATH``...).
    :param threaded: run the store's calls on a thread (False: on the
        reactor thread, for tests on a ``task.Clock``).
    """

    type_name = "sensor_store"
    requires = (IRecordsProducer,)
    param_units = {"max_waiting": "count"}

    def __init__(self, producer, store, topic, pipeline=None, threaded=True,
                 max_waiting=100000, **kwargs):
        from ..sensors.pipeline import SensorPipeline
        from ..sensors.policies import NRecords
        from ..sensors.spec import read_sensor_pipeline
        from ..storage import InlineStore, ThreadedStore, open_store

        if isinstance(store, str):
            store = open_store(store)
        if pipeline is None:
            pipeline = SensorPipeline(topic, [topic], policies=[NRecords()])
        elif isinstance(pipeline, str):
            pipeline = read_sensor_pipeline(pipeline)
        self.topic = topic
        self.pipeline = pipeline
        self.store = store
        self.max_waiting = max_waiting
        self._threaded = threaded
        self._adapter_types = (ThreadedStore, InlineStore)
        self._last_time = None
        self._held = False
        super().__init__(producer, **kwargs)

    # IStateful: what the pipeline's stages remember, and the last row's
    # time.  Rows still waiting for the store are not state: the block holds
    # (no snapshot is cut) until they are durable.

    def get_state(self):
        return {"version": 1, "pipeline": self.pipeline.get_state(),
                "last_time": self._last_time}

    def set_state(self, state):
        check_version(self, state, 1)
        self.pipeline.set_state(state["pipeline"])
        self._last_time = state["last_time"]

    @property
    def holding(self):
        """True while rows wait for the store (they are not in the state)."""
        buffer = self.pipeline.buffer
        return (buffer is not None and buffer.waiting > 0) or super().holding

    def on_start(self):
        if self.pipeline.buffer is None:
            threaded, inline = self._adapter_types
            reactor = self.graph.reactor
            adapter = threaded(self.store, reactor) if self._threaded else inline(self.store)
            self.pipeline.start(adapter, reactor)

    def compute(self, chunk):
        receive = self.pipeline.receive
        topic = self.topic
        last = self._last_time
        for time, value in zip(chunk.times.tolist(), chunk.data.tolist()):
            if last is not None and time <= last:
                time = last + 1  # rows are keyed by (topic, time)
            last = time
            receive(topic, time, _payload(value), self._written)
        self._last_time = last
        if self.pipeline.buffer.waiting > self.max_waiting and not self._held:
            self._held = True
            for edge in self.input_edges:
                if edge is not None:
                    edge.pauseProducing()

    def _written(self):
        if self._held and self.pipeline.buffer.waiting <= self.max_waiting // 2:
            self._held = False
            for edge in self.input_edges:
                if edge is not None:
                    edge.resumeProducing()

    def end(self):
        """
        The input has ended: write what waits, then finish.
        """
        if self.finished or self.pipeline.buffer is None:
            return super().end()
        self.pipeline.flush().addBoth(lambda _: Sink.end(self))
