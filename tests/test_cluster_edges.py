"""
Edges between computations, in one process: a producer's cluster_output
keeps every chunk until its consumers' snapshots covering it are durable,
serves them again from its own snapshot after a move, and a consumer on
another worker reads it through the coordinator's assignments — with the
results equal to one uninterrupted graph's whichever side moves.
"""

import json
import sqlite3

import msgpack
import pytest
from twisted.internet import defer, threads
from twisted.internet.task import Clock

from pyrf_blocks.cluster.assignment import Assignments
from pyrf_blocks.cluster.edges import (Directory, Retention, cluster_input, cluster_output,
                                       consumers_of)
from pyrf_blocks.cluster.membership import Member
from pyrf_blocks.cluster.memory import InProcessCoordinator
from pyrf_blocks.cluster.runner import ClusterContext, Runner
from pyrf_blocks.cluster.store import ClusterStore
from pyrf_blocks.graph import Graph
from pyrf_blocks.interfaces import ISink, IStateful
from pyrf_blocks.net.worker import Worker
from pyrf_blocks.pipeline import build, check_text
from pyrf_blocks.testing import assert_provides, new_reactor, run_until

from cluster_real import CONSUMER, PRODUCER, REFERENCE, rows



def reference(tmp_path, count):
    """The consumer's results from one uninterrupted graph."""
    path = tmp_path / "reference.sqlite"
    text = REFERENCE.format(count=count, paced="false",
                            store=f"path: {path}, computation: stats")
    build(check_text(text), Graph()).run()
    return rows(path, "stats")


# Retention and acknowledgement, without a network.

def test_retention_keeps_until_every_consumer_acknowledges():
    """Chunks are dropped only up to the lowest acknowledgement; unknown consumers change nothing."""
    retention = Retention("out", "real", Clock(), max_chunks=4)
    retention.expect(["a/in", "b/in"])
    for seq in range(5):
        retention.add(seq, b"x%d" % seq)
    assert retention.full and [s for s, _ in retention.entries] == [0, 1, 2, 3, 4]
    retention.acknowledge("a/in", 3)
    assert len(retention.entries) == 5 and retention.waiting_for() == ["b/in"]
    retention.acknowledge("stranger/in", 4)
    retention.acknowledge("b/in", 1)
    assert [s for s, _ in retention.entries] == [2, 3, 4] and retention.trimmed == 1
    released = []
    retention.on_release = lambda: released.append(True)
    retention.acknowledge("b/in", 2)
    assert released and retention.below_half
    retention.acknowledge("a/in", 2)  # going back changes nothing
    assert retention.acked == {"a/in": 3, "b/in": 2}


def test_retention_state_round_trips_and_skips_regenerated_chunks():
    """A restored retention holds the same chunks; chunks regenerated after its cut are kept once."""
    first = Retention("out", "real", Clock())
    first.expect(["c/in"])
    for seq in range(4):
        first.add(seq, b"%d" % seq)
    first.acknowledge("c/in", 1)
    state = first.state()
    for seq in range(4, 6):
        first.add(seq, b"%d" % seq)
    second = Retention("out", "real", Clock())
    second.restore(msgpack.unpackb(msgpack.packb(state, use_bin_type=True)))
    second.expect(["c/in"])
    for seq in range(2, 6):  # the restored sources emit 4, 5 again; 2, 3 are kept already
        second.add(seq, b"%d" % seq)
    assert list(second.entries) == list(first.entries)
    assert second.acked == {"c/in": 1}


def test_a_producer_without_consumers_keeps_nothing():
    """No computation reads it: nothing is retained, so nothing stalls."""
    retention = Retention("out", "real", Clock())
    retention.expect([])
    retention.add(0, b"a")
    assert not retention.entries and retention.trimmed == 0


def test_consumers_are_found_in_the_specs():
    """Every cluster_input naming the producer is one of its consumers, by computation/block."""
    specs = {"power": PRODUCER.format(count=1, paced="true", retained=10),
             "stats": CONSUMER.format(store=""),
             "other": "version: 1\nblocks: {x: {type: cluster_input, params: "
                      "{computation: elsewhere, output: o}}}\n"}
    assert consumers_of(specs, "power") == {"power_out": ["stats/P"]}
    assert consumers_of(specs, "stats") == {}


