"""
Two instruments overlaid in one window (the seed's multi_spectrum_display),
each in its own colour with a legend.  Both are simulated here, tuned to the
same centre with different signals.

    python examples/multi_spectrum.py           # until the window is closed
    python examples/multi_spectrum.py 5         # quit after 5 seconds
"""

import sys

from pyrf_blocks import (WSA4000, calibrate_block, fft_block, multi_spectrum_display,
                         run)

wsa1 = WSA4000("sim", tones=[(1e6, -20.0)], noise_floor=-130.0, seed=1)
wsa2 = WSA4000("sim", tones=[(-2e6, -35.0), (0.5e6, -50.0)], noise_floor=-125.0, seed=2)
calibrate1 = calibrate_block(fft_block(wsa1, size=1024))
calibrate2 = calibrate_block(fft_block(wsa2, size=1024))
multi_spectrum = multi_spectrum_display(calibrate1, calibrate2,
                                        labels=["analyzer 1", "analyzer 2"])

run(duration=float(sys.argv[1]) if len(sys.argv) > 1 else None)
print(f"{multi_spectrum.frames} frames drawn; {multi_spectrum.status_text()}")
