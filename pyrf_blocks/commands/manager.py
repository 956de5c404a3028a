"""
Assign computations to the workers of a cluster, and keep them assigned.

Each PIPELINE file is one computation, named after the file.  Workers join
with "pyrf-blocks worker --cluster URL --name NAME"; the manager gives the
first worker everything and, as workers join, about 1/n to each, moving only
what must move; a worker that stops heartbeating (its lease of --ttl seconds
lapses) loses its computations to the others, which go on from the last
snapshot.  Run several managers for safety: one leads (an election on
etcd), the others take over within --ttl seconds of its death.

Coordination lives in etcd (Debian's etcd-server): give its client URL,
http://HOST:2379.  Example, one host:

  etcd --data-dir /var/lib/pyrf-etcd &
  pyrf-blocks worker --cluster http://127.0.0.1:2379 --name w1 \
      --listen tcp:8751:interface=127.0.0.1 &
  pyrf-blocks worker --cluster http://127.0.0.1:2379 --name w2 \
      --listen tcp:8752:interface=127.0.0.1 &
  pyrf-blocks manager --cluster http://127.0.0.1:2379 examples/cluster_hold.yaml

"pyrf-blocks status --cluster URL" shows who runs what.
"""

import os
import socket
import sys

from .options import (add_cluster_arguments, add_import_argument, add_log_level_argument,
                      import_modules, log_to_stderr, positive_float)

HELP = "assign pipeline files to the workers of a cluster (etcd)"


def add_arguments(parser):
    parser.add_argument("pipelines", nargs="+", metavar="PIPELINE",
                        help="pipeline file; each is one computation, named after the file")
    add_cluster_arguments(parser)
    parser.add_argument("--name", default=None,
                        help="this manager's name among managers (default: HOST-PID)")
    parser.add_argument("--ttl", type=positive_float, default=5.0, metavar="SECONDS",
                        help="heartbeat lease: a manager or worker silent this long counts "
                             "as gone (default 5, at least 1)")
    add_import_argument(parser, "import MODULE first, so the block types it registers are "
                                "known when the files are checked; repeatable (the workers "
                                "need the same --import)")
    parser.add_argument("--metrics", default=None, metavar="ENDPOINT",
                        help="serve metrics in Prometheus's format on this Twisted endpoint "
                             "(GET /metrics), e.g. tcp:9101:interface=127.0.0.1; loopback "
                             "only (scrape through a local agent or proxy)")
    add_log_level_argument(parser)


def run(args):
    from twisted.internet import defer, reactor

    from ..cluster.service import computations_from_files, start_manager
    from ..errors import PipelineError

    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    try:
        import_modules(args.imports)
        computations = computations_from_files(args.pipelines)
        if args.metrics:
            from ..net.worker import check_listen
            check_listen(args.metrics, None)  # no token here: loopback only
        if args.ttl < 1:
            raise ValueError(f"--ttl must be at least 1 second (etcd's lease granularity), "
                             f"not {args.ttl:g}")
    except (PipelineError, ValueError, OSError) as error:
        print(f"pyrf-blocks manager: {error}", file=sys.stderr)
        return 2
    log_to_stderr(args.log_level)
    status = []

    def failed(failure):
        print(f"pyrf-blocks manager: {failure.getErrorMessage()}", file=sys.stderr)
        status.append(1)
        reactor.stop()

    def serve_metrics(manager):
        from twisted.internet.endpoints import serverFromString
        from twisted.web import resource, server

        from ..metrics import ManagerCollector, new_registry, render

        registry = new_registry()
        registry.register(ManagerCollector(manager))

        class Metrics(resource.Resource):
            isLeaf = True

            def render_GET(self, request):
                if request.postpath not in ([b"metrics"], [b"metrics", b""]):
                    request.setResponseCode(404)
                    return b"GET /metrics\n"
                body, content_type = render(registry)
                request.setHeader(b"content-type", content_type.encode("ascii"))
                return body

        d = serverFromString(reactor, args.metrics).listen(server.Site(Metrics()))
        d.addErrback(failed)

    def started(manager):
        if args.metrics:
            serve_metrics(manager)
        print(f"manager {name}: {len(computations)} computation(s), "
              f"{'leading' if manager.election.leading else 'standing by'}", flush=True)
        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: defer.ensureDeferred(manager.stop()))

    def start():
        d = defer.ensureDeferred(start_manager(reactor, args.cluster, name, computations,
                                               ttl=args.ttl, ca=args.cluster_ca))
        d.addCallbacks(started, failed)
    reactor.callWhenRunning(start)
    reactor.run()
    return status[0] if status else 0
