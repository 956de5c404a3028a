"""
Tests for the KPI blocks: pointwise (power, efficiency, formula), per-cycle
RMS, and the aggregators (average, THD at load, weighted efficiency) —
against analytic signals, independent of chunking, sharing memory with
their inputs, and checked against their interfaces.
"""

import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from pyrf_blocks import (
    Chunk, average, collector, cycle_rms, efficiency_block, formula_block, power_block,
    thd_at_load, thd_block, weighted_efficiency,
)
from pyrf_blocks.errors import FormulaError
from pyrf_blocks.interfaces import (IBlock, IOutput, IRealProducer, IRecordsProducer,
                                    IScalarProducer)
from pyrf_blocks.numerics.loadbins import (CEC_WEIGHTS, EUROPEAN_WEIGHTS, load_bin_edges,
                                           load_bin_index)
from pyrf_blocks.pipeline import build, check_text
from pyrf_blocks.testing import (array_source, assert_provides, recording_sink, run_clock,
                                 split_array)

RATE = 10e3
cuts = st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=30)


def sine(amplitude, frequency=50.0, phase=0.0, seconds=0.2, rate=RATE):
    t = np.arange(int(round(seconds * rate))) / rate
    return amplitude * np.sin(2 * np.pi * frequency * t + phase)


def real(graph, samples, cut=(), units="", rate=RATE, name=None, **kwargs):
    return array_source(split_array(samples, cut or [len(samples)]), kind="real", rate=rate,
                        graph=graph, meta={"units": units}, name=name, **kwargs)


def records(graph, times, values, cut=(), end=None, name=None, units="", start=None):
    """A records source playing rows ``times``/``values`` cut after the given row counts."""
    times = np.asarray(times, np.int64)
    values = np.asarray(values)
    end = int(times[-1]) + 1 if end is None else end
    chunks, row = [], 0
    bounds = np.cumsum(list(cut) + [len(times)])
    start = int(times[0]) if start is None else start
    for stop in bounds:
        stop = min(int(stop), len(times))
        if stop <= row and stop < len(times):
            continue
        chunk_end = int(times[stop]) if stop < len(times) else end
        if chunk_end == start:
            continue
        chunks.append(Chunk.records(times[row:stop], values[row:stop], start, chunk_end,
                                    meta={"units": units}))
        row, start = stop, chunk_end
        if stop >= len(times):
            break
    return array_source(chunks, kind="records", graph=graph, name=name)


def rows_of(sink):
    return np.concatenate([chunk.data for chunk in sink.chunks])


def times_of(sink):
    return np.concatenate([chunk.times for chunk in sink.chunks])


# Interfaces.

def test_every_kpi_block_verifies_against_its_interfaces(graph):
    """verifyObject passes for each new block, for its kind's interface and its outputs."""
    v, i = real(graph, np.ones(8)), real(graph, np.ones(8))
    cycles = cycle_rms(v)
    load = records(graph, [0, 1], [50.0, 60.0])
    blocks = [power_block(v, i), efficiency_block(v, i), formula_block("a - b", a=v, b=i),
              cycles, average(v), thd_at_load(load, load), weighted_efficiency(load, load)]
    for block in blocks:
        assert_provides(IBlock, block)
    for block in blocks[:3]:
        assert_provides(IRealProducer, block)
    for block in blocks[3:]:
        assert_provides(IRecordsProducer, block)
    for block in blocks[4:]:
        assert_provides(IOutput, block.output("running"))
        assert_provides(IRecordsProducer, block.output("running"))
    assert_provides(IRecordsProducer, power_block(cycles, cycles))
    assert_provides(IScalarProducer, power_block(thd_block(v), thd_block(i)))


def test_pointwise_blocks_refuse_inputs_of_mixed_or_unsupported_kinds(graph):
    """Sampled and records inputs cannot be mixed, and IQ is refused, naming the block."""
    v = real(graph, np.ones(8))
    with pytest.raises(TypeError, match="power_block 'power_block': inputs of different kinds"):
        power_block(v, cycle_rms(v))
    iq = array_source([np.ones(8, np.complex64)], kind="iq", graph=graph)
    with pytest.raises(TypeError, match="input 1 emits 'iq' chunks"):
        efficiency_block(iq, v)
    with pytest.raises(TypeError, match="average 'x': input 1 emits 'iq'"):
        average(iq, name="x")


# Pointwise KPIs.

