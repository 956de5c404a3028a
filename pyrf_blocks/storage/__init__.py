"""
Where sensor pipelines keep their enriched data.

One interface (:class:`~pyrf_blocks.interfaces.IStore`), three backends:
:class:`MemoryStore` for tests, :class:`SQLiteStore` (WAL) as the embedded
default, :class:`PostgresStore` as the server.  :func:`open_store` opens
one from a URL; :class:`ThreadedStore` runs any of them off the reactor
thread.
"""

from .memory import MemoryStore
from .postgres import PostgresStore
from .rows import (COLUMNS, KINDS, POLICIES, Aggregate, BadPayload, Batch, Frame, Reading,
                   Video)
from .sqlite import SQLiteStore
from .threaded import InlineStore, ThreadedStore

__all__ = ["MemoryStore", "SQLiteStore", "PostgresStore", "ThreadedStore", "InlineStore", "open_store",
           "Reading", "Aggregate", "Video", "Frame", "BadPayload", "Batch",
           "KINDS", "POLICIES", "COLUMNS"]


def open_store(url):
    """
    A store from ``url``: ``memory:``, ``sqlite:PATH`` (or a bare path), or
    ``postgresql://...`` (a libpq URL).
    """
    if url == "memory:":
        return MemoryStore()
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:"):
        url = url[len("sqlite:"):]
    if not url:
        raise ValueError("open_store: no SQLite path given (sqlite:PATH)")
    return SQLiteStore(url)
