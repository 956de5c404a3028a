"""
waveform_source: a real mains-like source for pipeline files; analytic
samples, device time, independent of its chunk size, exported and read back.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import Graph, collector, waveform_source
from pyrf_blocks.interfaces import IRealProducer
from pyrf_blocks.numerics.thd import thd
from pyrf_blocks.pipeline import build, check_text, graph_to_yaml
from pyrf_blocks.testing import assert_provides, run_clock


def play(**params):
    graph = Graph(Clock())
    source = waveform_source(graph=graph, paced=False, name="V", **params)
    sink = collector(source)
    assert run_clock(graph.reactor, graph) is None
    return source, sink


def test_samples_are_the_analytic_waveform():
    """A cos(2πft + φ) plus harmonics and offset, timed from start_time at the rate."""
    source, sink = play(frequency=50.0, amplitude=325.0, phase=-30.0,
                        harmonics=[(3, 0.03), (5, 0.04)], offset=1.5, sample_rate=10e3,
                        samples_per_chunk=1000, count=4, start_time=7)
    assert_provides(IRealProducer, source)
    t = np.arange(4000) / 10e3
    phase = np.deg2rad(-30.0)
    expected = 1.5 + 325 * (np.cos(2 * np.pi * 50 * t + phase)
                            + 0.03 * np.cos(3 * (2 * np.pi * 50 * t + phase))
                            + 0.04 * np.cos(5 * (2 * np.pi * 50 * t + phase)))
    assert_allclose(sink.data(), expected, atol=325 * 2e-6)
    assert sink.chunks[0].start == 7 and sink.chunks[-1].end == 7 + 400_000_000
    assert_allclose(thd(sink.data()[:2000] - 1.5, 5), 5.0, rtol=1e-3)


def test_samples_do_not_depend_on_the_chunk_size():
    """The same samples (to float32 rounding) and times come out in chunks of 1000 or 250."""
    _, big = play(samples_per_chunk=1000, count=2, harmonics=[(3, 0.1)])
    _, small = play(samples_per_chunk=250, count=8, harmonics=[(3, 0.1)])
    assert_allclose(big.data(), small.data(), atol=1e-6)
    assert_array_equal([c.start for c in big.chunks], [c.start for c in small.chunks[::4]])


def test_exports_and_reads_back():
    """graph_to_yaml writes its parameters with units; the file builds the same source."""
    graph = Graph(Clock())
    collector(waveform_source(frequency=60.0, amplitude=10.0, harmonics=[(3, 0.05)],
                              units="A", graph=graph, name="I"))
    text = graph_to_yaml(graph)
    assert "frequency: 60Hz" in text and "units: A" in text
    again = build(check_text(text), Graph(Clock())).blocks["I"]
    assert (again.frequency, again.harmonics, again.meta["units"]) == (60.0, ((3, 0.05),), "A")


def test_steps_scale_the_signal_one_factor_after_another_then_hold_the_last():
    """steps=[0.5, 2] for 0.1 s each: the waveform times 0.5, then 2 from 0.1 s on; noise not scaled."""
    _, plain = play(amplitude=3.0, offset=1.0, samples_per_chunk=333, count=9)
    source, stepped = play(amplitude=3.0, offset=1.0, samples_per_chunk=333, count=9,
                           steps=[0.5, 2.0], step_duration="100ms")
    factor = np.where(np.arange(2997) < 1000, 0.5, 2.0)
    assert_allclose(stepped.data(), plain.data() * factor, atol=1e-6)
    _, cut = play(amplitude=3.0, offset=1.0, samples_per_chunk=1000, count=3,
                  steps=[0.5, 2.0], step_duration=0.1)
    assert_allclose(cut.data()[:2997], stepped.data(), atol=1e-5)  # whatever the chunking
    text = graph_to_yaml(source.graph)
    assert "steps: [0.5, 2.0]" in text and "step_duration: 100ms" in text
    again = build(check_text(text), Graph(Clock())).blocks["V"]
    assert (again.steps, again.step_samples) == ((0.5, 2.0), 1000)


def test_bad_steps_are_refused_naming_the_block():
    """steps that are not numbers, or a step shorter than a sample: one line naming the source."""
    with pytest.raises(ValueError, match="waveform_source V: steps must be a list of numbers"):
        waveform_source(steps=["fast"], name="V", graph=Graph(Clock()))
    with pytest.raises(ValueError, match="waveform_source W: step_duration must be"):
        waveform_source(steps=[1.0], step_duration=1e-9, name="W", graph=Graph(Clock()))
