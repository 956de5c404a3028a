"""
A sink that keeps a computation's results durably and idempotently: each
chunk it receives, encoded as on the wire, upserted into a
:class:`~pyrf_blocks.cluster.store.ClusterStore` under (computation, block,
seq).  Written again after a recovery, the same chunk lands on the same row:
nothing is duplicated.

In a cluster the runner tells it the store, and which computation and
assignment revision it writes under (``graph.cluster``), and the store
refuses it once another worker took the computation over; run alone, it
writes to the SQLite file ``path`` under revision 1.
"""

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..block import Sink
from ..chunk import encode_chunk
from ..errors import Fenced
from ..interfaces import IChunkProducer
from ..registry import register

__all__ = ["result_store"]

log = Logger()


@register(remote=False)
class result_store(Sink):
    """
    :param path: the store's SQLite file when it runs outside a cluster
        (in a cluster, the workers' store).
    :param computation: the name its rows are kept under when it runs
        outside a cluster (in a cluster: the computation's own name).
    """

    type_name = "result_store"
    requires = (IChunkProducer,)

    def __init__(self, producer, path=None, computation="local", **kwargs):
        self.path = path
        self.computation = computation
        self._own_store = None
        self.written = 0
        self._pending = set()
        #: True once the store refused a write: another worker owns the
        #: computation, and this one stops.
        self.fenced = False
        super().__init__(producer, **kwargs)

    def on_start(self):
        if getattr(self.graph, "cluster", None) is None and self._own_store is None:
            from ..cluster.store import open_cluster_store

            if self.path is None:
                raise ValueError(f"{self.label}: give path (an SQLite file or a "
                                 f"postgresql:// URL) when it runs "
                                 f"outside a cluster")
            self._own_store = open_cluster_store(self.path)

    @property
    def store(self):
        context = getattr(self.graph, "cluster", None)
        return self._own_store if context is None else context.store

    @property
    def fencing(self):
        """``(computation, revision)`` its writes carry."""
        context = getattr(self.graph, "cluster", None)
        if context is None:
            return self.computation, 1
        return context.computation, context.revision

    def compute(self, chunk):
        context = getattr(self.graph, "cluster", None)
        if self.fenced or (context is not None and not context.active):
            return  # fenced, or moved away: what is flushed now is no result
        computation, revision = self.fencing
        rows = [(chunk.seq, encode_chunk(chunk))]
        reactor = self.graph.reactor
        write = deferToThreadPool(reactor, reactor.getThreadPool(), self.store.write_results,
                                  computation, revision, self.name, rows)
        self._pending.add(write)
        write.addBoth(self._written, write, len(rows))

    def _written(self, result, write, rows):
        self._pending.discard(write)
        if isinstance(result, Failure) and result.check(Fenced):
            # Expected after a pause: another worker owns the computation.
            if not self.fenced:
                self.fenced = True
                log.warn("{block}: {why}; stopping here", block=self.label,
                         why=result.getErrorMessage())
                self.graph.stop()
        elif isinstance(result, Failure):
            self.graph.fail(self, result)
        else:
            self.written += rows

    def wait_written(self):
        """A Deferred that fires when every write made so far is durable."""
        return defer.DeferredList(list(self._pending), consumeErrors=True)

    def end(self):
        # Finished means durable: a run that ends must not exit with writes
        # still in the thread pool.
        if self._pending:
            self.wait_written().addCallback(lambda _: self.end())
            return
        super().end()
