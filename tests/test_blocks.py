"""
Tests for the blocks' numerics against analytic signals, their interfaces,
and their independence from input chunking.
"""

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import (
    Graph, average_block, calibrate_block, collector, decimate_block, fft_block,
    max_hold, min_hold, peak_search, power_block, printer, simulated_instrument,
    thd_block,
)
from pyrf_blocks.interfaces import (
    KIND_INTERFACES, IBlock, IPushProducer, ISink, IStateful,
)
from pyrf_blocks.numerics.signals import amplitude_of, tone_samples
from pyrf_blocks.registry import block_types
from pyrf_blocks.testing import array_source, assert_provides, run_clock, split_array

RATE = 1.024e6          # 1 kHz bins for a 1024-point FFT
CENTER = 100e6


def run_chain(arrays, build, kind="iq", rate=RATE, meta=None):
    """Play `arrays` through `build(source)` into a collector; return its chunks."""
    clock = Clock()
    graph = Graph(clock)
    meta = {"center_frequency": CENTER, "reference_level": 0.0} if meta is None else meta
    source = array_source(arrays, kind=kind, rate=rate, graph=graph, meta=meta)
    sink = collector(build(source))
    assert run_clock(clock, graph) is None
    return sink.chunks


def tone(count, frequency, level_dbm, reference=0.0, complex_output=True, rate=RATE):
    return tone_samples(0, count, rate, frequency, amplitude_of(level_dbm, reference),
                        complex_output=complex_output)


# Interfaces.

def build_every_block(graph):
    iq = simulated_instrument(graph=graph)
    real = array_source([np.zeros(8, np.float32)], kind="real", graph=graph)
    spectrum = fft_block(iq)
    inputs = {"simulated_instrument": (), "fft_block": (iq,), "calibrate_block": (spectrum,),
              "decimate_block": (iq,), "average_block": (spectrum,), "max_hold": (spectrum,),
              "min_hold": (spectrum,), "peak_search": (spectrum,), "thd_block": (real,),
              "power_block": (real, real), "collector": (iq,), "printer": (iq,)}
    blocks = []
    for type_name, factory in block_types().items():
        if type_name not in inputs:
            continue
        kwargs = {"graph": graph} if not inputs[type_name] else {}
        blocks.append(factory(*inputs[type_name], **kwargs))
    return blocks


def test_every_registered_block_verifies_against_its_interfaces():
    """verifyObject passes for IBlock and each interface a built-in block declares."""
    blocks = build_every_block(Graph(Clock()))
    assert len(blocks) == 12
    for block in blocks:
        assert_provides(IBlock, block)
        if block.kind is not None:
            assert_provides(KIND_INTERFACES[block.kind], block)
            assert_provides(IPushProducer, block)
        else:
            assert_provides(ISink, block)
        if IStateful.providedBy(block):
            assert_provides(IStateful, block)


# FFT and calibration.

@pytest.mark.parametrize("window", ["hann", "hamming", "blackmanharris", "flattop",
                                    "boxcar", ("kaiser", 8.0)])
@pytest.mark.parametrize("level", [-20.0, -63.5])
def test_on_bin_tone_reads_its_level_and_frequency(window, level):
    """An on-bin tone of known power reads within ±0.1 dB at exactly its frequency."""
    offset = 123e3                         # bin 123 above the centre
    samples = tone(8 * 1024, offset, level, reference=-10.0)
    chunks = run_chain([samples], lambda s: calibrate_block(fft_block(s, window=window)),
                       meta={"center_frequency": CENTER, "reference_level": -10.0})
    spectrum = chunks[0].data
    meta = chunks[0].meta
    assert spectrum.shape == (8, 1024) and meta["units"] == "dBm"
    peak = spectrum.argmax(axis=1)
    frequencies = meta["start_frequency"] + meta["bin_width"] * peak
    assert_array_equal(frequencies, CENTER + offset)
    assert_allclose(spectrum.max(axis=1), level, atol=0.1)


