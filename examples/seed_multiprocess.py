"""
The seed's "Multiprocess and HTTP" script, with simulated instruments.

Two instruments stay in this process; each one's FFT and calibration run in
a child process of their own; the two calibrated spectra come back here to
``multi_spectrum_display``.  Headless by default (``--window`` opens the
viewer); collectors beside the display keep every spectrum, and the script
prints one line per chain (frames, strongest bin).  With ``--single`` every
block runs in this process instead, for comparison: the same seeds give the
same arrays.  ``--save FILE`` writes both chains' spectra and times to an
``.npz`` file.
"""

import argparse
import sys

import numpy as np

from pyrf_blocks import (Graph, WSA4000, calibrate_block, collector, fft_block,
                         multi_spectrum_display, process, set_default_graph)


def build(split, count, paced):
    """
    The seed's graph; ``split`` puts each FFT -> calibrate chain in a child
    process.  Returns the two calibrated spectra producers.
    """
    process1 = process() if split else None
    process2 = process() if split else None
    wsa1 = WSA4000("sim", seed=1, tones=[(1e6, -20.0)], count=count, paced=paced)
    fft1 = fft_block(wsa1, proc=process1)
    calibrate1 = calibrate_block(fft1, proc=process1)
    wsa2 = WSA4000("sim", seed=2, tones=[(-2.5e6, -35.0)], count=count, paced=paced)
    fft2 = fft_block(wsa2, proc=process2)
    calibrate2 = calibrate_block(fft2, proc=process2)
    return calibrate1, calibrate2


def log_warnings():
    """
    Show Twisted's warnings and errors (a worker that stops answering is
    retried, and each retry is logged) on stderr.
    """
    from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                                globalLogBeginner, textFileLogObserver)
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--single", action="store_true",
                        help="run every block in this process")
    parser.add_argument("--chunks", type=int, default=40,
                        help="chunks each instrument emits (default 40)")
    parser.add_argument("--paced", action="store_true",
                        help="keep to device time instead of running flat out")
    parser.add_argument("--save", metavar="FILE", help="write the spectra to FILE (.npz)")
    parser.add_argument("--window", action="store_true",
                        help="show the spectra in a live viewer window")
    args = parser.parse_args(argv)
    log_warnings()
    if args.window:
        # The viewer needs Twisted on Qt's loop, before process() starts the reactor.
        from pyrf_blocks.gui import loop
        loop.install()

    graph = Graph()
    set_default_graph(graph)
    calibrate1, calibrate2 = build(not args.single, args.chunks, args.paced)
    multi_spectrum = multi_spectrum_display(calibrate1, calibrate2, headless=not args.window,
                                            labels=["instrument 1", "instrument 2"])
    # The display shows the newest spectra (a `latest` edge); the collectors
    # beside it keep every one, losslessly.
    sinks = [collector(calibrate1), collector(calibrate2)]
    graph.run()
    print(f"display: {multi_spectrum.status_text()}")

    arrays = {}
    for index, sink in enumerate(sinks, 1):
        spectra = sink.data()
        meta = sink.chunks[0].meta
        peak = spectra.max(axis=0).argmax()
        frequency = meta["start_frequency"] + peak * meta["bin_width"]
        print(f"chain {index}: {len(spectra)} spectra, strongest bin "
              f"{(frequency - meta['center_frequency']) / 1e6:+.3f} MHz at "
              f"{spectra.max():.2f} dBm")
        arrays[f"spectra{index}"] = spectra
        arrays[f"times{index}"] = np.array([(c.start, c.end) for c in sink.chunks])
    if args.save:
        np.savez(args.save, **arrays)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
