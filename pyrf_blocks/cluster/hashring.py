"""
Consistent hashing: which node serves a key (seed 001 sends every request
for one variable to the same node, so the node can keep its state).

Each node owns ``replicas`` points on a ring of 64-bit hashes; a key goes to
the first point at or after its own hash.  Adding or removing a node moves
only the keys whose points it takes or gives up (about 1/n of them), and
every client that knows the same nodes picks the same node for a key.
"""

import bisect
import hashlib

__all__ = ["HashRing"]


def _hash(text):
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class HashRing:
    """
    :param nodes: the node names (URLs, say).
    :param replicas: points per node; more spread the keys more evenly.
    """

    def __init__(self, nodes=(), replicas=64):
        if replicas < 1:
            raise ValueError(f"a node needs at least one point on the ring, not {replicas!r}")
        self.replicas = replicas
        self._points = []  # sorted (hash, node)
        self._nodes = set()
        for node in nodes:
            self.add(node)

    @property
    def nodes(self):
        return frozenset(self._nodes)

    def add(self, node):
        if node in self._nodes:
            return
        self._nodes.add(node)
        for i in range(self.replicas):
            bisect.insort(self._points, (_hash(f"{node}#{i}"), node))

    def remove(self, node):
        if node not in self._nodes:
            return
        self._nodes.discard(node)
        self._points = [p for p in self._points if p[1] != node]

    def node_for(self, key, without=()):
        """
        The node that serves ``key``; skipping the nodes in ``without``
        (known to be down), the next one along the ring.

        :raises LookupError: when no node is left.
        """
        if not self._points:
            raise LookupError("the ring has no nodes")
        start = bisect.bisect_left(self._points, (_hash(key), ""))
        for offset in range(len(self._points)):
            node = self._points[(start + offset) % len(self._points)][1]
            if node not in without:
                return node
        raise LookupError(f"every node is down: {', '.join(sorted(self._nodes))}")
