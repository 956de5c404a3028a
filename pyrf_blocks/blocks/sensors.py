"""
A block graph's records kept like a sensor's: :class:`sensor_store` runs
each row of its input through a sensor pipeline's stages (filters,
transformations, accumulation policies, buffering) into a store, so an
instrument's KPIs are aggregated and queried the way MQTT topics are.
"""

from ..block import Sink
from ..interfaces import IRecordsProducer
from ..registry import register

__all__ = ["sensor_store"]


@register(remote=False)
class sensor_store(Sink):
    """
    Keeps the rows of a records stream under ``topic`` in ``store``,
    through the stages of the sensor pipeline file ``pipeline`` (its
    ``topics`` are ignored: the rows are ``topic``'s) or, without one,
    every row in ``n_records``.  Numbers, text and bytes rows are the
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
        for time, value in zip(chunk.times.tolist(), chunk.data):
            if last is not None and time <= last:
                time = last + 1  # rows are keyed by (topic, time)
            last = time
            if isinstance(value, bytes):
                payload = value
            elif isinstance(value, str):
                payload = value.encode("utf-8")
            else:
                payload = repr(float(value)).encode()
            receive(topic, time, payload, self._written)
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
