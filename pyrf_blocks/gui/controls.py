"""
Source controls for ``pyrf-blocks view``: centre frequency, span
(decimation), FFT size (with the RBW it gives) and window.  The panel only
reports what the user chose, as ``changed(name, value)``; the command
applies it to the source and the FFT.
"""

from pyqtgraph.Qt import QtCore, QtWidgets

from ..numerics.spectral import window_gains

__all__ = ["SourceControls", "DECIMATIONS", "FFT_SIZES", "WINDOWS"]

DECIMATIONS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
FFT_SIZES = (256, 512, 1024, 2048, 4096, 8192, 16384)
WINDOWS = ("hann", "hamming", "blackmanharris", "flattop", "boxcar")


def _choose(box, value):
    index = box.findData(value)
    if index < 0:
        box.addItem(str(value), value)
        index = box.count() - 1
    box.setCurrentIndex(index)


class SourceControls(QtWidgets.QGroupBox):
    """
    The panel.  Settings are named as in :func:`pyrf_blocks.commands.view.apply_setting`:
    ``center_frequency`` (Hz), ``decimation``, ``fft_size``, ``window``.

    :param full_rate: the instrument's undecimated sample rate, Hz (the
        span at decimation 1).
    """

    #: ``(name, value)``: the user changed a setting.
    changed = QtCore.Signal(str, object)

    def __init__(self, center_frequency, decimation, fft_size, window, full_rate):
        super().__init__("Source")
        self.full_rate = float(full_rate)
        form = QtWidgets.QFormLayout(self)
        self.center_box = QtWidgets.QDoubleSpinBox()
        self.center_box.setRange(0.0, 30000.0)
        self.center_box.setDecimals(3)
        self.center_box.setSuffix(" MHz")
        self.center_box.setKeyboardTracking(False)
        self.center_box.setValue(center_frequency / 1e6)
        self.center_box.valueChanged.connect(
            lambda mhz: self.changed.emit("center_frequency", mhz * 1e6))
        form.addRow("Centre", self.center_box)
        self.span_box = QtWidgets.QComboBox()
        for factor in DECIMATIONS:
            self.span_box.addItem(f"{self.full_rate / factor / 1e6:g} MHz (÷{factor})", factor)
        _choose(self.span_box, decimation)
        self.span_box.currentIndexChanged.connect(
            lambda i: self._emit("decimation", self.span_box.itemData(i)))
        form.addRow("Span", self.span_box)
        self.size_box = QtWidgets.QComboBox()
        for size in FFT_SIZES:
            self.size_box.addItem(str(size), size)
        _choose(self.size_box, fft_size)
        self.size_box.currentIndexChanged.connect(
            lambda i: self._emit("fft_size", self.size_box.itemData(i)))
        form.addRow("FFT size", self.size_box)
        self.window_box = QtWidgets.QComboBox()
        for name in WINDOWS:
            self.window_box.addItem(name, name)
        _choose(self.window_box, window)
        self.window_box.currentIndexChanged.connect(
            lambda i: self._emit("window", self.window_box.itemData(i)))
        form.addRow("Window", self.window_box)
        self.rbw_label = QtWidgets.QLabel()
        form.addRow("RBW", self.rbw_label)
        self._show_rbw()

    def rbw(self):
        """
        The resolution bandwidth of the current choices, Hz.
        """
        rate = self.full_rate / self.span_box.currentData()
        size = self.size_box.currentData()
        return window_gains(self.window_box.currentData(), size)[1] * rate / size

    def _show_rbw(self):
        self.rbw_label.setText(f"{self.rbw() / 1e3:.3g} kHz")

    def _emit(self, name, value):
        self._show_rbw()
        self.changed.emit(name, value)
