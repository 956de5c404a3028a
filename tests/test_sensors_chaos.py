"""
Sensor pipelines under faults, with real processes: pyrf-blocks
serve-pipelines killed mid-stream, its PostgreSQL server stopped and
started again, and a flood of malformed payloads; a real mosquitto broker
carries QoS 1 traffic throughout.
"""

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pyrf_blocks.storage import SQLiteStore
from pyrf_blocks.testing import poll_until
from pyrf_blocks.testing.servers import mosquitto_broker, postgres_server, publish

from net_real import environment, terminate

pytestmark = pytest.mark.chaos

TOPIC = "plant/1"
PIPELINE = """\
    version: 1
    pipeline:
      topics: [plant/1]
      filters:
        type_input_value: number
        max_size: 12
      processing_policy:
        - type: time_window
        - type: aggregation
          window_size: 12h
      save_buffering:
        - max_items: 100
        - accumulation_time: 0.2s
    """


@pytest.fixture
def broker():
    """
    A mosquitto broker for one test.
    """
    with mosquitto_broker() as running:
        yield running


def _serve(tmp_path, broker, store):
    directory = tmp_path / "pipelines"
    directory.mkdir(exist_ok=True)
    (directory / "plant.yaml").write_text(textwrap.dedent(PIPELINE))
    env = environment()
    return subprocess.Popen(
        [sys.executable, "-m", "pyrf_blocks.cli", "serve-pipelines", str(directory),
         "--broker", f"127.0.0.1:{broker.port}", "--store", store, "--client-id", "chaos",
         "--rescan", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _numbers(store):
    return [row["number"] for row in store.query(TOPIC, "time_window")]


def _subscribed(broker, count_stored):
    """
    Publish probes (-1) until one is stored: the session exists from then on.
    """
    def probe():
        publish(broker.port, [(TOPIC, b"-1")])
        time.sleep(0.3)
        return count_stored() > 0
    poll_until(probe, 30, "the pipeline subscribed")


def _publisher(broker, values, pace=0.0):
    def run():
        for start in range(0, len(values), 100):
            publish(broker.port, [(TOPIC, v) for v in values[start:start + 100]])
            time.sleep(pace)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_sigkill_mid_stream_stores_every_message_once(broker, tmp_path):
    """Killed with QoS 1 traffic flowing and restarted: every message is stored exactly once, aggregates included."""
    path = tmp_path / "s.db"
    reader = SQLiteStore(path)
    process = _serve(tmp_path, broker, f"sqlite:{path}")
    try:
        _subscribed(broker, lambda: len(_numbers(reader)))
        count = 3000
        thread = _publisher(broker, [str(i).encode() for i in range(count)], pace=0.03)
        poll_until(lambda: len(_numbers(reader)) > 600, 60, "some messages stored")
        process.send_signal(signal.SIGKILL)
        process.wait()
        process = _serve(tmp_path, broker, f"sqlite:{path}")
        thread.join(120)
        values = [v for v in _numbers(reader) if v >= 0]
        poll_until(lambda: len([v for v in _numbers(reader) if v >= 0]) >= count, 60,
               f"all {count} stored (have {len(values)})")
        time.sleep(1.0)  # anything delivered twice would arrive by now
    finally:
        output = terminate(process)
    values = [v for v in _numbers(reader) if v >= 0]
    print(output)
    assert sorted(values) == list(range(count)), output
    [window] = reader.query(TOPIC, "aggregation")
    probes = len(_numbers(reader)) - count
    assert window["count"] == count + probes and window["sum"] == sum(range(count)) - probes
    reader.close()


def test_database_away_and_back_loses_nothing(broker, tmp_path):
    """PostgreSQL stopped mid-stream: the pipeline reports it, holds on, and catches up once it is back."""
    from pyrf_blocks.storage import PostgresStore

    with postgres_server() as server:
        reader = PostgresStore(server.url)
        process = _serve(tmp_path, broker, server.url)
        try:
            _subscribed(broker, lambda: len(_numbers(reader)))
            count = 2000
            thread = _publisher(broker, [str(i).encode() for i in range(count)], pace=0.05)
            poll_until(lambda: len(_numbers(reader)) > 300, 60, "some messages stored")
            reader.close()
            server.stop()
            time.sleep(2.0)
            server.start()
            thread.join(120)
            poll_until(lambda: len([v for v in _numbers(reader) if v >= 0]) >= count, 90,
                   "all stored after the server came back")
        finally:
            output = terminate(process)
        values = sorted(v for v in _numbers(reader) if v >= 0)
        reader.close()
    assert values == list(range(count)), output
    assert "store unavailable" in output


def test_malformed_flood_is_counted_and_valid_data_intact(broker, tmp_path):
    """10 000 malformed payloads among valid ones: each counted by reason, the valid ones all stored."""
    path = tmp_path / "s.db"
    reader = SQLiteStore(path)
    process = _serve(tmp_path, broker, f"sqlite:{path}")
    kinds = [b"not a number", b"\xff\xfe\x00garbage", b"1" * 40, b"null", b""]
    try:
        _subscribed(broker, lambda: len(_numbers(reader)))
        payloads = []
        for i in range(10000):
            payloads.append(kinds[i % len(kinds)])
            if i % 5 == 0:
                payloads.append(str(i // 5).encode())
        _publisher(broker, payloads).join(120)
        poll_until(lambda: sum(reader.bad_counts(TOPIC).values()) >= 10000, 90,
               "every malformed payload counted")
        poll_until(lambda: len(_numbers(reader)) >= 2001, 30, "every valid value stored")
    finally:
        output = terminate(process)
    assert reader.bad_counts(TOPIC) == {(TOPIC, "type"): 8000, (TOPIC, "size"): 2000}, output
    assert sorted(v for v in _numbers(reader) if v >= 0) == list(range(2000))
    assert process.returncode == 0
    reader.close()
