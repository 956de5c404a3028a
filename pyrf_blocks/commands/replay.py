"""
Run a pipeline file over SigMF recordings, as fast as it can, one graph
per recording: serially, or on Dask distributed with --dask (a
LocalCluster of --workers processes, or the scheduler at ADDRESS, which
has --dask-timeout seconds to answer).  The
results are the same with and without --dask, and those the live run gave
(history = live).

Each source block of the file reads the recording's channel of the same
name (a recording with one channel feeds a file with one source, whatever
its name; a source that is a sigmf_source keeps its other parameters);
recorders are left out, and idle timeouts are switched off so that the
replay is deterministic.  Each graph is optimised as pyrf-blocks run
optimises it (chain optimisation; --no-optimise runs it as written, with
the same results).  A progress bar counts recordings (samples, for a
single recording run here).  At the end a line per recording says what
each collector sink kept; --save DIR writes those chunks in the wire
format (pyrf_blocks.chunk.decode_chunks reads them) as
DIR/RECORDING.SINK.chunks.
"""

import os
import sys

from ..params import check_seconds
from .options import log_warnings_to_stderr, positive_float, positive_int

HELP = "run a pipeline file over SigMF recordings (history = live; Dask)"


def add_arguments(parser):
    parser.add_argument("recordings", nargs="+", metavar="RECORDING",
                        help="SigMF recording (NAME, NAME.sigmf-meta or NAME.sigmf-data)")
    parser.add_argument("pipeline", metavar="PIPELINE", help="pipeline file (YAML, version 1)")
    parser.add_argument("--dask", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run on Dask distributed: a LocalCluster (put --dask after "
                             "the files), or the scheduler at ADDRESS (tcp://host:8786)")
    parser.add_argument("--dask-timeout", type=positive_float, default=None,
                        metavar="SECONDS",
                        help="seconds the scheduler at --dask ADDRESS has to answer "
                             "(default 5; longer for a cluster far away)")
    parser.add_argument("--workers", type=positive_int, metavar="N",
                        help="processes of the local Dask cluster of --dask (default: one "
                             "per core; at most 4 per core)")
    parser.add_argument("--save", metavar="DIR", help="write each collector's chunks to DIR")
    parser.add_argument("--chunk-size", type=positive_int, default=None, metavar="SAMPLES",
                        help="samples per chunk read from a recording (default: a "
                             "sigmf_source's own, else 65536; the results do not depend "
                             "on it)")
    parser.add_argument("--no-optimise", dest="optimise", action="store_false",
                        help="run each graph as written, without chain optimisation "
                             "(the results are the same)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _stem(recording):
    name = os.path.basename(recording)
    for suffix in (".sigmf-meta", ".sigmf-data"):
        name = name.removesuffix(suffix)
    return name


def run(args):
    log_warnings_to_stderr()
    from ..errors import PipelineError, ReplayError, SchedulerUnreachable
    from ..replay import check_local_workers, check_recordings, replay

    if args.dask and ":" not in args.dask:
        # "--dask REC PIPELINE" takes REC for the address.
        print(f"replay: --dask {args.dask}: not a scheduler address (tcp://host:8786); "
              "for a LocalCluster put --dask after the files", file=sys.stderr)
        return 2
    if args.dask_timeout is not None:
        if not args.dask:
            print("replay: --dask-timeout is how long the scheduler at --dask ADDRESS has "
                  "to answer; without an address there is none to wait for", file=sys.stderr)
            return 2
        try:
            check_seconds(args.dask_timeout, "--dask-timeout")
        except ValueError as error:
            print(f"replay: {error}", file=sys.stderr)
            return 2
    if args.workers is not None:
        if args.dask is None or args.dask:
            print("replay: --workers sizes the local cluster of --dask (given after the "
                  "files, without an address); a scheduler at an address has its own "
                  "workers, and without --dask the recordings run here", file=sys.stderr)
            return 2
        try:
            check_local_workers(args.workers)
        except ValueError as error:
            print(f"replay: --workers: {error}", file=sys.stderr)
            return 2
    try:
        with open(args.pipeline, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        print(f"{args.pipeline}: cannot read the file: {reason}", file=sys.stderr)
        return 1
    try:
        pipeline, notes = check_recordings(text, args.recordings, args.chunk_size,
                                           args.pipeline)
    except PipelineError as error:
        print(error, file=sys.stderr)
        return 1
    except ValueError as error:  # a recording that cannot be read
        print(f"replay: {error}", file=sys.stderr)
        return 1
    for note in notes:
        print(note, file=sys.stderr)
    if not pipeline.sinks:
        print(f"{args.pipeline}: no block is a sink, so nothing would run", file=sys.stderr)
        return 1
    if args.dask is not None:
        import importlib.util
        if importlib.util.find_spec("distributed") is None:
            print("replay: --dask needs Dask distributed: pip install 'pyrf_blocks[dask]'",
                  file=sys.stderr)
            return 1
    timeout = {} if args.dask_timeout is None else {"scheduler_timeout": args.dask_timeout}
    try:
        results = replay(text, args.recordings, args.chunk_size, dask=args.dask is not None,
                         address=args.dask or None, workers=args.workers,
                         progress=not args.quiet, filename=args.pipeline,
                         optimise=args.optimise, **timeout)
    except ReplayError as error:
        print(f"{args.pipeline}: {error}", file=sys.stderr)
        return 1
    except SchedulerUnreachable as error:
        print(f"replay: {error}; --dask-timeout gives a scheduler longer", file=sys.stderr)
        return 1
    except Exception as error:  # the Dask scheduler cannot be reached, say
        print(f"replay: {type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
        return 1
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    from ..chunk import encode_chunks

    several = len(results) > 1
    for result in results:
        for line in result.report:
            print(f"{result.recording}: {line}" if several else line, file=sys.stderr)
        kept = ", ".join(f"{name}: {len(chunks)} chunk{'s' * (len(chunks) != 1)}"
                         for name, chunks in result.sinks.items()) or "no collector"
        print(f"{result.recording}: {result.samples} samples; {kept}")
        if args.save:
            for name, chunks in result.sinks.items():
                path = os.path.join(args.save, f"{_stem(result.recording)}.{name}.chunks")
                with open(path, "wb") as stream:
                    stream.write(encode_chunks(chunks))
    return 0
