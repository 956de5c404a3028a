"""
The simulated instrument: a WSA-like IQ source for demos and tests.
"""

import numpy as np
from zope.interface import implementer

from ..registry import register
from ..block import PolledSource
from ..defaults import NOISE_FLOOR
from ..interfaces import IIQProducer, IStateful
from ..numerics.signals import signal_samples
from ..params import Param, check_params
from ..state import pack_generator, restore_generator
from ..timebase import Timebase

__all__ = ["simulated_instrument"]

#: Largest sample rate, samples per second (the fastest analyzer's ten times).
MAX_SAMPLE_RATE = 1e10
#: Smallest sample rate, samples per second: about a hundredth of the
#: slowest analyzer's (122 kSa/s, 125 MSa/s decimated by 1024), so that a
#: chunk of the default 16 Ki samples lasts at most 16 s of device time
#: (``demo --rate-msps 1e-9`` reported peaks "after 262144000 s").
MIN_SAMPLE_RATE = 1e3

_SETTINGS = ("center_frequency", "sample_rate", "samples_per_packet",
             "packets_per_block", "reference_level", "tones", "harmonics",
             "noise_floor")


#: Most dB a simulated tone (a harmonic: its level) may stand above full
#: scale (the reference level): its samples then stay far from float32's
#: overflow in any FFT (a 400 dBm tone read as +303 dBm, a 1e30 dBm one
#: gave no spectrum at all).
MAX_OVER_FULL_SCALE = 100.0


@register
@implementer(IIQProducer, IStateful)
class simulated_instrument(PolledSource):
    """
    An IQ source that behaves like a ThinkRF analyzer, with a signal made of
    tones, their harmonics and white noise.

    :param center_frequency: RF centre frequency, Hz.
    :param sample_rate: IQ samples per second, 1 kSa/s to 10 GSa/s.
    :param samples_per_packet: samples in one VRT-like packet.
    :param packets_per_block: packets per emitted chunk.
    :param reference_level: dBm of a full-scale tone.
    :param tones: ``[(offset_hz, level_dbm), ...]`` relative to the centre;
        only those inside the captured band (``±sample_rate/2``) appear, as
        behind a real analyzer's anti-alias filter.  Each at most
        100 dB above ``reference_level`` (and each harmonic's level too).
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
    # A chunk is at most 65536 x 256 samples (128 MiB of complex64).
    param_rules = {
        "center_frequency": Param("Hz", minimum=0, maximum=1e12),
        "sample_rate": Param("Hz", minimum=MIN_SAMPLE_RATE, maximum=MAX_SAMPLE_RATE),
        "samples_per_packet": Param("count", minimum=1, maximum=65536),
        "packets_per_block": Param("count", minimum=1, maximum=256),
        "reference_level": Param("dBm", minimum=-200, maximum=100),
        "tones": Param(("Hz", "dBm")), "harmonics": Param(("count", "dBc")),
        "noise_floor": Param("dBm/Hz", nullable=True, minimum=-300, maximum=100),
        "count": Param("count", minimum=0), "start_time": Param("ns", minimum=0),
        "seed": Param(types=(int,), minimum=0, nullable=True),
    }

    @staticmethod
    def param_relations(values):
        """
        ``[(parameter, message)]``: each tone (and each harmonic, at its
        level) at most ``MAX_OVER_FULL_SCALE`` dB above the reference
        level (see :func:`~pyrf_blocks.params.relation_problems`).
        """
        reference, tones = values.get("reference_level"), values.get("tones")
        if reference is None or not tones:
            return []
        levels = [("tones", level) for _, level in tones]
        levels += [("harmonics", tones[0][1] + dbc) for _, dbc in values.get("harmonics") or ()]
        return [(name, f"{name}: {level:g} dBm is {level - reference:g} dB above full scale "
                       f"(reference_level {reference:g} dBm); at most "
                       f"{MAX_OVER_FULL_SCALE:g} dB")
                for name, level in levels if level - reference > MAX_OVER_FULL_SCALE]

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
        self.reset()

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
        # Checked with the settings kept, so that the rules between them
        # (param_relations) see the values they will go with.
        new = check_params(type(self), dict(self._settings, **settings), strict=False,
                           block=self.label)
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

    def get_state(self):
        """
        Where the stream is: samples and chunks emitted, device time, the
        time base and the noise generator (its 128-bit integers as text,
        which msgpack cannot carry as numbers).  Restored, the source goes
        on with exactly the samples it would have emitted next.
        """
        timebase = None if self._rebase else [self._timebase.origin_ns,
                                               self._timebase.origin_index]
        return {"version": 1, "index": self._index, "chunks": self._chunks,
                "time": self._time, "timebase": timebase,
                "rng": pack_generator(self._rng)}

    def set_state(self, state):
        if state.get("version") != 1:
            raise ValueError(f"{self.label}: unknown state version {state.get('version')!r}")
        self._index, self._chunks, self._time = state["index"], state["chunks"], state["time"]
        restore_generator(self._rng, state["rng"])
        if state["timebase"] is None:
            self._rebase = True
        else:
            origin_ns, origin_index = state["timebase"]
            self._timebase = Timebase(origin_ns, self._settings["sample_rate"], origin_index)
            self._rebase = False

    def next_chunk(self):
        if self.count is not None and self._chunks >= self.count:
            return None
        self._chunks += 1
        settings = self._settings
        rate = float(settings["sample_rate"])
        count = int(settings["samples_per_packet"]) * int(settings["packets_per_block"])
        samples = signal_samples(self._index, count, rate, settings["tones"],
                                 settings["harmonics"], settings["noise_floor"],
                                 settings["reference_level"], self._rng,
                                 out=self.buffer((count,), np.complex64))
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
