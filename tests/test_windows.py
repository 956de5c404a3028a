"""
The window engine's pure logic: calendar boundaries in IANA zones (DST days
pinned), exact statistics whatever the chunking, watermarks, lateness and
late rows, state round trips.
"""

import datetime
from zoneinfo import ZoneInfo

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from pyrf_blocks.windows import (BLOCK_ROWS, Accumulator, CalendarGrid, CountWindows,
                                 WindowEngine, parse_duration)

S = 10 ** 9
H = 3600 * S
DAY = 24 * H


def at(zone, *fields):
    """Device time (ns) of a local wall-clock time in ``zone``."""
    return int(datetime.datetime(*fields, tzinfo=ZoneInfo(zone)).timestamp()) * S


def local(grid, times):
    return [grid.describe(t) for t in times]


def test_berlin_spring_forward_day_lasts_23_hours():
    """The 1d window of Europe/Berlin on 2026-03-29 runs from local midnight to midnight, 23 h."""
    grid = CalendarGrid(DAY, "Europe/Berlin")
    bounds = grid.boundaries(at("UTC", 2026, 3, 28), at("UTC", 2026, 3, 30, 12))
    assert local(grid, bounds) == ["2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"]
    assert (bounds[1] - bounds[0]) == 23 * H
    assert grid.floor(at("Europe/Berlin", 2026, 3, 29, 12)) == bounds[0]
    assert grid.shift(bounds[0], 1) == bounds[1]


def test_berlin_fall_back_day_lasts_25_hours():
    """The 1d window of Europe/Berlin on 2026-10-25 lasts 25 h; the days around it 24 h."""
    grid = CalendarGrid(DAY, "Europe/Berlin")
    bounds = grid.boundaries(at("UTC", 2026, 10, 23, 12), at("UTC", 2026, 10, 26, 12))
    assert local(grid, bounds) == ["2026-10-24T00:00:00+02:00", "2026-10-25T00:00:00+02:00",
                                   "2026-10-26T00:00:00+01:00"]
    assert_array_equal(np.diff(bounds), [24 * H, 25 * H])


def test_hour_windows_on_berlin_dst_days_each_last_an_hour():
    """1h windows start on the local hour; 02:00 has no window in spring and two in autumn."""
    grid = CalendarGrid(H, "Europe/Berlin")
    spring = grid.boundaries(at("Europe/Berlin", 2026, 3, 29, 0), at("Europe/Berlin", 2026, 3, 29, 4))
    assert [t[11:16] for t in local(grid, spring)] == ["00:00", "01:00", "03:00", "04:00"]
    autumn = grid.boundaries(at("UTC", 2026, 10, 24, 22), at("UTC", 2026, 10, 25, 2))
    assert local(grid, autumn) == ["2026-10-25T00:00:00+02:00", "2026-10-25T01:00:00+02:00",
                                   "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
                                   "2026-10-25T03:00:00+01:00"]
    assert set(np.diff(spring)) == set(np.diff(autumn)) == {H}


def test_utc_days_and_hours_are_aligned_to_midnight():
    """In UTC a day is 24 h from 00:00 and an hour starts on the hour, DST days included."""
    days = CalendarGrid(DAY, "UTC")
    bounds = days.boundaries(at("UTC", 2026, 3, 28, 5), at("UTC", 2026, 3, 31, 5))
    assert local(days, bounds)[0] == "2026-03-29T00:00:00+00:00"
    assert set(np.diff(bounds)) == {DAY}
    assert CalendarGrid(H, "UTC").floor(at("UTC", 2026, 10, 25, 2, 59)) == at("UTC", 2026, 10, 25, 2)


