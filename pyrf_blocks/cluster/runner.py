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
    #: Where other computations run (:class:`~pyrf_blocks.cluster.edges.Directory`),
    #: for the ``cluster_input`` blocks, and the token that workers want.
    directory: object = None
    token: str = None


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
    force_next: bool = False


class Runner:
    """
    Runs the computations a :class:`~pyrf_blocks.cluster.membership.Member`
    is given: pass :meth:`assigned` and :meth:`revoked` as its callbacks.

    :param reactor: the worker's reactor.
    :param coordinator: where the computations' specs are.
    :param store: the :class:`~pyrf_blocks.cluster.store.ClusterStore`.
    :param snapshot_interval: seconds between snapshots of a computation.
    :param token: the bearer token of the cluster's workers (for reading
        other computations' outputs from them).

    It serves the ``cluster_output`` blocks of what runs here to the
    ``cluster_input`` blocks of other computations
    (:class:`~pyrf_blocks.cluster.edges.Served`, under a worker's
    ``/computations/``); set :attr:`member` so that it stops serving as
    soon as the member's lease may have lapsed.
    """

    def __init__(self, reactor, coordinator, store, prefix="/pyrf/", snapshot_interval=1.0,
                 token=None):
        from .edges import Directory, Served

        self._reactor, self._coordinator, self._store = reactor, coordinator, store
        self.prefix = prefix
        self.running = {}
        self.token = token
        self.directory = Directory(coordinator, reactor, prefix)
        #: The routes a worker serves under ``/computations/``.
        self.served = Served(self)
        #: The worker's :class:`~pyrf_blocks.cluster.membership.Member`, once joined.
        self.member = None
        #: ``{computation: (revision, {block: Retention})}`` of finished
        #: computations whose outputs are still served from their snapshot.
        self.finished_outputs = {}
        #: ``{computation: revision}`` assigned here and not revoked since.
        self._wanted = {}
        self._loop = task.LoopingCall(self.snapshot_all)
        self._loop.clock = reactor
        self._interval = snapshot_interval
        #: How many computations this worker took over from a snapshot.
        self.restored = 0
        self._specs = {}  # computation -> pipeline text, followed by a watch
        self._following = None
        self._spec_follower = self._new_spec_follower()

    def graphs(self):
        """``{computation: Graph}`` of what runs here."""
        return {name: running.graph for name, running in self.running.items()}

    def start(self):
        self._loop.start(self._interval, now=False)

    def stop(self):
        if self._loop.running:
            self._loop.stop()
        for name in set(self.running) | set(self.finished_outputs):
            self.revoked(name)
        self.directory.stop()
        self._spec_follower.stop()

    def _follow_specs(self):
        """
        A Deferred that fires once the computations' specs are read and
        followed: a consumer added to the cluster later is expected by the
        producers running here from then on (:meth:`_specs_changed`), also
        after the coordinator ended the watch.
        """
        if self._following is None:
            self._following = self._spec_follower.start()

            def failed(failure):
                self._following = None  # the next computation started tries again
                self._spec_follower = self._new_spec_follower()
                return failure
            self._following.addErrback(failed)
        return self._following

    def _new_spec_follower(self):
        from .follow import Follower

        return Follower(self._coordinator, self._reactor, f"{self.prefix}computations/",
                        self._specs_changed)

    def _specs_changed(self, events):
        from .edges import consumers_of

        prefix = f"{self.prefix}computations/"
        gone = []
        for event in events:
            name = event.kv.key[len(prefix):]
            if event.kind == "put":
                try:
                    self._specs[name] = json.loads(event.kv.value)["pipeline"]
                except (ValueError, KeyError, TypeError):
                    continue  # not a pipeline spec: reads nothing
            else:
                self._specs.pop(name, None)
                gone.append(name)
        for name in set(self.running) | set(self.finished_outputs):
            served = self.serving(name)
            if served is None:
                continue
            consumers = consumers_of(self._specs, name)
            for block, retention in served[1].items():
                for computation in gone:
                    retention.forget(computation)
                retention.expect(consumers.get(block, ()))

    def serving(self, name):
        """
        ``(revision, {block: Retention})`` of the ``cluster_output`` blocks
        of computation ``name`` served here, or None when it does not run here.
        """
        from .edges import cluster_output

        running = self.running.get(name)
        if running is not None and running.graph.cluster.active:
            return running.revision, {
                block.name: block.retention for block in list(running.graph.blocks.values())
                if isinstance(block, cluster_output) and block.retention is not None}
        return self.finished_outputs.get(name)

    def lease_stale(self):
        """
        Why this worker must not serve its computations now (its lease may
        have lapsed: not renewed for longer than its ttl), or None.
        """
        lease = getattr(self.member, "lease", None)
        if lease is None:
            return None
        if lease.lost.called:
            return "this worker lost its lease"
        if lease.renewed_at is not None:
            age = self._reactor.seconds() - lease.renewed_at
            if age > lease.ttl:
                return (f"this worker's lease was last renewed {age:.1f} s ago "
                        f"(ttl {lease.ttl:g} s)")
        return None

    def _in_thread(self, function, *args):
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), function, *args)

    def assigned(self, assignment):
        self._wanted[assignment.computation] = assignment.revision
        d = defer.ensureDeferred(self._start(assignment))
        d.addErrback(lambda f: log.failure("{computation}: could not start", f,
                                           computation=assignment.computation))

    async def _start(self, assignment):
        from ..graph import Graph
        from ..pipeline import build, check_text

        from .edges import cluster_output, consumers_of

        name = assignment.computation
        prefix = f"{self.prefix}computations/"
        kvs, _ = await self._coordinator.range(prefix)
        specs = {kv.key[len(prefix):]: json.loads(kv.value)["pipeline"] for kv in kvs}
        if name not in specs:
            raise LookupError(f"computation {name!r} has no spec in the coordinator")
        text = specs[name]
        # Who reads this computation's cluster_outputs: their chunks are
        # kept until each of those has acknowledged them.
        consumers = consumers_of(specs, name)
        await self.directory.start()
        await self._follow_specs()
        if not self._still_wanted(assignment):
            return
        state = await self._in_thread(self._store.take_over, name, assignment.revision)
        if not self._still_wanted(assignment):
            return
        if state is not None and all(entry["ended"] for entry in state["blocks"].values()):
            log.info("{computation}: already finished (revision {revision})",
                     computation=name, revision=assignment.revision)
            self._serve_finished(name, assignment.revision, state, consumers)
            return
        graph = Graph(self._reactor)
        graph.cluster = ClusterContext(name, assignment.revision, self._store,
                                       directory=self.directory, token=self.token)
        build(check_text(text, filename=name), graph)
        if state is not None:
            restore(graph, state)
            self.restored += 1
        for block in graph.blocks.values():
            if isinstance(block, cluster_output):
                block.retention.expect(consumers.get(block.name, ()))
        running = _Running(graph, assignment.revision)
        self.running[name] = running
        log.info("{computation}: running (revision {revision}{restored})", computation=name,
                 revision=assignment.revision, restored=", restored" if state else "")
        graph.done().addCallbacks(lambda _: self._finished(name, running),
                                  lambda f: self._failed(name, running, f))

    def _still_wanted(self, assignment):
        return self._wanted.get(assignment.computation) == assignment.revision

    def _serve_finished(self, name, revision, state, consumers):
        """
        Serve what the ``cluster_output`` blocks of a finished computation
        still keep for their consumers, from its last snapshot.
        """
        from .edges import Retention

        outputs = {}
        for block, entry in state["blocks"].items():
            kept = entry.get("state")
            if isinstance(kept, dict) and "retention" in kept:
                retention = Retention(f"cluster_output {block!r} of {name!r}",
                                      kept["retention"]["kind"], self._reactor)
                retention.restore(kept["retention"])
                retention.expect(consumers.get(block, ()))
                outputs[block] = retention
        if outputs:
            self.finished_outputs[name] = (revision, outputs)

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
        self._wanted.pop(name, None)
        served = self.serving(name)
        self.finished_outputs.pop(name, None)
        running = self.running.pop(name, None)
        if served is not None:
            for retention in served[1].values():
                retention.close(f"computation {name!r} moved away from this worker")
        if running is not None:
            log.info("{computation}: moved away, stopping it here", computation=name)
            running.graph.cluster.active = False
            running.graph.stop()

    def snapshot_all(self):
        return defer.DeferredList([
            defer.ensureDeferred(self._snapshot(name, running))
            for name, running in list(self.running.items()) if not running.finished])

    async def _snapshot(self, name, running, force=False):
        if force and running.saving:
            # The last snapshot (the graph is done) must not be lost to a
            # periodic one in progress: it follows it.
            running.force_next = True
            return
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
            # Durable: the inputs read from other computations acknowledge
            # what this snapshot covers, so their producers can let it go.
            for block_name, entry in state["blocks"].items():
                saved = getattr(running.graph.blocks.get(block_name), "snapshot_saved", None)
                if saved is not None:
                    saved(entry)
        finally:
            running.saving = False
        if running.force_next:
            running.force_next = False
            await self._snapshot(name, running, force=True)
