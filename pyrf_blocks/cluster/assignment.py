"""
Which worker runs which computation: the seed's rule, decided by a pure
function, and written to the coordinator so that a computation has exactly
one owner at a time.

The rule (seed 000): the first worker takes everything; as workers join,
each ends up with about 1/n of the computations; a worker that stops
heartbeating loses its computations to the others.  :func:`rebalance` is
*sticky*: it moves only what must move — a computation stays where it is
unless its owner left or holds more than its share.

An assignment's ``mod_revision`` is its fencing token: it grows with every
change of owner, and stores refuse writes that carry an older one
(:mod:`pyrf_blocks.cluster.fencing`).
"""

import json
from dataclasses import dataclass

from .kv import Compare, Delete, Put

__all__ = ["rebalance", "Assignment", "Assignments"]


def rebalance(owners, workers):
    """
    The new owner of every computation.

    :param owners: ``{computation: worker or None}``, the current owners
        (None: unassigned).
    :param workers: the live workers.
    :returns: ``{computation: worker}`` (empty without workers).  Each worker
        holds ``len(owners) // len(workers)`` computations or one more; of
        the computations whose owner is live and within its share, none
        moves.
    """
    workers = sorted(set(workers))
    if not workers:
        return {}
    computations = sorted(owners)
    base, extra = divmod(len(computations), len(workers))
    kept = {w: [] for w in workers}
    for computation in computations:
        owner = owners[computation]
        if owner in kept:
            kept[owner].append(computation)
    # The workers that already hold the most keep the extra places, so that
    # fewer computations move.
    by_load = sorted(workers, key=lambda w: (-len(kept[w]), w))
    share = {w: base + (1 if i < extra else 0) for i, w in enumerate(by_load)}
    result, homeless = {}, []
    for worker in workers:
        mine = kept[worker]
        for computation in mine[:share[worker]]:
            result[computation] = worker
        homeless.extend(mine[share[worker]:])
    homeless.extend(c for c in computations if owners[c] not in kept)
    for computation in sorted(homeless):
        worker = min(workers, key=lambda w: (
            sum(1 for o in result.values() if o == w) - share[w], w))
        result[computation] = worker
    return result


@dataclass(frozen=True)
class Assignment:
    """``computation`` runs on ``worker``; ``revision`` is its fencing token."""

    computation: str
    worker: str
    revision: int


class Assignments:
    """
    The assignments under ``{prefix}assign/`` on a coordinator.

    :param coordinator: an :class:`~pyrf_blocks.interfaces.ICoordinator`.
    :param prefix: the cluster's key prefix.
    """

    def __init__(self, coordinator, prefix="/pyrf/"):
        self._coordinator = coordinator
        self.prefix = prefix + "assign/"

    def key(self, computation):
        return self.prefix + computation

    def parse(self, kv):
        """The :class:`Assignment` a key holds."""
        return Assignment(kv.key[len(self.prefix):], json.loads(kv.value)["worker"],
                          kv.mod_revision)

    async def read(self):
        """``({computation: Assignment}, revision)``."""
        kvs, revision = await self._coordinator.range(self.prefix)
        return {a.computation: a for a in map(self.parse, kvs)}, revision

    async def move(self, computation, worker, expected):
        """
        Give ``computation`` to ``worker`` if its assignment is still the one
        of revision ``expected`` (0: unassigned).  Returns the new
        :class:`Assignment`, or None when someone changed it first.
        """
        value = json.dumps({"worker": worker}).encode()
        target = "mod" if expected else "create"
        succeeded, revision = await self._coordinator.txn(
            [Compare(self.key(computation), target, expected)],
            [Put(self.key(computation), value)])
        return Assignment(computation, worker, revision) if succeeded else None

    async def drop(self, computation, expected):
        """Unassign ``computation`` if still at revision ``expected``."""
        succeeded, _ = await self._coordinator.txn(
            [Compare(self.key(computation), "mod", expected)], [Delete(self.key(computation))])
        return succeeded
