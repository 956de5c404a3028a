"""
The edge: a bounded queue from one producer to one consumer, with a policy.

Under ``block`` (the default) a full queue pauses the producer, which
pauses its own inputs, all the way back to the source; ``drop_oldest`` and
``latest`` never pause it and count every chunk they drop.  Chunks travel by
reference: an edge never copies an array.
"""

from collections import deque

from twisted.python.failure import Failure
from zope.interface import implementer

from .interfaces import IEdge

__all__ = ["Edge", "POLICIES", "DEFAULT_MAXSIZE", "check_policy"]

POLICIES = ("block", "drop_oldest", "latest")
#: Queue bound of an edge, in chunks, unless the consumer asks otherwise.
DEFAULT_MAXSIZE = 8
_END = object()


def check_policy(policy, maxsize):
    """
    Validate an edge policy and queue bound; return the effective bound.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown edge policy {policy!r}; use one of "
                         f"{', '.join(POLICIES)}")
    if policy == "latest":
        return 1
    if maxsize is None:
        return DEFAULT_MAXSIZE
    if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
        raise ValueError(f"maxsize must be a positive integer, got {maxsize!r}")
    return maxsize


@implementer(IEdge)
class Edge:
    """
    A bounded queue from one producer to one consumer.

    The edge is an ``IPushProducer`` towards its consumer, which may pause
    and resume it; under the ``block`` policy it pauses its own producer
    while the queue is full.  Under ``drop_oldest`` and ``latest`` it never
    pauses the producer and counts every chunk it drops.
    """

    def __init__(self, producer, consumer, policy="block", maxsize=None):
        self.maxsize = check_policy(policy, maxsize)
        self.policy = policy
        self.producer = producer
        self.consumer = consumer
        self._queue = deque()
        self._pauses = 0
        self._holding = False
        self._draining = False
        self._closed = False
        self.chunks_in = self.chunks_out = self.bytes_out = 0
        self.dropped = self.max_depth = 0

    def __repr__(self):
        consumer = getattr(self.consumer, "label", None) or repr(self.consumer)
        return (f"<Edge {self.producer.label} -> {consumer} "
                f"{self.policy}/{self.maxsize}>")

    @property
    def stats(self):
        return {"policy": self.policy, "maxsize": self.maxsize,
                "chunks_in": self.chunks_in, "chunks_out": self.chunks_out,
                "bytes_out": self.bytes_out, "dropped": self.dropped,
                "depth": self.depth, "max_depth": self.max_depth}

    @property
    def depth(self):
        return sum(1 for item in self._queue if item is not _END)

    @property
    def paused(self):
        return self._pauses > 0

    # Called by the producer.

    def put(self, chunk):
        if self._closed:
            return
        self.chunks_in += 1
        queue = self._queue
        if not queue and not self._pauses and not self._draining:
            # The common case: nothing waits, hand the chunk straight over.
            self.chunks_out += 1
            # Chunk.nbytes, written out for sampled chunks (the property
            # costs more than the count).
            self.bytes_out += chunk.data.nbytes if chunk.times is None else chunk.nbytes
            self._draining = True
            try:
                self.consumer.write(chunk)
            except Exception:
                self._failed()
            finally:
                self._draining = False
            if queue and not self._pauses:
                self._drain()
            return
        if len(queue) >= self.maxsize and self.policy != "block":
            queue.popleft()
            self.dropped += 1
        queue.append(chunk)
        if len(queue) > self.max_depth:
            self.max_depth = len(queue)
        if not self._pauses and not self._draining:
            self._drain()
        if (self.policy == "block" and not self._holding
                and len(queue) >= self.maxsize):
            self._holding = True
            self.producer.pauseProducing()

    def put_end(self):
        if self._closed:
            return
        self._queue.append(_END)
        if not self._pauses and not self._draining:
            self._drain()

    def close(self):
        """
        Detach from both ends; what is still queued is discarded.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._release()
        self.consumer.unregisterProducer()

    # IPushProducer, called by the consumer.

    def pauseProducing(self):
        self._pauses += 1

    def resumeProducing(self):
        if self._pauses:
            self._pauses -= 1
        if not self._pauses and not self._draining:
            self._drain()

    def stopProducing(self):
        self.producer.unsubscribe(self)

    def _failed(self):
        owner = getattr(self.consumer, "block", self.consumer)
        graph = getattr(owner, "graph", None) or self.producer.graph
        graph.fail(owner, Failure())

    def _drain(self):
        queue, consumer = self._queue, self.consumer
        self._draining = True
        try:
            while queue and not self._pauses and not self._closed:
                item = queue.popleft()
                if item is _END:
                    consumer.end_of_stream()
                    continue
                self.chunks_out += 1
                self.bytes_out += item.nbytes
                consumer.write(item)
        except Exception:
            self._failed()
        finally:
            self._draining = False
        if self._holding and len(queue) <= self.maxsize // 2:
            self._release()

    def _release(self):
        if self._holding:
            self._holding = False
            self.producer.resumeProducing()
