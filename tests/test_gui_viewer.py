"""
The viewer window, offscreen with pytest-qt, fed by the simulated
instrument on a task.Clock: what is plotted, screenshots, markers, trace
modes, waterfall, levels, live controls and closing.
"""

import functools
import re

import numpy as np
import pytest
from twisted.internet import task

pytest.importorskip("pyqtgraph.Qt", reason="the viewer needs the gui extra "
                    "(pyqtgraph, PySide6-Essentials) and Qt's system libraries")

import pyqtgraph as pg  # noqa: E402
from pyqtgraph.Qt import QtCore, QtGui  # noqa: E402

from pyrf_blocks import Graph, multi_spectrum_display, spectrum_display  # noqa: E402
from pyrf_blocks.cli import build_parser  # noqa: E402
from pyrf_blocks.commands import view  # noqa: E402
from pyrf_blocks.testing import recording_sink  # noqa: E402

import gui_support  # noqa: E402
from gui_support import advance  # noqa: E402

TONES = [(1.25e6, -20.0), (-2.5e6, -45.0)]


@pytest.fixture
def clock(qapp):
    return task.Clock()


# The windows below are driven by a task.Clock, far faster than real time,
# so draw_share=None: every frame is drawn (test_slow_drawing_... is the one
# about skipping frames).


@pytest.fixture
def graph(clock):
    graph = Graph(clock)
    yield graph
    for sink in graph.sinks:
        sink.close()


sim_spectra = functools.partial(gui_support.sim_spectra, tones=TONES)


def image_array(path):
    image = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
    return pg.functions.imageToArray(image, copy=True, transpose=False)[..., :3]


def near(pixels, colour, tolerance=40):
    target = np.array(pg.mkColor(colour).getRgb()[:3])
    return np.abs(pixels.astype(int) - target).sum(axis=-1) <= tolerance


def test_plotted_live_trace_has_the_tone_at_its_frequency_and_level(graph, clock):
    """The live curve's data peaks at 1001.25 MHz (one bin) and -20 dBm (0.5 dB)."""
    _, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None)
    advance(clock, 0.3)
    x, y = display.window.curves[0]["live"].xData, display.window.curves[0]["live"].yData
    peak = int(np.argmax(y))
    assert x[peak] == pytest.approx(1001.25, abs=0.01)  # MHz; bins are 10 kHz
    assert y[peak] == pytest.approx(-20.0, abs=0.5)
    second = int(np.argmax(np.where(x < 1000.0, y, -np.inf)))
    assert x[second] == pytest.approx(997.5, abs=0.01)
    assert y[second] == pytest.approx(-45.0, abs=0.5)


def test_screenshot_is_a_png_showing_the_traces_and_waterfall(graph, clock, tmp_path):
    """The window's PNG has the live (yellow) and max-hold (red) trace colours and a waterfall."""
    _, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None, traces=("live", "max_hold"))
    advance(clock, 1.0)
    path = tmp_path / "viewer.png"
    display.screenshot(path)
    pixels = image_array(path)
    assert pixels.shape[0] >= 600 and pixels.shape[1] >= 900
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    assert near(pixels, "#ffd200").sum() > 200  # live trace
    assert near(pixels, "#ff5050").sum() > 100  # max hold
    # The tone's column of the waterfall is bright: inferno's top colours.
    assert near(pixels, "#fcffa4", tolerance=90).sum() + near(pixels, "#f98e09", 90).sum() > 50