def test_a_window_with_parameters_is_written_alike_in_python_and_yaml():
    """window="kaiser:8.6" (Python, a pipeline file, --window) is the window ("kaiser", 8.6)."""
    from pyrf_blocks.pipeline import build, check_text
    samples = tone(4 * 256, 7e3, -30.0)
    as_tuple = run_chain([samples], lambda s: fft_block(s, size=256, window=("kaiser", 8.6)))
    as_text = run_chain([samples], lambda s: fft_block(s, size=256, window="kaiser:8.6"))
    assert_array_equal(as_text[0].data, as_tuple[0].data)
    assert as_text[0].meta["window"] == "kaiser:8.6"
    pipeline = check_text("version: 1\nblocks:\n  wsa: {type: simulated_instrument}\n"
                          "  fft: {type: fft_block, inputs: [wsa], "
                          "params: {size: 256, window: 'kaiser:8.6'}}\n"
                          "  out: {type: collector, inputs: [fft]}\n")
    graph = build(pipeline, Graph(Clock()))
    assert graph.blocks["fft"].window == "kaiser:8.6"


def test_off_bin_tone_is_found_within_one_bin():
    """A tone between bins peaks within one bin of its frequency."""
    offset = -250.37e3
    chunks = run_chain([tone(4096, offset, -30.0)],
                       lambda s: calibrate_block(fft_block(s, window="flattop")))
    meta = chunks[0].meta
    frequency = meta["start_frequency"] + meta["bin_width"] * chunks[0].data[0].argmax()
    assert abs(frequency - (CENTER + offset)) <= meta["bin_width"]
    assert chunks[0].data[0].max() == pytest.approx(-30.0, abs=0.1)  # flattop: flat top


def test_frequency_axis_spans_the_sample_rate_around_the_centre():
    """IQ spectra run from centre - rate/2 in steps of rate/size."""
    chunks = run_chain([tone(1024, 0, -10)], lambda s: fft_block(s, size=1024))
    meta = chunks[0].meta
    assert meta["start_frequency"] == CENTER - RATE / 2
    assert meta["bin_width"] == RATE / 1024
    assert chunks[0].data[0].argmax() == 512          # DC is the middle bin


def test_odd_size_fft_is_shifted_too():
    """An odd-length IQ FFT puts DC in the middle bin and the axis follows."""
    chunks = run_chain([tone(999, 0, -10)], lambda s: fft_block(s, size=999))
    meta = chunks[0].meta
    middle = chunks[0].data[0].argmax()
    assert middle == 499
    assert meta["start_frequency"] + middle * meta["bin_width"] == pytest.approx(CENTER)


def test_impulse_gives_a_flat_spectrum():
    """A unit impulse has the same power in every bin (rectangular window)."""
    impulse = np.zeros(256, np.complex64)
    impulse[0] = 1
    chunks = run_chain([impulse], lambda s: fft_block(s, size=256, window="boxcar"))
    assert_allclose(chunks[0].data[0], 1.0, rtol=1e-6)


def test_real_cosine_reads_its_amplitude_on_a_one_sided_axis():
    """A real cosine of amplitude A reads reference + 20·log10(A) dBm, axis from 0 Hz."""
    rate = 48e3
    samples = tone(4800, 3000.0, -6.0, complex_output=False, rate=rate)
    chunks = run_chain([samples], lambda s: calibrate_block(fft_block(s, size=480)),
                       kind="real", rate=rate, meta={"reference_level": 0.0})
    meta = chunks[0].meta
    assert chunks[0].data.shape == (10, 241)
    assert meta["start_frequency"] == 0.0 and meta["bin_width"] == 100.0
    assert_array_equal(chunks[0].data.argmax(axis=1), 30)
    assert_allclose(chunks[0].data.max(axis=1), -6.0, atol=0.05)


