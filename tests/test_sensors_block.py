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


def test_transform_block_formula_counts_non_finite_rows(clock, graph):
    """sensor_transform's formula computes each row; a row it makes inf is counted under transform."""
    from pyrf_blocks import sensor_transform
    from pyrf_blocks.testing import recording_sink

    source = array_source([_records([2.0, 0.0, 4.0])], kind="records", graph=graph)
    inverted = sensor_transform(source, formula="100 / value", decimal_point=1)
    sink = recording_sink(inverted)
    assert run_clock(clock, graph) is None
    assert [list(c.data) for c in sink.chunks] == [[50.0, 25.0]]
    assert inverted.bad == {"transform": 1}


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples"


def test_one_file_holds_a_graph_and_its_sensor_pipeline(tmp_path, monkeypatch, capsys):
    """examples/instrument_kpis.yaml validates and runs: cycle RMS kept through its own file's sensor pipeline."""
    from pyrf_blocks.cli import main
    from pyrf_blocks.storage import open_store

    example = str(EXAMPLES / "instrument_kpis.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", example]) == 0
    assert "valid, 3 blocks and sensor pipeline mains_rms" in capsys.readouterr().out
    assert main(["run", example]) == 0
    store = open_store("sqlite:kpis.db")
    try:
        [window] = store.query("lab/mains/rms", "aggregation")
        rows = store.query("lab/mains/rms", "n_records")
    finally:
        store.close()
    # 3 s of 50 Hz; the RMS of 325 V with a 3 % third harmonic, in % of 230 V.
    expected = 325 / np.sqrt(2) * np.sqrt(1 + 0.03 ** 2) / 230 * 100
    assert window["count"] == len(rows) == 150
    assert abs(window["avg"] - expected) < 0.05
    assert window["window_end"] - window["window_start"] == 60 * S


def test_sensor_sections_and_references_are_checked_with_the_blocks():
    """validate reports a sensor section's mistakes, an unknown pipeline name and block mistakes in one run."""
    from pyrf_blocks.errors import PipelineError
    from pyrf_blocks.pipeline import check_text

    text = textwrap.dedent("""\
        version: 1
        blocks:
          src: {type: waveform_source}
          rms: {type: cycle_rms, inputs: [src], params: {frequency: 5OHz}}
          keep:
            type: sensor_store
            inputs: [rms]
            params: {store: "memory:", topic: a, pipeline: mains_rsm}
          other:
            type: sensor_store
            inputs: [rms]
            params: {store: "memory:", topic: b, pipeline: mains_rms}
        pipelines:
          mains_rms:
            transformations:
              - {type: numeric, formula: "value / 0 +"}
            processing_policy:
              - {type: aggregation, zone: Europe/Berlinn}
        """)
    try:
        check_text(text, "kpis.yaml")
    except PipelineError as error:
        found = [(p.line, p.column, p.message) for p in error.problems]
    else:
        raise AssertionError("no problems found")
    where = {(line, column) for line, column, _ in found}
    assert where == {(4, 61), (8, 52), (16, 34), (18, 35)}
    text_of = "\n".join(m for _, _, m in found)
    assert "no sensor pipeline 'mains_rsm'; did you mean 'mains_rms'?" in text_of
    assert "5OHz" in text_of
    assert "unknown time zone 'Europe/Berlinn'" in text_of
    assert "formula 'value / 0 +', column 12: invalid syntax" in text_of


def test_a_single_pipeline_section_beside_blocks_is_named_after_the_file(tmp_path):
    """'pipeline:' beside 'blocks:' is a sensor pipeline named after the file; the file is a graph."""
    from pyrf_blocks.pipeline import load_pipeline
    from pyrf_blocks.pipeline.loader import read_document
    from pyrf_blocks.sensors.spec import is_sensor_pipeline

    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        blocks:
          src: {type: waveform_source}
          rms: {type: cycle_rms, inputs: [src]}
          keep: {type: sensor_store, inputs: [rms],
                 params: {store: "memory:", topic: t, pipeline: lab}}
        pipeline:
          processing_policy: [{type: last_value}]
        """))
    assert not is_sensor_pipeline(read_document(str(path)).data)
    pipeline = load_pipeline(str(path))
    assert pipeline.sensors == ("lab",)
    made = pipeline.sensor_pipeline("lab")
    assert made is not pipeline.sensor_pipeline("lab")
    assert [p.table for p in made.policies] == ["last_value"]


def test_serve_pipelines_says_it_leaves_a_graph_file_alone(tmp_path):
    """A block graph with sensor pipelines in a served directory is reported, not silently skipped."""
    from twisted.internet import defer

    from pyrf_blocks.sensors.serve import PipelineServer
    from pyrf_blocks.testing import new_reactor, run_until

    (tmp_path / "kpis.yaml").write_text((EXAMPLES / "instrument_kpis.yaml").read_text())
    lines = []
    reactor = new_reactor()
    server = PipelineServer(reactor, tmp_path, MemoryStore(), report=lines.append)

    @defer.inlineCallbacks
    def scenario():
        try:
            yield server.rescan()
        finally:
            yield server.store.close()

    run_until(reactor, scenario())
    assert lines == [f"{tmp_path / 'kpis.yaml'}: a block graph with sensor pipelines; not "
                     "served here (run it with pyrf-blocks run)"] and not server.pipelines
