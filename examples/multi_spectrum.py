"""
Two instruments overlaid in one window (the seed's multi_spectrum_display),
each in its own colour with a legend.  Both are simulated here, tuned to the
same centre with different signals.

    python examples/multi_spectrum.py                 # until the window is closed
    python examples/multi_spectrum.py --duration 5    # quit after 5 seconds

Rendered offscreen (QT_QPA_PLATFORM=offscreen) no one can close the window,
so it quits after 2 seconds unless --duration says otherwise.
"""

import argparse
import os

from pyrf_blocks import (WSA4000, calibrate_block, fft_block, multi_spectrum_display,
                         run)
from pyrf_blocks.gui import loop

parser = argparse.ArgumentParser(description="two simulated analyzers in one viewer")
parser.add_argument("--duration", type=float, metavar="SECONDS",
                    default=2.0 if os.environ.get("QT_QPA_PLATFORM") == "offscreen" else None,
                    help="quit after this long (default: when the window is closed)")
args = parser.parse_args()

# A window needs Twisted on Qt's event loop: an explicit step, before the graph.
loop.install()

wsa1 = WSA4000("sim", tones=[(1e6, -20.0)], noise_floor=-130.0, seed=1)
wsa2 = WSA4000("sim", tones=[(-2e6, -35.0), (0.5e6, -50.0)], noise_floor=-125.0, seed=2)
calibrate1 = calibrate_block(fft_block(wsa1, size=1024))
calibrate2 = calibrate_block(fft_block(wsa2, size=1024))
multi_spectrum = multi_spectrum_display(calibrate1, calibrate2,
                                        labels=["analyzer 1", "analyzer 2"])

run(duration=args.duration)
print(f"{multi_spectrum.frames} frames drawn; {multi_spectrum.status_text()}")
