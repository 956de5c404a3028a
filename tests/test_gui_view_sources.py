"""
Where ``pyrf-blocks view`` gets its spectra: the simulated instrument, an
instrument address (through WSA4000) or a worker's block URL (through the
workers' remote_block), and how live settings reach them.
"""

import sys
import types

import numpy as np
import pytest
from twisted.internet import task

import pyrf_blocks.instruments
from pyrf_blocks import Graph
from pyrf_blocks.chunk import Chunk
from pyrf_blocks.cli import build_parser
from pyrf_blocks.commands import view
from pyrf_blocks.testing import array_source


def view_args(*argv):
    return build_parser().parse_args(["view", *argv])


def test_sim_source_gets_the_options():
    """SOURCE "sim" builds the simulated WSA4000 with the centre, span, level and tones asked."""
    graph = Graph(task.Clock())
    args = view_args("--center-mhz", "915", "--decimation", "8", "--ref-level", "-10",
                     "--tone", "0.5", "-30", "--fft-size", "2048", "--window", "flattop")
    source, fft, display = view.build(args, graph, headless=True)
    assert source.settings["center_frequency"] == 915e6
    assert source.settings["sample_rate"] == 125e6 / 8
    assert source.settings["reference_level"] == -10.0
    assert source.settings["tones"] == ((0.5e6, -30.0),)
    assert (fft.size, fft.window_name) == (2048, "flattop")
    assert display.headless and display.reference_level == -10.0


def test_an_address_goes_through_the_analyzer_of_its_model(monkeypatch):
    """SOURCE that is not "sim" nor a URL is analyzer(--model, host) with centre and decimation."""
    calls = []

    def fake_analyzer(model, host, **settings):
        calls.append((model, host, settings))
        return array_source([np.zeros(16, np.complex64)], kind="iq", graph=settings["graph"])

    monkeypatch.setattr(pyrf_blocks.instruments, "analyzer", fake_analyzer)
    graph = Graph(task.Clock())
    view.build(view_args("10.0.0.5", "--center-mhz", "2450", "--span-mhz", "20"),
               graph, headless=True)
    model, host, settings = calls[0]
    assert model == "WSA5000" and host == "10.0.0.5"
    assert settings["center_frequency"] == 2450e6 and settings["decimation"] == 4
    view.build(view_args("10.0.0.5", "--model", "WSA4000"), graph, headless=True)
    assert calls[1][0] == "WSA4000"
    with pytest.raises(view.SourceError, match="--tone is for the simulated"):
        view.build(view_args("10.0.0.5", "--tone", "1", "-20"), graph, headless=True)


def test_a_url_goes_through_remote_block_with_the_latest_policy(monkeypatch):
    """SOURCE http://... is the workers' remote_block, polled with the latest policy."""
    calls = []
    meta = {"units": "dBm", "start_frequency": 1e9, "bin_width": 1e3}

    def remote_block(url, kind, **options):
        calls.append((url, kind, options))
        chunk = Chunk("spectrum", np.zeros((1, 8), np.float32), 0, 1000, 1e6, 0, meta)
        return array_source([chunk], kind=kind, graph=options["graph"])

    client = types.ModuleType("pyrf_blocks.net.client")
    client.remote_block = remote_block
    monkeypatch.setitem(sys.modules, "pyrf_blocks.net", types.ModuleType("pyrf_blocks.net"))
    monkeypatch.setitem(sys.modules, "pyrf_blocks.net.client", client)
    graph = Graph(task.Clock())
    url = "http://127.0.0.1:8750/blocks/calibrate1"
    source, fft, display = view.build(view_args(url), graph, headless=True)
    assert calls[0][:2] == (url, "spectrum")
    assert calls[0][2]["remote_policy"] == "latest"
    assert fft is None and display.inputs == (source,)
    with pytest.raises(ValueError, match="set where the remote spectrum is made"):
        view.apply_setting(source, fft, "fft_size", 1024)


def test_settings_reach_source_and_fft():
    """apply_setting sends centre, decimation and level to the source, size and window to the FFT."""
    graph = Graph(task.Clock())
    source, fft, _ = view.build(view_args(), graph, headless=True)
    view.apply_setting(source, fft, "center_frequency", 1.5e9)
    view.apply_setting(source, fft, "decimation", 4)
    view.apply_setting(source, fft, "reference_level", -25.0)
    view.apply_setting(source, fft, "fft_size", 4096)
    view.apply_setting(source, fft, "window", "hamming")
    assert source.settings["center_frequency"] == 1.5e9
    assert source.settings["sample_rate"] == 125e6 / 4
    assert source.settings["reference_level"] == -25.0
    assert (fft.size, fft.window_name) == (4096, "hamming")
    with pytest.raises(ValueError, match="unknown setting 'gain'"):
        view.apply_setting(source, fft, "gain", 3)
    with pytest.raises(ValueError, match="size: must be at least 8, got 1"):
        view.apply_setting(source, fft, "fft_size", 1)
    assert fft.size == 4096  # a refused value changes nothing


def test_a_source_without_configure_says_so():
    """An instrument that cannot be reconfigured live is named in the error."""
    graph = Graph(task.Clock())
    fixed = array_source([np.zeros(8, np.complex64)], kind="iq", graph=graph, name="fixed")
    with pytest.raises(ValueError, match="array_source 'fixed' cannot be reconfigured"):
        view.apply_setting(fixed, None, "center_frequency", 1e9)


def test_a_narrow_span_shows_no_phantom_of_the_tone_outside_it():
    """view --span-mhz 3 (3.9 MHz): the -45 dBm tone at -2.5 MHz is outside and leaves no tone at 2401.41 MHz."""
    clock = task.Clock()
    graph = Graph(clock)
    _, _, display = view.build(view_args("--span-mhz", "3"), graph, headless=True)
    for _ in range(10):
        clock.advance(0.02)
    graph.stop()
    traces = display.traces[0]
    frequencies, levels = traces.frequencies, traces.max_hold
    near_fold = np.abs(frequencies - 2401.406e6) < 20e3  # -2.5 MHz folded by 3.90625 MHz
    assert levels[near_fold].max() < -70.0
    assert levels[np.abs(frequencies - 2401e6) < 5e3].max() == pytest.approx(-20.0, abs=0.3)
