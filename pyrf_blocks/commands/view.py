"""
Open the live spectrum viewer on an instrument or a remote stream.

SOURCE is "sim" (the built-in simulated analyzer, the default), an
instrument's host name or address (through WSA4000), or the URL of a block
on a worker, http://HOST:PORT/blocks/NAME.  IQ sources go through a
windowed FFT and calibration to dBm here; a remote spectrum is shown as is.

The window shows live, average, max-hold and min-hold traces, a waterfall,
two markers (Peak, Next peak, Delta), reference level and dB/div, and a
status bar with chunk rate, latency and dropped chunks.  The Source panel
changes centre frequency, span (decimation), FFT size (RBW) and window of
the running instrument; the reference level box also sets the
instrument's.

Without --duration the viewer runs until its window is closed.
--headless runs without a window (for scripts and machines without a
display) and, like a windowed run, prints the strongest peak at the end.
"""

import math
import os
import sys

import numpy as np

from .. import defaults
from ..errors import SourceError
from ..params import MAX_SECONDS, check_seconds
from .options import (add_token_arguments, add_window_argument, check_decimation,
                      check_tones, check_tuning, decimations_text, fft_size,
                      finite_float, log_warnings_to_stderr, positive_float, positive_int,
                      simulated_tones, simulated_tones_text, token_from)

HELP = "open the live spectrum viewer (simulated instrument, address or stream URL)"

#: Undecimated sample rate of the WSA family, Hz (the span at decimation 1).
FULL_RATE = 125e6
#: The FFT lengths ``--rbw-khz`` picks among (powers of two).
RBW_FFT_SIZES = (16, 1 << 20)
_TRACES = ("live", "average", "max_hold", "min_hold")
MODELS = ("WSA4000", "WSA5000", "R5500")


def _trace_list(text):
    import argparse
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in _TRACES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose among {', '.join(_TRACES)}, separated by commas")
    return tuple(names)


def _marker_spec(text):
    import argparse
    if text == "peak":
        return "peak"
    try:
        mhz = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a frequency in MHz or 'peak'") from None
    if not mhz > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a frequency must be above 0 MHz")
    return mhz * 1e6


