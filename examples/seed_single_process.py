"""
The seed's first script, as written in pyrf's "Processing Blocks" design:
all blocks in one reactor, with ``WSA4000(host)`` served by the built-in
simulated instrument (``host = "sim"``).  Pass a real analyzer's address as
--host to run the same four lines against hardware (or against
``pyrf-blocks emulate``).

    python examples/seed_single_process.py                 # until the window is closed
    python examples/seed_single_process.py --headless --duration 2

Offscreen (QT_QPA_PLATFORM=offscreen) it quits after 2 seconds unless
--duration says otherwise, and prints the strongest bin it displayed.
"""

import argparse
import os

import numpy as np

from pyrf_blocks import WSA4000, calibrate_block, fft_block, run, spectrum_display

parser = argparse.ArgumentParser(description="the seed's single-process script")
parser.add_argument("--host", default="sim", help="analyzer address, or 'sim' (default)")
parser.add_argument("--headless", action="store_true", help="no window: keep the traces only")
parser.add_argument("--duration", type=float, metavar="SECONDS",
                    default=2.0 if os.environ.get("QT_QPA_PLATFORM") == "offscreen" else None,
                    help="quit after this long (default: when the window is closed)")
args = parser.parse_args()
host = args.host
if not args.headless:
    # A window needs Twisted on Qt's event loop: an explicit step, before the graph.
    from pyrf_blocks.gui import loop
    loop.install()

# The seed's four lines.
wsa = WSA4000(host)
fft = fft_block(wsa)
calibrate = calibrate_block(fft)
spectrum = spectrum_display(calibrate, headless=args.headless)

run(duration=args.duration)

traces = spectrum.traces[0]
if traces.live is None:
    raise SystemExit("no spectrum arrived")
peak = int(np.argmax(traces.live))
print(f"strongest bin: {traces.frequencies[peak] / 1e6:.4f} MHz at {traces.live[peak]:.2f} dBm "
      f"({spectrum.frames} frames drawn)")
