"""
The values that cross :class:`~pyrf_blocks.interfaces.ICoordinator`: keys
with their revisions, the comparisons and operations of a transaction, and
watch events.  Plain data, shared by the etcd and the in-process backends so
both mean the same thing by each.
"""

from dataclasses import dataclass

__all__ = ["KeyValue", "Compare", "Put", "Delete", "Event", "prefix_end"]


@dataclass(frozen=True)
class KeyValue:
    """
    One key as the store holds it.

    ``create_revision`` is the revision that created it (it changes when the
    key is deleted and created again), ``mod_revision`` the revision of its
    last change, ``lease`` the lease it lives under (0: none).
    """

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True)
class Compare:
    """
    One condition of a transaction: ``target`` of ``key`` equals ``value``.

    ``target`` is ``"create"`` (``create_revision``; 0 means "the key does
    not exist"), ``"mod"`` (``mod_revision``) or ``"value"`` (bytes).
    """

    key: str
    target: str
    value: object

    def __post_init__(self):
        if self.target not in ("create", "mod", "value"):
            raise ValueError(f"Compare target must be create, mod or value, not {self.target!r}")

    def holds(self, kv):
        """Whether this condition holds of ``kv`` (None: the key is absent)."""
        if self.target == "value":
            return kv is not None and kv.value == self.value
        current = 0 if kv is None else (
            kv.create_revision if self.target == "create" else kv.mod_revision)
        return current == self.value


@dataclass(frozen=True)
class Put:
    """Set ``key`` to ``value``, under ``lease`` (0: none)."""

    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True)
class Delete:
    """Delete ``key``."""

    key: str


@dataclass(frozen=True)
class Event:
    """
    A change seen by a watch: ``kind`` is ``"put"`` or ``"delete"``; ``kv``
    is the key after a put, and for a delete carries the key and the
    deleting revision (value empty).
    """

    kind: str
    kv: KeyValue


def prefix_end(prefix):
    """
    The smallest key after every key that starts with ``prefix`` (etcd's
    ``range_end`` for a prefix): its last byte plus one.
    """
    raw = prefix.encode("utf-8")
    if not raw:
        raise ValueError("an empty prefix would name the whole store")
    for i in range(len(raw) - 1, -1, -1):
        if raw[i] < 0xFF:
            return raw[:i] + bytes([raw[i] + 1])
    raise ValueError(f"no key follows every key starting with {prefix!r}")