def test_calibrate_refuses_already_calibrated_input():
    """Calibrating twice is an error naming the block and the units it got."""
    clock = Clock()
    graph = Graph(clock)
    source = array_source([tone(1024, 0, -10)], graph=graph)
    collector(calibrate_block(calibrate_block(fft_block(source)), name="twice"))
    outcome = run_clock(clock, graph)
    assert outcome.check(ValueError)
    assert "calibrate_block 'twice'" in str(outcome.value) and "'dBm'" in str(outcome.value)


def test_calibrate_reference_override_and_offset():
    """An explicit reference level and an offset shift every bin by the given dB."""
    chunks = run_chain([tone(1024, 0, -10)],
                       lambda s: calibrate_block(fft_block(s), reference_level=5.0, offset=-1.5))
    assert chunks[0].data[0].max() == pytest.approx(-10 + 5 - 1.5, abs=0.01)


def test_fft_parameters_are_checked():
    """Bad size, overlap or window raise ValueError naming the value."""
    graph = Graph(Clock())
    source = array_source([np.zeros(4, np.complex64)], graph=graph)
    with pytest.raises(ValueError, match="size"):
        fft_block(source, size=1)
    with pytest.raises(ValueError, match="fft_block: size: must be at least 8, got 3"):
        fft_block(source, size=3)
    with pytest.raises(ValueError, match=r"window 'kaiser' needs its parameter\(s\) after a "
                                         "colon, as in 'kaiser:8.6'"):
        fft_block(source, window="kaiser")
    with pytest.raises(ValueError, match="the parameters after 'kaiser' must be numbers"):
        fft_block(source, window="kaiser:wide")
    with pytest.raises(ValueError, match="overlap"):
        fft_block(source, size=8, overlap=8)
    with pytest.raises(ValueError, match="unknown window 'nosuch'"):
        fft_block(source, window="nosuch")


@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=12),
       st.sampled_from([0, 128, 300]))
@settings(max_examples=40, deadline=None)
def test_fft_output_does_not_depend_on_chunking(cuts, overlap):
    """Spectra and their timestamps are the same however the samples were cut."""
    samples = (tone(3000, 17e3, -10) + tone(3000, -200e3, -40)).astype(np.complex64)
    build = lambda s: fft_block(s, size=512, overlap=overlap)  # noqa: E731
    whole = run_chain([samples], build)
    cut = run_chain(split_array(samples, cuts), build)
    assert_allclose(np.concatenate([c.data for c in cut]),
                    np.concatenate([c.data for c in whole]), rtol=1e-5, atol=1e-6)
    hop = 512 - overlap
    starts = [round(sum(len(c.data) for c in cut[:k]) * hop * 1e9 / RATE) for k in range(len(cut))]
    assert [c.start for c in cut] == starts
    frame_times = lambda chunks: [c.time_of(i) for c in chunks for i in range(len(c.data))]  # noqa: E731
    assert_allclose(frame_times(cut), frame_times(whole), atol=1)


def test_overlapping_frames_are_stamped_with_their_first_sample():
    """Frames with overlap start every hop samples; each carries its first sample's time."""
    chunks = run_chain([np.zeros(2048, np.complex64)], lambda s: fft_block(s, size=512, overlap=256))
    chunk = chunks[0]
    assert len(chunk.data) == 7
    assert chunk.rate == RATE / 256
    assert [chunk.time_of(i) for i in range(7)] == [round(i * 256 * 1e9 / RATE) for i in range(7)]


# Spectrum blocks.

def spectra_source(rows, graph, units="dBm"):
    return array_source([np.asarray(rows, np.float32)], kind="spectrum", rate=10.0, graph=graph,
                        meta={"units": units, "start_frequency": 1e6, "bin_width": 1e3})


def run_spectra(rows, build, units="dBm"):
    clock = Clock()
    graph = Graph(clock)
    sink = collector(build(spectra_source(rows, graph, units)))
    assert run_clock(clock, graph) is None
    return sink.chunks


