"""
One rule of contiguity at any rate (:func:`pyrf_blocks.timebase.continues`):
a sampled chunk that starts less than half a sample from where the last one
ended continues the stream; records continue only exactly.  At rates whose
period is a fraction of a nanosecond (48e3/7 Sa/s, 3 MSa/s, 1e9/3 Sa/s)
chunk times are rounded to the nanosecond: chains with multi-input blocks
(the synchroniser, pointwise KPIs, the SigMF recorder) and the blocks that
spot gaps (FFT, decimation, cycles, windows) give the same output however
their inputs are cut, with no spurious gap, annotation or capture, and a
real gap (a sample missing) is still reported.
"""

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import (Graph, cycle_rms, decimate_block, fft_block, moving_max, power_block,
                         record_channels, window_block)
from pyrf_blocks.chunk import Chunk
from pyrf_blocks.sync import Synchronizer, concat_chunks
from pyrf_blocks.testing import array_source, recording_sink, run_clock, split_array
from pyrf_blocks.timebase import sample_time

#: Periods of 145 833.3 ns, 333.3 ns and 3.0000000003 ns.
RATES = [48e3 / 7, 3e6, 1e9 / 3]
ORIGIN = 1_763_800_000_123_456_789
SAMPLES = 3000
#: Samples per cycle of cycle_rms (a cycle's frequency is rate / CYCLE).
CYCLE = 375.5
rates = st.sampled_from(RATES)
cuts = st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=12)


def sampled_chunks(samples, cut, rate, first=0, skip=None, origin=ORIGIN):
    """
    ``samples`` cut after the given counts into chunks timed from ``origin``
    (each time rounded once, as a source does), the first of them sample
    ``first`` after it; ``skip``: a sample index left out, a real gap of
    one sample.
    """
    def timed(begin, part):
        return Chunk("real", part, sample_time(origin, begin, rate),
                     sample_time(origin, begin + len(part), rate), rate, meta={"units": "V"})

    chunks, offset = [], first
    for piece in split_array(samples, cut):
        first = offset
        offset += len(piece)
        if skip is not None and first <= skip < offset:
            before, after = piece[:skip - first], piece[skip - first + 1:]
            chunks.extend(timed(begin, part) for begin, part in ((first, before), (skip + 1, after))
                          if len(part))
        else:
            chunks.append(timed(first, piece))
    return chunks


def window_ns(rate):
    """
    Windows of some 41 samples, one nanosecond longer: at 1e9/3 Sa/s (3 ns
    a sample, from an origin of 1 modulo 3 ns) every third boundary then
    falls on a sample, which a nanosecond of difference would move to the
    window before.
    """
    return f"{round(41e9 / rate) + 1}ns"


def signals(rate):
    """A voltage and a current: two tones and noise, float64."""
    t = np.arange(SAMPLES) / rate
    rng = np.random.default_rng(7)
    volts = 325 * np.sin(2 * np.pi * rate / 97.3 * t) + rng.standard_normal(SAMPLES)
    amps = 10 * np.sin(2 * np.pi * rate / 97.3 * t - 0.3) + 2
    return volts, amps


# The synchroniser, the root: pieces that tile time.


@given(rates, st.lists(cuts, min_size=3, max_size=3), st.randoms(use_true_random=False),
       st.lists(st.integers(min_value=0, max_value=300), min_size=3, max_size=3))
