"""
The mqtt_source block and the durable watermark: what a sink has
committed travels back to the source, through stateless blocks and
windows; a real mosquitto broker carries the messages; ``pyrf-blocks run``
serves a combined file; ``graph_to_yaml`` keeps the sensor sections.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from zope.interface import implementer

from pyrf_blocks import Graph, collector, mqtt_source, sensor_store, window_block
from pyrf_blocks.block import Source
from pyrf_blocks.durable import watermark
from pyrf_blocks.interfaces import IAcknowledgingSource, IDurableSink, IRecordsProducer
from pyrf_blocks.sensors.pipeline import SensorPipeline
from pyrf_blocks.sensors.policies import NRecords
from pyrf_blocks.storage import MemoryStore, SQLiteStore
from pyrf_blocks.testing import assert_provides, poll_until
from pyrf_blocks.testing.servers import mosquitto_broker, publish

S = 10 ** 9
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@implementer(IAcknowledgingSource)
class _Pushed(Source):
    """
    Records pushed by the test; records what a durable sink asks of it.
    """

    type_name = "pushed"
    kind = "records"

    def __init__(self, **kwargs):
        self.advanced = 0
        self.asked = []
        super().__init__(**kwargs)

    def push(self, seconds):
        times = np.asarray(seconds) * S
        self.emit_records(times, np.ones(len(times)), int(times[0]), int(times[-1]) + S)

    def durable_advanced(self):
        self.advanced += 1

    def durable_marks(self, sink, taken):
        self.asked.append(taken)
        return {f"test:{sink.name}": str(taken)}


def _store(source, store, accumulation=5.0):
    pipeline = SensorPipeline("t", ["t"], policies=[NRecords()], max_items=1000,
                              accumulation_time=accumulation)
    return sensor_store(source, store, "t", pipeline=pipeline, threaded=False)


def test_watermark_follows_commits_and_final_windows(clock, graph):
    """The watermark waits for the store's commit and for a window to be final, and the marks are committed with the rows."""
    store = MemoryStore()
    source = _Pushed(graph=graph)
    sink = _store(source, store)
    kept = collector(window_block(source, every=5, stats=["count"]))
    assert_provides(IDurableSink, sink)
    clock.advance(0)  # the sink restores its windows
    source.push([0, 1, 2])
    assert watermark(source) is None and sink.durable_through is None
    clock.advance(5)  # the batch is written
    assert sink.durable_through == 3 * S and source.advanced == 1
    assert store.cursors("test:") == {"test:sensor_store": str(3 * S)}
    assert store.cursors("durable-through:") == {"durable-through:t:sensor_store": str(3 * S)}
    assert watermark(source) is None  # the window [0, 5 s) is open: nothing of it emitted
    source.push([6])
    clock.advance(5)
    assert sink.durable_through == 7 * S
    assert watermark(source) == 5 * S  # [0, 5 s) is final: its rows are done
    assert [int(row["count"]) for chunk in kept.chunks for row in chunk.data] == [3]