def test_peak_next_peak_and_delta_buttons(graph, clock, qtbot):
    """Peak finds the -20 dBm tone, Next peak the -45 dBm one, Delta reads their difference."""
    _, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None, traces=("live",))
    window = display.window
    advance(clock, 0.3)
    qtbot.mouseClick(window.peak_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.readout.text().startswith("M1 1001.2500 MHz -20.0")
    window.marker_box.setCurrentIndex(1)
    qtbot.mouseClick(window.peak_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.mouseClick(window.next_button, QtCore.Qt.MouseButton.LeftButton)
    second = window.readout.text().split("M2 ")[1].split()
    assert second[:2] == ["997.5000", "MHz"]
    assert float(second[2]) == pytest.approx(-45.0, abs=0.5)
    window.delta_box.setChecked(True)
    difference = window.readout.text().split("Δ2-1 ")[1]
    hz, db = difference.split(" MHz ")
    assert float(hz) == pytest.approx(-3.75, abs=1e-3)
    assert float(db.split()[0]) == pytest.approx(-25.0, abs=0.7)
    assert window.marker_labels[0].isVisible() and window.marker_labels[1].isVisible()


def test_trace_checkboxes_show_hide_and_fill_traces(graph, clock):
    """Ticking Average and Min hold shows them with data and lists them in the legend."""
    _, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None, traces=("live",))
    window = display.window
    advance(clock, 0.3)
    curves = window.curves[0]
    assert curves["live"].isVisible() and not curves["average"].isVisible()
    window.trace_boxes["average"].setChecked(True)
    window.trace_boxes["min_hold"].setChecked(True)
    window.trace_boxes["live"].setChecked(False)
    assert curves["average"].isVisible() and curves["min_hold"].isVisible()
    assert not curves["live"].isVisible()
    assert curves["average"].yData is not None and len(curves["average"].yData) == 1000
    names = [label.text for _, label in window.legend.items]
    assert names == ["simulated_instrument average", "simulated_instrument min hold"]  # the source
    # The average of a steady tone reads its level; min hold stays at or below it.
    peak = int(np.argmax(curves["average"].yData))
    assert curves["average"].yData[peak] == pytest.approx(-20.0, abs=0.5)
    assert np.all(curves["min_hold"].yData <= curves["average"].yData + 0.01)


def test_clear_restarts_the_holds(graph, clock, qtbot):
    """After Clear the max hold starts again from the next spectrum."""
    wsa, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None)
    advance(clock, 0.2)
    wsa.configure(tones=[(1.25e6, -60.0)])
    advance(clock, 0.2)
    hold = display.window.curves[0]["max_hold"]
    assert hold.yData.max() == pytest.approx(-20.0, abs=0.5)  # still holds the old tone
    qtbot.mouseClick(display.window.clear_button, QtCore.Qt.MouseButton.LeftButton)
    advance(clock, 0.2)
    assert hold.yData.max() == pytest.approx(-60.0, abs=0.5)


def test_waterfall_rows_advance_one_per_frame(graph, clock):
    """Each frame adds a waterfall row and the image's newest row shows the tone."""
    _, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None, waterfall_rows=64)
    advance(clock, 0.5)
    first = display.traces[0].rows_added
    advance(clock, 0.5)
    assert display.traces[0].rows_added == first + 15
    image = display.window.waterfall.item.image
    assert image.shape[:2] == (64, 1000)
    newest = image[-1, :, :3].astype(int).sum(axis=-1)
    tone_column = 625  # 1001.25 MHz on a 1000-bin axis from 996 MHz
    assert newest[tone_column] > newest[100] + 200


def test_reference_level_and_db_per_div_set_the_plot_range(graph, clock):
    """Ref -10 dBm at 5 dB/div shows -60 to -10 dBm and tells the source side."""
    _, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None)
    window = display.window
    told = []
    window.reference_level_changed.connect(told.append)
    window.reference_box.setValue(-10.0)
    window.division_box.setCurrentIndex(window.division_box.findData(5.0))
    low, high = window.spectrum_plot.viewRange()[1]
    assert (low, high) == pytest.approx((-60.0, -10.0))
    assert told == [-10.0]


def test_reference_level_follows_the_source_until_set_by_hand(graph, clock):
    """Without reference_level the plot's top is the source's reference level."""
    _, spectra = sim_spectra(graph, reference_level=-30.0)
    display = spectrum_display(spectra, draw_share=None)
    advance(clock, 0.1)
    assert display.window.reference_level == -30.0
    assert display.window.spectrum_plot.viewRange()[1][1] == pytest.approx(-30.0)


def view_args(*argv):
    return build_parser().parse_args(["view", *argv])


def test_source_controls_reconfigure_the_running_instrument(graph, clock):
    """Centre, span, FFT size and window from the Source panel reach the next spectra."""
    args = view_args("--decimation", "32", "--fft-size", "512")
    wsa, fft, display = view.build(args, graph, headless=False)
    from pyrf_blocks.gui.controls import SourceControls
    controls = display.window.findChild(SourceControls)
    advance(clock, 0.3)
    assert display.traces[0].meta["center_frequency"] == 2.4e9
    controls.center_box.setValue(2450.0)
    advance(clock, 0.3)
    traces = display.traces[0]
    assert traces.meta["center_frequency"] == 2.45e9
    assert traces.frequencies[256] == pytest.approx(2.45e9)
    # The default tone, +1 MHz, moved with the centre.
    assert traces.frequencies[np.argmax(traces.live)] == pytest.approx(2.451e9, abs=4e3)
    controls.span_box.setCurrentIndex(controls.span_box.findData(32))
    controls.size_box.setCurrentIndex(controls.size_box.findData(2048))
    controls.window_box.setCurrentIndex(controls.window_box.findData("flattop"))
    advance(clock, 0.3)
    meta = display.traces[0].meta
    assert meta["sample_rate"] == 125e6 / 32 and meta["fft_size"] == 2048
    assert meta["window"] == "flattop"
    # A flat-top window's noise bandwidth is about 3.77 bins.
    assert controls.rbw() == pytest.approx(3.77 * 125e6 / 32 / 2048, rel=0.01)
    assert controls.rbw_label.text() == "7.19 kHz"
    display.window.reference_box.setValue(-20.0)
    assert wsa.settings["reference_level"] == -20.0


