"""
Run a pipeline file over a SigMF recording of its sources, as fast as it
can, with a progress bar: history gives the outputs the live run gave.

Each source block of the file is replaced by the recording's channel of
the same name (a recording with one channel feeds a file with one
source); recorders are left out, and idle timeouts are switched off so
that the replay is deterministic.  At the end a line per sink says how
many chunks it took.
"""

import sys

from .options import log_warnings_to_stderr, positive_int

HELP = "run a pipeline file over a SigMF recording (history = live)"


def add_arguments(parser):
    parser.add_argument("recording", metavar="RECORDING",
                        help="SigMF recording (NAME, NAME.sigmf-meta or NAME.sigmf-data)")
    parser.add_argument("pipeline", metavar="PIPELINE", help="pipeline file (YAML, version 1)")
    parser.add_argument("--chunk-size", type=positive_int, default=65536, metavar="SAMPLES",
                        help="samples per chunk read from the recording (default 65536)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    log_warnings_to_stderr()
    from tqdm import tqdm
    from twisted.internet import task

    from ..errors import PipelineError
    from ..pipeline import build
    from ..pipeline.loader import read_document
    from ..replay import replay_pipeline
    from .run import report

    try:
        document = read_document(args.pipeline)
        pipeline, notes, sources = replay_pipeline(document, args.recording,
                                                   args.chunk_size)
    except (PipelineError, ValueError) as error:
        print(f"replay: {error}" if not isinstance(error, PipelineError) else error,
              file=sys.stderr)
        return 1
    for note in notes:
        print(note, file=sys.stderr)
    if not pipeline.sinks:
        print(f"{args.pipeline}: no block is a sink, so nothing would run", file=sys.stderr)
        return 1
    try:
        graph = build(pipeline)
    except PipelineError as error:
        print(error, file=sys.stderr)
        return 1
    readers = [graph.blocks[name] for name in sources]
    bar = tqdm(total=readers[0].sample_count, unit="Sa", unit_scale=True,
               disable=args.quiet, file=sys.stderr, desc="replay", mininterval=0.5)

    def progress():
        bar.update(min(reader.samples_read for reader in readers) - bar.n)

    ticker = task.LoopingCall(progress)
    ticker.clock = graph.reactor
    graph.in_reactor_thread(ticker.start, 0.2)
    try:
        graph.run()
    except Exception as error:  # a block failed: the graph logged its traceback
        bar.close()
        block = graph.failed_block
        where = f"{block.type_name} {block.name!r}" if block is not None else "the pipeline"
        print(f"{args.pipeline}: {where} failed: {error}", file=sys.stderr)
        report(graph, sys.stderr)
        return 1
    finally:
        if ticker.running:
            graph.in_reactor_thread(ticker.stop)
    progress()
    bar.close()
    report(graph, sys.stderr)
    return 0
