"""
The display sinks in headless mode, on a task.Clock: what they keep, their
edges' policy, throttling, drops, status figures, closing and errors.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from twisted.internet import task

from pyrf_blocks import (Graph, WSA4000, fft_block,
                         multi_spectrum_display, spectrum_display)
from pyrf_blocks.chunk import Chunk
from pyrf_blocks.interfaces import ISink
from pyrf_blocks.registry import lookup
from pyrf_blocks.testing import array_source, assert_provides, recording_sink, run_clock

from gui_support import advance, sim_spectra

ROOT = Path(__file__).resolve().parents[1]
META = {"units": "dBm", "start_frequency": 1e9, "bin_width": 1e3, "reference_level": 0.0}


def spectrum_chunks(count, rows=2, bins=32, meta=META):
    rng = np.random.default_rng(0)
    step = rows * 1_000_000
    return [Chunk("spectrum", (-80 + rng.standard_normal((rows, bins))).astype(np.float32),
                  i * step, (i + 1) * step, 2000.0, i, meta) for i in range(count)]


def test_both_displays_are_registered_sinks():
    """Both displays provide ISink fully and are registered under their names."""
    graph = Graph(task.Clock())
    source = array_source(spectrum_chunks(1), kind="spectrum", graph=graph)
    single = spectrum_display(source, headless=True)
    multi = multi_spectrum_display(source, source, headless=True)
    assert_provides(ISink, single)
    assert_provides(ISink, multi)
    assert lookup("spectrum_display") is spectrum_display
    assert lookup("multi_spectrum_display") is multi_spectrum_display


def test_importing_the_package_imports_no_qt():
    """``import pyrf_blocks`` (displays included) loads neither Qt nor pyqtgraph nor a reactor."""
    code = ("import sys, pyrf_blocks; from pyrf_blocks import spectrum_display; "
            "print([m for m in sys.modules if m.split('.')[0] in "
            "('PySide6', 'PyQt6', 'pyqtgraph', 'qasync') or m == 'twisted.internet.reactor'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_known_tone_is_kept_at_its_frequency_and_level():
    """A -20 dBm tone at +1.25 MHz is the live trace's peak, within one bin and 0.5 dB."""
    clock = task.Clock()
    graph = Graph(clock)
    _, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, headless=True)
    advance(clock, 0.5)
    traces = display.traces[0]
    peak = int(np.argmax(traces.live))
    assert abs(traces.frequencies[peak] - 1001.25e6) <= traces.meta["bin_width"]
    assert traces.live[peak] == pytest.approx(-20.0, abs=0.5)
    assert traces.max_hold[peak] == pytest.approx(-20.0, abs=0.5)


def test_display_edges_use_the_latest_policy():
    """A display's input edges are 'latest' edges; any other policy is refused."""
    graph = Graph(task.Clock())
    source = array_source(spectrum_chunks(1), kind="spectrum", graph=graph)
    display = spectrum_display(source, headless=True)
    assert [edge.policy for edge in source.edges] == ["latest"]
    assert display.active
    with pytest.raises(ValueError, match="'latest' policy, got policy 'block'"):
        spectrum_display(source, headless=True, policy="block")


def test_a_slow_display_never_slows_a_recorder_on_the_same_source():
    """A display taking one chunk per frame leaves the recorder every chunk, in order."""
    clock = task.Clock()
    graph = Graph(clock)
    chunks = spectrum_chunks(200)
    source = array_source(chunks, kind="spectrum", graph=graph)
    recorder = recording_sink(source)
    display = spectrum_display(source, headless=True, update_budget=0.0)
    assert run_clock(clock, graph, step=1 / 30) is None
    assert len(recorder.chunks) == 200 and recorder.problems == []
    assert display.finished
    taken = display.input_stats[0].chunks
    assert taken < 200
    assert taken + display.dropped[0] == 200  # every chunk is taken or counted as dropped


def test_draw_rate_is_capped_while_every_chunk_is_taken():
    """At max_fps=20 a second gives 20 frames, while all ~477 chunks/s are taken."""
    clock = task.Clock()
    graph = Graph(clock)
    wsa, spectra = sim_spectra(graph, sample_rate=7.8125e6)
    display = spectrum_display(spectra, headless=True, max_fps=20, update_budget=1e6)
    advance(clock, 2.0, fps=100)
    assert display.frames == 40
    assert display.dropped == [0]
    stats = display.input_stats[0]
    assert stats.rate == pytest.approx(7.8125e6 / 16384, rel=0.05)
    assert stats.latency < 0.1
    assert "chunks/s" in display.status_text() and "dropped 0" in display.status_text()


