"""
List the ThinkRF analyzers (and emulators) that answer a discovery
broadcast: host, model, serial number and firmware version.

The query goes to UDP port 18331 of the broadcast address unless
--address names one host (useful across routers, or for an emulator on
loopback).
"""

import sys

from ..params import check_seconds
from .options import positive_float, port_number

HELP = "list analyzers answering the discovery broadcast"

#: Longest --wait, seconds: answers to the one query sent come within
#: milliseconds on a LAN; longer only delays the list.
MAX_WAIT = 60.0


def add_arguments(parser):
    parser.add_argument("--address", default="255.255.255.255",
                        help="where to send the query (default 255.255.255.255, "
                             "the local broadcast)")
    parser.add_argument("--port", type=port_number, default=18331,
                        help="UDP discovery port (default 18331)")
    parser.add_argument("--wait", type=positive_float, default=1.0, metavar="SECONDS",
                        help="how long to collect answers, less than "
                             f"{MAX_WAIT:g} s (default 1)")


def run(args):
    try:
        check_seconds(args.wait, "--wait", MAX_WAIT)
    except ValueError as error:
        print(f"pyrf-blocks discover: {error}", file=sys.stderr)
        return 2
    from twisted.internet import defer, reactor

    from ..instruments.discovery import discover

    found = []
    failure = []

    def report(analyzers):
        found.extend(analyzers)

    def stop(result):
        reactor.stop()
        return result

    def start():
        done = defer.maybeDeferred(discover, reactor, args.address, args.port, args.wait)
        done.addCallbacks(report, failure.append)
        done.addBoth(stop)

    reactor.callWhenRunning(start)
    reactor.run()
    if failure:
        print(f"pyrf-blocks discover: {failure[0].getErrorMessage()}", file=sys.stderr)
        return 1
    if not found:
        print(f"pyrf-blocks discover: no analyzer answered within {args.wait:g} s",
              file=sys.stderr)
        return 1
    print(f"{'host':<16} {'model':<16} {'serial':<16} firmware")
    for analyzer in found:
        print(f"{analyzer.host:<16} {analyzer.model:<16} {analyzer.serial:<16} "
              f"{analyzer.firmware}")
    return 0
