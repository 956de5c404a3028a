"""
Chain optimisation: an optimised graph's outputs equal the unoptimised
graph's bit for bit, however the input is chunked; rules apply only where
their proof holds; dry runs show the fusions.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks.state import unpack_array
from pyrf_blocks import (Chunk, Graph, calibrate_block, collector, cycle_rms, efficiency_block,
                         fft_block, formula_block, max_hold, min_hold, power_block)
from pyrf_blocks.cli import main
from pyrf_blocks.numerics.signals import amplitude_of, tone_samples
from pyrf_blocks.optimise import (CyclesOfPower, HoldOfCalibration, PointwiseOfCycles,
                                  graph_nodes, optimise, pipeline_nodes, plan)
from pyrf_blocks.pipeline import check_text
from pyrf_blocks.testing import array_source, run_clock, split_array
from pyrf_blocks.timebase import sample_time

RATE = 1.024e6


def _signal(count, complex_input, seed=0):
    rng = np.random.default_rng(seed)
    tone = tone_samples(0, count, RATE, 17e3, amplitude_of(-20.0, 0.0),
                        complex_output=complex_input)
    if complex_input:
        noise = rng.standard_normal(2 * count, dtype=np.float32).view(np.complex64) * 1e-3
    else:
        noise = rng.standard_normal(count, dtype=np.float32) * 1e-3
    samples = (tone + noise).astype(np.complex64 if complex_input else np.float32)
    samples[count // 3] = 0  # a run of zeros would give -inf dBm: keep a zero sample too
    return samples


def _run(arrays, hold, kind, optimised, offset=0.0, size=256, calibrated=True, overlap=0):
    clock = Clock()
    graph = Graph(clock)
    source = array_source(arrays, kind=kind, rate=RATE, graph=graph,
                          meta={"center_frequency": 1e8, "reference_level": -10.0})
    spectra = fft_block(source, size=size, overlap=overlap)
    if calibrated:
        spectra = calibrate_block(spectra, offset=offset)
    sink = collector(hold(spectra))
    fusions = optimise(graph) if optimised else []
    assert run_clock(clock, graph) is None
    return sink.chunks, fusions


def _assert_same(chunks, expected):
    assert len(chunks) == len(expected)
    for got, want in zip(chunks, expected):
        assert_array_equal(got.data, want.data)
        assert (got.start, got.end, got.rate, got.seq) == (want.start, want.end,
                                                           want.rate, want.seq)
        assert got.meta == want.meta


@given(st.lists(st.integers(min_value=1, max_value=1500), min_size=1, max_size=10),
       st.sampled_from([max_hold, min_hold]), st.booleans())
@settings(max_examples=30, deadline=None)
def test_a_fused_hold_equals_the_unfused_chain_however_the_input_is_cut(cuts, hold, iq):
    """A hold of calibrated spectra equals its fused form bit for bit, for any chunking, IQ or real."""
    samples = _signal(4000, iq)
    kind = "iq" if iq else "real"
    arrays = split_array(samples, cuts)
    expected, _ = _run(arrays, hold, kind, optimised=False, offset=1.5)
    got, fusions = _run(arrays, hold, kind, optimised=True, offset=1.5)
    assert [f.rule for f in fusions] == ["hold_of_calibration", "hold_of_spectra"]
    _assert_same(got, expected)


@given(st.lists(st.integers(min_value=1, max_value=1500), min_size=1, max_size=10),
       st.sampled_from([max_hold, min_hold]), st.booleans(), st.sampled_from([0, 100]),
       st.sampled_from([255, 256]))
@settings(max_examples=30, deadline=None)
def test_a_hold_fused_with_its_fft_equals_the_unfused_chain(cuts, hold, iq, overlap, size):
    """A hold reading an FFT directly equals its fused form bit for bit: any chunking, IQ or real, overlap, odd size."""
    samples = _signal(4000, iq)
    kind = "iq" if iq else "real"
    arrays = split_array(samples, cuts)
    expected, _ = _run(arrays, hold, kind, optimised=False, calibrated=False, overlap=overlap,
                       size=size)
    got, fusions = _run(arrays, hold, kind, optimised=True, calibrated=False, overlap=overlap,
                        size=size)
    assert [f.rule for f in fusions] == ["hold_of_spectra"]
    _assert_same(got, expected)


def _run_calibrated(arrays, kind, optimised, size, overlap):
    clock = Clock()
    graph = Graph(clock)
    source = array_source(arrays, kind=kind, rate=RATE, graph=graph,
                          meta={"center_frequency": 1e8, "reference_level": -10.0})
    sink = collector(calibrate_block(fft_block(source, size=size, overlap=overlap), offset=1.5))
    fusions = optimise(graph) if optimised else []
    assert run_clock(clock, graph) is None
    return sink.chunks, fusions


@given(st.lists(st.integers(min_value=1, max_value=1500), min_size=1, max_size=10),
       st.booleans(), st.sampled_from([0, 100]), st.sampled_from([255, 256]))
@settings(max_examples=30, deadline=None)
def test_a_calibration_fused_with_its_fft_equals_the_unfused_chain(cuts, iq, overlap, size):
    """An FFT calibrating its spectra in place equals FFT then calibrate bit for bit (any chunking, IQ or real, overlap, odd size), and every chunk kept keeps its values."""
    samples = _signal(4000, iq)
    kind = "iq" if iq else "real"
    arrays = split_array(samples, cuts)
    expected, _ = _run_calibrated(arrays, kind, False, size, overlap)
    got, fusions = _run_calibrated(arrays, kind, True, size, overlap)
    assert [f.rule for f in fusions] == ["calibration_of_spectra"]
    # The collector kept every chunk: none was written again by a later one.
    _assert_same(got, expected)
    assert all(chunk.kind == "spectrum" and not chunk.data.flags.writeable for chunk in got)


def test_a_calibration_fused_with_its_fft_takes_one_array_and_runs_on_a_thread_pool():
    """Fused, the FFT computes into the calibration's arrays (one array per chunk, not two) and on 2 threads it emits the serial unfused chunks exactly."""
    from pyrf_blocks.parallel import ThreadPool

    arrays = split_array(_signal(40000, True), [4096] * 9)

    def calibrated(pool, optimised, keep=None):
        graph = Graph(parallel=pool)
        source = array_source(arrays, rate=RATE, graph=graph,
                              meta={"center_frequency": 1e8, "reference_level": -5.0})
        fft = fft_block(source, size=512)
        calibration = calibrate_block(fft)
        sink = collector(calibration, keep=keep)
        graph.run(optimise=optimised)
        assert len(graph.fusions) == optimised
        return sink.chunks, fft, calibration

    expected = calibrated(None, False)[0]
    _, fft, calibration = calibrated(None, True, keep=1)
    # The FFT computes into the calibration's arrays: two of 8 spectra (the
    # collector keeps the last chunk while the next is computed) and one for
    # the last, shorter chunk; the FFT takes none of its own.
    assert fft._buffers is None and calibration._buffers.made <= 3
    assert calibration._buffers.reused >= len(arrays) - 3
    with ThreadPool(2) as pool:
        _assert_same(calibrated(pool, True)[0], expected)


