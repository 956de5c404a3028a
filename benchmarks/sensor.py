"""
Sensor pipelines, end to end and storage alone.

End to end: ``--messages`` QoS 1 messages over 10 topics wait in a real
mosquitto broker for three persistent sessions.  First a bare paho
subscriber that only counts drains its session (paho's own loop,
acknowledging automatically); then a subscriber on our own MQTT client
(:class:`~pyrf_blocks.sources.mqtt.MQTTSource`) that only counts and
acknowledges each message at once; then ``serve-pipelines``'s server
drains the third: filters (range) → transformation (scale, round) →
aggregation (1 min windows) and last value → SQLite (WAL,
synchronous=FULL), every message acknowledged only after its batch is
durable.  Each is timed from connecting to the last message handled
(written, for the pipeline), in this process, one after the other.  The
example's ``max: 120`` filter leaves out the values above 120 on purpose
(6 % of them): they are counted, and acknowledged, not stored.

The pipeline's ratio to the counting subscriber on our client is what
the stages, the buffering and the store cost.  (paho's own loop, the
first baseline, reads each packet with three ``recv`` calls and sends
each PUBACK with one ``send``: it is slower than our client, so the
ratio to it says how we compare with the usual Python subscriber, not
what the pipeline costs.)

Storage alone: rows/s of :meth:`SQLiteStore.write` and
:meth:`PostgresStore.write` (upserts in batches of ``--batch``) against
each driver's own fastest bulk path on the same machine in the same run:
``executemany`` of plain INSERTs into SQLite; ``COPY`` into PostgreSQL,
in the binary format and in text (the ratio is to the faster of the two).
Each batch is written by each contender in turn (ours, then the
baselines, batch after batch), into tables of their own, so that a
neighbour's load on a shared machine falls on all of them alike.

    python benchmarks/sensor.py [--messages N] [--rows N] [--batch N] [--mqtt 5|3.1.1]
"""

import argparse
import os
import sqlite3
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyrf_blocks.storage import Batch, Reading, SQLiteStore  # noqa: E402
from pyrf_blocks.testing.servers import mosquitto_broker, postgres_server, publish  # noqa: E402

TOPICS = [f"plant/{i}" for i in range(10)]
PIPELINE = """\
    version: 1
    pipeline:
      topics: {topics}
      filters:
        type_input_value: number
        type_value_threshold: range
        min: -40
        max: 120
      transformations:
        - type: numeric
          multiplication: {{coefficient: 0.3}}
          round: {{decimal_point: 3}}
      processing_policy:
        - type: aggregation
          window_size: 1m
          aggregation_functions: [avg, min, max]
        - type: last_value
      save_buffering:
        - max_items: 2048
        - accumulation_time: 0.2s
    """


def _client(client_id, protocol):
    import paho.mqtt.client as mqtt

    if protocol == "5":
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                           protocol=mqtt.MQTTv5)
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=mqtt.MQTTv311, clean_session=False)


def _connect(client, port, protocol):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    if protocol == "5":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0xFFFFFFFF
        client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    else:
        client.connect("127.0.0.1", port)


def _session(port, client_id, protocol):
    """
    Open a persistent session subscribed to the topics, and leave it.
    """
    client = _client(client_id, protocol)
    _connect(client, port, protocol)
    client.loop_start()
    client.subscribe([(topic, 1) for topic in TOPICS])[1]
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


def bare_subscriber(port, count, protocol):
    """
    Seconds a paho client that only counts takes to receive ``count``.
    """
    seen = [0, None]
    client = _client("bare", protocol)

    def counted(client, userdata, message):
        seen[0] += 1
        if seen[0] == count:
            seen[1] = time.perf_counter()
            client.disconnect()

    client.on_message = counted
    started, cpu = time.perf_counter(), time.process_time()
    _connect(client, port, protocol)
    client.loop_forever()
    return seen[1] - started, time.process_time() - cpu


