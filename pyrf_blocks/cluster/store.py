"""
Where a cluster keeps what must outlive a worker: the last snapshot of each
computation's state, and the results its sinks wrote — fenced, so that only
the current owner of a computation can write either.

Two backends with one schema and one set of statements: an SQLite file in
WAL mode (:class:`ClusterStore`), for the workers of one machine, and a
PostgreSQL database (:class:`PostgresClusterStore`), for workers on several
hosts.  :func:`open_cluster_store` picks one from a path or a URL.

Every write is a transaction that first locks, checks and advances the
computation's fence (:mod:`pyrf_blocks.cluster.fencing`), so a paused
worker's late write is refused even though it still believes it owns the
computation.  Results are upserts keyed by (computation, block, key): a
computation replayed from its last snapshot writes the same rows again, and
none is duplicated.

Calls block on the disk or the network: the cluster runner makes them in a
thread pool, never on the reactor thread.  Each thread has its own
connection.
"""

import contextlib
import sqlite3
import threading
import time

import msgpack

from ..errors import Fenced

__all__ = ["ClusterStore", "PostgresClusterStore", "open_cluster_store"]

_TABLES = (
    """CREATE TABLE IF NOT EXISTS fences (
        computation TEXT PRIMARY KEY,
        revision BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        computation TEXT PRIMARY KEY,
        revision BIGINT NOT NULL,
        taken DOUBLE PRECISION NOT NULL,
        state {blob} NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS results (
        computation TEXT NOT NULL,
        block TEXT NOT NULL,
        key BIGINT NOT NULL,
        value {blob} NOT NULL,
        revision BIGINT NOT NULL,
        PRIMARY KEY (computation, block, key))""",
)


def open_cluster_store(where):
    """
    The store at ``where``: a ``postgresql://`` URL, or an SQLite file path.
    """
    where = str(where)
    if where.startswith(("postgresql://", "postgres://")):
        return PostgresClusterStore(where)
    return ClusterStore(where)


class ClusterStore:
    """
    The SQLite store.

    :param path: the SQLite file (made if missing).
    """

    blob = "BLOB"
    length = "length"

    def __init__(self, path):
        self.path = str(path)
        self._local = threading.local()
        with self._transaction() as run:
            for table in _TABLES:
                run(table.format(blob=self.blob))

    def __repr__(self):
        return f"{type(self).__name__}({self.path!r})"

    # What differs between the backends.

    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    @contextlib.contextmanager
    def _transaction(self):
        """Yield ``run(sql, params=()) -> cursor`` inside one transaction."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # the whole file: one writer at a time
        try:
            yield db.execute
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _lock_fence(self, run, computation):
        """The fence of ``computation`` (None: none yet), locked until commit."""
        row = run("SELECT revision FROM fences WHERE computation = ?", (computation,)).fetchone()
        return None if row is None else row[0]

    # The same for both.

    def _db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def _admit(self, run, computation, revision):
        newest = self._lock_fence(run, computation)
        if newest is not None and newest > revision:
            raise Fenced(computation, revision, newest)
        run("INSERT INTO fences VALUES (?, ?) ON CONFLICT (computation) "
            "DO UPDATE SET revision = excluded.revision", (computation, revision))

    def take_over(self, computation, revision):
        """
        Advance the fence of ``computation`` to ``revision`` and return its
        last snapshot's state (None: none yet).  From now on, writes under
        an older revision are refused.
        """
        with self._transaction() as run:
            self._admit(run, computation, revision)
            row = run("SELECT state FROM snapshots WHERE computation = ?",
                      (computation,)).fetchone()
        return None if row is None else msgpack.unpackb(bytes(row[0]), strict_map_key=False)

    def save_snapshot(self, computation, revision, state):
        """Replace the snapshot of ``computation`` (fenced); return its size in bytes."""
        blob = msgpack.packb(state, use_bin_type=True)
        with self._transaction() as run:
            self._admit(run, computation, revision)
            run("INSERT INTO snapshots VALUES (?, ?, ?, ?) ON CONFLICT (computation) "
                "DO UPDATE SET revision = excluded.revision, taken = excluded.taken, "
                "state = excluded.state", (computation, revision, time.time(), blob))
        return len(blob)

    def write_results(self, computation, revision, block, rows):
        """
        Upsert ``rows`` (``[(key, value bytes), ...]``) of one block's
        results (fenced).
        """
        with self._transaction() as run:
            self._admit(run, computation, revision)
            for key, value in rows:
                run("INSERT INTO results VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (computation, block, key) "
                    "DO UPDATE SET value = excluded.value, revision = excluded.revision",
                    (computation, block, key, value, revision))

    def results(self, computation, block):
        """``[(key, value bytes), ...]`` of one block, in key order."""
        with self._transaction() as run:
            rows = run("SELECT key, value FROM results WHERE computation = ? AND block = ? "
                       "ORDER BY key", (computation, block)).fetchall()
        return [(key, bytes(value)) for key, value in rows]

    def snapshot_info(self):
        """``{computation: (revision, taken, bytes)}`` of every snapshot."""
        with self._transaction() as run:
            rows = run(f"SELECT computation, revision, taken, {self.length}(state) "
                       "FROM snapshots").fetchall()
        return {c: (r, t, n) for c, r, t, n in rows}

    def close(self):
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class PostgresClusterStore(ClusterStore):
    """
    The PostgreSQL store (psycopg 3, the ``sensors`` extra).

    :param url: ``postgresql://user@host:port/database``.
    """

    blob = "BYTEA"
    length = "octet_length"

    def __init__(self, url):
        super().__init__(url)

    def __repr__(self):
        return f"PostgresClusterStore({self.path.split('@')[-1]!r})"

    def _connect(self):
        import psycopg

        return psycopg.connect(self.path, autocommit=True, connect_timeout=10)

    @contextlib.contextmanager
    def _transaction(self):
        db = self._db()
        with db.transaction():
            yield lambda sql, params=(): db.execute(sql.replace("?", "%s"), params)

    def _lock_fence(self, run, computation):
        # A row to lock first, so that two takers-over queue on it.
        run("INSERT INTO fences VALUES (?, 0) ON CONFLICT (computation) DO NOTHING",
            (computation,))
        row = run("SELECT revision FROM fences WHERE computation = ? FOR UPDATE",
                  (computation,)).fetchone()
        return row[0] or None
