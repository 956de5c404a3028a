"""
Run by test_gui_view_command.py in its own process: a windowed display on
the shared loop draws a live chain whose FFT runs the default kernels
(numba's where numba is installed), saves a screenshot to ``argv[1]`` when
given, and a second display's graph is refused (the loop runs once); the
script prints the kernels used and exits.  A process like
this one crashed at exit about one run in three (SIGSEGV in PySide's
clean-up, ``PySide::destroyQCoreApplication``, deleting pyqtgraph's
widgets) before :mod:`pyrf_blocks.gui.loop` closed the windows first.
"""

import sys

from twisted.internet.error import ReactorNotRestartable

from pyrf_blocks import calibrate_block, fft_block, run, simulated_instrument, spectrum_display
from pyrf_blocks.gui import loop
from pyrf_blocks.numerics import kernels

loop.install()
display = spectrum_display(calibrate_block(fft_block(simulated_instrument())))
run(duration=0.5)
if len(sys.argv) > 1:
    display.screenshot(sys.argv[1])
spectrum_display(calibrate_block(fft_block(simulated_instrument())))
try:
    run(duration=0.1)
except ReactorNotRestartable:
    pass
print(kernels.backend(), display.frames > 0, flush=True)
