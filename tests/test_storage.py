"""
The stores: the same assertions over memory, SQLite (WAL) and a real
PostgreSQL server started for the module.
"""

import itertools
import os
import time

import pytest

from pyrf_blocks.errors import StoreUnavailable
from pyrf_blocks.interfaces import IBlobStore, IStore
from pyrf_blocks.storage import (COLUMNS, Aggregate, BadPayload, Batch, Frame, MemoryStore,
                                 Reading, SQLiteStore, ThreadedStore, Video, open_store)
from pyrf_blocks.storage.blobs import DirectoryBlobs, MemoryBlobs
from pyrf_blocks.storage.rows import blob_name

S = 10 ** 9
_databases = itertools.count()


@pytest.fixture(scope="module")
def postgres():
    """
    One PostgreSQL server for the module's tests.
    """
    from pyrf_blocks.testing.servers import postgres_server

    with postgres_server() as server:
        yield server


def _fresh_database(server):
    import psycopg

    name = f"t{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path):
    """
    An empty store of each backend.
    """
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "store.db")
    else:
        from pyrf_blocks.storage import PostgresStore
        made = PostgresStore(_fresh_database(request.getfixturevalue("postgres")))
    yield made
    made.close()


def _numbers(topic, times, offset=0.0):
    return [Reading(topic, t, "number", float(t) / S + offset) for t in times]


def test_provides_interface(store):
    """Every backend provides IStore, and its blobs IBlobStore."""
    from zope.interface.verify import verifyObject

    verifyObject(IStore, store)
    verifyObject(IBlobStore, store.blobs)


def test_records_round_trip_by_time_range(store):
    """Rows come back for one topic, in [start, end), oldest first, in the table's columns."""
    batch = Batch(n_records=_numbers("a", [3 * S, 1 * S, 2 * S]) +
                  _numbers("b", [1 * S]) +
                  [Reading("a", 4 * S, "text", "hello")])
    store.write(batch)
    rows = store.query("a", "n_records", start=2 * S, end=4 * S + 1)
    assert [r["time"] for r in rows] == [2 * S, 3 * S, 4 * S]
    assert rows[0]["number"] == 2.0 and rows[0]["kind"] == "number"
    assert rows[2]["text"] == "hello" and rows[2]["number"] is None
    assert tuple(rows[0]) == COLUMNS["n_records"]
    assert [r["time"] for r in store.query("a", "n_records", limit=2)] == [3 * S, 4 * S]
    assert store.topics() == ["a", "b"]


def test_writing_twice_leaves_the_same_rows(store):
    """A batch written again (a replay after a crash) duplicates nothing; a changed value replaces."""
    batch = Batch(n_records=_numbers("a", [1 * S, 2 * S]),
                  time_window=_numbers("a", [1 * S]),
                  aggregation=[Aggregate("a", 0, 60 * S, 2, 1.0, 2.0, 3.0, 2 * S)],
                  bad_payloads=[BadPayload("a", 5, "type", "not a number")])
    store.write(batch)
    store.write(batch)
    store.write(Batch(n_records=_numbers("a", [2 * S], offset=10.0)))
    assert [r["number"] for r in store.query("a", "n_records")] == [1.0, 12.0]
    assert len(store.query("a", "time_window")) == 1
    [aggregate] = store.query("a", "aggregation")
    assert aggregate["avg"] == 1.5 and aggregate["count"] == 2
    assert store.bad_counts() == {("a", "type"): 1}


def test_last_value_keeps_the_most_recent(store):
    """last_value holds one row per topic, replaced only by a reading at least as recent."""
    store.write(Batch(last_value=_numbers("a", [5 * S])))
    store.write(Batch(last_value=_numbers("a", [3 * S])))
    assert [r["time"] for r in store.query("a", "last_value")] == [5 * S]
    store.write(Batch(last_value=[Reading("a", 7 * S, "text", "on")]))
    [row] = store.query("a", "last_value")
    assert (row["time"], row["text"]) == (7 * S, "on")


def test_blobs_beside_rows_and_cleanup(store):
    """Images are kept by content; cleanup drops expired rows, excess records and unreferenced blobs."""
    image, other = b"\x89PNG one", b"\x89PNG two"
    store.write(Batch(
        n_records=[Reading("cam", t * S, "image", image if t % 2 else other) for t in range(1, 6)],
        time_window=[Reading("w", 1 * S, "number", 1.0, expires=10 * S),
                     Reading("w", 2 * S, "file", b"zip", expires=100 * S)],
        last_value=[Reading("cam", 5 * S, "image", image, expires=50 * S)]))
    [row] = store.query("cam", "last_value")
    assert store.blob(row["blob"]) == image and row["blob"] == blob_name(image)
    removed = store.cleanup(now=20 * S, keep={"cam": 2}, grace=-1.0)
    assert removed["time_window"] == 1 and removed["n_records"] == 3
    assert [r["time"] for r in store.query("cam", "n_records")] == [4 * S, 5 * S]
    assert store.blobs.names() == {blob_name(image), blob_name(other), blob_name(b"zip")}
    removed = store.cleanup(now=200 * S, keep={"cam": 1}, grace=-1.0)
    # last_value's file expired, the window's row expired, one record left (image).
    assert store.query("cam", "last_value")[0]["blob"] is None
    assert store.blobs.names() == {blob_name(image)}
    assert removed["blobs"] == 2


