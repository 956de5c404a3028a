"""
A real-valued waveform source: a mains voltage or current with harmonics,
for demos, tests and pipeline files (V and I of a power converter).
"""

import numpy as np
from zope.interface import implementer

from ..block import PolledSource
from ..interfaces import IRealProducer, IStateful
from ..numerics.signals import noise_samples, tone_samples
from ..registry import register
from ..state import pack_generator, restore_generator
from ..timebase import Timebase

__all__ = ["waveform_source"]


@register
@implementer(IRealProducer, IStateful)
class waveform_source(PolledSource):
    """
    Real samples (float32) of ``amplitude·cos(2π·f·t + phase)`` plus
    harmonics and white noise, timed from ``start_time``.

    :param frequency: fundamental, Hz (50 or 60 for mains).
    :param amplitude: peak amplitude of the fundamental (V, A...).
    :param phase: phase of the fundamental, degrees (a current lagging
        its voltage by 30° has ``phase: -30``).
    :param harmonics: ``[(order, fraction of the fundamental), ...]``, in
        phase with it: ``[[3, 0.03], [5, 0.04]]`` reads THD 5 %.
    :param offset: a constant added (DC).
    :param noise: RMS of white Gaussian noise added.
    :param sample_rate: samples per second.
    :param samples_per_chunk: samples in each chunk.
    :param count: end the stream after this many chunks (``None``: never).
    :param start_time: device time of the first sample, ns.
    :param seed: seed of the noise.
    :param units: ``meta['units']`` of the chunks (``"V"``, ``"A"``).
    :param paced: keep to device time, or run as fast as consumers take.
    :param steps: factors that scale the signal (fundamental, harmonics
        and offset; not the noise) one after the other, each for
        ``step_duration``, the last one held: a load sweep
        (``steps: [0.1, 0.5, 1.0]``); empty: no scaling.
    :param step_duration: how long each factor of ``steps`` lasts, s; it
        is rounded to whole samples.
    """

    type_name = "waveform_source"
    kind = "real"
    param_units = {"frequency": "Hz", "sample_rate": "Hz", "samples_per_chunk": "count",
                   "count": "count", "start_time": "ns", "step_duration": "s"}

    def __init__(self, frequency=50.0, amplitude=1.0, phase=0.0, harmonics=(), offset=0.0,
                 noise=0.0, sample_rate=10e3, samples_per_chunk=1000, count=None,
                 start_time=0, seed=0, units="", paced=True, steps=(), step_duration=1.0,
                 **kwargs):
        what = f"{self.type_name} {kwargs.get('name') or ''}".strip()
        if not sample_rate > 0 or not isinstance(samples_per_chunk, int) \
                or samples_per_chunk < 1:
            raise ValueError(f"{what}: sample_rate must be > 0 and samples_per_chunk a "
                             f"positive integer, got {sample_rate!r} and "
                             f"{samples_per_chunk!r}")
        if noise < 0:
            raise ValueError(f"{what}: noise must be >= 0, got {noise!r}")
        try:
            self.steps = tuple(float(factor) for factor in steps)
            self.step_duration = float(step_duration)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: steps must be a list of numbers and step_duration a "
                             f"duration, got {steps!r} and {step_duration!r}") from None
        self._factors = np.asarray(self.steps, np.float32)
        self.step_samples = int(round(self.step_duration * float(sample_rate)))
        if self.steps and self.step_samples < 1:
            raise ValueError(f"{what}: step_duration must be at least one sample, got "
                             f"{step_duration!r}")
        self.frequency = float(frequency)
        self.amplitude = float(amplitude)
        self.phase = float(phase)
        self.harmonics = tuple((int(order), float(fraction)) for order, fraction in harmonics)
        self.offset = float(offset)
        self.noise = float(noise)
        self.sample_rate = float(sample_rate)
        self.samples_per_chunk = samples_per_chunk
        self.count = count
        self.start_time = int(start_time)
        self.seed = seed
        self.units = units
        self.meta = {"sample_rate": self.sample_rate, "frequency": self.frequency}
        if units:
            self.meta["units"] = units
        super().__init__(paced=paced, **kwargs)
        self.reset()

    def reset(self):
        self._index = 0
        self._chunks = 0
        self._timebase = Timebase(self.start_time, self.sample_rate)
        self._rng = np.random.default_rng(self.seed)

    def get_state(self):
        """Where the stream is (samples and chunks emitted) and its noise generator."""
        return {"version": 1, "index": self._index, "chunks": self._chunks,
                "rng": pack_generator(self._rng)}

    def set_state(self, state):
        if state.get("version") != 1:
            raise ValueError(f"{self.label}: unknown state version {state.get('version')!r}")
        self._index, self._chunks = state["index"], state["chunks"]
        restore_generator(self._rng, state["rng"])

    def next_chunk(self):
        if self.count is not None and self._chunks >= self.count:
            return None
        self._chunks += 1
        first, n, rate = self._index, self.samples_per_chunk, self.sample_rate
        phase = np.deg2rad(self.phase)
        values = tone_samples(first, n, rate, self.frequency, self.amplitude, phase,
                              complex_output=False)
        for order, fraction in self.harmonics:
            values += tone_samples(first, n, rate, order * self.frequency,
                                   self.amplitude * fraction, order * phase,
                                   complex_output=False)
        if self.offset:
            values += np.float32(self.offset)
        if self.steps:
            step = np.minimum(np.arange(first, first + n) // self.step_samples,
                              len(self.steps) - 1)
            values *= self._factors[step]
        if self.noise:
            values += noise_samples(self._rng, n, self.noise ** 2, complex_output=False)
        self._index += n
        return (values, self._timebase.time_of(first), self._timebase.time_of(self._index),
                rate, self.meta)
