"""
pyrf_blocks: processing blocks for RF instrument data on Twisted.
"""

from .blocks.dsp import calibrate_block, decimate_block, fft_block
from .blocks.measure import power_block, thd_block
from .blocks.sinks import collector, printer
from .blocks.sources import simulated_instrument
from .blocks.spectrum import average_block, max_hold, min_hold, peak_search
from .chunk import Chunk
from .graph import Graph, default_graph, run, set_default_graph
from .instruments import WSA4000
from .net import process

__version__ = "0.1.0"

__all__ = [
    "Chunk", "Graph", "default_graph", "set_default_graph", "run",
    "WSA4000", "simulated_instrument",
    "fft_block", "calibrate_block", "decimate_block",
    "average_block", "max_hold", "min_hold", "peak_search",
    "thd_block", "power_block",
    "collector", "printer",
    "process",
]
