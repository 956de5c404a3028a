"""
What the SQLite and PostgreSQL stores share: the tables, the upserts and
the queries, written once in the SQL both accept.

A table per policy, as the seed asks, each keyed by (topic, time) or
(topic, window start): the primary key is the index that answers "one
topic, a time range", and the conflict target of every upsert, so a batch
written twice leaves the same rows.  Times are integer nanoseconds since
the Unix epoch (BIGINT).  A subclass supplies the connection, the
placeholder (``?`` or ``%s``), the blob store and how many rows go to the
database at once (:meth:`SQLStore.upsert`).
"""

import time as _time

from zope.interface import implementer

from ..interfaces import IStore
from .rows import COLUMNS, POLICIES, blob_name

__all__ = ["SQLStore", "SCHEMA"]

_READING = "topic TEXT NOT NULL, time BIGINT NOT NULL, kind TEXT NOT NULL, " \
           "number DOUBLE PRECISION, text TEXT, blob TEXT"

#: The tables, in SQL that SQLite and PostgreSQL both accept.
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS last_value ({_READING}, expires BIGINT, PRIMARY KEY (topic))",
    f"CREATE TABLE IF NOT EXISTS n_records ({_READING}, PRIMARY KEY (topic, time))",
    f"CREATE TABLE IF NOT EXISTS time_window ({_READING}, expires BIGINT, "
    "PRIMARY KEY (topic, time))",
    "CREATE INDEX IF NOT EXISTS time_window_expires ON time_window (expires)",
    "CREATE TABLE IF NOT EXISTS aggregation (topic TEXT NOT NULL, window_start BIGINT NOT NULL, "
    "window_end BIGINT NOT NULL, count BIGINT NOT NULL, min DOUBLE PRECISION, "
    "max DOUBLE PRECISION, sum DOUBLE PRECISION, last_time BIGINT NOT NULL, "
    "PRIMARY KEY (topic, window_start))",
    "CREATE TABLE IF NOT EXISTS video (topic TEXT NOT NULL, window_start BIGINT NOT NULL, "
    "window_end BIGINT NOT NULL, frames BIGINT NOT NULL, codec TEXT NOT NULL, "
    "blob TEXT NOT NULL, PRIMARY KEY (topic, window_start))",
    "CREATE TABLE IF NOT EXISTS video_frames (topic TEXT NOT NULL, time BIGINT NOT NULL, "
    "window_start BIGINT NOT NULL, blob TEXT NOT NULL, PRIMARY KEY (topic, time))",
    "CREATE TABLE IF NOT EXISTS bad_payloads (topic TEXT NOT NULL, time BIGINT NOT NULL, "
    "reason TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (topic, time, reason))",
    "CREATE TABLE IF NOT EXISTS cursors (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

# Columns written, and the key of each table's upsert.
_WRITTEN = {
    "last_value": (("topic", "time", "kind", "number", "text", "blob", "expires"), ("topic",)),
    "n_records": (("topic", "time", "kind", "number", "text", "blob"), ("topic", "time")),
    "time_window": (("topic", "time", "kind", "number", "text", "blob", "expires"),
                    ("topic", "time")),
    "aggregation": (("topic", "window_start", "window_end", "count", "min", "max", "sum",
                     "last_time"), ("topic", "window_start")),
    "video": (("topic", "window_start", "window_end", "frames", "codec", "blob"),
              ("topic", "window_start")),
    "video_frames": (("topic", "time", "window_start", "blob"), ("topic", "time")),
    "bad_payloads": (("topic", "time", "reason", "detail"), ("topic", "time", "reason")),
    "cursors": (("key", "value"), ("key",)),
}


def _reading_rows(readings, with_expires):
    # The hot path of every write: one tuple per reading, no method calls.
    rows = []
    append = rows.append
    for r in readings:
        kind = r.kind
        if kind == "number":
            value = r.value
            row = (r.topic, r.time, kind, value if type(value) is float else float(value),
                   None, None)
        elif kind == "text":
            row = (r.topic, r.time, kind, None, r.value, None)
        else:
            row = (r.topic, r.time, kind, None, None, blob_name(r.value))
        append(row + (r.expires,) if with_expires else row)
    return rows


def _rows_of(batch):
    """
    ``{table: [tuple, ...]}`` of a batch, in the columns of :data:`_WRITTEN`.
    """
    readings = {"last_value": _reading_rows(batch.last_value, True),
                "n_records": _reading_rows(batch.n_records, False),
                "time_window": _reading_rows(batch.time_window, True)}
    readings["aggregation"] = [(a.topic, a.start, a.end, a.count, a.min, a.max, a.sum,
                                a.last_time) for a in batch.aggregation]
    readings["video"] = [(v.topic, v.start, v.end, v.frames, v.codec, blob_name(v.data))
                         for v in batch.video]
    readings["video_frames"] = [(f.topic, f.time, f.window_start, blob_name(f.data))
                                for f in batch.video_frames]
    readings["bad_payloads"] = [(b.topic, b.time, b.reason, b.detail)
                                for b in batch.bad_payloads]
    readings["cursors"] = list(batch.cursors.items())
    return readings


