"""
Run by test_gui_view_command.py in its own process: a windowed display whose
source sends one chunk and then nothing for a long while.  The Qt timer, a
reactor LoopingCall and the display's frames must all keep running on the
shared loop; the script prints their counts and quits after ``argv[1]`` s.
"""

import sys

import numpy as np

from pyrf_blocks.gui.loop import install

reactor = install()

from pyqtgraph.Qt import QtCore  # noqa: E402
from twisted.internet import task  # noqa: E402

from pyrf_blocks import Graph, spectrum_display  # noqa: E402
from pyrf_blocks.chunk import Chunk  # noqa: E402
from pyrf_blocks.testing import array_source  # noqa: E402

meta = {"units": "dBm", "start_frequency": 1e9, "bin_width": 1e3, "reference_level": 0.0}
# One chunk covering 1000 s of device time: a paced source then waits.
silent = Chunk("spectrum", np.full((1, 64), -50.0, np.float32), 0, 1000 * 10**9,
               0.001, 0, meta)
graph = Graph()
source = array_source([silent], kind="spectrum", paced=True, graph=graph)
display = spectrum_display(source, max_fps=20)
counts = {"qt": 0, "reactor": 0}
timer = QtCore.QTimer()
timer.timeout.connect(lambda: counts.__setitem__("qt", counts["qt"] + 1))
timer.start(50)
ticker = task.LoopingCall(lambda: counts.__setitem__("reactor", counts["reactor"] + 1))
ticker.start(0.05)
reactor.callLater(float(sys.argv[1]), graph.stop)
graph.run()
print(f"qt {counts['qt']} reactor {counts['reactor']} frames {display.frames} "
      f"chunks {display.input_stats[0].chunks}")