def test_average_combines_dbm_as_power():
    """Averaging -10 dBm and -20 dBm gives 10·log10((0.1 + 0.01) / 2) dBm."""
    chunks = run_spectra([[-10.0, -30.0], [-20.0, -30.0]], lambda s: average_block(s, count=2))
    assert_allclose(chunks[0].data, [[10 * np.log10(0.055), -30.0]], atol=1e-4)
    assert chunks[0].rate == 5.0 and chunks[0].end == 200_000_000


@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=10))
@settings(max_examples=30, deadline=None)
def test_average_does_not_depend_on_chunking(cuts):
    """Averages over N frames are the same however the frames were cut."""
    rows = np.random.default_rng(3).uniform(-90, -10, (40, 5)).astype(np.float32)
    clock = Clock()
    graph = Graph(clock)
    source = array_source(split_array(rows, cuts), kind="spectrum", rate=10.0, graph=graph,
                          meta={"units": "dBm"})
    sink = collector(average_block(source, count=4))
    run_clock(clock, graph)
    expected = 10 * np.log10((10 ** (rows / 10)).reshape(10, 4, 5).mean(axis=1))
    assert_allclose(sink.data(), expected, atol=1e-4)


def run_spectra_cut(rows, cuts, build):
    clock = Clock()
    graph = Graph(clock)
    source = array_source(split_array(np.asarray(rows, np.float32), cuts), kind="spectrum",
                          rate=10.0, graph=graph, meta={"units": "dBm"})
    sink = collector(build(source))
    assert run_clock(clock, graph) is None
    return sink.chunks


def test_max_and_min_hold_are_running_extremes():
    """Each chunk yields the per-bin extreme so far, stamped with the chunk's last frame."""
    rows = [[1.0, 5.0], [3.0, 2.0], [0.0, 4.0], [-1.0, 9.0]]
    held = run_spectra_cut(rows, [2, 2], max_hold)
    assert_array_equal(np.concatenate([c.data for c in held]), [[3, 5], [3, 9]])
    assert [(c.start, c.end) for c in held] == [(100_000_000, 200_000_000),
                                                (300_000_000, 400_000_000)]
    held = run_spectra_cut(rows, [1, 2, 1], min_hold)
    assert_array_equal(np.concatenate([c.data for c in held]), [[1, 5], [0, 2], [-1, 2]])


@given(st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=8))
@settings(max_examples=30, deadline=None)
def test_hold_values_do_not_depend_on_chunking(cuts):
    """The hold reported at any frame time is the same however the frames were cut."""
    rows = np.random.default_rng(5).uniform(-90, -10, (30, 4)).astype(np.float32)
    expected = np.maximum.accumulate(rows, axis=0)
    for chunk in run_spectra_cut(rows, cuts, max_hold):
        frame = round(chunk.start * 10 / 1e9)
        assert_array_equal(chunk.data[0], expected[frame])


def test_hold_state_round_trips():
    """A hold's state restored into a new block continues the same hold."""
    graph = Graph(Clock())
    hold = max_hold(spectra_source([[0.0]], graph))
    hold._hold = np.array([7.0, 9.0], np.float32)
    other = max_hold(spectra_source([[0.0]], graph))
    other.set_state(hold.get_state())
    assert_array_equal(other._hold, [7.0, 9.0])


def run_average_from(rows, start_row, count, state=None):
    """Average `rows`, which begin at frame `start_row`, from `state`; return the chunks."""
    clock = Clock()
    graph = Graph(clock)
    source = array_source([np.asarray(rows, np.float32)], kind="spectrum", rate=10.0,
                          start_time=start_row * 100_000_000, graph=graph,
                          meta={"units": "dBm"})
    block = average_block(source, count=count)
    sink = collector(block)
    if state is not None:
        block.set_state(state)
    assert run_clock(clock, graph) is None
    return block, sink.chunks


