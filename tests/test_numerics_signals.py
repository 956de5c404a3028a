"""
The simulated signal is band-limited as a real analyzer's input is: a tone
outside the captured band never folds into it, in the simulated instrument
and in the emulator alike.  Its noise is white circular Gaussian noise of
the asked power.
"""

import re

import numpy as np
from numpy.testing import assert_allclose
from twisted.internet.task import Clock

from pyrf_blocks import Graph, collector, simulated_instrument
from pyrf_blocks.instruments import vrt
from pyrf_blocks.instruments.emulator import InstrumentEmulator
from pyrf_blocks.numerics.signals import in_band, noise_samples, signal_samples

RATE = 125e6 / 16


def test_in_band_is_the_nyquist_band():
    """Offsets inside [-rate/2, rate/2) are in the band; those outside are not."""
    assert in_band(0.0, RATE) and in_band(-RATE / 2, RATE) and in_band(RATE / 2 - 1, RATE)
    assert not in_band(RATE / 2, RATE) and not in_band(10e6, RATE) and not in_band(-4e6, RATE)


def test_signal_samples_leave_out_tones_outside_the_band():
    """A tone 10 MHz off at 7.8125 MSa/s adds nothing (it would fold to 2.19 MHz); one inside is kept."""
    outside = signal_samples(0, 4096, RATE, [(10e6, -20.0)], harmonics=[(2, -30.0)])
    assert not np.any(outside)
    inside = signal_samples(0, 4096, RATE, [(1e6, -20.0), (10e6, -20.0)])
    expected = signal_samples(0, 4096, RATE, [(1e6, -20.0)])
    assert_allclose(inside, expected)


def test_simulated_instrument_drops_out_of_band_tones():
    """WSA4000('sim') with a tone outside its span emits no tone at the fold frequency."""
    clock = Clock()
    graph = Graph(clock)
    wsa = simulated_instrument(graph=graph, sample_rate=RATE, tones=[(10e6, -20.0)],
                               harmonics=[(3, -10.0)], noise_floor=None, paced=False, count=2)
    sink = collector(wsa)
    clock.advance(0.1)
    graph.stop()
    assert sink.chunks and not np.any(sink.data())


def test_emulator_drops_out_of_band_tones_by_the_same_rule():
    """The emulator at decimation 16 sends zeros for a tone 10 MHz off, and the tone for one 1 MHz off."""
    def first_packet(tones):
        emulator = InstrumentEmulator(Clock(), tones=tones, noise_floor=None, start_time=0)
        emulator.decimation = 16
        emulator._rebase()
        packet = vrt.parse_packet(emulator.next_packet(0))
        return vrt.decode_payload(packet.payload)
    assert not np.any(first_packet([(2.41e9, -20.0)]))
    kept = first_packet([(2.401e9, -20.0)])
    expected = signal_samples(0, len(kept), RATE, [(1e6, -20.0)])
    assert_allclose(kept, expected, atol=2.0 ** -12)


def test_a_tone_outside_the_band_leaves_no_phantom():
    """A tone at or beyond ±rate/2 adds nothing (no alias folds into the band), one inside is there at its level."""
    outside = signal_samples(0, 4096, RATE, [(RATE / 2, -20.0), (-RATE, -10.0), (3 * RATE, 0.0)])
    assert not outside.any()
    inside = signal_samples(0, 4096, RATE, [(RATE / 8, -20.0)], reference_level=0.0)
    assert_allclose(np.abs(inside), 10 ** (-20 / 20), rtol=1e-5)


def test_demo_refuses_a_tone_outside_the_span_and_shows_one_inside():
    """`pyrf-blocks demo --tone 10 -20` (outside the 7.8 MHz span) is refused in one line naming the span, exit 2; a tone inside is listed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))

    def demo(*tone):
        return subprocess.run([sys.executable, "-m", "pyrf_blocks.cli", "demo", "--fast",
                               "--duration", "0.2", "--tone", *tone],
                              capture_output=True, text=True, env=env, timeout=60)

    refused = demo("10", "-20")
    assert refused.returncode == 2 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "--tone 10 -20" in refused.stderr and "span" in refused.stderr
    shown = demo("3", "-20")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"2403\.000\d* MHz|2402\.999\d* MHz", shown.stdout)


def test_complex_noise_is_white_circular_gaussian_of_the_asked_power():
    """Complex noise: I and Q Gaussian (KS), each of variance power/2, uncorrelated, white."""
    from scipy import stats

    power = 3e-6
    rng = np.random.default_rng(7)
    z = np.concatenate([noise_samples(rng, 1 << 17, power) for _ in range(2)])
    z = z.astype(np.complex128) / np.sqrt(power / 2)
    for part in (z.real, z.imag):
        assert abs(part.var() - 1.0) < 0.02 and abs(part.mean()) < 0.01
        assert stats.kstest(part, "norm").pvalue > 1e-3
        assert abs(stats.kurtosis(part)) < 0.05
    assert abs(np.corrcoef(z.real, z.imag)[0, 1]) < 0.01
    assert abs(np.mean(z[1:] * np.conj(z[:-1]))) < 0.01  # no correlation between neighbours
    spectrum = np.mean(np.abs(np.fft.fft(z.reshape(-1, 256), axis=1)) ** 2, axis=0) / 256
    assert_allclose(spectrum, 2.0, rtol=0.12)


def test_noise_follows_the_generator():
    """The same generator state gives the same noise; signal_samples adds it to the tones."""
    a = noise_samples(np.random.default_rng(3), 1000, 1e-4)
    assert np.array_equal(a, noise_samples(np.random.default_rng(3), 1000, 1e-4))
    assert not np.array_equal(a, noise_samples(np.random.default_rng(4), 1000, 1e-4))
    rng = np.random.default_rng(3)
    mixed = signal_samples(0, 1000, RATE, [(1e6, -20.0)], noise_floor=-100.0, rng=rng)
    power = 10 ** (-100.0 / 10) * RATE
    expected = noise_samples(np.random.default_rng(3), 1000, power) + signal_samples(
        0, 1000, RATE, [(1e6, -20.0)])
    assert_allclose(mixed, expected, rtol=0, atol=1e-6)
