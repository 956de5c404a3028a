"""
Check pipeline files without running them.

Every mistake in a file is reported in one run, each as FILE:LINE:COLUMN:
an unknown block type (with the closest known name), a missing or unknown
parameter, a wrong type or unit, a connection that breaks an interface
contract, a cycle, an unknown process.  Exits 0 when every file is valid,
1 otherwise.
"""

import sys

HELP = "check pipeline files and report every mistake with its line"


def add_arguments(parser):
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="pipeline file(s) (YAML, version 1)")


def run(args):
    from ..errors import PipelineError
    from ..pipeline import load_pipeline

    from ..pipeline.loader import read_document
    from ..sensors.spec import is_sensor_pipeline, load_sensor_pipeline

    status = 0
    for path in args.files:
        try:
            document = read_document(path)
            if is_sensor_pipeline(document.data):
                sensors = load_sensor_pipeline(document)
                print(f"{path}: valid sensor pipeline, topics {', '.join(sensors.topics)}")
                continue
            pipeline = load_pipeline(path)
        except PipelineError as error:
            status = 1
            print(error, file=sys.stderr)
            count = len(error.problems)
            print(f"{path}: {count} problem{'s' * (count != 1)}", file=sys.stderr)
            continue
        count = len(pipeline.blocks)
        sensors = (f" and sensor pipeline{'s' * (len(pipeline.sensors) != 1)} "
                   f"{', '.join(pipeline.sensors)}" if pipeline.sensors else "")
        print(f"{path}: valid, {count} block{'s' * (count != 1)}{sensors}")
    return status