@settings(max_examples=200, deadline=None)
def test_the_synchroniser_hands_out_pieces_that_tile_time_at_a_period_of_fractional_ns(
        rate, own_cuts, random, late):
    """Three inputs of one rate, each cut its own way, starting a few samples apart and arriving in any order: each group's pieces cover one range on the origin's grid, groups follow each other exactly from the latest start, no sample lost or moved."""
    data = [np.arange(SAMPLES, dtype=np.float64) + SAMPLES * k for k in range(3)]
    streams = [sampled_chunks(samples[skip:], cut, rate, first=skip)
               for samples, cut, skip in zip(data, own_cuts, late)]
    order = [index for index, chunks in enumerate(streams) for _ in chunks]
    random.shuffle(order)
    sync, groups, next_chunk = Synchronizer(3), [], [0, 0, 0]
    for index in order:
        groups += sync.add(index, streams[index][next_chunk[index]])
        next_chunk[index] += 1
    first = max(late)
    assert sync.unaligned_rows == sum(first - skip for skip in late)
    done = first
    for group in groups:
        rows = len(group[0])
        assert [len(piece) for piece in group] == [rows] * 3
        assert {(piece.start, piece.end) for piece in group} == {
            (sample_time(ORIGIN, done, rate), sample_time(ORIGIN, done + rows, rate))}
        done += rows
    assert done == SAMPLES
    for index, samples in enumerate(data):
        joined = concat_chunks([group[index] for group in groups])  # (refuses a gap)
        assert_array_equal(joined.data, samples[first:])


# Chains with multi-input blocks.


def run_chain(rate, own_cuts, skip=None):
    """
    V·I through the synchroniser (power_block), then FFT, decimation,
    cycles and windows of the power; the sinks (by name).  ``skip``: a
    sample left out of V and I, a real gap (decimation is then left out:
    the filter's tail it flushes at a gap is stamped up to ``factor - 1``
    input samples past the gap's start, an overlap of its own).
    """
    clock = Clock()
    graph = Graph(clock)
    volts, amps = signals(rate)
    v = array_source(sampled_chunks(volts, own_cuts[0], rate, skip=skip), kind="real",
                     graph=graph)
    i = array_source(sampled_chunks(amps, own_cuts[1], rate, skip=skip), kind="real",
                     graph=graph)
    power = power_block(v, i)
    sinks = {
        "fft": recording_sink(fft_block(power, size=16, window="hann")),
        "cycles": recording_sink(cycle_rms(power, rate / CYCLE, statistic="mean")),
        "windows": recording_sink(window_block(power, every=window_ns(rate),
                                               stats=("count", "mean"))),
    }
    if skip is None:
        sinks["decimate"] = recording_sink(decimate_block(power, factor=3))
    assert run_clock(clock, graph) is None
    for sink in sinks.values():
        assert sink.problems == []
    return sinks


def joined(sink):
    """The times and rows of everything a sink received."""
    chunks = sink.chunks
    if chunks[0].times is not None:
        return (np.concatenate([c.times for c in chunks]),
                np.concatenate([c.data for c in chunks]))
    return (np.array([(c.start, c.end) for c in chunks]).ravel(),
            np.concatenate([c.data for c in chunks]))


def assert_same_outputs(one, other):
    for name in one:
        (times, rows), (other_times, other_rows) = joined(one[name]), joined(other[name])
        if name in ("fft", "decimate", "moving"):
            # Sampled outputs may be cut differently: their first and last
            # times, and every row, must agree.
            assert (times[0], times[-1]) == (other_times[0], other_times[-1]), name
        else:
            assert_array_equal(times, other_times, err_msg=name)
        if rows.dtype.names:
            for field in rows.dtype.names:
                assert_allclose(rows[field], other_rows[field], rtol=1e-9, err_msg=name)
        else:
            assert_allclose(rows, other_rows, rtol=1e-6, atol=1e-9, err_msg=name)


@given(rates, st.lists(cuts, min_size=2, max_size=2))
@settings(max_examples=30, deadline=None)
def test_a_chain_after_the_synchroniser_does_not_depend_on_chunking_at_fractional_ns(
        rate, own_cuts):
    """V·I → FFT, decimation, cycles and windows: the same frames, samples, cycles and windows with V and I cut each its own way as in one chunk, at 48e3/7, 3e6 and 1e9/3 Sa/s."""
    whole = run_chain(rate, [[SAMPLES], [SAMPLES]])
    cut = run_chain(rate, own_cuts)
    assert_same_outputs(whole, cut)
    fft = whole["fft"]
    assert sum(len(c.data) for c in fft.chunks) == SAMPLES // 16  # no frame restarted
    assert len(joined(whole["cycles"])[0]) == whole_cycles(rate)