def test_hour_windows_in_kolkata_start_at_half_past_utc():
    """Asia/Kolkata (UTC+5:30): 1h windows start on the local hour, at hh:30 UTC."""
    grid = CalendarGrid(H, "Asia/Kolkata")
    bounds = grid.boundaries(at("UTC", 2026, 3, 29, 0), at("UTC", 2026, 3, 29, 3))
    assert [datetime.datetime.fromtimestamp(b // S, datetime.timezone.utc).minute
            for b in bounds] == [30, 30, 30]
    assert local(grid, bounds)[0] == "2026-03-29T06:00:00+05:30"


def test_a_zone_that_skips_midnight_starts_its_day_when_the_clock_resumes():
    """America/Santiago skips 00:00 on 2026-09-06: that day starts at 01:00 and lasts 23 h."""
    grid = CalendarGrid(DAY, "America/Santiago")
    day = grid.floor(at("UTC", 2026, 9, 6, 12))
    assert grid.describe(day) == "2026-09-06T01:00:00-03:00"
    assert grid.shift(day, 1) - day == 23 * H


def test_bad_periods_and_zones_are_refused_by_name():
    """A period that does not divide a day (outside UTC) and an unknown zone say what is wrong."""
    with pytest.raises(ValueError, match="does not divide a day"):
        CalendarGrid(7 * 60 * S, "Europe/Berlin")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        CalendarGrid(H, "Mars/Olympus")
    assert CalendarGrid(7 * 60 * S, "UTC").floor(8 * 60 * S) == 7 * 60 * S
    assert parse_duration("1h") == H and parse_duration(30) == 30 * S


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([("Europe/Berlin", 15 * 60 * S), ("Europe/Berlin", DAY),
                        ("Asia/Kolkata", H), ("Australia/Lord_Howe", 12 * H),
                        ("UTC", 4 * S)]),
       st.integers(at("UTC", 2026, 1, 1), at("UTC", 2027, 1, 1)))
def test_floor_and_shift_bracket_every_time(zone_period, t):
    """floor(t) <= t < the next boundary, and shifting back and forth returns the boundary."""
    zone, period = zone_period
    grid = CalendarGrid(period, zone)
    start = grid.floor(t)
    after = grid.shift(start, 1)
    assert start <= t < after
    assert grid.shift(after, -1) == start
    assert list(grid.boundaries(start, after)) == [start, after]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([("Europe/Berlin", H), ("Europe/Berlin", DAY), ("Asia/Kolkata", H),
                        ("America/Santiago", DAY), ("Australia/Lord_Howe", 30 * 60 * S)]),
       st.integers(at("UTC", 2026, 1, 1), at("UTC", 2027, 1, 1)), st.integers(0, 3 * DAY))
def test_fast_path_inside_a_steady_offset_agrees_with_the_general_one(zone_period, t, span):
    """Where the offset stays put boundaries are computed like UTC's: the same instants."""
    zone, period = zone_period
    grid = CalendarGrid(period, zone)
    general = grid._boundaries_across(t, t + span)
    assert_array_equal(grid.boundaries(t, t + span), general)
    assert grid.floor(t) == int(grid._boundaries_across(t - period - 3 * H, t)[-1])
    if len(general) > 1:
        assert grid.shift(int(general[0]), 1) == general[1]
        assert grid.shift(int(general[-1]), -1) == general[-2]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3 * BLOCK_ROWS), min_size=0, max_size=6), st.integers(0, 2))
def test_accumulator_sums_are_the_same_bits_however_rows_are_cut(cuts, columns_extra):
    """Sum and sum of squares do not depend on where the rows were cut, to the last bit."""
    rng = np.random.default_rng(len(cuts))
    values = rng.standard_normal((1 + columns_extra, 3 * BLOCK_ROWS + 17)) * 1e3
    whole = Accumulator(len(values), ("sum", "rms", "min", "max"))
    whole.add(values)
    pieces = Accumulator(len(values), ("sum", "rms", "min", "max"))
    for part in np.split(values, sorted(set(cuts)), axis=1):
        pieces.add(np.ascontiguousarray(part))
    assert_array_equal(pieces.totals()[0], whole.totals()[0])
    assert_array_equal(pieces.totals()[1], whole.totals()[1])
    assert_array_equal(pieces.min, values.min(axis=1))
    np.testing.assert_allclose(whole.totals()[0], values.sum(axis=1), rtol=1e-12)


def engine_rows(engine, times, values, watermark):
    """Add rows (1 column) then advance; return (late indexes, updates, finals)."""
    late = engine.add(np.asarray(times, np.int64), np.asarray([values], np.float64), [None])
    updates, finals = engine.advance(watermark)
    return list(late), updates, finals