def test_a_calibration_is_fused_only_with_an_fft_nobody_else_reads(graph):
    """calibration_of_spectra leaves an FFT that something else reads alone; a hold after the calibration takes it first."""
    samples = _signal(4096, True)
    source = array_source([samples], rate=RATE, graph=graph)
    fft = fft_block(source, size=256)
    rows = collector(fft)
    calibration = calibrate_block(fft)
    collector(calibration)
    assert [f.rule for f in optimise(graph)] == []  # a second consumer: left alone
    rows.close()
    fusions = optimise(graph)
    assert [(f.rule, f.blocks) for f in fusions] == [
        ("calibration_of_spectra", (fft.name, calibration.name))]
    assert fft.calibrating is calibration and calibration.fed_calibrated
    # With a hold after the calibration, the hold's fusions win (the same rules, in order).
    assert [f.rule for f in plan(pipeline_nodes(check_text(HOLD_PIPELINE)))] == [
        "hold_of_calibration", "hold_of_spectra"]


def test_an_fft_is_fused_only_with_its_only_consumer(graph):
    """hold_of_spectra leaves an FFT that something else reads alone, and fuses it once that is gone."""
    samples = _signal(4096, True)
    source = array_source([samples], rate=RATE, graph=graph)
    fft = fft_block(source, size=256)
    rows = collector(fft)
    hold = max_hold(fft)
    collector(hold)
    assert [f.rule for f in optimise(graph)] == []  # a second consumer: left alone
    rows.close()
    fusions = optimise(graph)
    assert [(f.rule, f.blocks) for f in fusions] == [("hold_of_spectra", (fft.name, hold.name))]
    assert fft.fused_extreme is np.maximum


