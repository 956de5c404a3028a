"""
Frames per second of the spectrum viewer, offscreen: a 4096-bin spectrum
with live and max-hold traces plus a 512-row waterfall, each frame taking a
new chunk of spectra and rendering the whole window.

Baseline, in the same run: pyqtgraph alone redrawing one 4096-point line in
a plot of the same size.  A frame is "rendered" when ``QWidget.grab()`` has
painted the widget into a pixmap, for both.

    python benchmarks/gui.py [--seconds S]
"""

import argparse
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from twisted.internet import task  # noqa: E402

BINS = 4096
ROWS = 512
SIZE = (1100, 760)


def spectra(rng, count, rows=4):
    """
    ``count`` chunks of dBm spectra: noise near -90 dBm and a tone.
    """
    chunks = []
    for _ in range(count):
        data = (-90.0 + 4.0 * rng.standard_normal((rows, BINS))).astype(np.float32)
        data[:, BINS // 3] = -20.0
        chunks.append(data)
    return chunks


def rate_of(step, seconds):
    step(0)  # warm-up: first layout and caches
    frames, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        frames += 1
        step(frames)
    return frames / (time.perf_counter() - began)


def baseline(app, levels, seconds):
    import pyqtgraph as pg
    widget = pg.PlotWidget()
    widget.resize(*SIZE)
    widget.setYRange(-100, 0)
    widget.show()
    app.processEvents()
    x = np.arange(BINS, dtype=np.float64)
    curve = widget.plot(x, levels[0][-1])

    def step(frame):
        curve.setData(x, levels[frame % len(levels)][-1])
        widget.grab()

    fps = rate_of(step, seconds)
    widget.close()
    return fps


def viewer(app, levels, seconds):
    from pyrf_blocks import Graph
    from pyrf_blocks.gui.display import spectrum_display
    from pyrf_blocks.testing import array_source

    # One chunk per frame: the paced source's chunks last one frame interval
    # of device time, and the clock advances by one interval per frame.
    fps_cap = 100.0
    clock = task.Clock()
    graph = Graph(clock)
    meta = {"units": "dBm", "start_frequency": 2.39e9, "bin_width": 20e6 / BINS,
            "reference_level": 0.0}
    source = array_source(levels, kind="spectrum", rate=len(levels[0]) * fps_cap,
                          meta=meta, repeat=None, paced=True, graph=graph)
    display = spectrum_display(source, traces=("live", "max_hold"), waterfall_rows=ROWS,
                               max_fps=fps_cap, draw_share=None)
    display.window.resize(*SIZE)
    app.processEvents()

    def step(frame):
        clock.advance(1.0 / fps_cap)
        display.window.grab()

    fps = rate_of(step, seconds)
    stats = (display.frames, display.input_stats[0].chunks, display.traces[0].rows_added)
    display.close()
    return fps, stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="measuring time of each part (default 3)")
    args = parser.parse_args()
    from pyrf_blocks.gui.loop import application
    app = application()
    levels = spectra(np.random.default_rng(0), 32)
    line = baseline(app, levels, args.seconds)
    print(f"baseline: pyqtgraph alone, one {BINS}-point line: {line:.0f} fps")
    fps, (frames, chunks, rows) = viewer(app, levels, args.seconds)
    print(f"viewer: {BINS} bins, live + max hold, {ROWS}-row waterfall: {fps:.0f} fps "
          f"({frames} frames drawn, {chunks} chunks taken, {rows} waterfall rows)")
    print(f"viewer {fps:.0f} fps (whole window, {BINS} bins + max hold + {ROWS}-row "
          f"waterfall); pyqtgraph line alone {line:.0f} fps; ratio {fps / line:.2f}")


if __name__ == "__main__":
    main()