def test_closing_the_display_stops_the_source():
    """Closing the only consumer disconnects the chain back to the instrument."""
    clock = task.Clock()
    graph = Graph(clock)
    wsa, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, headless=True)
    advance(clock, 0.2)
    assert wsa.active
    frames = display.frames
    done = graph.done()
    display.close()
    assert not wsa.active and not spectra.active
    assert done.called  # graph.run() returns: nothing is left to show
    advance(clock, 0.2)
    assert display.frames == frames  # its frame timer stopped too


def test_closing_the_display_leaves_other_consumers_running():
    """A recorder on the same chain keeps the instrument running after the display closes."""
    clock = task.Clock()
    graph = Graph(clock)
    wsa, spectra = sim_spectra(graph)
    recorder = recording_sink(spectra, keep=2)
    display = spectrum_display(spectra, headless=True)
    advance(clock, 0.1)
    display.close()
    before = recorder.chunks[-1].seq
    advance(clock, 0.1)
    assert wsa.active and recorder.chunks[-1].seq > before


def test_end_of_stream_draws_a_last_frame_and_finishes():
    """A finite source: the display shows the last chunk, stops its timer and the graph is done."""
    clock = task.Clock()
    graph = Graph(clock)
    chunks = spectrum_chunks(3)
    source = array_source(chunks, kind="spectrum", graph=graph)
    display = spectrum_display(source, headless=True)
    assert run_clock(clock, graph) is None
    assert display.finished and display.frames >= 1
    assert_allclose(display.traces[0].live, chunks[-1].data[-1])
    assert display.traces[0].rows_added == display.frames


def test_multi_display_keeps_each_source_apart():
    """Two sources at different rates are kept independently, each with its own traces."""
    clock = task.Clock()
    graph = Graph(clock)
    first = array_source(spectrum_chunks(5), kind="spectrum", graph=graph)
    other_meta = dict(META, start_frequency=2e9)
    second = array_source(spectrum_chunks(2, rows=5, bins=8, meta=other_meta),
                          kind="spectrum", graph=graph)
    display = multi_spectrum_display(first, second, labels=["a", "b"], headless=True)
    assert run_clock(clock, graph) is None
    assert [t.spectra for t in display.traces] == [10, 10]
    assert display.traces[1].frequencies[0] == 2e9
    assert "a: " in display.status_text() and "b: " in display.status_text()


def test_uncalibrated_spectra_fail_naming_the_display_and_units():
    """Linear power spectra are refused with a message naming the display and the units."""
    clock = task.Clock()
    graph = Graph(clock)
    wsa = WSA4000("sim", graph=graph)
    spectrum_display(fft_block(wsa), headless=True, name="scope")
    failure = run_clock(clock, graph)
    assert failure is not None
    assert "spectrum_display 'scope' shows dBm spectra" in str(failure.value)
    assert "units 'power'" in str(failure.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_fps": 0}, "max_fps must be positive, got 0"),
    ({"traces": ("live", "peak")}, "unknown trace\\(s\\) 'peak'"),
    ({"db_per_div": -1}, "db_per_div must be positive, got -1"),
    ({"labels": ["a", "b"]}, "2 label\\(s\\) for 1 input"),
    ({"average": 0}, "average must be a positive integer, got 0"),
])
def test_bad_parameters_are_refused_clearly(kwargs, message):
    """Each bad display parameter raises ValueError naming the value."""
    graph = Graph(task.Clock())
    source = array_source(spectrum_chunks(1), kind="spectrum", graph=graph)
    with pytest.raises(ValueError, match=message):
        spectrum_display(source, headless=True, **kwargs)


def test_a_display_needs_a_spectrum_producer():
    """Connecting a display to an IQ source fails at once, naming both ends."""
    graph = Graph(task.Clock())
    wsa = WSA4000("sim", graph=graph)
    with pytest.raises(TypeError, match="must provide ISpectrumProducer"):
        spectrum_display(wsa, headless=True)