def add_arguments(parser):
    parser.add_argument("source", nargs="?", default="sim", metavar="SOURCE",
                        help='"sim" (default), an instrument address, or a '
                             "worker's block URL http://HOST:PORT/blocks/NAME")
    tuning = parser.add_argument_group("instrument (live: the Source panel changes them)")
    tuning.add_argument("--model", default=defaults.MODEL, choices=MODELS,
                        help=f"analyzer family at the address (default {defaults.MODEL})")
    tuning.add_argument("--center-mhz", type=positive_float, default=2400.0, metavar="MHZ",
                        help="centre frequency, MHz (default 2400)")
    span = tuning.add_mutually_exclusive_group()
    span.add_argument("--decimation", type=positive_int, default=None, metavar="N",
                      help=f"decimation of the {FULL_RATE / 1e6:g} MSa/s stream that "
                           f"--model takes: {decimations_text()} "
                           "(default 16: 7.8125 MHz span)")
    span.add_argument("--span-mhz", type=positive_float, default=None, metavar="MHZ",
                      help="span, MHz: the largest power-of-two decimation that "
                           "keeps at least this span")
    resolution = tuning.add_mutually_exclusive_group()
    resolution.add_argument("--fft-size", type=fft_size, default=None, metavar="N",
                            help="FFT length, samples, at least 8 (default 1024)")
    resolution.add_argument("--rbw-khz", type=positive_float, default=None, metavar="KHZ",
                            help="resolution bandwidth, kHz: the smallest power-of-two "
                                 "FFT that resolves at least this finely, from "
                                 f"{RBW_FFT_SIZES[0]} to {RBW_FFT_SIZES[1]} points")
    add_window_argument(tuning)
    tuning.add_argument("--ref-level", type=float, default=0.0, metavar="DBM",
                        help="reference level, dBm: the instrument's full scale and "
                             "the top of the plot (default 0)")
    sim = parser.add_argument_group("simulated instrument")
    sim.add_argument("--tone", nargs=2, action="append", type=finite_float,
                     metavar=("OFFSET_MHZ", "DBM"),
                     help="a tone at OFFSET_MHZ from the centre, within half the span "
                          "either side, DBM; repeatable "
                          f"(default: {simulated_tones_text()})")
    sim.add_argument("--noise-floor", type=float, default=defaults.NOISE_FLOOR,
                     metavar="DBM_PER_HZ",
                     help=f"noise density, dBm/Hz (default {defaults.NOISE_FLOOR:g})")
    sim.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    display = parser.add_argument_group("display")
    display.add_argument("--marker", action="append", type=_marker_spec, default=None,
                         metavar="FREQ_MHZ",
                         help="a marker at FREQ_MHZ, or 'peak' for one that follows the "
                              "highest point; repeatable, numbered in order (default: "
                              "one peak marker)")
    display.add_argument("--db-per-div", type=positive_float, default=10.0, metavar="DB",
                         help="vertical scale, dB per division (default 10)")
    display.add_argument("--traces", type=_trace_list, default=("live", "max_hold"),
                         metavar="LIST",
                         help="traces shown at start, among live, average, max_hold, "
                              "min_hold (default live,max_hold)")
    display.add_argument("--average", type=positive_int, default=10, metavar="N",
                         help="spectra in the average trace (default 10)")
    display.add_argument("--max-fps", type=positive_float, default=30.0, metavar="FPS",
                         help="most frames drawn per second (default 30)")
    remote = parser.add_argument_group("a remote block (SOURCE is a URL)")
    remote.add_argument("--kind", choices=("spectrum", "iq"), default="spectrum",
                        help="what the remote block produces (default spectrum)")
    add_token_arguments(remote, "the worker's bearer token")
    remote.add_argument("--ca", metavar="PEM",
                        help="certificates an https:// worker's certificate must be "
                             "signed by (default: the system's)")
    run = parser.add_argument_group("running")
    run.add_argument("--duration", type=positive_float, default=None, metavar="SECONDS",
                     help=f"quit after this long, less than {MAX_SECONDS:g} s "
                          "(default: when the window is closed)")
    run.add_argument("--screenshot", default=None, metavar="PNG",
                     help="save a PNG of the window just before quitting "
                          "(needs --duration; its folder must exist)")
    run.add_argument("--headless", action="store_true",
                     help="no window: keep the traces only (needs --duration)")


def decimation_for(args):
    """
    The decimation the options ask for: ``ValueError`` naming what the
    analyzer family of ``--model`` accepts for a decimation it does not
    support or a span wider than its widest.
    """
    from ..instruments.models import model_of
    model = model_of(args.model)
    if args.decimation is not None:
        check_decimation(args.decimation, args.model)
        return args.decimation
    if args.span_mhz is None:
        return 16
    span = args.span_mhz * 1e6
    if span > model.full_rate:
        raise ValueError(f"--span-mhz {args.span_mhz:g}: the widest span of a {model.name} "
                         f"is {model.full_rate / 1e6:g} MHz (decimation 1)")
    return max(factor for factor in model.decimations
               if factor & (factor - 1) == 0 and model.full_rate / factor >= span)


