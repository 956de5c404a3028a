"""
Coordination of a cluster: the rebalancing rule, the coordinator contract on
both backends (a real etcd server and the in-process one), membership,
election, the manager and fencing.
"""

import socket
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, threads
from twisted.internet.task import Clock

from pyrf_blocks.cluster import coordinator as coordinator_for
from pyrf_blocks.cluster.assignment import Assignments, rebalance
from pyrf_blocks.cluster.election import leader
from pyrf_blocks.cluster.fencing import Fence
from pyrf_blocks.cluster.kv import Compare, Delete, Put, prefix_end
from pyrf_blocks.cluster.manager import Manager
from pyrf_blocks.cluster.membership import Member, members
from pyrf_blocks.cluster.memory import InProcessCoordinator
from pyrf_blocks.errors import CoordinatorError, Fenced
from pyrf_blocks.interfaces import ICoordinator
from pyrf_blocks.testing import assert_provides, new_reactor, run_until
from pyrf_blocks.testing.servers import EtcdServer, _ephemeral_ports, free_port


# The rule.

names = st.text("abcdefgh", min_size=1, max_size=3)


@st.composite
def layouts(draw):
    computations = draw(st.lists(names, unique=True, max_size=30))
    workers = draw(st.lists(names, unique=True, max_size=6))
    owners = {c: draw(st.one_of(st.none(), st.sampled_from(workers + ["gone"])))
              for c in computations}
    return owners, workers


@given(layouts())
@settings(max_examples=100, deadline=None)
def test_rebalance_gives_each_computation_one_live_worker_and_balances(layout):
    """Every computation lands on a live worker; loads differ by at most one."""
    owners, workers = layout
    result = rebalance(owners, workers)
    if not workers:
        assert result == {}
        return
    assert set(result) == set(owners)
    assert set(result.values()) <= set(workers)
    loads = [sum(1 for w in result.values() if w == worker) for worker in workers]
    assert max(loads) - min(loads) <= 1


@given(layouts())
@settings(max_examples=100, deadline=None)
def test_rebalance_is_sticky(layout):
    """Once balanced, rebalancing again moves nothing."""
    owners, workers = layout
    once = rebalance(owners, workers)
    assert rebalance(once, workers) == once


@given(st.integers(0, 40), st.integers(1, 6))
@settings(max_examples=200, deadline=None)
def test_a_joining_worker_takes_only_its_share(n, k):
    """Adding a worker to k balanced ones moves n // (k+1) computations or one more, all to it."""
    computations = {f"c{i}": None for i in range(n)}
    workers = [f"w{j}" for j in range(k)]
    before = rebalance(computations, workers)
    after = rebalance(before, workers + ["new"])
    moved = [c for c in before if before[c] != after[c]]
    assert all(after[c] == "new" for c in moved)
    assert n // (k + 1) <= len(moved) <= -(-n // (k + 1))


@given(st.integers(0, 40), st.integers(2, 6))
@settings(max_examples=200, deadline=None)
def test_a_leaving_worker_loses_only_its_own(n, k):
    """A worker that leaves moves its computations and nothing else."""
    workers = [f"w{j}" for j in range(k)]
    before = rebalance({f"c{i}": None for i in range(n)}, workers)
    after = rebalance(before, workers[1:])
    moved = {c for c in before if before[c] != after[c]}
    assert moved == {c for c, w in before.items() if w == "w0"}


def test_first_worker_takes_everything():
    """The seed's rule: one worker, all computations."""
    assert rebalance({"a": None, "b": None, "c": None}, ["w"]) == {"a": "w", "b": "w", "c": "w"}


def test_prefix_end_is_the_next_key():
    """The range end of a prefix is its last byte plus one."""
    assert prefix_end("/pyrf/") == b"/pyrf0"
    with pytest.raises(ValueError):
        prefix_end("")


# The test server itself.

