"""
Build a pipeline file into a graph and run it.

The file is checked first: any mistake is reported with its line and
nothing runs.  Without --for the pipeline runs until its sources end or
until Ctrl-C or SIGTERM, which stop the sources so that every sink
finishes with what it has.  At the end a line per sink says how many chunks
it took, and any edge that dropped chunks says how many.

--dry-run prints the resolved pipeline (every parameter, in base units),
what chain optimisation would fuse, and its Graphviz dot (fused blocks in a
dashed cluster), and runs nothing.  The graph is optimised before it runs
(:mod:`pyrf_blocks.optimise`) unless --no-optimise.
"""

import sys

from .options import duration, log_warnings_to_stderr

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


def _consumer(edge):
    return getattr(edge.consumer, "block", edge.consumer)


def report(graph, out):
    """
    One line per sink (chunks taken, finished or not), and one per edge
    that dropped chunks.
    """
    edges = graph.edges
    for sink in graph.sinks:
        taken = sum(edge.chunks_out for edge in edges if _consumer(edge) is sink)
        state = "finished" if sink.finished else "not finished"
        print(f"{sink.type_name} {sink.name!r}: {taken} chunk{'s' * (taken != 1)}, "
              f"{state}", file=out)
    for source in graph.sources:
        summary = getattr(source, "summary", None)
        if summary is not None:
            print(f"{source.type_name} {source.name!r}: {summary()}", file=out)
    for edge in edges:
        if edge.dropped:
            print(f"{edge.producer.name} -> {_consumer(edge).name}: "
                  f"dropped {edge.dropped} chunks ({edge.policy})", file=out)


def run(args):
    from ..errors import PipelineError
    from ..pipeline import build, describe, load_pipeline, pipeline_to_dot

    try:
        pipeline = load_pipeline(args.file)
    except PipelineError as error:
        print(error, file=sys.stderr)
        return 1
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
    try:
        graph = build(pipeline)
    except PipelineError as error:
        print(error, file=sys.stderr)
        return 1
    log_warnings_to_stderr(failures_reported=True)
    try:
        graph.run(args.duration, optimise=args.optimise)
    except Exception as error:  # a block failed (its traceback logged if a bug's)
        block = graph.failed_block
        where = f"{block.type_name} {block.name!r}" if block is not None else "the pipeline"
        print(f"{args.file}: {where} failed: {error}", file=sys.stderr)
        report(graph, sys.stderr)
        return 1
    report(graph, sys.stderr)
    return 0