def counting_subscriber(port, count, protocol):
    """
    Seconds a subscriber on our MQTT client that only counts (and
    acknowledges at once) takes to receive ``count``.
    """
    from twisted.internet import defer

    from pyrf_blocks.sources.mqtt import MQTTSource
    from pyrf_blocks.testing import new_reactor, run_until, wait_for

    seen = [0]

    class Counter:
        def receive(self, topic, time, payload, ack=None, mark=None):
            seen[0] += 1
            if ack is not None:
                ack()

    reactor = new_reactor()
    source = MQTTSource(reactor, port=port, client_id="counting", receive_maximum=20000,
                        protocol=protocol)
    source.set_routes({topic: Counter() for topic in TOPICS})
    times = {}

    @defer.inlineCallbacks
    def scenario():
        times["start"] = time.perf_counter()
        source.start()
        yield wait_for(reactor, lambda: seen[0] >= count, 0.01)
        times["end"] = time.perf_counter()
        times["cpu"] = time.process_time()
        yield source.stop()

    cpu = time.process_time()
    run_until(reactor, scenario(), timeout=600)
    return times["end"] - times["start"], times["cpu"] - cpu


def pipeline_server(port, count, directory, protocol):
    """
    Seconds serve-pipelines' server takes to write and acknowledge ``count``.
    """
    from twisted.internet import defer

    from pyrf_blocks.sensors.serve import PipelineServer
    from pyrf_blocks.testing import new_reactor, run_until, wait_for

    folder = os.path.join(directory, "pipelines")
    os.makedirs(folder)
    with open(os.path.join(folder, "plant.yaml"), "w") as out:
        out.write(textwrap.dedent(PIPELINE.format(topics=TOPICS)))
    store = SQLiteStore(os.path.join(directory, "sensors.db"))
    reactor = new_reactor()
    server = PipelineServer(reactor, folder, store, port=port, client_id="pipeline",
                            receive_maximum=20000, report=lambda line: None,
                            protocol=protocol)
    times = {}

    @defer.inlineCallbacks
    def scenario():
        times["start"] = time.perf_counter()
        yield server.start()
        [pipeline] = server.pipelines.values()
        yield wait_for(reactor, lambda: pipeline.buffer.stats["messages"] >= count, 0.01)
        times["end"] = time.perf_counter()
        times["cpu"] = time.process_time()
        yield server.stop()
        return pipeline

    cpu = time.process_time()
    pipeline = run_until(reactor, scenario(), timeout=600)
    check = SQLiteStore(os.path.join(directory, "sensors.db"))
    rows = check.query(TOPICS[0], "aggregation")
    check.close()
    assert rows and sum(r["count"] for r in rows) > 0
    return times["end"] - times["start"], times["cpu"] - cpu, pipeline


def end_to_end(count, protocol):
    with tempfile.TemporaryDirectory() as directory, mosquitto_broker() as broker:
        for client_id in ("bare", "counting", "pipeline"):
            _session(broker.port, client_id, protocol)
        messages = [(TOPICS[i % len(TOPICS)], f"{(i * 7919) % 150 - 20}".encode())
                    for i in range(count)]
        publish(broker.port, messages)
        bare, bare_cpu = bare_subscriber(broker.port, count, protocol)
        counting, counting_cpu = counting_subscriber(broker.port, count, protocol)
        ours, cpu, pipeline = pipeline_server(broker.port, count, directory, protocol)
    dropped = ", ".join(f"{n} by its {reason} filter" for reason, n in
                        sorted(pipeline.dropped.items())) or "none"
    print(f"MQTT {protocol}")
    print(f"bare paho subscriber:        {count / bare:10,.0f} msg/s "
          f"({count / bare_cpu:,.0f} msg per CPU-second of this process)")
    print(f"counting, on our client:     {count / counting:10,.0f} msg/s "
          f"({count / counting_cpu:,.0f} msg per CPU-second of this process)")
    print(f"pipeline -> SQLite:          {count / ours:10,.0f} msg/s "
          f"({count / cpu:,.0f} msg per CPU-second of this process; "
          f"{pipeline.buffer.stats['batches']} batches; values left out on purpose: "
          f"{dropped})")
    print(f"pipeline / counting on our client: {counting / ours:.2f}x (wall), "
          f"{counting_cpu / cpu:.2f}x (per CPU-second)")
    return count / ours, count / bare, count / cpu, count / bare_cpu


