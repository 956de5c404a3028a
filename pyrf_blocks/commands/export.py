"""
Export what sensor pipelines stored, for chosen topics and a time range,
to a CSV or Parquet file, with a progress bar.

Times are ns since the epoch; --start and --end also take ISO 8601
date-times (UTC unless a zone is given).  Images and files appear by
their blob name.
"""

import sys

HELP = "export a store's rows of chosen topics to CSV or Parquet"


def add_arguments(parser):
    from .query import add_store_arguments

    add_store_arguments(parser)
    parser.add_argument("--topic", action="append", dest="topics", metavar="TOPIC",
                        help="a topic to export (repeat; default: every topic of the policy)")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")


def run(args):
    from ..storage.export import export
    from .query import open_for

    opened = open_for(args, "export")
    if isinstance(opened, int):
        return opened
    store, start, end = opened
    try:
        topics = args.topics or store.topics(args.policy)
        try:
            count = export(store, topics, args.policy, args.output, args.format, start, end)
        except OSError as error:
            print(f"pyrf-blocks export: {args.output}: {error.strerror}", file=sys.stderr)
            return 1
        except ImportError:
            print("pyrf-blocks export: Parquet needs pyarrow (pip install "
                  "'pyrf_blocks[sensors]')", file=sys.stderr)
            return 1
        print(f"{args.output}: {count} row{'s' * (count != 1)} of {len(topics)} "
              f"topic{'s' * (len(topics) != 1)}", file=sys.stderr)
        return 0
    finally:
        store.close()
