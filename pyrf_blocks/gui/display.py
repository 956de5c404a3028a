"""
The display sinks: ``spectrum_display(producer)`` and
``multi_spectrum_display(a, b, ...)``.

A display takes every chunk it can without slowing anything else down: its
edges use the ``latest`` policy (they never pause a producer), and when
taking chunks costs more than its share of a frame (``update_budget``) it
pauses its edges until the next frame, so only the newest chunk waits and
the rest are counted as dropped.  Frames are drawn at most ``max_fps`` times
a second by a reactor timer, which runs on Qt's event loop: a script that
opens a window calls :func:`pyrf_blocks.gui.loop.install` first.

With ``headless=True`` the display keeps its traces without a window:
scripts and tests run without a screen.  Qt is imported only when a window
is opened.
"""

from time import perf_counter

from twisted.internet import task

from ..block import Sink, block_of
from ..interfaces import IBlock, ISpectrumProducer
from ..registry import register
from .status import MetricsStatus, format_seconds, lag_text
from .traces import TRACE_NAMES, SpectrumTraces

__all__ = ["spectrum_display", "multi_spectrum_display", "InputStats", "source_name"]


class InputStats:
    """
    What the status bar says about one input: chunks taken, chunk rate,
    latency and drops.

    Latency is how far the newest drawn chunk lags behind the stream: device
    time is mapped to the reactor's clock by the smallest (arrival - device
    end) offset seen, so a constant transport delay reads as zero and any
    queueing, drawing or throttling delay shows.  It is measured at the
    frames that draw a new chunk: once the stream ends (or stalls) it
    keeps the last value, so the status bar and the line a run prints at
    its end say the same.
    """

    #: Seconds over which the chunk rate is measured.
    rate_window = 1.0

    def __init__(self, now):
        self.chunks = 0
        self.rate = None
        self.latency = None
        self.dropped_before = 0
        self._offset = None
        self._last_end = None
        self._measured_end = None
        self._window = (now, 0)

    def received(self, chunk, now):
        self.chunks += 1
        offset = now - chunk.end / 1e9
        if self._offset is None or offset < self._offset:
            self._offset = offset
        self._last_end = chunk.end

    def frame(self, now):
        """
        A frame is drawn at ``now``: update the rate and the latency.
        """
        started, count = self._window
        if now - started >= self.rate_window:
            self.rate = (self.chunks - count) / (now - started)
            self._window = (now, self.chunks)
        if self._last_end is not None and self._last_end != self._measured_end:
            self._measured_end = self._last_end
            self.latency = max(0.0, now - (self._last_end / 1e9 + self._offset))


def source_name(producer):
    """
    The name of the block a chain starts from (following first inputs):
    what a legend calls a spectrum, rather than ``calibrate_block``.
    """
    block = block_of(producer)
    while IBlock.providedBy(block) and block.inputs:
        block = block_of(block.inputs[0])
    return getattr(block, "name", None)