def fft_size_for(args, sample_rate):
    """
    The FFT length the options ask for: ``ValueError`` naming the RBWs
    there are for an ``--rbw-khz`` finer than the longest FFT of
    :data:`RBW_FFT_SIZES` gives (that FFT was taken, coarser than asked) or
    coarser than the shortest's.
    """
    from ..numerics.spectral import window_gains
    if args.fft_size is not None:
        return args.fft_size
    if args.rbw_khz is None:
        return 1024

    def rbw(size):
        return window_gains(args.window, size)[1] * sample_rate / size

    shortest, longest = RBW_FFT_SIZES
    finest, coarsest = rbw(longest), rbw(shortest)
    if not finest <= args.rbw_khz * 1e3 <= coarsest:
        raise ValueError(f"--rbw-khz {args.rbw_khz:g}: with a {sample_rate / 1e6:.10g} MHz span "
                         f"and the {args.window} window the RBW is "
                         f"{_inward(finest / 1e3, up=True):.10g} to "
                         f"{_inward(coarsest / 1e3, up=False):.10g} kHz (FFTs of {shortest} to "
                         f"{longest} points)")
    size = shortest
    while rbw(size) > args.rbw_khz * 1e3:
        size *= 2
    return size


def _inward(bound, up):
    """
    ``bound`` (> 0) to 4 significant digits, rounded up (a lowest value) or
    down (a highest): a range a message shows then holds only values the
    range accepts.
    """
    step = 10.0 ** (math.floor(math.log10(bound)) - 3)
    return (math.ceil if up else math.floor)(bound / step) * step


def open_source(args, graph):
    """
    The producer SOURCE names: an IQ source, or a remote block.
    """
    if args.source.startswith(("http://", "https://")):
        from ..net.client import remote_block
        # A worker never reached fails the view at once, as an analyzer does;
        # one lost after it streamed is retried (remote_block's retries).
        return remote_block(args.source, args.kind, graph=graph, remote_policy="latest",
                            token=token_from(args), ca=args.ca, connect_attempts=0)
    from ..instruments import SIMULATED_HOSTS, analyzer
    check_tuning(args, args.model, args.source)
    decimation = decimation_for(args)
    if args.source in SIMULATED_HOSTS:
        check_tones(args, FULL_RATE / decimation)
        tones = simulated_tones(args)
        return analyzer(args.model, args.source, graph=graph, center_frequency=args.center_mhz * 1e6,
                       sample_rate=FULL_RATE / decimation, reference_level=args.ref_level,
                       tones=tones, noise_floor=args.noise_floor, seed=args.seed)
    if args.tone:
        raise SourceError("--tone is for the simulated instrument only")
    return analyzer(args.model, args.source, graph=graph,
                    center_frequency=args.center_mhz * 1e6, decimation=decimation)


def apply_setting(source, fft, name, value):
    """
    Apply one control change to the running chain: ``center_frequency``
    (Hz), ``decimation``, ``reference_level`` (dBm) go to the source,
    ``fft_size`` and ``window`` to the FFT.
    """
    from ..blocks.sources import simulated_instrument
    if name in ("fft_size", "window"):
        if fft is None:
            raise ValueError(f"{name} is set where the remote spectrum is made")
        fft.configure(**{"size" if name == "fft_size" else "window": value})
        return
    if name not in ("center_frequency", "decimation", "reference_level"):
        raise ValueError(f"unknown setting {name!r}")
    configure = getattr(source, "configure", None)
    if configure is None:
        raise ValueError(f"{source.type_name} {source.name!r} cannot be reconfigured "
                         "while running")
    if name == "decimation" and isinstance(source, simulated_instrument):
        configure(sample_rate=FULL_RATE / value)
    else:
        configure(**{name: value})


