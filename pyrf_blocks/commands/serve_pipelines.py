"""
Run every sensor pipeline file of a directory against an MQTT broker and a
store, reloading files that change.

Messages are taken with QoS 1 on one persistent session (--client-id) and
acknowledged only once their rows are written, so stopping or killing the
command loses nothing the broker delivered.  Ctrl-C writes what is
buffered and exits.
"""

import sys

HELP = "run the sensor pipelines of a directory (MQTT in, store out)"


def add_arguments(parser):
    from .options import add_mqtt_arguments, positive_float

    parser.add_argument("directory", metavar="DIR", help="directory of pipeline files")
    add_mqtt_arguments(parser, "the pipelines")
    parser.add_argument("--duration", type=positive_float, default=None, metavar="S",
                        help="stop after S seconds (default: run until interrupted)")
    parser.add_argument("--rescan", type=positive_float, default=2.0, metavar="S",
                        help="look for changed files every S seconds (default 2)")


def run(args):
    import os
    import signal

    from ..errors import StoreUnavailable
    from ..sensors.serve import PipelineServer
    from ..storage import open_store

    from .options import broker_address

    try:
        host, port = broker_address(args.broker)
    except ValueError as error:
        print(f"pyrf-blocks serve-pipelines: {error}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.directory):
        print(f"pyrf-blocks serve-pipelines: {args.directory}: not a directory",
              file=sys.stderr)
        return 2
    try:
        store = open_store(args.store)
    except (StoreUnavailable, ValueError) as error:
        print(f"pyrf-blocks serve-pipelines: {error}", file=sys.stderr)
        return 1

    from twisted.internet import reactor

    from .options import log_warnings_to_stderr

    log_warnings_to_stderr()  # a store away, reconnections: reported as they happen

    def say(line):
        print(line, flush=True)

    server = PipelineServer(reactor, args.directory, store, host, port, args.client_id,
                            rescan=args.rescan, report=say, protocol=args.mqtt)
    status = []

    def stop(*_):
        if status:
            return
        status.append(0)
        server.stop().addBoth(lambda _: reactor.stop())

    def failed(failure):
        say(f"pyrf-blocks serve-pipelines: {failure.getErrorMessage()}")
        status.append(1)
        reactor.stop()

    reactor.callWhenRunning(lambda: server.start().addErrback(failed))
    if args.duration is not None:
        reactor.callLater(args.duration, stop)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(stop))
    signal.signal(signal.SIGINT, lambda *_: reactor.callFromThread(stop))
    reactor.run(installSignalHandlers=False)
    if server.source is not None:
        stats = server.source.stats
        say(f"mqtt: {stats['messages']} message(s), {stats['duplicates']} delivered again, "
            f"{stats['replays']} recognised as written before")
    for pipeline in server.pipelines.values():
        bad = sum(pipeline.bad.values())
        say(f"{pipeline.name}: {pipeline.buffer.stats['messages']} message(s) written, "
            f"{bad} bad, {sum(pipeline.dropped.values())} dropped")
    return status[0] if status else 0
