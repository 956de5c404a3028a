"""
Where a cluster keeps what must outlive a worker: the last snapshot of each
computation's state, and the results its sinks wrote — fenced, so that only
the current owner of a computation can write either.

One SQLite file in WAL mode, shared by the workers of one machine (or on a
shared disk); every write is a transaction that first checks and advances
the computation's fence (:mod:`pyrf_blocks.cluster.fencing`), so a paused
worker's late write is refused even though it still believes it owns the
computation.  Results are upserts keyed by (computation, block, key): a
computation replayed from its last snapshot writes the same rows again, and
none is duplicated.

Calls block on the disk: the cluster runner makes them in a thread pool,
never on the reactor thread.
"""

import sqlite3
import threading
import time

import msgpack

from ..errors import Fenced

__all__ = ["ClusterStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fences (
    computation TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    computation TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    taken REAL NOT NULL,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    computation TEXT NOT NULL,
    block TEXT NOT NULL,
    key INTEGER NOT NULL,
    value BLOB NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (computation, block, key)
);
"""


class ClusterStore:
    """
    :param path: the SQLite file (made if missing).
    """

    def __init__(self, path):
        self.path = str(path)
        self._local = threading.local()
        self._connection().db.executescript(_SCHEMA)

    def _connection(self):
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return _Transaction(db)

    @staticmethod
    def _admit(db, computation, revision):
        row = db.execute("SELECT revision FROM fences WHERE computation = ?",
                         (computation,)).fetchone()
        if row is not None and row[0] > revision:
            raise Fenced(computation, revision, row[0])
        db.execute("INSERT INTO fences VALUES (?, ?) ON CONFLICT (computation) "
                   "DO UPDATE SET revision = excluded.revision", (computation, revision))

    def take_over(self, computation, revision):
        """
        Advance the fence of ``computation`` to ``revision`` and return its
        last snapshot's state (None: none yet).  From now on, writes under
        an older revision are refused.
        """
        with self._connection() as db:
            self._admit(db, computation, revision)
            row = db.execute("SELECT state FROM snapshots WHERE computation = ?",
                             (computation,)).fetchone()
        return None if row is None else msgpack.unpackb(row[0], strict_map_key=False)

    def save_snapshot(self, computation, revision, state):
        """Replace the snapshot of ``computation`` (fenced)."""
        blob = msgpack.packb(state, use_bin_type=True)
        with self._connection() as db:
            self._admit(db, computation, revision)
            db.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?) ON CONFLICT (computation) "
                       "DO UPDATE SET revision = excluded.revision, taken = excluded.taken, "
                       "state = excluded.state", (computation, revision, time.time(), blob))
        return len(blob)

    def write_results(self, computation, revision, block, rows):
        """
        Upsert ``rows`` (``[(key, value bytes), ...]``) of one block's
        results (fenced).
        """
        with self._connection() as db:
            self._admit(db, computation, revision)
            db.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?) ON CONFLICT (computation, block, key) "
                "DO UPDATE SET value = excluded.value, revision = excluded.revision",
                [(computation, block, key, value, revision) for key, value in rows])

    def results(self, computation, block):
        """``[(key, value bytes), ...]`` of one block, in key order."""
        with self._connection() as db:
            return db.execute("SELECT key, value FROM results WHERE computation = ? AND block = ? "
                              "ORDER BY key", (computation, block)).fetchall()

    def snapshot_info(self):
        """``{computation: (revision, taken, bytes)}`` of every snapshot."""
        with self._connection() as db:
            return {c: (r, t, n) for c, r, t, n in db.execute(
                "SELECT computation, revision, taken, length(state) FROM snapshots")}

    def close(self):
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class _Transaction:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, traceback):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
