"""
Run one pipeline file over many recordings: one graph per recording,
serially, or on Dask distributed with --dask (a LocalCluster of --workers
processes, or the scheduler at ADDRESS).

The pipeline reads the recording through its sigmf_source block (--source
names it if there are several), whose path is set to each RECORDING in
turn.  A progress bar counts recordings; at the end a line per recording
says what each collector sink kept.  --save DIR writes those chunks in the
wire format (pyrf_blocks.chunk.decode_chunks reads them) as
DIR/RECORDING.SINK.chunks.  Results are the same with and without --dask.
"""

import os
import sys

HELP = "run a pipeline file over many recordings (serially or on Dask)"


def add_arguments(parser):
    parser.add_argument("pipeline", metavar="PIPELINE", help="pipeline file (YAML, version 1)")
    parser.add_argument("recordings", nargs="+", metavar="RECORDING",
                        help="SigMF recordings (NAME, NAME.sigmf-meta or NAME.sigmf-data)")
    parser.add_argument("--source", metavar="BLOCK",
                        help="the sigmf_source block that reads the recordings "
                             "(if the pipeline has several)")
    parser.add_argument("--dask", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run on Dask distributed: a LocalCluster, or the scheduler "
                             "at ADDRESS (tcp://host:8786)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="processes of the local Dask cluster (default: one per core)")
    parser.add_argument("--save", metavar="DIR", help="write each collector's chunks to DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    from ..errors import PipelineError
    from ..pipeline import load_pipeline

    try:
        pipeline = load_pipeline(args.pipeline)
    except PipelineError as error:
        print(error, file=sys.stderr)
        return 1
    from ..history import recording_source, replay

    try:
        recording_source(pipeline, args.source)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    if args.dask is not None:
        import importlib.util
        if importlib.util.find_spec("distributed") is None:
            print("pyrf-blocks history: --dask needs Dask distributed: "
                  "pip install 'pyrf_blocks[dask]'", file=sys.stderr)
            return 1
    with open(args.pipeline, encoding="utf-8") as stream:
        text = stream.read()
    try:
        results = replay(text, args.recordings, args.source, dask=args.dask is not None,
                         address=args.dask or None, workers=args.workers,
                         progress=not args.quiet, filename=args.pipeline)
    except Exception as error:  # a recording that cannot be read, a block that failed
        print(f"{args.pipeline}: {error}", file=sys.stderr)
        return 1
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    from ..chunk import encode_chunks

    for result in results:
        kept = ", ".join(f"{name}: {len(chunks)} chunk{'s' * (len(chunks) != 1)}"
                         for name, chunks in result.sinks.items()) or "no collector"
        print(f"{result.recording}: {result.samples} samples; {kept}")
        if args.save:
            stem = os.path.basename(result.recording).removesuffix(".sigmf-meta")
            stem = stem.removesuffix(".sigmf-data")
            for name, chunks in result.sinks.items():
                with open(os.path.join(args.save, f"{stem}.{name}.chunks"), "wb") as stream:
                    stream.write(encode_chunks(chunks))
    return 0
