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
from functools import partial

import numpy as np
from zope.interface import implementer

from ..block import Block, Sink
from ..errors import PayloadRejected
from ..interfaces import IDurableSink, IRecordsProducer, IStateful
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
        # The parameters as given, for graph_to_yaml.
        self.value_type, self.whitelist, self.blacklist = value_type, whitelist, blacklist
        self.minimum, self.maximum, self.max_rate = minimum, maximum, max_rate
        self.unique, self.max_size = unique, max_size
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
        # The parameters as given, for graph_to_yaml.
        self.value_type = value_type
        self.coefficient, self.decimal_point, self.formula = coefficient, decimal_point, formula
        self.timeout, self.size, self.dpi, self.clip = timeout, size, dpi, clip
        self.image_format, self.compression = image_format, compression
        self.level, self.wbits = level, wbits
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
        _emit_rows(self, chunk, times, values, self.transform.kind)


@register(remote=False)
@implementer(IDurableSink, IStateful)
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

    It is a durable sink (:class:`~pyrf_blocks.interfaces.IDurableSink`):
    :attr:`durable_through` follows its commits and is stored with them,
    and an ``mqtt_source`` upstream acknowledges its messages only up to
    there; the source's marks and ``durable_through`` are written in the
    same transactions as the rows.  When it starts, each policy continues
    ``topic``'s open window from the store (as a sensor pipeline does);
    fed by such a source, it leaves out the rows before the
    ``durable_through`` an earlier run stored (delivered again: their
    effect is stored, and a window computed again from part of its rows
    does not overwrite it).

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

        #: The store as given (a URL or an IStore), and the IStore it is.
        self.store = store
        self.backend = open_store(store) if isinstance(store, str) else store
        if pipeline is None:
            pipeline = SensorPipeline(topic, [topic], policies=[NRecords()])
        elif isinstance(pipeline, str):
            pipeline = read_sensor_pipeline(pipeline)
        self.topic = topic
        self.pipeline = pipeline
        self.max_waiting = max_waiting
        self.threaded = threaded
        self._adapter_types = (ThreadedStore, InlineStore)
        self._last_time = None
        self._held = False
        #: Device time before which every input row is committed (None
        #: before the first commit).
        self.durable_through = None
        self._computed_end = None  # the end of the last chunk taken whole
        self._taking_end = None    # the end of the chunk being taken
        self._before_restore = None
        self._end_wanted = False
        #: The device time before which an earlier run committed every row
        #: (read when it starts): rows before it are not taken again.
        self.stored = None
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
        """
        True while rows wait for the store, or chunks for the store's open
        windows to be read (neither is in the state).
        """
        buffer = self.pipeline.buffer
        return (bool(self._before_restore) or (buffer is not None and buffer.waiting > 0)
                or super().holding)

    def on_start(self):
        if self.pipeline.buffer is None:
            threaded, inline = self._adapter_types
            reactor = self.graph.reactor
            adapter = (threaded(self.backend, reactor) if self.threaded
                       else inline(self.backend))
            self.pipeline.start(adapter, reactor).before_write.append(self._store_marks)
            # Continue the store's open windows before taking any row.
            self._before_restore = []
            # Fed by a source that acknowledges (MQTT), a row before what an
            # earlier run committed is one delivered again: left out.
            from ..durable import acknowledging_sources

            restored = adapter.call(self._restore, self.backend,
                                    bool(acknowledging_sources(self)))
            restored.addErrback(lambda failure: self.graph.fail(self, failure))
            restored.addCallback(lambda _: self._restored())

    @property
    def _through_key(self):
        return f"durable-through:{self.topic}:{self.name}"

    def _restore(self, store, resuming):
        if resuming:
            stored = store.cursors(self._through_key).get(self._through_key)
            self.stored = None if stored is None else int(stored)
        for policy in self.pipeline.policies:
            if hasattr(policy, "restore"):
                policy.restore(store, self.topic)

    def _restored(self):
        waiting, self._before_restore = self._before_restore, None
        for chunk in waiting or ():
            self.compute(chunk)
        if self._end_wanted:
            self.end()

    def stored_through(self):
        """
        A Deferred of :attr:`durable_through` as an earlier run last
        committed it, or None (see
        :class:`~pyrf_blocks.interfaces.IDurableSink`).
        """
        key = self._through_key
        stored = self.pipeline.buffer.store.call("cursors", key)
        return stored.addCallback(lambda found: int(found[key]) if key in found else None)

    def stored_cursors(self, prefix):
        """
        A Deferred of the store's cursors under ``prefix`` (see
        :class:`~pyrf_blocks.interfaces.IDurableSink`).
        """
        return self.pipeline.buffer.store.call("cursors", prefix)

    def _store_marks(self, batch, now):
        from ..durable import acknowledging_sources

        if self._taking_end is None:
            return
        for source in acknowledging_sources(self):
            batch.cursors.update(source.durable_marks(self, self._taking_end))
            if self._computed_end is not None:
                batch.cursors[self._through_key] = str(self._computed_end)

    def _durable(self, end):
        if self.durable_through is None or end > self.durable_through:
            self.durable_through = end
            from ..durable import notify_sources

            notify_sources(self)

    def compute(self, chunk):
        if self._before_restore is not None:
            self._before_restore.append(chunk)
            return
        # A batch may be written in the middle of the chunk's rows.
        self._taking_end = chunk.end
        receive = self.pipeline.receive
        topic = self.topic
        last = self._last_time
        stored = self.stored
        for time, value in zip(chunk.times.tolist(), chunk.data.tolist()):
            if stored is not None and time < stored:
                continue  # committed by an earlier run, which stored its effect
            if last is not None and time <= last:
                time = last + 1  # rows are keyed by (topic, time)
            last = time
            receive(topic, time, _payload(value), self._written)
        self._last_time = last
        # After the rows, in the same batch: the chunk's end is durable
        # with them (an empty chunk's at the next write).
        self._computed_end = chunk.end
        self.pipeline.buffer.added(partial(self._durable, chunk.end))
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
        if self._before_restore is not None:
            self._end_wanted = True  # after the rows that wait for the restore
            return
        self.pipeline.flush().addBoth(lambda _: Sink.end(self))
