"""
Running computations on a worker: each assigned computation is a pipeline
file, built into a graph of its own on the worker's reactor; its state is
snapshotted periodically into the :class:`~pyrf_blocks.cluster.store.ClusterStore`
and restored from there when the computation lands on another worker.

Recovery = last snapshot + replay of the inputs since it.  A snapshot is a
consistent cut: it is taken between reactor events when no edge of the
computation holds a chunk (every chunk a source has emitted has been
computed by every block), so the state of every block, plus every output's
next ``seq``, describes exactly "everything up to here".  The sources are
part of the cut (their own state says where they are), and the snapshot is
saved only once the result writes made before it are durable.  A new owner
restores the cut and the sources go on from there; the results it writes
again land on the same rows (upserts keyed by seq), so the outputs equal
an uninterrupted run's.

Only blocks that provide :class:`~pyrf_blocks.interfaces.IStateful` have
state; a computation whose blocks keep state without it cannot be restored
exactly, and :func:`capture` says which.
"""

import json
from dataclasses import dataclass

from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from ..errors import Fenced
from ..interfaces import IStateful

__all__ = ["Runner", "ClusterContext", "capture", "restore", "quiescent"]

log = Logger()

STATE_VERSION = 1


@dataclass
class ClusterContext:
    """
    What a computation's graph knows of the cluster: set as ``graph.cluster``.
    ``active`` turns false when the computation moves away: what its blocks
    flush while stopping is not a result (a window cut short), so it is
    neither written nor snapshotted; the new owner computes it whole.
    """

    computation: str
    revision: int
    store: object
    active: bool = True


def quiescent(graph):
    """
    True when no edge of ``graph`` holds a chunk and no block holds input
    rows it has not computed (:attr:`~pyrf_blocks.block.Block.holding`): a
    consistent cut.
    """
    return (all(edge.depth == 0 for edge in graph.edges)
            and not any(block.holding for block in tuple(graph.blocks.values())))


def capture(graph):
    """
    The state of every block of ``graph``: its outputs' next ``seq``, and
    ``get_state()`` for those that provide ``IStateful``.
    """
    blocks = {}
    for name, block in graph.blocks.items():
        entry = {"seq": {out: output.next_seq for out, output in block.outputs.items()},
                 "ended": bool(block.ended)}
        if IStateful.providedBy(block):
            entry["state"] = block.get_state()
        blocks[name] = entry
    return {"version": STATE_VERSION, "blocks": blocks}


def restore(graph, state):
    """Put ``graph``'s blocks back in the state :func:`capture` returned."""
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"unknown snapshot version {state.get('version')!r}")
    for name, entry in state["blocks"].items():
        block = graph.blocks.get(name)
        if block is None:
            raise ValueError(f"the snapshot has block {name!r}, the computation has not "
                             f"(its pipeline changed?)")
        for out, seq in entry["seq"].items():
            block.output(out).next_seq = seq
        if "state" in entry:
            block.set_state(entry["state"])
        # It flushed its final values before the snapshot: not again.
        block.flushed_before = bool(entry.get("ended"))


@dataclass
class _Running:
    graph: object
    revision: int
    snapshots: int = 0
    state_bytes: int = 0
    snapshot_at: float = None
    finished: bool = False
    saving: bool = False


class Runner:
    """
    Runs the computations a :class:`~pyrf_blocks.cluster.membership.Member`
    is given: pass :meth:`assigned` and :meth:`revoked` as its callbacks.

    :param reactor: the worker's reactor.
    :param coordinator: where the computations' specs are.
    :param store: the :class:`~pyrf_blocks.cluster.store.ClusterStore`.
    :param snapshot_interval: seconds between snapshots of a computation.
    """

    def __init__(self, reactor, coordinator, store, prefix="/pyrf/", snapshot_interval=1.0):
        self._reactor, self._coordinator, self._store = reactor, coordinator, store
        self.prefix = prefix
        self.running = {}
        self._loop = task.LoopingCall(self.snapshot_all)
        self._loop.clock = reactor
        self._interval = snapshot_interval
        #: How many computations this worker took over from a snapshot.
        self.restored = 0

    def graphs(self):
        """``{computation: Graph}`` of what runs here."""
        return {name: running.graph for name, running in self.running.items()}

    def start(self):
        self._loop.start(self._interval, now=False)

    def stop(self):
        if self._loop.running:
            self._loop.stop()
        for name in list(self.running):
            self.revoked(name)

    def _in_thread(self, function, *args):
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), function, *args)

    def assigned(self, assignment):
        d = defer.ensureDeferred(self._start(assignment))
        d.addErrback(lambda f: log.failure("{computation}: could not start", f,
                                           computation=assignment.computation))

    async def _start(self, assignment):
        from ..graph import Graph
        from ..pipeline import build, check_text

        name = assignment.computation
        kvs, _ = await self._coordinator.range(f"{self.prefix}computations/{name}")
        spec = [kv for kv in kvs if kv.key == f"{self.prefix}computations/{name}"]
        if not spec:
            raise LookupError(f"computation {name!r} has no spec in the coordinator")
        text = json.loads(spec[0].value)["pipeline"]
        state = await self._in_thread(self._store.take_over, name, assignment.revision)
        if state is not None and all(entry["ended"] for entry in state["blocks"].values()):
            log.info("{computation}: already finished (revision {revision})",
                     computation=name, revision=assignment.revision)
            return
        graph = Graph(self._reactor)
        graph.cluster = ClusterContext(name, assignment.revision, self._store)
        build(check_text(text, filename=name), graph)
        if state is not None:
            restore(graph, state)
            self.restored += 1
        running = _Running(graph, assignment.revision)
        self.running[name] = running
        log.info("{computation}: running (revision {revision}{restored})", computation=name,
                 revision=assignment.revision, restored=", restored" if state else "")
        graph.done().addCallbacks(lambda _: self._finished(name, running),
                                  lambda f: self._failed(name, running, f))

    def _finished(self, name, running):
        running.finished = True
        if not running.graph.cluster.active:
            return
        # A last snapshot, so that a takeover does not redo a finished computation.
        d = defer.ensureDeferred(self._snapshot(name, running, force=True))
        d.addErrback(lambda f: log.failure("{computation}: final snapshot failed", f,
                                           computation=name))

    def _failed(self, name, running, failure):
        log.failure("{computation}: failed", failure, computation=name)
        if self.running.get(name) is running:
            del self.running[name]

    def revoked(self, name):
        running = self.running.pop(name, None)
        if running is not None:
            log.info("{computation}: moved away, stopping it here", computation=name)
            running.graph.cluster.active = False
            running.graph.stop()

    def snapshot_all(self):
        return defer.DeferredList([
            defer.ensureDeferred(self._snapshot(name, running))
            for name, running in list(self.running.items()) if not running.finished])

    async def _snapshot(self, name, running, force=False):
        if running.saving or not running.graph.cluster.active or not (
                force or quiescent(running.graph)):
            return
        state = capture(running.graph)
        running.saving = True
        try:
            for sink in running.graph.sinks:
                wait = getattr(sink, "wait_written", None)
                if wait is not None:
                    await wait()
            try:
                running.state_bytes = await self._in_thread(
                    self._store.save_snapshot, name, running.revision, state)
            except Fenced as error:
                log.warn("{computation}: {why}; stopping here", computation=name, why=error)
                if self.running.get(name) is running:
                    self.revoked(name)
                return
            running.snapshots += 1
            running.snapshot_at = self._reactor.seconds()
        finally:
            running.saving = False
