"""
Show what sensor pipelines stored: the rows of a topic by policy and time
range, the topics, or the bad payloads counted per topic and reason.

Times are ns since the epoch; --start and --end also take ISO 8601
date-times (UTC unless a zone is given).
"""

import sys

HELP = "show a store's rows of a topic, its topics, or its bad payloads"


def add_store_arguments(parser):
    parser.add_argument("store", metavar="STORE",
                        help="sqlite:PATH (or a path) or postgresql://...")
    parser.add_argument("--policy", default="n_records",
                        help="table: last_value, n_records, time_window, aggregation, "
                             "video, bad_payloads (default n_records)")
    parser.add_argument("--start", default=None, help="first time (ISO 8601 or ns)")
    parser.add_argument("--end", default=None, help="time after the last (ISO 8601 or ns)")


def add_arguments(parser):
    add_store_arguments(parser)
    parser.add_argument("topic", nargs="?", help="the topic (omit to list topics)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="only the most recent N rows")
    parser.add_argument("--bad", action="store_true",
                        help="count bad payloads per topic and reason instead")


def open_for(args, command):
    """
    ``(store, start, end)`` from the shared arguments, or an exit status.
    """
    import os

    from ..errors import StoreUnavailable
    from ..storage import POLICIES, open_store
    from ..storage.export import parse_time

    if args.policy not in POLICIES:
        print(f"pyrf-blocks {command}: --policy {args.policy!r}: one of "
              f"{', '.join(POLICIES)}", file=sys.stderr)
        return 2
    try:
        start = None if args.start is None else parse_time(args.start)
        end = None if args.end is None else parse_time(args.end)
    except ValueError as error:
        print(f"pyrf-blocks {command}: {error}", file=sys.stderr)
        return 2
    location = args.store
    if not location.startswith(("postgres", "memory:")):
        path = location[len("sqlite:"):] if location.startswith("sqlite:") else location
        if not os.path.exists(path):
            print(f"pyrf-blocks {command}: {path}: no such store", file=sys.stderr)
            return 1
    try:
        return open_store(location), start, end
    except (StoreUnavailable, ValueError) as error:
        print(f"pyrf-blocks {command}: {error}", file=sys.stderr)
        return 1


def run(args):
    from ..storage import COLUMNS

    opened = open_for(args, "query")
    if isinstance(opened, int):
        return opened
    store, start, end = opened
    try:
        if args.bad:
            for (topic, reason), count in sorted(store.bad_counts(args.topic).items()):
                print(f"{topic}\t{reason}\t{count}")
            return 0
        if args.topic is None:
            for topic in store.topics(args.policy):
                print(topic)
            return 0
        columns = COLUMNS[args.policy]
        print("\t".join(columns))
        for row in store.query(args.topic, args.policy, start, end, args.limit):
            print("\t".join("" if row[c] is None else str(row[c]) for c in columns))
        return 0
    finally:
        store.close()