def test_free_ports_are_drawn_below_the_range_of_outgoing_connections():
    """free_port draws bindable ports below net.ipv4.ip_local_port_range, where no connection another test opens can take them before the server binds."""
    low, _ = _ephemeral_ports()
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1 and all(1024 <= port < low for port in ports), ports
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", ports.pop()))


def test_an_etcd_port_taken_before_the_first_start_is_replaced(tmp_path):
    """etcd finding its client port taken (it exits: "address already in use") starts on other ports; a restart keeps its URL."""
    server = EtcdServer(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.client_port))
        taken.listen()
        old = server.url
        server.start()
        try:
            assert server.url != old
            assert b"address already in use" in (tmp_path / "etcd.log").read_bytes()
            url = server.url
            server.stop()
            server.start()  # the old failure in the log is not this start's
            assert server.url == url
        finally:
            server.stop()


# The coordinator contract, on both backends.

@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    """A real etcd server on loopback, for this module."""
    with EtcdServer(tmp_path_factory.mktemp("etcd")) as server:
        yield server


def on_backend(backend, etcd, scenario, timeout=20.0):
    """Run ``scenario(coordinator, clock, advance)`` on a backend; return its result."""
    reactor = new_reactor()
    if backend == "memory":
        clock = Clock()
        store = InProcessCoordinator(clock)

        async def advance(seconds):
            clock.advance(seconds)
    else:
        clock = reactor
        store = coordinator_for(etcd.url, reactor)

        async def advance(seconds):
            d = defer.Deferred()
            reactor.callLater(seconds, d.callback, None)
            await d

    async def run():
        try:
            return await scenario(store, clock, advance, f"/t{uuid.uuid4().hex[:8]}/")
        finally:
            await store.close()
    return run_until(reactor, defer.ensureDeferred(run()), timeout=timeout)


backends = pytest.mark.parametrize("backend", ["memory", "etcd"])


@backends
def test_coordinator_provides_its_interface(backend, etcd):
    """Both backends provide ICoordinator."""
    async def scenario(store, clock, advance, prefix):
        assert_provides(ICoordinator, store)
    on_backend(backend, etcd, scenario)


@backends
def test_txn_creates_a_key_only_once(backend, etcd):
    """A create-if-absent transaction succeeds for one caller only; revisions grow."""
    async def scenario(store, clock, advance, prefix):
        key = prefix + "owner"
        first = await store.txn([Compare(key, "create", 0)], [Put(key, b"a")])
        second = await store.txn([Compare(key, "create", 0)], [Put(key, b"b")])
        kvs, revision = await store.range(prefix)
        return first, second, kvs, revision
    first, second, kvs, revision = on_backend(backend, etcd, scenario)
    assert first[0] is True and second[0] is False
    assert [kv.value for kv in kvs] == [b"a"]
    assert kvs[0].mod_revision == first[1] <= revision


@backends
def test_txn_compares_mod_revision_and_value(backend, etcd):
    """A transaction on a stale mod revision takes the failure branch."""
    async def scenario(store, clock, advance, prefix):
        key = prefix + "k"
        r1 = await store.put(key, b"1")
        await store.put(key, b"2")
        stale = await store.txn([Compare(key, "mod", r1)], [Put(key, b"x")],
                                [Put(prefix + "lost", b"y")])
        fresh = await store.txn([Compare(key, "value", b"2")], [Delete(key)])
        kvs, _ = await store.range(prefix)
        return stale[0], fresh[0], {kv.key[len(prefix):]: kv.value for kv in kvs}
    stale, fresh, keys = on_backend(backend, etcd, scenario)
    assert (stale, fresh) == (False, True)
    assert keys == {"lost": b"y"}


@backends
def test_an_expired_lease_takes_its_keys(backend, etcd):
    """Keys under a lease that is not kept alive disappear; a kept one stays."""
    async def scenario(store, clock, advance, prefix):
        kept, dropped = await store.grant(2), await store.grant(2)
        await store.put(prefix + "kept", b"k", lease=kept)
        await store.put(prefix + "dropped", b"d", lease=dropped)
        for _ in range(6):
            await advance(0.6)
            assert await store.keepalive(kept) > 0
        kvs, _ = await store.range(prefix)
        return [kv.key[len(prefix):] for kv in kvs], await store.keepalive(dropped)
    keys, left = on_backend(backend, etcd, scenario)
    assert keys == ["kept"] and left == 0