def whole_cycles(rate):
    """Cycles of the nominal grid (from device time 0) inside the stream."""
    cycle_ns = Fraction(10**9) / Fraction(rate / CYCLE)  # (exactly, of the float)
    first = math.ceil(ORIGIN / cycle_ns)
    last = math.floor(sample_time(ORIGIN, SAMPLES, rate) / cycle_ns)
    return last - first


@pytest.mark.parametrize("rate", RATES)
def test_a_sample_missing_is_still_a_gap_after_the_synchroniser(rate):
    """A sample left out of V and I (a gap of one period, beyond half a sample) restarts the FFT's frames and drops the cycle it interrupts, however the inputs are cut."""
    skip = 1000
    plain = run_chain(rate, [[SAMPLES], [SAMPLES]])
    whole = run_chain(rate, [[SAMPLES], [SAMPLES]], skip=skip)
    cut = run_chain(rate, [[333, 700, 5], [1200]], skip=skip)
    assert_same_outputs(whole, cut)
    # Frames restart at the sample after the gap.
    frames = sum(len(c.data) for c in whole["fft"].chunks)
    assert frames == skip // 16 + (SAMPLES - skip - 1) // 16
    after = [c for c in whole["fft"].chunks if c.start >= sample_time(ORIGIN, skip, rate)]
    assert after[0].start == sample_time(ORIGIN, skip + 1, rate)
    # One cycle fewer: the one with the missing sample.
    assert len(joined(whole["cycles"])[1]) == len(joined(plain["cycles"])[1]) - 1


# The SigMF recorder of several channels.


def record(tmp_path, name, rate, own_cuts, skip=None):
    clock = Clock()
    graph = Graph(clock)
    volts, amps = signals(rate)
    channels = [array_source(sampled_chunks(samples, cut, rate, skip=skip), kind="real",
                             graph=graph, name=label)
                for samples, cut, label in zip((volts, amps), own_cuts, "VI")]
    record_channels(*channels, path=tmp_path / name, datatype="rf32_le")
    assert run_clock(clock, graph) is None
    meta = json.loads((tmp_path / f"{name}.sigmf-meta").read_text())
    data = np.fromfile(tmp_path / f"{name}.sigmf-data", np.float32).reshape(-1, 2)
    return meta, data


@given(rates, st.lists(cuts, min_size=2, max_size=2))
@settings(max_examples=30, deadline=None)
def test_channels_recorded_cut_apart_make_one_capture_without_gaps_at_fractional_ns(
        tmp_path_factory, rate, own_cuts):
    """V and I cut each its own way are recorded as cut alike: one capture, no gap annotated, the same samples."""
    tmp_path = tmp_path_factory.mktemp("sigmf")
    meta, data = record(tmp_path, "whole", rate, [[SAMPLES], [SAMPLES]])
    cut_meta, cut_data = record(tmp_path, "cut", rate, own_cuts)
    assert len(meta["captures"]) == 1 and meta["annotations"] == []
    assert cut_meta["captures"] == meta["captures"]
    assert cut_meta["annotations"] == []
    assert_array_equal(cut_data, data)
    volts, amps = signals(rate)
    assert_allclose(data, np.stack([volts, amps], axis=1).astype(np.float32))


@pytest.mark.parametrize("rate", RATES)
def test_a_sample_missing_is_annotated_and_starts_a_capture(tmp_path, rate):
    """A sample left out of both channels is a gap: a capture starts after it, annotated with the time missing."""
    skip = 1000
    meta, data = record(tmp_path, "gap", rate, [[333, 700, 5], [1200]], skip=skip)
    assert [c["core:sample_start"] for c in meta["captures"]] == [0, skip]
    missing = sample_time(ORIGIN, skip + 1, rate) - sample_time(ORIGIN, skip, rate)
    assert meta["annotations"] == [{
        "core:sample_start": skip, "core:sample_count": 0, "core:label": "gap",
        "core:comment": f"{missing} ns of device time missing before this sample"}]
    assert len(data) == SAMPLES - 1


