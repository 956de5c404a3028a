"""
Each default is defined once (pyrf_blocks.defaults), and the commands and
the blocks they build agree on it: window, noise floor, analyzer model,
sample format and the demo tones.
"""

import inspect

from pyrf_blocks import defaults
from pyrf_blocks.blocks.dsp import fft_block
from pyrf_blocks.blocks.recording import record_block
from pyrf_blocks.blocks.sources import simulated_instrument
from pyrf_blocks.cli import build_parser
from pyrf_blocks.instruments.emulator import InstrumentEmulator
from pyrf_blocks.instruments.wsa import thinkrf_analyzer


def defaults_of(command, *arguments):
    """The parsed options of `pyrf-blocks COMMAND ARGUMENTS`, defaults filled in."""
    return build_parser().parse_args([command, *arguments])


def default_of(callable_, name):
    return inspect.signature(callable_).parameters[name].default


def test_window_is_flattop_in_every_command_and_fft_block():
    """demo, view and fft_block all default to the flat-top window."""
    assert defaults.WINDOW == "flattop"
    assert default_of(fft_block, "window") == defaults.WINDOW
    assert defaults_of("demo").window == defaults.WINDOW
    assert defaults_of("view").window == defaults.WINDOW


def test_noise_floor_is_the_same_for_view_emulate_and_the_sources():
    """view, emulate, the simulated instrument and the emulator share one noise density."""
    assert default_of(simulated_instrument, "noise_floor") == defaults.NOISE_FLOOR
    assert default_of(InstrumentEmulator, "noise_floor") == defaults.NOISE_FLOOR
    assert defaults_of("view").noise_floor == defaults.NOISE_FLOOR
    assert defaults_of("emulate").noise_floor == defaults.NOISE_FLOOR


def test_model_is_the_same_for_view_record_emulate_and_the_analyzer_source():
    """view, record, emulate and thinkrf_analyzer default to one analyzer family."""
    assert default_of(thinkrf_analyzer, "model") == defaults.MODEL
    assert default_of(InstrumentEmulator, "model") == defaults.MODEL
    assert defaults_of("view").model == defaults.MODEL
    assert defaults_of("record", "sim", "-o", "x", "--samples", "1").model == defaults.MODEL
    assert defaults_of("emulate").model == defaults.MODEL


def test_sample_format_is_the_same_for_record_and_record_block(tmp_path, graph):
    """pyrf-blocks record and record_block write IQ as the same SigMF datatype."""
    assert defaults_of("record", "sim", "-o", "x", "--samples", "1").datatype \
        == defaults.SAMPLE_FORMAT
    recorder = record_block(simulated_instrument(graph=graph), str(tmp_path / "r"))
    assert recorder.datatype == defaults.SAMPLE_FORMAT


def test_demo_and_view_simulate_the_same_tones(graph):
    """Without --tone, demo and view build the simulated instrument with the same tones."""
    from pyrf_blocks.commands import view
    source = view.open_source(defaults_of("view"), graph)
    assert source.settings["tones"] == defaults.SIMULATED_TONES
    assert source.settings["noise_floor"] == defaults.NOISE_FLOOR