def test_the_edge_blocks_provide_their_interfaces():
    """cluster_output is a stateful sink, cluster_input a stateful producer; both validate in files."""
    check_text(PRODUCER.format(count=1, paced="true", retained=10))
    check_text(CONSUMER.format(store=""))
    clock = Clock()
    graph = Graph(clock)
    graph.cluster = ClusterContext("stats", 1, None,
                                   directory=Directory(InProcessCoordinator(clock), clock))
    source = cluster_input(computation="power", output="power_out", graph=graph)
    out = cluster_output(source, graph=graph)
    assert_provides(IStateful, out)
    assert_provides(ISink, out)
    assert_provides(IStateful, source)
    with pytest.raises(ValueError, match="computation and output"):
        cluster_input(computation="", output="x", graph=graph)


def test_a_cluster_input_outside_a_cluster_fails_its_graph_saying_so(tmp_path):
    """Run alone (pyrf-blocks run), a cluster_input fails the graph with a one-line reason."""
    clock = Clock()
    store = tmp_path / "alone.sqlite"
    graph = build(check_text(CONSUMER.format(store=f"path: {store}")), Graph(clock))
    clock.advance(0)
    failure = graph.done()
    with pytest.raises(RuntimeError, match="runs only in a computation that a cluster"):
        failure.result.raiseException()
    failure.addErrback(lambda _: None)


# Two workers in one process, over loopback HTTP, on the in-process coordinator.

class Cluster:
    def __init__(self, reactor, tmp_path, names=("w1", "w2"), etcd=None):
        from pyrf_blocks.cluster import coordinator as coordinator_for

        self.reactor = reactor
        self.coordinator = (InProcessCoordinator(reactor) if etcd is None
                            else coordinator_for(etcd.url, reactor))
        self.store = ClusterStore(tmp_path / "cluster.sqlite")
        self.assignments = Assignments(self.coordinator)
        self.names = names
        self.workers = {}

    async def start(self, specs):
        for name, text in specs.items():
            await self.put_spec(name, text)
        for name in self.names:
            await self.join(name)

    async def put_spec(self, name, text):
        await self.coordinator.put(f"/pyrf/computations/{name}",
                                   json.dumps({"pipeline": text}).encode())

    async def start_producer(self, dropped):
        """
        Start power, read by nobody, on w1; return a function giving its
        retention, once that has dropped the seqs up to ``dropped``.
        """
        await self.start({"power": PRODUCER.format(count=COUNT, paced="true", retained=1000)})
        await self.move("power", "w1")
        w1 = self.runner("w1")
        retention = lambda: w1.serving("power")[1]["power_out"]  # noqa: E731
        await until(self.reactor, lambda: w1.serving("power") and retention().trimmed >= dropped)
        return retention

    async def join(self, name):
        worker = Worker(Graph(self.reactor, isolate_failures=True))
        port = await worker.listen("tcp:0:interface=127.0.0.1", self.reactor)
        runner = Runner(self.reactor, self.coordinator, self.store, snapshot_interval=0.05)
        address = f"http://127.0.0.1:{port.getHost().port}"
        member = Member(self.coordinator, self.reactor, name, address, runner.assigned,
                        runner.revoked, ttl=30)
        runner.member = member
        worker.computations = runner.served
        await member.join()
        runner.start()
        self.workers[name] = (worker, port, runner, member)

    async def move(self, computation, worker):
        current, _ = await self.assignments.read()
        held = current.get(computation)
        return await self.assignments.move(computation, worker, held.revision if held else 0)

    def runner(self, name):
        return self.workers[name][2]

    async def stop(self):
        for worker, port, runner, member in self.workers.values():
            await member.leave()
            runner.stop()
            await port.stopListening()
        self.store.close()
        if hasattr(self.coordinator, "close"):
            await self.coordinator.close()


