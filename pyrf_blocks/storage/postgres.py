"""
The server backend: PostgreSQL through psycopg 3.

Large batches go to the server by ``COPY``, which has no upsert of its
own.  Rows that are only ever added (``n_records``, ``time_window``,
``video_frames``, ``bad_payloads``) are copied straight into their table;
if one of them is there already (a replay after a crash), the
transaction is rolled back and the whole batch written again with
upserts: copied into a temporary table and ``INSERT ... SELECT ... ON
CONFLICT`` from it, as the tables whose rows are replaced
(``last_value``, ``aggregation``) always are.  (A savepoint around each
straight copy, rolled back alone, cost two more round trips and a
subtransaction in every batch, to spare work only in the rare replay.)  Small batches go by ``executemany``.  Blobs are kept in a ``blobs`` table
written in the same transaction as their rows, or in a directory when one
is given.  When the server goes away, the call fails with
:class:`~pyrf_blocks.errors.StoreUnavailable` and the next one connects
again.
"""

import contextlib
import threading

from zope.interface import implementer

from ..errors import StoreUnavailable
from ..interfaces import IBlobStore
from .blobs import DirectoryBlobs
from .sql import _WRITTEN, SCHEMA, SQLStore

__all__ = ["PostgresStore"]

#: Batches of at least this many rows of one table are copied.
COPY_FROM = 64

#: Tables whose rows are only added: copied straight in when none is there yet.
_ADDED = ("n_records", "time_window", "video_frames", "bad_payloads")

#: PostgreSQL type of each written column (one name, one type, in every table):
#: COPY sends rows in the binary format, which the server takes without
#: parsing text (1.10-1.18x the rows/s of text COPY on this VM).
_TYPES = {"topic": "text", "time": "int8", "kind": "text", "number": "float8",
          "text": "text", "blob": "text", "expires": "int8", "window_start": "int8",
          "window_end": "int8", "count": "int8", "min": "float8", "max": "float8",
          "sum": "float8", "last_time": "int8", "frames": "int8", "codec": "text",
          "reason": "text", "detail": "text", "key": "text", "value": "text"}


@implementer(IBlobStore)
class _TableBlobs:
    """
    Blobs in the store's ``blobs`` table.
    """

    def __init__(self, store):
        self._store = store

    def put(self, name, data):
        with self._store.transaction() as cursor:
            cursor.execute("INSERT INTO blobs (name, data) VALUES (%s, %s) "
                           "ON CONFLICT (name) DO NOTHING", (name, data))

    def get(self, name):
        rows = self._store._select("SELECT data FROM blobs WHERE name = %s", (name,))
        if not rows:
            raise KeyError(name)
        return bytes(rows[0][0])

    def names(self):
        return {row[0] for row in self._store._select("SELECT name FROM blobs")}

    def remove(self, names, older_than=None):
        names = list(names)
        if not names:
            return 0
        with self._store.transaction() as cursor:
            if older_than is None:
                cursor.execute("DELETE FROM blobs WHERE name = ANY(%s)", (names,))
            else:
                cursor.execute("DELETE FROM blobs WHERE name = ANY(%s) AND put_at < %s",
                               (names, older_than))
            return cursor.rowcount


class PostgresStore(SQLStore):
    """
    A store in the PostgreSQL database at ``conninfo`` (a libpq connection
    string or URL), its tables created if missing; blobs in the database,
    or under the directory ``blob_directory``.
    """

    placeholder = "%s"

    def __init__(self, conninfo, blob_directory=None, connect_timeout=5):
        import psycopg

        self._psycopg = psycopg
        self.conninfo = conninfo
        self.connect_timeout = connect_timeout
        self._in_table = blob_directory is None
        super().__init__(_TableBlobs(self) if self._in_table else DirectoryBlobs(blob_directory))
        self._connection = None
        self._lock = threading.RLock()
        with self.transaction() as cursor:
            for statement in SCHEMA:
                cursor.execute(statement)
            cursor.execute("CREATE TABLE IF NOT EXISTS blobs "
                           "(name TEXT PRIMARY KEY, data BYTEA NOT NULL, "
                           "put_at DOUBLE PRECISION NOT NULL DEFAULT extract(epoch FROM now()))")

    def __repr__(self):
        return f"<PostgresStore {self.conninfo!r}>"

    def _connect(self):
        if self._connection is None or self._connection.closed:
            try:
                self._connection = self._psycopg.connect(
                    self.conninfo, connect_timeout=self.connect_timeout)
            except self._psycopg.OperationalError as error:
                raise StoreUnavailable(f"PostgreSQL store: {_first_line(error)}") from None
            self._staged = set()
        return self._connection

    @contextlib.contextmanager
    def transaction(self, write=True):
        with self._lock:
            connection = self._connect()
            try:
                with connection.transaction(), connection.cursor() as cursor:
                    yield cursor
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as error:
                with contextlib.suppress(Exception):
                    connection.close()
                self._connection = None
                raise StoreUnavailable(f"PostgreSQL store: {_first_line(error)}") from None
            except BaseException:
                self._staged = set()  # temporary tables made in it are gone
                raise

    def put_blob(self, name, data):
        if not self._in_table:
            self.blobs.put(name, data)

    def write_blobs(self, cursor, blobs):
        if self._in_table:
            if blobs:
                cursor.executemany("INSERT INTO blobs (name, data) VALUES (%s, %s) "
                                   "ON CONFLICT (name) DO NOTHING", list(blobs.items()))

    def write_rows(self, rows, blobs):
        try:
            self._write_rows(rows, blobs, copy_added=True)
        except self._psycopg.errors.UniqueViolation:
            # Written before (a replay after a crash): all of it again, by upserts.
            self._write_rows(rows, blobs, copy_added=False)

    def _write_rows(self, rows, blobs, copy_added):
        with self.transaction() as cursor:
            for table, table_rows in rows.items():
                if not table_rows:
                    continue
                if copy_added and table in _ADDED and len(table_rows) >= COPY_FROM:
                    _copy(cursor, table, _WRITTEN[table][0], table_rows)
                else:
                    self.upsert(cursor, table, table_rows)
            self.write_blobs(cursor, blobs)

    def upsert(self, cursor, table, rows):
        columns, key = _WRITTEN[table]
        if len(rows) < COPY_FROM:
            cursor.executemany(self.upsert_sql(table), rows)
            return
        names = ", ".join(columns)
        # One statement may not update a row twice: the last of a key wins
        # (for last_value, the most recent).
        width = len(key)
        unique = {}
        for row in rows:
            k = row[:width]
            held = unique.get(k)
            if table != "last_value" or held is None or row[1] >= held[1]:
                unique[k] = row
        stage = f"stage_{table}"
        if stage not in self._staged:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                           f"(LIKE {table}) ON COMMIT DELETE ROWS")
            self._staged.add(stage)
        _copy(cursor, stage, columns, unique.values())
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        sql = (f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "
               f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")
        if table == "last_value":
            sql += " WHERE excluded.time >= last_value.time"
        cursor.execute(sql)

    def close(self):
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _copy(cursor, table, columns, rows):
    """
    ``rows`` into ``table``'s ``columns`` by one binary COPY.
    """
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([_TYPES[column] for column in columns])
        for row in rows:
            copy.write_row(row)


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
