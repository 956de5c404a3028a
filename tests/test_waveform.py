"""
waveform_source: a real mains-like source for pipeline files; analytic
samples, device time, independent of its chunk size, exported and read back.
"""

import numpy as np
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