def test_the_fused_calibration_no_longer_runs(graph):
    """After fusion the hold reads the FFT directly and the calibrate block is idle."""
    source = array_source([np.zeros(1024, np.complex64)], graph=graph)
    fft = fft_block(source, size=256)
    calibrate = calibrate_block(fft)
    hold = max_hold(calibrate)
    collector(hold)
    fusions = graph.optimise()
    assert tuple(fusions) == graph.fusions and fusions[0].blocks == (calibrate.name, hold.name)
    assert hold.inputs == (fft,) and hold.calibration is calibrate
    assert not calibrate.active and [e.consumer.block for e in fft.edges] == [hold]
    assert "calibrates the held row" in str(fusions[0])


def test_no_fusion_when_the_calibration_has_another_consumer(graph):
    """A calibration that something else also reads is not absorbed by its hold (only its FFT calibrates for it)."""
    source = array_source([np.zeros(1024, np.complex64)], graph=graph)
    calibrate = calibrate_block(fft_block(source, size=256))
    hold = max_hold(calibrate)
    collector(hold)
    collector(calibrate)
    assert [f.rule for f in optimise(graph)] == ["calibration_of_spectra"]
    assert hold.calibration is None and hold.inputs == (calibrate,)


def test_no_fusion_across_a_lossy_edge(graph):
    """A calibration fed through a drop_oldest edge is not fused (chunks could be dropped there)."""
    source = array_source([np.zeros(1024, np.complex64)], graph=graph)
    calibrate = calibrate_block(fft_block(source, size=256), policy="drop_oldest")
    collector(max_hold(calibrate))
    assert plan(graph_nodes(graph)) == []


def test_a_fused_hold_keeps_its_state_in_dbm():
    """get_state of a fused hold gives dBm, as the unfused hold's does, and set_state restores it."""
    samples = _signal(2048, True)
    results = []
    for optimised in (False, True):
        clock = Clock()
        graph = Graph(clock)
        source = array_source([samples], rate=RATE, graph=graph,
                              meta={"center_frequency": 1e8, "reference_level": 0.0})
        hold = max_hold(calibrate_block(fft_block(source, size=256)))
        collector(hold)
        if optimised:
            optimise(graph)
        assert run_clock(clock, graph) is None
        results.append((hold, hold.get_state()["hold"]))
    (plain, plain_state), (fused, fused_state) = results
    assert_array_equal(unpack_array(fused_state), unpack_array(plain_state))
    fused.set_state({"hold": plain_state})
    assert fused.calibration is not None


HOLD_PIPELINE = """
version: 1
blocks:
  source: {type: simulated_instrument}
  fft: {type: fft_block, inputs: [source]}
  dbm: {type: calibrate_block, inputs: [fft]}
  hold: {type: max_hold, inputs: [dbm]}
  out: {type: collector, inputs: [hold]}
"""