def sleep(reactor, seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def until(reactor, predicate, timeout=15.0, interval=0.02):
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError(f"not true after {timeout} s: {predicate.__doc__}")
        await sleep(reactor, interval)
        waited += interval
    return predicate()


COUNT = 60  # 20 ms chunks, paced: 1.2 s of device time
#: A consumer that starts from the oldest chunk its producer still keeps.
EARLIEST = CONSUMER.replace("output: power_out}}", "output: power_out, start: earliest}}")


def scenario(tmp_path, moves, retained=1000, timeout=40.0):
    """
    Run power on w1 and stats on w2, doing ``moves`` — ``[(after chunks
    stored, computation, to worker)]`` — on the way; return the stats
    results and, per worker, how many computations it restored and what
    it serves of the producer.
    """
    reactor = new_reactor()
    cluster = Cluster(reactor, tmp_path)
    specs = {"power": PRODUCER.format(count=COUNT, paced="true", retained=retained),
             "stats": CONSUMER.format(store="")}
    stored = lambda: len(rows(tmp_path / "cluster.sqlite", "stats"))  # noqa: E731

    async def run():
        try:
            await cluster.start(specs)
            await cluster.move("power", "w1")
            await cluster.move("stats", "w2")
            for after, computation, worker in moves:
                await until(reactor, lambda: stored() >= after)
                await cluster.move(computation, worker)
            await until(reactor, lambda: any(
                getattr(r.running.get("stats"), "finished", False)
                for r in map(cluster.runner, cluster.names)), timeout=timeout - 5)
            # The consumer's last snapshot, and its acknowledgement, come
            # once its graph is done: the producer then keeps nothing.
            def drained():
                """the producer's retention drains"""
                served = [r.serving("power") for r in map(cluster.runner, cluster.names)]
                return any(s and not s[1]["power_out"].entries
                           and s[1]["power_out"].ended for s in served)
            await until(reactor, drained, timeout=5)
            return {name: (cluster.runner(name).restored,
                           cluster.runner(name).serving("power"),
                           stalls(cluster.runner(name))) for name in cluster.names}
        finally:
            await cluster.stop()
    runners = run_until(reactor, defer.ensureDeferred(run()), timeout=timeout)
    return rows(tmp_path / "cluster.sqlite", "stats"), runners


def finished_snapshot(path, computation):
    """the last snapshot of ``computation`` says every block ended"""
    with sqlite3.connect(path, timeout=30) as db:
        row = db.execute("SELECT state FROM snapshots WHERE computation = ?",
                         (computation,)).fetchone()
    return row is not None and all(
        entry["ended"] for entry in msgpack.unpackb(row[0])["blocks"].values())


def stalls(runner):
    """How often the producer's cluster_output running on ``runner`` stalled."""
    running = runner.running.get("power")
    return 0 if running is None else running.graph.blocks["power_out"].stalls


def compare(expected, got):
    lost = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    different = sorted(k for k in got if k in expected and got[k] != expected[k])
    assert not (lost or extra or different), (
        f"lost {len(lost)} {lost[:5]}, extra {len(extra)} {extra[:5]}, "
        f"different {len(different)} {different[:5]}")


@pytest.mark.parametrize("retained", [1000, 3])
def test_a_consumer_on_another_worker_gets_exactly_the_producers_stream(tmp_path, retained):
    """Producer on w1, consumer on w2 (retention roomy, or full and stalling): results equal one graph's."""
    got, runners = scenario(tmp_path, [], retained=retained)
    compare(reference(tmp_path, COUNT), got)
    retention = runners["w1"][1][1]["power_out"]
    assert retention.acked == {"stats/P": retention.newest} and not retention.entries
    assert retention.newest == COUNT - 1
    assert (runners["w1"][2] > 0) == (retained < 10)


def test_moving_the_consumer_and_then_the_producer_loses_and_repeats_nothing(tmp_path):
    """The consumer moves to w1, then the producer to w2, mid-stream: results equal one graph's."""
    got, runners = scenario(tmp_path, [(6, "stats", "w1"), (14, "power", "w2")])
    compare(reference(tmp_path, COUNT), got)
    assert runners["w1"][0] >= 1 and runners["w2"][0] >= 1


def test_a_worker_serves_a_computation_only_as_its_fresh_owner(tmp_path):
    """Reads name the revision; a wrong one is 409, a stale lease 503, a dropped cursor 410, elsewhere 404."""
    from twisted.web.client import HTTPConnectionPool

    from pyrf_blocks.net.connections import new_client

    reactor = new_reactor()
    cluster = Cluster(reactor, tmp_path)
    specs = {"power": PRODUCER.format(count=20, paced="false", retained=100),
             "stats": CONSUMER.format(store="")}
    client = new_client(reactor, pool=HTTPConnectionPool(reactor, persistent=False))

    async def get(worker, query):
        address = f"http://127.0.0.1:{cluster.workers[worker][1].getHost().port}"
        response = await client.get(f"{address}/computations/power/outputs/power_out?{query}",
                                    reactor=reactor, timeout=10)
        return response.code, await response.content()

    async def run():
        try:
            await cluster.start(specs)
            assignment = await cluster.move("power", "w1")
            served = lambda: cluster.runner("w1").serving("power")  # noqa: E731
            await until(reactor, lambda: served() and served()[1]["power_out"].ended)
            retention = served()[1]["power_out"]
            # The consumer (stats/P) is not running: everything is kept for it.
            assert [seq for seq, _ in retention.entries] == list(range(20))
            rev = assignment.revision
            code, body = await get("w1", f"after=4&wait=0&revision={rev}")
            assert code == 200 and len(body) > 0
            code, body = await get("w1", f"after=-1&wait=0&revision={rev + 1}")
            assert code == 409 and b"runs here at revision" in body
            code, body = await get("w2", "after=-1&wait=0")
            assert code == 404 and b"does not run on this worker" in body
            code, _ = await get("w1", f"after=9&wait=0&consumer=stats/P&ack=9&revision={rev}")
            assert code == 200 and retention.entries[0][0] == 10
            code, body = await get("w1", "after=3&wait=0")
            assert code == 410 and b"dropped" in body
            lease = cluster.workers["w1"][3].lease
            lease.renewed_at = reactor.seconds() - 100
            code, body = await get("w1", "after=9&wait=0")
            assert code == 503 and b"lease" in body
        finally:
            await cluster.stop()
    run_until(reactor, defer.ensureDeferred(run()), timeout=30)


def test_a_finished_producer_that_moved_still_serves_what_it_kept(tmp_path):
    """The producer finishes and moves before its consumer starts: the new owner serves its snapshot's chunks."""
    from pyrf_blocks.cluster.edges import EdgeCollector

    reactor = new_reactor()
    cluster = Cluster(reactor, tmp_path)
    specs = {"power": PRODUCER.format(count=COUNT, paced="false", retained=1000),
             "stats": CONSUMER.format(store="")}

    async def run():
        try:
            await cluster.start(specs)
            await cluster.move("power", "w1")
            w1 = cluster.runner("w1")
            await until(reactor, lambda: finished_snapshot(tmp_path / "cluster.sqlite", "power"))
            await cluster.move("power", "w2")
            w2 = cluster.runner("w2")
            await until(reactor, lambda: "power" in w2.finished_outputs)
            assert "power" not in w2.running  # not run again: served from the snapshot
            await cluster.move("stats", "w1")
            await until(reactor, lambda: getattr(w1.running.get("stats"), "finished", False))
            retention = w2.finished_outputs["power"][1]["power_out"]
            await until(reactor, lambda: not retention.entries)
            metrics = {m.name: m.samples for m in EdgeCollector(w2).collect()}
            assert metrics["pyrf_cluster_output_retained_chunks"][0].value == 0
            assert metrics["pyrf_cluster_output_acknowledged_seq"][0].value == COUNT - 1
            reading = {m.name: m.samples for m in EdgeCollector(w1).collect()}
            assert reading["pyrf_cluster_input_seq"][0].value == COUNT - 1
        finally:
            await cluster.stop()
    run_until(reactor, defer.ensureDeferred(run()), timeout=30)
    compare(reference(tmp_path, COUNT), rows(tmp_path / "cluster.sqlite", "stats"))


def test_a_consumer_added_after_its_producer_started_fails_or_starts_where_it_asks(tmp_path):
    """On a real etcd: a consumer added to the cluster after its producer dropped chunks: by default it fails with a 410 that says how to start; with start: earliest it reads from the oldest chunk kept, and the producer keeps everything after for it; start: latest starts at the newest."""
    from pyrf_blocks.cluster.edges import STARTS_AFTER, EdgeCollector
    from twisted.web.client import HTTPConnectionPool

    from pyrf_blocks.net.connections import new_client

    from pyrf_blocks.testing.servers import EtcdServer

    etcd = EtcdServer(tmp_path).start()
    reactor = new_reactor()
    cluster = Cluster(reactor, tmp_path, etcd=etcd)
    client = new_client(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    added = {"stats": CONSUMER.format(store=""), "late": EARLIEST.format(store="")}

    async def get(query):
        address = f"http://127.0.0.1:{cluster.workers['w1'][1].getHost().port}"
        response = await client.get(f"{address}/computations/power/outputs/power_out?{query}",
                                    reactor=reactor, timeout=10)
        return response.code, response.headers, await response.content()

    async def run():
        try:
            retention = await cluster.start_producer(dropped=9)
            w2 = cluster.runner("w2")
            assert not retention().entries and not retention().acked  # read by nobody
            for name, text in added.items():
                await cluster.put_spec(name, text)
            # Followed in the specs: kept for both from now on.
            await until(reactor, lambda: set(retention().acked) == {"stats/P", "late/P"})
            dropped = retention().trimmed
            await cluster.move("stats", "w2")
            await cluster.move("late", "w2")
            await until(reactor, lambda: getattr(w2.running.get("late"), "finished", False),
                        timeout=20)
            assert "stats" not in w2.running  # failed: its first read was 410
            code, _, body = await get("after=-1&wait=0&consumer=stats/P")
            assert code == 410 and b"start: earliest" in body and b"stats/P" in body, body
            await until(reactor, lambda: retention().acked["late/P"] == COUNT - 1)  # its last snapshot
            reading = {m.name: m.samples for m in EdgeCollector(w2).collect()}
            assert reading["pyrf_cluster_input_seq"][0].value == COUNT - 1
            code, headers, _ = await get("after=-1&wait=0&start=latest&consumer=probe/P")
            assert code == 204 and headers.getRawHeaders(STARTS_AFTER) == [b"%d" % (COUNT - 1)]
            code, _, body = await get("after=-1&wait=0&start=soon")
            assert code == 400 and b"earliest" in body
            return dropped
        finally:
            await cluster.stop()
    try:
        dropped = run_until(reactor, defer.ensureDeferred(run()), timeout=40)
    finally:
        etcd.stop()
    assert dropped >= 9
    assert rows(tmp_path / "cluster.sqlite", "late")  # it ran to the end, with no gap
    assert not rows(tmp_path / "cluster.sqlite", "stats")


def test_a_consumer_whose_spec_is_deleted_is_no_longer_waited_for():
    """Retention.forget drops a removed computation's consumers and what only they held."""
    retention = Retention("out", "real", Clock())
    retention.expect(["a/P", "b/P"])
    for seq in range(5):
        retention.add(seq, b"x")
    retention.acknowledge("a/P", 3)
    assert [seq for seq, _ in retention.entries] == list(range(5))
    retention.forget("b")
    assert retention.acked == {"a/P": 3} and [seq for seq, _ in retention.entries] == [4]


def test_a_directory_finds_a_producer_assigned_after_etcd_restarted(tmp_path):
    """On a real etcd stopped and started again: a Directory started before finds the owner of a computation assigned (and a worker registered) after the restart."""
    from pyrf_blocks.cluster import coordinator as coordinator_for
    from pyrf_blocks.testing.servers import EtcdServer

    etcd = EtcdServer(tmp_path).start()
    reactor = new_reactor()
    coordinator = coordinator_for(etcd.url, reactor)
    directory = Directory(coordinator, reactor)

    async def run():
        try:
            await directory.start()
            await coordinator.put("/pyrf/members/w1", b'{"address": "http://w1"}')
            await until(reactor, lambda: "w1" in directory.addresses)
            pool = reactor.getThreadPool()  # the reactor runs while etcd restarts
            await threads.deferToThreadPool(reactor, pool, etcd.stop)
            await threads.deferToThreadPool(reactor, pool, etcd.start)
            await coordinator.put("/pyrf/members/w2", b'{"address": "http://w2"}')
            revision = await coordinator.put("/pyrf/assign/power", b'{"worker": "w2"}')
            owner = await directory.owner("power")
            return owner, revision
        finally:
            directory.stop()
            await coordinator.close()
            reactor.getThreadPool().stop()
    try:
        owner, revision = run_until(reactor, defer.ensureDeferred(run()), timeout=20)
    finally:
        etcd.stop()
    assert (owner.worker, owner.address, owner.revision) == ("w2", "http://w2", revision)


def test_a_producer_expects_a_consumer_added_after_the_coordinator_ended_its_watches(tmp_path):
    """The in-process coordinator ends every watch (as a restarted etcd does); a consumer spec added afterwards is still expected by the running producer, and a computation assigned afterwards still starts and reads it to the end."""
    reactor = new_reactor()
    cluster = Cluster(reactor, tmp_path)

    async def run():
        try:
            retention = await cluster.start_producer(dropped=2)
            w2 = cluster.runner("w2")
            cluster.coordinator.end_watches("restarted")
            await cluster.put_spec("late", EARLIEST.format(store=""))
            await until(reactor, lambda: set(retention().acked) == {"late/P"})
            await cluster.move("late", "w2")
            await until(reactor, lambda: getattr(w2.running.get("late"), "finished", False),
                        timeout=20)
        finally:
            await cluster.stop()
    run_until(reactor, defer.ensureDeferred(run()), timeout=40)
    assert rows(tmp_path / "cluster.sqlite", "late")  # ran to the end, with no gap
