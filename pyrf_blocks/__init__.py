"""
pyrf_blocks: processing blocks for RF instrument data on Twisted.
"""

from .blocks.dsp import calibrate_block, decimate_block, fft_block
from .blocks.measure import power_block, thd_block
from .blocks.kpi import efficiency_block, formula_block
from .blocks.cycles import cycle_rms
from .blocks.aggregate import average, thd_at_load, weighted_efficiency
from .blocks.recording import record_block, record_channels, sigmf_source
from .blocks.results import result_store
from .blocks.external import external_calculation
from .blocks.sensors import sensor_filter, sensor_store, sensor_transform
from .blocks.mqtt import mqtt_source
from .blocks.sinks import collector, printer
from .blocks.sources import simulated_instrument
from .blocks.waveform import waveform_source
from .blocks.window import moving_max, moving_min, window_block
from .blocks.spectrum import average_block, max_hold, min_hold, peak_search
from .chunk import Chunk
from .graph import Graph, default_graph, run, set_default_graph
from .gui.display import multi_spectrum_display, spectrum_display
from .instruments import R5500, WSA4000, WSA5000
from .net import process
from .parallel import ProcessPool, ThreadPool

__version__ = "0.1.0"

__all__ = [
    "Chunk", "Graph", "default_graph", "set_default_graph", "run",
    "WSA4000", "WSA5000", "R5500", "simulated_instrument",
    "record_block", "sigmf_source", "result_store", "external_calculation",
    "fft_block", "calibrate_block", "decimate_block",
    "average_block", "max_hold", "min_hold", "peak_search",
    "thd_block", "power_block",
    "formula_block", "efficiency_block", "cycle_rms",
    "average", "thd_at_load", "weighted_efficiency",
    "collector", "printer",
    "sensor_filter", "sensor_transform", "sensor_store",
    "spectrum_display", "multi_spectrum_display",
    "process",
    "window_block", "moving_max", "moving_min", "record_channels", "waveform_source",
    "ThreadPool", "ProcessPool",
    "mqtt_source",
]

# Edges between the computations of a cluster (registered for pipeline files).
from .cluster.edges import cluster_input, cluster_output  # noqa: E402

__all__ += ["cluster_input", "cluster_output"]