# Each block that spots gaps, fed chunks a rounding apart.


def jittered(chunks, shifts):
    """
    ``chunks`` with each start after the first moved by a shift (ns) from
    where the chunk before ended: a rounding apart, or a gap.
    """
    moved = [chunks[0]]
    for chunk, shift in zip(chunks[1:], shifts):
        moved.append(chunk.replace(start=chunk.start + shift))
    return moved


def run_blocks(tmp_path, name, chunks, decimate=True):
    """
    The blocks that spot gaps, each fed ``chunks``: their outputs, and the
    recording's meta.  ``decimate``: with decimation (see :func:`run_chain`).
    """
    clock = Clock()
    graph = Graph(clock)
    rate = chunks[0].rate
    source = array_source(chunks, kind="real", graph=graph)
    sinks = {
        "fft": recording_sink(fft_block(source, size=16, window="hann")),
        "cycles": recording_sink(cycle_rms(source, rate / CYCLE)),
        "windows": recording_sink(window_block(source, every=window_ns(rate),
                                               stats=("count", "mean"))),
        "moving": recording_sink(moving_max(source, over=window_ns(rate))),
    }
    if decimate:
        sinks["decimate"] = recording_sink(decimate_block(source, factor=3))
    record_channels(source, path=tmp_path / name, datatype="rf32_le")
    assert run_clock(clock, graph) is None
    for label, sink in sinks.items():
        # (A moving extreme keeps its input's chunk times, overlaps too.)
        assert sink.problems == [] or label == "moving"
    return sinks, json.loads((tmp_path / f"{name}.sigmf-meta").read_text())


@given(rates, cuts, st.lists(st.sampled_from([-1, 0, 1]), min_size=12, max_size=12))
@settings(max_examples=30, deadline=None)
def test_blocks_read_a_start_a_rounding_apart_as_continuing_the_stream(
        tmp_path_factory, rate, cut, shifts):
    """FFT, decimation, cycles, windows, moving extremes and the recorder give the same output when each chunk starts a nanosecond before or after where the last ended as when it starts there exactly: no frame restarted, no cycle dropped, no capture or gap annotated."""
    tmp_path = tmp_path_factory.mktemp("jitter")
    volts, _ = signals(rate)
    chunks = sampled_chunks(volts, cut, rate)
    exact, exact_meta = run_blocks(tmp_path, "exact", chunks)
    moved, moved_meta = run_blocks(tmp_path, "moved", jittered(chunks, shifts))
    assert_same_outputs(exact, moved)
    assert moved_meta["captures"] == exact_meta["captures"] and len(exact_meta["captures"]) == 1
    assert moved_meta["annotations"] == []
    assert sum(len(c.data) for c in moved["fft"].chunks) == SAMPLES // 16
    assert len(joined(moved["cycles"])[0]) == whole_cycles(rate)


@pytest.mark.parametrize("rate", RATES)
def test_blocks_read_a_start_over_half_a_sample_away_as_a_gap(tmp_path, rate):
    """A chunk that starts more than half a sample after where the last ended is a gap for each of them: the FFT restarts its frames, the cycle across it is dropped, the recorder starts a capture and annotates it."""
    volts, _ = signals(rate)
    chunks = sampled_chunks(volts, [1000], rate)
    half = math.floor(5e8 / rate) + 1  # the least offset beyond half a sample, ns
    sinks, meta = run_blocks(tmp_path, "gap", jittered(chunks, [half]), decimate=False)
    assert sum(len(c.data) for c in sinks["fft"].chunks) == 1000 // 16 + 2000 // 16
    assert len(joined(sinks["cycles"])[0]) == whole_cycles(rate) - 1
    assert [c["core:sample_start"] for c in meta["captures"]] == [0, 1000]
    assert meta["annotations"][0]["core:comment"] == (
        f"{half} ns of device time missing before this sample")