def test_a_refused_control_value_is_shown_not_raised(graph, clock):
    """A setting the source refuses appears in the status bar; the viewer keeps running."""
    args = view_args()
    wsa, fft, display = view.build(args, graph, headless=False)
    from pyrf_blocks.gui.controls import SourceControls
    controls = display.window.findChild(SourceControls)
    controls.changed.emit("center_frequency", "not a number")
    assert "center_frequency: 'not a number' is not a frequency" in display.window.statusBar().currentMessage()
    advance(clock, 0.1)
    assert wsa.active


def test_slow_drawing_gets_fewer_frames_not_less_data(graph, clock, monkeypatch):
    """With 50 ms draws and draw_share=0.5, drawing gets at most half the time; no chunk is lost."""
    from pyrf_blocks.gui import display as display_module
    spent = [0.0]
    monkeypatch.setattr(display_module, "perf_counter", lambda: clock.seconds() + spent[0])
    _, spectra = sim_spectra(graph)
    recorder = recording_sink(spectra)
    display = spectrum_display(spectra, draw_share=0.5, update_budget=1e6)
    draw = display.window.draw

    def slow_draw(*args):
        draw(*args)
        spent[0] += 0.05

    monkeypatch.setattr(display.window, "draw", slow_draw)
    advance(clock, 1.0)
    # Fake wall time is the clock plus the time spent drawing.
    assert display.frames < 30
    assert spent[0] / (clock.seconds() + spent[0]) <= 0.5
    assert spent[0] / (clock.seconds() + spent[0] + 0.05) > 0.4  # not starved either
    assert display.dropped == [0]
    assert display.input_stats[0].chunks == len(recorder.chunks) > 500


def test_closing_the_window_closes_the_display_and_stops_the_source(graph, clock, qtbot):
    """Closing the window disconnects the display's edges and stops the instrument."""
    wsa, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None)
    advance(clock, 0.1)
    done = graph.done()
    display.window.close()
    assert display.window is None and not wsa.active and not spectra.edges
    assert done.called


def test_multi_display_overlays_sources_in_distinct_colours(graph, clock, tmp_path):
    """Two sources get two colours and legend entries; each curve shows its own tone."""
    _, first = sim_spectra(graph, tones=[(1e6, -20.0)], seed=1)
    _, second = sim_spectra(graph, tones=[(-2e6, -30.0)], seed=2)
    display = multi_spectrum_display(first, second, labels=["left", "right"],
                                     traces=("live",), draw_share=None)
    advance(clock, 0.3)
    window = display.window
    colours = {window.curves[i]["live"].opts["pen"].color().name() for i in range(2)}
    assert len(colours) == 2
    assert [label.text for _, label in window.legend.items] == ["left live", "right live"]
    for index, frequency in enumerate((1001.0, 998.0)):
        curve = window.curves[index]["live"]
        assert curve.xData[np.argmax(curve.yData)] == pytest.approx(frequency, abs=0.01)
    display.screenshot(tmp_path / "multi.png")
    pixels = image_array(tmp_path / "multi.png")
    for colour in colours:
        assert near(pixels, colour).sum() > 100


def test_more_than_20k_none_returning_qt_calls_do_not_crash(qapp):
    """25 000 calls of Qt methods returning None (PySide6 6.12.0 crashed near 16 k)."""
    from pyqtgraph.Qt import QtWidgets
    label = QtWidgets.QLabel()
    results = set()
    for number in range(12_500):
        results.add(label.setText(str(number)))
        results.add(label.update())
    assert results == {None}
    assert label.text() == "12499"