@implementer(IStore)
class SQLStore:
    """
    The SQL of every store; see :class:`~pyrf_blocks.storage.sqlite.SQLiteStore`
    and :class:`~pyrf_blocks.storage.postgres.PostgresStore`.
    """

    #: The parameter placeholder of the driver.
    placeholder = "?"

    def __init__(self, blobs):
        self.blobs = blobs

    def upsert_sql(self, table):
        """
        The ``INSERT ... ON CONFLICT`` of one row of ``table``.
        """
        columns, key = _WRITTEN[table]
        values = ", ".join([self.placeholder] * len(columns))
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
               f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")
        if table == "last_value":
            sql += " WHERE excluded.time >= last_value.time"
        return sql

    # What a subclass provides.

    def transaction(self, write=True):
        """
        A context manager: a cursor inside one transaction, committed
        durably on leaving it (rolled back on an exception); ``write=False``
        for one that only reads.
        """
        raise NotImplementedError

    def upsert(self, cursor, table, rows):
        """
        Upsert ``rows`` (tuples in the table's written columns).
        """
        cursor.executemany(self.upsert_sql(table), rows)

    # IStore.

    def write(self, batch):
        blobs = batch.blobs()
        for name, data in blobs.items():
            self.put_blob(name, data)
        self.write_rows(_rows_of(batch), blobs)

    def write_rows(self, rows, blobs):
        """
        In one transaction: ``rows`` (``{table: [tuple, ...]}`` in the
        written columns) by :meth:`upsert`, and the ``blobs`` (``{name:
        bytes}``) that the transaction keeps (:meth:`write_blobs`).
        """
        with self.transaction() as cursor:
            for table, table_rows in rows.items():
                if table_rows:
                    self.upsert(cursor, table, table_rows)
            self.write_blobs(cursor, blobs)

    def put_blob(self, name, data):
        """
        Keep a blob before the transaction that names it (a directory).
        """
        self.blobs.put(name, data)

    def write_blobs(self, cursor, blobs):
        """
        Keep ``blobs`` (``{name: bytes}``) inside the transaction (a
        table); nothing by default.
        """

    def _select(self, sql, parameters=()):
        with self.transaction(write=False) as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchall()

    def query(self, topic, policy, start=None, end=None, limit=None):
        if policy not in COLUMNS:
            raise ValueError(f"no table {policy!r}; tables: {', '.join(POLICIES)}")
        columns = [c for c in COLUMNS[policy] if c != "avg"]
        key = "window_start" if policy in ("aggregation", "video") else "time"
        p = self.placeholder
        where, parameters = [f"topic = {p}"], [topic]
        if start is not None:
            where.append(f"{key} >= {p}")
            parameters.append(int(start))
        if end is not None:
            where.append(f"{key} < {p}")
            parameters.append(int(end))
        sql = f"SELECT {', '.join(columns)} FROM {policy} WHERE {' AND '.join(where)}"
        if limit is not None:
            sql += f" ORDER BY {key} DESC LIMIT {int(limit)}"
            rows = self._select(sql, parameters)[::-1]
        else:
            rows = self._select(sql + f" ORDER BY {key}", parameters)
        result = [dict(zip(columns, row)) for row in rows]
        if policy == "aggregation":
            for row in result:
                row["avg"] = row["sum"] / row["count"] if row["count"] else None
            order = COLUMNS["aggregation"]
            result = [{c: row[c] for c in order} for row in result]
        return result

    def topics(self, policy=None):
        names = POLICIES if policy is None else (policy,)
        sql = " UNION ".join(f"SELECT DISTINCT topic FROM {name}" for name in names)
        return sorted(row[0] for row in self._select(sql))

    def bad_counts(self, topic=None):
        p = self.placeholder
        sql = "SELECT topic, reason, COUNT(*) FROM bad_payloads"
        parameters = ()
        if topic is not None:
            sql += f" WHERE topic = {p}"
            parameters = (topic,)
        sql += " GROUP BY topic, reason"
        return {(t, reason): count for t, reason, count in self._select(sql, parameters)}

    def cursor(self, key):
        rows = self._select(f"SELECT value FROM cursors WHERE key = {self.placeholder}", (key,))
        return rows[0][0] if rows else None

    def cursors(self, prefix):
        p = self.placeholder
        return dict(self._select(f"SELECT key, value FROM cursors WHERE "
                                 f"substr(key, 1, {p}) = {p}", (len(prefix), prefix)))

    def blob(self, name):
        return self.blobs.get(name)

    def cleanup(self, now, keep=None, grace=600.0):
        p = self.placeholder
        removed = {}
        with self.transaction() as cursor:
            cursor.execute(f"DELETE FROM time_window WHERE expires < {p}", (int(now),))
            removed["time_window"] = cursor.rowcount
            cursor.execute(f"UPDATE last_value SET blob = NULL WHERE blob IS NOT NULL "
                           f"AND expires < {p}", (int(now),))
            removed["last_value"] = cursor.rowcount
            removed["n_records"] = 0
            for topic, count in (keep or {}).items():
                cursor.execute(
                    f"DELETE FROM n_records WHERE topic = {p} AND time < "
                    f"(SELECT time FROM n_records WHERE topic = {p} "
                    f"ORDER BY time DESC LIMIT 1 OFFSET {p})",
                    (topic, topic, int(count) - 1))
                removed["n_records"] += max(cursor.rowcount, 0)
            cursor.execute("DELETE FROM video_frames WHERE EXISTS (SELECT 1 FROM video WHERE "
                           "video.topic = video_frames.topic AND "
                           "video.window_start = video_frames.window_start)")
            removed["video_frames"] = cursor.rowcount
        referenced = {row[0] for row in self._select(
            " UNION ".join(f"SELECT blob FROM {name} WHERE blob IS NOT NULL"
                           for name in ("last_value", "n_records", "time_window", "video",
                                        "video_frames")))}
        removed["blobs"] = self.blobs.remove(self.blobs.names() - referenced,
                                             older_than=_time.time() - grace)
        return removed
