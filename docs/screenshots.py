"""
Make the viewer screenshots of the documentation from the real viewer,
offscreen: the simulated instrument runs on a task.Clock for a few seconds
of device time, so the pictures are the same on every run.

    python docs/screenshots.py [OUTPUT_DIR]      # default docs/_static
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet import task  # noqa: E402

from pyrf_blocks import (Graph, WSA4000, calibrate_block, fft_block,  # noqa: E402
                         multi_spectrum_display, spectrum_display)
from pyrf_blocks.cli import build_parser  # noqa: E402
from pyrf_blocks.commands import view  # noqa: E402

FPS = 30.0
#: On the clock a whole frame's chunks arrive at once; in a real run they
#: are spread over the frame, so give the display the whole frame for them.
BUDGET = 1.0


def advance(clock, seconds):
    for _ in range(round(seconds * FPS)):
        clock.advance(1.0 / FPS)


def single(out):
    clock = task.Clock()
    graph = Graph(clock)
    wsa = WSA4000("sim", graph=graph, center_frequency=2.4e9, sample_rate=125e6 / 16,
                  tones=[(1e6, -20.0), (-2.5e6, -45.0)], harmonics=[(2, -50.0)],
                  noise_floor=-130.0, seed=3)
    spectrum = spectrum_display(calibrate_block(fft_block(wsa, size=1024)),
                                traces=("live", "average", "max_hold", "min_hold"),
                                db_per_div=10.0, max_fps=FPS, update_budget=BUDGET,
                                draw_share=None)
    advance(clock, 6.0)
    window = spectrum.window
    window.peak_search()
    window.set_active_marker(1)
    window.peak_search()
    window.next_peak()
    window.set_delta(True)
    spectrum.screenshot(out / "viewer.png")
    spectrum.close()


def multi(out):
    clock = task.Clock()
    graph = Graph(clock)
    wsa1 = WSA4000("sim", graph=graph, tones=[(1e6, -20.0)], noise_floor=-130.0, seed=1)
    wsa2 = WSA4000("sim", graph=graph, tones=[(-2e6, -35.0), (0.5e6, -50.0)],
                   noise_floor=-125.0, seed=2)
    display = multi_spectrum_display(calibrate_block(fft_block(wsa1)),
                                     calibrate_block(fft_block(wsa2)),
                                     labels=["analyzer 1", "analyzer 2"],
                                     traces=("live", "max_hold"), max_fps=FPS,
                                     update_budget=BUDGET, draw_share=None)
    advance(clock, 4.0)
    display.screenshot(out / "multi_viewer.png")
    display.close()


def command(out):
    clock = task.Clock()
    graph = Graph(clock)
    args = build_parser().parse_args(["view", "--span-mhz", "3", "--rbw-khz", "5",
                                      "--tone", "1", "-20", "--tone", "-0.6", "-45",
                                      "--traces", "live,average"])
    source, fft, display = view.build(args, graph, headless=False)
    advance(clock, 4.0)  # marker 1 is on the peak by default
    display.screenshot(out / "view_command.png")
    display.close()


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "_static"
    out.mkdir(parents=True, exist_ok=True)
    for make in (single, multi, command):
        make(out)
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main()