def test_view_options_are_checked_before_anything_opens():
    """--span-mhz and --rbw-khz choose decimation and FFT size; conflicting options exit 2."""
    args = view_args("--span-mhz", "3", "--rbw-khz", "5", "--window", "hann")
    assert view.decimation_for(args) == 32  # 125/32 = 3.9 MHz >= 3 MHz
    # Hann's RBW is 1.5 bins: 5.7 kHz at 1024 points, 2.9 kHz at 2048.
    assert view.fft_size_for(args, 125e6 / 32) == 2048
    # Flat-top's (the default) is 3.77 bins: 7.2 kHz at 2048 points, 3.6 kHz at 4096.
    assert view.fft_size_for(view_args("--span-mhz", "3", "--rbw-khz", "5"), 125e6 / 32) == 4096
    with pytest.raises(SystemExit) as exit:
        view_args("--span-mhz", "3", "--decimation", "4")
    assert exit.value.code == 2


# What the window tells a person without being asked (issue 11).

def test_a_peak_marker_is_placed_by_default(graph, clock):
    """Without pressing Peak, marker 1 sits on the strongest tone, its frequency interpolated."""
    _, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None)
    advance(clock, 0.3)
    window = display.window
    assert window.readout.text().startswith("M1 1001.2500 MHz -20.0"), window.readout.text()
    assert window.marker_labels[0].isVisible()


def test_view_places_markers_at_the_frequencies_given(graph, clock):
    """view --marker 997.5 --marker peak puts M1 on the -45 dBm tone and M2 on the peak; a bad one exits 2."""
    args = view_args("--center-mhz", "1000", "--span-mhz", "10", "--tone", "1.25", "-20",
                     "--tone", "-2.5", "-45", "--marker", "997.5", "--marker", "peak")
    _, _, display = view.build(args, graph, headless=False)
    advance(clock, 0.5)
    text = display.window.readout.text()
    first = re.match(r"M1 (\S+) MHz (\S+) dBm", text).groups()
    second = re.search(r"M2 (\S+) MHz (\S+) dBm", text).groups()
    assert abs(float(first[0]) - 997.5) < 0.01 and abs(float(first[1]) + 45) < 1, text
    assert abs(float(second[0]) - 1001.25) < 0.001 and abs(float(second[1]) + 20) < 0.5, text
    with pytest.raises(SystemExit) as exit:
        view_args("--marker", "near the tone")
    assert exit.value.code == 2


def test_waterfall_has_a_colour_bar_in_dbm_and_a_time_axis_in_seconds(graph, clock):
    """The colour bar spans the plot's dBm range (and follows it); the time axis labels rows by their age."""
    _, spectra = sim_spectra(graph)
    display = spectrum_display(spectra, draw_share=None, reference_level=0.0)
    advance(clock, 3.0)
    window = display.window
    assert window.colour_bar.levels() == (-100.0, 0.0)
    assert "dBm" in window.colour_bar.getAxis("left").labelText
    window.set_reference_level(-10.0)
    assert window.colour_bar.levels() == (-110.0, -10.0)
    ticks = dict((label, value) for value, label in window.time_axis.ticks)
    assert set(ticks) == {"0.0", "0.5", "1.0", "1.5", "2.0", "2.5"}, ticks
    # About 30 rows a second, the newest at the top (0): one second is ~30 rows down.
    assert ticks["0.0"] == pytest.approx(-0.5, abs=1)
    assert ticks["1.0"] == pytest.approx(-30.5, abs=3)
    assert window.waterfall_plot.getAxis("left").labelText.startswith("seconds ago")


def test_legend_names_the_source_and_the_plot_says_centre_span_rbw(graph, clock):
    """view's legend says 'sim live', not 'calibrate_block live'; the title reads Center, Span, RBW."""
    args = view_args("--span-mhz", "7", "--traces", "live")
    _, _, display = view.build(args, graph, headless=False)
    advance(clock, 0.3)
    window = display.window
    assert [label.text for _, label in window.legend.items] == ["sim live"]
    assert window.annotation == "Center 2400.0000 MHz    Span 7.8125 MHz    RBW 28.76 kHz"
    assert window.spectrum_plot.titleLabel.text == window.annotation


def test_the_window_and_the_printed_summary_give_the_same_latency(graph, clock, tmp_path):
    """At the end of a run the window's status line is the one view prints, not inflated by the time since the last chunk."""
    args = view_args("--duration", "1")
    _, _, display = view.build(args, graph, headless=False)
    advance(clock, 1.0)
    display.screenshot(tmp_path / "view.png")
    graph.stop()
    for _ in range(20):
        clock.advance(0.05)  # the end of the stream arrives; a second goes by
    shown = display.window.status.text()
    printed = view.summary(display)
    assert printed.endswith(shown), (shown, printed)
    latency = int(re.search(r"latency (\d+) ms", shown).group(1))
    assert latency < 100, shown  # the second after the end does not count