class _SpectrumDisplay(Sink):
    """
    Shared by both displays: see :class:`multi_spectrum_display`.
    """

    requires = (ISpectrumProducer,)
    synchronised = False
    param_units = {"max_fps": "Hz", "average": "count", "waterfall_rows": "count",
                   "reference_level": "dBm", "db_per_div": "dB"}
    #: A Qt panel object cannot be written in a pipeline file.
    python_only_params = ("controls",)

    def __init__(self, *producers, labels=None, headless=False, max_fps=30.0,
                 update_budget=0.25, draw_share=0.5, average=10, waterfall_rows=256,
                 reference_level=None, db_per_div=10.0, traces=("live", "max_hold"),
                 title=None, controls=None, markers=("peak",), **kwargs):
        what = f"{self.type_name}"
        if "policy" in kwargs and kwargs["policy"] != "latest":
            raise ValueError(f"{what}: display edges use the 'latest' policy, "
                             f"got policy {kwargs['policy']!r}")
        kwargs["policy"] = "latest"
        if not max_fps > 0:
            raise ValueError(f"{what}: max_fps must be positive, got {max_fps!r}")
        if not update_budget >= 0:
            raise ValueError(f"{what}: update_budget must be >= 0, got {update_budget!r}")
        if draw_share is not None and not 0 < draw_share <= 1:
            raise ValueError(f"{what}: draw_share must be in (0, 1] or None, "
                             f"got {draw_share!r}")
        if not db_per_div > 0:
            raise ValueError(f"{what}: db_per_div must be positive, got {db_per_div!r}")
        unknown = [name for name in traces if name not in TRACE_NAMES]
        if unknown:
            raise ValueError(f"{what}: unknown trace(s) {', '.join(map(repr, unknown))}; "
                             f"use {', '.join(TRACE_NAMES)}")
        if labels is None:
            labels = [source_name(p) or f"input {i + 1}" for i, p in enumerate(producers)]
        labels = [str(label) for label in labels]
        if len(labels) != len(producers):
            raise ValueError(f"{what}: {len(labels)} label(s) for {len(producers)} input(s)")
        self.labels = labels
        self.headless = headless
        self.max_fps = float(max_fps)
        self.update_budget = float(update_budget)
        self.draw_share = draw_share
        self._next_draw = 0.0
        self.average = average
        self.waterfall_rows = waterfall_rows
        SpectrumTraces(average, waterfall_rows)  # validates both now
        self.reference_level = reference_level
        self.db_per_div = float(db_per_div)
        self.shown_traces = tuple(traces)
        self.markers = tuple(markers)
        self.window = None
        self.frames = 0
        self._timer = None
        if not headless:
            self.window = self._open_window(producers, kwargs.get("graph"), controls)
        super().__init__(*producers, **kwargs)
        #: The status bar's numbers, read from the metrics /metrics serves.
        self.metrics = MetricsStatus(self.graph)
        if self.window is not None:
            self.window.setWindowTitle(title or f"{self.name} - pyrf_blocks")

    def _open_window(self, producers, graph, controls):
        from . import loop
        from ..graph import default_graph
        from ..reactor_thread import is_global_reactor
        graph = (graph or next((p.graph for p in producers if IBlock.providedBy(p)), None)
                 or default_graph())
        if graph._reactor is None or is_global_reactor(graph._reactor):
            # The graph uses the global reactor: a window needs it on Qt's
            # loop, which only an explicit install() puts it on.
            if not loop.installed():
                raise loop.ReactorMismatch(
                    f"{self.type_name}: a window needs Twisted on Qt's event loop: "
                    "call pyrf_blocks.gui.loop.install() before building the graph "
                    "(pyrf-blocks view does), or pass headless=True")
        loop.application()
        from .viewer import SpectrumViewer
        window = SpectrumViewer(self.labels, reference_level=self.reference_level,
                                db_per_div=self.db_per_div, traces=self.shown_traces,
                                controls=controls, markers=self.markers)
        window.closed.connect(self._window_closed)
        window.show()
        return window

    def reset(self):
        now = self.graph.reactor.seconds()
        self.traces = [SpectrumTraces(self.average, self.waterfall_rows)
                       for _ in self.inputs]
        self.input_stats = [InputStats(now) for _ in self.inputs]
        self._spent = 0.0
        self._throttled = False
        if self._timer is None or not self._timer.running:
            self._timer = task.LoopingCall(self._frame)
            self._timer.clock = self.graph.reactor
            self._timer.start(1.0 / self.max_fps, now=False)

    def compute(self, chunk):
        self.compute_input(0, chunk)

    def compute_input(self, index, chunk):
        units = chunk.meta.get("units")
        if units != "dBm":
            raise ValueError(f"{self.type_name} {self.name!r} shows dBm spectra: feed "
                             f"it a calibrate_block; input {index + 1} "
                             f"({self.labels[index]}) has units {units!r}")
        began = perf_counter()
        self.traces[index].update(chunk)
        self.input_stats[index].received(chunk, self.graph.reactor.seconds())
        self._spent += perf_counter() - began
        if not self._throttled and self._spent >= self.update_budget / self.max_fps:
            # Enough for this frame: until the next one, the edges keep only
            # the newest chunk.
            self._throttled = True
            for edge in self.input_edges:
                if edge is not None:
                    edge.pauseProducing()

    @property
    def dropped(self):
        """
        Chunks dropped on each input's edge (newer ones replaced them).
        """
        edges = self.input_edges
        counts = []
        for index, stats in enumerate(self.input_stats):
            edge = edges[index] if index < len(edges) else None
            counts.append(stats.dropped_before + (edge.dropped if edge is not None else 0))
        return counts

    def status_text(self):
        """
        The status bar's line, per input: the chunks its producer put out,
        their rate, the lag (wall clock minus device time) and the chunks
        dropped on the way in, as the metrics read them at the last frame
        (:attr:`metrics`); the latency of the newest drawn chunk; and for
        an input streamed from a cluster worker, its assignments and the
        age of its newest snapshot.
        """
        parts = []
        edges = self.input_edges
        for index, (label, producer, stats) in enumerate(zip(self.labels, self.inputs,
                                                             self.input_stats)):
            chunks, rate, lag, dropped = self.metrics.input_text(producer, self)
            if index >= len(edges) or edges[index] is None:
                dropped = 0  # (a stopped input's drops are in dropped_before)
            chunks = "-" if chunks is None else f"{chunks:.0f}"
            rate = "-" if rate is None else f"{rate:.1f}"
            latency = "-" if stats.latency is None else format_seconds(stats.latency)
            head = f"{label}: " if len(self.labels) > 1 else ""
            parts.append(f"{head}{chunks} chunks, {rate} chunks/s, lag {lag_text(lag)}, "
                         f"latency {latency}, dropped {stats.dropped_before + (dropped or 0):.0f}")
        workers = self.metrics.worker_text(self.inputs)
        return "   |   ".join(parts + ([workers] if workers else []))

    def _frame(self, force=False):
        began = perf_counter()
        drawing = self.window is not None
        if force or not drawing or self.draw_share is None or began >= self._next_draw:
            now = self.graph.reactor.seconds()
            for traces, stats in zip(self.traces, self.input_stats):
                traces.commit_row()
                stats.frame(now)
            self.metrics.update(now, self.inputs, force=force)
            self.frames += 1
            if drawing:
                self.window.draw(self.traces, self.status_text())
                if self.draw_share is not None:
                    # A busy loop (slow drawing, heavy processing) gets
                    # fewer frames rather than less time for the data.
                    self._next_draw = began + (perf_counter() - began) / self.draw_share
        self._spent = 0.0
        if self._throttled:
            self._throttled = False
            for edge in self.input_edges:
                if edge is not None:
                    edge.resumeProducing()

    def _stop_timer(self):
        if self._timer is not None and self._timer.running:
            self._timer.stop()

    def on_stop(self):
        for stats, edge in zip(getattr(self, "input_stats", ()), self.input_edges):
            if edge is not None:
                stats.dropped_before += edge.dropped
        self._stop_timer()

    def flush(self):
        self._frame(force=True)  # show what arrived last
        self._stop_timer()

    def close(self):
        """
        Disconnect from the inputs and close the window; a source left
        without consumers stops.
        """
        window, self.window = self.window, None
        super().close()
        if window is not None:
            window.closed.disconnect(self._window_closed)
            window.close()

    def _window_closed(self):
        self.window = None
        self.close()

    def screenshot(self, path):
        """
        Save a PNG of the whole window to ``path`` (windowed displays only).
        """
        if self.window is None:
            raise RuntimeError(f"{self.type_name} {self.name!r} has no window "
                               "to take a screenshot of")
        # A frame like any other: the picture's status bar is measured as
        # every frame's, so it agrees with what a run prints at its end.
        self._frame(force=True)
        if not self.window.grab().save(str(path), "PNG"):
            raise OSError(f"could not write a PNG to {str(path)!r}")