@backends
def test_a_watch_sees_puts_and_deletes_in_order(backend, etcd):
    """A prefix watch reports each change once, in revision order, and stops when cancelled."""
    async def scenario(store, clock, advance, prefix):
        seen = []
        watch = await store.watch(prefix, lambda events: seen.extend(
            (e.kind, e.kv.key[len(prefix):], e.kv.value) for e in events))
        await store.put(prefix + "a", b"1")
        await store.put(prefix + "b", b"2")
        await store.put("/elsewhere" + prefix, b"3")
        await store.delete(prefix + "a")
        for _ in range(40):
            if len(seen) >= 3:
                break
            await advance(0.05)
        watch.cancel()
        await store.put(prefix + "c", b"4")
        await advance(0.2)
        return seen
    assert on_backend(backend, etcd, scenario) == [
        ("put", "a", b"1"), ("put", "b", b"2"), ("delete", "a", b"")]


def test_an_unreachable_etcd_is_a_coordinator_error():
    """A refused connection raises CoordinatorError naming the URL."""
    reactor = new_reactor()
    url = f"http://127.0.0.1:{free_port()}"
    store = coordinator_for(url, reactor)

    async def scenario():
        try:
            await store.put("/x", b"y")
        finally:
            await store.close()
    with pytest.raises(CoordinatorError, match=url):
        run_until(reactor, defer.ensureDeferred(scenario()))


def test_a_coordinator_url_is_checked():
    """Anything but http(s):// or memory: is refused with the accepted forms."""
    with pytest.raises(ValueError, match="memory:"):
        coordinator_for("etcd://x", Clock())


# Membership, manager, election, fencing.

class Cluster:
    """Members and managers on one coordinator, with what each member was told."""

    def __init__(self, store, clock, prefix):
        self.store, self.clock, self.prefix = store, clock, prefix
        self.members, self.owned = {}, {}

    async def join(self, worker):
        owned = self.owned.setdefault(worker, {})
        member = Member(self.store, self.clock, worker, f"http://{worker}",
                        on_assigned=lambda a: owned.__setitem__(a.computation, a.revision),
                        on_revoked=lambda c: owned.pop(c), ttl=2, prefix=self.prefix)
        await member.join()
        self.members[worker] = member
        return member

    def layout(self):
        return {c: w for w, owned in self.owned.items() for c in owned}


async def settle(advance, steps=20, step=0.1):
    for _ in range(steps):
        await advance(step)


async def settle_until(advance, condition, steps=20, step=0.1):
    """
    :func:`settle` that stops once ``condition()`` holds (on etcd, seconds
    of real time); the caller's assertions still decide.
    """
    for _ in range(steps):
        if condition():
            return
        await advance(step)


@backends
def test_manager_spreads_computations_and_moves_only_what_must_move(backend, etcd):
    """First worker takes all; a second takes half; a dead one's share goes to the others."""
    computations = {f"c{i}": {"blocks": []} for i in range(6)}

    async def scenario(store, clock, advance, prefix):
        cluster = Cluster(store, clock, prefix)
        manager = Manager(store, clock, "m1", computations, ttl=2, prefix=prefix)
        await manager.start()
        await cluster.join("w1")
        await settle_until(advance, lambda: len(cluster.layout()) == len(computations))
        first = dict(cluster.layout())
        await cluster.join("w2")
        await settle_until(advance, lambda: list(cluster.layout().values()).count("w2") == 3)
        second = dict(cluster.layout())
        # w1 dies: its lease is no longer renewed.
        cluster.members["w1"].lease._stop_loop()
        cluster.members["w1"]._stopping = True
        await settle(advance, steps=40)
        third = dict(cluster.layout())
        await manager.stop()
        await cluster.members["w2"].leave()
        return first, second, third, manager.moved
    first, second, third, moved = on_backend(backend, etcd, scenario, timeout=30)
    assert first == {c: "w1" for c in computations}
    assert sorted(second.values()).count("w2") == 3
    assert all(second[c] == "w1" for c in second if second[c] != "w2")
    # w1 was killed, not told: it still thinks it owns its three (the fence stops it).
    assert {c for c, w in third.items() if w == "w2"} == set(computations)
    assert moved == 3