def _rows(count, offset=0):
    return [Reading(f"s/{i % 16}", offset + i, "number", float(i)) for i in range(count)]


def storage_sqlite(rows, batch):
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStore(os.path.join(directory, "a.db"))
        readings = _rows(rows)
        connection = sqlite3.connect(os.path.join(directory, "b.db"), isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE n_records (topic TEXT NOT NULL, time BIGINT NOT NULL, "
                           "kind TEXT NOT NULL, number DOUBLE PRECISION, text TEXT, blob TEXT, "
                           "PRIMARY KEY (topic, time))")
        tuples = [(r.topic, r.time, r.kind, r.value, None, None) for r in readings]
        ours = bare = 0.0
        for i in range(0, rows, batch):
            started = time.perf_counter()
            store.write(Batch(n_records=readings[i:i + batch]))
            middle = time.perf_counter()
            connection.execute("BEGIN")
            connection.executemany("INSERT INTO n_records VALUES (?, ?, ?, ?, ?, ?)",
                                   tuples[i:i + batch])
            connection.execute("COMMIT")
            ours += middle - started
            bare += time.perf_counter() - middle
        store.close()
        connection.close()
    return rows / ours, rows / bare


def storage_postgres(rows, batch):
    import psycopg

    from pyrf_blocks.storage import PostgresStore

    columns = "topic, time, kind, number, text, blob"
    types = ["text", "int8", "text", "float8", "text", "text"]

    def copy_batch(connection, table, rows, binary):
        with connection.transaction(), connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN" +
                             (" (FORMAT BINARY)" if binary else "")) as copy:
                if binary:
                    copy.set_types(types)
                for row in rows:
                    copy.write_row(row)

    with postgres_server() as server:
        store = PostgresStore(server.url)
        readings = _rows(rows)
        tuples = [(r.topic, r.time, r.kind, r.value, None, None) for r in readings]
        with psycopg.connect(server.url) as connection:
            for table in ("bare_binary", "bare_text"):
                connection.execute(f"CREATE TABLE {table} (LIKE n_records INCLUDING ALL)")
            connection.commit()
            ours = binary = text = 0.0
            for i in range(0, rows, batch):
                started = time.perf_counter()
                store.write(Batch(n_records=readings[i:i + batch]))
                first = time.perf_counter()
                copy_batch(connection, "bare_binary", tuples[i:i + batch], True)
                second = time.perf_counter()
                copy_batch(connection, "bare_text", tuples[i:i + batch], False)
                ours += first - started
                binary += second - first
                text += time.perf_counter() - second
        store.close()
    return rows / ours, rows / binary, rows / text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--mqtt", choices=("5", "3.1.1"), default="5",
                        help="MQTT version of both subscribers (the broker allows "
                             "unlimited in-flight messages either way)")
    args = parser.parse_args()
    sqlite_ours, sqlite_bare = storage_sqlite(args.rows, args.batch)
    print(f"SQLite: store.write {sqlite_ours:10,.0f} rows/s, executemany {sqlite_bare:10,.0f} "
          f"rows/s: {sqlite_ours / sqlite_bare:.2f}x")
    pg_ours, pg_binary, pg_text = storage_postgres(args.rows, args.batch)
    print(f"PostgreSQL: store.write {pg_ours:10,.0f} rows/s, COPY binary {pg_binary:10,.0f} "
          f"rows/s, COPY text {pg_text:10,.0f} rows/s: "
          f"{pg_ours / max(pg_binary, pg_text):.2f}x the faster COPY")
    ours, bare, ours_cpu, bare_cpu = end_to_end(args.messages, args.mqtt)
    print(f"sensor pipeline end to end (MQTT {args.mqtt}): {ours:,.0f} msg/s "
          f"({ours_cpu:,.0f} per CPU-second), {ours / bare:.2f}x a bare paho subscriber "
          f"({bare:,.0f} msg/s; {ours_cpu / bare_cpu:.2f}x per CPU-second)")


if __name__ == "__main__":
    main()
