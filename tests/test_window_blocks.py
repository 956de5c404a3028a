"""
window_block and moving_max/moving_min: interfaces, analytic statistics,
output independent of chunking (late rows and windows straddling chunks
included), lateness and the late output, empty windows, calendar days,
the idle timeout, state snapshots, pipeline parameters with units.
"""

import datetime
import textwrap
from zoneinfo import ZoneInfo

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import Graph, collector, moving_max, moving_min, window_block
from pyrf_blocks.chunk import Chunk
from pyrf_blocks.interfaces import (IBlock, IRealProducer, IRecordsProducer, IStateful)
from pyrf_blocks.pipeline import build, check_text, graph_to_yaml
from pyrf_blocks.testing import (array_source, assert_provides, manual_source, run_clock,
                                 split_array)

S = 10 ** 9


def run_records(chunks, make, outputs=("main",)):
    """Play records chunks through ``make(source)``; return the chunks of each output."""
    graph = Graph(Clock())
    source = array_source(chunks, kind="records", graph=graph)
    block = make(source)
    sinks = [collector(block.output(name)) for name in outputs]
    assert run_clock(graph.reactor, graph) is None
    return block, [sink.chunks for sink in sinks]


def records_in(times, values, cuts, end=None):
    """Records chunks cut at ``cuts`` (row indexes); the last ends at ``end``."""
    times = np.asarray(times, np.int64)
    chunks, first = [], 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(times))) + [len(times)]:
        stop = cut
        # Rows of one time stay in one chunk (a range is half-open).
        while 0 < stop < len(times) and times[stop] == times[stop - 1]:
            stop += 1
        if stop <= first:
            continue
        chunk_end = int(times[stop]) if stop < len(times) else (end or int(times[-1]) + 1)
        start = int(times[first]) if not chunks else chunks[-1].end
        chunks.append(Chunk.records(times[first:stop], values[first:stop], start, chunk_end))
        first = stop
    return chunks


def joined(chunks):
    """(times, values) of every row of a stream of records."""
    if not chunks:
        return np.zeros(0, np.int64), None
    return (np.concatenate([c.times for c in chunks]),
            np.concatenate([c.data for c in chunks]))


def test_blocks_verify_against_their_interfaces():
    """verifyObject passes for the window blocks, their outputs and IStateful."""
    graph = Graph(Clock())
    real = array_source([np.zeros(8)], kind="real", graph=graph)
    records = array_source([Chunk.records([1], [1.0])], kind="records", graph=graph)
    window = window_block(real, records, every="1s")
    for iface in (IBlock, IRecordsProducer, IStateful):
        assert_provides(iface, window)
    assert_provides(IRecordsProducer, window.output("late"))
    assert_provides(IRecordsProducer, window.output("updates"))
    highest = moving_max(real, over="4s")
    assert_provides(IRealProducer, highest)
    assert_provides(IStateful, highest)
    assert_provides(IRecordsProducer, moving_min(records))


def test_sine_statistics_per_window_are_analytic():
    """A sine of amplitude A over whole periods: RMS A/sqrt(2), mean 0, max A, min -A."""
    amplitude, rate = 2.5, 1000.0
    n = np.arange(10_000)
    signal = amplitude * np.sin(2 * np.pi * 50 * n / rate)
    graph = Graph(Clock())
    source = array_source(split_array(signal, [333, 1000, 17] * 20), kind="real",
                          rate=rate, graph=graph)
    sink = collector(window_block(source, every="1s", stats=("mean", "rms", "min", "max",
                                                             "count", "sum")))
    assert run_clock(graph.reactor, graph) is None
    times, rows = joined(sink.chunks)
    assert_array_equal(times, np.arange(10) * S)
    assert_array_equal(rows["end"], (np.arange(10) + 1) * S)
    assert_array_equal(rows["count"], 1000)
    assert rows["final"].all() and not rows["update"].any()
    assert_allclose(rows["rms"], amplitude / np.sqrt(2), rtol=1e-12)
    assert_allclose(rows["mean"], 0, atol=1e-12)
    assert_allclose(rows["max"], amplitude, rtol=1e-9)
    assert_allclose(rows["min"], -amplitude, rtol=1e-9)