@pytest.mark.parametrize("phi", [0.0, 0.3, np.pi / 3])
def test_mean_power_of_v_and_i_in_phase_phi_is_vrms_irms_cos_phi(graph, clock, phi):
    """V and I sines phi apart give mean P = V_rms·I_rms·cos phi over whole cycles."""
    v = real(graph, sine(325.0), [777] * 10, "V")
    i = real(graph, sine(10.0, phase=-phi), [333] * 30, "A")
    power = power_block(v, i)
    mean = collector(average(power))
    run_clock(clock, graph)
    row = mean.chunks[0].data[0]
    assert_allclose(row["mean"], 325 / np.sqrt(2) * 10 / np.sqrt(2) * np.cos(phi), rtol=1e-9)
    assert row["count"] == 2000 and mean.chunks[0].meta["units"] == "W"


def test_efficiency_is_p_out_over_p_in_in_percent_or_as_a_ratio(graph, clock):
    """efficiency_block gives 100·P_out/P_in (% by default), or the ratio."""
    p_in = real(graph, np.array([100.0, 200.0, 50.0]), units="W")
    p_out = real(graph, np.array([90.0, 190.0, 0.0]), units="W")
    percent = collector(efficiency_block(p_out, p_in))
    ratio = collector(efficiency_block(p_out, p_in, percent=False))
    run_clock(clock, graph)
    assert_allclose(percent.data(), [90.0, 95.0, 0.0])
    assert_allclose(ratio.data(), [0.9, 0.95, 0.0])
    assert percent.chunks[0].meta["units"] == "%" and ratio.chunks[0].meta["units"] == "1"


def test_formula_block_takes_named_inputs_or_positional_inputs_with_names(graph, clock):
    """formula_block('expr', a=x, b=y) and formula_block(x, y, expr=, names=) agree."""
    a = real(graph, np.arange(10.0), name="va")
    b = real(graph, np.arange(10.0) * 2, name="vb")
    named = collector(formula_block("hypot(a, b) + 1", a=a, b=b, units="V"))
    positional = collector(formula_block(a, b, expr="hypot(x, y) + 1", names=["x", "y"]))
    by_block_name = collector(formula_block(a, b, expr="hypot(va, vb) + 1"))
    run_clock(clock, graph)
    expected = np.hypot(np.arange(10.0), np.arange(10.0) * 2) + 1
    for sink in (named, positional, by_block_name):
        assert_allclose(sink.data(), expected)
    assert named.chunks[0].meta == {"units": "V", "quantity": "formula",
                                    "formula": "hypot(a, b) + 1"}


def test_formula_block_checks_its_formula_when_made(graph):
    """A bad formula, or names that do not match the inputs, fail at construction."""
    v = real(graph, np.ones(4))
    with pytest.raises(FormulaError, match="column 9: unknown name 'w'"):
        formula_block("v * 2 + w", v=v)
    with pytest.raises(ValueError, match="1 names for 2 inputs"):
        formula_block(v, v, expr="a", names=["a"])
    with pytest.raises(TypeError, match="either by position"):
        formula_block(v, expr="a", a=v)


@given(cuts, cuts, cuts)
@settings(max_examples=40, deadline=None)
def test_formula_output_does_not_depend_on_input_chunking(cut_a, cut_b, cut_c):
    """A formula of three sampled inputs gives the same rows and times however they were cut."""
    from twisted.internet.task import Clock
    from pyrf_blocks import Graph

    clock = Clock()
    graph = Graph(clock)
    x = sine(2.0, seconds=0.1)
    y = sine(3.0, phase=0.5, seconds=0.1)
    z = np.linspace(1, 2, len(x))
    sink = recording_sink(formula_block("x * y / z - max(x, 0)",
                                        x=real(graph, x, cut_a), y=real(graph, y, cut_b),
                                        z=real(graph, z, cut_c)))
    assert run_clock(clock, graph) is None
    assert sink.problems == []
    assert_allclose(sink.data(), x * y / z - np.maximum(x, 0), rtol=1e-12)
    assert sink.chunks[0].start == 0 and sink.chunks[-1].end == 100_000_000


def test_pointwise_records_must_be_at_the_same_times(graph, clock):
    """Records line up row by row; rows at different times fail the graph, saying where."""
    same = collector(efficiency_block(records(graph, [0, 10, 20], [9.0, 18.0, 27.0]),
                                      records(graph, [0, 10, 20], [10.0, 20.0, 30.0])))
    run_clock(clock, graph)
    assert_allclose(rows_of(same), [90.0, 90.0, 90.0])
    assert_array_equal(times_of(same), [0, 10, 20])

    from twisted.internet.task import Clock
    from pyrf_blocks import Graph
    clock2 = Clock()
    graph2 = Graph(clock2)
    collector(efficiency_block(records(graph2, [0, 10, 20], [9.0, 18.0, 27.0]),
                               records(graph2, [0, 11, 20], [10.0, 20.0, 30.0])))
    failure = run_clock(clock2, graph2)
    assert failure is not None
    assert "at different times" in str(failure.value) and "row 1: 10 ns and 11 ns" in str(
        failure.value)


