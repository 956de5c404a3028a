"""
Getting enriched data out of a store: the Python API, pyrf-blocks query and
pyrf-blocks export (CSV, Parquet).
"""

import csv

import pytest

from pyrf_blocks.cli import main
from pyrf_blocks.storage import Aggregate, BadPayload, Batch, Reading, SQLiteStore
from pyrf_blocks.storage.export import enriched_data, export, parse_time

S = 10 ** 9
T0 = parse_time("2024-01-01T00:00:00Z")


@pytest.fixture
def store_path(tmp_path):
    """
    A SQLite store with numbers, an image, aggregates and a bad payload.
    """
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    store.write(Batch(
        n_records=[Reading("plant/1", T0 + t * S, "number", float(t)) for t in range(10)] +
        [Reading("cam", T0, "image", b"\x89PNG")],
        aggregation=[Aggregate("plant/1", T0, T0 + 60 * S, 10, 0.0, 9.0, 45.0, T0 + 9 * S)],
        bad_payloads=[BadPayload("plant/1", T0 + 3, "type", "not a number: b'x'")]))
    store.close()
    return path


def test_parse_time():
    """ISO date-times (UTC unless zoned), dates and ns integers."""
    assert parse_time("1970-01-01T00:00:01Z") == S
    assert parse_time("1970-01-01T01:00:01+01:00") == S
    assert parse_time("1970-01-02") == 86400 * S
    assert parse_time("42") == 42
    with pytest.raises(ValueError, match="not a date-time"):
        parse_time("yesterday")


def test_enriched_data_gives_values(store_path):
    """The Python API gives each row its value: the number, or the image's bytes."""
    store = SQLiteStore(store_path)
    rows = enriched_data(store, "plant/1", "n_records", start=T0 + 2 * S, end=T0 + 4 * S)
    assert [r["value"] for r in rows] == [2.0, 3.0]
    [image] = enriched_data(store, "cam", blobs=True)
    assert image["value"] == b"\x89PNG"
    [window] = enriched_data(store, "plant/1", "aggregation")
    assert window["avg"] == 4.5
    store.close()


def test_query_command(store_path, capsys):
    """pyrf-blocks query prints a topic's rows in a range, the topics, and the bad payloads."""
    assert main(["query", str(store_path), "plant/1", "--start", "2024-01-01T00:00:08Z"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t")[:3] == ["topic", "time", "kind"] and len(lines) == 3
    assert main(["query", str(store_path)]) == 0
    assert capsys.readouterr().out.split() == ["cam", "plant/1"]
    assert main(["query", str(store_path), "--bad"]) == 0
    assert capsys.readouterr().out == "plant/1\ttype\t1\n"


def test_query_command_errors_are_one_line(tmp_path, store_path, capsys):
    """A missing store, an unknown table or a bad time: one line and a non-zero status."""
    assert main(["query", str(tmp_path / "none.db"), "a"]) == 1
    assert main(["query", str(store_path), "a", "--policy", "records"]) == 2
    assert main(["query", str(store_path), "a", "--start", "soon"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "no such store" in err[0] and "one of" in err[1]


def test_export_csv_and_parquet(store_path, tmp_path, capsys):
    """Chosen topics and range go to CSV and Parquet with the table's columns."""
    import pyarrow.parquet as pq

    out = tmp_path / "out.csv"
    assert main(["export", str(store_path), "--topic", "plant/1", "--end",
                 "2024-01-01T00:00:05Z", "-o", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["number"]) for r in rows] == [0, 1, 2, 3, 4]
    assert "5 rows of 1 topic" in capsys.readouterr().err
    parquet = tmp_path / "out.parquet"
    assert main(["export", str(store_path), "--policy", "aggregation", "--format", "parquet",
                 "-o", str(parquet)]) == 0
    table = pq.read_table(parquet)
    assert table.column("avg").to_pylist() == [4.5] and table.num_rows == 1
    store = SQLiteStore(store_path)
    assert export(store, ["plant/1", "cam"], "n_records", tmp_path / "a.csv",
                  progress=False) == 11
    store.close()
