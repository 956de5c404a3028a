"""
Run the simulated instrument through FFT -> calibrate -> max hold -> peak
search for a while and print the strongest peaks (MHz, dBm).

No hardware is needed: the instrument is simulated, with two tones and a
noise floor.  --duration is seconds of device time: the instrument's stream
ends after the chunk that reaches it.  The run is paced by device time, so
that is as long in real time (after start-up); --fast computes the same
samples as fast as the CPU allows, and prints the same peaks.
The graph is optimised as pyrf-blocks run optimises it (the hold takes the
FFT's extreme and calibrates it; the same peaks), unless --no-optimise.
"""

import math
import sys

from .. import defaults
from ..params import MAX_SECONDS, check_seconds
from .options import (add_window_argument, check_tones, check_tuning, fft_size, finite_float,
                      positive_float, positive_int, simulated_tones, simulated_tones_text)

HELP = "run the simulated-instrument spectrum demo and print the peaks"

def add_arguments(parser):
    parser.add_argument("--duration", type=positive_float, default=2.0, metavar="SECONDS",
                        help="how long to run, seconds of device time, less than "
                             f"{MAX_SECONDS:g} (default 2)")
    parser.add_argument("--center-mhz", type=positive_float, default=2400.0, metavar="MHZ",
                        help="centre frequency of the instrument, MHz (default 2400)")
    parser.add_argument("--rate-msps", type=positive_float, default=7.8125, metavar="MSPS",
                        help="IQ sample rate, MSa/s (default 7.8125: 125 MSa/s "
                             "decimated by 16)")
    parser.add_argument("--tone", nargs=2, action="append", type=finite_float,
                        metavar=("OFFSET_MHZ", "DBM"),
                        help="add a tone at OFFSET_MHZ from the centre (within half "
                             "the rate either side) with level "
                             f"DBM; repeatable (default: {simulated_tones_text()})")
    parser.add_argument("--fft-size", type=fft_size, default=1024, metavar="N",
                        help="FFT length, samples, at least 8 (default 1024)")
    add_window_argument(parser)
    parser.add_argument("--peaks", type=positive_int, default=5, metavar="N",
                        help="number of peaks to print (default 5)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the simulated noise (default 0)")
    parser.add_argument("--fast", action="store_true",
                        help="compute the same samples as fast as the CPU allows "
                             "instead of in real time")
    parser.add_argument("--no-optimise", dest="optimise", action="store_false",
                        help="run the graph as written, without chain optimisation "
                             "(the same peaks)")


def run(args):
    from ..blocks.dsp import calibrate_block, fft_block
    from ..blocks.sinks import collector, format_peaks
    from ..blocks.spectrum import max_hold, peak_search
    from ..graph import Graph
    from ..instruments import analyzer

    tones = simulated_tones(args)
    rate = args.rate_msps * 1e6
    graph = Graph()
    try:
        check_seconds(args.duration, "--duration")
        check_tuning(args, defaults.MODEL, "sim")
        check_tones(args, rate)
        wsa = analyzer(defaults.MODEL, "sim", graph=graph,
                       center_frequency=args.center_mhz * 1e6, sample_rate=rate, tones=tones,
                       seed=args.seed, paced=not args.fast)
        # The stream ends once --duration of device time is covered.
        settings = wsa.settings
        wsa.count = math.ceil(args.duration * rate / (settings["samples_per_packet"]
                                                      * settings["packets_per_block"]))
        spectra = calibrate_block(fft_block(wsa, size=args.fft_size, window=args.window))
        peaks = collector(peak_search(max_hold(spectra), count=args.peaks), keep=1)
    except ValueError as error:  # a value the instrument or a block refuses
        print(f"pyrf-blocks demo: error: {error}", file=sys.stderr)
        return 2
    graph.run(optimise=args.optimise)
    if not peaks.chunks:
        print("no spectrum was produced: try a longer --duration", file=sys.stderr)
        return 1
    chunk = peaks.chunks[-1]
    print(f"peaks after {chunk.end / 1e9:.3f} s (max hold, {args.fft_size}-point "
          f"{args.window} FFT, RBW {chunk.meta.get('rbw', 0) / 1e3:.2f} kHz):"
          if "rbw" in chunk.meta else
          f"peaks after {chunk.end / 1e9:.3f} s (max hold):")
    print("  #        frequency        level")
    print(format_peaks(chunk))
    return 0
