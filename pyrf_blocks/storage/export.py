"""
The enriched data of chosen topics, out of a store: as Python rows
(:func:`enriched_data`), or into a CSV or Parquet file (:func:`export`),
with a progress bar for large exports.

Times are integer nanoseconds since the Unix epoch (UTC), as stored;
:func:`parse_time` reads the ISO 8601 date-times a user writes.
"""

import csv
import datetime

from .rows import COLUMNS, POLICIES

__all__ = ["enriched_data", "export", "parse_time", "FORMATS"]

#: Export formats.
FORMATS = ("csv", "parquet")


def parse_time(text):
    """
    ns since the epoch from ``2024-01-31T12:00:00Z`` (UTC when no zone is
    given), a date ``2024-01-31``, or a whole number of ns.

    :raises ValueError: naming the text.
    """
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date-time (2024-01-31T12:00:00Z) "
                         "or ns since the epoch") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp()) * 10 ** 9 + moment.microsecond * 1000


def enriched_data(store, topic, policy="n_records", start=None, end=None, limit=None,
                  blobs=False):
    """
    The rows of ``topic`` kept by ``policy`` with time (or window start) in
    ``[start, end)``, oldest first, as dicts.  Rows of readings gain a
    ``value`` (the number, the text, or with ``blobs=True`` the bytes of
    the image or file).

    :param store: an :class:`~pyrf_blocks.interfaces.IStore` (blocking).
    """
    rows = store.query(topic, policy, start, end, limit)
    if policy in ("last_value", "n_records", "time_window"):
        for row in rows:
            if row["kind"] == "number":
                row["value"] = row["number"]
            elif row["kind"] == "text":
                row["value"] = row["text"]
            else:
                row["value"] = (store.blob(row["blob"]) if blobs and row["blob"]
                                else row["blob"])
    elif policy == "video" and blobs:
        for row in rows:
            row["value"] = store.blob(row["blob"])
    return rows


def export(store, topics, policy, path, format="csv", start=None, end=None, progress=None):
    """
    Write the rows of ``topics`` kept by ``policy`` in ``[start, end)`` to
    ``path`` as CSV (a header, then one line per row) or Parquet (one
    column per field; pyarrow).  Images and files appear by their blob
    name.  Returns the number of rows written.

    :param progress: show a tqdm progress bar (rows per topic); None: only
        on a terminal.
    """
    if policy not in POLICIES:
        raise ValueError(f"export: no table {policy!r}; tables: {', '.join(POLICIES)}")
    if format not in FORMATS:
        raise ValueError(f"export: format {format!r}; one of {', '.join(FORMATS)}")
    from tqdm import tqdm

    columns = COLUMNS[policy]
    bar = tqdm(total=len(topics), unit="topic", desc=f"export {policy}",
               disable=None if progress is None else not progress)
    written = 0
    if format == "csv":
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for topic in topics:
                for row in store.query(topic, policy, start, end):
                    writer.writerow([row[c] for c in columns])
                    written += 1
                bar.update(1)
                bar.set_postfix(rows=written)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = _arrow_types()
        schema = pa.schema([(c, types[c]()) for c in columns])
        with pq.ParquetWriter(path, schema) as writer:
            for topic in topics:
                rows = store.query(topic, policy, start, end)
                if rows:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                written += len(rows)
                bar.update(1)
                bar.set_postfix(rows=written)
    bar.close()
    return written


def _arrow_types():
    import pyarrow as pa

    return {
        "topic": pa.string, "kind": pa.string, "text": pa.string, "blob": pa.string,
        "codec": pa.string, "reason": pa.string, "detail": pa.string,
        "time": pa.int64, "expires": pa.int64, "window_start": pa.int64,
        "window_end": pa.int64, "count": pa.int64, "frames": pa.int64, "last_time": pa.int64,
        "number": pa.float64, "min": pa.float64, "max": pa.float64, "sum": pa.float64,
        "avg": pa.float64,
    }