def test_a_dry_run_shows_what_would_be_fused(tmp_path, capsys):
    """The pipeline view finds the fusion; run --dry-run lists it and draws it in a dashed cluster."""
    fusions = plan(pipeline_nodes(check_text(HOLD_PIPELINE)))
    assert [(f.rule, f.blocks) for f in fusions] == [("hold_of_calibration", ("dbm", "hold")),
                                                     ("hold_of_spectra", ("fft", "hold"))]
    assert HoldOfCalibration.__doc__ and "Proof" in HoldOfCalibration.__doc__
    path = tmp_path / "hold.yaml"
    path.write_text(HOLD_PIPELINE)
    assert main(["run", "--dry-run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "chain optimisation:\n  hold_of_calibration: hold holds linear power" in out
    assert "\n  hold_of_spectra: fft computes the extreme of each chunk's spectra" in out
    assert 'label = "fused: hold_of_calibration"; style = dashed;\n      "dbm"; "hold";' in out
    assert main(["run", "--dry-run", "--no-optimise", str(path)]) == 0
    assert "fused" not in capsys.readouterr().out


@pytest.mark.parametrize("optimised", [False, True])
def test_graph_run_optimises_when_asked(optimised):
    """Graph.run(optimise=True) fuses before running; the default leaves the graph as built."""
    graph = Graph()
    source = array_source([_signal(2048, True)], rate=RATE, graph=graph)
    sink = collector(max_hold(calibrate_block(fft_block(source, size=256))))
    graph.run(optimise=optimised)
    assert len(graph.fusions) == 2 * int(optimised) and sink.finished


def test_optimising_twice_fuses_nothing_the_second_time():
    """optimise(graph) again (or run(optimise=True) again) makes and reports no fusion: hold_of_spectra was reported, and kept in graph.fusions, once per call; the output is the unfused chain's."""
    arrays = [_signal(2048, True, seed) for seed in range(3)]
    clock = Clock()
    graph = Graph(clock)
    source = array_source(arrays, rate=RATE, graph=graph,
                          meta={"center_frequency": 1e8, "reference_level": -10.0})
    sink = collector(max_hold(calibrate_block(fft_block(source, size=256))))
    first = optimise(graph)
    assert [fusion.rule for fusion in first] == ["hold_of_calibration", "hold_of_spectra"]
    assert optimise(graph) == [] and graph.optimise() == []
    assert graph.fusions == tuple(first)
    assert run_clock(clock, graph) is None
    _assert_same(sink.chunks, _run(arrays, max_hold, "iq", False)[0])


@pytest.mark.parametrize("iq,state_first", [(True, True), (False, True), (True, False)])
def test_a_hold_fused_with_fft_and_calibration_goes_on_from_a_state_exactly(iq, state_first):
    """A hold whose FFT calibrates its rows holds dBm: given an unfused hold's state (before or after fusion) it goes on to emit that hold's rows bit for bit."""
    samples = _signal(6000, iq)
    kind = "iq" if iq else "real"
    first, rest = split_array(samples, [2500, 3500])
    state = None
    emitted = []
    for optimised in (False, True):
        clock = Clock()
        graph = Graph(clock)
        source = array_source([first] if state is None else [rest], kind=kind, rate=RATE,
                              graph=graph, meta={"center_frequency": 1e8,
                                                 "reference_level": -3.0})
        hold = max_hold(calibrate_block(fft_block(source, size=256), offset=0.5))
        sink = collector(hold)
        if state is None:
            assert run_clock(clock, graph) is None
            state = hold.get_state()
            clock = Clock()
            graph = Graph(clock)
            source = array_source([rest], kind=kind, rate=RATE, graph=graph,
                                  meta={"center_frequency": 1e8, "reference_level": -3.0})
            hold = max_hold(calibrate_block(fft_block(source, size=256), offset=0.5))
            sink = collector(hold)
        if state_first or not optimised:
            hold.set_state(state)
        if optimised:
            assert [f.rule for f in optimise(graph)] == ["hold_of_calibration",
                                                         "hold_of_spectra"]
            assert hold.rows_calibrated
            if not state_first:
                hold.set_state(state)
        assert run_clock(clock, graph) is None
        emitted.append(sink.chunks)
    _assert_same(emitted[1], emitted[0])


# cycles_of_power: cycle_rms(power_block(v, i)) multiplies v and i itself.

KPI_RATES = [10e3, 48e3 / 7, 75.0, 30.0]  # whole samples per cycle, not, about one, below one


def _mains(count, rate, phase, amplitude, seed):
    t = np.arange(count) / rate
    noise = np.random.default_rng(seed).standard_normal(count) * 0.01 * amplitude
    return (amplitude * np.sin(2 * np.pi * 50.3 * t + phase) + noise).astype(np.float32)


def _timed_pieces(samples, rate, cuts, gap_at, gap_ns):
    """``samples`` as chunks cut after ``cuts`` samples, device time jumping ``gap_ns`` at ``gap_at``."""
    chunks, offset, start = [], 0, 123_456_789
    for piece in split_array(samples[:gap_at], cuts) + split_array(samples[gap_at:], cuts[::-1]):
        if not len(piece):
            continue
        if offset == gap_at and offset:
            start += gap_ns
        end = sample_time(start, len(piece), rate)
        chunks.append(Chunk("real", piece, start, end, rate))
        offset, start = offset + len(piece), end
    return chunks


def _cycles_of_power(voltage, current, optimised, policy="block", **params):
    clock = Clock()
    graph = Graph(clock)
    v = array_source(voltage, kind="real", graph=graph, meta={"units": "V"}, name="v")
    i = array_source(current, kind="real", graph=graph, meta={"units": "A"}, name="i")
    cycles = cycle_rms(power_block(v, i, policy=policy), **params)
    sink = collector(cycles)
    fusions = optimise(graph) if optimised else []
    failure = run_clock(clock, graph)
    return sink.chunks, cycles, fusions, failure


@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=12),
       st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=12),
       st.sampled_from(["nominal", "zero_crossing"]), st.sampled_from([50.0, 60.0]),
       st.sampled_from(["rms", "mean"]), st.sampled_from(KPI_RATES),
       st.integers(min_value=0, max_value=3000), st.sampled_from([0, 7_000_000]))
