"""
Record IQ from an analyzer (or the emulator) to a SigMF recording:
NAME.sigmf-data and NAME.sigmf-meta, with the centre frequency, sample
rate, start time and instrument in the metadata.

Stops after --samples or --duration (device time), showing a progress bar.
Replay it with sigmf_source(NAME) in a script.
"""

import sys

from .. import defaults
from ..params import MAX_SECONDS, check_seconds
from .options import (check_decimation, check_tuning, decimations_text,
                      log_warnings_to_stderr, port_number, positive_float, positive_int)

HELP = "record IQ from an analyzer to a SigMF file"


def add_arguments(parser):
    parser.add_argument("host", help="analyzer host name or address ('sim' for the "
                                     "simulated instrument)")
    parser.add_argument("--output", "-o", required=True, metavar="NAME",
                        help="recording name (NAME.sigmf-data and NAME.sigmf-meta)")
    limit = parser.add_mutually_exclusive_group(required=True)
    limit.add_argument("--samples", type=positive_int, metavar="N",
                       help="number of IQ samples to record")
    limit.add_argument("--duration", type=positive_float, metavar="SECONDS",
                       help=f"seconds of device time to record, less than {MAX_SECONDS:g}")
    parser.add_argument("--model", default=defaults.MODEL, choices=("WSA4000", "WSA5000", "R5500"),
                        help="analyzer family: the identity expected from the analyzer "
                             "and the limits the settings are checked against "
                             f"(default {defaults.MODEL})")
    parser.add_argument("--center-mhz", type=positive_float, default=2400.0, metavar="MHZ",
                        help="centre frequency to tune to, MHz (default %(default)g)")
    parser.add_argument("--decimation", type=positive_int, default=16,
                        help="decimation of the 125 MSa/s full rate that --model takes, "
                             f"the simulated instrument's as the --model's: {decimations_text()} "
                             "(default 16)")
    parser.add_argument("--samples-per-packet", type=positive_int, default=1024,
                        metavar="N", help="samples in each VRT packet the analyzer "
                                          "sends (default %(default)s)")
    parser.add_argument("--reference-level", type=float, metavar="DBM",
                        help="set the analyzer's reference level")
    parser.add_argument("--datatype", default=defaults.SAMPLE_FORMAT,
                        choices=("cf32_le", "ci16_le"),
                        help=f"sample format in the file (default {defaults.SAMPLE_FORMAT}: "
                             "lossless for any samples; ci16_le halves the file and is "
                             "lossless for the analyzer's 14-bit samples)")
    parser.add_argument("--scpi-port", type=port_number, default=37001, metavar="PORT",
                        help="TCP port of the analyzer's SCPI commands (default "
                             "%(default)s; another for the emulator or a tunnel)")
    parser.add_argument("--data-port", type=port_number, default=37000, metavar="PORT",
                        help="TCP port of the analyzer's VITA-49 data stream (default "
                             "%(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    log_warnings_to_stderr(failures_reported=True)
    from tqdm import tqdm
    from twisted.internet import reactor, task

    from ..blocks.recording import record_block
    from ..graph import Graph
    from ..instruments import analyzer

    rate = 125e6 / args.decimation
    samples = args.samples or max(1, round(args.duration * rate))
    settings = dict(center_frequency=args.center_mhz * 1e6)
    if args.host in ("sim", "simulated"):
        settings.update(sample_rate=rate)
    else:
        settings.update(decimation=args.decimation, samples_per_packet=args.samples_per_packet,
                        reference_level=args.reference_level, scpi_port=args.scpi_port,
                        data_port=args.data_port)
    graph = Graph(reactor)
    try:
        if args.duration is not None:
            check_seconds(args.duration, "--duration")
        check_tuning(args, args.model, args.host)
        check_decimation(args.decimation, args.model)
        source = analyzer(args.model, args.host, graph=graph, **settings)
        recorder = record_block(source, args.output, datatype=args.datatype, samples=samples)
    except (ValueError, OSError) as error:
        print(f"pyrf-blocks record: {error}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1
    bar = None

    def progress():
        # The bar is drawn from the first sample on: an analyzer that
        # cannot be reached gets its one line, no bar at 0 % before it.
        nonlocal bar
        if bar is None:
            if not recorder.samples_written:
                return
            bar = tqdm(total=samples, initial=recorder.samples_written, unit="Sa",
                       unit_scale=True, disable=args.quiet, file=sys.stderr,
                       desc=args.output, mininterval=0.5)
        bar.update(recorder.samples_written - bar.n)

    ticker = task.LoopingCall(progress)
    ticker.start(0.1)
    try:
        graph.run()
    except Exception as error:  # a block's failure (logged only if a bug's)
        if bar is not None:
            bar.close()
        print(f"pyrf-blocks record: {graph.failure_line(error)}", file=sys.stderr)
        return 1
    finally:
        if ticker.running:
            ticker.stop()
    progress()
    if bar is not None:
        bar.close()
    print(f"recorded {recorder.samples_written} samples to {recorder.data_path}")
    return 0