@pytest.mark.parametrize("acknowledging", [True, False])
def test_rows_an_earlier_run_committed_are_left_out_behind_an_acknowledging_source(
        acknowledging, clock, graph):
    """Behind a source that acknowledges, rows before the stored durable_through are delivered again and left out; behind any other, a run again writes them over."""
    from pyrf_blocks.storage.rows import Batch
    from pyrf_blocks.testing import array_source

    store = MemoryStore()
    store.write(Batch(cursors={"durable-through:t:sensor_store": str(3 * S)}))
    if acknowledging:
        source = _Pushed(graph=graph)
    else:
        times = np.array([1, 2, 3, 4]) * S
        source = array_source([_records_at(times)], kind="records", graph=graph)
    _store(source, store, accumulation=1.0)
    clock.advance(0)
    if acknowledging:
        source.push([1, 2, 3, 4])
    clock.advance(2)
    kept = [row["time"] // S for row in store.query("t", "n_records")]
    assert kept == ([3, 4] if acknowledging else [1, 2, 3, 4])


def _records_at(times):
    from pyrf_blocks import Chunk

    return Chunk.records(times, np.ones(len(times)), end=int(times[-1]) + S)


def test_mqtt_source_declares_and_checks_its_parameters(graph):
    """mqtt_source provides records and acknowledgement; a bad broker, a wildcard or json without fields are refused by name."""
    block = mqtt_source(broker="mqtt://127.0.0.1:1", topics="plant/1", graph=graph)
    assert_provides(IRecordsProducer, block)
    assert_provides(IAcknowledgingSource, block)
    assert (block.host, block.port, block.topics) == ("127.0.0.1", 1, ["plant/1"])
    for params, words in [({"broker": "http://x:1"}, "not a broker address"),
                          ({"topics": ["plant/+"]}, "wildcards"),
                          ({"decode": "json"}, "needs fields"),
                          ({"fields": ["t"]}, "fields are for decode json")]:
        params = dict({"broker": "127.0.0.1:1", "topics": ["a"]}, **params)
        with pytest.raises(ValueError, match=words) as error:
            mqtt_source(graph=Graph(), name="probe", **params)
        assert "mqtt_source" in str(error.value)


class _Away(MemoryStore):
    def write(self, batch):
        from pyrf_blocks.errors import StoreUnavailable
        raise StoreUnavailable("away for the test")


def _run_graph(port, store, seconds, messages=(), client_id="block"):
    graph = Graph()
    source = mqtt_source(broker=f"127.0.0.1:{port}", topics=["plant/1"], client_id=client_id,
                         graph=graph)
    sink = sensor_store(source, store, "plant/1", graph=graph)
    if messages:
        sender = threading.Thread(target=lambda: (time.sleep(1.0), publish(port, messages)))
        sender.start()
    graph.run(seconds)
    if messages:
        sender.join()
    graph.in_reactor_thread(sink.pipeline.buffer.backoff.cancel)
    return source


def test_nothing_is_acknowledged_before_it_is_durable(tmp_path):
    """Messages whose store is away stay with the broker; the next run stores each once and acknowledges them; a third run gets none."""
    messages = [("plant/1", str(value).encode()) for value in range(20)] + [("plant/1", b"x")]
    with mosquitto_broker() as broker:
        first = _run_graph(broker.port, _Away(), 2.5, messages)
        assert first.client.stats["messages"] == 21 and first.stats["acknowledged"] == 0
        store = SQLiteStore(tmp_path / "s.db")
        second = _run_graph(broker.port, store, 1.5)
        assert second.client.stats["messages"] == 21 and second.stats["acknowledged"] == 21
        assert second.bad == {"number": 1}
        numbers = [row["number"] for row in store.query("plant/1", "n_records")]
        assert numbers == list(range(20))
        third = _run_graph(broker.port, store, 1.0)
        assert third.client.stats["messages"] == 0
        store.close()


def test_run_serves_the_graph_and_the_sensor_pipelines_of_one_file(tmp_path):
    """pyrf-blocks run on examples/mqtt_graph.yaml: the graph's rows and the MQTT-fed pipeline's both reach their stores."""
    with open(os.path.join(ROOT, "examples", "mqtt_graph.yaml")) as example:
        text = example.read()
    with mosquitto_broker() as broker:
        path = tmp_path / "graph.yaml"
        path.write_text(text.replace("127.0.0.1:1883", f"127.0.0.1:{broker.port}"))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        process = subprocess.Popen(
            [sys.executable, "-m", "pyrf_blocks.cli", "run", str(path), "--store",
             "sqlite:humidity.db", "--broker", f"127.0.0.1:{broker.port}"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            humidity = SQLiteStore(tmp_path / "humidity.db")

            def stored():
                publish(broker.port, [("plant/1/humidity", b"40"),
                                      ("plant/1/fahrenheit", b"71.6")])
                time.sleep(0.3)
                return humidity.query("plant/1/humidity", "n_records")
            poll_until(stored, 30, "the humidity pipeline stored a row")
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=30)[0]
        celsius = SQLiteStore(tmp_path / "plant.db").query("plant/1/celsius", "n_records")
    assert celsius and {row["number"] for row in celsius} == {22.0}, output
    assert "sensor pipeline humidity fed from MQTT" in output
    assert "sensor pipeline humidity: " in output and "mqtt_source 'readings'" in output
    assert process.returncode == 0, output
    humidity.close()


@pytest.mark.parametrize("example", ["mqtt_graph.yaml", "instrument_kpis.yaml"])
def test_graph_to_yaml_keeps_sensor_sections(example, tmp_path, monkeypatch):
    """A combined file loaded, built and dumped reads back to the same blocks and sensor pipelines."""
    from pyrf_blocks.pipeline import build, graph_to_yaml, load_pipeline
    from pyrf_blocks.pipeline.export import graph_to_data
    from pyrf_blocks.pipeline.validate import check_text

    monkeypatch.chdir(tmp_path)  # the stores the files name are made here
    first = load_pipeline(os.path.join(ROOT, "examples", example))
    graph = build(first)
    text = graph_to_yaml(graph)
    again = check_text(text)
    assert again.sensors == first.sensors and again.mqtt_sensors == first.mqtt_sensors
    assert again.document.data["pipelines"] == first.document.data["pipelines"]
    rebuilt = build(again)
    assert graph_to_data(rebuilt) == graph_to_data(graph)
    for built in (graph, rebuilt):
        for sink in built.sinks:
            sink.close()


def _session(port, client_id, seconds):
    """
    The payloads the broker delivers (again) to the persistent session
    ``client_id`` on plant/1 within ``seconds`` (each acknowledged); the
    session is made if new.  Blocking, with paho: no reactor involved.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes

    got, subscribed = [], threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, message: got.append(message.payload)
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_connect = lambda c, *args: c.subscribe("plant/1", qos=1)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0xFFFFFFFF
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        assert subscribed.wait(10), "no SUBACK"
        time.sleep(seconds)
    finally:
        client.disconnect()
        client.loop_stop()
    return got


GRACEFUL = """\
version: 1
blocks:
  readings:
    type: mqtt_source
    params: {{broker: "mqtt://127.0.0.1:{port}", topics: [plant/1], client_id: graceful}}
  store:
    type: sensor_store
    inputs: [readings]
    params: {{store: "sqlite:{db}", topic: plant/1, pipeline: plant}}
pipelines:
  plant:
    processing_policy:
      - type: n_records
        count_records: 8192
    save_buffering:
      - max_items: 100
      - accumulation_time: 0.5s
"""


EXITS_WHEN_DONE = """
import os, sys
from pyrf_blocks import Graph, mqtt_source, sensor_store
from pyrf_blocks.sensors.pipeline import SensorPipeline
from pyrf_blocks.sensors.policies import NRecords
from pyrf_blocks.storage import SQLiteStore

port, db = int(sys.argv[1]), sys.argv[2]
graph = Graph()
source = mqtt_source(broker=f"127.0.0.1:{port}", topics=["plant/1"], client_id="graceful",
                     graph=graph)
pipeline = SensorPipeline("plant", ["plant/1"], policies=[NRecords()], max_items=100,
                          accumulation_time=60.0)
sensor_store(source, SQLiteStore(db), "plant/1", pipeline=pipeline, threaded=False,
             graph=graph)
# Whoever waits for the graph may end the process the moment it is done.
graph.done().addCallback(lambda _: (print(source.summary(), flush=True), os._exit(0)))


def received():  # stop once every message has come (a graceful stop)
    if source.client is not None and source.client.stats["messages"] >= int(sys.argv[3]):
        graph.stop()
    else:
        graph.reactor.callLater(0.05, received)


graph.reactor.callLater(0.05, received)
graph.run(30.0)
"""


def _stored(db):
    reader = SQLiteStore(db)
    try:
        return [row["number"] for row in reader.query("plant/1", "n_records")]
    finally:
        reader.close()


def _check_acknowledged(stored, again, published, output):
    """
    Each published number stored once, or (not taken before the stop)
    delivered to the next session; none stored *and* delivered again.
    """
    again = [float(payload) for payload in again]
    assert len(stored) == len(set(stored)), output
    assert sorted(stored + again) == [float(i) for i in range(published)], output
    assert set(stored) & set(again) == set(), output


def test_the_last_acknowledgements_have_left_when_the_graph_is_done(tmp_path):
    """A graph stopped at the end of its run commits its last batch, and its acknowledgements have left when done() fires: a process that exits right then leaves the next session of its client id nothing to get again."""
    count = 250
    with mosquitto_broker() as broker:
        _session(broker.port, "graceful", 0)
        publish(broker.port, [("plant/1", str(i).encode()) for i in range(count)])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        run = subprocess.run([sys.executable, "-c", EXITS_WHEN_DONE, str(broker.port),
                              str(tmp_path / "s.db"), str(count)], env=env,
                             capture_output=True, text=True, timeout=60)
        output = run.stdout + run.stderr
        stored = _stored(tmp_path / "s.db")
        again = _session(broker.port, "graceful", 1.0)
    assert run.returncode == 0 and f"{count} acknowledged" in output, output
    assert len(stored) == count, output  # the last batch committed at the stop
    _check_acknowledged(stored, again, count, output)


def test_pyrf_blocks_run_stopped_by_a_signal_sends_the_last_acknowledgements(tmp_path):
    """pyrf-blocks run stopped by SIGTERM (SIGINT takes the same path) while messages flow: what it stored it acknowledged before it exited (the next session with its client id gets only what it had not taken), and nothing is lost."""
    with mosquitto_broker() as broker:
        _session(broker.port, "graceful", 0)
        db = tmp_path / "s.db"
        path = tmp_path / "graph.yaml"
        path.write_text(GRACEFUL.format(port=broker.port, db=db))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        process = subprocess.Popen([sys.executable, "-m", "pyrf_blocks.cli", "run", str(path)],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        published, stored = 0, []
        try:
            started = time.monotonic()
            # Until it has committed (it is running) and a little more: still
            # flowing at the stop.
            while not stored or time.monotonic() - started < 1.0:
                assert time.monotonic() - started < 30, "nothing stored in 30 s"
                publish(broker.port, [("plant/1", str(i).encode())
                                      for i in range(published, published + 20)])
                published += 20
                time.sleep(0.02)
                if published % 200 == 0:
                    stored = _stored(db) if db.exists() else []
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=30)[0]
        stored = _stored(db)
        again = _session(broker.port, "graceful", 1.0)
    assert process.returncode == 0, output
    assert stored, output
    _check_acknowledged(stored, again, published, output)
