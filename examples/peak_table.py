"""
Print the strongest peaks of the simulated analyzer's spectrum twice a second.

    python examples/peak_table.py [--duration SECONDS]

The chain is the seed's (instrument -> FFT -> calibrate) with a max hold and
a peak search, ending in a printer: a sink, so the chain comes alive.
"""

import argparse

from pyrf_blocks import (
    WSA4000, calibrate_block, fft_block, max_hold, peak_search, printer, run,
)

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--duration", type=float, default=3.0, help="seconds to run")
args = parser.parse_args()

wsa = WSA4000("sim", tones=[(1.5e6, -25.0), (-0.7e6, -60.0)], noise_floor=-155.0)
fft = fft_block(wsa, size=2048, window="blackmanharris")
calibrate = calibrate_block(fft)
peaks = peak_search(max_hold(calibrate), count=3)
printer(peaks, interval=0.5)
run(duration=args.duration)
