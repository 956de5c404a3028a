"""
Run an emulated ThinkRF analyzer: the SCPI subset on TCP (37001), the
VITA-49 stream on TCP (37000) and answers to discovery on UDP (18331), with
a signal of tones, harmonics and noise.

Point any source at it: WSA4000("127.0.0.1") in a script, or
pyrf-blocks record 127.0.0.1.  It listens on loopback unless --listen says
otherwise; port 0 picks a free port (the ports are printed).
"""

import sys

from .. import defaults
from ..params import MAX_SECONDS, check_seconds
from .options import (check_tuning, finite_float, log_warnings_to_stderr, port_number,
                      positive_float)

HELP = "run an emulated analyzer (SCPI, VRT and discovery) for tests and demos"


def add_arguments(parser):
    parser.add_argument("--listen", default="127.0.0.1", metavar="ADDRESS",
                        help="interface to listen on (default 127.0.0.1; 0.0.0.0 "
                             "exposes it to the network)")
    parser.add_argument("--scpi-port", type=port_number, default=37001)
    parser.add_argument("--data-port", type=port_number, default=37000)
    parser.add_argument("--discovery-port", type=port_number, default=18331)
    parser.add_argument("--model", default=defaults.MODEL, choices=("WSA4000", "WSA5000", "R5500"))
    parser.add_argument("--serial", default="EMU000001")
    parser.add_argument("--center-mhz", type=positive_float, default=2400.0, metavar="MHZ",
                        help="centre frequency until a client sets one (default 2400)")
    parser.add_argument("--reference-level", type=float, default=0.0, metavar="DBM",
                        help="dBm of a full-scale tone (default 0)")
    parser.add_argument("--tone", nargs=2, action="append", type=finite_float,
                        metavar=("MHZ", "DBM"),
                        help="a tone at MHZ (absolute RF) with level DBM; repeatable "
                             "(default 2401 MHz at -20 dBm)")
    parser.add_argument("--harmonic", nargs=2, action="append", type=float,
                        metavar=("ORDER", "DBC"),
                        help="a harmonic of the first tone; repeatable")
    parser.add_argument("--noise-floor", type=float, default=defaults.NOISE_FLOOR,
                        metavar="DBM_PER_HZ",
                        help=f"noise density (default {defaults.NOISE_FLOOR:g} dBm/Hz)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--free-running", action="store_true",
                        help="stream as fast as the client reads instead of in real time")
    parser.add_argument("--duration", type=positive_float, metavar="SECONDS",
                        help=f"exit after this long, less than {MAX_SECONDS:g} s "
                             "(default: until interrupted)")


def run(args):
    log_warnings_to_stderr()
    from twisted.internet import error, reactor

    from ..instruments.emulator import InstrumentEmulator

    tones = [(mhz * 1e6, level) for mhz, level in (args.tone or [(2401.0, -20.0)])]
    harmonics = args.harmonic or []
    try:
        if args.duration is not None:
            check_seconds(args.duration, "--duration")
        check_tuning(args, args.model, None)
        for mhz, level in args.tone or ():
            if mhz < 0:
                raise ValueError(f"--tone {mhz:g} {level:g}: the frequency must be at least "
                                 "0 MHz")
        emulator = InstrumentEmulator(
            reactor, model=args.model, serial=args.serial,
            center_frequency=args.center_mhz * 1e6, reference_level=args.reference_level,
            tones=tones, harmonics=harmonics, noise_floor=args.noise_floor, seed=args.seed,
            paced=not args.free_running)
    except ValueError as failure:  # a setting out of the model's or the emulator's range
        print(f"pyrf-blocks emulate: error: {failure}", file=sys.stderr)
        return 2
    try:
        ports = emulator.listen(args.listen, args.scpi_port, args.data_port,
                                args.discovery_port)
    except error.CannotListenError as failure:
        print(f"pyrf-blocks emulate: cannot listen on {args.listen}: {failure.socketError}",
              file=sys.stderr)
        return 1
    print(f"{args.model} emulator on {args.listen}: scpi {ports['scpi']} data "
          f"{ports['data']} discovery {ports['discovery']}", flush=True)
    if args.duration:
        reactor.callLater(args.duration, reactor.stop)
    reactor.run()
    return 0
