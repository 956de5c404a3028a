"""
The seed's script: a (simulated) WSA4000, an FFT, calibration to dBm and a
live spectrum display.

    python examples/live_spectrum.py                  # until the window is closed
    python examples/live_spectrum.py --duration 5     # quit after 5 seconds

Rendered offscreen (QT_QPA_PLATFORM=offscreen) no one can close the window,
so it quits after 2 seconds unless --duration says otherwise.
"""

import argparse
import os

from pyrf_blocks import WSA4000, calibrate_block, fft_block, run, spectrum_display
from pyrf_blocks.gui import loop

parser = argparse.ArgumentParser(description="live spectrum of the simulated WSA4000")
parser.add_argument("--duration", type=float, metavar="SECONDS",
                    default=2.0 if os.environ.get("QT_QPA_PLATFORM") == "offscreen" else None,
                    help="quit after this long (default: when the window is closed)")
args = parser.parse_args()

# A window needs Twisted on Qt's event loop: an explicit step, before the graph.
loop.install()

wsa = WSA4000("sim", tones=[(1e6, -20.0), (-2.5e6, -45.0)], noise_floor=-130.0)
fft = fft_block(wsa, size=1024, window="hann")
calibrate = calibrate_block(fft)
spectrum = spectrum_display(calibrate, traces=("live", "average", "max_hold"))

run(duration=args.duration)
print(f"{spectrum.frames} frames drawn; {spectrum.status_text()}")