def leader_dies(before_death=lambda store: None):
    """
    A scenario (for :func:`on_backend`): two managers start, m1 leads;
    ``before_death(store)`` is called, then m1 hangs (its lease lapses).
    It returns who led first, whether m2 leads at the end, the seconds it
    took for m2 to hold the key (up to 6), and what ``before_death``
    returned.
    """
    async def scenario(store, clock, advance, prefix):
        m1 = Manager(store, clock, "m1", {"c": {}}, ttl=2, prefix=prefix)
        m2 = Manager(store, clock, "m2", {"c": {}}, ttl=2, prefix=prefix)
        await m1.start()
        await m2.start()
        first = await leader(store, prefix)
        prepared = before_death(store)
        m1.election.lease._stop_loop()  # m1 hangs
        m1.election._resigned = True
        waited = 0.0
        while await leader(store, prefix) != "m2" and waited < 6:
            await advance(0.1)
            waited += 0.1
        leading = m2.election.leading
        await m2.stop()
        return first, leading, waited, prepared
    return scenario


@backends
def test_a_second_manager_takes_over_when_the_leader_dies(backend, etcd):
    """Two managers: one leads; when its lease lapses the other leads within a ttl."""
    first, leading, waited, _ = on_backend(backend, etcd, leader_dies(), timeout=30)
    assert first == "m1" and leading
    assert waited <= 2 + 1.5  # the ttl, plus etcd's expiry granularity


def fail_the_next_txn(store):
    """As :func:`fail_the_next_range`, for ``store.txn`` (a campaign's try for the key)."""
    failures = []
    transact = store.txn

    async def txn_failing_once(*args, **kwargs):
        if not failures:
            failures.append(args)
            raise CoordinatorError("etcd did not answer within 5 s (injected)")
        return await transact(*args, **kwargs)
    store.txn = txn_failing_once
    return failures


def test_a_standby_whose_try_for_the_key_failed_tries_again():
    """The leader dies and the standby's try for the key fails once (etcd slow a moment): it tries again, and leads within the ttl and a retry."""
    first, leading, waited, failures = on_backend(
        "memory", None, leader_dies(fail_the_next_txn), timeout=30)
    assert first == "m1"
    assert failures, "the injected failure was not met: the test proves nothing"
    assert leading
    assert waited <= 2 + 1.5


def test_fence_refuses_an_older_revision():
    """After a newer owner writes, the older owner's write is refused with both revisions."""
    fence = Fence()
    fence.admit("c1", 5)
    fence.admit("c1", 9)
    with pytest.raises(Fenced, match="revision 5 is older than 9"):
        fence.admit("c1", 5)
    fence.admit("c2", 1)
    assert fence.newest("c1") == 9


@backends
def test_a_paused_owner_is_fenced_after_takeover(backend, etcd):
    """A worker paused past its lease still thinks it owns its computation; its write is refused."""
    async def scenario(store, clock, advance, prefix):
        fence = Fence()
        cluster = Cluster(store, clock, prefix)
        manager = Manager(store, clock, "m", {"c": {}}, ttl=2, prefix=prefix)
        await manager.start()
        paused = await cluster.join("w1")
        await settle_until(advance, lambda: "c" in cluster.owned["w1"])
        old_revision = cluster.owned["w1"]["c"]
        fence.admit("c", old_revision)
        paused.lease._stop_loop()  # SIGSTOP: no heartbeats, no events handled
        paused._stopping = True
        paused._follower.stop()
        await cluster.join("w2")
        await settle_until(advance, lambda: "c" in cluster.owned["w2"], steps=40)
        new_revision = cluster.owned["w2"].get("c")
        fence.admit("c", new_revision)  # the new owner warms up and writes
        try:
            fence.admit("c", old_revision)  # SIGCONT: the old owner writes
            refused = False
        except Fenced:
            refused = True
        await manager.stop()
        await cluster.members["w2"].leave()
        return old_revision, new_revision, refused, "c" in cluster.owned["w1"]
    old, new, refused, still_believes = on_backend(backend, etcd, scenario, timeout=30)
    assert new is not None and new > old
    assert refused and still_believes


