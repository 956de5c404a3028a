"""
Metrics in Prometheus's text format, read at scrape time from what the
graphs and the cluster already count — nothing is added to the path of a
chunk but two attribute writes per output (:attr:`Output.rows` and
:attr:`Output.device_end`).

A worker serves them on ``GET /metrics``; a manager on ``--metrics
ENDPOINT``.  Rates (chunks and rows per second) are what Prometheus's
``rate()`` makes of the counters.

==========================================  ======================================
``pyrf_block_chunks_total``                 chunks an output has put out
``pyrf_block_rows_total``                   rows (samples, spectra, records)
``pyrf_block_device_time_seconds``          device time the last chunk ended at
``pyrf_block_lag_seconds``                  wall clock minus that device time
                                            (meaningful for sources on the
                                            wall clock: instruments, MQTT)
``pyrf_edge_queue_depth``                   chunks waiting on an edge
``pyrf_edge_dropped_total``                 chunks an edge dropped (its policy)
``pyrf_computation_state_bytes``            size of a computation's last snapshot
``pyrf_computation_snapshot_age_seconds``   age of that snapshot
``pyrf_computation_snapshots_total``        snapshots taken on this worker
``pyrf_worker_assignments``                 computations this worker runs
``pyrf_worker_failovers_total``             computations it took over from a
                                            snapshot
``pyrf_worker_lease_age_seconds``           time since its lease was last renewed
``pyrf_manager_leading``                    1 while this manager leads
``pyrf_manager_moves_total``                computations it moved between live
                                            workers
``pyrf_calculation_requests_total``         seed 001 requests a worker answered,
                                            by calculation and request
``pyrf_calculation_variables``              variables it keeps a state for
==========================================  ======================================

``prometheus_client`` is imported only when metrics are first asked for.
"""

import time

__all__ = ["GraphCollector", "WorkerCollector", "ManagerCollector", "CalculationCollector",
           "new_registry", "render"]


def _families():
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    return CounterMetricFamily, GaugeMetricFamily


class GraphCollector:
    """
    Block and edge metrics of the graphs ``graphs()`` returns
    (``{label: Graph}``), labelled with the graph's label.
    """

    def __init__(self, graphs, clock=time.time):
        self._graphs, self._clock = graphs, clock

    def collect(self):
        Counter, Gauge = _families()
        chunks = Counter("pyrf_block_chunks", "Chunks an output has put out",
                         labels=["graph", "block", "output"])
        rows = Counter("pyrf_block_rows", "Rows an output has put out",
                       labels=["graph", "block", "output"])
        device = Gauge("pyrf_block_device_time_seconds",
                       "Device time the output's last chunk ended at",
                       labels=["graph", "block", "output"])
        lag = Gauge("pyrf_block_lag_seconds", "Wall clock minus the last chunk's device time",
                    labels=["graph", "block", "output"])
        depth = Gauge("pyrf_edge_queue_depth", "Chunks waiting on an edge",
                      labels=["graph", "producer", "consumer"])
        dropped = Counter("pyrf_edge_dropped", "Chunks an edge dropped",
                          labels=["graph", "producer", "consumer"])
        now = self._clock()
        for label, graph in sorted(self._graphs().items()):
            for block in tuple(graph.blocks.values()):
                for name, output in block.outputs.items():
                    labels = [label, block.name, name]
                    chunks.add_metric(labels, output.next_seq)
                    rows.add_metric(labels, output.rows)
                    if output.device_end is not None:
                        device.add_metric(labels, output.device_end / 1e9)
                        lag.add_metric(labels, now - output.device_end / 1e9)
                    for edge in output.edges:
                        consumer = getattr(getattr(edge.consumer, "block", None), "name", None)
                        ends = [label, output.name, consumer or repr(edge.consumer)]
                        depth.add_metric(ends, edge.depth)
                        dropped.add_metric(ends, edge.dropped)
        yield from (chunks, rows, device, lag, depth, dropped)


class WorkerCollector:
    """A cluster worker's metrics: its member and its runner."""

    def __init__(self, member, runner, reactor):
        self._member, self._runner = member, runner
        self._reactor_clock = reactor.seconds

    def collect(self):
        Counter, Gauge = _families()
        worker = self._member.worker
        assignments = Gauge("pyrf_worker_assignments", "Computations this worker runs",
                            labels=["worker"])
        assignments.add_metric([worker], len(self._runner.running))
        failovers = Counter("pyrf_worker_failovers", "Computations taken over from a snapshot",
                            labels=["worker"])
        failovers.add_metric([worker], self._runner.restored)
        lease = Gauge("pyrf_worker_lease_age_seconds", "Time since the lease was renewed",
                      labels=["worker"])
        renewed = getattr(self._member.lease, "renewed_at", None)
        if renewed is not None:
            lease.add_metric([worker], self._reactor_clock() - renewed)
        size = Gauge("pyrf_computation_state_bytes", "Size of the last snapshot",
                     labels=["computation"])
        age = Gauge("pyrf_computation_snapshot_age_seconds", "Age of the last snapshot",
                    labels=["computation"])
        count = Counter("pyrf_computation_snapshots", "Snapshots taken here",
                        labels=["computation"])
        for name, running in sorted(self._runner.running.items()):
            count.add_metric([name], running.snapshots)
            if running.snapshot_at is not None:
                size.add_metric([name], running.state_bytes)
                age.add_metric([name], self._reactor_clock() - running.snapshot_at)
        yield from (assignments, failovers, lease, size, age, count)


class ManagerCollector:
    """A manager's metrics."""

    def __init__(self, manager):
        self._manager = manager

    def collect(self):
        Counter, Gauge = _families()
        name = self._manager.name
        leading = Gauge("pyrf_manager_leading", "1 while this manager leads", labels=["manager"])
        leading.add_metric([name], 1 if self._manager.election.leading else 0)
        moves = Counter("pyrf_manager_moves", "Computations moved between live workers",
                        labels=["manager"])
        moves.add_metric([name], self._manager.moved)
        yield from (leading, moves)


class CalculationCollector:
    """A worker's seed 001 calculations (:class:`~pyrf_blocks.calculations.CalculationService`)."""

    def __init__(self, service):
        self._service = service

    def collect(self):
        Counter, Gauge = _families()
        requests = Counter("pyrf_calculation_requests", "Seed 001 requests answered",
                           labels=["calculation", "request"])
        for (name, request), count in sorted(self._service.requests.items()):
            requests.add_metric([name, request], count)
        variables = Gauge("pyrf_calculation_variables", "Variables with a state kept here")
        variables.add_metric([], self._service.variables)
        yield from (requests, variables)


def new_registry():
    """A registry of its own (not the process-wide default)."""
    from prometheus_client import CollectorRegistry
    return CollectorRegistry(auto_describe=False)


def render(registry):
    """``(body bytes, content type)`` of the registry's metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    return generate_latest(registry), CONTENT_TYPE_LATEST
