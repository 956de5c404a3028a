"""
Consumer programs for the real-process tests of pyrf_blocks.net: each runs
a graph in its own reactor and reports on stdout.

    python tests/net_drivers.py kill
    python tests/net_drivers.py two_hosts URL_A URL_B TOKEN OUT.npz COUNT [CA]
    python tests/net_drivers.py placed URL TOKEN CA OUT.npz COUNT [KEY CERT]
"""

import sys

import numpy as np

from pyrf_blocks import (Graph, WSA4000, calibrate_block, collector, fft_block,
                         process, set_default_graph)


class announcing(collector):
    """
    A collector that prints a line when its first chunk arrives.
    """

    def __init__(self, producer, line, **kwargs):
        self.line = line
        super().__init__(producer, **kwargs)

    def compute(self, chunk):
        if not self.chunks:
            line = self.line()
            if line:
                print(line, flush=True)
        super().compute(chunk)


def kill():
    """
    Two child workers compute an FFT each.  Once both deliver, print their
    pids; when the graph fails (the test kills the first child), print the
    failure and keep running, so the test can kill this process too.
    """
    from twisted.internet import reactor

    from pyrf_blocks import default_graph

    first = process(retries=3, backoff=0.1)
    second = process()
    started = []

    def line():
        started.append(1)
        if len(started) == 2:
            return f"children {first.pid} {first.base_url} {second.pid}"
        return None

    for seed, child in ((1, first), (2, second)):
        announcing(fft_block(WSA4000("sim", seed=seed), proc=child), line, keep=1)

    def report(failure):
        print(f"FAILED: {failure.type.__name__}: {failure.getErrorMessage()}", flush=True)
    default_graph().done().addErrback(report)
    reactor.run()
    return 0


def two_hosts(url_a, url_b, token, out, count, ca=None):
    """
    instrument here -> FFT on host A -> calibrate on host B -> collector here
    (https:// hosts trusted through the CA file CA).
    """
    host_a = process(url_a, token=token, ca=ca)
    host_b = process(url_b, token=token, ca=ca)
    wsa = WSA4000("sim", seed=1, count=int(count), paced=False)
    spectra = collector(calibrate_block(fft_block(wsa, proc=host_a), proc=host_b))
    default_graph_run()
    np.savez(out, spectra=spectra.data(),
             times=np.array([(c.start, c.end) for c in spectra.chunks]))
    return 0


def placed(url, token, ca, out, count, key=None, cert=None):
    """
    instrument -> FFT on the worker at URL (trusting the CA file CA; "-"
    for the system's), collector here.  With KEY and CERT the instrument
    stays here, served to the worker over TLS with them.  The spectra go
    to OUT; a failure is printed as "FAILED: type: message" (exit status 1).
    """
    from pyrf_blocks import default_graph
    from pyrf_blocks.net import serve

    worker = process(url, token=token, ca=None if ca == "-" else ca, retries=2,
                     backoff=0.05)
    if key:
        serve(default_graph(), listen=f"ssl:0:interface=127.0.0.1:privateKey={key}:"
                                      f"certKey={cert}")
    wsa = WSA4000("sim", seed=1, count=int(count), paced=False,
                  proc=None if key else worker)
    spectra = collector(fft_block(wsa, proc=worker))
    try:
        default_graph_run()
    except Exception as error:
        print(f"FAILED: {type(error).__name__}: {error}", flush=True)
        return 1
    np.savez(out, spectra=spectra.data(),
             times=np.array([(c.start, c.end) for c in spectra.chunks]))
    return 0


def default_graph_run():
    from pyrf_blocks import default_graph
    default_graph().run()


if __name__ == "__main__":
    from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                                globalLogBeginner, textFileLogObserver)
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False)
    set_default_graph(Graph())
    scenario = {"kill": kill, "two_hosts": two_hosts, "placed": placed}[sys.argv[1]]
    sys.exit(scenario(*sys.argv[2:]))
