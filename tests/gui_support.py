"""
Shared by the viewer and display tests: a simulated chain to display and a
clock driven frame by frame.
"""

from pyrf_blocks import WSA4000, calibrate_block, fft_block


def sim_spectra(graph, tones=((1.25e6, -20.0),), **settings):
    """The simulated instrument and its calibrated 1000-point spectra."""
    settings = {"noise_floor": -140.0, "sample_rate": 10e6, "center_frequency": 1e9,
                **settings}
    wsa = WSA4000("sim", graph=graph, tones=tones, **settings)
    return wsa, calibrate_block(fft_block(wsa, size=1000))


def advance(clock, seconds, fps=30.0):
    """Advance `clock` by `seconds`, one display frame at a time."""
    for _ in range(round(seconds * fps)):
        clock.advance(1.0 / fps)