@register
class multi_spectrum_display(_SpectrumDisplay):
    """
    Overlay the spectra of several producers in one window, each in its own
    colour, with a legend; the waterfall shows the first.

    :param labels: legend names, one per producer (default: the name of
        the block each chain starts from, its source).
    :param headless: keep the traces without opening a window.
    :param max_fps: most frames drawn per second.
    :param update_budget: share of each frame's time the display may spend
        taking chunks before it waits for the next frame (the edges then keep
        only the newest chunk; the rest are counted in ``dropped``).
    :param draw_share: most of the loop's time spent drawing: a frame that
        took ``t`` seconds to draw is followed by none for ``t / draw_share``
        seconds, so a busy machine gets fewer frames, not less time for the
        data (``None``: draw every frame).
    :param average: spectra in the average trace.
    :param waterfall_rows: rows of the waterfall (one per frame).
    :param reference_level: top of the plot, dBm (default: the source's
        reference level).
    :param db_per_div: dB per vertical division (ten divisions).
    :param traces: the traces shown at first, among ``live``, ``average``,
        ``max_hold``, ``min_hold``.
    :param title: window title.
    :param markers: the markers placed at first: ``"peak"`` follows the
        highest point of the trace (the default: one peak marker), a number
        stays at that frequency, Hz.
    :param controls: a Qt widget shown left of the plots (``pyrf-blocks
        view`` puts its source controls there).

    Input spectra must be in dBm (the output of a ``calibrate_block``).
    ``traces`` (one :class:`~pyrf_blocks.gui.traces.SpectrumTraces` per
    input), ``input_stats``, ``dropped`` and ``frames`` are kept in headless
    mode too.  Closing the window closes the sink.
    """

    type_name = "multi_spectrum_display"
    variadic = True


@register
class spectrum_display(_SpectrumDisplay):
    """
    Show one producer's spectra: live, average, max and min traces, a
    waterfall, markers and a status bar (see :class:`multi_spectrum_display`
    for the parameters).
    """

    type_name = "spectrum_display"
