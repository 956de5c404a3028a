"""
The numbers of a display's status bar, read from the metrics that
``/metrics`` serves (:mod:`pyrf_blocks.metrics`), not counted a second
time:

* per input, from the display's own graph (its
  :class:`~pyrf_blocks.metrics.GraphCollector`, read in-process): the
  chunks its producer put out and their rate, the lag (wall clock minus
  the device time of the last chunk, ``pyrf_block_lag_seconds``) and the
  chunks dropped on the edge into the display;
* for an input streamed from a worker (a
  :class:`~pyrf_blocks.net.client.remote_block`), that worker's
  ``/metrics``, scraped once per :attr:`MetricsStatus.interval`: for a
  cluster worker, the computations it runs and the age of their newest
  snapshot.

The lag is meaningful for sources on the wall clock (instruments, MQTT); a
device clock more than a day off the wall clock reads ``lag -``.
"""

import time

from twisted.internet import defer

from ..block import block_of
from ..interfaces import IBlock, IOutput

__all__ = ["MetricsStatus", "table", "format_seconds", "lag_text"]

#: Graph label of the display's graph in its metrics.
GRAPH = "viewer"
#: A lag beyond this (seconds) is a device clock that is not the wall clock.
NOT_WALL_CLOCK = 86400.0


def table(families):
    """
    ``{(sample name, ((label, value), ...)): value}`` of metric families
    (a registry's ``collect()`` or a scrape parsed by
    ``prometheus_client.parser``), labels sorted.
    """
    found = {}
    for family in families:
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def format_seconds(seconds):
    """``12 ms``, ``3.4 s``, ``2.0 min``: a duration for the status bar."""
    if seconds is None:
        return "-"
    if abs(seconds) < 1:
        return f"{seconds * 1e3:.0f} ms"
    if abs(seconds) < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _output_of(producer):
    return producer if IOutput.providedBy(producer) else producer.output()


def _remote_workers(producer):
    """The remote blocks a chain reads from, following inputs upstream."""
    from ..net.client import remote_block

    found, todo, seen = [], [block_of(producer)], set()
    while todo:
        block = todo.pop()
        if id(block) in seen or not IBlock.providedBy(block):
            continue
        seen.add(id(block))
        if isinstance(block, remote_block):
            found.append(block)
        todo.extend(block_of(p) for p in block.inputs)
    return found


class MetricsStatus:
    """
    What a display's status bar says, read from the metrics of ``graph``
    and of the workers its inputs stream from.

    :param graph: the display's graph.
    :param wall_clock: the clock lags are measured on (``time.time``).
    """

    #: Seconds between two reads; rates are measured over it.
    interval = 1.0

    def __init__(self, graph, wall_clock=time.time):
        from ..metrics import GraphCollector, new_registry

        self.graph = graph
        self.wall_clock = wall_clock
        self._registry = new_registry()
        self._registry.register(GraphCollector(lambda: {GRAPH: graph},
                                               clock=lambda: self.wall_clock()))
        #: The last read of the graph's metrics (see :func:`table`).
        self.graph_samples = {}
        #: Chunks per second of each output, by output name.
        self.output_rates = {}
        #: The last scrape of each worker's /metrics, by worker URL (a
        #: table, or the error text of a failed scrape).
        self.worker_samples = {}
        self._read_at = None
        self._scraping = set()

    def update(self, now, producers, force=False):
        """
        Read the metrics again if :attr:`interval` has passed since the
        last read (``now``: the reactor's seconds) or ``force``, and scrape
        the workers of ``producers``' remote blocks.
        """
        if not force and self._read_at is not None and now - self._read_at < self.interval:
            return
        before, then = self.graph_samples, self._read_at
        self.graph_samples = table(self._registry.collect())
        self._read_at = now
        if then is not None and now - then >= self.interval / 2:
            for key, value in self.graph_samples.items():
                if key[0] == "pyrf_block_chunks_total":
                    output = dict(key[1])
                    name = f"{output['block']}:{output['output']}"
                    self.output_rates[name] = (value - before.get(key, value)) / (now - then)
        for producer in producers:
            for remote in _remote_workers(producer):
                self._scrape(remote)

    def _scrape(self, remote):
        url = remote.worker_url
        if url is None or url in self._scraping:
            return
        self._scraping.add(url)
        d = defer.ensureDeferred(self._fetch(remote, url))
        d.addBoth(lambda _: self._scraping.discard(url))

    async def _fetch(self, remote, url):
        from prometheus_client.parser import text_string_to_metric_families

        headers = {}
        if remote.token:
            headers["Authorization"] = f"Bearer {remote.token}"
        try:
            response = await remote.client.get(f"{url}/metrics", headers=headers,
                                               timeout=self.interval * 5)
            body = await response.content()
            if response.code != 200:
                raise ValueError(f"answered {response.code}")
            self.worker_samples[url] = table(text_string_to_metric_families(body.decode("utf-8")))
        except Exception as error:  # unreachable, refused, garbled: say so in the bar
            self.worker_samples[url] = f"{type(error).__name__}: {error}"

    def value(self, name, **labels):
        """A sample of the last read of the graph's metrics, or None."""
        labels.setdefault("graph", GRAPH)
        return self.graph_samples.get((name, tuple(sorted(labels.items()))))

    def input_text(self, producer, consumer):
        """
        ``chunks, rate, lag, dropped`` of the input ``producer`` of the
        block ``consumer``, as the metrics read them last (None where not
        read yet).
        """
        output = _output_of(producer)
        labels = {"block": output.block.name, "output": output.output_name}
        chunks = self.value("pyrf_block_chunks_total", **labels)
        lag = self.value("pyrf_block_lag_seconds", **labels)
        dropped = self.value("pyrf_edge_dropped_total", producer=output.name,
                             consumer=consumer.name)
        rate = self.output_rates.get(f"{output.block.name}:{output.output_name}")
        return chunks, rate, lag, dropped

    def worker_text(self, producers):
        """
        What the scraped workers of ``producers`` say: for a cluster
        worker, its computations and the age of the newest snapshot.
        """
        parts = []
        for url in sorted({r.worker_url for p in producers for r in _remote_workers(p)}
                          - {None}):
            scraped = self.worker_samples.get(url)
            if scraped is None:
                continue
            if isinstance(scraped, str):
                parts.append(f"{url}: metrics unreadable ({scraped})")
                continue
            for (name, labels), value in sorted(scraped.items()):
                if name != "pyrf_worker_assignments":
                    continue
                worker = dict(labels)["worker"]
                ages = [v for (n, _), v in scraped.items()
                        if n == "pyrf_computation_snapshot_age_seconds"]
                snapshot = (f", snapshot {format_seconds(min(ages))} old" if ages
                            else ", no snapshot yet")
                parts.append(f"worker {worker}: {value:.0f} assignment"
                             f"{'' if value == 1 else 's'}{snapshot}")
        return "   |   ".join(parts)


def lag_text(lag):
    """The lag as the bar says it (``-`` for a device clock off the wall clock)."""
    if lag is None or abs(lag) > NOT_WALL_CLOCK:
        return "-"
    return format_seconds(lag)