@given(cuts, cuts)
@settings(max_examples=40, deadline=None)
def test_efficiency_and_average_of_records_do_not_depend_on_chunking(cut_out, cut_in):
    """Records of P_out and P_in cut differently give the same efficiencies and mean."""
    from twisted.internet.task import Clock
    from pyrf_blocks import Graph

    rng = np.random.default_rng(5)
    times = np.cumsum(rng.integers(1, 4, 500)) * 20_000_000
    p_in = rng.uniform(100, 200, 500)
    p_out = p_in * rng.uniform(0.8, 0.95, 500)
    clock = Clock()
    graph = Graph(clock)
    efficiency = efficiency_block(records(graph, times, p_out, cut_out),
                                  records(graph, times, p_in, cut_in))
    rows = recording_sink(efficiency)
    mean = collector(average(efficiency))
    assert run_clock(clock, graph) is None
    assert rows.problems == []
    assert_array_equal(times_of(rows), times)
    assert_allclose(rows_of(rows), p_out / p_in * 100, rtol=1e-12)
    assert_allclose(mean.chunks[0].data[0]["mean"], np.mean(p_out / p_in * 100), rtol=1e-12)


def test_one_signal_feeds_power_thd_cycles_and_a_formula_without_copies(graph, clock):
    """Every block fed by V receives views of the source's own array (np.shares_memory)."""
    voltage = sine(325.0, seconds=2.0)
    current = sine(10.0, seconds=2.0)
    v = real(graph, voltage, [4000] * 5, "V")
    i = real(graph, current, [4000] * 5, "A")
    consumers = [power_block(v, i), formula_block("v * v", v=v), cycle_rms(v),
                 thd_block(v, size=4096), average(v)]
    seen = {block.name: [] for block in consumers}
    for block in consumers:
        compute = block.compute

        def spy(*chunks, compute=compute, seen=seen[block.name]):
            seen.extend(chunks)
            return compute(*chunks)
        block.compute = spy
        collector(block)
    run_clock(clock, graph)
    for name, chunks in seen.items():
        fed_by_v = [chunk for chunk in chunks if chunk.meta.get("units") == "V"]
        assert fed_by_v, name
        assert all(np.shares_memory(chunk.data, voltage) for chunk in fed_by_v), name


# Per-cycle RMS.

