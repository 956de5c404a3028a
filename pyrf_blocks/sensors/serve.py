"""
Every sensor pipeline file of a directory, run against one broker and one
store: what ``pyrf-blocks serve-pipelines`` does.

One :class:`~pyrf_blocks.sources.mqtt.MQTTSource` (one connection) routes
each topic to its pipeline.  The directory is looked at every ``rescan``
seconds: a new or changed file is read again and replaces its pipeline
(the old one writes what it holds first), a removed one is dropped, and
the subscriptions follow without reconnecting.  A file with mistakes is
reported with its lines and, if it was running, keeps running as it was.
Every ``cleanup_interval`` seconds the store's cleanup removes rows past
retention and unreferenced blobs.  Store calls run on the store's own
thread (:class:`~pyrf_blocks.storage.ThreadedStore`).
"""

import os
import time as _time

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..errors import PipelineError
from ..pipeline.loader import read_document
from ..storage import ThreadedStore
from .spec import is_sensor_pipeline, load_sensor_pipeline

__all__ = ["PipelineServer", "FilePipelineServer"]

log = Logger()


class PipelineServer:
    """
    :param reactor: the reactor everything runs in.
    :param directory: where the pipeline files (``*.yaml``, ``*.yml``) are.
    :param store: an :class:`~pyrf_blocks.interfaces.IStore`.
    :param host, port, client_id: the broker and the session's name.
    :param protocol: MQTT ``"5"`` or ``"3.1.1"`` (see
        :class:`~pyrf_blocks.sources.mqtt.MQTTSource`).
    :param report: called with each line worth showing a user.
    """

    def __init__(self, reactor, directory, store, host="127.0.0.1", port=1883,
                 client_id="pyrf-blocks", rescan=2.0, cleanup_interval=60.0,
                 receive_maximum=10000, report=None, protocol="5"):
        self.reactor = reactor
        self.directory = os.fspath(directory)
        self.store = ThreadedStore(store, reactor)
        self.host, self.port, self.client_id = host, port, client_id
        self.rescan_interval = rescan
        self.cleanup_interval = cleanup_interval
        self.receive_maximum = receive_maximum
        self.protocol = protocol
        self.report = report or (lambda line: log.info("{line}", line=line))
        self.source = None
        #: {path: SensorPipeline} running now.
        self.pipelines = {}
        self._seen = {}
        self._rescan = LoopingCall(self.rescan)
        self._rescan.clock = reactor
        self._cleanup = LoopingCall(self.cleanup)
        self._cleanup.clock = reactor
        self._busy = None

    def __repr__(self):
        return f"<PipelineServer {self.directory} {len(self.pipelines)} pipeline(s)>"

    @defer.inlineCallbacks
    def start(self):
        """
        Read the files, restore the pipelines' state from the store, then
        connect: a Deferred that fires once connecting has begun.
        """
        from ..sources.mqtt import MQTTSource

        cursors = yield self.store.call("cursors", f"mqtt:{self.client_id}:")
        self.source = MQTTSource(self.reactor, self.host, self.port, self.client_id,
                                 cursors=cursors, receive_maximum=self.receive_maximum,
                                 protocol=self.protocol)
        yield self.rescan()
        self.source.start()
        self._rescan.start(self.rescan_interval, now=False)
        self._cleanup.start(self.cleanup_interval, now=False)

    def _files(self):
        found = {}
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as error:
            self.report(f"{self.directory}: cannot list: {error.strerror}")
            return found
        for name in names:
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(self.directory, name)
                try:
                    status = os.stat(path)
                except OSError:
                    continue
                found[path] = (status.st_mtime_ns, status.st_size)
        return found

    def rescan(self):
        """
        Load new and changed files, drop removed ones: a Deferred.
        """
        if self._busy is not None:
            return self._busy
        self._busy = self._rescan_now()
        self._busy.addBoth(self._done_rescan)
        return self._busy

    def _done_rescan(self, result):
        self._busy = None
        return result

    @defer.inlineCallbacks
    def _rescan_now(self):
        files = self._files()
        for path in sorted(set(self.pipelines) - set(files)):
            old = self.pipelines.pop(path)
            self._seen.pop(path, None)
            self._route()
            yield old.flush()
            self.report(f"{path}: removed; topics {', '.join(old.topics)} unsubscribed")
        for path, stamp in files.items():
            if self._seen.get(path) == stamp:
                continue
            self._seen[path] = stamp
            try:
                document = read_document(path)
                if not is_sensor_pipeline(document.data):
                    if isinstance(document.data, dict) and "blocks" in document.data and (
                            "pipeline" in document.data or "pipelines" in document.data):
                        self.report(f"{path}: a block graph with sensor pipelines; not "
                                    "served here (run it with pyrf-blocks run)")
                    continue
                pipeline = load_sensor_pipeline(document)
            except PipelineError as error:
                self.report(str(error))
                if path in self.pipelines:
                    self.report(f"{path}: keeps running as it was")
                continue
            taken = {t: p for other, p in self.pipelines.items() if other != path
                     for t in p.topics}
            clash = [t for t in pipeline.topics if t in taken]
            if clash:
                self.report(f"{path}: topic {clash[0]} is already handled by "
                            f"{taken[clash[0]].name}; not loaded")
                continue
            # The new pipeline takes the topics at once but holds their
            # messages until the old one has written its last batch and the
            # new one has restored its state from the store.
            pipeline.start(self.store, self.reactor)
            pipeline.hold()
            old = self.pipelines.get(path)
            self.pipelines[path] = pipeline
            self._route()
            try:
                if old is not None:
                    yield old.flush()
                yield self.store.call(pipeline.restore, self.store.store)
            finally:
                pipeline.release()
            self.report(f"{path}: {'reloaded' if old else 'loaded'}; topics "
                        f"{', '.join(pipeline.topics)}")

    def _route(self):
        if self.source is not None:
            self.source.set_routes({topic: pipeline for pipeline in self.pipelines.values()
                                    for topic in pipeline.topics})

    def cleanup(self):
        """
        Remove rows past retention and unreferenced blobs: a Deferred.
        """
        keep = {}
        for pipeline in self.pipelines.values():
            keep.update(pipeline.retention())
        done = self.store.cleanup(_time.time_ns(), keep)
        done.addErrback(lambda failure: self.report(
            f"cleanup failed: {failure.getErrorMessage()}"))
        return done

    @defer.inlineCallbacks
    def stop(self):
        """
        Write what every pipeline holds (and acknowledge it), disconnect,
        close the store.
        """
        for loop in (self._rescan, self._cleanup):
            if loop.running:
                loop.stop()
        for pipeline in list(self.pipelines.values()):
            yield pipeline.flush()
        if self.source is not None:
            yield self.source.stop()
        yield self.store.close()


class FilePipelineServer(PipelineServer):
    """
    Given sensor pipelines (those of a block-graph file that no block
    names: what ``pyrf-blocks run`` serves beside the graph), run against
    one broker and one store like a directory's, loaded once.

    :param name: how reports name the file.
    :param pipelines: ``{name: SensorPipeline}``; their topics must not
        overlap.
    """

    def __init__(self, reactor, name, pipelines, store, **kwargs):
        super().__init__(reactor, name, store, **kwargs)
        self._given = dict(pipelines)
        self._loaded = None

    def __repr__(self):
        return f"<FilePipelineServer {self.directory} {len(self._given)} pipeline(s)>"

    def rescan(self):
        """
        Start the pipelines and restore their state, once: a Deferred.
        """
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    @defer.inlineCallbacks
    def _load(self):
        for name, pipeline in self._given.items():
            pipeline.start(self.store, self.reactor)
            pipeline.hold()
            self.pipelines[name] = pipeline
        self._route()
        for name, pipeline in self._given.items():
            try:
                yield self.store.call(pipeline.restore, self.store.store)
            finally:
                pipeline.release()
            self.report(f"{self.directory}: sensor pipeline {name}: topics "
                        f"{', '.join(pipeline.topics)}")
