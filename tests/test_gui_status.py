"""
The viewer's status bar reads the metrics that /metrics serves: the rate,
lag and drops of its input from its graph's metrics, and, for an input
streamed from a cluster worker, that worker's assignments and snapshot age
scraped from its /metrics (offscreen, on a task.Clock).
"""

import re
from types import SimpleNamespace

import pytest

pytest.importorskip("pyqtgraph.Qt", reason="the viewer needs the gui extra "
                    "(pyqtgraph, PySide6-Essentials) and Qt's system libraries")

from pyrf_blocks import spectrum_display  # noqa: E402
from pyrf_blocks.gui.status import format_seconds, lag_text, table  # noqa: E402
from pyrf_blocks.metrics import GraphCollector, WorkerCollector  # noqa: E402
from pyrf_blocks.testing import WorkerPair  # noqa: E402

BAR = re.compile(r"(\d+) chunks, ([\d.]+) chunks/s, lag (-?\d+) ms, latency (\S+ m?s), "
                 r"dropped (\d+)   \|   worker w1: 2 assignments, snapshot ([\d.]+) (m?s) old")


def test_the_status_bar_shows_the_metrics_after_chunks_flow(qapp, tmp_path):
    """After chunks flow from a cluster worker, the bar shows the rate, lag and drops that the metrics hold, and the worker's assignments and snapshot age from its /metrics."""
    pair = WorkerPair()
    clock = pair.clock
    clock.advance(100.0)  # device time starts at 100 s (start_time below)
    for spec in ({"type": "simulated_instrument", "name": "sim",
                  "params": {"paced": True, "start_time": 100_000_000_000,
                             "tones": [[1e6, -20.0]]}},
                 {"type": "fft_block", "name": "fft", "inputs": ["sim"],
                  "params": {"size": 1024}},
                 {"type": "calibrate_block", "name": "cal", "inputs": ["fft"]}):
        assert pair.call("POST", "/blocks", json=spec)[0] == 201
    # What a cluster worker's member and runner count, as its /metrics serves them.
    running = {name: SimpleNamespace(snapshots=1, state_bytes=1024, snapshot_at=None)
               for name in ("comp0", "comp1")}
    pair.worker.collectors.append(WorkerCollector(
        SimpleNamespace(worker="w1", lease=SimpleNamespace(renewed_at=None)),
        SimpleNamespace(running=running, restored=0), clock))
    display = spectrum_display(pair.remote("cal", "spectrum"), graph=pair.client,
                               headless=False, draw_share=None, max_fps=20.0)
    display.metrics.wall_clock = clock.seconds  # the lag on the test's clock
    for step in range(60):  # 3 s of frames
        if step == 40:
            for computation in running.values():
                computation.snapshot_at = clock.seconds()  # a snapshot is taken
        pair.pump(50, 0.001)
    display.screenshot(tmp_path / "status.png")
    shown = display.window.status.text()
    match = BAR.search(shown)
    assert match, shown
    chunks, rate, lag, _, dropped, age, unit = match.groups()
    samples = table(GraphCollector(lambda: {"viewer": pair.client},
                                   clock=clock.seconds).collect())
    remote = display.inputs[0]
    key = tuple(sorted({"graph": "viewer", "block": remote.name, "output": "main"}.items()))
    assert int(chunks) == samples[("pyrf_block_chunks_total", key)] > 20
    elapsed = clock.seconds() - 100.0
    assert 0.7 < float(rate) / (int(chunks) / elapsed) < 1.3  # chunks per second
    assert abs(int(lag)) < 100 and int(dropped) == display.dropped[0]
    age = float(age) / (1000 if unit == "ms" else 1)
    assert 0 < age <= 1.6  # taken 1 s before the end, read once a second
    assert (tmp_path / "status.png").stat().st_size > 1000
    display.close()


def test_lags_and_durations_read_plainly():
    """Durations read in ms, s or min; a device clock a day off the wall clock reads '-'."""
    assert [format_seconds(s) for s in (0.0123, 3.42, 600.0, None)] == [
        "12 ms", "3.4 s", "10.0 min", "-"]
    assert lag_text(1.7e9) == "-" and lag_text(0.2) == "200 ms"
