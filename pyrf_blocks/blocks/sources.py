"""
The simulated instrument: a WSA-like IQ source for demos and tests.
"""

import numpy as np
from zope.interface import implementer

from ..registry import register
from ..block import PolledSource
from ..interfaces import IIQProducer
from ..defaults import NOISE_FLOOR
from ..numerics.signals import signal_samples
from ..timebase import Timebase

__all__ = ["simulated_instrument"]

_SETTINGS = ("center_frequency", "sample_rate", "samples_per_packet",
             "packets_per_block", "reference_level", "tones", "harmonics",
             "noise_floor")


@register
@implementer(IIQProducer)
class simulated_instrument(PolledSource):
    """
    An IQ source that behaves like a ThinkRF analyzer, with a signal made of
    tones, their harmonics and white noise.

    :param center_frequency: RF centre frequency, Hz.
    :param sample_rate: IQ samples per second.
    :param samples_per_packet: samples in one VRT-like packet.
    :param packets_per_block: packets per emitted chunk.
    :param reference_level: dBm of a full-scale tone.
    :param tones: ``[(offset_hz, level_dbm), ...]`` relative to the centre;
        only those inside the captured band (``±sample_rate/2``) appear, as
        behind a real analyzer's anti-alias filter.
    :param harmonics: ``[(order, level_dbc), ...]`` added to the first tone,
        at ``order × offset`` (also only those inside the band).
    :param noise_floor: noise density, dBm/Hz (``None``: no noise).
    :param seed: seed of the noise generator; the same seed gives the same
        samples.
    :param paced: keep to device time (real-time), or run as fast as the
        consumers allow.
    :param start_time: device time of the first sample, ns.
    :param count: end the stream after this many chunks (``None``: never).
    """

    type_name = "simulated_instrument"
    kind = "iq"
    param_units = {"center_frequency": "Hz", "sample_rate": "Hz",
                   "samples_per_packet": "count", "packets_per_block": "count",
                   "reference_level": "dBm", "tones": ("Hz", "dBm"),
                   "harmonics": ("count", "dBc"), "noise_floor": "dBm/Hz", "count": "count",
                   "start_time": "ns"}

    def __init__(self, center_frequency=2.4e9, sample_rate=125e6 / 16,
                 samples_per_packet=1024, packets_per_block=16,
                 reference_level=0.0, tones=((1e6, -20.0),), harmonics=(),
                 noise_floor=NOISE_FLOOR, seed=0, paced=True, start_time=0,
                 model="simulated", count=None, **kwargs):
        super().__init__(paced=paced, **kwargs)
        self.seed = seed
        self.count = count
        self.start_time = int(start_time)
        self.model = model
        self._settings = {}
        self.configure(center_frequency=center_frequency, sample_rate=sample_rate,
                       samples_per_packet=samples_per_packet,
                       packets_per_block=packets_per_block,
                       reference_level=reference_level, tones=tones,
                       harmonics=harmonics, noise_floor=noise_floor)

    @property
    def settings(self):
        return dict(self._settings)

    def configure(self, **settings):
        """
        Change settings; they apply from the next chunk on.  Unknown names
        or bad values raise ``ValueError`` and change nothing.
        """
        unknown = set(settings) - set(_SETTINGS)
        if unknown:
            raise ValueError(f"{self.type_name} {self.name!r}: unknown setting(s) "
                             f"{', '.join(sorted(unknown))}; known: {', '.join(_SETTINGS)}")
        new = dict(self._settings, **settings)
        for name in ("sample_rate", "samples_per_packet", "packets_per_block"):
            if not new[name] > 0:
                raise ValueError(f"{self.type_name} {self.name!r}: {name} must be "
                                 f"positive, got {new[name]!r}")
        new["tones"] = tuple((float(f), float(level)) for f, level in new["tones"])
        new["harmonics"] = tuple((int(order), float(dbc)) for order, dbc in new["harmonics"])
        self._settings = new
        self._rebase = True
        self._meta = {
            "center_frequency": float(new["center_frequency"]),
            "sample_rate": float(new["sample_rate"]),
            "reference_level": float(new["reference_level"]),
            "instrument": self.model,
        }

    def reset(self):
        self._index = 0
        self._chunks = 0
        self._time = self.start_time
        self._rebase = True
        self._rng = np.random.default_rng(self.seed)

    def next_chunk(self):
        if self.count is not None and self._chunks >= self.count:
            return None
        self._chunks += 1
        settings = self._settings
        rate = float(settings["sample_rate"])
        count = int(settings["samples_per_packet"]) * int(settings["packets_per_block"])
        samples = signal_samples(self._index, count, rate, settings["tones"],
                                 settings["harmonics"], settings["noise_floor"],
                                 settings["reference_level"], self._rng)
        if self._rebase:
            # Device time is counted from the last change of settings, so
            # rounding never accumulates over a long run.
            self._timebase = Timebase(self._time, rate, self._index)
            self._rebase = False
        start = self._time
        self._index += count
        end = self._timebase.time_of(self._index)
        self._time = end
        return samples, start, end, rate, self._meta
