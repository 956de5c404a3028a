"""
The embedded default: SQLite in WAL mode, blobs in a directory beside the
database file.  No server to start.

WAL lets readers (a query, an export) run while a pipeline writes.
``synchronous=FULL`` (the default here) syncs the log at every commit, so
a committed batch survives a power cut as well as a killed process;
``NORMAL`` survives a killed process only, for less time per commit.
"""

import contextlib
import os
import sqlite3
import threading

from ..errors import StoreUnavailable
from .blobs import DirectoryBlobs
from .sql import SCHEMA, SQLStore

__all__ = ["SQLiteStore"]


class SQLiteStore(SQLStore):
    """
    A store in the SQLite file ``path`` (created if missing), its blobs in
    the directory ``path + ".blobs"`` unless ``blobs`` is given.  One
    connection, used by one thread at a time.
    """

    placeholder = "?"

    def __init__(self, path, blobs=None, synchronous="FULL"):
        self.path = os.fspath(path)
        super().__init__(DirectoryBlobs(self.path + ".blobs") if blobs is None else blobs)
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"SQLiteStore: synchronous {synchronous!r}; "
                             "one of FULL, NORMAL, EXTRA")
        try:
            self._connection = sqlite3.connect(self.path, isolation_level=None,
                                               check_same_thread=False, timeout=30.0)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute(f"PRAGMA synchronous={synchronous}")
            for statement in SCHEMA:
                self._connection.execute(statement)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"SQLite store {self.path}: {error}") from None
        self._lock = threading.Lock()

    def __repr__(self):
        return f"<SQLiteStore {self.path!r}>"

    @contextlib.contextmanager
    def transaction(self, write=True):
        with self._lock:
            cursor = self._connection.cursor()
            try:
                # A writer takes the write lock at once (no deadlock between
                # two that both read first); a reader takes none (WAL).
                cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as error:
                raise StoreUnavailable(f"SQLite store {self.path}: {error}") from None
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            try:
                cursor.execute("COMMIT")
            except sqlite3.OperationalError as error:
                cursor.execute("ROLLBACK")
                raise StoreUnavailable(f"SQLite store {self.path}: {error}") from None

    def close(self):
        self._connection.close()
