"""
Sensor pipelines against a real mosquitto broker: messages reach the store
through the MQTT source, subscriptions follow the pipeline files without
reconnecting, and a message is acknowledged only once durable.
"""

import textwrap
import threading

import pytest
from twisted.internet import defer, threads

from pyrf_blocks.sensors.serve import PipelineServer
from pyrf_blocks.storage import SQLiteStore
from pyrf_blocks.testing import new_reactor, run_until, wait_for
from pyrf_blocks.testing.servers import mosquitto_broker, publish

PIPELINE = """\
    version: 1
    pipeline:
      topics: [{topic}]
      filters:
        type_input_value: number
        type_value_threshold: max
        max: 100
      processing_policy:
        - type: n_records
          count_records: 100
        - type: last_value
      save_buffering:
        - max_items: 5
        - accumulation_time: 0.2s
    """


@pytest.fixture
def broker():
    """
    A mosquitto broker on a free loopback port, for one test.
    """
    with mosquitto_broker() as running:
        yield running


def _write(directory, name, topic):
    (directory / name).write_text(textwrap.dedent(PIPELINE.format(topic=topic)))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_messages_reach_the_store_and_subscriptions_follow_files(broker, tmp_path, protocol):
    """Values flow broker → pipeline → SQLite; adding and removing a file changes subscriptions on one connection."""
    directory = tmp_path / "pipelines"
    directory.mkdir()
    _write(directory, "one.yaml", "plant/1")
    store = SQLiteStore(tmp_path / "s.db")
    reactor = new_reactor()
    server = PipelineServer(reactor, directory, store, port=broker.port, client_id="t1",
                            rescan=0.1, report=lambda line: None, protocol=protocol)
    reader = SQLiteStore(tmp_path / "s.db")  # WAL: reads beside the writer

    def rows(topic):
        return len(reader.query(topic, "n_records"))

    @defer.inlineCallbacks
    def scenario():
        yield server.start()
        yield wait_for(reactor, lambda: server.source.connected, 0.01)
        yield wait_for(reactor, lambda: server.source._subscribed == {"plant/1"}, 0.01)
        yield threads.deferToThreadPool(reactor, reactor.getThreadPool(), publish, broker.port,
                                        [("plant/1", str(v).encode()) for v in
                                         (1, 2, 3, 500, "x", 4, 5, 6)])
        yield wait_for(reactor, lambda: rows("plant/1") == 6, 0.02)
        _write(directory, "two.yaml", "plant/2")
        yield wait_for(reactor, lambda: "plant/2" in server.source._subscribed, 0.02)
        yield threads.deferToThreadPool(reactor, reactor.getThreadPool(), publish, broker.port,
                                        [("plant/2", b"7")] * 3)
        yield wait_for(reactor, lambda: rows("plant/2") == 3, 0.02)
        (directory / "one.yaml").unlink()
        yield wait_for(reactor, lambda: server.source._subscribed == {"plant/2"}, 0.02)
        stats = dict(server.source.stats)
        yield server.stop()
        reactor.getThreadPool().stop()
        return stats

    stats = run_until(reactor, scenario(), timeout=30)
    assert stats["connections"] == 1 and stats["messages"] == 11
    assert [r["number"] for r in reader.query("plant/1", "n_records")] == [1, 2, 3, 4, 5, 6]
    assert reader.bad_counts() == {("plant/1", "type"): 1}
    assert reader.query("plant/2", "last_value")[0]["number"] == 7.0
    reader.close()


def test_nothing_is_acknowledged_before_it_is_durable(broker, tmp_path):
    """With the store blocked, messages stay unacknowledged: a new session gets them again."""
    directory = tmp_path / "pipelines"
    directory.mkdir()
    _write(directory, "one.yaml", "plant/1")
    gate = threading.Event()

    class Blocked(SQLiteStore):
        def write(self, batch):
            gate.wait(20)
            super().write(batch)

    reactor = new_reactor()
    server = PipelineServer(reactor, directory, Blocked(tmp_path / "s.db"), port=broker.port,
                            client_id="t2", rescan=0.1, report=lambda line: None)

    @defer.inlineCallbacks
    def scenario():
        yield server.start()
        yield wait_for(reactor, lambda: server.source._subscribed == {"plant/1"}, 0.01)
        yield threads.deferToThreadPool(reactor, reactor.getThreadPool(), publish,
                                        broker.port, [("plant/1", b"1")] * 5)
        yield wait_for(reactor, lambda: server.source.stats["messages"] == 5, 0.01)
        # The batch is being written (blocked): drop the connection before it is durable.
        server.source.stop()
        gate.set()
        yield server.stop()
        reactor.getThreadPool().stop()

    run_until(reactor, scenario(), timeout=30)
    # The same session, reopened by a plain subscriber: the broker sends the five again.
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    again = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t2",
                         protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, m: again.append(m.dup)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 60
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        deadline = threading.Event()
        for _ in range(100):
            if len(again) >= 5:
                break
            deadline.wait(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    assert again == [True] * 5


def test_reconnects_with_backoff_after_the_broker_restarts(broker, tmp_path):
    """The broker goes away and comes back: the source reconnects, subscribes again, and values flow."""
    directory = tmp_path / "pipelines"
    directory.mkdir()
    _write(directory, "one.yaml", "plant/1")
    store = SQLiteStore(tmp_path / "s.db")
    reactor = new_reactor()
    server = PipelineServer(reactor, directory, store, port=broker.port, client_id="t3",
                            rescan=0.1, report=lambda line: None)
    reader = SQLiteStore(tmp_path / "s.db")

    def pool(function, *args):
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)

    @defer.inlineCallbacks
    def scenario():
        yield server.start()
        yield wait_for(reactor, lambda: server.source._subscribed == {"plant/1"}, 0.01)
        yield pool(broker.stop)
        yield wait_for(reactor, lambda: not server.source.connected, 0.01)
        yield pool(broker.start)
        yield wait_for(reactor, lambda: server.source.connected, 0.02)
        yield pool(publish, broker.port, [("plant/1", b"42")])
        yield wait_for(reactor, lambda: len(reader.query("plant/1", "n_records")) == 1, 0.02)
        stats = dict(server.source.stats)
        yield server.stop()
        reactor.getThreadPool().stop()
        return stats

    stats = run_until(reactor, scenario(), timeout=30)
    assert stats["connections"] >= 2
    reader.close()


def test_cleanup_keeps_each_topics_count(tmp_path):
    """The server's cleanup trims n_records to each pipeline's count_records (no broker needed)."""
    from pyrf_blocks.storage import Batch, Reading

    directory = tmp_path / "pipelines"
    directory.mkdir()
    (directory / "one.yaml").write_text(textwrap.dedent(PIPELINE.format(topic="plant/1"))
                                        .replace("count_records: 100", "count_records: 3"))
    store = SQLiteStore(tmp_path / "s.db")
    store.write(Batch(n_records=[Reading("plant/1", t, "number", 1.0) for t in range(10)]))
    reactor = new_reactor()
    server = PipelineServer(reactor, directory, store, report=lambda line: None)

    @defer.inlineCallbacks
    def scenario():
        yield server.rescan()
        removed = yield server.cleanup()
        yield server.store.close()
        return removed

    removed = run_until(reactor, scenario(), timeout=30)
    assert removed["n_records"] == 7
    reader = SQLiteStore(tmp_path / "s.db")
    assert [r["time"] for r in reader.query("plant/1", "n_records")] == [7, 8, 9]
    reader.close()
