"""
The spectrum viewer window: spectrum plot (MHz, dBm) with live, average,
max-hold and min-hold traces per source and the centre, span and RBW above
it, a waterfall with a colour bar in dBm and a time axis in seconds,
markers (the first on the peak by default) with peak search, next peak and
delta readout, reference level and dB/div, and a status bar.

The window only draws: :class:`~pyrf_blocks.gui.display.multi_spectrum_display`
owns the data and calls :meth:`SpectrumViewer.draw` once per frame.
"""

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtWidgets

from .markers import Marker, delta, marker_from_spec
from .traces import TRACE_NAMES

__all__ = ["SpectrumViewer", "PALETTE", "TRACE_COLOURS", "TRACE_LABELS",
           "DB_PER_DIV", "DEFAULT_MARKERS", "annotation_text"]

#: One colour per source, in order; with several sources the traces of one
#: source share its colour and differ in line style.
PALETTE = ("#ffd200", "#00c8ff", "#ff4fd8", "#6cff5a", "#ff8c1a", "#b48cff")
#: With a single source, each trace has its own colour.
TRACE_COLOURS = {"live": "#ffd200", "average": "#00c8ff", "max_hold": "#ff5050",
                 "min_hold": "#6cff5a"}
TRACE_LABELS = {"live": "Live", "average": "Average", "max_hold": "Max hold",
                "min_hold": "Min hold"}
#: How each trace is drawn in its source's colour: line style, width, opacity.
_TRACE_STYLES = {
    "live": (QtCore.Qt.PenStyle.SolidLine, 1, 255),
    "average": (QtCore.Qt.PenStyle.SolidLine, 2, 150),
    "max_hold": (QtCore.Qt.PenStyle.DashLine, 1, 255),
    "min_hold": (QtCore.Qt.PenStyle.DotLine, 1, 200),
}
#: Choices of the dB/div box; the plot has ten vertical divisions.
DB_PER_DIV = (1.0, 2.0, 5.0, 10.0, 20.0)
DIVISIONS = 10
_MARKER_COLOURS = ("#ff3030", "#30ff90", "#30a0ff", "#ffa030", "#ff30ff", "#ffffff")
#: Markers of a new window: the first tracks the peak.
DEFAULT_MARKERS = ("peak",)


def _marker_colour(index):
    return _MARKER_COLOURS[index % len(_MARKER_COLOURS)]


def annotation_text(meta):
    """
    The line above the spectrum, as on a bench analyzer: centre, span and
    RBW of a spectrum's ``meta`` (what it lacks is left out).
    """
    parts = []
    if "center_frequency" in meta:
        parts.append(f"Center {meta['center_frequency'] / 1e6:.4f} MHz")
    if "span" in meta:
        parts.append(f"Span {meta['span'] / 1e6:.4f} MHz")
    if "rbw" in meta:
        parts.append(f"RBW {meta['rbw'] / 1e3:.2f} kHz")
    return "    ".join(parts)


def _pen(colour, trace):
    style, width, alpha = _TRACE_STYLES[trace]
    qcolour = pg.mkColor(colour)
    qcolour.setAlpha(alpha)
    return pg.mkPen(qcolour, width=width, style=style)