@settings(max_examples=60, deadline=None)
def test_cycles_fused_with_their_power_equal_the_unfused_chain(
        v_cuts, i_cuts, boundaries, frequency, statistic, rate, gap_at, gap_ns):
    """cycle_rms of power_block equals its fused form bit for bit: V and I cut apart, any rate, gaps."""
    count = 3000 if rate > 1e3 else 40
    gap_at = min(gap_at, count) if rate > 1e3 else min(gap_at // 75, count)
    voltage = _timed_pieces(_mains(count, rate, 0.3, 325.0, 1), rate, v_cuts, gap_at, gap_ns)
    current = _timed_pieces(_mains(count, rate, -0.2, 10.0, 2), rate, i_cuts, gap_at, gap_ns)
    params = dict(frequency=frequency, boundaries=boundaries, statistic=statistic)
    expected, plain, _, failure = _cycles_of_power(voltage, current, False, **params)
    assert failure is None
    got, fused, fusions, failure = _cycles_of_power(voltage, current, True, **params)
    assert failure is None
    assert [(f.rule, f.blocks) for f in fusions] == [("cycles_of_power",
                                                      ("power_block", "cycle_rms"))]
    assert len(got) == len(expected)
    for chunk, want in zip(got, expected):
        assert chunk.data.tobytes() == want.data.tobytes() and chunk.data.dtype == want.data.dtype
        assert_array_equal(chunk.times, want.times)
        assert (chunk.start, chunk.end, chunk.seq, chunk.meta) == (want.start, want.end,
                                                                   want.seq, want.meta)
    assert fused.incomplete_samples == plain.incomplete_samples
    assert fused.get_state() == plain.get_state()


def test_the_fused_power_block_no_longer_runs(graph):
    """After cycles_of_power the cycle block reads V and I, and the power block is idle."""
    v = array_source([np.ones(1000, np.float32)], kind="real", graph=graph)
    i = array_source([np.ones(1000, np.float32)], kind="real", graph=graph)
    power = power_block(v, i)
    cycles = cycle_rms(power, statistic="mean")
    collector(cycles)
    fusions = graph.optimise()
    assert [f.rule for f in fusions] == ["cycles_of_power"]
    assert cycles.inputs == (v, i) and cycles.power is power and not power.active
    assert [e.consumer.block for e in v.edges] == [cycles] == [e.consumer.block for e in i.edges]
    assert str(fusions[0]) == ("cycles_of_power: cycle_rms multiplies array_source and "
                               "array_source1 itself and sums each cycle of the product "
                               "(power_block no longer runs)")


def test_power_is_fused_only_into_its_only_consumer_over_lossless_edges(graph):
    """A power block that something else reads, or a lossy edge on either side, is left alone."""
    v = array_source([np.ones(1000, np.float32)], kind="real", graph=graph)
    i = array_source([np.ones(1000, np.float32)], kind="real", graph=graph)
    power = power_block(v, i)
    collector(cycle_rms(power))
    also = collector(power)
    assert optimise(graph) == []
    also.close()
    lossy = power_block(v, i, policy="drop_oldest")
    collector(cycle_rms(lossy))
    collector(cycle_rms(power_block(v, i), policy="drop_oldest"))
    assert [f.blocks for f in plan(graph_nodes(graph))] == [(power.name, "cycle_rms")]


def test_a_fused_power_refuses_inputs_at_different_rates_as_before():
    """Fused or not, V and I at different rates fail with the power block's own message."""
    messages = []
    for optimised in (False, True):
        voltage = [Chunk("real", np.ones(100, np.float32), 0, 10_000_000, 10e3)]
        current = [Chunk("real", np.ones(200, np.float32), 0, 10_000_000, 20e3)]
        _, _, _, failure = _cycles_of_power(voltage, current, optimised)
        messages.append(failure.getErrorMessage())
    assert messages[0] == messages[1]
    assert "power_block 'power_block': inputs 'voltage' and 'current' have different" in messages[0]


POWER_PIPELINE = """
version: 1
blocks:
  V: {type: waveform_source, params: {amplitude: 325}}
  I: {type: waveform_source, params: {amplitude: 10}}
  p: {type: power_block, inputs: [V, I]}
  P: {type: cycle_rms, inputs: [p], params: {frequency: 50Hz, statistic: mean}}
  out: {type: collector, inputs: [P]}
"""


def test_a_dry_run_shows_the_power_fused_into_its_cycles(tmp_path, capsys):
    """The pipeline view finds cycles_of_power; run --dry-run lists it and draws it dashed."""
    fusions = plan(pipeline_nodes(check_text(POWER_PIPELINE)))
    assert [(f.rule, f.blocks) for f in fusions] == [("cycles_of_power", ("p", "P"))]
    assert CyclesOfPower.__doc__ and "Proof" in CyclesOfPower.__doc__
    path = tmp_path / "power.yaml"
    path.write_text(POWER_PIPELINE)
    assert main(["run", "--dry-run", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("chain optimisation:\n  cycles_of_power: P multiplies V and I itself and sums "
            "each cycle of the product (p no longer runs)") in out
    assert 'label = "fused: cycles_of_power"; style = dashed;\n      "p"; "P";' in out


# pointwise_of_cycles: efficiency_block(cycle_rms(...), cycle_rms(...)) takes their rows directly.

def _efficiency_of_cycles(channels, optimised, maxsize=None, **params):
    clock = Clock()
    graph = Graph(clock)
    v_out, i_out, v_in, i_in = (
        array_source(chunks, kind="real", graph=graph, meta={"units": units}, name=name)
        for chunks, units, name in zip(channels, "AVAV", ["v_out", "i_out", "v_in", "i_in"]))
    p_out = cycle_rms(power_block(v_out, i_out), name="p_out", **params)
    p_in = cycle_rms(power_block(v_in, i_in), name="p_in", **params)
    efficiency = efficiency_block(p_out, p_in, maxsize=maxsize)
    sink = collector(efficiency)
    fusions = optimise(graph) if optimised else []
    failure = run_clock(clock, graph)
    return sink.chunks, fusions, failure, (p_out, p_in, efficiency)


@given(st.lists(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=8),
                min_size=4, max_size=4),
       st.booleans(), st.sampled_from(["rms", "mean"]), st.sampled_from(KPI_RATES[:3]),
       st.integers(min_value=0, max_value=3000), st.sampled_from([0, 7_000_000]),
       st.sampled_from([None, 1, 2]), st.integers(min_value=0, max_value=3))
@settings(max_examples=60, deadline=None)
def test_an_efficiency_fused_with_its_cycles_equals_the_unfused_chain(
        cuts, alike, statistic, rate, gap_at, gap_ns, maxsize, late):
    """efficiency_block of two cycle_rms equals its fused form bit for bit, failures included: channels cut alike or apart, late starts, gaps, small bounds."""
    count = 3000 if rate > 1e3 else 40
    gap_at = min(gap_at, count) if rate > 1e3 else min(gap_at // 75, count)
    cuts = [cuts[0]] * 4 if alike else cuts
    channels = [_timed_pieces(_mains(count, rate, phase, amplitude, seed), rate, pieces,
                              gap_at, gap_ns)
                for phase, amplitude, seed, pieces in zip([0.3, -0.1, 0.3, -0.2], [48, 60, 325, 10],
                                                          range(4), cuts)]
    channels[3] = channels[3][late:] or channels[3]  # I_in starts later: cut apart
    params = dict(frequency=50.0, statistic=statistic)
    expected, _, refused, plain = _efficiency_of_cycles(channels, False, maxsize, **params)
    got, fusions, failure, fused = _efficiency_of_cycles(channels, True, maxsize, **params)
    # Cut apart, the unfused chain may fail (rows of one range that differ):
    # the fused one fails alike, after the same chunks.
    assert (failure is None) == (refused is None)
    if refused is not None:
        assert str(failure.value) == str(refused.value)
    elif alike:
        assert not refused
    assert [f.rule for f in fusions] == ["cycles_of_power", "cycles_of_power",
                                         "pointwise_of_cycles"]
    assert fused[2].fed == fused[:2] and [e.chunks_in for b in fused[:2] for e in b.edges] == [0, 0]
    assert len(got) == len(expected)
    for chunk, want in zip(got, expected):
        assert chunk.data.tobytes() == want.data.tobytes() and chunk.data.dtype == want.data.dtype
        assert_array_equal(chunk.times, want.times)
        assert (chunk.start, chunk.end, chunk.seq, chunk.meta) == (want.start, want.end,
                                                                   want.seq, want.meta)
    for block, unfused in zip(fused, plain):
        assert block.outputs["main"].next_seq == unfused.outputs["main"].next_seq
        assert block.outputs["main"].rows == unfused.outputs["main"].rows
    assert fused[0].get_state() == plain[0].get_state()


def test_cycles_at_different_times_fail_the_fused_efficiency_as_the_unfused_one():
    """Cycles from zero crossings of two signals are at different times: fused or not, the efficiency block fails with its own message."""
    rate = 10e3
    channels = [_timed_pieces(_mains(3000, rate, phase, 10.0, seed), rate, [500], 0, 0)
                for phase, seed in zip([0.3, 0.3, 1.5, 1.5], range(4))]
    messages = []
    for optimised in (False, True):
        _, fusions, failure, _ = _efficiency_of_cycles(channels, optimised,
                                                       boundaries="zero_crossing")
        assert failure is not None and failure.check(ValueError)
        messages.append(str(failure.value))
    assert messages[0] == messages[1] and "records of 'p_out' and 'p_in' are at different" \
        in messages[0]


def test_a_pointwise_block_is_fused_only_with_cycles_nobody_else_reads(graph):
    """pointwise_of_cycles needs every input a cycle_rms read by it alone, over lossless edges; a formula of three cycles is fused too."""
    sources = [array_source([np.ones(100, np.float32)], kind="real", graph=graph)
               for _ in range(3)]
    a, b, c = (cycle_rms(source) for source in sources)
    collector(formula_block("a + b * c", a=a, b=b, c=c))
    shared = cycle_rms(sources[0])
    collector(efficiency_block(shared, cycle_rms(sources[1])))
    collector(shared)
    collector(efficiency_block(cycle_rms(sources[2]), cycle_rms(sources[0]), policy="latest"))
    fusions = [f for f in plan(graph_nodes(graph)) if f.rule == "pointwise_of_cycles"]
    assert [f.blocks for f in fusions] == [(a.name, b.name, c.name, "formula_block")]
    assert PointwiseOfCycles.__doc__ and "Proof" in PointwiseOfCycles.__doc__


EFFICIENCY_PIPELINE = POWER_PIPELINE.replace("""  out: {type: collector, inputs: [P]}""", """\
  V2: {type: waveform_source, params: {amplitude: 48}}
  I2: {type: waveform_source, params: {amplitude: 60}}
  q: {type: power_block, inputs: [V2, I2]}
  Q: {type: cycle_rms, inputs: [q], params: {frequency: 50Hz, statistic: mean}}
  eff: {type: efficiency_block, inputs: [Q, P]}
  out: {type: collector, inputs: [eff]}""")


def test_a_dry_run_shows_the_efficiency_fused_with_its_cycles(tmp_path, capsys):
    """run --dry-run lists pointwise_of_cycles after the two cycles_of_power and draws it dashed."""
    path = tmp_path / "efficiency.yaml"
    path.write_text(EFFICIENCY_PIPELINE)
    assert main(["run", "--dry-run", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("  pointwise_of_cycles: eff takes the rows of Q and P directly, without records "
            "chunks between them") in out
    assert 'label = "fused: pointwise_of_cycles"; style = dashed;\n      "Q"; "P"; "eff";' in out


def test_a_fused_pointwise_block_holds_the_rows_that_wait_for_the_other_input():
    """Fused with its cycle blocks, a pointwise block counts the rows queued for the other input as held (no consistent cut then), and none once they are computed."""
    graph = Graph(Clock())
    v, i = (array_source([np.ones(1000, np.float32)], kind="real", rate=1e3, graph=graph)
            for _ in range(2))
    feeders = (cycle_rms(v, frequency=50.0), cycle_rms(i, frequency=50.0))
    efficiency = efficiency_block(*feeders)
    efficiency.fuse_cycles(feeders)
    sink = collector(efficiency)
    assert not efficiency.holding
    efficiency.take_rows(0, [0, 20_000_000], np.array([2.0, 2.0]), 0, 40_000_000, {}, 0)
    assert efficiency.holding
    efficiency.take_rows(1, [0, 20_000_000], np.array([4.0, 4.0]), 0, 40_000_000, {}, 0)
    assert not efficiency.holding
    assert_array_equal(sink.data(), [50.0, 50.0])
