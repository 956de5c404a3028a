"""
The mqtt_source block under faults, with real processes: ``pyrf-blocks
run`` killed with SIGKILL while QoS 1 traffic flows through a real
mosquitto broker, then run again: every message stored exactly once.
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
from pyrf_blocks.testing.servers import mosquitto_broker, publish

from net_real import environment, terminate

pytestmark = pytest.mark.chaos

TOPIC = "plant/1"
GRAPH = """\
    version: 1
    blocks:
      readings:
        type: mqtt_source
        params: {{broker: "mqtt://127.0.0.1:{port}", topics: [plant/1], client_id: chaos}}
      kept:
        type: sensor_filter
        inputs: [readings]
        params: {{minimum: 0}}
      store:
        type: sensor_store
        inputs: [kept]
        params: {{store: "sqlite:{db}", topic: plant/1, pipeline: plant}}
    pipelines:
      plant:
        processing_policy:
          - type: n_records
            count_records: 8192
        save_buffering:
          - max_items: 100
          - accumulation_time: 0.2s
    """


def _run(path, env):
    return subprocess.Popen([sys.executable, "-m", "pyrf_blocks.cli", "run", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def test_sigkill_mid_stream_stores_every_message_once(tmp_path):
    """pyrf-blocks run killed mid-stream with QoS 1 traffic and run again: every message stored exactly once, in count and content."""
    env = environment()
    db = tmp_path / "s.db"
    with mosquitto_broker() as broker:
        path = tmp_path / "graph.yaml"
        path.write_text(textwrap.dedent(GRAPH).format(port=broker.port, db=db))
        reader = SQLiteStore(db)

        def numbers():
            return [row["number"] for row in reader.query(TOPIC, "n_records")]

        process = _run(path, env)
        try:
            def subscribed():  # probes (-1, filtered out) until the session exists
                publish(broker.port, [(TOPIC, b"-1")])
                time.sleep(0.3)
                return bool(reader.cursors("durable-through:"))
            poll_until(subscribed, 30, "the graph subscribed")
            count = 3000
            values = [str(i).encode() for i in range(count)]

            def publisher():
                for first in range(0, count, 100):
                    publish(broker.port, [(TOPIC, v) for v in values[first:first + 100]])
                    time.sleep(0.03)
            thread = threading.Thread(target=publisher, daemon=True)
            thread.start()
            poll_until(lambda: len(numbers()) > 600, 60, "some messages stored")
            process.send_signal(signal.SIGKILL)
            process.wait()
            process = _run(path, env)
            thread.join(120)
            poll_until(lambda: len(numbers()) >= count, 60, "every message stored")
            time.sleep(1.0)  # anything delivered twice would arrive by now
        finally:
            output = terminate(process)
        stored = numbers()
        print(output)
        assert sorted(stored) == list(range(count)), output
        reader.close()
