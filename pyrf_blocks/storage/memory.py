"""
A store in memory: the same behaviour as the SQL stores, for tests and for
trying a pipeline without a database.  Nothing survives the process.
"""

import threading
import time as _time
from collections import Counter

from zope.interface import implementer

from ..interfaces import IStore
from .blobs import MemoryBlobs
from .rows import COLUMNS, POLICIES, blob_name

__all__ = ["MemoryStore"]


def _reading_row(reading, with_expires):
    number, text, blob = reading.columns()
    row = {"topic": reading.topic, "time": reading.time, "kind": reading.kind,
           "number": number, "text": text, "blob": blob}
    if with_expires:
        row["expires"] = reading.expires
    return row


def _aggregate_row(aggregate):
    return {"topic": aggregate.topic, "window_start": aggregate.start,
            "window_end": aggregate.end, "count": aggregate.count,
            "min": aggregate.min, "max": aggregate.max, "sum": aggregate.sum,
            "avg": aggregate.avg, "last_time": aggregate.last_time}


@implementer(IStore)
class MemoryStore:
    """
    Rows in dicts keyed as the SQL tables are; blobs in :class:`MemoryBlobs`
    (or ``blobs``).
    """

    def __init__(self, blobs=None):
        self.blobs = MemoryBlobs() if blobs is None else blobs
        self._tables = {name: {} for name in POLICIES}
        self._cursors = {}
        self._lock = threading.Lock()

    def __repr__(self):
        return "<MemoryStore>"

    def write(self, batch):
        for name, data in batch.blobs().items():
            self.blobs.put(name, data)
        with self._lock:
            tables = self._tables
            last = tables["last_value"]
            for reading in batch.last_value:
                held = last.get(reading.topic)
                if held is None or reading.time >= held["time"]:
                    last[reading.topic] = _reading_row(reading, True)
            for reading in batch.n_records:
                tables["n_records"][reading.topic, reading.time] = _reading_row(reading, False)
            for reading in batch.time_window:
                tables["time_window"][reading.topic, reading.time] = _reading_row(reading, True)
            for aggregate in batch.aggregation:
                tables["aggregation"][aggregate.topic, aggregate.start] = _aggregate_row(aggregate)
            for video in batch.video:
                tables["video"][video.topic, video.start] = {
                    "topic": video.topic, "window_start": video.start,
                    "window_end": video.end, "frames": video.frames,
                    "codec": video.codec, "blob": blob_name(video.data)}
            for frame in batch.video_frames:
                tables["video_frames"][frame.topic, frame.time] = {
                    "topic": frame.topic, "time": frame.time,
                    "window_start": frame.window_start, "blob": blob_name(frame.data)}
            for bad in batch.bad_payloads:
                tables["bad_payloads"][bad.topic, bad.time, bad.reason] = {
                    "topic": bad.topic, "time": bad.time, "reason": bad.reason,
                    "detail": bad.detail}
            self._cursors.update(batch.cursors)

    def _rows(self, topic, policy):
        if policy not in COLUMNS:
            raise ValueError(f"no table {policy!r}; tables: {', '.join(POLICIES)}")
        return [row for row in self._tables[policy].values() if row["topic"] == topic]

    def query(self, topic, policy, start=None, end=None, limit=None):
        key = "window_start" if policy in ("aggregation", "video") else "time"
        with self._lock:
            rows = [dict(row) for row in self._rows(topic, policy)
                    if (start is None or row[key] >= start) and
                    (end is None or row[key] < end)]
        rows.sort(key=lambda row: row[key])
        if limit is not None:
            rows = rows[-limit:] if limit else []
        return rows

    def topics(self, policy=None):
        with self._lock:
            names = POLICIES if policy is None else (policy,)
            return sorted({row["topic"] for name in names
                           for row in self._tables[name].values()})

    def bad_counts(self, topic=None):
        with self._lock:
            return dict(Counter(
                (row["topic"], row["reason"]) for row in self._tables["bad_payloads"].values()
                if topic is None or row["topic"] == topic))

    def cursor(self, key):
        with self._lock:
            return self._cursors.get(key)

    def cursors(self, prefix):
        with self._lock:
            return {k: v for k, v in self._cursors.items() if k.startswith(prefix)}

    def blob(self, name):
        return self.blobs.get(name)

    def cleanup(self, now, keep=None, grace=600.0):
        removed = Counter()
        with self._lock:
            window = self._tables["time_window"]
            for key in [k for k, row in window.items()
                        if row["expires"] is not None and row["expires"] < now]:
                del window[key]
                removed["time_window"] += 1
            for row in self._tables["last_value"].values():
                if row["blob"] is not None and row["expires"] is not None and row["expires"] < now:
                    row["blob"] = None
                    removed["last_value"] += 1
            records = self._tables["n_records"]
            for topic, count in (keep or {}).items():
                times = sorted(t for (name, t) in records if name == topic)
                for t in times[:max(0, len(times) - count)]:
                    del records[topic, t]
                    removed["n_records"] += 1
            frames = self._tables["video_frames"]
            made = set(self._tables["video"])
            for key in [k for k, row in frames.items()
                        if (row["topic"], row["window_start"]) in made]:
                del frames[key]
                removed["video_frames"] += 1
            referenced = {row["blob"] for name in ("last_value", "n_records", "time_window",
                                                   "video", "video_frames")
                          for row in self._tables[name].values() if row["blob"]}
        removed["blobs"] = self.blobs.remove(self.blobs.names() - referenced,
                                             older_than=_time.time() - grace)
        return dict(removed)

    def close(self):
        pass