def test_cleanup_spares_young_blobs(store):
    """A blob put moments ago is not removed (its row may still be being written elsewhere)."""
    store.blobs.put(blob_name(b"young"), b"young")
    assert store.cleanup(now=0)["blobs"] == 0
    assert blob_name(b"young") in store.blobs.names()


def test_video_frames_and_cleanup(store):
    """Frames wait in video_frames until their window has its video; cleanup then removes them."""
    store.write(Batch(video_frames=[Frame("cam", 1 * S, 0, b"f1"), Frame("cam", 2 * S, 0, b"f2"),
                                    Frame("cam", 61 * S, 60 * S, b"f3")]))
    assert [r["window_start"] for r in store.query("cam", "video_frames")] == [0, 0, 60 * S]
    store.write(Batch(video=[Video("cam", 0, 60 * S, 2, "libx264", b"mp4")]))
    removed = store.cleanup(now=0, grace=-1.0)
    assert removed["video_frames"] == 2 and removed["blobs"] == 2
    assert [r["time"] for r in store.query("cam", "video_frames")] == [61 * S]


def test_video_and_cursor(store):
    """Videos keep their bytes as a blob; a cursor is written in the batch's transaction."""
    store.write(Batch(video=[Video("cam", 0, 60 * S, 12, "libx264", b"mp4")],
                      cursors={"mqtt:x:7": "cam 5"}))
    [row] = store.query("cam", "video")
    assert (row["frames"], store.blob(row["blob"])) == (12, b"mp4")
    assert store.cursor("mqtt:x:7") == "cam 5" and store.cursor("nope") is None
    store.write(Batch(cursors={"mqtt:X:1": "a", "mqtt:x%:1": "b", "other": "c"}))
    assert store.cursors("mqtt:x") == {"mqtt:x:7": "cam 5", "mqtt:x%:1": "b"}


def test_large_batches_upsert(store):
    """A batch large enough for PostgreSQL's COPY path upserts like a small one, duplicates included."""
    readings = _numbers("big", range(1000))
    store.write(Batch(n_records=readings + readings[:10],
                      last_value=_numbers("big", range(100))))
    store.write(Batch(n_records=readings))
    assert len(store.query("big", "n_records")) == 1000
    assert store.query("big", "last_value")[0]["time"] == 99


def test_unknown_table_names_the_tables(store):
    """Asking for a table that does not exist says which do."""
    with pytest.raises(ValueError, match="no table 'records'.*n_records"):
        store.query("a", "records")


def test_sqlite_is_in_wal_mode(tmp_path):
    """The SQLite store runs in WAL mode, so queries read while a pipeline writes."""
    store = SQLiteStore(tmp_path / "s.db")
    with store.transaction() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    store.close()


def test_open_store_urls(tmp_path):
    """open_store reads memory:, sqlite:PATH and a bare path."""
    assert isinstance(open_store("memory:"), MemoryStore)
    assert isinstance(open_store(f"sqlite:{tmp_path}/a.db"), SQLiteStore)
    assert isinstance(open_store(str(tmp_path / "b.db")), SQLiteStore)


def test_postgres_gone_and_back(postgres):
    """A stopped server fails a write with StoreUnavailable; once it is back, the next write works."""
    from pyrf_blocks.storage import PostgresStore

    store = PostgresStore(_fresh_database(postgres), connect_timeout=2)
    store.write(Batch(n_records=_numbers("a", [1])))
    postgres.stop()
    try:
        with pytest.raises(StoreUnavailable, match="PostgreSQL store"):
            store.write(Batch(n_records=_numbers("a", [2])))
    finally:
        postgres.start()
    store.write(Batch(n_records=_numbers("a", [2])))
    assert len(store.query("a", "n_records")) == 2
    store.close()


def test_blob_directories(tmp_path):
    """Directory blobs are durable files by name; both blob stores remove only old ones when asked."""
    for blobs in (DirectoryBlobs(tmp_path / "b"), MemoryBlobs()):
        name = blob_name(b"data")
        blobs.put(name, b"data")
        blobs.put(name, b"data")
        assert blobs.get(name) == b"data" and blobs.names() == {name}
        assert blobs.remove({name}, older_than=time.time() - 60) == 0
        assert blobs.remove({name}) == 1
        with pytest.raises(KeyError):
            blobs.get(name)


def test_threaded_store_runs_off_the_reactor_thread(tmp_path):
    """ThreadedStore answers with Deferreds and runs the store's calls on another thread."""
    import threading

    from pyrf_blocks.testing import new_reactor, run_until

    seen = []

    class Spy(MemoryStore):
        def write(self, batch):
            seen.append(threading.current_thread())
            super().write(batch)

    reactor = new_reactor()
    threaded = ThreadedStore(Spy(), reactor)
    done = threaded.write(Batch(n_records=_numbers("a", [1])))
    done.addCallback(lambda _: threaded.query("a", "n_records"))
    done.addCallback(lambda rows: threaded.close().addCallback(lambda _: rows))
    rows = run_until(reactor, done, timeout=10)
    assert len(rows) == 1 and seen[0] is not threading.main_thread()