def test_members_lists_the_live_workers(clock):
    """members() reads the registrations; leave() removes one at once."""
    store = InProcessCoordinator(clock)
    results = []

    async def scenario():
        cluster = Cluster(store, clock, "/p/")
        await cluster.join("a")
        await cluster.join("b")
        results.append(sorted(await members(store, "/p/")))
        await cluster.members["a"].leave()
        results.append(sorted(await members(store, "/p/")))
    defer.ensureDeferred(scenario())
    assert results == [["a", "b"], ["b"]]


def test_assignments_move_is_exclusive(clock):
    """Two movers racing on one assignment revision: exactly one wins."""
    store = InProcessCoordinator(clock)
    assignments = Assignments(store, "/p/")
    outcomes = []

    async def scenario():
        first = await assignments.move("c", "w1", 0)
        outcomes.append(await assignments.move("c", "w2", first.revision))
        outcomes.append(await assignments.move("c", "w3", first.revision))
    defer.ensureDeferred(scenario())
    assert outcomes[0].worker == "w2" and outcomes[1] is None


def test_names_with_slashes_are_refused(clock):
    """Worker and computation names cannot escape their key prefix."""
    store = InProcessCoordinator(clock)
    with pytest.raises(ValueError, match="no '/'"):
        Member(store, clock, "a/b", "x", print, print)
    with pytest.raises(ValueError, match="no '/'"):
        Manager(store, clock, "m", {"../x": {}})


def test_election_leader_is_none_without_candidates(clock):
    """leader() is None on an empty cluster."""
    store = InProcessCoordinator(clock)
    out = []
    defer.ensureDeferred(leader(store)).addCallback(out.append)
    assert out == [None]



def test_worker_serves_metrics_of_its_blocks_and_edges(tmp_path):
    """GET /metrics on a real worker process lists a created block's chunk and row counters."""
    import json
    import subprocess
    import sys
    import urllib.request

    worker = subprocess.Popen([sys.executable, "-m", "pyrf_blocks.cli", "worker", "--listen",
                               "tcp:0:interface=127.0.0.1"], stdout=subprocess.PIPE, text=True)
    try:
        url = worker.stdout.readline().split()[-1]
        request = urllib.request.Request(
            url + "/blocks", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"type": "simulated_instrument", "name": "sim",
                             "params": {"paced": False, "count": 3}}).encode())
        urllib.request.urlopen(request, timeout=10).read()
        text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    finally:
        worker.terminate()
        worker.wait(10)
    assert 'pyrf_block_chunks_total{block="sim",graph="worker",output="main"} 0.0' in text
    assert "# TYPE pyrf_edge_queue_depth gauge" in text


def _stalled_lease(etcd, ttl, stall):
    """
    A lease of ``ttl`` s on the real etcd whose reactor is blocked for
    ``stall`` s (a long chunk, a starved process), then turns for 1.5 s:
    ``(lost, key still there, renewals)``.
    """
    import time

    from pyrf_blocks.cluster.lease import KeptLease

    reactor = new_reactor()
    store = coordinator_for(etcd.url, reactor)
    prefix = f"/t{uuid.uuid4().hex[:8]}/"

    async def sleep(seconds):
        d = defer.Deferred()
        reactor.callLater(seconds, d.callback, None)
        await d

    async def run():
        lease = KeptLease(store, reactor, ttl, "stalled")
        try:
            await store.put(prefix + "member", b"w", lease=await lease.grant())
            await sleep(ttl / 2)
            time.sleep(stall)  # the reactor does not turn
            await sleep(1.5)
            kvs, _ = await store.range(prefix)
            return lease.lost.called, bool(kvs), lease.renewals
        finally:
            lease._stop_loop()
            await store.close()
    return run_until(reactor, defer.ensureDeferred(run()), timeout=30)


