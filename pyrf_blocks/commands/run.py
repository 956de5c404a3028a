"""
Build a pipeline file into a graph and run it.

The file is checked first: any mistake is reported with its line and
nothing runs.  Without --for the pipeline runs until its sources end or
until Ctrl-C or SIGTERM, which stop the sources so that every sink
finishes with what it has.  At the end a line per sink says how many chunks
it took, and any edge that dropped chunks says how many.

Sensor pipelines written beside the blocks (``pipelines:``) that no
``sensor_store`` names are fed from MQTT: ``run`` serves them while the
graph runs, on one connection to --broker (session --client-id), into
--store, and says so in one line when it starts; they write what they
hold when the graph ends.

--threads N gives the graph N threads of compute
(:class:`~pyrf_blocks.parallel.ThreadPool`), the event loop's one of them
(``caller_runs``: N - 1 threads are started, at least one, and the event
loop's thread runs queued work itself while a block waits on its results):
every block that can hand
its compute to a pool (the FFT, calibration) does, in order, with the same
output; blocks placed in other processes are not affected.  The pool takes
a block's calls in groups of up to 8 (``batch=8``): only calls made in one
turn of the event loop are grouped (a source's burst), so a paced live
source's chunks still go one by one, at once; a burst pays one hand-off
and one wake-up per group instead of per chunk.

--dry-run prints the resolved pipeline (every parameter, in base units),
what chain optimisation would fuse, and its Graphviz dot (fused blocks in a
dashed cluster), and runs nothing.  The graph is optimised before it runs
(:mod:`pyrf_blocks.optimise`) unless --no-optimise.
"""

import argparse
import sys

from ..parallel import MAX_WORKERS
from .options import add_mqtt_arguments, duration, log_warnings_to_stderr, positive_int

#: Most threads --threads gives: the pools' own bound
#: (:data:`pyrf_blocks.parallel.MAX_WORKERS`; ``import pyrf_blocks`` has
#: loaded the pools already).
MAX_THREADS = MAX_WORKERS


def thread_count(text):
    """
    ``--threads``: a whole number from 1 to :data:`MAX_THREADS`.
    """
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {MAX_THREADS}")
    return value

#: Calls of a block the pool of ``--threads`` runs as one task
#: (``ThreadPool(batch=)``): the output is the same whatever it is.
RUN_BATCH = 8

HELP = "run a pipeline file (or print it resolved, with --dry-run)"


def add_arguments(parser):
    parser.add_argument("file", metavar="FILE", help="pipeline file (YAML, version 1)")
    parser.add_argument("--for", dest="duration", type=duration, metavar="DURATION",
                        help="stop after this long, e.g. 10s, 5m, 250ms "
                             "(default: until the sources end or a signal)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved pipeline and its Graphviz dot; "
                             "run nothing")
    parser.add_argument("--no-optimise", dest="optimise", action="store_false",
                        help="run the graph as written, without chain optimisation")
    parser.add_argument("--threads", type=thread_count, metavar="N",
                        help="run the compute of the blocks that can use a pool (FFT, "
                             f"calibration) on N threads (at most {MAX_THREADS}), the "
                             "event loop's one of them; "
                             "results in order, output unchanged (default: all in the "
                             "event loop's thread)")
    add_mqtt_arguments(parser, "the sensor pipelines fed from MQTT")


def run(args):
    from ..errors import PipelineError
    from ..pipeline import build, describe, load_pipeline, pipeline_to_dot

    try:
        pipeline = load_pipeline(args.file)
    except PipelineError as error:
        print(error, file=sys.stderr)
        return 1
    served = pipeline.mqtt_sensors
    if served:
        print(f"{args.file}: sensor pipeline{'s' * (len(served) > 1)} "
              f"{', '.join(served)} fed from MQTT {args.broker} (client id "
              f"{args.client_id}) into {args.store}", file=sys.stderr)
    if args.dry_run:
        from ..optimise import pipeline_nodes, plan
        fusions = plan(pipeline_nodes(pipeline)) if args.optimise else []
        print(describe(pipeline))
        if fusions:
            print("chain optimisation:")
            for fusion in fusions:
                print(f"  {fusion}")
            print()
        print(pipeline_to_dot(pipeline, fusions=fusions), end="")
        return 0
    if not pipeline.sinks:
        print(f"{args.file}: no block is a sink, so nothing would run (see the "
              "dotted chain in --dry-run)", file=sys.stderr)
        return 1
    pool = None
    if args.threads:
        from ..parallel import ThreadPool
        pool = ThreadPool(args.threads, batch=RUN_BATCH, caller_runs=True)
    try:
        return _run(args, pipeline, served, pool)
    finally:
        if pool is not None:
            pool.close()


def _run(args, pipeline, served, pool):
    from ..errors import PipelineError
    from ..graph import Graph
    from ..pipeline import build

    try:
        graph = build(pipeline, graph=None if pool is None else Graph(parallel=pool))
    except PipelineError as error:
        print(error, file=sys.stderr)
        return 1
    log_warnings_to_stderr(failures_reported=True)
    server = None
    if served:
        server, problem = _serve_sensors(args, graph)
        if problem:
            print(f"{args.file}: {problem}", file=sys.stderr)
            return 1
    try:
        graph.run(args.duration, optimise=args.optimise)
    except Exception as error:  # a block failed (its traceback logged if a bug's)
        print(f"{args.file}: {graph.failure_line(error, 'the pipeline')}", file=sys.stderr)
        graph.report(sys.stderr)
        return 1
    graph.report(sys.stderr)
    if server is not None:
        for name, sensor in server.pipelines.items():
            print(f"sensor pipeline {name}: {sensor.buffer.stats['messages']} message(s) "
                  f"written, {sum(sensor.bad.values())} bad, "
                  f"{sum(sensor.dropped.values())} dropped", file=sys.stderr)
    return 0


def _serve_sensors(args, graph):
    """
    Serve the graph's MQTT-fed sensor pipelines while it runs
    (:class:`~pyrf_blocks.sensors.serve.FilePipelineServer`): ``(server,
    None)``, or ``(None, a line saying what is wrong)``.
    """
    from twisted.internet import defer

    from ..errors import StoreUnavailable
    from ..sensors.serve import FilePipelineServer
    from ..storage import open_store
    from .options import broker_address

    try:
        host, port = broker_address(args.broker)
        store = open_store(args.store)
    except (StoreUnavailable, ValueError) as error:
        return None, str(error)
    sensors = graph.sensor_pipelines
    taken = {}
    for name, sensor in sensors.items():
        for topic in sensor.topics:
            if topic in taken:
                return None, (f"sensor pipelines {taken[topic]} and {name} both take "
                              f"topic {topic}")
            taken[topic] = name
    server = FilePipelineServer(graph.reactor, args.file, sensors, store, host=host,
                                port=port, client_id=args.client_id, protocol=args.mqtt,
                                report=lambda line: print(line, file=sys.stderr, flush=True))

    def start():
        server.start().addErrback(failed)

    def failed(failure):
        print(f"{args.file}: serving the sensor pipelines failed: "
              f"{failure.getErrorMessage()}", file=sys.stderr)
        graph.stop()

    # They stop once every sink of the graph has finished, and the graph
    # is done when they have written what they hold.
    graph.reactor.callLater(0, start)
    finished = defer.DeferredList([sink.wait_finished() for sink in graph.sinks])
    graph.add_cleanup(finished.addCallback(lambda _: server.stop()))
    return server, None