def test_average_state_survives_msgpack_and_completes_the_same_means():
    """An average's state, through msgpack into a new block, gives the same means and times."""
    rows = np.random.default_rng(9).uniform(-90, -10, (11, 3)).astype(np.float32)
    _, whole = run_average_from(rows, 0, 4)
    first, head = run_average_from(rows[:6], 0, 4)
    state = msgpack.unpackb(msgpack.packb(first.get_state()))
    _, tail = run_average_from(rows[6:], 6, 4, state)
    assert_allclose(np.concatenate([c.data for c in head + tail]), whole[0].data, atol=1e-5)
    assert [(c.start, c.end) for c in head + tail] == [(0, 400_000_000),
                                                       (400_000_000, 800_000_000)]


@given(st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=10))
@settings(max_examples=30, deadline=None)
def test_average_times_do_not_depend_on_chunking(cuts):
    """Each averaged chunk is stamped from its first frame to the end of its last one."""
    rows = np.zeros((30, 2), np.float32)
    emitted = 0
    for chunk in run_spectra_cut(rows, cuts, lambda s: average_block(s, count=4)):
        assert chunk.start == emitted * 4 * 100_000_000
        emitted += len(chunk.data)
        assert chunk.end == emitted * 4 * 100_000_000 and chunk.rate == 2.5
    assert emitted == 7


def test_clear_starts_a_hold_afresh():
    """After clear() a hold reports the extreme of the frames since, not before."""
    clock = Clock()
    graph = Graph(clock)
    source = array_source([np.array([[9.0, 9.0]], np.float32), np.array([[1.0, 2.0]], np.float32)],
                          kind="spectrum", rate=10.0, graph=graph, meta={"units": "dBm"},
                          paced=True)
    hold = max_hold(source)
    sink = collector(hold)
    clock.advance(0)
    assert_array_equal(sink.chunks[-1].data, [[9.0, 9.0]])
    hold.clear()
    assert hold.get_state() == {"version": 1, "hold": None}
    assert run_clock(clock, graph) is None
    assert_array_equal(sink.chunks[-1].data, [[1.0, 2.0]])


def test_peak_search_finds_strongest_peaks_with_frequencies():
    """Peaks come strongest first with their bin frequencies; missing ones are NaN."""
    row = np.full(50, -100.0)
    row[[10, 30, 40]] = [-20.0, -5.0, -50.0]
    chunks = run_spectra([row], lambda s: peak_search(s, count=4))
    table = chunks[0].data[0]
    assert_array_equal(table[:3], [[1.030e6, -5.0], [1.010e6, -20.0], [1.040e6, -50.0]])
    assert np.isnan(table[3]).all()


# Measurements.

@pytest.mark.parametrize("complex_input", [False, True])
def test_thd_of_known_harmonics(complex_input):
    """3 % third and 4 % fifth harmonics read THD 5.00 % ± 0.05 %."""
    rate, fundamental, count = 48e3, 1002.7, 3 * 16384
    signal = (tone_samples(0, count, rate, fundamental, 1.0, complex_output=complex_input)
              + tone_samples(0, count, rate, 3 * fundamental, 0.03, 1.0, complex_input)
              + tone_samples(0, count, rate, 5 * fundamental, 0.04, 2.0, complex_input))
    kind = "iq" if complex_input else "real"
    chunks = run_chain(split_array(signal, [5000] * 10), lambda s: thd_block(s, size=16384),
                       kind=kind, rate=rate, meta={})
    values = np.concatenate([c.data for c in chunks])
    assert len(values) == 3
    assert_allclose(values, 5.0, atol=0.05)
    assert chunks[0].meta["units"] == "%"
    assert chunks[0].start == 0