@pytest.mark.chaos
def test_a_lease_outlives_a_reactor_stall_shorter_than_its_ttl(etcd):
    """A worker's reactor blocked for 3 s of a 3 s ttl keeps its lease: the renewals do not wait for the reactor (renewed on the reactor, it lapsed)."""
    lost, kept, renewals = _stalled_lease(etcd, ttl=3, stall=3.0)
    assert not lost and kept and renewals >= 4


@pytest.mark.chaos
def test_a_reactor_hung_for_longer_than_the_ttl_loses_its_lease(etcd):
    """A reactor that does not turn for a whole ttl is taken for hung: the renewals stop and its lease lapses within another ttl, as a dead worker's."""
    lost, kept, _ = _stalled_lease(etcd, ttl=1, stall=4.0)
    assert lost and not kept


# Watches that etcd ends.

async def _restart(backend, store, clock, etcd):
    """End the watches of ``store``: etcd is stopped and started again."""
    if backend == "memory":
        store.end_watches("restarted")
    else:
        pool = clock.getThreadPool()  # the reactor runs while etcd restarts
        await threads.deferToThreadPool(clock, pool, etcd.stop)
        await threads.deferToThreadPool(clock, pool, etcd.start)


@backends
def test_a_follower_reads_again_when_its_watch_ends_and_delivers_each_change_once(
        backend, tmp_path):
    """After etcd restarts (the in-process store ends its watches), a Follower reads the prefix again: the changes made meanwhile arrive as their difference, later ones through the new watch, each exactly once."""
    from pyrf_blocks.cluster.follow import Follower

    server = EtcdServer(tmp_path).start() if backend == "etcd" else None

    async def scenario(store, clock, advance, prefix):
        seen = []
        follower = Follower(store, clock, prefix, lambda events: seen.extend(
            (e.kind, e.kv.key[len(prefix):], e.kv.value) for e in events))

        async def settle(count):
            for _ in range(200):
                if len(seen) >= count:
                    break
                await advance(0.05)
            await advance(0.2)  # and nothing more comes

        await store.put(prefix + "a", b"1")
        await follower.start()
        await store.put(prefix + "b", b"2")
        await settle(2)
        await _restart(backend, store, clock, server)
        # Changed while nothing watches (the follower has not heard yet).
        await store.delete(prefix + "b")
        await store.put(prefix + "d", b"4")
        await settle(4)
        await store.put(prefix + "c", b"3")
        await store.put(prefix + "a", b"5")
        await settle(6)
        follower.stop()
        await store.put(prefix + "e", b"6")
        await advance(0.2)
        if backend == "etcd":
            clock.getThreadPool().stop()
        return seen, follower.resumed
    try:
        seen, resumed = on_backend(backend, server, scenario)
    finally:
        if server is not None:
            server.stop()
    assert seen == [("put", "a", b"1"), ("put", "b", b"2"),
                    ("delete", "b", b""), ("put", "d", b"4"),
                    ("put", "c", b"3"), ("put", "a", b"5")]
    assert resumed == 1


def test_an_etcd_watch_from_a_compacted_revision_ends_saying_so(etcd):
    """etcd cancels a watch from a compacted revision: its ended fires with the reason, no hang."""
    import subprocess

    async def scenario(store, clock, advance, prefix):
        for value in (b"1", b"2"):
            revision = await store.put(prefix + "a", value)
        subprocess.run(["etcdctl", "--endpoints", etcd.url, "compact", str(revision)],
                       check=True, capture_output=True)
        watch = await store.watch(prefix, lambda events: None, start_revision=1)
        return await watch.ended
    assert "compacted" in on_backend("etcd", etcd, scenario)


