"""
Serve blocks over HTTP to other processes and hosts.

The worker listens on a Twisted endpoint (loopback by default) and lets
clients create blocks of registered types, connect them and read their
output as long-polled streams.  Binding anything but loopback requires a
token, which every request must then carry as "Authorization: Bearer".
Give the token in the PYRF_BLOCKS_TOKEN environment variable or a file
rather than on the command line, where other users can see it.

Once listening, the worker prints one line, "listening on URL".

Every worker also answers seed 001's requests for the calculations
registered in pyrf_blocks.calculations (mean, integral, max, and those a
--import module registers with its calculation decorator) under
URL/calculations/NAME/process, process_state and get_state: give
URL/calculations/NAME as a service of an external_calculation block.

TLS: listen on an ssl: endpoint, with the worker's private key and
certificate in PEM files.  With OpenSSL 3, a CA of your own and a
certificate it signs for this host's name and address:

  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
      -days 3650 -subj "/CN=lab CA" -keyout ca-key.pem -out ca.pem
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
      -CA ca.pem -CAkey ca-key.pem -days 825 -subj "/CN=host-b" \\
      -addext "subjectAltName=DNS:host-b,IP:192.168.1.20" \\
      -addext "basicConstraints=critical,CA:FALSE" \\
      -addext "extendedKeyUsage=serverAuth" -keyout key.pem -out cert.pem
  pyrf-blocks worker --listen \\
      ssl:8750:interface=192.168.1.20:privateKey=key.pem:certKey=cert.pem

Clients trust it with ca.pem: process("https://192.168.1.20:8750",
token=..., ca="ca.pem"), or "ca: ca.pem" beside the worker's url in a
pipeline file.  Keep ca-key.pem off the worker.
"""

import argparse
import sys

from .options import (add_cluster_arguments, add_import_argument, add_log_level_argument,
                      add_token_arguments, import_modules, log_to_stderr, positive_float,
                      positive_int, token_from)

HELP = "serve blocks over HTTP (long-polled streams and a control API)"


def add_arguments(parser):
    parser.add_argument("--listen", default="tcp:8750:interface=127.0.0.1",
                        metavar="ENDPOINT",
                        help="Twisted endpoint to listen on, e.g. "
                             "tcp:8750:interface=127.0.0.1 (the default) or "
                             "ssl:8750:privateKey=key.pem:certKey=cert.pem "
                             "(TLS: see above for making the files)")
    add_token_arguments(parser, "bearer token every request must carry")
    add_import_argument(parser, "import MODULE first, so the block types it registers can "
                                "be created; repeatable")
    parser.add_argument("--allow-files", action="store_true",
                        help="also create, for callers, the block types that read or "
                             "write files on this machine (record_block, sigmf_source); "
                             "process() starts its children with it")
    parser.add_argument("--max-body", type=positive_int, default=None, metavar="BYTES",
                        help="largest request body accepted (default 64 KiB, at most "
                             "64 MiB)")
    # (The numbers of net.worker, written out as --max-body's: importing it
    # here would load twisted.web for every command.)
    parser.add_argument("--max-blocks", type=positive_int, default=None, metavar="N",
                        help="most blocks clients may make on the worker; more are "
                             "refused with 429 (default 1000, at most 100000)")
    parser.add_argument("--max-streams", type=positive_int, default=None, metavar="N",
                        help="most streams open at once; more are refused with 429 "
                             "(default 1000, at most 100000)")
    parser.add_argument("--request-deadline", type=float, default=None, metavar="SECONDS",
                        help="seconds a request may take to arrive, headers and body, "
                             "before the connection is cut off with 408 (default 30)")
    parser.add_argument("--lease", type=float, default=None, metavar="SECONDS",
                        help="seconds a block or stream a client made is kept once "
                             "nothing uses it (no poll, no request naming it), so that "
                             "what vanished clients left is removed (default 120)")
    add_log_level_argument(parser)
    cluster = parser.add_argument_group(
        "cluster", "join a cluster and run the computations its manager assigns "
                   "(see pyrf-blocks manager --help)")
    add_cluster_arguments(cluster, required=False)
    cluster.add_argument("--name", default=None,
                         help="this worker's name in the cluster, unique (default: HOST:PORT)")
    cluster.add_argument("--store", default="pyrf-cluster.sqlite", metavar="FILE",
                         help="where the computations' snapshots and results go: an "
                              "SQLite file shared by the workers of one machine (default "
                              "pyrf-cluster.sqlite) or a postgresql:// URL for workers on "
                              "several hosts (needs the sensors extra)")
    cluster.add_argument("--ttl", type=positive_float, default=5.0, metavar="SECONDS",
                         help="heartbeat lease: silent this long (or its reactor stalled "
                              "this long), the worker loses its computations; lower recovers "
                              "sooner, higher moves fewer by mistake on a busy machine "
                              "(default 5, at least 1)")
    cluster.add_argument("--snapshot-interval", type=positive_float, default=1.0,
                         metavar="SECONDS", help="seconds between snapshots (default 1)")
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)