def test_power_block_multiplies_voltage_and_current():
    """Instantaneous power is v·i in watts."""
    clock = Clock()
    graph = Graph(clock)
    v = array_source([np.array([1.0, 2.0, 3.0], np.float32)], kind="real", graph=graph)
    i = array_source([np.array([2.0, 2.0, -1.0], np.float32)], kind="real", graph=graph)
    sink = collector(power_block(v, i))
    run_clock(clock, graph)
    assert_array_equal(sink.data(), [2.0, 4.0, -3.0])
    assert sink.chunks[0].meta["units"] == "W"


# Decimation.

def test_decimation_keeps_a_tone_and_stamps_the_new_rate():
    """Decimating by 4 keeps an in-band tone's frequency and level; rate and times follow."""
    count = 40960
    samples = tone(count, 50e3, -20.0)
    chunks = run_chain(split_array(samples, [4096] * 10),
                       lambda s: calibrate_block(fft_block(decimate_block(s, factor=4), size=1024)))
    meta = chunks[0].meta
    assert meta["sample_rate"] == RATE / 4 and meta["decimation"] == 4
    spectrum = np.concatenate([c.data for c in chunks])
    peak = spectrum[2:].argmax(axis=1)
    assert_array_equal(meta["start_frequency"] + peak * meta["bin_width"], CENTER + 50e3)
    assert_allclose(spectrum[2:].max(axis=1), -20.0, atol=0.1)


def test_decimated_samples_carry_the_time_of_the_sample_they_stand_for():
    """Output sample m is stamped with input sample m·factor's time, and the tone keeps its phase."""
    count = 8192
    samples = tone(count, 10e3, 0.0)
    chunks = run_chain(split_array(samples, [1000] * 9), lambda s: decimate_block(s, factor=8))
    assert chunks[0].start == 0 and chunks[0].rate == RATE / 8
    output = np.concatenate([c.data for c in chunks])
    assert len(output) == count // 8
    middle = slice(50, len(output) - 50)
    assert_allclose(output[middle], samples[::8][middle], atol=2e-3)
    for chunk in chunks:
        first_index = round(chunk.start * RATE / 1e9)
        assert first_index % 8 == 0


@given(st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=10))
@settings(max_examples=30, deadline=None)
def test_decimation_does_not_depend_on_chunking(cuts):
    """Decimated samples and timestamps are the same however the input was cut."""
    samples = tone(2500, 30e3, -3.0) + tone(2500, -300e3, -10.0)
    build = lambda s: decimate_block(s, factor=3)  # noqa: E731
    whole = run_chain([samples], build)
    cut = run_chain(split_array(samples, cuts), build)
    assert_allclose(np.concatenate([c.data for c in cut]),
                    np.concatenate([c.data for c in whole]), atol=1e-6)
    assert cut[0].start == whole[0].start and cut[-1].end == whole[-1].end


# The simulated instrument.

def test_simulated_instrument_levels_and_noise_density():
    """Tones read their set level and the noise floor its density in dBm/Hz."""
    clock = Clock()
    graph = Graph(clock)
    wsa = simulated_instrument(graph=graph, sample_rate=RATE, reference_level=-10.0,
                               tones=[(100e3, -30.0)], harmonics=[(2, -40.0)],
                               noise_floor=-130.0, seed=4)
    spectra = calibrate_block(fft_block(wsa, size=1024, window="hann"))
    sink = collector(average_block(spectra, count=64))
    while len(sink.chunks) < 2:
        clock.advance(0.016)
    graph.stop()
    spectrum = sink.chunks[1].data[0]
    meta = sink.chunks[1].meta
    frequencies = meta["start_frequency"] + meta["bin_width"] * np.arange(1024)
    assert spectrum[np.searchsorted(frequencies, 2.4e9 + 100e3)] == pytest.approx(-30.0, abs=0.2)
    harmonic = np.searchsorted(frequencies, 2.4e9 + 200e3)
    assert spectrum[harmonic] == pytest.approx(-70.0, abs=0.5)
    noise_bins = np.r_[100:300, 800:1000]
    density = 10 * np.log10(np.mean(10 ** (spectrum[noise_bins] / 10)) / meta["rbw"])
    assert density == pytest.approx(-130.0, abs=0.3)