def fail_the_next_range(store):
    """
    Make the next ``store.range`` fail as etcd does when it does not answer
    in time (later ones read as usual); return the list that records the
    prefix it was asked for once it has failed.
    """
    failures = []
    reads = store.range

    async def range_failing_once(prefix):
        if not failures:
            failures.append(prefix)
            raise CoordinatorError("etcd did not answer within 5 s (injected)")
        return await reads(prefix)
    store.range = range_failing_once
    return failures


def test_a_reconcile_that_failed_is_tried_again():
    """A request of the manager's reconcile fails (etcd slow or unreachable a moment) just as a worker dies: the manager tries again, and the dead worker's computations still move."""
    computations = {f"c{i}": {"blocks": []} for i in range(4)}

    async def scenario(store, clock, advance, prefix):
        cluster = Cluster(store, clock, prefix)
        manager = Manager(store, clock, "m1", computations, ttl=2, prefix=prefix)
        await manager.start()
        await cluster.join("w1")
        await cluster.join("w2")
        await settle(advance)
        before = dict(cluster.layout())
        failures = fail_the_next_range(store)
        # w1 dies: its lease is no longer renewed.
        cluster.members["w1"].lease._stop_loop()
        cluster.members["w1"]._stopping = True
        await settle(advance, steps=80)
        after = dict(cluster.layout())
        await manager.stop()
        await cluster.members["w2"].leave()
        return before, failures, after
    before, failures, after = on_backend("memory", None, scenario, timeout=30)
    assert sorted(before.values()) == ["w1", "w1", "w2", "w2"]
    assert failures, "the injected failure was not met: the test proves nothing"
    assert after == {c: "w2" for c in computations}


def test_a_leader_whose_first_reads_failed_tries_again():
    """A request fails as the manager starts to lead (it reads the members and assignments): it tries again, and assigns the computations."""
    computations = {f"c{i}": {"blocks": []} for i in range(2)}

    async def scenario(store, clock, advance, prefix):
        cluster = Cluster(store, clock, prefix)
        await cluster.join("w1")
        failures = fail_the_next_range(store)
        manager = Manager(store, clock, "m1", computations, ttl=2, prefix=prefix)
        await manager.start()
        await settle(advance, steps=40)
        layout = dict(cluster.layout())
        await manager.stop()
        await cluster.members["w1"].leave()
        return failures, layout
    failures, layout = on_backend("memory", None, scenario, timeout=30)
    assert failures, "the injected failure was not met: the test proves nothing"
    assert layout == {c: "w1" for c in computations}


def test_managers_and_members_carry_on_after_the_coordinator_ended_their_watches():
    """After every watch ended (as when etcd restarts): a worker joining later gets its share, the one that had everything learns it lost some, and the waiting manager takes over when the leader dies."""
    computations = {f"c{i}": {"blocks": []} for i in range(4)}

    async def scenario(store, clock, advance, prefix):
        cluster = Cluster(store, clock, prefix)
        m1 = Manager(store, clock, "m1", computations, ttl=2, prefix=prefix)
        m2 = Manager(store, clock, "m2", computations, ttl=2, prefix=prefix)
        await m1.start()
        await m2.start()
        await cluster.join("w1")
        await settle(advance)
        store.end_watches("restarted")
        await settle(advance)
        await cluster.join("w2")
        await settle(advance)
        layout = dict(cluster.layout())
        m1.election.lease._stop_loop()  # m1 hangs
        m1.election._resigned = True
        await settle(advance, steps=40)
        leading = await leader(store, prefix)
        await m2.stop()
        for member in cluster.members.values():
            await member.leave()
        return layout, leading
    layout, leading = on_backend("memory", None, scenario, timeout=30)
    assert sorted(layout.values()) == ["w1", "w1", "w2", "w2"]
    assert leading == "m2"