def test_structured_records_give_statistics_per_field():
    """Records with fields voltage and current give mean_voltage and mean_current."""
    values = np.zeros(4, [("voltage", "<f8"), ("current", "<f4")])
    values["voltage"] = [230, 232, 228, 240]
    values["current"] = [1, 3, 5, 7]
    chunk = Chunk.records([0, S, 2 * S, 11 * S], values, end=20 * S)
    _, (main,) = run_records([chunk], lambda s: window_block(s, every="10s"))
    times, rows = joined(main)
    assert_array_equal(times, [0, 10 * S])
    assert_allclose(rows["mean_voltage"], [230, 240])
    assert_allclose(rows["mean_current"], [3, 7])


times_strategy = st.lists(st.integers(0, 120 * S), min_size=1, max_size=300).map(sorted)


@settings(max_examples=40, deadline=None)
@given(times_strategy, st.lists(st.integers(1, 299), max_size=8),
       st.sampled_from([("10s", None), ("5s", "15s")]))
def test_output_does_not_depend_on_chunking(times, cuts, every_size):
    """Windows straddling chunks give the same records, bit for bit, however rows are cut."""
    every, size = every_size
    values = np.cos(np.asarray(times) / 7e9) * 100
    make = lambda s: window_block(s, every=every, size=size, stats=("mean", "rms", "min",
                                                                   "max", "count"))
    _, (whole,) = run_records(records_in(times, values, [], end=130 * S), make)
    _, (cut,) = run_records(records_in(times, values, cuts, end=130 * S), make)
    assert_array_equal(joined(cut)[0], joined(whole)[0])
    assert joined(cut)[1].tobytes() == joined(whole)[1].tobytes()


def batches_with_late_rows(data):
    """
    A stream of batches (sorted rows, watermark end): on-time batches, each
    followed by a batch of rows up to 30 s behind the watermark.
    """
    batches, watermark = [], 0
    for size, lag_rows in data:
        times = np.sort(np.asarray(size, np.int64)) + watermark
        end = int(times[-1]) + 1 if len(times) else watermark + S
        batches.append((times, max(end, watermark + 1)))
        watermark = batches[-1][1]
        late = np.sort(watermark - np.asarray(lag_rows, np.int64))
        if len(late):
            batches.append((late, watermark))
    return batches


def chunks_of(batches, cut):
    """Each batch cut into pieces of ``cut`` rows (a piece ends where the next begins)."""
    chunks, watermark = [], 0
    for times, end in batches:
        values = np.sin(times / 3e9)
        pieces = records_in(times, values, list(range(cut, len(times), cut)), end=end)
        for piece in pieces:
            if piece.end > watermark and piece is pieces[-1]:
                piece = piece.replace(end=end)
            chunks.append(piece)
        watermark = max(watermark, end)
    return chunks


late_batches = st.lists(st.tuples(
    st.lists(st.integers(0, 20 * S), min_size=1, max_size=30),
    st.lists(st.integers(1, 30 * S), max_size=5)), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None)
@given(late_batches, st.integers(1, 7))
def test_late_rows_are_judged_the_same_however_the_stream_is_chunked(data, cut):
    """With late rows among on-time ones, main and late outputs do not depend on the cutting."""
    batches = batches_with_late_rows(data)
    make = lambda s: window_block(s, every="5s", stats=("mean", "count", "max"),
                                  allowed_lateness="10s")
    outputs = ("main", "late")
    _, (main, late) = run_records(chunks_of(batches, 10 ** 6), make, outputs)
    _, (main_cut, late_cut) = run_records(chunks_of(batches, cut), make, outputs)
    assert_array_equal(joined(main_cut)[0], joined(main)[0])
    assert joined(main_cut)[1].tobytes() == joined(main)[1].tobytes()
    assert_array_equal(joined(late_cut)[0], joined(late)[0])
    total = sum(len(times) for times, _ in batches)
    counted = joined(main)[1]["count"].sum() if main else 0
    assert counted + len(joined(late)[0]) == total  # nothing lost