@pytest.mark.parametrize("frequency", [50.0, 60.0])
def test_cycle_rms_of_a_sine_is_amplitude_over_root_two_on_the_nominal_grid(
        graph, clock, frequency):
    """Each whole cycle of a sine of amplitude A reads A/√2; rows at k/f from device time 0."""
    rate = 12e3
    samples = sine(3.0, frequency, 0.4, seconds=0.5, rate=rate)
    start = 7_000_000  # the stream starts inside a cycle: that part is left out
    block = cycle_rms(real(graph, samples, [1000] * 10, "V", rate=rate, start_time=start),
                      frequency=frequency)
    sink = recording_sink(block)
    run_clock(clock, graph)
    assert sink.problems == []
    period = 1e9 / frequency
    first = int(np.ceil(start / period))
    expected_times = np.round(np.arange(first, first + len(times_of(sink))) * period)
    assert_array_equal(times_of(sink), expected_times.astype(np.int64))
    assert_allclose(rows_of(sink), 3.0 / np.sqrt(2), rtol=1e-3)
    end = start + 0.5e9
    assert len(times_of(sink)) == int((end - first * period) // period)
    assert sink.chunks[0].meta["units"] == "V" and sink.chunks[0].meta["quantity"] == "rms"
    # A cycle ends where the next begins; the last ends at its chunk's end.
    assert sink.chunks[-1].end == round((first + len(times_of(sink))) * period)
    assert block.incomplete_samples == 6000 - len(times_of(sink)) * rate / frequency


def test_cycle_rms_with_zero_crossings_starts_cycles_on_rising_crossings(graph, clock):
    """Zero-crossing cycles start at each rising crossing and read A/√2, ignoring noise."""
    clean = sine(2.0, 50.0, -np.pi / 2 + 0.1, seconds=0.3)
    crossings = np.flatnonzero((clean[:-1] < 0) & (clean[1:] >= 0)) + 1
    samples = clean.copy()
    # Noise just after the crossing at sample 1049 makes another one at 1055: not a cycle.
    samples[1053:1056] = [0.01, -0.01, 0.01]
    sink = collector(cycle_rms(real(graph, samples, [600] * 10), boundaries="zero_crossing"))
    run_clock(clock, graph)
    assert_array_equal(times_of(sink), (crossings[:-1] * 1e9 / RATE).astype(np.int64))
    assert len(rows_of(sink)) == 14
    assert_allclose(rows_of(sink), 2.0 / np.sqrt(2), rtol=1e-3)


def test_per_cycle_mean_of_v_times_i_is_the_active_power(graph, clock):
    """statistic='mean' of P = V·I gives V_rms·I_rms·cos phi for every cycle."""
    v = real(graph, sine(325.0, seconds=0.2), [900] * 5)
    i = real(graph, sine(10.0, phase=-0.5, seconds=0.2), [700] * 5)
    sink = collector(cycle_rms(power_block(v, i), statistic="mean"))
    run_clock(clock, graph)
    assert len(rows_of(sink)) == 10
    assert_allclose(rows_of(sink), 325 * 10 / 2 * np.cos(0.5), rtol=1e-9)


@pytest.mark.parametrize("phase", np.linspace(0, np.pi, 7))
def test_cycle_rms_on_a_drifting_mains_stays_within_0_3_percent(graph, clock, phase):
    """A 49.9 Hz sine on the nominal 50 Hz grid reads A/√2 within 0.3 % (the module's claim)."""
    samples = sine(1.0, 49.9, phase, seconds=1.0)
    sink = collector(cycle_rms(real(graph, samples)))
    run_clock(clock, graph)
    assert_allclose(rows_of(sink), 1 / np.sqrt(2), rtol=3e-3)


@given(cuts, st.sampled_from(["nominal", "zero_crossing"]), st.sampled_from([50.0, 60.0]),
       st.sampled_from(["rms", "mean"]))
@settings(max_examples=40, deadline=None)
def test_cycle_rms_does_not_depend_on_input_chunking(cut, boundaries, frequency, statistic):
    """The same cycles, times and value bits come out however the samples were cut."""
    from twisted.internet.task import Clock
    from pyrf_blocks import Graph

    samples = (sine(1.5, frequency, 1.0, seconds=0.25)
               + sine(0.1, 3 * frequency, seconds=0.25)).astype(np.float32)
    results = []
    for pieces in (cut, [len(samples)]):
        clock = Clock()
        graph = Graph(clock)
        sink = recording_sink(cycle_rms(real(graph, samples, pieces), frequency=frequency,
                                        boundaries=boundaries, statistic=statistic))
        assert run_clock(clock, graph) is None
        assert sink.problems == []
        results.append((times_of(sink), rows_of(sink)))
    assert_array_equal(results[0][0], results[1][0])
    assert results[0][1].tobytes() == results[1][1].tobytes()  # history = live


def test_cycles_without_samples_have_no_mean_rather_than_failing(graph, clock):
    """At 30 Sa/s on a 50 Hz grid some cycles hold no sample: their row is nan, nothing fails."""
    source = array_source([np.ones(1, np.float32)] * 20, kind="real", rate=30.0, graph=graph)
    sink = collector(cycle_rms(source, 50.0, statistic="mean"))
    assert run_clock(clock, graph) is None
    values = rows_of(sink)
    assert_array_equal(times_of(sink)[:4], [0, 20_000_000, 40_000_000, 60_000_000])
    assert_array_equal(np.isnan(values[:4]), [False, False, True, False])
    assert np.all(values[~np.isnan(values)] == 1.0)


def test_a_gap_drops_the_interrupted_cycle_and_counts_its_samples(graph, clock):
    """A cycle interrupted by a gap in the input is not reported; its samples are counted."""
    rate = 10e3
    first = Chunk("real", sine(1.0, seconds=0.05), 0, 50_000_000, rate)
    second = Chunk("real", sine(1.0, seconds=0.05), 65_000_000, 115_000_000, rate)
    block = cycle_rms(array_source([first, second], kind="real", graph=graph))
    sink = collector(block)
    run_clock(clock, graph)
    assert_array_equal(times_of(sink), [0, 20_000_000, 80_000_000])
    # 100 samples after 40 ms, 150 before 80 ms, 150 after 100 ms
    assert block.incomplete_samples == 100 + 150 + 150


# Load bins.

def test_load_bins_are_half_open_and_disjoint_for_both_standards():
    """Bins are [p - 2.5, p + 2.5) %; a load in none (or nan) gets -1; overlap is refused."""
    edges = load_bin_edges(list(EUROPEAN_WEIGHTS))
    assert_array_equal(edges[:2], [[2.5, 7.5], [7.5, 12.5]])
    load = np.array([2.4, 2.5, 7.499, 7.5, 12.5, 49.0, 52.6, np.nan])
    assert_array_equal(load_bin_index(load, edges), [-1, 0, 0, 1, -1, 4, -1, -1])
    load_bin_edges(list(CEC_WEIGHTS), tolerance=5.0)
    with pytest.raises(ValueError, match="overlap.*at most 2.5"):
        load_bin_edges(list(EUROPEAN_WEIGHTS), tolerance=3.0)
    assert sum(CEC_WEIGHTS.values()) == pytest.approx(1.0)
    assert sum(EUROPEAN_WEIGHTS.values()) == pytest.approx(1.0)


# Aggregators.

def test_average_of_a_run_and_its_running_estimate(graph, clock):
    """average() emits the mean so far on 'running' and the run's mean on main at the end."""
    values = np.arange(1.0, 11.0)
    source = real(graph, values, [3, 3, 4], "V")
    block = average(source)
    final = recording_sink(block)
    running = recording_sink(block.output("running"))
    run_clock(clock, graph)
    assert final.problems == [] and running.problems == []
    assert_allclose([row["mean"] for row in rows_of(running)], [2.0, 3.5, 5.5])
    assert_array_equal(times_of(running), [200_000, 500_000, 900_000])
    assert len(final.chunks) == 1
    chunk = final.chunks[0]
    assert chunk.data[0]["mean"] == 5.5 and chunk.data[0]["count"] == 10
    assert chunk.times[0] == 0 and chunk.start == 0 and chunk.end == 1_000_000
    assert chunk.meta["units"] == "V" and chunk.meta["missing"] == []


def test_average_of_nothing_is_nan_with_count_zero_not_zero(graph, clock):
    """A run without rows gives mean nan, count 0, and says the mean is missing."""
    empty = Chunk.records(np.zeros(0, np.int64), np.zeros(0), 0, 1000)
    sink = collector(average(array_source([empty], kind="records", graph=graph)))
    run_clock(clock, graph)
    row = sink.chunks[0].data[0]
    assert np.isnan(row["mean"]) and row["count"] == 0
    assert sink.chunks[0].meta["missing"] == ["mean"]


def test_average_leaves_nan_rows_out_and_counts_them(graph, clock):
    """nan rows do not make the average nan; they are counted in the meta."""
    sink = collector(average(records(graph, [0, 1, 2, 3], [1.0, np.nan, 3.0, np.nan])))
    run_clock(clock, graph)
    assert sink.chunks[0].data[0]["mean"] == 2.0 and sink.chunks[0].meta["nan_rows"] == 2


def test_thd_at_load_bins_known_thd_values_by_the_load_at_the_same_time(graph, clock):
    """Known (THD, load) pairs give each load point's mean THD; an empty point is nan, count 0."""
    times = np.arange(8) * 1_000_000
    thd = [3.0, 5.0, 4.0, 8.0, 2.0, 9.0, 6.0, 1.0]
    load = [49.0, 51.0, 24.0, 74.0, 99.0, 50.0, 30.0, 10.0]
    block = thd_at_load(records(graph, times, thd, [3, 2], units="%"),
                        records(graph, times, load, [5]), loads=[25, 50, 75, 90])
    sink = collector(block)
    run_clock(clock, graph)
    rows = sink.chunks[0].data
    assert_array_equal(rows["load"], [25, 50, 75, 90])
    assert_allclose(rows["thd"][:3], [4.0, (3 + 5 + 9) / 3, 8.0])
    assert np.isnan(rows["thd"][3]) and list(rows["count"]) == [1, 3, 1, 0]
    meta = sink.chunks[0].meta
    assert meta["missing"] == [90.0] and meta["outside_bins"] == 3 and meta["units"] == "%"


def test_thd_at_load_pairs_each_value_with_the_latest_load_at_or_before_it(graph, clock):
    """A slower load stream: each THD row takes the load measured last before it, in %."""
    thd = records(graph, [5, 15, 25, 35], [1.0, 2.0, 3.0, 4.0], end=40, start=0)
    # A load in W, rated 200 W: 100 W is 50 %, 150 W is 75 %.
    load = records(graph, [10, 30], [100.0, 150.0], end=40, start=0)
    sink = collector(thd_at_load(thd, load, loads=[50, 75], rated=200))
    run_clock(clock, graph)
    rows = sink.chunks[0].data
    assert_allclose(rows["thd"], [2.5, 4.0])
    assert list(rows["count"]) == [2, 1]
    assert sink.chunks[0].meta["without_load"] == 1


@given(cuts, cuts)
@settings(max_examples=40, deadline=None)
def test_thd_at_load_does_not_depend_on_chunking(thd_cut, load_cut):
    """The binned THD is the same however the THD and load records were cut."""
    from twisted.internet.task import Clock
    from pyrf_blocks import Graph

    rng = np.random.default_rng(3)
    times = np.cumsum(rng.integers(1, 5, 300)) * 1000
    thd_values = rng.uniform(1, 10, 300)
    load_values = rng.choice([10.0, 49.0, 51.0, 75.5, 100.0], 300)
    results = []
    for cut_a, cut_b in ((thd_cut, load_cut), ((), ())):
        clock = Clock()
        graph = Graph(clock)
        sink = collector(thd_at_load(records(graph, times, thd_values, cut_a),
                                     records(graph, times[::3], load_values[::3], cut_b,
                                             end=int(times[-1]) + 1),
                                     loads=[10, 50, 75, 100]))
        assert run_clock(clock, graph) is None
        results.append(sink.chunks[0].data)
    assert_array_equal(results[0]["count"], results[1]["count"])
    assert_allclose(results[0]["thd"], results[1]["thd"], rtol=1e-12)


@pytest.mark.parametrize("weights", ["cec", "european"])
def test_weighted_efficiency_of_a_constant_efficiency_is_that_efficiency(graph, clock, weights):
    """η constant at every load point gives weighted η = η, with no load point missing."""
    points = list((CEC_WEIGHTS if weights == "cec" else EUROPEAN_WEIGHTS))
    load = np.repeat(points, 5) + np.tile([-2, -1, 0, 1, 2], len(points))
    times = np.arange(len(load)) * 1000
    block = weighted_efficiency(records(graph, times, np.full(len(load), 93.5), [7], units="%"),
                                records(graph, times, load, [11]), weights=weights)
    sink = collector(block)
    run_clock(clock, graph)
    row = sink.chunks[0].data[0]
    assert_allclose(row["efficiency"], 93.5)
    assert row["missing"] == 0
    assert sink.chunks[0].meta["bins"]["count"] == [5] * len(points)


def test_weighted_efficiency_is_the_weighted_sum_of_the_mean_at_each_load(graph, clock):
    """η_k known at each CEC point gives Σ w_k η_k; the running estimate is nan until all are seen."""
    points = list(CEC_WEIGHTS)
    efficiency = {10.0: 80.0, 20.0: 88.0, 30.0: 91.0, 50.0: 94.0, 75.0: 95.0, 100.0: 94.5}
    load = np.repeat(points, 2)
    eta = np.array([efficiency[p] for p in load]) + np.tile([-0.5, 0.5], len(points))
    times = np.arange(len(load)) * 1000
    block = weighted_efficiency(records(graph, times, eta, [2] * 5),
                                records(graph, times, load, [3] * 3))
    final = collector(block)
    running = collector(block.output("running"))
    run_clock(clock, graph)
    expected = sum(CEC_WEIGHTS[p] * efficiency[p] for p in points)
    assert_allclose(final.chunks[0].data[0]["efficiency"], expected)
    estimates = rows_of(running)
    assert np.isnan(estimates["efficiency"][:-1]).all()
    assert (np.diff(estimates["missing"]) <= 0).all()  # load points only get data
    assert estimates["missing"][-1] == 0 and estimates["missing"][0] > 0
    assert_allclose(estimates["efficiency"][-1], expected)


def test_weighted_efficiency_with_a_missing_load_point_is_nan_never_a_partial_sum(graph, clock):
    """No data at 100 % load: the result is nan, missing = 1, and the meta names the point."""
    points = [10.0, 20.0, 30.0, 50.0, 75.0]
    times = np.arange(len(points)) * 1000
    sink = collector(weighted_efficiency(records(graph, times, np.full(5, 90.0)),
                                         records(graph, times, points)))
    run_clock(clock, graph)
    row, meta = sink.chunks[0].data[0], sink.chunks[0].meta
    assert np.isnan(row["efficiency"]) and row["missing"] == 1
    assert meta["missing"] == [100.0] and np.isnan(meta["bins"]["efficiency"][-1])
    assert meta["bins"]["count"][-1] == 0


def test_weighted_efficiency_refuses_unknown_weights_and_overlapping_bins(graph):
    """Bad weights or a tolerance that makes bins overlap fail at construction, naming the block."""
    load = records(graph, [0], [50.0])
    with pytest.raises(ValueError, match="weights must be one of cec, european"):
        weighted_efficiency(load, load, weights="us")
    with pytest.raises(ValueError, match="weighted_efficiency 'w':.*overlap"):
        weighted_efficiency(load, load, weights="european", tolerance=4, name="w")


# Pipeline files.

def test_kpi_blocks_in_a_pipeline_file_build_and_run(clock):
    """A pipeline file builds formula, efficiency and aggregator blocks from their parameters."""
    from pyrf_blocks import Graph

    text = textwrap.dedent("""\
        version: 1
        blocks:
          src:
            type: simulated_instrument
            params: {sample_rate: 1MHz, samples_per_packet: 1024, packets_per_block: 4,
                     count: 8, paced: false}
          thd:
            type: thd_block
            inputs: [src]
            params: {size: 1024}
          p:
            type: formula_block
            inputs: [thd, thd]
            params: {expr: "a * 0 + 100", names: [a, b], units: W}
          eff:
            type: efficiency_block
            inputs: [thd, p]
          weighted:
            type: weighted_efficiency
            inputs: [eff, p]
            params: {weights: european, tolerance: 1.0, rated: 200}
          at_load:
            type: thd_at_load
            inputs: [thd, p]
            params: {loads: [50, 100], rated: 200}
          mean:
            type: average
            inputs: [eff]
          out_weighted: {type: collector, inputs: [weighted]}
          out_at_load: {type: collector, inputs: [at_load]}
          out_mean: {type: collector, inputs: [mean]}
        """)
    graph = build(check_text(text), Graph(clock))
    assert run_clock(clock, graph) is None
    thd = graph.blocks["out_at_load"].chunks[0].data
    # p is 100 W of 200 W rated: every THD value is at 50 % load, none at 100 %.
    assert list(thd["count"]) == [32, 0] and np.isnan(thd["thd"][1])
    assert thd["load"][0] == 50.0 and np.isfinite(thd["thd"][0])
    weighted = graph.blocks["out_weighted"].chunks[0]
    assert weighted.meta["weights"] == "european" and weighted.meta["tolerance"] == 1.0
    assert graph.blocks["out_mean"].chunks[0].data[0]["count"] == 32


def test_cycle_rms_frequency_in_a_pipeline_file_takes_units():
    """cycle_rms's frequency reads '60Hz'; a wrong unit or an IQ input is reported at its line."""
    from pyrf_blocks.errors import PipelineError

    text = textwrap.dedent("""\
        version: 1
        blocks:
          src: {type: simulated_instrument}
          cycles:
            type: cycle_rms
            inputs: [src]
            params: {frequency: 60 apples}
        """)
    with pytest.raises(PipelineError) as caught:
        check_text(text)
    message = str(caught.value)
    assert "<pipeline>:6" in message and "IRealProducer" in message
    assert "frequency" in message and "apples" in message


# State.

def test_state_of_cycles_and_aggregators_survives_msgpack_and_resumes_exactly(graph):
    """get_state half-way, through msgpack, set_state in a new block: the same results as one run."""
    import msgpack

    from pyrf_blocks.interfaces import IStateful

    samples = sine(2.0, phase=0.3, seconds=0.3)
    chunks = [Chunk("real", piece, round(start * 1e5), round((start + len(piece)) * 1e5), RATE,
                    meta={"units": "V"})
              for start, piece in zip(range(0, 3000, 700), split_array(samples, [700] * 5))]
    load_chunks = [chunk.replace(data=np.full(len(chunk.data), 50.0)) for chunk in chunks]
    source = real(graph, samples)

    def make():
        return [cycle_rms(source), average(source),
                weighted_efficiency(source, source, weights={50: 1.0})]

    def feed(block, pieces):
        for chunk, load in pieces:
            block.compute(chunk) if len(block.inputs) == 1 else block.compute(chunk, load)

    results = []
    for split in (None, 3):
        blocks = make()
        sinks = [collector(block) for block in blocks]
        for block in blocks:
            block.reset()
            pairs = list(zip(chunks, load_chunks))
            if split is None:
                feed(block, pairs)
            else:
                feed(block, pairs[:split])
                assert_provides(IStateful, block)
                state = msgpack.unpackb(msgpack.packb(block.get_state()), strict_map_key=False)
                block.reset()
                block.set_state(state)
                feed(block, pairs[split:])
            block.flush()
        results.append([np.concatenate([c.data for c in sink.chunks]).tolist()
                        for sink in sinks])
    assert results[0] == results[1]
    assert len(results[0][0]) == 15 and results[0][1][0][1] == 3000


@given(st.lists(cuts, min_size=4, max_size=4), cuts, st.integers(1, 3))
@settings(max_examples=25, deadline=None)
def test_the_efficiency_chain_gives_the_same_bits_with_inputs_aligned_or_not(
        own_cuts, common_cut, maxsize):
    """V·I per cycle (fused) → efficiency (fused with its cycles) gives the same bytes with its four inputs cut alike (the synchroniser's aligned path) or each its own way, with small queues pausing inputs that run ahead."""
    from twisted.internet.task import Clock
    from pyrf_blocks import Graph, power_block

    rng = np.random.default_rng(3)
    signals = [(sine(325.0) + rng.standard_normal(2000)).astype(np.float32),
               (sine(10.0, phase=-0.2) + 2).astype(np.float32),
               (sine(48.0, phase=0.1) + 50).astype(np.float32),
               (sine(60.0, phase=0.3) + 70).astype(np.float32)]
    results = []
    for pieces in ([common_cut] * 4, own_cuts, [[2000]] * 4):
        clock = Clock()
        graph = Graph(clock)
        v_in, i_in, v_out, i_out = (real(graph, signal, cut, units=units)
                                    for signal, cut, units in zip(signals, pieces, "VAVA"))
        p_in = cycle_rms(power_block(v_in, i_in, maxsize=maxsize), 50.0, statistic="mean")
        p_out = cycle_rms(power_block(v_out, i_out, maxsize=maxsize), 50.0, statistic="mean")
        sink = recording_sink(efficiency_block(p_out, p_in, maxsize=maxsize))
        assert {fusion.rule for fusion in graph.optimise()} == {"cycles_of_power",
                                                                "pointwise_of_cycles"}
        assert run_clock(clock, graph) is None
        assert sink.problems == []
        results.append((times_of(sink).tobytes(), rows_of(sink).tobytes(),
                        sink.chunks[0].start, sink.chunks[-1].end))
    assert len(results[2][0]) == 10 * 8  # ten whole cycles in 0.2 s (0 is a boundary)
    assert results[0] == results[2] and results[1] == results[2]


@given(st.lists(cuts, min_size=4, max_size=4), st.booleans())
@settings(max_examples=25, deadline=None)
def test_the_efficiency_chain_at_a_period_of_fractional_nanoseconds_does_not_depend_on_chunking(
        own_cuts, optimised):
    """At 48e3/7 Sa/s (a period of 145 833.3 ns, chunk starts rounded to the ns) V·I per cycle → efficiency, fused or not, gives the same bytes with its four inputs cut each its own way as cut alike: the synchroniser's pieces tile time, a rounding apart."""
    from twisted.internet.task import Clock
    from pyrf_blocks import Graph, power_block
    from pyrf_blocks.timebase import sample_time

    rate, origin = 48e3 / 7, 123_456_789
    rng = np.random.default_rng(5)
    signals = [(sine(325.0, rate=rate) + rng.standard_normal(1371)).astype(np.float32),
               (sine(10.0, phase=-0.2, rate=rate) + 2).astype(np.float32),
               (sine(48.0, phase=0.1, rate=rate) + 50).astype(np.float32),
               (sine(60.0, phase=0.3, rate=rate) + 70).astype(np.float32)]

    def channel(graph, samples, cut, units):
        chunks, offset = [], 0
        for piece in split_array(samples, cut):
            start = sample_time(origin, offset, rate)
            offset += len(piece)
            chunks.append(Chunk("real", piece, start, sample_time(origin, offset, rate), rate,
                                meta={"units": units}))
        return array_source(chunks, kind="real", graph=graph)

    results = []
    for pieces in ([[len(signals[0])]] * 4, own_cuts):
        clock = Clock()
        graph = Graph(clock)
        v_in, i_in, v_out, i_out = (channel(graph, signal, cut, units)
                                    for signal, cut, units in zip(signals, pieces, "VAVA"))
        p_in = cycle_rms(power_block(v_in, i_in), 50.0, statistic="mean")
        p_out = cycle_rms(power_block(v_out, i_out), 50.0, statistic="mean")
        sink = recording_sink(efficiency_block(p_out, p_in))
        if optimised:
            graph.optimise()
        assert run_clock(clock, graph) is None
        assert sink.problems == []
        results.append((times_of(sink).tobytes(), rows_of(sink).tobytes()))
    assert len(results[0][0]) == 9 * 8  # the whole cycles from 140 ms to 320 ms
    assert results[1] == results[0]