class _Waterfall:
    """
    The waterfall image.  Each row is turned into colours once, when it
    arrives (peak-reduced to at most :attr:`max_columns` columns, about the
    plot's width in pixels), into a mirrored ring so the newest rows are one
    contiguous slice: a frame costs one new row, not the whole image.
    """

    max_columns = 1024

    def __init__(self, plot):
        self.item = pg.ImageItem(axisOrder="row-major")
        plot.addItem(self.item)
        colours = pg.colormap.get("inferno").getLookupTable(nPts=256, alpha=True)
        self._colours = np.ascontiguousarray(colours, dtype=np.uint8)
        self._ring = None
        self._rows_done = 0
        self._key = None

    def _colour(self, levels, bottom, top):
        rows, bins = levels.shape
        factor = -(-bins // self.max_columns)
        if factor > 1:
            padded = np.full((rows, factor * -(-bins // factor)), -np.inf, np.float32)
            padded[:, :bins] = levels
            levels = padded.reshape(rows, -1, factor).max(axis=2)
        scaled = (levels - np.float32(bottom)) * np.float32(255.0 / (top - bottom))
        np.clip(scaled, 0, 255, out=scaled)
        return self._colours[np.nan_to_num(scaled, nan=0.0).astype(np.uint8)]

    def draw(self, traces, bottom, top):
        wanted = traces.rows_added
        if not wanted:
            return
        rows = traces.waterfall_rows
        key = (traces.axis, bottom, top, rows)
        newest = traces.waterfall()
        if key != self._key or self._ring is None:
            coloured = self._colour(newest, bottom, top)
            self._ring = np.empty((2 * rows,) + coloured.shape[1:], np.uint8)
            rolled = np.roll(coloured, wanted % rows, axis=0)
            self._ring[:rows] = self._ring[rows:] = rolled
        elif wanted != self._rows_done:
            first = max(self._rows_done, wanted - rows)
            coloured = self._colour(newest[rows - (wanted - first):], bottom, top)
            for offset, row in enumerate(coloured):
                slot = (first + offset) % rows
                self._ring[slot] = self._ring[slot + rows] = row
        else:
            return
        self._rows_done = wanted
        first = wanted % rows
        self.item.setImage(self._ring[first:first + rows], autoLevels=False)
        if key != self._key:
            # After setImage: the rectangle is mapped onto the image's size.
            self._key = key
            start, width, bins = traces.axis
            self.item.setRect(QtCore.QRectF((start - width / 2) / 1e6, -rows,
                                            width * bins / 1e6, rows))


class _SecondsAxis(pg.AxisItem):
    """
    The waterfall's time axis: rows labelled with how long before the
    newest row they were taken, in seconds of device time.  Rows are added
    once per drawn frame, so their spacing varies; each tick sits on the
    row whose own time is that many seconds old.
    """

    #: Tick steps tried, seconds: the first giving at most 6 ticks is used.
    steps = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

    def __init__(self):
        super().__init__(orientation="left")
        self.ticks = []

    def set_times(self, times):
        """
        Label the rows from their device times (seconds, oldest first, NaN
        for rows not filled yet; the rows span -len(times) .. 0 on the plot).
        """
        ticks = []
        if times is not None and len(times) and np.isfinite(times[-1]):
            ages = times[-1] - times  # NaN where not filled
            oldest = np.nanmax(ages)
            step = next((s for s in self.steps if oldest / s <= 6), self.steps[-1])
            rows = len(times)
            for k in range(int(oldest // step) + 1):
                # The newest row at least k·step old: ages fall towards the top.
                older = np.flatnonzero(ages >= k * step - 1e-9)
                if len(older):
                    row = older[-1]
                    label = f"{k * step:.1f}" if step < 1 else f"{k * step:g}"
                    ticks.append((row - rows + 0.5, label))
        if ticks != self.ticks:
            self.ticks = ticks
            self.setTicks([ticks])


class SpectrumViewer(QtWidgets.QMainWindow):
    """
    The window of a spectrum display.

    :param labels: one legend name per source.
    :param reference_level: top of the plot, dBm; ``None`` follows the
        first source's ``meta['reference_level']`` until set by hand.
    :param db_per_div: dB per division (ten divisions).
    :param traces: the traces shown at first.
    :param controls: an optional widget (e.g. source controls) shown on
        the left.
    :param markers: the markers placed at first: ``"peak"`` tracks the
        highest point, a number stays at that frequency (Hz); at least two
        markers exist (for the delta readout).
    """

    #: The window was closed.
    closed = QtCore.Signal()
    #: The user set the reference level (dBm).
    reference_level_changed = QtCore.Signal(float)

    def __init__(self, labels, reference_level=None, db_per_div=10.0,
                 traces=("live", "max_hold"), controls=None, markers=DEFAULT_MARKERS):
        super().__init__()
        self.labels = list(labels)
        self._follow_reference = reference_level is None
        self.reference_level = 0.0 if reference_level is None else float(reference_level)
        self.db_per_div = float(db_per_div)
        self.shown = {name: name in traces for name in TRACE_NAMES}
        placed = [marker_from_spec(spec) for spec in markers]
        self.markers = tuple(placed + [Marker() for _ in range(2 - len(placed))])
        self.active_marker = 0
        self.delta = False
        self._traces = []
        self._x = [None] * len(self.labels)
        self._axes = [None] * len(self.labels)
        self._drawn = [None] * len(self.labels)
        self._build(controls)
        self._apply_levels()
        self.resize(1100, 760)

    # Building the window.

    def _build(self, controls):
        central = QtWidgets.QWidget()
        outer = QtWidgets.QHBoxLayout(central)
        if controls is not None:
            outer.addWidget(controls)
        column = QtWidgets.QVBoxLayout()
        outer.addLayout(column, 1)
        column.addLayout(self._build_toolbar())
        self.readout = QtWidgets.QLabel("markers: press Peak")
        self.readout.setStyleSheet("font-family: monospace;")
        column.addWidget(self.readout)
        self.plots = pg.GraphicsLayoutWidget()
        column.addWidget(self.plots, 1)
        self.spectrum_plot = self.plots.addPlot(row=0, col=0)
        self.spectrum_plot.setLabel("bottom", "frequency", units="MHz")
        self.spectrum_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.spectrum_plot.setLabel("left", "level", units="dBm")
        self.spectrum_plot.getAxis("left").enableAutoSIPrefix(False)
        # A classic 10 x 10 graticule as one path: pyqtgraph's axis grid
        # costs about 4 ms a frame per axis to replay.
        self.graticule = pg.PlotCurveItem(connect="pairs", pen=pg.mkPen("#3a3a3a"))
        self.spectrum_plot.addItem(self.graticule)
        self.spectrum_plot.setMenuEnabled(False)
        self.spectrum_plot.disableAutoRange()
        self.legend = self.spectrum_plot.addLegend(offset=(-10, 10))
        self.curves = []
        for index, label in enumerate(self.labels):
            curves = {}
            for name in TRACE_NAMES:
                colour = (TRACE_COLOURS[name] if len(self.labels) == 1
                          else PALETTE[index % len(PALETTE)])
                curve = pg.PlotDataItem(pen=_pen(colour, name))
                curve.setDownsampling(auto=True, method="peak")
                curve.setClipToView(True)
                curve.setVisible(self.shown[name])
                self.spectrum_plot.addItem(curve)
                curves[name] = curve
            self.curves.append(curves)
        self._relegend()
        self.marker_points = pg.ScatterPlotItem(size=12, symbol="t", pen=pg.mkPen("w"))
        self.spectrum_plot.addItem(self.marker_points)
        self.marker_labels = []
        for number in range(1, len(self.markers) + 1):
            colour = _marker_colour(number - 1)
            text = pg.TextItem(str(number), color=colour, anchor=(0.5, 1.6))
            text.setVisible(False)
            self.spectrum_plot.addItem(text)
            self.marker_labels.append(text)
        self.time_axis = _SecondsAxis()
        self.waterfall_plot = self.plots.addPlot(row=1, col=0,
                                                 axisItems={"left": self.time_axis})
        self.waterfall_plot.setLabel("bottom", "frequency", units="MHz")
        self.waterfall_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.waterfall_plot.setLabel("left", "seconds ago (newest on top)")
        self.waterfall_plot.setMenuEnabled(False)
        self.waterfall_plot.setXLink(self.spectrum_plot)
        self.waterfall_plot.disableAutoRange()
        self.waterfall = _Waterfall(self.waterfall_plot)
        # The colour scale of the waterfall: the plot's range, in dBm.
        self.colour_bar = pg.ColorBarItem(values=(self.bottom_level, self.reference_level),
                                          colorMap=pg.colormap.get("inferno"),
                                          label="level (dBm)", interactive=False,
                                          width=15)
        self.plots.addItem(self.colour_bar, row=1, col=1)
        self.annotation = ""
        self.plots.ci.layout.setRowStretchFactor(0, 3)
        self.plots.ci.layout.setRowStretchFactor(1, 2)
        self.status = QtWidgets.QLabel("waiting for data")
        self.statusBar().addWidget(self.status, 1)
        self.setCentralWidget(central)

    def _build_toolbar(self):
        bar = QtWidgets.QHBoxLayout()
        self.trace_boxes = {}
        for name in TRACE_NAMES:
            box = QtWidgets.QCheckBox(TRACE_LABELS[name])
            box.setChecked(self.shown[name])
            box.toggled.connect(lambda on, name=name: self.show_trace(name, on))
            bar.addWidget(box)
            self.trace_boxes[name] = box
        self.clear_button = QtWidgets.QPushButton("Clear")
        self.clear_button.setToolTip("restart average and holds")
        self.clear_button.clicked.connect(self.restart_traces)
        bar.addWidget(self.clear_button)
        bar.addSpacing(16)
        bar.addWidget(QtWidgets.QLabel("Ref"))
        self.reference_box = QtWidgets.QDoubleSpinBox()
        self.reference_box.setRange(-200.0, 50.0)
        self.reference_box.setDecimals(1)
        self.reference_box.setSuffix(" dBm")
        self.reference_box.setValue(self.reference_level)
        self.reference_box.valueChanged.connect(self._reference_edited)
        bar.addWidget(self.reference_box)
        self.division_box = QtWidgets.QComboBox()
        for value in DB_PER_DIV:
            self.division_box.addItem(f"{value:g} dB/div", value)
        if self.db_per_div not in DB_PER_DIV:
            self.division_box.addItem(f"{self.db_per_div:g} dB/div", self.db_per_div)
        self.division_box.setCurrentIndex(self.division_box.findData(self.db_per_div))
        self.division_box.currentIndexChanged.connect(
            lambda index: self.set_db_per_div(self.division_box.itemData(index)))
        bar.addWidget(self.division_box)
        bar.addSpacing(16)
        self.marker_box = QtWidgets.QComboBox()
        self.marker_box.addItems([f"Marker {n}" for n in range(1, len(self.markers) + 1)])
        self.marker_box.currentIndexChanged.connect(self.set_active_marker)
        bar.addWidget(self.marker_box)
        self.peak_button = QtWidgets.QPushButton("Peak")
        self.peak_button.clicked.connect(self.peak_search)
        bar.addWidget(self.peak_button)
        self.next_button = QtWidgets.QPushButton("Next peak")
        self.next_button.clicked.connect(self.next_peak)
        bar.addWidget(self.next_button)
        self.delta_box = QtWidgets.QCheckBox("Delta")
        self.delta_box.setToolTip("marker 2 reads relative to marker 1")
        self.delta_box.toggled.connect(self.set_delta)
        bar.addWidget(self.delta_box)
        bar.addStretch(1)
        return bar

    def _relegend(self):
        self.legend.clear()
        for label, curves in zip(self.labels, self.curves):
            for name in TRACE_NAMES:
                if self.shown[name]:
                    self.legend.addItem(curves[name], f"{label} {TRACE_LABELS[name].lower()}")

    # Settings.

    def show_trace(self, name, visible=True):
        """
        Show or hide one trace (of every source).
        """
        self.shown[name] = bool(visible)
        for curves in self.curves:
            curves[name].setVisible(self.shown[name])
        if self.trace_boxes[name].isChecked() != self.shown[name]:
            self.trace_boxes[name].setChecked(self.shown[name])
        self._relegend()
        self._redraw()

    def _reference_edited(self, value):
        if value != self.reference_level:
            self._follow_reference = False
            self.set_reference_level(value)
            self.reference_level_changed.emit(float(value))

    def set_reference_level(self, dbm):
        """
        Put the top of the plot at ``dbm``.
        """
        self.reference_level = float(dbm)
        if self.reference_box.value() != self.reference_level:
            self.reference_box.blockSignals(True)
            self.reference_box.setValue(self.reference_level)
            self.reference_box.blockSignals(False)
        self._apply_levels()

    def set_db_per_div(self, db):
        """
        Set the vertical scale, dB per division.
        """
        self.db_per_div = float(db)
        self._apply_levels()

    @property
    def bottom_level(self):
        return self.reference_level - DIVISIONS * self.db_per_div

    def _draw_graticule(self):
        bottom, top = self.bottom_level, self.reference_level
        if self._x[0] is None:
            left, right = 0.0, 1.0
        else:
            left, right = self._x[0][0], self._x[0][-1]
        steps = np.linspace(0.0, 1.0, DIVISIONS + 1)
        xs = left + (right - left) * steps
        ys = bottom + (top - bottom) * steps
        vertical_x = np.repeat(xs, 2)
        vertical_y = np.tile([bottom, top], len(xs))
        horizontal_x = np.tile([left, right], len(ys))
        horizontal_y = np.repeat(ys, 2)
        self.graticule.setData(np.concatenate((vertical_x, horizontal_x)),
                               np.concatenate((vertical_y, horizontal_y)))

    def _apply_levels(self):
        self._draw_graticule()
        if hasattr(self, "colour_bar"):
            self.colour_bar.setLevels((self.bottom_level, self.reference_level))
        self.spectrum_plot.setYRange(self.bottom_level, self.reference_level, padding=0)
        self.spectrum_plot.getAxis("left").setTickSpacing(
            major=2 * self.db_per_div, minor=self.db_per_div)
        self._redraw()

    def restart_traces(self):
        """
        Start the average and the holds of every source afresh.
        """
        for traces in self._traces:
            traces.restart()
        self._redraw()

    # Markers.

    def set_active_marker(self, index):
        self.active_marker = int(index)
        if self.marker_box.currentIndex() != self.active_marker:
            self.marker_box.setCurrentIndex(self.active_marker)

    def set_delta(self, on):
        self.delta = bool(on)
        if self.delta_box.isChecked() != self.delta:
            self.delta_box.setChecked(self.delta)
        self._draw_markers()

    def marker_trace(self):
        """
        ``(frequencies_hz, levels)`` the markers read: the first shown
        trace of the first source (live when none is shown), or ``None``.
        """
        if not self._traces or self._traces[0].frequencies is None:
            return None
        traces = self._traces[0]
        name = next((n for n in TRACE_NAMES if self.shown[n]), "live")
        levels = traces.trace(name)
        if levels is None:
            return None
        return traces.frequencies, levels

    def peak_search(self):
        """
        Move the active marker to the highest point of the marker trace.
        """
        trace = self.marker_trace()
        if trace is not None:
            self.markers[self.active_marker].peak(trace[1])
        self._draw_markers()

    def next_peak(self):
        """
        Move the active marker to the next lower peak.
        """
        trace = self.marker_trace()
        if trace is not None:
            self.markers[self.active_marker].next_peak(trace[1])
        self._draw_markers()

    def readout_text(self):
        """
        The marker readout line (MHz, dBm, and the delta when asked).
        """
        trace = self.marker_trace()
        if trace is None:
            return "markers: no data yet"
        frequencies, levels = trace
        parts = []
        for number, marker in enumerate(self.markers, 1):
            reading = marker.reading(frequencies, levels)
            if reading is None:
                continue
            if number == 2 and self.delta:
                difference = delta(self.markers[0], marker, frequencies, levels)
                if difference is not None:
                    parts.append(f"Δ2-1 {difference[0] / 1e6:+.4f} MHz "
                                 f"{difference[1]:+.2f} dB")
                    continue
            parts.append(f"M{number} {reading[0] / 1e6:.4f} MHz {reading[1]:.2f} dBm")
        return "   ".join(parts) or "markers: press Peak"

    def _draw_markers(self):
        trace = self.marker_trace()
        spots = []
        for index, (marker, label) in enumerate(zip(self.markers, self.marker_labels)):
            colour = _marker_colour(index)
            if trace is not None:
                marker.follow(*trace)
            reading = None if trace is None else marker.reading(*trace)
            label.setVisible(reading is not None)
            if reading is not None:
                x, y = reading[0] / 1e6, reading[1]
                spots.append({"pos": (x, y), "brush": pg.mkBrush(colour)})
                label.setPos(x, y)
        self.marker_points.setData(spots)
        self.readout.setText(self.readout_text())

    # Drawing.

    def _redraw(self):
        if self._traces:
            self._drawn = [None] * len(self._drawn)
            self.draw(self._traces, None)

    def draw(self, traces, status):
        """
        Draw one frame from ``traces`` (one
        :class:`~pyrf_blocks.gui.traces.SpectrumTraces` per source) and put
        ``status`` in the status bar (``None`` leaves it).
        """
        self._traces = traces
        first = traces[0] if traces else None
        if (self._follow_reference and first is not None
                and "reference_level" in first.meta
                and first.meta["reference_level"] != self.reference_level):
            self.set_reference_level(first.meta["reference_level"])
        for index, (trace, curves) in enumerate(zip(traces, self.curves)):
            if trace.frequencies is None:
                continue
            if trace.axis != self._axes[index]:
                self._axes[index] = trace.axis
                self._x[index] = trace.frequencies / 1e6
                if index == 0:
                    x = self._x[0]
                    self.spectrum_plot.setXRange(x[0], x[-1], padding=0)
                    self._draw_graticule()
                    rows = trace.waterfall_rows
                    self.waterfall_plot.setYRange(-rows, 0, padding=0)
            if trace.spectra == self._drawn[index]:
                continue
            self._drawn[index] = trace.spectra
            x = self._x[index]
            for name in TRACE_NAMES:
                levels = trace.trace(name)
                if not self.shown[name]:
                    continue
                if levels is None:
                    curves[name].clear()
                else:
                    curves[name].setData(x, levels)
        if first is not None:
            self.waterfall.draw(first, self.bottom_level, self.reference_level)
            self.time_axis.set_times(first.row_times())
            annotation = annotation_text(first.meta)
            if annotation != self.annotation:
                self.annotation = annotation
                self.spectrum_plot.setTitle(annotation)
        self._draw_markers()
        if status is not None:
            self.status.setText(status)

    def closeEvent(self, event):
        self.closed.emit()
        super().closeEvent(event)