def test_simulated_instrument_is_deterministic_and_reconfigurable():
    """The same seed gives the same samples; configure() changes the next chunk's meta."""
    def first_chunks(configure=None):
        clock = Clock()
        graph = Graph(clock)
        wsa = simulated_instrument(graph=graph, seed=11, packets_per_block=1)
        sink = collector(wsa)
        clock.advance(0)
        if configure:
            wsa.configure(**configure)
        clock.advance(0.001)
        graph.stop()
        return sink.chunks
    a, b = first_chunks(), first_chunks()
    assert_array_equal(a[0].data, b[0].data)
    changed = first_chunks({"center_frequency": 1e9})
    assert changed[0].meta["center_frequency"] == 2.4e9
    assert changed[-1].meta["center_frequency"] == 1e9
    with pytest.raises(ValueError, match="unknown setting.*colour"):
        simulated_instrument(graph=Graph(Clock())).configure(colour="red")


def test_simulated_levels_stay_within_100_db_of_full_scale():
    """A tone or harmonic more than 100 dB above the reference level is refused when made, when configured (changing nothing) and by a pipeline file's check at its line; a 400 dBm tone read +303 dBm before, a 1e30 dBm one gave no spectrum."""
    from pyrf_blocks.errors import PipelineError
    from pyrf_blocks.pipeline import check_text

    with pytest.raises(ValueError, match=r"tones: 400 dBm is 400 dB above full scale "
                                         r"\(reference_level 0 dBm\); at most 100 dB"):
        simulated_instrument(graph=Graph(Clock()), tones=[(1e6, 400.0)])
    with pytest.raises(ValueError, match="harmonics: 90 dBm is 110 dB above"):
        simulated_instrument(graph=Graph(Clock()), reference_level=-20.0,
                             tones=[(1e6, 0.0)], harmonics=[(2, 90.0)])
    wsa = simulated_instrument(graph=Graph(Clock()), tones=[(1e6, -120.0)],
                               reference_level=-50.0)
    wsa.configure(reference_level=-150.0)  # checked with the tones it keeps: 30 dB above
    with pytest.raises(ValueError, match="tones: -20 dBm is 180 dB above"):
        wsa.configure(reference_level=-200.0, tones=[(1e6, -20.0)])
    assert wsa.settings["reference_level"] == -150.0
    assert wsa.settings["tones"] == ((1e6, -120.0),)
    with pytest.raises(PipelineError, match=r":3:\d+: block 's' \(simulated_instrument\): "
                                            r"tones: 1e\+30 dBm is 1e\+30 dB above"):
        check_text("version: 1\nblocks:\n  s: {type: simulated_instrument, params: "
                   "{tones: [[1kHz, 1e30]]}}\n  c: {type: collector, inputs: [s]}\n")


def test_printer_writes_one_line_per_chunk(tmp_path):
    """The printer writes a readable line for each chunk, rate-limited by device time."""
    import io
    stream = io.StringIO()
    clock = Clock()
    graph = Graph(clock)
    source = array_source([np.array([4.25])] * 5, kind="scalar", rate=10.0, graph=graph,
                          meta={"units": "%"})
    printer(source, stream=stream, interval=0.2)
    run_clock(clock, graph)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].endswith("4.25 %")


def test_a_paced_source_keeps_device_time_from_when_it_started():
    """clock.advance(0.1) right after making the sink gives 0.1 s of data, not one chunk (the tutorial's claim)."""
    clock = Clock()
    graph = Graph(clock)
    wsa = simulated_instrument(graph=graph, sample_rate=RATE, noise_floor=None)
    sink = collector(wsa)
    clock.advance(0.1)
    graph.stop()
    last = sink.chunks[-1]
    length = last.end - last.start  # 2.1 ms
    assert 0.1e9 - length <= last.end <= 0.1e9 + length, last.end
