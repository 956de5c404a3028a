"""
The seed's script: a (simulated) WSA4000, an FFT, calibration to dBm and a
live spectrum display.

    python examples/live_spectrum.py            # until the window is closed
    python examples/live_spectrum.py 5          # quit after 5 seconds
"""

import sys

from pyrf_blocks import WSA4000, calibrate_block, fft_block, run, spectrum_display

wsa = WSA4000("sim", tones=[(1e6, -20.0), (-2.5e6, -45.0)], noise_floor=-130.0)
fft = fft_block(wsa, size=1024, window="hann")
calibrate = calibrate_block(fft)
spectrum = spectrum_display(calibrate, traces=("live", "average", "max_hold"))

run(duration=float(sys.argv[1]) if len(sys.argv) > 1 else None)
print(f"{spectrum.frames} frames drawn; {spectrum.status_text()}")
