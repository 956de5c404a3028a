"""
sensor_store: a block graph's records kept through a sensor pipeline's
stages, as instrument KPIs would be.
"""

import textwrap

import numpy as np

from pyrf_blocks import Chunk, sensor_store
from pyrf_blocks.interfaces import ISink
from pyrf_blocks.storage import MemoryStore
from pyrf_blocks.testing import array_source, assert_provides, run_clock

S = 10 ** 9


def _records(values, first=0):
    times = np.arange(first, first + len(values)) * S
    return Chunk.records(times, np.asarray(values, dtype=float), end=int(times[-1]) + S)


def test_records_go_through_the_pipeline_file_into_the_store(clock, graph, tmp_path):
    """Rows are filtered, scaled and aggregated per the file, and the sink finishes once durable."""
    path = tmp_path / "kpi.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        pipeline:
          filters: {type_input_value: number, type_value_threshold: min, min: 0}
          transformations:
            - {type: numeric, multiplication: {coefficient: 10}}
          processing_policy:
            - {type: n_records, count_records: 100}
            - {type: aggregation, window_size: 1m}
          save_buffering: {max_items: 4, accumulation_time: 1s}
        """))
    store = MemoryStore()
    source = array_source([_records([1.0, -5.0, 2.0]), _records([3.0, 4.0], first=3)],
                          kind="records", graph=graph)
    sink = sensor_store(source, store, "thd/unit1", pipeline=str(path), threaded=False)
    assert_provides(ISink, sink)
    assert run_clock(clock, graph) is None
    assert [r["number"] for r in store.query("thd/unit1", "n_records")] == [10, 20, 30, 40]
    [window] = store.query("thd/unit1", "aggregation")
    assert (window["count"], window["avg"]) == (4, 25.0)
    assert sink.pipeline.dropped == {"min": 1} and sink.finished


def test_filter_and_transform_blocks_then_store(clock, graph):
    """sensor_filter keeps and counts like the filters stage; sensor_transform scales; the sink stores."""
    from pyrf_blocks import sensor_filter, sensor_transform
    from pyrf_blocks.interfaces import IRecordsProducer

    store = MemoryStore()
    values = [1.0, float("nan"), 150.0, 2.0, 2.0, 3.0]
    source = array_source([_records(values)], kind="records", graph=graph)
    kept = sensor_filter(source, blacklist=[float("nan")], maximum=100.0, unique=True)
    scaled = sensor_transform(kept, coefficient=0.5, decimal_point=1)
    for block in (kept, scaled):
        assert_provides(IRecordsProducer, block)
    sensor_store(scaled, store, "lab/kpi", threaded=False)
    assert run_clock(clock, graph) is None
    assert [r["number"] for r in store.query("lab/kpi", "n_records")] == [0.5, 1.0, 1.5]
    assert kept.dropped == {"blacklist": 1, "max": 1, "unique": 1}


def test_filter_block_counts_bad_text_rows(clock, graph):
    """Text rows over max_size are counted as bad and left out; the others pass as text."""
    from pyrf_blocks import sensor_filter
    from pyrf_blocks.testing import recording_sink

    times = np.arange(3) * S
    chunk = Chunk.records(times, ["ok", "far too long", "fine"], end=3 * S)
    kept = sensor_filter(array_source([chunk], kind="records", graph=graph),
                         value_type="text", max_size=4)
    sink = recording_sink(kept)
    assert run_clock(clock, graph) is None
    assert [list(c.data) for c in sink.chunks] == [["ok", "fine"]]
    assert kept.bad == {"size": 1}
