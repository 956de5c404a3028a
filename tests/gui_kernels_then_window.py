"""
Run by test_gui_view_command.py in its own process: numba's kernels (the
default where numba is installed) compute spectra, then a windowed display
on the shared loop draws a live chain, saves a screenshot to ``argv[1]``,
and a second display's graph is refused (the loop runs once); the script
prints the kernels used and exits.  A process like this one crashed at exit
(SIGSEGV in PySide's clean-up) about one run in three before
:mod:`pyrf_blocks.gui.loop` closed the windows first.
"""

import sys

import numpy as np

from pyrf_blocks.gui.loop import install

install()

from twisted.internet.error import ReactorNotRestartable  # noqa: E402

from pyrf_blocks import (calibrate_block, fft_block, run, simulated_instrument,  # noqa: E402
                         spectrum_display)
from pyrf_blocks.numerics import kernels  # noqa: E402
from pyrf_blocks.numerics.spectral import frame_spectra, window  # noqa: E402

power = frame_spectra(np.ones((64, 1024), np.complex64), window("hann", 1024, shift=True), True)
display = spectrum_display(calibrate_block(fft_block(simulated_instrument())))
run(duration=0.3)
display.screenshot(sys.argv[1])
spectrum_display(calibrate_block(fft_block(simulated_instrument())))
try:
    run(duration=0.1)
except ReactorNotRestartable:
    pass
print(kernels.backend(), display.frames > 0, float(power.max()) > 0, flush=True)
