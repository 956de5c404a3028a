"""
Fencing: a lease alone does not stop a paused worker from writing.  A worker
SIGSTOPped past its lease wakes up still believing it owns its computations;
by then another worker has taken them over.  So every result and state write
carries the revision of the assignment it was made under
(:class:`~pyrf_blocks.cluster.assignment.Assignment`), and the store refuses
a revision older than the newest it has seen for that computation.

A new owner *advances* the fence before its first write (when it loads the
last snapshot), so the old owner's writes are refused from that moment on,
even if it never learns that it lost its lease.
"""

from ..errors import Fenced

__all__ = ["Fence"]


class Fence:
    """
    The newest assignment revision seen per computation.

    Stores hold one and call :meth:`admit` inside the transaction of every
    write; this in-memory one suits stores that live in one process, and
    :meth:`state` / :meth:`restore` let a durable store keep it with its
    rows.
    """

    def __init__(self):
        self._newest = {}

    def admit(self, computation, revision):
        """
        Let a write of ``computation`` made under ``revision`` through, or
        raise :class:`~pyrf_blocks.errors.Fenced`.  A newer revision becomes
        the fence.
        """
        if not isinstance(revision, int) or revision <= 0:
            raise ValueError(f"{computation}: a fencing revision is a positive int, not {revision!r}")
        newest = self._newest.get(computation, 0)
        if revision < newest:
            raise Fenced(computation, revision, newest)
        self._newest[computation] = revision

    def newest(self, computation):
        """The newest revision admitted for ``computation`` (0: none)."""
        return self._newest.get(computation, 0)

    def state(self):
        return dict(self._newest)

    def restore(self, state):
        self._newest = {str(k): int(v) for k, v in state.items()}