def test_window_fires_final_once_the_watermark_passes_its_end():
    """Without lateness a window is final, never updated, when the watermark reaches its end."""
    engine = WindowEngine(CalendarGrid(10 * S), stats=("sum", "count"))
    engine.start(0)
    assert engine_rows(engine, [1 * S, 2 * S], [1.0, 2.0], 9 * S) == ([], [], [])
    late, updates, finals = engine_rows(engine, [12 * S], [5.0], 15 * S)
    assert late == [] and updates == []
    (start, end, count, final, update, stats), = finals
    assert (start, end, count, final, update) == (0, 10 * S, 2, True, False)
    assert stats["sum"][0] == 3.0


def test_rows_within_lateness_refire_and_beyond_it_are_late():
    """A late row within allowed_lateness re-fires its window (update); one beyond it is late."""
    engine = WindowEngine(CalendarGrid(10 * S), stats=("sum",), allowed_lateness=5 * S)
    engine.start(0)
    _, updates, finals = engine_rows(engine, [1 * S], [1.0], 11 * S)
    assert [(u[0], u[3], u[4], u[5]["sum"][0]) for u in updates] == [(0, False, False, 1.0)]
    assert finals == []
    late, updates, finals = engine_rows(engine, [3 * S, 12 * S], [2.0, 7.0], 12 * S)
    assert late == []
    assert [(u[0], u[3], u[4], u[5]["sum"][0]) for u in updates] == [(0, False, True, 3.0)]
    _, updates, finals = engine_rows(engine, [16 * S], [1.0], 16 * S)
    assert [(f[0], f[3], f[4], f[5]["sum"][0]) for f in finals] == [(0, True, True, 3.0)]
    late, _, _ = engine_rows(engine, [4 * S, 13 * S], [9.0, 1.0], 17 * S)
    assert late == [0] and engine.late_rows == 1