def build(args, graph, headless):
    """
    Make the chain and the display; return ``(source, fft, display)``
    (``fft`` is ``None`` for a remote spectrum).
    """
    from ..blocks.dsp import calibrate_block, fft_block
    from ..gui.display import spectrum_display
    source = open_source(args, graph)
    fft = None
    spectra = source
    if source.kind != "spectrum":
        rate = FULL_RATE / decimation_for(args)
        fft = fft_block(source, size=fft_size_for(args, rate), window=args.window)
        spectra = calibrate_block(fft)
    controls = None
    if not headless:
        from ..gui.loop import application
        application()
        if fft is not None:
            from ..gui.controls import SourceControls
            controls = SourceControls(args.center_mhz * 1e6, decimation_for(args),
                                      fft.size, args.window, FULL_RATE)
    display = spectrum_display(spectra, headless=headless, reference_level=args.ref_level,
                               db_per_div=args.db_per_div, traces=args.traces,
                               average=args.average, max_fps=args.max_fps,
                               controls=controls, title=f"pyrf-blocks view {args.source}",
                               labels=[args.source],
                               **({"markers": tuple(args.marker)} if args.marker else {}))
    if controls is not None:
        def changed(name, value):
            try:
                apply_setting(source, fft, name, value)
            except ValueError as error:
                display.window.statusBar().showMessage(str(error), 5000)
        controls.changed.connect(changed)
        display.window.reference_level_changed.connect(
            lambda dbm: changed("reference_level", dbm))
    return source, fft, display


def summary(display):
    """
    A line naming the strongest point of the max-hold trace (its frequency
    interpolated between bins, as the peak marker reads it) and the status
    bar's line.
    """
    from ..numerics.peaks import peak_frequency
    traces = display.traces[0]
    if traces.max_hold is None:
        return "no spectrum arrived"
    levels = traces.max_hold
    peak = int(np.nanargmax(levels))
    start, width, _ = traces.axis
    frequency = peak_frequency(levels, peak, start, width)
    return (f"peak {frequency / 1e6:.4f} MHz at {levels[peak]:.2f} dBm after "
            f"{traces.spectra} spectra, {display.frames} frames; {display.status_text()}")


def check_screenshot(path):
    """
    ``ValueError`` saying why a PNG cannot be written at ``path``, checked
    before anything runs.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"--screenshot {path}: is a folder")
    if not os.path.isdir(folder):
        raise ValueError(f"--screenshot {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (
            os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"--screenshot {path}: cannot write there (permission denied)")


def run(args):
    if (args.headless or args.screenshot) and args.duration is None:
        print("pyrf-blocks view: error: --headless and --screenshot need --duration",
              file=sys.stderr)
        return 2
    try:
        if args.duration is not None:
            check_seconds(args.duration, "--duration")
        if args.screenshot:
            check_screenshot(args.screenshot)
    except ValueError as error:
        print(f"pyrf-blocks view: error: {error}", file=sys.stderr)
        return 2
    if not args.headless:
        from ..gui.loop import install
        try:
            install()
        except ImportError as error:  # Qt, pyqtgraph or qasync: the gui extra
            print(f"pyrf-blocks view: the viewer needs the gui extra "
                  f"(pip install 'pyrf_blocks[gui]'): {error}", file=sys.stderr)
            return 2
    from ..graph import Graph
    graph = Graph()
    try:
        source, fft, display = build(args, graph, args.headless)
    except ValueError as error:
        print(f"pyrf-blocks view: error: {error}", file=sys.stderr)
        return 2
    # Why nothing arrives: retries, refused connections.
    log_warnings_to_stderr(failures_reported=True)

    problems = []

    def finish():
        try:
            if args.screenshot:
                display.screenshot(args.screenshot)
        except (OSError, RuntimeError) as error:  # the check above can be outrun
            problems.append(f"--screenshot: {error}")
        finally:
            graph.stop()

    if args.duration is not None:
        graph.reactor.callLater(args.duration, finish)
    try:
        graph.run()
    except Exception as error:  # a block failed: it was logged with its traceback
        print(f"pyrf-blocks view: {graph.failure_line(error)}", file=sys.stderr)
        return 1
    if display.traces[0].max_hold is None:
        problems.append(f"no spectrum arrived from {args.source} in {args.duration:g} s"
                        if args.duration is not None else
                        f"no spectrum arrived from {args.source}")
    else:
        print(summary(display))
    for problem in problems:
        print(f"pyrf-blocks view: {problem}", file=sys.stderr)
    return 1 if problems else 0