def test_late_rows_beyond_the_lateness_go_to_the_late_output():
    """With allowed_lateness 0, a row for a final window goes to 'late', counted, not folded."""
    chunks = [Chunk.records([1 * S, 12 * S], [1.0, 2.0], 0, 30 * S),
              Chunk.records([5 * S, 31 * S], [100.0, 3.0], 5 * S, 40 * S)]
    block, (main, late) = run_records(chunks, lambda s: window_block(
        s, every="10s", stats=("sum", "count")), outputs=("main", "late"))
    times, rows = joined(main)
    assert_array_equal(times, [0, 10 * S, 30 * S])
    assert_array_equal(rows["sum"], [1.0, 2.0, 3.0])
    late_times, late_values = joined(late)
    assert_array_equal(late_times, [5 * S]) and assert_array_equal(late_values, [100.0])
    assert block.late_rows == 1


def test_rows_within_lateness_refire_the_window_with_an_update_marker():
    """Within allowed_lateness a late row re-fires its window on 'updates'; main has it final."""
    chunks = [Chunk.records([1 * S, 12 * S], [1.0, 2.0], 0, 13 * S),
              Chunk.records([5 * S, 13 * S], [100.0, 3.0], 5 * S, 14 * S),
              Chunk.records([40 * S], [1.0], 40 * S, 41 * S)]
    block, (main, updates, late) = run_records(chunks, lambda s: window_block(
        s, every="10s", stats=("sum",), allowed_lateness="5s"),
        outputs=("main", "updates", "late"))
    _, early = joined(updates)
    assert [(r["end"] // S, r["sum"], r["final"], r["update"]) for r in early] == [
        (10, 1.0, False, False), (10, 101.0, False, True)]
    times, final = joined(main)
    assert_array_equal(times, [0, 10 * S, 40 * S])
    assert_array_equal(final["sum"], [101.0, 5.0, 1.0])
    assert final["final"].all() and list(final["update"]) == [True, False, False]
    assert joined(late)[0].size == 0 and block.late_rows == 0


def test_empty_windows_are_emitted_when_asked():
    """emit_empty gives count-0 windows over a gap so that a dashboard sees it."""
    chunk = Chunk.records([1 * S, 35 * S], [1.0, 2.0], 0, 40 * S)
    _, (main,) = run_records([chunk], lambda s: window_block(s, every="10s", emit_empty=True,
                                                             stats=("count", "mean")))
    times, rows = joined(main)
    assert_array_equal(times // S, [0, 10, 20, 30])
    assert_array_equal(rows["count"], [1, 0, 0, 1])
    assert np.isnan(rows["mean"][1])


def test_day_windows_in_berlin_on_a_dst_day_last_23_hours():
    """Hourly readings over 2026-03-28..30 give Berlin days of 24, 23 and 24 readings."""
    zone = ZoneInfo("Europe/Berlin")
    start = int(datetime.datetime(2026, 3, 28, tzinfo=zone).timestamp()) * S
    times = start + np.arange(0, 71) * 3600 * S
    chunks = records_in(times, np.ones(len(times)), [5, 30, 50])
    _, (main,) = run_records(chunks, lambda s: window_block(
        s, every="1d", zone="Europe/Berlin", stats=("count",)))
    stamps, rows = joined(main)
    assert [datetime.datetime.fromtimestamp(t // S, zone).isoformat() for t in stamps] == [
        "2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"]
    assert_array_equal(rows["count"], [24, 23, 24])
    assert_array_equal((rows["end"] - stamps) // (3600 * S), [24, 23, 24])


def test_a_silent_input_stops_holding_windows_after_the_idle_timeout():
    """Two inputs: the windows wait for the silent one until idle_timeout, then close."""
    graph = Graph(Clock())
    talking = manual_source(kind="real", rate=10.0, graph=graph)
    silent = manual_source(kind="real", rate=10.0, graph=graph)
    window = window_block(talking, silent, every="1s", stats=("count",), idle_timeout="5s")
    sink = collector(window)
    talking.push(25, np.float64)
    assert joined(sink.chunks)[0].size == 0
    graph.reactor.advance(6)
    times, rows = joined(sink.chunks)
    assert_array_equal(times, [0, S])
    assert_array_equal(rows["input"], [0, 0]) and assert_array_equal(rows["count"], [10, 10])


def test_no_idle_timeout_keeps_waiting_for_every_input():
    """Without idle_timeout (replays) a silent input holds the windows however long it takes."""
    graph = Graph(Clock())
    talking = manual_source(kind="real", rate=10.0, graph=graph)
    silent = manual_source(kind="real", rate=10.0, graph=graph)
    sink = collector(window_block(talking, silent, every="1s", stats=("count",)))
    talking.push(25, np.float64)
    graph.reactor.advance(3600)
    assert joined(sink.chunks)[0].size == 0
    silent.push(25, np.float64)
    times, rows = joined(sink.chunks)
    assert_array_equal(times, [0, 0, S, S]) and assert_array_equal(rows["input"], [0, 1, 0, 1])


def test_an_ended_input_stops_holding_windows_without_a_timeout():
    """Two inputs, no idle_timeout: once one ends, the other's windows close on its watermark."""
    graph = Graph(Clock())
    talking = manual_source(kind="real", rate=10.0, graph=graph)
    ending = manual_source(kind="real", rate=10.0, graph=graph)
    sink = collector(window_block(talking, ending, every="1s", stats=("count",)))
    ending.push(5, np.float64)
    talking.push(25, np.float64)
    assert joined(sink.chunks)[0].size == 0
    ending.end()
    times, rows = joined(sink.chunks)
    assert_array_equal(times, [0, 0, S]) and assert_array_equal(rows["input"], [0, 1, 0])
    assert_array_equal(rows["count"], [10, 5, 10])


def test_count_windows_on_samples():
    """rows=4 windows of a sampled stream: one record per 4 samples, end after the 4th."""
    graph = Graph(Clock())
    source = array_source([np.arange(6.0), np.arange(6.0, 10.0)], kind="real", rate=10.0,
                          graph=graph)
    sink = collector(window_block(source, rows=4, stats=("sum", "count")))
    assert run_clock(graph.reactor, graph) is None
    times, rows = joined(sink.chunks)
    assert_array_equal(times, [0, 4 * S // 10, 8 * S // 10])
    assert_array_equal(rows["end"], [4 * S // 10, 8 * S // 10, S])
    assert_array_equal(rows["sum"], [6.0, 22.0, 17.0])


def test_custom_reducer_is_applied_per_window():
    """A reducer given in Python (peak-to-peak here) is computed on each window's rows."""
    graph = Graph(Clock())
    source = array_source([np.array([1.0, 5.0, 2.0, -1.0])], kind="real", rate=1.0,
                          graph=graph)
    sink = collector(window_block(source, every="2s", stats=("max",),
                                  reducers={"ptp": lambda x: np.ptp(x)}))
    assert run_clock(graph.reactor, graph) is None
    _, rows = joined(sink.chunks)
    assert_array_equal(rows["ptp"], [4.0, 3.0]) and assert_array_equal(rows["max"], [5.0, 2.0])


def test_state_snapshot_resumes_with_identical_output():
    """A block restored from its msgpack'd state mid-stream emits what the original would."""
    rng = np.random.default_rng(5)
    times = np.sort(rng.integers(0, 100 * S, 2000))
    values = rng.standard_normal(len(times))
    chunks = records_in(times, values, [400, 900, 1500], end=101 * S)

    def make(graph, source):
        return window_block(source, every="7s", stats=("mean", "rms", "max"),
                            allowed_lateness="3s")

    graph = Graph(Clock())
    source = manual_source(kind="records", graph=graph)
    block = make(graph, source)
    sink = collector(block)
    for chunk in chunks[:2]:
        source.emit_records(chunk.times, chunk.data, chunk.start, chunk.end)
    state = msgpack.unpackb(msgpack.packb(block.get_state()), strict_map_key=False)
    before = len(sink.chunks)
    graph2 = Graph(Clock())
    source2 = manual_source(kind="records", graph=graph2)
    block2 = make(graph2, source2)
    sink2 = collector(block2)
    block2.set_state(state)
    for chunk in chunks[2:]:
        for src in (source, source2):
            src.emit_records(chunk.times, chunk.data, chunk.start, chunk.end)
    source.finish()
    source2.finish()
    assert len(sink2.chunks) > 1
    assert_array_equal(joined(sink.chunks[before:])[0], joined(sink2.chunks)[0])
    assert joined(sink.chunks[before:])[1].tobytes() == joined(sink2.chunks)[1].tobytes()


def test_bad_parameters_are_refused_by_name():
    """Unknown statistics, a size that is no multiple and IQ input raise naming the value."""
    graph = Graph(Clock())
    real = array_source([np.zeros(4)], kind="real", graph=graph)
    with pytest.raises(ValueError, match="unknown statistic.*'median'"):
        window_block(real, stats=("median",))
    with pytest.raises(ValueError, match="must be a positive multiple of every"):
        window_block(real, every="10s", size="15s")
    with pytest.raises(ValueError, match="IQ"):
        window_block(array_source([np.zeros(4, np.complex64)], graph=graph))
    with pytest.raises(ValueError, match="does not divide a day"):
        window_block(real, every="7m", zone="Europe/Berlin")
    with pytest.raises(ValueError, match="moving_max: input is 'iq'"):
        moving_max(array_source([np.zeros(4, np.complex64)], graph=graph))
    with pytest.raises(ValueError, match="over must be positive"):
        moving_max(real, over=0)


def test_pipeline_file_takes_units_and_zones():
    """every: 1h, zone: Europe/Berlin and allowed_lateness: 30s validate and build."""
    text = textwrap.dedent("""\
        version: 1
        blocks:
          wsa: {type: simulated_instrument, params: {count: 1, paced: false}}
          power: {type: thd_block, inputs: [wsa], params: {size: 1024}}
          hourly:
            type: window_block
            inputs: [power]
            params: {every: 1h, zone: Europe/Berlin, allowed_lateness: 30s,
                     stats: [mean, max], emit_empty: true}
          peak: {type: moving_max, inputs: [power], params: {over: 4s}}
          out: {type: collector, inputs: ["hourly:late"]}
        """)
    pipeline = check_text(text)
    graph = build(pipeline, Graph(Clock()))
    hourly = graph.blocks["hourly"]
    assert (hourly.every_ns, hourly.lateness_ns, hourly.grid.zone_name) == (
        3600 * S, 30 * S, "Europe/Berlin")
    assert graph.blocks["peak"].over_ns == 4 * S
    exported = graph_to_yaml(graph)
    assert "every: 1h" in exported and "allowed_lateness: 30s" in exported
    again = build(check_text(exported), Graph(Clock()))
    assert again.blocks["hourly"].every_ns == 3600 * S
    assert again.blocks["hourly"].stats == ("mean", "max")


# Moving extremes.

def brute_moving(times, values, over, function):
    return np.array([function(values[(times > t - over) & (np.arange(len(times)) <= i)])
                     for i, t in enumerate(times)])


def test_moving_max_of_a_ramp_is_analytic():
    """Rising: the max over 4 s is the newest value; falling: the value 4 s ago (exclusive)."""
    graph = Graph(Clock())
    ramp = np.concatenate([np.arange(100.0), np.arange(100.0)[::-1]])
    source = array_source(split_array(ramp, [7, 50, 3]), kind="real", rate=10.0, graph=graph)
    sink = collector(moving_max(source, over="4s"))
    assert run_clock(graph.reactor, graph) is None
    result = sink.data()
    assert_array_equal(result[:100], np.arange(100.0))
    falling = ramp[100:]
    expected = np.array([ramp[max(0, 100 + i - 39):101 + i].max() for i in range(100)])
    assert_array_equal(result[100:], expected)
    assert expected[50] == falling[50 - 39]


@settings(max_examples=40, deadline=None)
@given(times_strategy, st.lists(st.integers(1, 299), max_size=8),
       st.sampled_from([np.max, np.min]))
def test_moving_extremes_match_brute_force_however_chunked(times, cuts, function):
    """moving_max/min over 4 s of irregular records equals a brute-force scan, any chunking."""
    rng = np.random.default_rng(len(times))
    values = rng.integers(-50, 50, len(times)).astype(np.float64)
    block = moving_max if function is np.max else moving_min
    _, (out,) = run_records(records_in(times, values, cuts), lambda s: block(s, over="4s"))
    got_times, got = joined(out)
    assert_array_equal(got_times, times)
    assert_array_equal(got, brute_moving(np.asarray(times), values, 4 * S, function))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 900), min_size=1, max_size=10),
       st.sampled_from([("250ms", None), ("100ms", "300ms")]))
def test_sampled_input_gives_the_same_bits_however_chunked(sizes, every_size):
    """Windows over a sampled stream (times from its Timebase) do not depend on the cutting."""
    every, size = every_size
    signal = np.sin(np.arange(3000) * 0.37) * 5

    def windows(pieces):
        graph = Graph(Clock())
        source = array_source(pieces, kind="real", rate=3e3, start_time=123, graph=graph)
        sink = collector(window_block(source, every=every, size=size,
                                      stats=("mean", "rms", "min", "max", "count")))
        assert run_clock(graph.reactor, graph) is None
        return joined(sink.chunks)

    whole, cut = windows([signal]), windows(split_array(signal, sizes))
    assert_array_equal(cut[0], whole[0])
    assert cut[1].tobytes() == whole[1].tobytes()


def test_samples_going_back_in_time_are_late():
    """A sampled chunk that starts before the watermark: its samples for final windows are late."""
    graph = Graph(Clock())
    first = Chunk("real", np.ones(20), 0, 2 * S, 10.0)
    again = Chunk("real", np.full(10, 5.0), S // 2, S // 2 + S, 10.0)
    source = array_source([first, again], kind="real", graph=graph)
    window = window_block(source, every="1s", stats=("sum", "count"))
    main, late = collector(window), collector(window.output("late"))
    assert run_clock(graph.reactor, graph) is None
    times, rows = joined(main.chunks)
    assert_array_equal(times, [0, S]) and assert_array_equal(rows["sum"], [10.0, 10.0])
    late_times, late_values = joined(late.chunks)
    assert_array_equal(late_times, S // 2 + np.arange(10) * S // 10)
    assert_array_equal(late_values, 5.0) and window.late_rows == 10


def test_moving_max_state_resumes_exactly():
    """moving_max restored from its msgpack'd state continues as the original would."""
    rng = np.random.default_rng(2)
    times = np.sort(rng.integers(0, 60 * S, 3000))
    values = rng.standard_normal(len(times))
    chunks = records_in(times, values, [1000, 2000])
    graphs = [Graph(Clock()) for _ in range(2)]
    sources = [manual_source(kind="records", graph=g) for g in graphs]
    blocks = [moving_max(s, over="4s") for s in sources]
    sinks = [collector(b) for b in blocks]
    sources[0].emit_records(chunks[0].times, chunks[0].data, chunks[0].start, chunks[0].end)
    state = msgpack.unpackb(msgpack.packb(blocks[0].get_state()))
    blocks[1].set_state(state)
    for chunk in chunks[1:]:
        for source in sources:
            source.emit_records(chunk.times, chunk.data, chunk.start, chunk.end)
    assert_array_equal(joined(sinks[0].chunks[1:])[1], joined(sinks[1].chunks)[1])


def test_an_input_back_from_idle_sends_its_rows_for_final_windows_to_late():
    """After the idle timeout closed windows without it, an input's rows for them are late."""
    graph = Graph(Clock())
    talking = manual_source(kind="real", rate=10.0, graph=graph)
    silent = manual_source(kind="real", rate=10.0, graph=graph)
    window = window_block(talking, silent, every="1s", stats=("count",), idle_timeout="5s")
    main, late = collector(window), collector(window.output("late"))
    talking.push(25, np.float64)
    graph.reactor.advance(6)
    silent.push(25, np.float64)          # 0 .. 2.5 s: windows 0 and 1 are final
    times, rows = joined(main.chunks)
    assert_array_equal(times, [0, S]) and assert_array_equal(rows["input"], [0, 0])
    late_times, _ = joined(late.chunks)
    assert_array_equal(late_times, np.arange(20) * S // 10)
    assert late.chunks[0].meta["input"] == 1 and window.late_rows == 20
    talking.push(10, np.float64)
    assert len(joined(main.chunks)[0]) == 2   # the input is back: window 2 waits for it
    silent.push(10, np.float64)               # both past 3 s: window 2 has both
    times, rows = joined(main.chunks)
    assert_array_equal(times[2:], [2 * S, 2 * S])
    assert_array_equal(rows["input"][2:], [0, 1]) and assert_array_equal(rows["count"][2:], 10)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 9000), min_size=1, max_size=8), st.integers(1, 3),
       st.booleans())
def test_whole_panes_at_once_match_pane_by_pane_in_the_block(sizes, inputs, sampled):
    """window_block with whole panes computed at once gives the records of the pane-by-pane path, bit for bit, for sampled and records input, one or several inputs."""
    from pyrf_blocks import windows

    rng = np.random.default_rng(sum(sizes))
    signal = rng.standard_normal(12000)
    times = np.arange(12000, dtype=np.int64) * 1_000_000 + 5 * S

    def run():
        graph = Graph(Clock())
        sources = []
        for i in range(inputs):
            data = signal * (i + 1)
            if sampled:
                pieces = split_array(data, sizes)
                sources.append(array_source(pieces, kind="real", rate=1e3, start_time=5 * S,
                                            graph=graph))
            else:
                cuts = np.cumsum(sizes).tolist()
                sources.append(array_source(records_in(times, data, cuts), kind="records",
                                            graph=graph))
        sink = collector(window_block(*sources, every="1s",
                                      stats=("mean", "rms", "min", "max", "sum", "count")))
        assert run_clock(graph.reactor, graph) is None
        return joined(sink.chunks)

    fast = run()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows.WindowEngine, "bulk",
                      property(lambda self: False, lambda self, value: None), raising=False)
        slow = run()
    assert_array_equal(fast[0], slow[0])
    assert fast[1].tobytes() == slow[1].tobytes()


def test_one_input_fires_closed_windows_straight_from_the_rows():
    """With one records input and tumbling windows, chunks that close windows take the engine's direct path (its add never runs), and the results are each second's mean."""
    from pyrf_blocks import windows

    def refused(*args, **kwargs):
        raise AssertionError("the pane-by-pane path ran")

    times = np.arange(10_000, dtype=np.int64) * 1_000_000 + 5 * S
    values = np.arange(10_000, dtype=np.float64)
    chunks = records_in(times, values, range(2500, 10_000, 2500))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows.WindowEngine, "add", refused)
        _, (main,) = run_records(chunks, lambda source: window_block(
            source, every="1s", stats=("mean", "count")))
    times, rows = joined(main)
    assert_array_equal(times, (np.arange(10) + 5) * S)
    assert_array_equal(rows["count"], 1000)
    assert_array_equal(rows["mean"], np.arange(10) * 1000 + 499.5)
    assert rows["final"].all() and not rows["update"].any()