def test_empty_windows_fire_with_count_zero_when_asked():
    """emit_empty fires every window the watermark passed, those without rows as count 0."""
    engine = WindowEngine(CalendarGrid(10 * S), stats=("mean", "count"), emit_empty=True)
    engine.start(0)
    _, _, finals = engine_rows(engine, [1 * S, 35 * S], [1.0, 2.0], 40 * S)
    assert [(f[0] // S, f[2]) for f in finals] == [(0, 1), (10, 0), (20, 0), (30, 1)]
    assert np.isnan(finals[1][5]["mean"][0])


def test_sliding_windows_combine_consecutive_panes():
    """4 s windows every 1 s hold the rows of four consecutive 1 s panes."""
    engine = WindowEngine(CalendarGrid(S), panes=4, stats=("sum", "count"))
    engine.start(0)
    times = np.arange(0, 10 * S, S // 2)
    _, _, finals = engine_rows(engine, times, np.ones(len(times)), 10 * S)
    assert [(f[0] // S, f[1] // S, f[2]) for f in finals] == [
        (s, s + 4, 8) for s in range(0, 7)]


def test_engine_state_round_trips_through_msgpack():
    """An engine restored from msgpack'd state continues exactly like the original."""
    def fresh():
        engine = WindowEngine(CalendarGrid(10 * S), stats=("sum", "rms", "max"),
                              allowed_lateness=5 * S)
        engine.start(0)
        return engine

    rng = np.random.default_rng(3)
    first = np.sort(rng.integers(0, 25 * S, 5000))
    second = np.sort(rng.integers(20 * S, 60 * S, 5000))
    a = fresh()
    engine_rows(a, first, rng.standard_normal(len(first)), 25 * S)
    b = fresh()
    b.set_state(msgpack.unpackb(msgpack.packb(a.get_state()), strict_map_key=False))
    values = rng.standard_normal(len(second))
    assert repr(engine_rows(a, second, values, 60 * S)) == repr(engine_rows(b, second, values,
                                                                            60 * S))


def test_count_windows_fire_every_n_rows():
    """rows=3 windows fire at each third row; the short last one fires at the end."""
    windows = CountWindows(3, stats=("sum",))
    fired = windows.add(np.arange(7, dtype=np.int64) * S, np.arange(7.0)[None], [None])
    assert [(f[0] // S, f[1], f[2], f[5]["sum"][0]) for f in fired] == [
        (0, 2 * S + 1, 3, 3.0), (3, 5 * S + 1, 3, 12.0)]
    (last,) = windows.finish()
    assert (last[0] // S, last[2], last[5]["sum"][0]) == (6, 1, 6.0)


def test_the_dst_figure_of_the_docs_is_up_to_date():
    """docs/_static/dst_windows.svg is what docs/dst_windows.py draws from the grid today."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("dst_windows", root / "docs/dst_windows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    drawn = module.svg()
    assert "= 23 h" in drawn and "= 25 h" in drawn
    assert (root / "docs/_static/dst_windows.svg").read_text(encoding="utf-8") == drawn


def fired_bytes(results):
    """Window results as comparable bytes: every field and value, to the bit."""
    return [(start, end, count, final, update,
             {stat: np.asarray(v).tobytes() for stat, v in values.items()})
            for start, end, count, final, update, values in results]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(2000, 20000),
       st.sampled_from([1, 2, 3]), st.lists(st.integers(1, 20000), max_size=6),
       st.sampled_from([("mean",), ("sum", "rms"), ("min", "max", "count"),
                        ("count", "sum", "mean", "rms", "min", "max")]),
       st.sampled_from(["regular", "jitter", "gaps"]), st.integers(-1, 6),
       st.integers(-1, 6), st.sampled_from([1_000_000, 2_500_000, 4_000_000]),
       st.sampled_from([0, 3_000_000, 20_000_000, -1_500_000]), st.booleans())
def test_whole_panes_in_columns_give_the_bits_of_the_pane_by_pane_path(
        seed, n, columns, cuts, stats, spacing, back, snapshot, period, lag, empty):
    """Tumbling windows with a chunk's whole panes computed at once (in batches, or fired straight from the rows by add_advance's direct path) equal the pane-by-pane path bit for bit, results and saved state: any cutting, unequal panes, gaps, ties, several columns, a watermark lagging (panes held open) or ahead of the rows (the last pane closed too), a chunk back in time, state saved mid-stream, empty windows emitted or not."""
    rng = np.random.default_rng(seed)
    steps = {"regular": np.full(n, 1000),
             "jitter": rng.integers(0, 2000, n),
             "gaps": np.where(rng.random(n) < 0.002, 5_000_000, rng.integers(0, 3, n) * 500)}
    times = 7_000_000_000 + np.cumsum(steps[spacing]).astype(np.int64)
    values = rng.standard_normal((columns, n)) * 10.0 ** rng.integers(-3, 4)
    values[:, rng.random(n) < 0.01] = 0.0
    values[:, rng.random(n) < 0.01] = -0.0
    edges = [0] + sorted(set(c % n for c in cuts if c % n)) + [n]
    pieces = [(times[a:b], np.ascontiguousarray(values[:, a:b])) for a, b in zip(edges, edges[1:])]
    if 0 <= back < len(pieces) - 1:  # a chunk sent again later: late or into open panes
        pieces.append(pieces[back])
    names = [None] if columns == 1 else [str(i) for i in range(columns)]
    grid = CalendarGrid(period)  # ~1000 to 4000 rows a pane, around BLOCK_ROWS

    def run(bulk, direct):
        engine = WindowEngine(grid, stats=stats, emit_empty=empty)
        engine.bulk = engine.bulk and bulk
        engine.start(int(times[0]))
        out, watermark = [], 0
        for i, (t, v) in enumerate(pieces):
            if i == snapshot:
                saved = msgpack.packb(engine.get_state())
                out.append(saved)
                engine = WindowEngine(grid, stats=stats, emit_empty=empty)
                engine.bulk = engine.bulk and bulk
                engine.set_state(msgpack.unpackb(saved))
            watermark = max(watermark, int(t[-1]) + 1 - lag)
            if direct:
                late, *fired = engine.add_advance(t, v, names, watermark)
                fired = [[] if f is None else f.results() for f in fired]
            else:
                late = engine.add(t, v, names)
                fired = engine.advance(watermark)
            out.append((list(late), *(fired_bytes(r) for r in fired)))
        out.append(tuple(fired_bytes(r) for r in engine.finish()))
        out.append(msgpack.packb(engine.get_state()))
        return out

    slow = run(False, False)
    assert run(True, False) == slow
    assert run(True, True) == slow