def run(args):
    from twisted.internet import reactor

    from ..graph import Graph
    from ..memory import keep_freed_memory
    from ..net.worker import Worker, check_certificates, check_limits, check_listen
    from ..net.parent import tie_to_parent

    try:
        token = token_from(args)
        check_listen(args.listen, token)
        check_certificates(args.listen)
    except ValueError as error:
        print(f"pyrf-blocks worker: {error}", file=sys.stderr)
        return 2
    if args.cluster is not None and (args.cluster == "memory:" or not args.cluster.startswith(
            ("http://", "https://"))):
        print(f"pyrf-blocks worker: --cluster takes the http(s)://HOST:PORT of etcd, "
              f"not {args.cluster!r}", file=sys.stderr)
        return 2
    if args.ttl < 1:
        print(f"pyrf-blocks worker: --ttl must be at least 1 second, not {args.ttl:g}",
              file=sys.stderr)
        return 2
    try:
        import_modules(args.imports)
    except ValueError as error:
        print(f"pyrf-blocks worker: {error}", file=sys.stderr)
        return 2
    log_to_stderr(args.log_level)
    keep_freed_memory()  # a worker moves streams: reuse their buffers (see memory.py)
    announce = print
    if args.parent_pid is not None:
        announce = tie_to_parent(args.parent_pid, reactor)
    # The limits given; the others are the worker's defaults.
    limits = {name: getattr(args, name) for name in ("max_body", "max_blocks", "max_streams",
                                                     "request_deadline", "lease")
              if getattr(args, name) is not None}
    try:
        check_limits(**limits, names={name: "--" + name.replace("_", "-") for name in limits})
    except ValueError as error:
        print(f"pyrf-blocks worker: {error}", file=sys.stderr)
        return 2
    # Blocks of unrelated clients share the graph: one that fails fails
    # only itself and what depends on it.
    worker = Worker(Graph(reactor, isolate_failures=True), token=token,
                    allow_files=args.allow_files, **limits)
    status = []

    def listening(port):
        address = port.getHost()
        scheme = "https" if args.listen.startswith("ssl:") else "http"
        host = getattr(address, "host", "localhost")
        host = f"[{host}]" if ":" in host else host
        url = f"{scheme}://{host}:{getattr(address, 'port', 0)}"
        announce(f"listening on {url}")
        # The spectral numerics import their libraries when first used,
        # time during which the reactor would serve nothing: a worker gets
        # it done in a thread now rather than in its first request (a run
        # of 2 s got one spectrum of a placed fft_block, measured, the rest
        # of it waiting for scipy.signal, which a spectrum no longer needs).
        reactor.callInThread(_preload_numerics)
        if args.cluster:
            join(url, f"{host}:{getattr(address, 'port', 0)}")

    def join(url, default_name):
        from twisted.internet import defer

        from ..cluster.service import join_as_worker

        def joined(result):
            member, runner = result
            print(f"worker {member.worker}: joined the cluster at {args.cluster}", flush=True)
            reactor.addSystemEventTrigger("before", "shutdown",
                                          lambda: defer.ensureDeferred(member.leave()))

        d = defer.ensureDeferred(join_as_worker(
            reactor, args.cluster, args.name or default_name, url, args.store, ttl=args.ttl,
            snapshot_interval=args.snapshot_interval, ca=args.cluster_ca, worker=worker))
        d.addCallbacks(joined, failed_to_join)

    def failed_to_join(failure):
        print(f"pyrf-blocks worker: cannot join the cluster at {args.cluster}: "
              f"{failure.getErrorMessage()}", file=sys.stderr)
        status.append(1)
        reactor.stop()

    def failed(failure):
        print(f"pyrf-blocks worker: cannot listen on {args.listen}: "
              f"{failure.getErrorMessage()}", file=sys.stderr)
        status.append(1)
        if reactor.running:
            reactor.stop()

    try:
        listen = worker.listen(args.listen, reactor)
    except Exception as error:  # a description Twisted cannot parse or load
        print(f"pyrf-blocks worker: cannot listen on {args.listen}: "
              f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    listen.addCallbacks(listening, failed)
    if not status:  # (a port in use fails at once, before the reactor runs)
        reactor.run()
    return status[0] if status else 0


def _preload_numerics():
    # What a spectrum's first chunk would import: the FFT library (pyFFTW,
    # or scipy.fft for pocketfft) and the compiled kernels' numba.  Not
    # scipy.signal (1.2-1.5 s of CPU with scipy 1.17): the common windows
    # are computed without it (numerics.cosine_windows).
    from ..numerics import fft, kernels, spectral  # noqa: F401
    chosen = {}
    for numerics in (fft, kernels):
        try:
            chosen[numerics] = numerics.backend()  # (imports the backend's package)
        except (ImportError, ValueError):
            pass  # a backend named wrongly in the environment: the first spectrum says so
    if chosen.get(fft) == "pocketfft":
        import scipy.fft  # noqa: F401
